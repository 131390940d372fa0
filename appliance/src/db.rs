//! The SQLite database: pool, embedded migrations, typed queries.
//!
//! WAL mode and a busy timeout let the CLI and the running server use the same file at
//! once. Queries are checked at run time, so the crate builds with no `DATABASE_URL`.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::Path;
use std::time::Duration;

/// A database failure, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Opening or migrating the database file failed.
    #[error("opening database {path}: {source}")]
    Open {
        /// The database file.
        path: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed.
    #[error("migrating database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// Opens (creating if needed) `streambox.db` in `data_dir` and applies migrations.
///
/// # Errors
/// [`DbError::Open`] or [`DbError::Migrate`].
pub async fn open(data_dir: &Path) -> Result<SqlitePool, DbError> {
    let path = data_dir.join("streambox.db");
    let opts = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .map_err(|source| DbError::Open {
            path: path.display().to_string(),
            source,
        })?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Appends a row to the audit log.
///
/// # Errors
/// [`DbError::Query`].
pub async fn audit(
    pool: &SqlitePool,
    actor: &str,
    action: &str,
    detail: &str,
) -> Result<(), DbError> {
    sqlx::query("INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)")
        .bind(unix_now())
        .bind(actor)
        .bind(action)
        .bind(detail)
        .execute(pool)
        .await?;
    Ok(())
}

/// Whether `name` is a pushed stream or a camera source (the two share one namespace;
/// per-stream settings such as recording and the ABR ladder apply to both).
///
/// # Errors
/// A database error.
pub async fn stream_or_camera_exists(pool: &SqlitePool, name: &str) -> Result<bool, sqlx::Error> {
    let known: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 FROM streams WHERE name = ?1 UNION SELECT 1 FROM sources WHERE name = ?1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(known.is_some())
}
