//! Configuration backups: the box's configuration in one archive that can be carried
//! to a freshly flashed box (or back to this one) and restored.
//!
//! The archive is a tar file (POSIX ustar) compressed with zstd (RFC 8878, with its
//! content checksum), named `streambox-NAME-YYYYMMDD-HHMMSS.tar.zst`. Its members:
//!
//! | member | what |
//! | --- | --- |
//! | `manifest.json` | [`Manifest`]: format, streambox version, schema, and each other member's size and SHA-256 |
//! | `streambox.db` | the database, a `VACUUM INTO` snapshot taken while the service runs: users (password hashes), streams (key hashes), cameras, recording and ABR settings, viewer links, API tokens (hashes), the VPN's settings and peers' public keys, appliance settings, the audit log |
//! | `tls/cert.pem`, `tls/key.pem` | the HTTPS certificate and its private key, so browsers that trust the box go on trusting it |
//!
//! Left out: the recordings and their index (`dvr_segments`: the recordings stay on the
//! disk they are on, and a restore keeps the index of the ones there), sign-in sessions
//! (everyone signs in again), a network change on trial, and what only root may read on
//! the appliance (the VPN's private key, the interfaces' netplan files).
//!
//! Restoring is two steps. [`stage`] checks an archive completely (sizes, checksums,
//! versions, the database's integrity and schema) and writes what it holds to
//! `DATA_DIR/restore/`; nothing in use changes, and a refused archive leaves nothing
//! behind. [`apply_staged`] puts it in place when the service starts, before the
//! database is opened, with the data directory locked: the database moves to
//! `DATA_DIR/before-restore/` (kept until the next restore), the staged one takes its
//! place with the recordings' index of the one it replaces
//! ([`crate::db::carry_recordings`]), and the TLS files are replaced. Every step can be
//! repeated after a power cut until `restore/` is gone.
//!
//! The checksums find damage (a truncated download, a flipped bit, an edited member
//! whose checksum was not recomputed). They do not prove who made the archive: it holds
//! the TLS private key and the password hashes, and is to be kept as safely as a
//! password.

use crate::db::{self, DbError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The archive format this build writes and reads.
pub const FORMAT: u32 = 1;
/// The largest archive [`stage`] reads, compressed, in bytes (the HTTP upload limit).
pub const MAX_ARCHIVE_BYTES: usize = 64 * 1024 * 1024;
/// The most the members of an archive may hold, uncompressed, in bytes: more is refused
/// rather than unpacked (a small archive can expand to fill the disk).
pub const MAX_UNPACKED_BYTES: u64 = 1024 * 1024 * 1024;
/// The largest TLS file, in bytes.
const MAX_PEM_BYTES: u64 = 64 * 1024;
/// The folder in the data directory a restore is staged in.
pub const STAGED: &str = "restore";
/// The folder in the data directory the database a restore replaced is kept in.
pub const REPLACED: &str = "before-restore";

const MANIFEST: &str = "manifest.json";
const DATABASE: &str = "streambox.db";
const CERT: &str = "tls/cert.pem";
const KEY: &str = "tls/key.pem";
/// Written last when a restore is staged: without it, `restore/` is a stage that did
/// not finish, and is removed.
const READY: &str = "ready";

/// What an archive says of itself (`manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// The archive format ([`FORMAT`] for this build).
    pub format: u32,
    /// The streambox version that made it.
    pub version: String,
    /// The database's schema: its newest migration (`YYYYMMDDNNNNNN`).
    pub schema: i64,
    /// When it was made, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// The appliance's name then.
    pub appliance: String,
    /// Every other member, in the archive's order.
    pub files: Vec<Member>,
}

/// One member of the archive, as the manifest lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Member {
    /// Its path in the archive.
    pub name: String,
    /// Bytes.
    pub bytes: u64,
    /// SHA-256 of its bytes (FIPS 180-4), lowercase hex.
    pub sha256: String,
}

/// What a staged restore brings, for the page and the API to show before the restart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// The appliance's name in the backup.
    pub appliance: String,
    /// The streambox version that made it.
    pub version: String,
    /// When it was made, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Users, pushed streams, and cameras (capture devices included) in it.
    pub users: i64,
    /// Pushed streams.
    pub streams: i64,
    /// Cameras and capture devices.
    pub cameras: i64,
    /// Whether it carries an HTTPS certificate (the box's fingerprint changes to it).
    pub certificate: bool,
    /// Who restored it (a user name, `setup`, or `cli`), and from where (a client
    /// address, or `cli`): the restored database's audit log says so once it is in
    /// place.
    pub by: String,
    /// From where.
    pub client: String,
}

