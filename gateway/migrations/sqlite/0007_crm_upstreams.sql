-- Each project's CRM upstream (`/crm/config`): where `/crm/…` requests go,
-- with the headers added to them (JSON; secrets, never answered back).
CREATE TABLE crm_upstreams (
    project VARCHAR(100) NOT NULL PRIMARY KEY,
    url VARCHAR(2000) NOT NULL,
    headers TEXT NOT NULL,
    timeout_ms BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
