-- Uploaded plugin components, by the SHA-256 of their bytes.
CREATE TABLE plugin_components (
    sha256 VARCHAR(64) NOT NULL PRIMARY KEY,
    bytes LONGBLOB NOT NULL,
    created_at BIGINT NOT NULL
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

-- The plugins of each project. `version` counts uploads; `revision` counts
-- every change, so that gateways notice one by polling.
CREATE TABLE plugins (
    project VARCHAR(100) NOT NULL,
    name VARCHAR(100) NOT NULL,
    hook VARCHAR(16) NOT NULL,
    position BIGINT NOT NULL,
    on_error VARCHAR(16) NOT NULL,
    memory_mb BIGINT NOT NULL,
    timeout_ms BIGINT NOT NULL,
    sha256 VARCHAR(64) NOT NULL,
    version BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    config LONGTEXT NOT NULL,
    enabled BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project, name)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
