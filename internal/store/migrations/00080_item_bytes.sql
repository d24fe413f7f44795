-- How a copy's bytes were stored (issue 15): 'exact' when the
-- destination kept the source's bytes, 'rebuilt' when it rebuilt the
-- message from its content (Graph's JSON path, EWS), '' when not known
-- (entries written before, or a copy found after a dropped connection).
-- Verify compares the bytes of 'exact' copies and counts 'rebuilt' ones
-- as content-equivalent.

-- +goose Up
ALTER TABLE items ADD COLUMN copy_bytes TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE items DROP COLUMN copy_bytes;