/// Why a backup could not be made or restored. Every refusal of an archive leaves the
/// box as it was.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Not a streambox backup at all (not zstd, not tar, no manifest).
    #[error("not a streambox backup: {0}")]
    NotBackup(String),
    /// The archive is damaged or was altered: a member's size or checksum is not what
    /// the manifest says, one is missing or unexpected, or it is cut short.
    #[error("the backup is damaged or was altered: {0}")]
    Damaged(String),
    /// Made by a newer streambox than this one.
    #[error(
        "the backup was made by a newer streambox ({version}, schema {schema}); this box runs \
         {ours} (schema {our_schema}): update this box first"
    )]
    Newer {
        /// The version that made it.
        version: String,
        /// Its schema.
        schema: i64,
        /// This build's version.
        ours: &'static str,
        /// This build's schema.
        our_schema: i64,
    },
    /// Larger than [`MAX_ARCHIVE_BYTES`] or [`MAX_UNPACKED_BYTES`].
    #[error("the backup is too large: {0}")]
    TooLarge(String),
    /// The database in the archive is not a sound streambox database.
    #[error("the backup's database cannot be used: {0}")]
    Database(String),
    /// A file could not be read or written (a full disk, say); `what` names it.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The running database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The archive's file name for a backup of `appliance` made at `created_ms`:
/// `streambox-NAME-YYYYMMDD-HHMMSS.tar.zst`, NAME reduced to letters, digits and `-`.
pub fn file_name(appliance: &str, created_ms: i64) -> String {
    let name: String = appliance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let at = time::OffsetDateTime::from_unix_timestamp(created_ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let stamp = at
        .format(time::macros::format_description!(
            "[year][month][day]-[hour][minute][second]"
        ))
        .unwrap_or_default();
    if name.is_empty() {
        format!("streambox-{stamp}.tar.zst")
    } else {
        format!("streambox-{name}-{stamp}.tar.zst")
    }
}

/// Makes a backup of the running box: the database in `pool` (whose file is in
/// `data_dir`) as a consistent snapshot, and the TLS files in `tls_dir` when there are
/// some. Returns the archive's file name ([`file_name`]) and bytes.
///
/// # Errors
/// [`BackupError::Db`] when the snapshot fails, [`BackupError::Io`] when the data
/// directory has no room for it or a TLS file cannot be read.
pub async fn create(
    pool: &sqlx::SqlitePool,
    data_dir: &Path,
    tls_dir: &Path,
) -> Result<(String, Vec<u8>), BackupError> {
    let snapshot = tempfile::Builder::new()
        .prefix(".backup-")
        .suffix(".db")
        .tempfile_in(data_dir)
        .map_err(io(format!("a temporary file in {}", data_dir.display())))?
        .into_temp_path();
    // VACUUM INTO wants a file that is not there.
    std::fs::remove_file(&snapshot).map_err(io("preparing the snapshot"))?;
    sqlx::query("VACUUM INTO ?")
        .bind(snapshot.display().to_string())
        .execute(pool)
        .await
        .map_err(DbError::from)?;
    let mut conn = SqliteConnectOptions::new()
        .filename(&snapshot)
        .connect()
        .await
        .map_err(DbError::from)?;
    // What is not configuration: the recordings' index (the files are not in the
    // backup), sessions, a network change on trial.
    for table in ["dvr_segments", "sessions", "network_trial"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut conn)
            .await
            .map_err(DbError::from)?;
    }
    sqlx::query("VACUUM")
        .execute(&mut conn)
        .await
        .map_err(DbError::from)?;
    let appliance = db_setting(&mut conn, "appliance.name")
        .await?
        .unwrap_or_else(|| "streambox".into());
    let schema = db::applied_migrations(&mut conn)
        .await?
        .last()
        .copied()
        .unwrap_or(0);
    conn.close().await.map_err(DbError::from)?;
    let database = std::fs::read(&snapshot).map_err(io("reading the snapshot"))?;
    drop(snapshot);
    let mut members = vec![(DATABASE, database)];
    for (member, file) in [(CERT, crate::tls::CERT_FILE), (KEY, crate::tls::KEY_FILE)] {
        let path = tls_dir.join(file);
        match std::fs::read(&path) {
            Ok(bytes) => members.push((member, bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        }
    }
    let created_ms = crate::manage::now_ms();
    let manifest = Manifest {
        format: FORMAT,
        version: env!("CARGO_PKG_VERSION").into(),
        schema,
        created_ms,
        appliance: appliance.clone(),
        files: members
            .iter()
            .map(|(name, bytes)| Member {
                name: (*name).into(),
                bytes: bytes.len() as u64,
                sha256: hex_sha256(bytes),
            })
            .collect(),
    };
    let archive = tokio::task::spawn_blocking(move || pack(&manifest, &members))
        .await
        .map_err(|e| io("packing the backup")(std::io::Error::other(e)))??;
    Ok((file_name(&appliance, created_ms), archive))
}

async fn db_setting(conn: &mut SqliteConnection, name: &str) -> Result<Option<String>, DbError> {
    let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT value FROM settings WHERE name = ?")
        .bind(name)
        .fetch_optional(conn)
        .await?;
    Ok(row.and_then(|(v,)| String::from_utf8(v).ok()))
}

/// The tar archive of the manifest and `members`, zstd-compressed (level 10, content
/// checksum on).
fn pack(manifest: &Manifest, members: &[(&str, Vec<u8>)]) -> Result<Vec<u8>, BackupError> {
    let json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| io("writing the manifest")(std::io::Error::other(e)))?;
    let mut encoder = zstd::Encoder::new(Vec::new(), 10).map_err(io("compressing"))?;
    encoder.include_checksum(true).map_err(io("compressing"))?;
    let mut tar = tar::Builder::new(encoder);
    let mtime = (manifest.created_ms / 1000).max(0) as u64;
    for (name, bytes) in std::iter::once((MANIFEST, json.as_slice()))
        .chain(members.iter().map(|(n, b)| (*n, b.as_slice())))
    {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, bytes)
            .map_err(io(format!("packing {name}")))?;
    }
    let encoder = tar.into_inner().map_err(io("packing the backup"))?;
    encoder.finish().map_err(io("compressing"))
}

