-- Proof of migration in the service (issue 15): the sealed report of
-- each mailbox's "proof" pass, with its verdict and counts in columns so
-- that a project summary reads no report JSON. One row per pass and
-- mailbox; a rerun of the same part replaces its row.

-- +goose Up
CREATE TABLE proof_reports (
    pass_id         TEXT NOT NULL,
    mailbox_id      TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    exact           BIGINT NOT NULL DEFAULT 0,
    source_messages BIGINT NOT NULL DEFAULT 0,
    matched         BIGINT NOT NULL DEFAULT 0,
    missing         BIGINT NOT NULL DEFAULT 0,
    altered         BIGINT NOT NULL DEFAULT 0,
    differs         BIGINT NOT NULL DEFAULT 0,
    extra           BIGINT NOT NULL DEFAULT 0,
    skipped         BIGINT NOT NULL DEFAULT 0,
    failed_earlier  BIGINT NOT NULL DEFAULT 0,
    folder_errors   BIGINT NOT NULL DEFAULT 0,
    verdict         TEXT NOT NULL DEFAULT '',
    sha256          TEXT NOT NULL DEFAULT '',
    report          TEXT NOT NULL,
    PRIMARY KEY (pass_id, mailbox_id)
);
CREATE INDEX proof_reports_mailbox ON proof_reports (mailbox_id, created_at);
CREATE INDEX proof_reports_project ON proof_reports (project_id, created_at);

-- +goose Down
DROP TABLE proof_reports;
