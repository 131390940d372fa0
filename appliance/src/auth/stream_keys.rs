//! Streams and their publish keys.
//!
//! A key is 32 random alphanumeric characters, shown once when created or rotated. The
//! database keeps only HMAC-SHA256(secret, key), where the secret is 32 random bytes
//! created with the database (setting `stream_key_secret`). A key alone (as OBS sends it)
//! is found by its hash; a `name?key=…` pair is checked with a constant-time comparison.

use crate::db::{unix_now, DbError};
use crate::streams::StreamUid;
use hmac::{Hmac, Mac};
use rand::distr::{Alphanumeric, SampleString};
use sha2::Sha256;
use sqlx::SqlitePool;
use subtle::ConstantTimeEq;

/// Why a stream operation or a publish was refused.
#[derive(Debug, thiserror::Error)]
pub enum StreamKeyError {
    /// The name does not fit `[a-z0-9][a-z0-9_-]{0,63}`.
    #[error("invalid stream name {0:?}: use 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit")]
    InvalidName(String),
    /// `stream add` for a name that exists.
    #[error("stream {0:?} already exists")]
    Exists(String),
    /// `stream add` for a name that a camera source uses.
    #[error("{0:?} is the name of a camera source; pick another name")]
    TakenBySource(String),
    /// No stream of that name.
    #[error("no stream named {0:?}")]
    NoSuchStream(String),
    /// The key matches no stream (unknown, or revoked by a rotation).
    #[error("unknown or revoked stream key")]
    BadKey,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for StreamKeyError {
    fn from(e: sqlx::Error) -> Self {
        StreamKeyError::Db(DbError::Query(e))
    }
}

/// A stream as listed.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct StreamRow {
    /// The stream name, used in URLs.
    pub name: String,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// Seconds since the Unix epoch of the last key rotation (or creation).
    pub key_rotated_at: i64,
}

/// Whether `name` is a valid stream name: 1–64 of `a-z 0-9 _ -`, not starting with `_`/`-`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

async fn secret(pool: &SqlitePool) -> Result<Vec<u8>, StreamKeyError> {
    Ok(crate::db::secret(pool, "stream_key_secret").await?)
}

