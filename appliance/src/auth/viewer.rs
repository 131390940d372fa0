//! Who may watch: a stream is public on the LAN or private, and a private stream plays
//! only through a signed, expiring, revocable link an administrator makes.
//!
//! A link is a row of `viewer_links` (its stream's identity, when it expires, who made
//! it). Its token is `ID.EXPIRES.SIGNATURE`: ID the row's, EXPIRES in seconds since the
//! Unix epoch, SIGNATURE = unpadded base64url(HMAC-SHA256(secret, "view:" UID ":" ID ":"
//! EXPIRES)) under the `viewer_link_secret` setting, UID the stream's identity. It rides
//! in the path (`/t/TOKEN/watch/STREAM`, `/t/TOKEN/live/STREAM/…`), so the relative URIs
//! in playlists and manifests keep it with no rewriting. It opens that one stream (under
//! whatever name it has now) while the row exists and it has not expired: revoking a
//! link deletes its row, and the players using it are refused from their next request
//! (an RTSP session through it is ended).

use crate::db::{self, DbError};
use crate::streams::StreamUid;
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
    /// Not of the form `ID.EXPIRES.SIGNATURE`.
    #[error("this link is damaged; ask for a new one")]
    Malformed,
    /// The signature is not this appliance's for this stream.
    #[error("this link is not valid for this stream; ask for a new one")]
    Forged,
    /// Past its expiry.
    #[error("this link has expired; ask for a new one")]
    Expired,
    /// Its administrator revoked it.
    #[error("this link was revoked; ask for a new one")]
    Revoked,
}

fn mac(secret: &[u8], stream: &StreamUid, id: i64, expires: i64) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(format!("view:{stream}:{id}:{expires}").as_bytes());
    mac
}

/// The token of link `id` to `stream`, expiring at `expires` (Unix seconds).
pub fn token(secret: &[u8], stream: &StreamUid, id: i64, expires: i64) -> String {
    let sig = mac(secret, stream, id, expires).finalize().into_bytes();
    format!("{id}.{expires}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Checks `token`'s signature for `stream` and its expiry at `now` (Unix seconds);
/// returns the link's id, whose row the caller must find open (see
/// [`crate::streams::Directory::link_opens`]). The signature is compared in constant
/// time.
///
/// # Errors
/// [`LinkError::Malformed`], [`LinkError::Forged`] or [`LinkError::Expired`].
pub fn check(secret: &[u8], stream: &StreamUid, token: &str, now: i64) -> Result<i64, LinkError> {
    let mut parts = token.splitn(3, '.');
    let (Some(id), Some(expires), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(LinkError::Malformed);
    };
    let id: i64 = id.parse().map_err(|_| LinkError::Malformed)?;
    let expires: i64 = expires.parse().map_err(|_| LinkError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| LinkError::Malformed)?;
    mac(secret, stream, id, expires)
        .verify_slice(&sig)
        .map_err(|_| LinkError::Forged)?;
    if now >= expires {
        return Err(LinkError::Expired);
    }
    Ok(id)
}

/// Makes stream `stream` private or public.
///
/// # Errors
/// [`DbError::Query`].
pub async fn set_private(
    pool: &SqlitePool,
    stream: &StreamUid,
    private: bool,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO stream_visibility (stream_uid, private) VALUES (?1, ?2)
         ON CONFLICT (stream_uid) DO UPDATE SET private = excluded.private",
    )
    .bind(stream)
    .bind(private)
    .execute(pool)
    .await?;
    Ok(())
}

/// An open link, as listed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Link {
    /// Its id (what revoking names).
    pub id: i64,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// Seconds since the Unix epoch.
    pub expires_at: i64,
    /// Who made it, as the audit log names them.
    pub created_by: String,
}

/// A new link to `stream`, valid for `secs` seconds from now (1 to [`MAX_LINK_SECS`]),
/// made by `actor`: its id, token and expiry (Unix seconds).
///
/// # Errors
/// [`DbError::Query`].
pub async fn new_link(
    pool: &SqlitePool,
    stream: &StreamUid,
    secs: i64,
    actor: &str,
) -> Result<(i64, String, i64), DbError> {
    let secret = db::secret(pool, SECRET).await?;
    let now = db::unix_now();
    let expires = now + secs.clamp(1, MAX_LINK_SECS);
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO viewer_links (stream_uid, created_at, expires_at, created_by)
         VALUES (?, ?, ?, ?) RETURNING id",
    )
    .bind(stream)
    .bind(now)
    .bind(expires)
    .bind(actor)
    .fetch_one(pool)
    .await?;
    Ok((id, token(&secret, stream, id, expires), expires))
}

/// The open links to `stream`, newest first.
///
/// # Errors
/// [`DbError::Query`].
pub async fn links(pool: &SqlitePool, stream: &StreamUid) -> Result<Vec<Link>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, created_at, expires_at, created_by FROM viewer_links
         WHERE stream_uid = ? AND expires_at > ? ORDER BY id DESC",
    )
    .bind(stream)
    .bind(db::unix_now())
    .fetch_all(pool)
    .await?)
}

/// Revokes link `id` of `stream`; whether there was one.
///
/// # Errors
/// [`DbError::Query`].
pub async fn revoke(pool: &SqlitePool, stream: &StreamUid, id: i64) -> Result<bool, DbError> {
    let r = sqlx::query("DELETE FROM viewer_links WHERE id = ? AND stream_uid = ?")
        .bind(id)
        .bind(stream)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Deletes the rows of links that have expired; how many.
///
/// # Errors
/// [`DbError::Query`].
pub async fn sweep(pool: &SqlitePool) -> Result<u64, DbError> {
    let r = sqlx::query("DELETE FROM viewer_links WHERE expires_at <= ?")
        .bind(db::unix_now())
        .execute(pool)
        .await?;
    Ok(r.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let secret = b"appliance secret";
        let (lobby, chapel) = (StreamUid::new(), StreamUid::new());
        let t = token(secret, &lobby, 7, 2_000);
        assert_eq!(check(secret, &lobby, &t, 1_999), Ok(7));
        assert_eq!(check(secret, &lobby, &t, 2_000), Err(LinkError::Expired));
        assert_eq!(check(secret, &chapel, &t, 1_000), Err(LinkError::Forged));
        assert_eq!(check(b"other", &lobby, &t, 1_000), Err(LinkError::Forged));
        // A later expiry, or another link's id, with the old signature.
        let sig = t.rsplit('.').next().expect("signature");
        for forged in [format!("7.9999.{sig}"), format!("8.2000.{sig}")] {
            assert_eq!(
                check(secret, &lobby, &forged, 1_000),
                Err(LinkError::Forged)
            );
        }
        for bad in ["", "x", "1.%%", "abc.def", "1", "1.2", "1.2.%%", "x.2.AAAA"] {
            assert_eq!(
                check(secret, &lobby, bad, 0),
                Err(LinkError::Malformed),
                "{bad}"
            );
        }
    }
}
