-- A failed message is named by its connector's ID (issue 11): IMAP
-- "<uidvalidity>.<uid>", a POP3 UIDL, a Maildir file name, an mbox byte
-- offset. The uid column stays for the failures recorded before.

-- +goose Up
ALTER TABLE failed_items ADD COLUMN item_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE failed_items DROP COLUMN item_id;
