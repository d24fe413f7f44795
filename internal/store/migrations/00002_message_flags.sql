-- The flags a copied message was last given on the destination, so that
-- a later pass can tell whether the source's flags changed.

-- +goose Up
ALTER TABLE message_state ADD COLUMN flags TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE message_state DROP COLUMN flags;
