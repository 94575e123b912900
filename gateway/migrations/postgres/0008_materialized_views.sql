-- A project's materialized views: a query, and the version of the Parquet
-- snapshot of its answer that queries read (0 before the first refresh).
CREATE TABLE materialized_views (
    project VARCHAR(100) NOT NULL,
    table_name VARCHAR(100) NOT NULL,
    name VARCHAR(400) NOT NULL,
    query TEXT NOT NULL,
    -- NULL: refreshed when asked (and on the first read) only.
    update_interval_ms BIGINT,
    incremental BIGINT NOT NULL,
    real_time BIGINT NOT NULL,
    options TEXT NOT NULL,
    -- The snapshot's columns, as JSON.
    fields TEXT NOT NULL,
    version BIGINT NOT NULL,
    -- When the snapshot's refresh finished (milliseconds); NULL before one.
    last_update BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project, table_name)
);

-- The Parquet files of each view's current snapshot.
CREATE TABLE view_files (
    path VARCHAR(400) NOT NULL PRIMARY KEY,
    project VARCHAR(100) NOT NULL,
    table_name VARCHAR(100) NOT NULL,
    row_count BIGINT NOT NULL,
    byte_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX view_files_by_view ON view_files (project, table_name);

-- The collection files (parquet_files) each view's snapshot has read: an
-- incremental refresh folds in only the files not listed here, and a
-- real-time read adds them. Compaction carries the marks to the merged file.
CREATE TABLE view_sources (
    project VARCHAR(100) NOT NULL,
    table_name VARCHAR(100) NOT NULL,
    path VARCHAR(400) NOT NULL,
    PRIMARY KEY (project, table_name, path)
);
CREATE INDEX view_sources_by_path ON view_sources (path);
