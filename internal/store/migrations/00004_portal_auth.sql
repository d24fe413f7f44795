-- Email-link login for the portal: single-use tokens (hashed), sessions
-- (hashed IDs, with their CSRF token), and request counts for rate
-- limiting, all in the database so any API process can serve any user.

-- +goose Up
CREATE TABLE login_tokens (
    token_hash TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES owners (id),
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE login_requests (
    bucket TEXT NOT NULL,
    at     BIGINT NOT NULL
);
CREATE INDEX login_requests_bucket ON login_requests (bucket, at);

-- +goose Down
DROP TABLE login_requests;
DROP TABLE sessions;
DROP TABLE login_tokens;
