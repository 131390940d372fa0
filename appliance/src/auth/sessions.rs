//! Browser sessions of signed-in administrators.
//!
//! A session is 32 random bytes, sent as a cookie in unpadded base64url (43
//! characters). The database keeps only their SHA-256, with the user, the client address
//! and when the session was last used. A session ends when its user signs out, after
//! [`IDLE_TIMEOUT`] without a request, or [`MAX_AGE`] after sign-in, whichever is first.

use super::users::User;
use crate::db::{unix_now, DbError};
use sqlx::SqlitePool;
use std::time::Duration;

/// A session unused for this long has ended.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// A session this old has ended, however busy.
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// `last_seen` is written at most this often per session.
const TOUCH_EVERY: i64 = 60;
/// The longest User-Agent kept, in bytes.
const MAX_USER_AGENT: usize = 256;

/// What a session cookie led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A live session of this user.
    Valid(User),
    /// The session existed but timed out (it is now deleted).
    Expired,
    /// No such session: never issued, signed out, or malformed.
    Unknown,
}

use super::token_hash;

/// Starts a session for `user` signed in from `client` and returns the cookie value.
///
/// # Errors
/// [`DbError::Query`].
pub async fn create(
    pool: &SqlitePool,
    user: &User,
    client: &str,
    user_agent: &str,
) -> Result<String, DbError> {
    let (token, hash) = super::new_token();
    let ua: String = user_agent
        .chars()
        .scan(0, |n, c| {
            *n += c.len_utf8();
            (*n <= MAX_USER_AGENT).then_some(c)
        })
        .collect();
    let now = unix_now();
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, created_at, last_seen, client, user_agent)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&hash[..])
    .bind(user.id)
    .bind(now)
    .bind(now)
    .bind(client)
    .bind(ua)
    .execute(pool)
    .await?;
    Ok(token)
}

/// Finds the session of cookie value `token`, ending it if it timed out, and records
/// the use.
///
/// # Errors
/// [`DbError::Query`].
pub async fn lookup(pool: &SqlitePool, token: &str) -> Result<Lookup, DbError> {
    let Some(hash) = token_hash(token) else {
        return Ok(Lookup::Unknown);
    };
    let row: Option<(i64, String, i64, i64)> = sqlx::query_as(
        "SELECT u.id, u.name, s.created_at, s.last_seen
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?",
    )
    .bind(&hash[..])
    .fetch_optional(pool)
    .await?;
    let Some((id, name, created_at, last_seen)) = row else {
        return Ok(Lookup::Unknown);
    };
    let now = unix_now();
    if now - last_seen >= IDLE_TIMEOUT.as_secs() as i64
        || now - created_at >= MAX_AGE.as_secs() as i64
    {
        end(pool, token).await?;
        return Ok(Lookup::Expired);
    }
    if now - last_seen >= TOUCH_EVERY {
        sqlx::query("UPDATE sessions SET last_seen = ? WHERE token_hash = ?")
            .bind(now)
            .bind(&hash[..])
            .execute(pool)
            .await?;
    }
    Ok(Lookup::Valid(User { id, name }))
}

/// Ends the session of cookie value `token` (sign-out). Unknown tokens are ignored.
///
/// # Errors
/// [`DbError::Query`].
pub async fn end(pool: &SqlitePool, token: &str) -> Result<(), DbError> {
    if let Some(hash) = token_hash(token) {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(&hash[..])
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Ends every session of `user` but the one of cookie value `keep` (after a password
/// change, other browsers must sign in again).
///
/// # Errors
/// [`DbError::Query`].
pub async fn end_others(pool: &SqlitePool, user: &User, keep: &str) -> Result<u64, DbError> {
    let keep = token_hash(keep).unwrap_or_default();
    let done = sqlx::query("DELETE FROM sessions WHERE user_id = ? AND token_hash != ?")
        .bind(user.id)
        .bind(&keep[..])
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes sessions that have timed out; returns how many.
///
/// # Errors
/// [`DbError::Query`].
pub async fn sweep(pool: &SqlitePool) -> Result<u64, DbError> {
    let now = unix_now();
    let done = sqlx::query("DELETE FROM sessions WHERE last_seen <= ? OR created_at <= ?")
        .bind(now - IDLE_TIMEOUT.as_secs() as i64)
        .bind(now - MAX_AGE.as_secs() as i64)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
