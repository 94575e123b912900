CREATE TABLE projects (
    name VARCHAR(100) NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    user_type VARCHAR(40)
);

CREATE TABLE api_keys (
    key_hash VARCHAR(64) NOT NULL PRIMARY KEY,
    project VARCHAR(100) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    key_set VARCHAR(32) NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_keys_by_set ON api_keys (project, key_set);

CREATE TABLE schema_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project VARCHAR(100) NOT NULL,
    collection VARCHAR(100) NOT NULL,
    version BIGINT NOT NULL,
    fields TEXT NOT NULL,
    avro_schema TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (project, collection, version)
);
