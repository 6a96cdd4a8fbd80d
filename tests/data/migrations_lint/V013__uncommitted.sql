SET lock_timeout = '5s';
SET statement_timeout = '5min';
BEGIN;
CREATE TABLE tags (id smallint PRIMARY KEY, label text NOT NULL);
ALTER TABLE orders ADD COLUMN tag_id smallint REFERENCES tags (id);
