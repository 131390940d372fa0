//! Authentication: administrators and their browser sessions, CSRF tokens for forms,
//! API tokens, stream keys for publishers, and viewer links.

pub mod api_tokens;
pub mod csrf;
pub mod limit;
pub mod sessions;
pub mod stream_keys;
pub mod users;
pub mod viewer;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new bearer secret: 32 random bytes as unpadded base64url (43 characters), and the
/// SHA-256 of the bytes, which is all the database keeps (sessions, API tokens).
pub(crate) fn new_token() -> (String, [u8; 32]) {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    (URL_SAFE_NO_PAD.encode(raw), Sha256::digest(raw).into())
}

/// The SHA-256 of a secret made by [`new_token`]; `None` when `token` is not 32 bytes of
/// unpadded base64url.
pub(crate) fn token_hash(token: &str) -> Option<[u8; 32]> {
    let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
    (raw.len() == 32).then(|| Sha256::digest(&raw).into())
}
