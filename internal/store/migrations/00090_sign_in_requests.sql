-- End users sign in with Microsoft through their link (issue 17, item 4,
-- kind "m365-delegated"): one row per started sign-in, between the
-- redirect to the authorization endpoint and the callback. Only hashes
-- of the state and of the browser's nonce cookie are kept; the PKCE
-- verifier and the link's token (to send the user back to their page)
-- are sealed with associated data "sign-in:<state_hash>". A row is used
-- once and lives ten minutes, the authorization code's own lifetime.

-- +goose Up
CREATE TABLE sign_in_requests (
    state_hash TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    nonce_hash TEXT NOT NULL,
    side       TEXT NOT NULL,
    sealed     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sign_in_requests_token ON sign_in_requests (token_hash);

-- +goose Down
DROP TABLE sign_in_requests;
