-- RTSP publishers may authenticate with HTTP Digest (RFC 2617), user name = stream name,
-- password = stream key. Digest needs H(A1) = MD5(name ":" realm ":" key), so it is kept
-- beside the keyed hash; a key is 190 random bits, so this does not reveal it. Streams
-- created before this column get it at their next key rotation (Basic works meanwhile).
ALTER TABLE streams ADD COLUMN digest_ha1 TEXT;
