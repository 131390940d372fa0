//! Who may watch: a stream is public on the LAN or private, and a private stream plays
//! only through a signed, expiring link an administrator makes.
//!
//! A link token is `EXPIRES.SIGNATURE`: EXPIRES in seconds since the Unix epoch, and
//! SIGNATURE = unpadded base64url(HMAC-SHA256(secret, "view:" stream ":" EXPIRES)) under
//! the `viewer_link_secret` setting. It rides in the path (`/t/TOKEN/watch/STREAM`,
//! `/t/TOKEN/live/STREAM/…`), so the relative URIs in playlists and manifests keep it
//! with no rewriting. It grants one stream until it expires; rotating the secret is the
//! way to revoke every link at once (not offered yet).

use crate::db::{self, DbError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::SqlitePool;

/// The setting holding the link secret.
pub const SECRET: &str = "viewer_link_secret";
/// The longest a link may be valid for, in seconds (30 days).
pub const MAX_LINK_SECS: i64 = 30 * 86_400;

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not of the form `EXPIRES.SIGNATURE`.
    #[error("this link is damaged; ask for a new one")]
    Malformed,
    /// The signature is not this appliance's for this stream.
    #[error("this link is not valid for this stream; ask for a new one")]
    Forged,
    /// Past its expiry.
    #[error("this link has expired; ask for a new one")]
    Expired,
}

fn signature(secret: &[u8], stream: &str, expires: i64) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(format!("view:{stream}:{expires}").as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The token of a link to `stream` that expires at `expires` (Unix seconds).
pub fn token(secret: &[u8], stream: &str, expires: i64) -> String {
    format!(
        "{expires}.{}",
        URL_SAFE_NO_PAD.encode(signature(secret, stream, expires))
    )
}

/// Checks `token` for `stream` at `now` (Unix seconds); returns its expiry. The
/// signature is compared in constant time.
///
/// # Errors
/// [`LinkError`].
pub fn check(secret: &[u8], stream: &str, token: &str, now: i64) -> Result<i64, LinkError> {
    let (expires, sig) = token.split_once('.').ok_or(LinkError::Malformed)?;
    let expires: i64 = expires.parse().map_err(|_| LinkError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| LinkError::Malformed)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(format!("view:{stream}:{expires}").as_bytes());
    mac.verify_slice(&sig).map_err(|_| LinkError::Forged)?;
    if now >= expires {
        return Err(LinkError::Expired);
    }
    Ok(expires)
}

/// Whether `stream` is private.
///
/// # Errors
/// [`DbError::Query`].
pub async fn is_private(pool: &SqlitePool, stream: &str) -> Result<bool, DbError> {
    let row: Option<(bool,)> =
        sqlx::query_as("SELECT private FROM stream_visibility WHERE stream = ?")
            .bind(stream)
            .fetch_optional(pool)
            .await?;
    Ok(row.is_some_and(|r| r.0))
}

/// The private streams, by name.
///
/// # Errors
/// [`DbError::Query`].
pub async fn private_streams(pool: &SqlitePool) -> Result<Vec<String>, DbError> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT stream FROM stream_visibility WHERE private = 1 ORDER BY stream")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Makes `stream` private or public.
///
/// # Errors
/// [`DbError::Query`].
pub async fn set_private(pool: &SqlitePool, stream: &str, private: bool) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO stream_visibility (stream, private) VALUES (?1, ?2)
         ON CONFLICT (stream) DO UPDATE SET private = excluded.private",
    )
    .bind(stream)
    .bind(private)
    .execute(pool)
    .await?;
    Ok(())
}

/// A new link token for `stream`, valid for `secs` seconds from now (at most
/// [`MAX_LINK_SECS`]).
///
/// # Errors
/// [`DbError::Query`].
pub async fn new_link(
    pool: &SqlitePool,
    stream: &str,
    secs: i64,
) -> Result<(String, i64), DbError> {
    let secret = db::secret(pool, SECRET).await?;
    let expires = db::unix_now() + secs.clamp(1, MAX_LINK_SECS);
    Ok((token(&secret, stream, expires), expires))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let secret = b"appliance secret";
        let t = token(secret, "lobby", 2_000);
        assert_eq!(check(secret, "lobby", &t, 1_999), Ok(2_000));
        assert_eq!(check(secret, "lobby", &t, 2_000), Err(LinkError::Expired));
        assert_eq!(check(secret, "chapel", &t, 1_000), Err(LinkError::Forged));
        assert_eq!(check(b"other", "lobby", &t, 1_000), Err(LinkError::Forged));
        // A later expiry with the old signature.
        let (_, sig) = t.split_once('.').expect("dot");
        assert_eq!(
            check(secret, "lobby", &format!("9999.{sig}"), 1_000),
            Err(LinkError::Forged)
        );
        for bad in ["", "x", "1.%%", "abc.def", "1"] {
            assert_eq!(
                check(secret, "lobby", bad, 0),
                Err(LinkError::Malformed),
                "{bad}"
            );
        }
    }
}
