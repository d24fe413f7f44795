-- Portable SQL: runs unchanged on SQLite and PostgreSQL. No AUTOINCREMENT,
-- no SQLite-only types; BIGINT everywhere a UID or time is stored.

-- +goose Up
CREATE TABLE mailbox_pairs (
    pair_key    TEXT PRIMARY KEY,
    source      TEXT NOT NULL,
    destination TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    last_run_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE folder_state (
    pair_key        TEXT NOT NULL,
    src_path        TEXT NOT NULL,
    src_uidvalidity BIGINT NOT NULL,
    dst_path        TEXT NOT NULL,
    watermark       BIGINT NOT NULL,
    uidnext         BIGINT NOT NULL,
    messages        BIGINT NOT NULL,
    highest_modseq  BIGINT NOT NULL,
    copied          BIGINT NOT NULL DEFAULT 0,
    present         BIGINT NOT NULL DEFAULT 0,
    failed          BIGINT NOT NULL DEFAULT 0,
    synced_at       BIGINT NOT NULL,
    PRIMARY KEY (pair_key, src_path)
);

CREATE TABLE message_state (
    pair_key        TEXT NOT NULL,
    src_path        TEXT NOT NULL,
    src_uidvalidity BIGINT NOT NULL,
    src_uid         BIGINT NOT NULL,
    identity        TEXT NOT NULL,
    state           TEXT NOT NULL,
    dst_path        TEXT NOT NULL,
    dst_uidvalidity BIGINT NOT NULL DEFAULT 0,
    dst_uid         BIGINT NOT NULL DEFAULT 0,
    reason          TEXT NOT NULL DEFAULT '',
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (pair_key, src_path, src_uidvalidity, src_uid)
);

-- +goose Down
DROP TABLE message_state;
DROP TABLE folder_state;
DROP TABLE mailbox_pairs;
