//! The registry: the live entries of streams (hub, packager, recorder, renditions), and
//! everyone attached to a stream (publishers, cameras, RTSP players) by [`Lease`].
//!
//! It owns lifetimes. [`Registry::open`] makes a stream's live entry, whose tasks are
//! spawned on its [`StreamLife`]; closing it (the stream was deleted or renamed) ends its
//! leases, cancels its tasks, waits for them, and forgets its metrics and thumbnails, so
//! nothing of it stays in memory.
//!
//! It enforces changes. Every change to the configuration reloads the [`Directory`]
//! ([`Registry::refresh`]: at once for changes made by this process; within
//! [`WATCH_EVERY`] for another process's, seen through SQLite's `PRAGMA data_version`),
//! and every lease is checked against it: a publisher whose stream key changed, a player
//! of a stream that turned private without a grant, anyone attached to a deleted stream,
//! is ended, with the reason in the log. Links that expire are checked every
//! [`RECHECK_EVERY`].

pub use super::life::StreamLife;
use super::{Directory, Kind, Named, StreamUid};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::packager::LiveStream;
use crate::transcode::rendition::Renditions;
use crate::transcode::thumbnail::Thumbnailer;
use crate::viewers::Viewers;
use sqlx::SqlitePool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often another process's changes to the database are looked for.
pub const WATCH_EVERY: Duration = Duration::from_millis(250);
/// How often leases are checked even without a change (links that expire).
pub const RECHECK_EVERY: Duration = Duration::from_secs(1);
/// How long closing a stream waits for its tasks before giving up on them (they are
/// cancelled; one that does not end is a bug, logged).
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// A stream that has been opened since start: its hub and what is made from it.
#[derive(Clone)]
pub struct LiveEntry {
    /// The stream's identity.
    pub uid: StreamUid,
    /// Its name when it was opened (a rename closes the entry).
    pub name: String,
    /// Fan-out of frames.
    pub hub: Arc<Hub>,
    /// Segments, parts and playlists.
    pub output: Arc<LiveStream>,
    /// The ABR rungs made from it.
    pub renditions: Arc<Renditions>,
    /// Who watches it now.
    pub viewers: Arc<Viewers>,
    /// Its tasks.
    pub life: StreamLife,
}

/// Who holds a lease on a stream, and on what grounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A publisher that authenticated with the stream key whose keyed hash this is.
    Publisher {
        /// `streams.key_hash` when it authenticated.
        key_hash: Vec<u8>,
    },
    /// A camera session pulling into the stream.
    Camera,
    /// An RTSP player, admitted on this grant.
    Player(Grant),
}

/// Why a viewer may watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// The stream was public.
    Public,
    /// Through the viewer link of this id.
    Link(i64),
}

struct Held {
    uid: StreamUid,
    holder: Holder,
    cancel: CancellationToken,
    why: Arc<OnceLock<&'static str>>,
}

impl Held {
    fn end(&self, why: &'static str) {
        let _ = self.why.set(why);
        self.cancel.cancel();
    }
}

/// A hold on a stream that the registry ends when the grounds for it go. Dropping it
/// lets go.
pub struct Lease {
    id: u64,
    cancel: CancellationToken,
    why: Arc<OnceLock<&'static str>>,
    registry: Arc<Registry>,
}

impl Lease {
    /// Resolves when the registry ends the lease; says why.
    pub async fn ended(&self) -> &'static str {
        self.cancel.cancelled().await;
        self.why.get().copied().unwrap_or("the stream closed")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        lock(&self.registry.leases).remove(&self.id);
    }
}

/// The stream is not (or no longer) configured.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no such stream (deleted or renamed)")]
pub struct Gone;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Live streams and leases, checked against the configured [`Directory`].
pub struct Registry {
    db: SqlitePool,
    metrics: Arc<Metrics>,
    thumbnails: Arc<Thumbnailer>,
    directory: RwLock<Arc<Directory>>,
    version: watch::Sender<u64>,
    reload: tokio::sync::Mutex<()>,
    live: Mutex<HashMap<StreamUid, LiveEntry>>,
    leases: Mutex<HashMap<u64, Held>>,
    next_lease: AtomicU64,
}

impl Registry {
    /// An empty registry over `db`; call [`Registry::refresh`] before use, and run
    /// [`Registry::watch`].
    pub fn new(db: SqlitePool, metrics: Arc<Metrics>, thumbnails: Arc<Thumbnailer>) -> Arc<Self> {
        Arc::new(Registry {
            db,
            metrics,
            thumbnails,
            directory: RwLock::default(),
            version: watch::Sender::new(0),
            reload: tokio::sync::Mutex::new(()),
            live: Mutex::default(),
            leases: Mutex::default(),
            next_lease: AtomicU64::new(1),
        })
    }

