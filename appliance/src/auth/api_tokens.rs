//! API tokens: bearer credentials an administrator makes in the UI for scripts and
//! other machines (`Authorization: Bearer sbx_…`, RFC 6750 §2.1).
//!
//! A token is [`PREFIX`] and 32 random bytes in unpadded base64url (47 characters in
//! all; the prefix lets secret scanners spot a leaked one). It is shown once, when made;
//! the database keeps only the SHA-256 of the bytes, with its owner, a name, and when it
//! was made and last used. A token stays valid until it is revoked, or its owner is
//! deleted; a password change does not end it.
//!
//! A token has a [`Scope`]: everything its administrator can do, or reading `/metrics`
//! only (for a Prometheus scraper, which then holds no power over the appliance).

use super::users::User;
use crate::db::{unix_now, DbError};
use sqlx::SqlitePool;

/// What every token starts with.
pub const PREFIX: &str = "sbx_";
/// The most tokens one user may hold.
pub const MAX_PER_USER: i64 = 50;
/// `last_used` is written at most this often per token, in seconds.
const TOUCH_EVERY: i64 = 60;

/// A token could not be made or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The name is empty, too long, or has control characters.
    #[error("a token name is 1 to 64 characters, without control characters: {0:?}")]
    InvalidName(String),
    /// The user has a token of this name already.
    #[error("there is already a token named {0:?}")]
    Exists(String),
    /// The user holds [`MAX_PER_USER`] tokens already.
    #[error("you have {MAX_PER_USER} tokens already; revoke one first")]
    TooMany,
    /// No token of this ID belongs to the user.
    #[error("no such token")]
    NotFound,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for TokenError {
    fn from(e: sqlx::Error) -> Self {
        TokenError::Db(e.into())
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Everything its administrator can: the whole JSON API, and `/metrics`.
    #[default]
    Admin,
    /// Reading `/metrics`, nothing else.
    Metrics,
}

impl Scope {
    /// `admin` or `metrics`, as stored and as the API says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Metrics => "metrics",
        }
    }

    /// The scope named `s` (`admin`, `metrics`).
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "admin" => Some(Scope::Admin),
            "metrics" => Some(Scope::Metrics),
            _ => None,
        }
    }
}

/// One token, as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct TokenRow {
    /// Row id, to revoke it by.
    pub id: i64,
    /// The name its owner gave it.
    pub name: String,
    /// `admin` or `metrics` ([`Scope`]).
    pub scope: String,
    /// When it was made, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When it was last used (to within a minute), in seconds since the Unix epoch.
    pub last_used: Option<i64>,
}

/// The owner and the row of a token that was presented and is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bearer {
    /// Whose token it is.
    pub user: User,
    /// Its row id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
}

/// Whether `name` is a valid token name: 1–64 characters, no control characters.
pub fn valid_name(name: &str) -> bool {
    let n = name.chars().count();
    (1..=64).contains(&n) && !name.chars().any(char::is_control) && name.trim() == name
}

/// Makes a token named `name` of `scope` for `user`; returns its row and the secret,
/// which is shown this once.
///
/// # Errors
/// [`TokenError::InvalidName`], [`TokenError::Exists`], [`TokenError::TooMany`],
/// [`TokenError::Db`].
pub async fn create(
    pool: &SqlitePool,
    user: &User,
    name: &str,
    scope: Scope,
) -> Result<(TokenRow, String), TokenError> {
    if !valid_name(name) {
        return Err(TokenError::InvalidName(name.chars().take(80).collect()));
    }
    let (secret, hash) = super::new_token();
    let now = unix_now();
    let mut tx = crate::db::begin_write(pool).await?;
    let (held, same): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(name = ?), 0) FROM api_tokens WHERE user_id = ?",
    )
    .bind(name)
    .bind(user.id)
    .fetch_one(&mut *tx)
    .await?;
    if same > 0 {
        return Err(TokenError::Exists(name.to_string()));
    }
    if held >= MAX_PER_USER {
        return Err(TokenError::TooMany);
    }
    let inserted = sqlx::query(
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at, scope)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(user.id)
    .bind(name)
    .bind(&hash[..])
    .bind(now)
    .bind(scope.as_str())
    .execute(&mut *tx)
    .await;
    // Two requests making the same name at once: the loser meets UNIQUE (user_id, name).
    let id = match inserted {
        Ok(done) => done.last_insert_rowid(),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(TokenError::Exists(name.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    tx.commit().await?;
    let row = TokenRow {
        id,
        name: name.to_string(),
        scope: scope.as_str().to_string(),
        created_at: now,
        last_used: None,
    };
    Ok((row, format!("{PREFIX}{secret}")))
}

/// `user`'s tokens, oldest first.
///
/// # Errors
/// [`DbError::Query`].
pub async fn list(pool: &SqlitePool, user: &User) -> Result<Vec<TokenRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, name, scope, created_at, last_used FROM api_tokens WHERE user_id = ?
         ORDER BY id",
    )
    .bind(user.id)
    .fetch_all(pool)
    .await?)
}

