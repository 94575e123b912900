CREATE TABLE projects (
    name VARCHAR(100) NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    user_type VARCHAR(40)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE api_keys (
    key_hash VARCHAR(64) NOT NULL PRIMARY KEY,
    project VARCHAR(100) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    key_set VARCHAR(32) NOT NULL,
    created_at BIGINT NOT NULL,
    INDEX api_keys_by_set (project, key_set)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE schema_versions (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    project VARCHAR(100) NOT NULL,
    collection VARCHAR(100) NOT NULL,
    version BIGINT NOT NULL,
    fields MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
    avro_schema MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE KEY schema_versions_unique (project, collection, version)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