/// An archive's contents, checked against its manifest.
#[derive(Debug)]
pub struct Unpacked {
    /// Its manifest.
    pub manifest: Manifest,
    /// The database file's bytes.
    pub database: Vec<u8>,
    /// The HTTPS certificate and key (PEM), when it has them.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
}

/// Reads and checks an archive: zstd and tar framing, sizes within the limits, exactly
/// the members the manifest lists with their sizes and SHA-256, a format and schema this
/// build knows. Nothing is written.
///
/// # Errors
/// [`BackupError::NotBackup`], [`BackupError::Damaged`], [`BackupError::TooLarge`],
/// [`BackupError::Newer`].
pub fn unpack(archive: &[u8]) -> Result<Unpacked, BackupError> {
    if archive.len() > MAX_ARCHIVE_BYTES {
        return Err(BackupError::TooLarge(format!(
            "{} bytes, more than {MAX_ARCHIVE_BYTES}",
            archive.len()
        )));
    }
    if !archive.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(BackupError::NotBackup(
            "not a zstd-compressed file (a .tar.zst made by \"Back up configuration\")".into(),
        ));
    }
    let decoder =
        zstd::Decoder::new(archive).map_err(|e| BackupError::NotBackup(format!("zstd: {e}")))?;
    // One more byte than allowed is read, to tell "too large" from "just fits".
    let mut limited = decoder.take(MAX_UNPACKED_BYTES + 1);
    let mut tar = tar::Archive::new(&mut limited);
    let damaged = |e: std::io::Error| BackupError::Damaged(format!("cut short or corrupt ({e})"));
    let mut manifest: Option<Manifest> = None;
    let mut found: Vec<(String, Vec<u8>)> = Vec::new();
    let mut total = 0u64;
    for entry in tar.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let name = entry
            .path()
            .map_err(damaged)?
            .to_string_lossy()
            .into_owned();
        let size = entry.header().size().map_err(damaged)?;
        total = total.saturating_add(size);
        if total > MAX_UNPACKED_BYTES {
            return Err(BackupError::TooLarge(format!(
                "its members hold more than {MAX_UNPACKED_BYTES} bytes"
            )));
        }
        if !entry.header().entry_type().is_file() {
            return Err(BackupError::Damaged(format!(
                "{name:?} is not a plain file"
            )));
        }
        if manifest.is_none() {
            if name != MANIFEST {
                return Err(BackupError::NotBackup(format!(
                    "its first member is {name:?}, not {MANIFEST}"
                )));
            }
            if size > MAX_PEM_BYTES {
                return Err(BackupError::NotBackup("its manifest is too large".into()));
            }
            let mut json = Vec::new();
            entry.read_to_end(&mut json).map_err(damaged)?;
            let m: Manifest = serde_json::from_slice(&json).map_err(|e| {
                // A later format may add fields; it says so in `format` first.
                match serde_json::from_slice::<serde_json::Value>(&json)
                    .ok()
                    .and_then(|v| v.get("format").and_then(|f| f.as_u64()))
                {
                    Some(f) if f > u64::from(FORMAT) => BackupError::NotBackup(format!(
                        "it is in format {f}, made by a newer streambox; this one reads format {FORMAT}"
                    )),
                    _ => BackupError::NotBackup(format!("its manifest is not readable ({e})")),
                }
            })?;
            check_versions(&m)?;
            manifest = Some(m);
            continue;
        }
        let Some(listed) = manifest
            .as_ref()
            .and_then(|m| m.files.iter().find(|f| f.name == name))
        else {
            return Err(BackupError::Damaged(format!(
                "{name:?} is not in its manifest"
            )));
        };
        if found.iter().any(|(n, _)| *n == name) {
            return Err(BackupError::Damaged(format!("{name:?} is in it twice")));
        }
        if size != listed.bytes {
            return Err(BackupError::Damaged(format!(
                "{name} holds {size} bytes, its manifest says {}",
                listed.bytes
            )));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        entry.read_to_end(&mut bytes).map_err(damaged)?;
        if bytes.len() as u64 != size {
            return Err(BackupError::Damaged(format!("{name} is cut short")));
        }
        if hex_sha256(&bytes) != listed.sha256 {
            return Err(BackupError::Damaged(format!(
                "{name}'s SHA-256 is not the one its manifest gives"
            )));
        }
        found.push((name, bytes));
    }
    // The zstd frame's own checksum is verified once its end is read.
    std::io::copy(&mut limited, &mut std::io::sink()).map_err(damaged)?;
    let manifest = manifest.ok_or_else(|| BackupError::NotBackup("it is empty".into()))?;
    for listed in &manifest.files {
        if !found.iter().any(|(n, _)| *n == listed.name) {
            return Err(BackupError::Damaged(format!(
                "{} is missing (cut short?)",
                listed.name
            )));
        }
    }
    let mut take = |name: &str| {
        found
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| found.swap_remove(i).1)
    };
    let database =
        take(DATABASE).ok_or_else(|| BackupError::Damaged(format!("it has no {DATABASE}")))?;
    let tls = match (take(CERT), take(KEY)) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            return Err(BackupError::Damaged(
                "it has a TLS certificate without its key, or a key without its certificate".into(),
            ))
        }
    };
    if let Some((name, _)) = found.first() {
        return Err(BackupError::Damaged(format!(
            "{name:?} is not a member this version knows"
        )));
    }
    Ok(Unpacked {
        manifest,
        database,
        tls,
    })
}

