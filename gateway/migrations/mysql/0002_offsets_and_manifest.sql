-- How far the batch loop has moved each log partition into columnar storage.
CREATE TABLE log_offsets (
    project VARCHAR(100) NOT NULL,
    topic VARCHAR(250) NOT NULL,
    log_partition BIGINT NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, log_partition)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

-- Every Parquet file that is part of a collection's table.
CREATE TABLE parquet_files (
    path VARCHAR(400) NOT NULL PRIMARY KEY,
    project VARCHAR(100) NOT NULL,
    collection VARCHAR(100) NOT NULL,
    day VARCHAR(10) NOT NULL,
    topic VARCHAR(250) NOT NULL,
    log_partition BIGINT NOT NULL,
    first_offset BIGINT NOT NULL,
    last_offset BIGINT NOT NULL,
    row_count BIGINT NOT NULL,
    byte_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    INDEX parquet_files_by_collection (project, collection)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
