-- Project-wide admin credentials per side (issue 13 item 4): a Microsoft
-- 365 app registration (kind "m365-app": tenant, client id as login, the
-- client secret sealed) that acts on every mailbox of that side, so that
-- mailbox rows need only email addresses. The shape also fits an admin
-- login with impersonation (Exchange EWS: login and password). The
-- secret is sealed with associated data "project:<id>:<side>-admin" and
-- blanked when the project finishes or is deleted.

-- +goose Up
CREATE TABLE project_credentials (
    project_id TEXT NOT NULL REFERENCES projects (id),
    side       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    tenant     TEXT NOT NULL DEFAULT '',
    login      TEXT NOT NULL,
    secret     TEXT NOT NULL,
    PRIMARY KEY (project_id, side)
);

-- +goose Down
DROP TABLE project_credentials;