fn check_versions(m: &Manifest) -> Result<(), BackupError> {
    if m.format > FORMAT {
        return Err(BackupError::NotBackup(format!(
            "it is in format {}, made by a newer streambox ({}); this one reads format {FORMAT}",
            m.format, m.version
        )));
    }
    if m.schema > db::schema_version() {
        return Err(BackupError::Newer {
            version: m.version.clone(),
            schema: m.schema,
            ours: env!("CARGO_PKG_VERSION"),
            our_schema: db::schema_version(),
        });
    }
    Ok(())
}

/// The schema a database has after this build's migrations: every table, index,
/// trigger and view, with its SQL, sorted.
async fn schema_of(
    conn: &mut SqliteConnection,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT type, name, COALESCE(sql, '') FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )
    .fetch_all(conn)
    .await
}

async fn count(conn: &mut SqliteConnection, table: &str) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(conn)
        .await?;
    Ok(n)
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", dir.display())))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("creating {}", path.display())))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io(format!("writing {}", path.display())))
}

/// Checks `archive` ([`unpack`], then the database: SQLite's integrity check, this
/// build's migrations applied to it, and a schema that is then exactly this build's,
/// with no table, index, trigger or view of its own) and stages it in
/// `DATA_DIR/restore/` for [`apply_staged`] at the next start, as restored `by` from
/// `client` (for the audit log). A restore staged before and not applied yet is
/// replaced.
///
/// # Errors
/// Every [`BackupError`]; the box is then as it was (a partial stage is removed).
pub async fn stage(
    data_dir: &Path,
    archive: &[u8],
    by: &str,
    client: &str,
) -> Result<Summary, BackupError> {
    let owned = archive.to_vec();
    let unpacked = tokio::task::spawn_blocking(move || unpack(&owned))
        .await
        .map_err(|e| io("reading the backup")(std::io::Error::other(e)))??;
    if let Some((cert, key)) = &unpacked.tls {
        check_tls(cert, key)?;
    }
    let partial = data_dir.join(format!("{STAGED}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(io(format!("creating {}", partial.display())))?;
    let staged = async {
        let db_path = partial.join(DATABASE);
        write_synced(&db_path, &unpacked.database)?;
        let mut summary = check_database(&db_path, &unpacked.manifest).await?;
        summary.certificate = unpacked.tls.is_some();
        summary.by = by.to_string();
        summary.client = client.to_string();
        if let Some((cert, key)) = &unpacked.tls {
            write_synced(&partial.join(crate::tls::CERT_FILE), cert)?;
            write_synced(&partial.join(crate::tls::KEY_FILE), key)?;
        }
        let summary_json = serde_json::to_vec(&summary)
            .map_err(|e| io("writing the summary")(std::io::Error::other(e)))?;
        write_synced(&partial.join(READY), &summary_json)?;
        sync_dir(&partial)?;
        Ok::<Summary, BackupError>(summary)
    }
    .await;
    let summary = match staged {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    let target = data_dir.join(STAGED);
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&partial, &target).map_err(io(format!("moving to {}", target.display())))?;
    sync_dir(data_dir)?;
    Ok(summary)
}

/// The restore staged in `data_dir` and not applied yet, if any.
pub fn staged(data_dir: &Path) -> Option<Summary> {
    let json = std::fs::read(data_dir.join(STAGED).join(READY)).ok()?;
    serde_json::from_slice(&json).ok()
}

fn check_tls(cert: &[u8], key: &[u8]) -> Result<(), BackupError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str| BackupError::Damaged(format!("its TLS {what} is not PEM"));
    let cert = CertificateDer::from_pem_slice(cert).map_err(|_| bad("certificate"))?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| bad("private key"))?;
    crate::tls::Identity {
        cert,
        key,
        created: false,
    }
    .server_config()
    .map(|_| ())
    .map_err(|e| BackupError::Damaged(format!("its TLS certificate and key: {e}")))
}

