-- Featured tools for a homepage: a flag and a place in line (lower first); the catalogue
-- lists tools by position, then slug. Keep in step with ../sqlite/0011_featured_tools.sql.
ALTER TABLE tools ADD COLUMN featured BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE tools ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
