-- Featured tools for a homepage: a flag and a place in line (lower first); the catalogue
-- lists tools by position, then slug. Keep in step with ../postgres/0011_featured_tools.sql.
ALTER TABLE tools ADD COLUMN featured INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tools ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