/// One connection to the database at `path` as a pool (`Migrator::run` takes one).
async fn single(opts: SqliteConnectOptions) -> Result<sqlx::SqlitePool, sqlx::Error> {
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
}

/// SQLite's integrity check, this build's migrations, and the schema compared with a
/// new database's; then what the backup holds.
async fn check_database(path: &Path, manifest: &Manifest) -> Result<Summary, BackupError> {
    let bad = |e: &dyn std::fmt::Display| BackupError::Database(e.to_string());
    let pool = single(db::connect_options(path).create_if_missing(false))
        .await
        .map_err(|e| bad(&e))?;
    let checked = async {
        let (integrity,): (String,) = sqlx::query_as("PRAGMA integrity_check(1)")
            .fetch_one(&pool)
            .await
            .map_err(|e| bad(&e))?;
        if integrity != "ok" {
            return Err(bad(&format!("SQLite's integrity check: {integrity}")));
        }
        let applied =
            db::applied_migrations(&mut *pool.acquire().await.map_err(|e| bad(&e))?).await?;
        if applied.last().copied() != Some(manifest.schema) {
            return Err(BackupError::Damaged(format!(
                "its database is at schema {}, its manifest says {}",
                applied.last().copied().unwrap_or(0),
                manifest.schema
            )));
        }
        db::MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| bad(&format!("migrating it: {e}")))?;
        let theirs = schema_of(&mut *pool.acquire().await.map_err(|e| bad(&e))?)
            .await
            .map_err(|e| bad(&e))?;
        let fresh = single(SqliteConnectOptions::new().filename(":memory:"))
            .await
            .map_err(|e| bad(&e))?;
        db::MIGRATOR.run(&fresh).await.map_err(|e| bad(&e))?;
        let ours = schema_of(&mut *fresh.acquire().await.map_err(|e| bad(&e))?)
            .await
            .map_err(|e| bad(&e))?;
        fresh.close().await;
        if let Some((kind, name, _)) = theirs
            .iter()
            .find(|t| !ours.contains(t))
            .or_else(|| ours.iter().find(|o| !theirs.contains(o)))
        {
            return Err(bad(&format!(
                "its schema is not this version's ({kind} {name} differs)"
            )));
        }
        let mut conn = pool.acquire().await.map_err(|e| bad(&e))?;
        let users = count(&mut conn, "users").await.map_err(|e| bad(&e))?;
        if users == 0 {
            return Err(bad(&"it has no user, so nobody could sign in"));
        }
        Ok(Summary {
            appliance: manifest.appliance.clone(),
            version: manifest.version.clone(),
            created_ms: manifest.created_ms,
            users,
            streams: count(&mut conn, "streams").await.map_err(|e| bad(&e))?,
            cameras: count(&mut conn, "sources").await.map_err(|e| bad(&e))?,
            certificate: false,
            by: String::new(),
            client: String::new(),
        })
    }
    .await;
    pool.close().await;
    checked
}