    /// The configured streams and open links, as last loaded.
    pub fn directory(&self) -> Arc<Directory> {
        self.directory
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A receiver that sees every reload of the directory.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Reloads the directory from the database and ends what the change took away. Call
    /// it after every change to streams, cameras, visibility or links.
    ///
    /// # Errors
    /// A database error; the directory stays as it was.
    pub async fn refresh(self: &Arc<Self>) -> Result<(), sqlx::Error> {
        let _one_at_a_time = self.reload.lock().await;
        let dir = Arc::new(Directory::load(&self.db, crate::db::unix_now()).await?);
        *self.directory.write().unwrap_or_else(|e| e.into_inner()) = dir.clone();
        self.version.send_modify(|v| *v += 1);
        self.reconcile(&dir);
        Ok(())
    }

    /// [`Registry::refresh`], logging a failure (for callers whose own change is done).
    pub async fn changed(self: &Arc<Self>) {
        if let Err(e) = self.refresh().await {
            warn!(error = %e, "reloading the stream directory failed; retrying shortly");
        }
    }

    /// Runs forever: reloads the directory when another connection (this process's pool,
    /// or another process) commits to the database, and checks leases every
    /// [`RECHECK_EVERY`]. `watcher` is a connection of its own: SQLite's `data_version`
    /// counts commits by other connections.
    pub async fn watch(self: Arc<Self>, mut watcher: sqlx::SqliteConnection) {
        let mut seen: Option<i64> = None;
        let mut checked = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            let version: Result<(i64,), _> = sqlx::query_as("PRAGMA data_version")
                .fetch_one(&mut watcher)
                .await;
            match version {
                Ok((v,)) if seen != Some(v) => {
                    if self.refresh().await.is_ok() {
                        seen = Some(v);
                        checked = tokio::time::Instant::now();
                    }
                }
                Ok(_) if checked.elapsed() >= RECHECK_EVERY => {
                    checked = tokio::time::Instant::now();
                    let dir = self.directory();
                    self.reconcile(&dir);
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "watching the database for changes failed"),
            }
        }
    }

    /// Ends the leases and closes the live entries that `dir` no longer allows.
    fn reconcile(self: &Arc<Self>, dir: &Directory) {
        let now = crate::db::unix_now();
        for held in lock(&self.leases).values() {
            if held.cancel.is_cancelled() {
                continue;
            }
            if let Some(why) = verdict(dir, &held.uid, &held.holder, now) {
                held.end(why);
            }
        }
        let mut closing = Vec::new();
        lock(&self.live).retain(|uid, e| {
            let why = match dir.by_uid(uid) {
                None => "the stream was deleted",
                Some(n) if n.name != e.name => "the stream was renamed",
                Some(_) => return true,
            };
            closing.push((e.clone(), why));
            false
        });
        self.count_live();
        for (entry, why) in closing {
            tokio::spawn(self.clone().finish(entry, why));
        }
    }

