-- The folder plan of a mailbox pair: where each source folder goes, decided
-- once and followed by every later pass, so that a folder never changes
-- its destination between passes (issue 10). Portable SQL (SQLite and
-- PostgreSQL): TEXT and BIGINT only, no AUTOINCREMENT.
--
-- dst_path and mapped are JSON arrays of path segments, because a segment
-- may itself contain '/'. mapped is what the --map rules gave the folder
-- when the plan was decided ('' when no rule matched), so that a later
-- pass can tell whether a changed rule concerns this folder.
--
-- failed_items.messages: a failure may stand for several messages of one
-- folder (a folder that could not be listed has no UIDs to report).

-- +goose Up
CREATE TABLE folder_plans (
    pair_key   TEXT NOT NULL,
    src_path   TEXT NOT NULL,
    dst_path   TEXT NOT NULL,
    dst_role   TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT '',
    mapped     TEXT NOT NULL DEFAULT '',
    decided_at BIGINT NOT NULL,
    PRIMARY KEY (pair_key, src_path)
);

ALTER TABLE failed_items ADD COLUMN messages BIGINT NOT NULL DEFAULT 1;

-- +goose Down
ALTER TABLE failed_items DROP COLUMN messages;
DROP TABLE folder_plans;