use sqlx::sqlite::SqliteConnectOptions;

/// Puts a restore staged in `data_dir` ([`stage`]) in place: to be called when the
/// service starts, holding the data directory's lock, before the database is opened.
/// The TLS files go to `tls_dir`. Returns what was restored, or `None` when nothing was
/// staged (a stage that did not finish is removed).
///
/// # Errors
/// [`BackupError::Io`] or [`BackupError::Db`]; the stage is then kept, and the next
/// start tries again.
pub async fn apply_staged(data_dir: &Path, tls_dir: &Path) -> Result<Option<Summary>, BackupError> {
    let _ = std::fs::remove_dir_all(data_dir.join(format!("{STAGED}.partial")));
    let stage_dir = data_dir.join(STAGED);
    let Some(summary) = staged(data_dir) else {
        if stage_dir.exists() {
            std::fs::remove_dir_all(&stage_dir)
                .map_err(io(format!("removing {}", stage_dir.display())))?;
        }
        return Ok(None);
    };
    let staged_db = stage_dir.join(DATABASE);
    let current = data_dir.join(db::FILE);
    if staged_db.exists() {
        // 1. The recordings on disk now keep their index.
        let mut conn = db::connect_options(&staged_db)
            .connect()
            .await
            .map_err(DbError::from)?;
        if current.exists() {
            db::carry_recordings(&mut conn, &current).await?;
        }
        conn.close().await.map_err(DbError::from)?;
        // 2. The database in use is kept aside, and the staged one takes its place.
        let replaced = data_dir.join(REPLACED);
        std::fs::create_dir_all(&replaced)
            .map_err(io(format!("creating {}", replaced.display())))?;
        if current.exists() {
            db::move_database(data_dir, &replaced.join(db::FILE))?;
        }
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", staged_db.display()));
            let _ = std::fs::remove_file(&side);
        }
        std::fs::rename(&staged_db, &current).map_err(io(format!(
            "moving the restored database to {}",
            current.display()
        )))?;
        sync_dir(data_dir)?;
    }
    // 3. The HTTPS identity.
    let cert = stage_dir.join(crate::tls::CERT_FILE);
    let key = stage_dir.join(crate::tls::KEY_FILE);
    if let (Ok(cert), Ok(key)) = (std::fs::read(&cert), std::fs::read(&key)) {
        std::fs::create_dir_all(tls_dir).map_err(io(format!("creating {}", tls_dir.display())))?;
        let key_path = tls_dir.join(crate::tls::KEY_FILE);
        let cert_path = tls_dir.join(crate::tls::CERT_FILE);
        crate::tls::write_atomically(&key_path, &key, 0o600)
            .map_err(io(format!("writing {}", key_path.display())))?;
        crate::tls::write_atomically(&cert_path, &cert, 0o644)
            .map_err(io(format!("writing {}", cert_path.display())))?;
    }
    // 4. Done: the stage goes.
    std::fs::remove_dir_all(&stage_dir).map_err(io(format!("removing {}", stage_dir.display())))?;
    sync_dir(data_dir)?;
    Ok(Some(summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_and_dated() {
        assert_eq!(
            file_name("Main Hall / West", 1_764_700_000_000),
            "streambox-main-hall-west-20251202-182640.tar.zst"
        );
        assert_eq!(file_name("  ", 0), "streambox-19700101-000000.tar.zst");
    }

    fn archive(manifest: &Manifest, members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        pack(manifest, members).unwrap()
    }

    fn manifest_for(members: &[(&str, Vec<u8>)]) -> Manifest {
        Manifest {
            format: FORMAT,
            version: "0.1.0".into(),
            schema: db::schema_version(),
            created_ms: 0,
            appliance: "test".into(),
            files: members
                .iter()
                .map(|(n, b)| Member {
                    name: (*n).into(),
                    bytes: b.len() as u64,
                    sha256: hex_sha256(b),
                })
                .collect(),
        }
    }

    #[test]
    fn a_sound_archive_unpacks() {
        let members = vec![(DATABASE, b"db".to_vec())];
        let u = unpack(&archive(&manifest_for(&members), &members)).unwrap();
        assert_eq!(u.database, b"db");
        assert!(u.tls.is_none());
    }

    #[test]
    fn damage_and_edits_are_refused() {
        let members = vec![(DATABASE, b"the database".to_vec())];
        let good = archive(&manifest_for(&members), &members);
        // Cut short.
        let e = unpack(&good[..good.len() - 8]).unwrap_err();
        assert!(matches!(e, BackupError::Damaged(_)), "{e}");
        // A member changed without its checksum.
        let edited = vec![(DATABASE, b"the_database".to_vec())];
        let e = unpack(&archive(&manifest_for(&members), &edited)).unwrap_err();
        assert!(e.to_string().contains("SHA-256"), "{e}");
        // A member the manifest does not list.
        let extra = vec![
            (DATABASE, b"the database".to_vec()),
            ("evil", b"x".to_vec()),
        ];
        let e = unpack(&archive(&manifest_for(&members), &extra)).unwrap_err();
        assert!(e.to_string().contains("not in its manifest"), "{e}");
        // Not zstd at all.
        let e = unpack(b"PK\x03\x04 a zip file").unwrap_err();
        assert!(matches!(e, BackupError::NotBackup(_)), "{e}");
    }

    #[test]
    fn newer_backups_are_refused() {
        let members = vec![(DATABASE, b"db".to_vec())];
        let mut m = manifest_for(&members);
        m.schema += 1;
        let e = unpack(&archive(&m, &members)).unwrap_err();
        assert!(matches!(e, BackupError::Newer { .. }), "{e}");
        let mut m = manifest_for(&members);
        m.format = FORMAT + 1;
        let e = unpack(&archive(&m, &members)).unwrap_err();
        assert!(e.to_string().contains("format 2"), "{e}");
    }

    #[test]
    fn an_archive_that_expands_too_far_is_refused_unread() {
        // 1 GiB and a bit of zeros compress to a few kB.
        let mut encoder = zstd::Encoder::new(Vec::new(), 1).unwrap();
        let mut tar = tar::Builder::new(&mut encoder);
        let manifest = serde_json::to_vec(&manifest_for(&[])).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(manifest.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, MANIFEST, manifest.as_slice())
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(MAX_UNPACKED_BYTES + 1);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(
            &mut h,
            DATABASE,
            std::io::repeat(0).take(MAX_UNPACKED_BYTES + 1),
        )
        .unwrap();
        tar.finish().unwrap();
        drop(tar);
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 1_000_000, "{} bytes", bomb.len());
        let e = unpack(&bomb).unwrap_err();
        assert!(matches!(e, BackupError::TooLarge(_)), "{e}");
    }
}
