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
    /// The database was migrated by a newer streambox, and this open may not return to
    /// the copy from before that (none is kept, or the caller does not hold the data
    /// directory: only `serve` does).
    #[error("{}", newer_text(*found, *known, *copy))]
    Newer {
        /// The newest migration applied to the database.
        found: i64,
        /// The newest this build has.
        known: i64,
        /// Whether a copy at this build's schema is kept (the service returns to it
        /// when it starts).
        copy: bool,
    },
    /// Moving database files (a rollback to the copy kept before an update).
    #[error("{what}: {source}")]
    Files {
        /// What was being done, with the paths.
        what: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

fn newer_text(found: i64, known: i64, copy: bool) -> String {
    let then = if copy {
        "start the service (it returns to the copy kept before that update)"
    } else {
        "no copy from before that update is kept: install the newer version again, or \
         restore a backup made by this one"
    };
    format!(
        "the database was made by a newer streambox (schema {found}; this version knows up \
         to {known}): {then}"
    )
}

/// The embedded migrations (`appliance/migrations`), applied in order by [`open`].
/// Forward only: an older streambox cannot read a newer schema, which is why [`open`]
/// keeps a copy before it migrates.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The folder in the data directory where [`open`] keeps the database as it was before
/// a schema change (`schema-VERSION.db`), and a newer one it stepped back from
/// (`newer-VERSION.db`).
pub const SCHEMA_COPIES: &str = "schema-copies";

/// The schema this build knows: its newest migration's version (`YYYYMMDDNNNNNN`, the
/// migration file's prefix).
pub fn schema_version() -> i64 {
    MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// The migrations applied to a database, oldest first; none for a new file.
///
/// # Errors
/// [`DbError::Query`].
pub async fn applied_migrations(db: &mut sqlx::SqliteConnection) -> Result<Vec<i64>, DbError> {
    let table: Option<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(&mut *db)
    .await?;
    if table.is_none() {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success = 1 ORDER BY version")
            .fetch_all(&mut *db)
            .await?;
    Ok(rows.into_iter().map(|(v,)| v).collect())
}

/// Copies the recordings' index (`dvr_segments`) of the database file `from` over the
/// one of `conn`'s database: the rows of `conn` go, `from`'s come, in the columns both
/// have. The recordings are files on the data partition whose index is in the database
/// (docs/dvr-crash-safety.md); a database that comes back from a backup or from before
/// an update takes the index of the recordings that are on the disk now, or the start-up
/// reconciliation would delete every recording the old index does not name.
///
/// # Errors
/// [`DbError::Query`].
pub async fn carry_recordings(
    conn: &mut sqlx::SqliteConnection,
    from: &Path,
) -> Result<u64, DbError> {
    sqlx::query("ATTACH DATABASE ? AS carried")
        .bind(from.display().to_string())
        .execute(&mut *conn)
        .await?;
    let carried = async {
        let columns = |schema: &'static str| {
            format!("SELECT name FROM pragma_table_info('dvr_segments', '{schema}')")
        };
        let ours: Vec<(String,)> = sqlx::query_as(&columns("main"))
            .fetch_all(&mut *conn)
            .await?;
        let theirs: Vec<(String,)> = sqlx::query_as(&columns("carried"))
            .fetch_all(&mut *conn)
            .await?;
        let both: Vec<String> = ours
            .into_iter()
            .filter(|c| theirs.contains(c))
            .map(|(c,)| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect();
        if both.is_empty() {
            return Ok::<u64, sqlx::Error>(0);
        }
        let list = both.join(", ");
        sqlx::query("DELETE FROM main.dvr_segments")
            .execute(&mut *conn)
            .await?;
        let done = sqlx::query(&format!(
            "INSERT INTO main.dvr_segments ({list}) SELECT {list} FROM carried.dvr_segments"
        ))
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected())
    }
    .await;
    sqlx::query("DETACH DATABASE carried")
        .execute(&mut *conn)
        .await?;
    Ok(carried?)
}

/// The database file's name in the data directory.
pub const FILE: &str = "streambox.db";

/// The options every connection to a streambox database file uses.
pub fn connect_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
}

async fn pool_of(path: &Path) -> Result<SqlitePool, DbError> {
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(connect_options(path))
        .await
        .map_err(|source| DbError::Open {
            path: path.display().to_string(),
            source,
        })
}

/// Opens (creating if needed) `streambox.db` in `data_dir` and applies migrations.
///
/// Before a migration changes the schema of a database that has one, the database as
/// it was is kept in [`SCHEMA_COPIES`] (`schema-VERSION.db`, a `VACUUM INTO` snapshot).
/// A database that a newer streambox migrated is refused ([`DbError::Newer`]); only
/// [`open_locked`] returns to the copy.
///
/// # Errors
/// [`DbError::Open`], [`DbError::Migrate`], [`DbError::Newer`], [`DbError::Files`].
pub async fn open(data_dir: &Path) -> Result<SqlitePool, DbError> {
    open_as(data_dir, false).await
}

/// [`open`] for the one process that holds the data directory's lock (`serve`, a
/// restore): a database that a newer streambox migrated (after an update that was
/// rolled back) is replaced by the copy for this build's schema, with the recordings'
/// index of the newer one ([`carry_recordings`]): what was configured since the update
/// is lost, no recording is. The newer database is kept as `newer-VERSION.db`. (Files
/// are moved, so nothing else may have the database open.)
///
/// # Errors
/// As [`open`]; [`DbError::Newer`] only when there is no copy to return to.
pub async fn open_locked(data_dir: &Path) -> Result<SqlitePool, DbError> {
    open_as(data_dir, true).await
}

async fn open_as(data_dir: &Path, may_return: bool) -> Result<SqlitePool, DbError> {
    let path = data_dir.join(FILE);
    let mut pool = pool_of(&path).await?;
    let known = schema_version();
    let mut applied = applied_migrations(&mut *pool.acquire().await?).await?;
    let ours: std::collections::HashSet<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    if let Some(found) = applied.iter().copied().filter(|v| !ours.contains(v)).max() {
        pool.close().await;
        if !may_return {
            let copy = data_dir
                .join(SCHEMA_COPIES)
                .join(format!("schema-{known}.db"))
                .exists();
            return Err(DbError::Newer { found, known, copy });
        }
        return_to_copy(data_dir, found, known).await?;
        pool = pool_of(&path).await?;
        applied = applied_migrations(&mut *pool.acquire().await?).await?;
    }
    if let Some(&at) = applied.last() {
        if at < known {
            keep_copy(&pool, data_dir, at).await?;
        }
    }
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

fn files_error(what: String) -> impl FnOnce(std::io::Error) -> DbError {
    move |source| DbError::Files { what, source }
}

/// Keeps the database in `pool` (at schema `at`) as `SCHEMA_COPIES/schema-AT.db`.
async fn keep_copy(pool: &SqlitePool, data_dir: &Path, at: i64) -> Result<(), DbError> {
    let dir = data_dir.join(SCHEMA_COPIES);
    std::fs::create_dir_all(&dir).map_err(files_error(format!("creating {}", dir.display())))?;
    let copy = dir.join(format!("schema-{at}.db"));
    let tmp = dir.join(format!("schema-{at}.db.tmp"));
    let _ = std::fs::remove_file(&tmp);
    sqlx::query("VACUUM INTO ?")
        .bind(tmp.display().to_string())
        .execute(pool)
        .await?;
    std::fs::rename(&tmp, &copy).map_err(files_error(format!("keeping {}", copy.display())))?;
    sync_dir(&dir)?;
    tracing::info!(copy = %copy.display(), "kept the database as it was before its schema changes");
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), DbError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(files_error(format!("syncing {}", dir.display())))
}

/// Moves the database files `streambox.db` and its `-wal` and `-shm` in `data_dir` to
/// `to` (and the same with their suffixes); a missing one is no error.
///
/// # Errors
/// [`DbError::Files`].
pub fn move_database(data_dir: &Path, to: &Path) -> Result<(), DbError> {
    for suffix in ["", "-wal", "-shm"] {
        let from = data_dir.join(format!("{FILE}{suffix}"));
        let dest = std::path::PathBuf::from(format!("{}{suffix}", to.display()));
        match std::fs::rename(&from, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = std::fs::remove_file(&dest);
            }
            Err(e) => {
                return Err(files_error(format!(
                    "moving {} to {}",
                    from.display(),
                    dest.display()
                ))(e))
            }
        }
    }
    sync_dir(data_dir)
}

