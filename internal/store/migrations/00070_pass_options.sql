-- Pass options overridden for one mailbox (issue 17 item 2). The
-- project's options stay in projects.options; a row here holds only
-- what the admin changed for this mailbox, as JSON, and goes with it.

-- +goose Up
CREATE TABLE mailbox_options (
    mailbox_id TEXT PRIMARY KEY REFERENCES mailboxes (id) ON DELETE CASCADE,
    options    TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE mailbox_options;
