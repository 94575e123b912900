-- A project's continuous queries: an aggregate kept current by the batch
-- loop, as partial aggregation states in Parquet files.
CREATE TABLE continuous_queries (
    project VARCHAR(100) NOT NULL,
    table_name VARCHAR(100) NOT NULL,
    name VARCHAR(400) NOT NULL,
    query TEXT NOT NULL,
    -- JSON lists and objects as the client sent them.
    partition_keys TEXT NOT NULL,
    options TEXT NOT NULL,
    -- The answer's columns, as JSON.
    fields TEXT NOT NULL,
    -- 1 while the collection files marked as its history wait to be folded in.
    replaying BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project, table_name)
);

-- The state files of each continuous query, by partition (the values of
-- its partition keys).
CREATE TABLE continuous_state (
    path VARCHAR(400) NOT NULL PRIMARY KEY,
    project VARCHAR(100) NOT NULL,
    table_name VARCHAR(100) NOT NULL,
    state_partition VARCHAR(400) NOT NULL,
    row_count BIGINT NOT NULL,
    byte_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX continuous_state_by_query ON continuous_state (project, table_name);

-- +1 whenever a continuous query is created or deleted: a load that folded
-- its records into the queries it knew commits only if none came or went.
ALTER TABLE master_epoch ADD COLUMN continuous_generation BIGINT NOT NULL DEFAULT 0;
