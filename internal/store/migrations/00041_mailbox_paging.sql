-- Paging, search, filters and totals over projects of thousands of
-- mailboxes (issue 17): pages are read in address and status order.
-- (mailbox_passes is indexed by mailbox in 00020.)

-- +goose Up
CREATE INDEX mailboxes_project_source ON mailboxes (project_id, source_email);
CREATE INDEX mailboxes_project_status ON mailboxes (project_id, status);

-- +goose Down
DROP INDEX mailboxes_project_status;
DROP INDEX mailboxes_project_source;
