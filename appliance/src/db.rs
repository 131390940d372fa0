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

/// Appends a row to the audit log: `actor` (a user name, or `cli`) did `action`
/// (`stream.add`, `user.sign-in`, …) to `detail` (usually a name), from `client` (a peer
/// address, or `cli`).
///
/// # Errors
/// [`DbError::Query`].
pub async fn audit(
    pool: &SqlitePool,
    actor: &str,
    action: &str,
    detail: &str,
    client: &str,
) -> Result<(), DbError> {
    sqlx::query("INSERT INTO audit_log (at, actor, action, detail, client) VALUES (?, ?, ?, ?, ?)")
        .bind(unix_now())
        .bind(actor)
        .bind(action)
        .bind(detail)
        .bind(client)
        .execute(pool)
        .await?;
    Ok(())
}

/// One row of the audit log.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AuditEntry {
    /// Seconds since the Unix epoch.
    pub at: i64,
    /// Who: a user name, or `cli`.
    pub actor: String,
    /// What, e.g. `stream.add`.
    pub action: String,
    /// To what, usually a name.
    pub detail: String,
    /// From where: a client address, or `cli`.
    pub client: String,
}

/// The newest `limit` rows of the audit log, newest first.
///
/// # Errors
/// [`DbError::Query`].
pub async fn audit_log(pool: &SqlitePool, limit: u32) -> Result<Vec<AuditEntry>, DbError> {
    Ok(sqlx::query_as(
        "SELECT at, actor, action, detail, client FROM audit_log ORDER BY id DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The appliance-wide setting `name` as text (`None` when unset or not UTF-8).
///
/// # Errors
/// [`DbError::Query`].
pub async fn setting(pool: &SqlitePool, name: &str) -> Result<Option<String>, DbError> {
    let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT value FROM settings WHERE name = ?")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    Ok(row.and_then(|(v,)| String::from_utf8(v).ok()))
}

/// The random 32-byte secret kept as setting `name`, created on first use (stream key
/// hashes, CSRF tokens and viewer links each have their own).
///
/// # Errors
/// [`DbError::Query`].
pub async fn secret(pool: &SqlitePool, name: &str) -> Result<Vec<u8>, DbError> {
    // Read first: this runs on every admin request, and a read takes no write lock.
    let known: Option<(Vec<u8>,)> = sqlx::query_as("SELECT value FROM settings WHERE name = ?")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    if let Some((value,)) = known {
        return Ok(value);
    }
    let mut fresh = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut fresh);
    // Two processes may race to create it; the first insert wins and both read it back.
    sqlx::query("INSERT OR IGNORE INTO settings (name, value) VALUES (?, ?)")
        .bind(name)
        .bind(&fresh[..])
        .execute(pool)
        .await?;
    let (value,): (Vec<u8>,) = sqlx::query_as("SELECT value FROM settings WHERE name = ?")
        .bind(name)
        .fetch_one(pool)
        .await?;
    Ok(value)
}

/// Sets the appliance-wide setting `name` to `value`.
///
/// # Errors
/// [`DbError::Query`].
pub async fn set_setting(pool: &SqlitePool, name: &str, value: &str) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(value.as_bytes())
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether `name` is a pushed stream or a camera source (the two share one namespace;
/// per-stream settings such as recording and the ABR ladder apply to both).
///
/// # Errors
/// A database error.
pub async fn stream_or_camera_exists<'e, E: sqlx::SqliteExecutor<'e>>(
    pool: E,
    name: &str,
) -> Result<bool, sqlx::Error> {
    let known: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 FROM streams WHERE name = ?1 UNION SELECT 1 FROM sources WHERE name = ?1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(known.is_some())
}

/// Why a rename was refused.
#[derive(Debug, thiserror::Error)]
pub enum RenameError {
    /// No stream or camera has the old name.
    #[error("no stream or camera named {0:?}")]
    NoSuchStream(String),
    /// The new name is taken.
    #[error("{0:?} is taken by another stream or camera")]
    Taken(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A transaction that reads, then writes what it read decides: `BEGIN IMMEDIATE`, so it
/// takes the write lock first and waits its turn (the busy timeout). A deferred one
/// would start as a reader, and SQLite refuses to turn a reader whose snapshot another
/// connection has written past into a writer (`SQLITE_BUSY` at once, whatever the
/// timeout; "database is locked"), as a recording's index write can do.
///
/// # Errors
/// The database's.
pub async fn begin_write(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// Renames stream or camera `old` to `new`. Everything else of it (settings, visibility,
/// recordings, viewer links) is keyed by its identity and follows it; its live entry,
/// opened under the old name, is closed by the registry. A renamed stream's RTSP Digest
/// secret depends on the name, so it is dropped: RTSP publishers use Basic until the key
/// is next rotated. The caller checks `new` is a valid name and that the stream is not
/// live.
///
/// # Errors
/// [`RenameError`].
pub async fn rename_stream(pool: &SqlitePool, old: &str, new: &str) -> Result<(), RenameError> {
    let mut tx = crate::db::begin_write(pool).await?;
    if stream_or_camera_exists(&mut *tx, new).await? {
        return Err(RenameError::Taken(new.to_string()));
    }
    let streams = sqlx::query("UPDATE streams SET name = ?1, digest_ha1 = NULL WHERE name = ?2")
        .bind(new)
        .bind(old)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let cameras = sqlx::query("UPDATE sources SET name = ?1 WHERE name = ?2")
        .bind(new)
        .bind(old)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if streams + cameras == 0 {
        return Err(RenameError::NoSuchStream(old.to_string()));
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes stream or camera `name` and everything that is its: its settings,
/// visibility and viewer links at once, its recordings marked for deletion (retention
/// removes the files, then their rows). One transaction. Returns its identity, or `None`
/// when there was no such stream.
///
/// # Errors
/// A database error.
pub async fn delete_stream(
    pool: &SqlitePool,
    name: &str,
) -> Result<Option<crate::streams::StreamUid>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let uid: Option<(crate::streams::StreamUid,)> =
        sqlx::query_as("DELETE FROM streams WHERE name = ?1 RETURNING uid")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
    let uid = match uid {
        Some((u,)) => Some(u),
        None => sqlx::query_as::<_, (crate::streams::StreamUid,)>(
            "DELETE FROM sources WHERE name = ?1 RETURNING uid",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .map(|(u,)| u),
    };
    let Some(uid) = uid else {
        return Ok(None);
    };
    for table in [
        "recording_settings",
        "ladder_settings",
        "stream_visibility",
        "viewer_links",
    ] {
        sqlx::query(&format!("DELETE FROM {table} WHERE stream_uid = ?"))
            .bind(&uid)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("UPDATE dvr_segments SET deleting = 1 WHERE stream_uid = ?")
        .bind(&uid)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(uid))
}

/// A connection of its own to the database in `data_dir`, for watching it
/// (`PRAGMA data_version` counts the commits of other connections).
///
/// # Errors
/// [`DbError::Open`].
pub async fn watcher(data_dir: &Path) -> Result<sqlx::SqliteConnection, DbError> {
    use sqlx::ConnectOptions;
    let path = data_dir.join("streambox.db");
    SqliteConnectOptions::new()
        .filename(&path)
        .read_only(true)
        .connect()
        .await
        .map_err(|source| DbError::Open {
            path: path.display().to_string(),
            source,
        })
}