fn hash_key(secret: &[u8], key: &str) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(key.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The realm of RTSP Digest authentication (RFC 2617 §3.2.1) for publishers.
pub const DIGEST_REALM: &str = "streambox";

/// H(A1) of RFC 2617 §3.2.2.2 for stream `name` with `key` as the password, in lowercase
/// hex.
pub fn digest_ha1(name: &str, key: &str) -> String {
    use md5::Digest;
    let h = md5::Md5::digest(format!("{name}:{DIGEST_REALM}:{key}").as_bytes());
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored Digest H(A1) of stream `name`: `None` when there is no such stream or it
/// predates Digest support (until its key is rotated).
///
/// # Errors
/// A database error.
pub async fn stored_digest_ha1(
    pool: &SqlitePool,
    name: &str,
) -> Result<Option<String>, StreamKeyError> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT digest_ha1 FROM streams WHERE name = ?")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|r| r.0))
}

fn new_key() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// Creates a stream (with a new identity) and returns its key (shown once).
///
/// # Errors
/// [`StreamKeyError::InvalidName`], [`StreamKeyError::Exists`],
/// [`StreamKeyError::TakenBySource`], or a database error.
pub async fn add(pool: &SqlitePool, name: &str) -> Result<String, StreamKeyError> {
    if !valid_name(name) {
        return Err(StreamKeyError::InvalidName(name.to_string()));
    }
    let key = new_key();
    let hash = hash_key(&secret(pool).await?, &key);
    let now = unix_now();
    let r = sqlx::query(
        "INSERT INTO streams (uid, name, key_hash, created_at, key_rotated_at, digest_ha1)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(StreamUid::new())
    .bind(name)
    .bind(hash)
    .bind(now)
    .bind(now)
    .bind(digest_ha1(name, &key))
    .execute(pool)
    .await;
    match r {
        Ok(_) => Ok(key),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StreamKeyError::Exists(name.to_string()))
        }
        // The `streams_name_free` trigger.
        Err(sqlx::Error::Database(e)) if e.message().contains("camera source") => {
            Err(StreamKeyError::TakenBySource(name.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// All streams, by name.
///
/// # Errors
/// A database error.
pub async fn list(pool: &SqlitePool) -> Result<Vec<StreamRow>, StreamKeyError> {
    Ok(
        sqlx::query_as("SELECT name, created_at, key_rotated_at FROM streams ORDER BY name")
            .fetch_all(pool)
            .await?,
    )
}

/// Whether a stream of this name exists.
///
/// # Errors
/// A database error.
pub async fn exists(pool: &SqlitePool, name: &str) -> Result<bool, StreamKeyError> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM streams WHERE name = ?")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

/// Replaces a stream's key and returns the new one; the old key is revoked at once.
///
/// # Errors
/// [`StreamKeyError::NoSuchStream`] or a database error.
pub async fn rotate(pool: &SqlitePool, name: &str) -> Result<String, StreamKeyError> {
    let key = new_key();
    let hash = hash_key(&secret(pool).await?, &key);
    let r = sqlx::query(
        "UPDATE streams SET key_hash = ?, key_rotated_at = ?, digest_ha1 = ? WHERE name = ?",
    )
    .bind(hash)
    .bind(unix_now())
    .bind(digest_ha1(name, &key))
    .bind(name)
    .execute(pool)
    .await?;
    if r.rows_affected() == 0 {
        return Err(StreamKeyError::NoSuchStream(name.to_string()));
    }
    Ok(key)
}

/// A publisher that presented a valid stream key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// The stream's identity.
    pub uid: StreamUid,
    /// Its name.
    pub name: String,
    /// The keyed hash of the key it presented: when the stream's changes (a rotation),
    /// the publisher is ended.
    pub key_hash: Vec<u8>,
}

/// Resolves what a publisher asked to publish to a stream.
///
/// `publish_name` is either the bare key (`rtmp://HOST/live/<key>`, as OBS sends it) or
/// `<name>?key=<key>` (`rtmp://HOST/live/lobby?key=<key>`).
///
/// # Errors
/// [`StreamKeyError::BadKey`] for an unknown or revoked key, or a key that belongs to
/// another stream; a database error.
pub async fn authorize_publish(
    pool: &SqlitePool,
    publish_name: &str,
) -> Result<Authorized, StreamKeyError> {
    let secret = secret(pool).await?;
    if let Some((name, query)) = publish_name.split_once('?') {
        let key = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("key="))
            .ok_or(StreamKeyError::BadKey)?;
        let row: Option<(StreamUid, Vec<u8>)> =
            sqlx::query_as("SELECT uid, key_hash FROM streams WHERE name = ?")
                .bind(name)
                .fetch_optional(pool)
                .await?;
        let given = hash_key(&secret, key);
        match row {
            Some((uid, stored)) if bool::from(stored.ct_eq(&given)) => Ok(Authorized {
                uid,
                name: name.to_string(),
                key_hash: stored,
            }),
            _ => Err(StreamKeyError::BadKey),
        }
    } else {
        // The lookup is by keyed hash: its timing says nothing about the key.
        let hash = hash_key(&secret, publish_name);
        let row: Option<(StreamUid, String)> =
            sqlx::query_as("SELECT uid, name FROM streams WHERE key_hash = ?")
                .bind(&hash)
                .fetch_optional(pool)
                .await?;
        row.map(|(uid, name)| Authorized {
            uid,
            name,
            key_hash: hash,
        })
        .ok_or(StreamKeyError::BadKey)
    }
}

/// The stream `name` as a publisher that authenticated with Digest (whose key is not
/// sent) has it: its identity and stored key hash, when its stored H(A1) is `ha1`.
///
/// # Errors
/// A database error.
pub async fn authorized_by_digest(
    pool: &SqlitePool,
    name: &str,
) -> Result<Option<(Authorized, String)>, StreamKeyError> {
    let row: Option<(StreamUid, Vec<u8>, Option<String>)> =
        sqlx::query_as("SELECT uid, key_hash, digest_ha1 FROM streams WHERE name = ?")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|(uid, key_hash, ha1)| {
        ha1.map(|ha1| {
            (
                Authorized {
                    uid,
                    name: name.to_string(),
                    key_hash,
                },
                ha1,
            )
        })
    }))
}
