-- Passes started within the same second need a reliable order: "the last
-- pass" of a mailbox must be the one started last.

-- +goose Up
ALTER TABLE passes ADD COLUMN created_ns BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE passes DROP COLUMN created_ns;
