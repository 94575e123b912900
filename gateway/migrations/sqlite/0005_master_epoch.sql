-- The fence of master work: the epoch of the newest lead, which only grows.
-- A master claims its epoch here before it reads any offset, and every
-- commit it makes checks, in the same transaction, that the epoch is still
-- its own. One row.
CREATE TABLE master_epoch (
    id INTEGER NOT NULL PRIMARY KEY,
    epoch BIGINT NOT NULL,
    -- The node that claimed it, and when that node last said it still leads
    -- (election = "single" refuses a second node while this is recent).
    holder VARCHAR(200) NOT NULL,
    renewed_at BIGINT NOT NULL,
    commits BIGINT NOT NULL
);
INSERT INTO master_epoch (id, epoch, holder, renewed_at, commits) VALUES (1, 0, '', 0, 0);

-- The epoch of the master that committed each file and offset.
ALTER TABLE parquet_files ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE log_offsets ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;

-- Files taken out of the manifest (compacted away), kept for the queries
-- that may still read them until the janitor deletes them.
CREATE TABLE retired_files (
    path VARCHAR(400) NOT NULL PRIMARY KEY,
    retired_at BIGINT NOT NULL
);
