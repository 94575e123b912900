-- Appends to a shared event log (Kafka) that a gateway answered as failed.
-- Their records may still reach the log later (a request the broker took
-- before it stopped answering); the batch loop skips them. An append is a
-- writer (one gateway process) and that writer's sequence number.
CREATE TABLE voided_appends (
    writer BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    voided_at BIGINT NOT NULL,
    PRIMARY KEY (writer, seq)
);
CREATE INDEX voided_appends_by_time ON voided_appends (voided_at);

-- How far each writer has decided its appends: every append of the writer
-- below decided_below was answered as stored or voided, so the batch loop
-- may read its records without waiting out their delivery deadline.
CREATE TABLE log_writers (
    writer BIGINT NOT NULL PRIMARY KEY,
    decided_below BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
