-- End users enter their own passwords (issue 17): the emailed links.
-- Only a hash of each link's token is kept; a link is used once, and a
-- newer link for the same mailbox retires the older ones.

-- +goose Up
CREATE TABLE password_requests (
    token_hash TEXT PRIMARY KEY,
    mailbox_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    sent_to    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX password_requests_mailbox ON password_requests (mailbox_id, created_at);

-- +goose Down
DROP TABLE password_requests;
