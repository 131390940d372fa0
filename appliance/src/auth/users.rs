//! Administrators: names, argon2id password hashes, and the strength rule new passwords
//! must pass.
//!
//! Hashing costs about 19 MiB and tens of milliseconds of CPU by design, so it runs on a
//! blocking thread, never on an async worker.

use crate::db::{unix_now, DbError};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use sqlx::SqlitePool;

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest password accepted, in bytes (argon2 takes any length; this bounds the work
/// one request can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// The longest user name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Why a user operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The name is empty, too long, or has characters other than letters, digits, `.`,
    /// `_` and `-`.
    #[error("user names are 1-{MAX_NAME_BYTES} letters, digits, '.', '_' or '-'")]
    InvalidName,
    /// The name is taken.
    #[error("there is already a user named {0:?}")]
    Exists(String),
    /// Setup's administrator exists already.
    #[error("the administrator has been created already")]
    AdministratorExists,
    /// The password fails the strength rule; the message says why and what helps (no
    /// final full stop).
    #[error("{0}")]
    WeakPassword(String),
    /// Unknown user or wrong password (deliberately not told apart).
    #[error("wrong user name or password")]
    BadCredentials,
    /// The stored hash does not parse (the row was edited by hand).
    #[error("the stored password of {0:?} is unreadable; reset it from the CLI")]
    BadStoredHash(String),
    /// Hashing failed or its thread was lost.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for UserError {
    fn from(e: sqlx::Error) -> Self {
        UserError::Db(DbError::Query(e))
    }
}

/// A signed-in or listed administrator.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Sign-in name.
    pub name: String,
}

/// Whether `name` is a valid user name: 1–64 of ASCII letters, digits, `.`, `_`, `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Checks a new password: at least [`MIN_PASSWORD_CHARS`] characters, at most
/// [`MAX_PASSWORD_BYTES`] bytes, and a zxcvbn score of 3 or more ("safely unguessable",
/// over 10^10 guesses), with the user name and `context` (e.g. the appliance name)
/// counted as known to an attacker.
///
/// # Errors
/// [`UserError::WeakPassword`] with zxcvbn's warning and suggestions.
pub fn check_strength(password: &str, user: &str, context: &[&str]) -> Result<(), UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::WeakPassword(format!(
            "use at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(UserError::WeakPassword(format!(
            "use at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let mut known = vec![user, "streambox"];
    known.extend_from_slice(context);
    let estimate = zxcvbn::zxcvbn(password, &known);
    if estimate.score() >= zxcvbn::Score::Three {
        return Ok(());
    }
    let mut why = String::from("this password is too easy to guess");
    if let Some(f) = estimate.feedback() {
        // zxcvbn's sentences end in full stops; the caller ends the message.
        if let Some(w) = f.warning() {
            why = format!("{why}: {}", w.to_string().trim_end_matches('.'));
        }
        let tips: Vec<String> = f.suggestions().iter().map(|s| s.to_string()).collect();
        if !tips.is_empty() {
            why = format!("{why}. {}", tips.join(" ").trim_end_matches('.'));
        }
    }
    Err(UserError::WeakPassword(why))
}

async fn hash(password: String) -> Result<String, UserError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| UserError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| UserError::Hash(e.to_string()))?
}

/// Creates the administrator (setup's first step) after checking the name and the
/// password's strength; refused once there is one.
///
/// # Errors
/// [`UserError::InvalidName`], [`UserError::WeakPassword`],
/// [`UserError::AdministratorExists`], or a hashing or database error.
pub async fn create_first(
    pool: &SqlitePool,
    name: &str,
    password: &str,
    context: &[&str],
) -> Result<User, UserError> {
    if !valid_name(name) {
        return Err(UserError::InvalidName);
    }
    check_strength(password, name, context)?;
    let phc = hash(password.to_string()).await?;
    let now = unix_now();
    // One statement, so two browsers racing through setup cannot both make one.
    let r = sqlx::query(
        "INSERT INTO users (name, password_hash, created_at, password_changed_at)
         SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM users)",
    )
    .bind(name)
    .bind(phc)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await;
    match r {
        Ok(done) if done.rows_affected() == 0 => Err(UserError::AdministratorExists),
        Ok(done) => Ok(User {
            id: done.last_insert_rowid(),
            name: name.to_string(),
        }),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(UserError::Exists(name.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// How many administrators there are.
///
/// # Errors
/// A database error.
pub async fn count(pool: &SqlitePool) -> Result<i64, DbError> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await?;
    Ok(n)
}

/// The user with row id `id`.
///
/// # Errors
/// A database error.
pub async fn by_id(pool: &SqlitePool, id: i64) -> Result<Option<User>, UserError> {
    Ok(sqlx::query_as("SELECT id, name FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// Checks `name` and `password`. An unknown name costs the same hashing work as a wrong
/// password, so timing does not tell which names exist.
///
/// # Errors
/// [`UserError::BadCredentials`], [`UserError::BadStoredHash`], or a hashing or
/// database error.
pub async fn verify(pool: &SqlitePool, name: &str, password: &str) -> Result<User, UserError> {
    if password.len() > MAX_PASSWORD_BYTES || name.len() > MAX_NAME_BYTES {
        return Err(UserError::BadCredentials);
    }
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT id, password_hash FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    let (id, stored) = match row {
        Some(r) => r,
        None => {
            // Spend the same effort on a throwaway hash.
            hash(password.to_string()).await?;
            return Err(UserError::BadCredentials);
        }
    };
    let password = password.to_string();
    let user = name.to_string();
    let ok = tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&stored).map_err(|_| UserError::BadStoredHash(user))?;
        Ok::<_, UserError>(
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
        )
    })
    .await
    .map_err(|e| UserError::Hash(e.to_string()))??;
    if !ok {
        return Err(UserError::BadCredentials);
    }
    Ok(User {
        id,
        name: name.to_string(),
    })
}

/// Replaces the password of `user` after checking `current` and the new one's strength.
///
/// # Errors
/// [`UserError::BadCredentials`] when `current` is wrong, [`UserError::WeakPassword`], or
/// a hashing or database error.
pub async fn change_password(
    pool: &SqlitePool,
    user: &User,
    current: &str,
    new: &str,
    context: &[&str],
) -> Result<(), UserError> {
    verify(pool, &user.name, current).await?;
    check_strength(new, &user.name, context)?;
    let phc = hash(new.to_string()).await?;
    sqlx::query("UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?")
        .bind(phc)
        .bind(unix_now())
        .bind(user.id)
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_rule() {
        assert!(matches!(
            check_strength("short", "admin", &[]),
            Err(UserError::WeakPassword(m)) if m.contains("at least 10")
        ));
        // Long enough but common, or built from the user name.
        for weak in ["password123", "admin-admin-admin", "streambox2026"] {
            assert!(
                matches!(
                    check_strength(weak, "admin", &[]),
                    Err(UserError::WeakPassword(_))
                ),
                "{weak} passed"
            );
        }
        check_strength("correct horse battery staple", "admin", &[]).expect("strong");
        check_strength("Tz8#kq!vR2mw", "admin", &[]).expect("strong");
    }

    #[test]
    fn names() {
        assert!(valid_name("admin"));
        assert!(valid_name("a.b_c-1"));
        for bad in ["", "a b", "é", "<script>", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
