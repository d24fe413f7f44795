-- The migration service: owners, projects, mailbox pairs, passes and
-- their statistics. Portable SQL (SQLite and PostgreSQL). Secrets are
-- AES-256-GCM ciphertexts in base64; booleans are 0/1 BIGINTs.

-- +goose Up
CREATE TABLE owners (
    id         TEXT PRIMARY KEY,
    email      TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES owners (id),
    created_at BIGINT NOT NULL
);

CREATE TABLE projects (
    id                 TEXT PRIMARY KEY,
    owner_id           TEXT NOT NULL REFERENCES owners (id),
    name               TEXT NOT NULL,
    source_type        TEXT NOT NULL,
    source_host        TEXT NOT NULL,
    source_port        BIGINT NOT NULL,
    source_security    TEXT NOT NULL,
    source_insecure    BIGINT NOT NULL DEFAULT 0,
    source_plaintext   BIGINT NOT NULL DEFAULT 0,
    destination_preset TEXT NOT NULL,
    options            TEXT NOT NULL DEFAULT '{}',
    state              TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    finished_at        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX projects_owner ON projects (owner_id);

CREATE TABLE mailboxes (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects (id),
    source_email  TEXT NOT NULL,
    source_login  TEXT NOT NULL,
    source_secret TEXT NOT NULL,
    dest_email    TEXT NOT NULL,
    dest_login    TEXT NOT NULL,
    dest_secret   TEXT NOT NULL,
    flags         TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL,
    status_at     BIGINT NOT NULL,
    error_class   TEXT NOT NULL DEFAULT '',
    error_side    TEXT NOT NULL DEFAULT '',
    last_error    TEXT NOT NULL DEFAULT '',
    migrated_once BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    UNIQUE (project_id, source_email, dest_email)
);
CREATE INDEX mailboxes_project ON mailboxes (project_id);

CREATE TABLE mailbox_events (
    mailbox_id TEXT NOT NULL,
    at         BIGINT NOT NULL,
    status     TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX mailbox_events_mailbox ON mailbox_events (mailbox_id, at);

CREATE TABLE passes (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id),
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    cutoff      BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    finished_at BIGINT NOT NULL DEFAULT 0,
    notified    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX passes_project ON passes (project_id, created_at);

CREATE TABLE mailbox_passes (
    pass_id       TEXT NOT NULL REFERENCES passes (id),
    mailbox_id    TEXT NOT NULL REFERENCES mailboxes (id),
    job_id        BIGINT NOT NULL DEFAULT 0,
    status        TEXT NOT NULL,
    started_at    BIGINT NOT NULL DEFAULT 0,
    finished_at   BIGINT NOT NULL DEFAULT 0,
    total_msgs    BIGINT NOT NULL DEFAULT 0,
    total_bytes   BIGINT NOT NULL DEFAULT 0,
    copied        BIGINT NOT NULL DEFAULT 0,
    copied_bytes  BIGINT NOT NULL DEFAULT 0,
    present       BIGINT NOT NULL DEFAULT 0,
    skipped       BIGINT NOT NULL DEFAULT 0,
    failed        BIGINT NOT NULL DEFAULT 0,
    flag_updates  BIGINT NOT NULL DEFAULT 0,
    folder        TEXT NOT NULL DEFAULT '',
    rate          DOUBLE PRECISION NOT NULL DEFAULT 0,
    eta_seconds   BIGINT NOT NULL DEFAULT 0,
    quota_used    BIGINT NOT NULL DEFAULT 0,
    quota_limit   BIGINT NOT NULL DEFAULT 0,
    warning       TEXT NOT NULL DEFAULT '',
    plan          TEXT NOT NULL DEFAULT '',
    error_class   TEXT NOT NULL DEFAULT '',
    last_error    TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (pass_id, mailbox_id)
);

CREATE TABLE failed_items (
    pass_id    TEXT NOT NULL,
    mailbox_id TEXT NOT NULL,
    folder     TEXT NOT NULL,
    uid        BIGINT NOT NULL,
    size       BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    subject    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX failed_items_mailbox ON failed_items (mailbox_id, pass_id);

-- Leases keep one worker per mailbox and a bounded number per source
-- host, across every worker process sharing the database.
CREATE TABLE leases (
    resource   TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE leases;
DROP TABLE failed_items;
DROP TABLE mailbox_passes;
DROP TABLE passes;
DROP TABLE mailbox_events;
DROP TABLE mailboxes;
DROP TABLE projects;
DROP TABLE api_tokens;
DROP TABLE owners;
