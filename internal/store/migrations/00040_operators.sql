-- Roles of the portal's users (issue 17): an operator sees every
-- project, can stop any pass and sees the load on each source host;
-- every other user ('user') sees only their own projects. Numbered
-- 00040 and up so that it never collides with the other branches'
-- migrations.

-- +goose Up
ALTER TABLE owners ADD COLUMN role TEXT NOT NULL DEFAULT 'user';

-- +goose Down
ALTER TABLE owners DROP COLUMN role;
