-- A capture source's sound: the ALSA capture PCM it records with its pictures, by the
-- name the hardware inventory lists (`hw:CARD=ID,DEV=N`: the card's ID follows the
-- card to any USB port, its index does not); empty for pictures alone.
ALTER TABLE sources ADD COLUMN audio TEXT NOT NULL DEFAULT '';