    /// Sets `streambox_live_streams` to the number of live entries.
    fn count_live(&self) {
        let n = lock(&self.live).len();
        self.metrics
            .live_streams
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Ends every lease on `uid`, cancels the entry's tasks and waits for them, then
    /// forgets the stream's metrics and thumbnails.
    async fn finish(self: Arc<Self>, entry: LiveEntry, why: &'static str) {
        for held in lock(&self.leases).values() {
            if held.uid == entry.uid {
                held.end(why);
            }
        }
        if let Err(left) = entry.life.end(CLOSE_WAIT).await {
            warn!(stream = %entry.name, tasks = left, "a closed stream's tasks did not end");
        }
        self.metrics.forget_stream(&entry.name);
        self.thumbnails.forget(entry.uid.as_str());
        info!(stream = %entry.name, why, "stream closed");
    }

    /// The configured stream of identity `uid`, reloading the directory once if it is
    /// not there (another process may have just made it).
    async fn named(self: &Arc<Self>, uid: &StreamUid) -> Result<Arc<Named>, Gone> {
        if let Some(n) = self.directory().by_uid(uid) {
            return Ok(n.clone());
        }
        self.changed().await;
        self.directory().by_uid(uid).cloned().ok_or(Gone)
    }

    /// The live entry of stream `uid`, made with `make` when there is none.
    ///
    /// # Errors
    /// [`Gone`] when the stream is not configured.
    pub async fn open(
        self: &Arc<Self>,
        uid: &StreamUid,
        make: impl FnOnce(&Named) -> LiveEntry,
    ) -> Result<LiveEntry, Gone> {
        let named = self.named(uid).await?;
        let mut map = lock(&self.live);
        if let Some(e) = map.get(uid) {
            if e.name == named.name {
                return Ok(e.clone());
            }
            // Renamed, and not yet reconciled: the old entry goes.
            if let Some(old) = map.remove(uid) {
                tokio::spawn(self.clone().finish(old, "the stream was renamed"));
            }
        }
        let e = make(&named);
        map.insert(uid.clone(), e.clone());
        drop(map);
        self.count_live();
        Ok(e)
    }

    /// The live entry of the stream named `name` now, if it was opened.
    pub fn stream(&self, name: &str) -> Option<LiveEntry> {
        let dir = self.directory();
        let n = dir.by_name(name)?;
        lock(&self.live)
            .get(&n.uid)
            .filter(|e| e.name == n.name)
            .cloned()
    }

    /// How many live entries there are (opened and not closed).
    pub fn live_count(&self) -> usize {
        lock(&self.live).len()
    }

    /// Takes a lease on stream `uid` for `holder`.
    ///
    /// # Errors
    /// Why not, when the grounds are gone already (a key rotated, the stream deleted
    /// meanwhile).
    pub async fn lease(
        self: &Arc<Self>,
        uid: &StreamUid,
        holder: Holder,
    ) -> Result<Lease, &'static str> {
        // A stream made, or a key rotated, by another process a moment ago.
        if verdict(&self.directory(), uid, &holder, crate::db::unix_now()).is_some() {
            self.changed().await;
        }
        let held = Held {
            uid: uid.clone(),
            holder,
            cancel: CancellationToken::new(),
            why: Arc::default(),
        };
        if let Some(why) = verdict(&self.directory(), uid, &held.holder, crate::db::unix_now()) {
            return Err(why);
        }
        let lease = Lease {
            id: self.next_lease.fetch_add(1, Ordering::Relaxed),
            cancel: held.cancel.clone(),
            why: held.why.clone(),
            registry: self.clone(),
        };
        lock(&self.leases).insert(lease.id, held);
        Ok(lease)
    }
}

/// Why a lease of `holder` on `uid` must end under `dir` at `now`, if it must.
fn verdict(dir: &Directory, uid: &StreamUid, holder: &Holder, now: i64) -> Option<&'static str> {
    let Some(n) = dir.by_uid(uid) else {
        return Some("the stream was deleted");
    };
    match holder {
        Holder::Publisher { key_hash } => (n.kind != Kind::Stream
            || n.key_hash.as_deref() != Some(key_hash.as_slice()))
        .then_some("the stream key was changed"),
        Holder::Camera => (n.kind != Kind::Camera).then_some("the camera was removed"),
        // RTSP carries media in the clear: an encrypted stream plays over HLS only.
        Holder::Player(_) if n.protection.is_some() => Some("the stream is encrypted now"),
        Holder::Player(Grant::Public) => n.private.then_some("the stream is private now"),
        Holder::Player(Grant::Link(id)) => (n.private && !dir.link_opens(*id, uid, now))
            .then_some("the viewer link was revoked or has expired"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::OpenLink;
    use super::*;

    #[test]
    fn verdicts_follow_the_directory() {
        let uid = StreamUid::new();
        let dir = |private: bool, key: &[u8], link: Option<i64>| {
            Directory::new(
                vec![Named {
                    uid: uid.clone(),
                    name: "lobby".into(),
                    kind: Kind::Stream,
                    private,
                    protection: None,
                    key_hash: Some(key.to_vec()),
                }],
                link.map(|id| {
                    (
                        id,
                        OpenLink {
                            uid: uid.clone(),
                            expires_at: 100,
                        },
                    )
                })
                .into_iter()
                .collect(),
            )
        };
        let publisher = Holder::Publisher {
            key_hash: b"k1".to_vec(),
        };
        assert_eq!(verdict(&dir(false, b"k1", None), &uid, &publisher, 0), None);
        assert!(verdict(&dir(false, b"k2", None), &uid, &publisher, 0).is_some());
        assert!(verdict(&Directory::default(), &uid, &publisher, 0).is_some());
        let public = Holder::Player(Grant::Public);
        assert_eq!(verdict(&dir(false, b"k1", None), &uid, &public, 0), None);
        assert!(verdict(&dir(true, b"k1", None), &uid, &public, 0).is_some());
        let linked = Holder::Player(Grant::Link(3));
        assert_eq!(verdict(&dir(true, b"k1", Some(3)), &uid, &linked, 99), None);
        assert!(verdict(&dir(true, b"k1", Some(3)), &uid, &linked, 100).is_some());
        assert!(verdict(&dir(true, b"k1", Some(4)), &uid, &linked, 0).is_some());
        assert_eq!(
            verdict(&dir(false, b"k1", None), &uid, &linked, 0),
            None,
            "public again"
        );
        assert!(verdict(&dir(false, b"k1", None), &uid, &Holder::Camera, 0).is_some());
    }
}
