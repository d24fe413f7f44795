-- A running part that waits on a server's long hint (Gmail's daily
-- limit, a long Retry-After; issue 13): why ("daily-limit" or
-- "throttled") and until when (Unix seconds), stored with its live
-- progress so that every API process shows it. Empty/0 while it works.

-- +goose Up
ALTER TABLE mailbox_passes ADD COLUMN pause_cause TEXT NOT NULL DEFAULT '';
ALTER TABLE mailbox_passes ADD COLUMN pause_until BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE mailbox_passes DROP COLUMN pause_until;
ALTER TABLE mailbox_passes DROP COLUMN pause_cause;
