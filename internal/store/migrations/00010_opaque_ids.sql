-- The connector model of issue 11: a message is addressed by an opaque
-- string ID its connector chooses, and a folder's change state is an
-- opaque cursor its connector makes and reads back. The state keeps both
-- without knowing their shape. Portable SQL (SQLite and PostgreSQL): TEXT
-- and BIGINT only, CAST(... AS TEXT) and || for the conversion.
--
-- The rows written before (IMAP only) move over in the IMAP connector's
-- formats (internal/connector/imap/ids.go), so that a delta pass after the
-- upgrade goes on where the last one stopped:
--   message IDs  "<uidvalidity>.<uid>"
--   cursors      "imap1;from=F;messages=M;modseq=H;uidnext=N;uidvalidity=V",
--                F being the old watermark + 1 (every UID below it was
--                settled), N, M and H the status saved with it.

-- +goose Up
CREATE TABLE folder_cursors (
    pair_key  TEXT NOT NULL,
    src_path  TEXT NOT NULL,
    cursor    TEXT NOT NULL,
    dst_path  TEXT NOT NULL,
    messages  BIGINT NOT NULL DEFAULT 0,
    copied    BIGINT NOT NULL DEFAULT 0,
    present   BIGINT NOT NULL DEFAULT 0,
    failed    BIGINT NOT NULL DEFAULT 0,
    synced_at BIGINT NOT NULL,
    PRIMARY KEY (pair_key, src_path)
);

INSERT INTO folder_cursors (pair_key, src_path, cursor, dst_path, messages, copied, present, failed, synced_at)
SELECT pair_key, src_path,
       'imap1;from=' || CAST(watermark + 1 AS TEXT) ||
       ';messages=' || CAST(messages AS TEXT) ||
       ';modseq=' || CAST(highest_modseq AS TEXT) ||
       ';uidnext=' || CAST(uidnext AS TEXT) ||
       ';uidvalidity=' || CAST(src_uidvalidity AS TEXT),
       dst_path, messages, copied, present, failed, synced_at
FROM folder_state;

CREATE TABLE items (
    pair_key   TEXT NOT NULL,
    src_path   TEXT NOT NULL,
    src_id     TEXT NOT NULL,
    identity   TEXT NOT NULL,
    state      TEXT NOT NULL,
    dst_path   TEXT NOT NULL,
    dst_id     TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT '',
    flags      TEXT NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (pair_key, src_path, src_id)
);

INSERT INTO items (pair_key, src_path, src_id, identity, state, dst_path, dst_id, reason, flags, updated_at)
SELECT pair_key, src_path,
       CAST(src_uidvalidity AS TEXT) || '.' || CAST(src_uid AS TEXT),
       identity, state, dst_path,
       CASE WHEN dst_uid = 0 OR dst_uidvalidity = 0 THEN ''
            ELSE CAST(dst_uidvalidity AS TEXT) || '.' || CAST(dst_uid AS TEXT) END,
       reason, flags, updated_at
FROM message_state;

-- What an interrupted or failed pass left (intent, failed) is looked up
-- per folder at the start of every pass.
CREATE INDEX items_state ON items (pair_key, src_path, state);

DROP TABLE message_state;
DROP TABLE folder_state;

-- +goose Down
-- The old tables could hold IMAP UIDs only; a downgrade starts their
-- state afresh (the next pass of the older release reconciles every
-- folder by identity, without duplicates).
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
    flags           TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (pair_key, src_path, src_uidvalidity, src_uid)
);
DROP TABLE items;
DROP TABLE folder_cursors;
