-- An admin login per project side that acts on every mailbox of the
-- project (Exchange EWS ApplicationImpersonation, issue 12), so that
-- mailbox rows need only email addresses. The password is sealed like a
-- mailbox's (associated data "project:<id>:<side>-admin").

-- +goose Up
CREATE TABLE project_admins (
    project_id TEXT NOT NULL REFERENCES projects (id),
    side       TEXT NOT NULL,
    login      TEXT NOT NULL,
    secret     TEXT NOT NULL,
    PRIMARY KEY (project_id, side)
);

-- +goose Down
DROP TABLE project_admins;
