-- The picture quality preset of a stream's ABR rungs (transcode::video::Quality:
-- efficient, balanced or best), which admission may lower rung by rung when the
-- machine cannot afford it.
ALTER TABLE ladder_settings ADD COLUMN quality TEXT NOT NULL DEFAULT 'balanced';
