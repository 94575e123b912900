-- The ids of the events each load stored, as 16-byte keys one after
-- another, committed with the load: an event sent again within the
-- deduplication window is stored once.
CREATE TABLE loaded_event_ids (
    topic VARCHAR(250) NOT NULL,
    log_partition BIGINT NOT NULL,
    first_offset BIGINT NOT NULL,
    project VARCHAR(100) NOT NULL,
    id_keys BYTEA NOT NULL,
    loaded_at BIGINT NOT NULL,
    PRIMARY KEY (topic, log_partition, first_offset)
);
CREATE INDEX loaded_event_ids_by_time ON loaded_event_ids (loaded_at);
