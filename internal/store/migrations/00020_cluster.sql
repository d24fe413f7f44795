-- Many worker processes sharing one database (issue 16). Portable SQL
-- (SQLite and PostgreSQL).
--
-- mailbox_passes.worker names the process that claimed a mailbox's part
-- of a pass (after taking its lease), so that the API shows who runs it
-- and a worker that died can be told from one that has yet to start: a
-- claimed part whose lease expired is taken over by another worker.
-- progress_at is when its progress was last stored.
--
-- The indexes serve what every API request and worker asks: a mailbox's
-- passes (the primary key starts with the pass) and the parts that are
-- still running.

-- +goose Up
ALTER TABLE mailbox_passes ADD COLUMN worker TEXT NOT NULL DEFAULT '';
ALTER TABLE mailbox_passes ADD COLUMN progress_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX mailbox_passes_mailbox ON mailbox_passes (mailbox_id);
CREATE INDEX mailbox_passes_status ON mailbox_passes (status);
CREATE INDEX mailboxes_status ON mailboxes (status);

-- +goose Down
DROP INDEX mailboxes_status;
DROP INDEX mailbox_passes_status;
DROP INDEX mailbox_passes_mailbox;
ALTER TABLE mailbox_passes DROP COLUMN progress_at;
ALTER TABLE mailbox_passes DROP COLUMN worker;
