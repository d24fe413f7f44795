-- Paging, search, filters and totals over projects of thousands of
-- mailboxes (issue 17): the latest pass of a mailbox is found by
-- mailbox, and pages are read in address and status order.

-- +goose Up
CREATE INDEX mailbox_passes_mailbox ON mailbox_passes (mailbox_id);
CREATE INDEX mailboxes_project_source ON mailboxes (project_id, source_email);
CREATE INDEX mailboxes_project_status ON mailboxes (project_id, status);

-- +goose Down
DROP INDEX mailboxes_project_status;
DROP INDEX mailboxes_project_source;
DROP INDEX mailbox_passes_mailbox;