/// Puts the copy kept before the update that migrated the database to `found` back in
/// its place, with the recordings' index of the newer one (see [`open`]).
async fn return_to_copy(data_dir: &Path, found: i64, known: i64) -> Result<(), DbError> {
    let dir = data_dir.join(SCHEMA_COPIES);
    let copy = dir.join(format!("schema-{known}.db"));
    if !copy.exists() {
        return Err(DbError::Newer {
            found,
            known,
            copy: false,
        });
    }
    let current = data_dir.join(FILE);
    let mut conn = sqlx::ConnectOptions::connect(&connect_options(&copy))
        .await
        .map_err(|source| DbError::Open {
            path: copy.display().to_string(),
            source,
        })?;
    let carried = carry_recordings(&mut conn, &current).await?;
    sqlx::Connection::close(conn).await?;
    move_database(data_dir, &dir.join(format!("newer-{found}.db")))?;
    std::fs::rename(&copy, &current).map_err(files_error(format!(
        "moving {} to {}",
        copy.display(),
        current.display()
    )))?;
    for suffix in ["-wal", "-shm"] {
        let side = std::path::PathBuf::from(format!("{}{suffix}", copy.display()));
        if side.exists() {
            std::fs::rename(&side, format!("{}{suffix}", current.display()))
                .map_err(files_error(format!("moving {}", side.display())))?;
        }
    }
    sync_dir(data_dir)?;
    tracing::warn!(
        found,
        known,
        recordings = carried,
        "the database was migrated by a newer streambox (an update that was rolled back): \
         returned to the copy kept before that update; settings changed since are lost, \
         the recordings are kept"
    );
    Ok(())
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch now (0 on a clock before 1970).
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
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

/// The appliance-wide secrets ([`secret`]), each read from the database once and then
/// kept: a secret never changes while the service runs (a restore or a factory reset
/// restarts it), so requests that check one (viewer links, CSRF cookies) need no
/// database read.
#[derive(Default)]
pub struct Secrets(std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<[u8]>>>);

impl Secrets {
    /// The secret `name`, from memory once read ([`secret`] the first time).
    ///
    /// # Errors
    /// [`DbError::Query`] the first time, when it cannot be read or made.
    pub async fn get(
        &self,
        pool: &SqlitePool,
        name: &str,
    ) -> Result<std::sync::Arc<[u8]>, DbError> {
        if let Some(s) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Ok(s.clone());
        }
        let fresh: std::sync::Arc<[u8]> = secret(pool, name).await?.into();
        Ok(self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_insert(fresh)
            .clone())
    }
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
/// visibility, viewer links, content protection and keys at once, its recordings marked for deletion (retention
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
        "stream_protection",
        "content_keys",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A database at the schema before this build's newest migration, made with the
    /// migration files themselves (all but the last).
    async fn older_database(dir: &Path) -> i64 {
        let all = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<_> = std::fs::read_dir(&all)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.pop();
        let older = dir.join("older-migrations");
        std::fs::create_dir_all(&older).unwrap();
        for f in &files {
            std::fs::copy(f, older.join(f.file_name().unwrap())).unwrap();
        }
        let migrator = sqlx::migrate::Migrator::new(older.as_path()).await.unwrap();
        let pool = pool_of(&dir.join(FILE)).await.unwrap();
        migrator.run(&pool).await.unwrap();
        let at = applied_migrations(&mut pool.acquire().await.unwrap())
            .await
            .unwrap();
        pool.close().await;
        *at.last().unwrap()
    }

    #[tokio::test]
    async fn a_schema_change_keeps_the_database_as_it_was_first() {
        let dir = tempfile::tempdir().unwrap();
        let older = older_database(dir.path()).await;
        assert!(older < schema_version());
        let pool = open(dir.path()).await.unwrap();
        let now = applied_migrations(&mut pool.acquire().await.unwrap())
            .await
            .unwrap();
        assert_eq!(now.last().copied(), Some(schema_version()));
        pool.close().await;
        let copy = dir
            .path()
            .join(SCHEMA_COPIES)
            .join(format!("schema-{older}.db"));
        let kept = pool_of(&copy).await.unwrap();
        let then = applied_migrations(&mut kept.acquire().await.unwrap())
            .await
            .unwrap();
        assert_eq!(
            then.last().copied(),
            Some(older),
            "the copy is at the old schema"
        );
        kept.close().await;
        // Opened again at the same schema: no new copy.
        std::fs::remove_file(&copy).unwrap();
        open(dir.path()).await.unwrap().close().await;
        assert!(!copy.exists());
    }
}
