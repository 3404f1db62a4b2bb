-- A small preview of each image asset, made once when the asset is stored (a PNG of at most
-- 256 px a side under `thumbs/` in the private bucket), so a gallery lists thumbnails in one
-- call. Assets from before have none. Keep in step with ../postgres/0012_asset_thumbnails.sql.
ALTER TABLE assets ADD COLUMN thumbnail_key TEXT;