/// Revokes `user`'s token `id`; returns its name.
///
/// # Errors
/// [`TokenError::NotFound`] when `user` has no token `id`; [`TokenError::Db`].
pub async fn revoke(pool: &SqlitePool, user: &User, id: i64) -> Result<String, TokenError> {
    let name: Option<(String,)> =
        sqlx::query_as("DELETE FROM api_tokens WHERE id = ? AND user_id = ? RETURNING name")
            .bind(id)
            .bind(user.id)
            .fetch_optional(pool)
            .await?;
    name.map(|n| n.0).ok_or(TokenError::NotFound)
}

/// The valid token `presented` (the whole `sbx_…` string), recording its use; `None`
/// for a malformed, unknown or revoked one.
///
/// # Errors
/// [`DbError::Query`].
pub async fn lookup(pool: &SqlitePool, presented: &str) -> Result<Option<Bearer>, DbError> {
    let Some(hash) = presented.strip_prefix(PREFIX).and_then(super::token_hash) else {
        return Ok(None);
    };
    let row: Option<(i64, String, i64, String, Option<i64>, String)> = sqlx::query_as(
        "SELECT u.id, u.name, t.id, t.name, t.last_used, t.scope
         FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?",
    )
    .bind(&hash[..])
    .fetch_optional(pool)
    .await?;
    let Some((user_id, user_name, id, name, last_used, scope)) = row else {
        return Ok(None);
    };
    let now = unix_now();
    if last_used.is_none_or(|t| now - t >= TOUCH_EVERY) {
        sqlx::query("UPDATE api_tokens SET last_used = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
    }
    Ok(Some(Bearer {
        user: User {
            id: user_id,
            name: user_name,
        },
        id,
        name,
        // The column's CHECK allows only these two.
        scope: Scope::parse(&scope).unwrap_or(Scope::Metrics),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pool() -> (tempfile::TempDir, SqlitePool, User) {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = crate::db::open(dir.path()).await.expect("open");
        let user =
            crate::auth::users::create_first(&pool, "admin", "correct horse battery staple", &[])
                .await
                .expect("user");
        (dir, pool, user)
    }

    #[tokio::test]
    async fn a_token_works_until_revoked_and_only_its_hash_is_kept() {
        let (_dir, pool, user) = pool().await;
        let (row, secret) = create(&pool, &user, "ci", Scope::Admin)
            .await
            .expect("create");
        assert!(secret.starts_with(PREFIX) && secret.len() == 47, "{secret}");
        let found = lookup(&pool, &secret)
            .await
            .expect("lookup")
            .expect("valid");
        assert_eq!((found.user, found.id), (user.clone(), row.id));
        assert_eq!(list(&pool, &user).await.expect("list")[0].name, "ci");
        assert!(list(&pool, &user).await.expect("list")[0]
            .last_used
            .is_some());
        let stored: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT token_hash FROM api_tokens")
            .fetch_all(&pool)
            .await
            .expect("select");
        assert_eq!(stored.len(), 1);
        assert!(!secret.as_bytes().windows(32).any(|w| w == &stored[0].0[..]));

        // Near misses are not tokens.
        let mut altered = secret.clone();
        altered.replace_range(10..11, if &secret[10..11] == "A" { "B" } else { "A" });
        for bad in [
            altered.as_str(),
            &secret[PREFIX.len()..],
            "sbx_",
            "",
            "Bearer x",
        ] {
            assert!(lookup(&pool, bad).await.expect("lookup").is_none(), "{bad}");
        }

        assert_eq!(revoke(&pool, &user, row.id).await.expect("revoke"), "ci");
        assert!(lookup(&pool, &secret).await.expect("lookup").is_none());
        assert!(matches!(
            revoke(&pool, &user, row.id).await,
            Err(TokenError::NotFound)
        ));
    }

    #[tokio::test]
    async fn names_are_checked_and_unique() {
        let (_dir, pool, user) = pool().await;
        for bad in ["", " ci", "a\nb", &"x".repeat(65)] {
            assert!(
                matches!(
                    create(&pool, &user, bad, Scope::Admin).await,
                    Err(TokenError::InvalidName(_))
                ),
                "{bad:?}"
            );
        }
        create(&pool, &user, "backup script", Scope::Admin)
            .await
            .expect("create");
        assert!(matches!(
            create(&pool, &user, "backup script", Scope::Metrics).await,
            Err(TokenError::Exists(_))
        ));
        assert_eq!(list(&pool, &user).await.expect("list").len(), 1);
    }
}
