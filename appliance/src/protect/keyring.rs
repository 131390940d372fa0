//! The content keys of every stream: rows of `content_keys` in SQLite, all held in
//! memory too, so that the packagers choose and the key route finds a key without a
//! database read.

use crate::streams::StreamUid;
use rand::TryRngCore;
use sqlx::SqlitePool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A key ID: 16 random bytes, written as 32 lowercase hexadecimal digits in URIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kid(pub [u8; 16]);

impl std::fmt::Display for Kid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Kid {
    type Err = ();

    /// 32 hexadecimal digits (either case); anything else is `Err(())`.
    fn from_str(s: &str) -> Result<Kid, ()> {
        if s.len() != 32 || !s.is_ascii() {
            return Err(());
        }
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| ())?;
        }
        Ok(Kid(out))
    }
}

impl Kid {
    /// A key ID as stored or sent as bytes: exactly 16 of them, else `None`.
    pub fn from_bytes(b: &[u8]) -> Option<Kid> {
        <[u8; 16]>::try_from(b).ok().map(Kid)
    }
}

/// One content key of one stream.
pub struct ContentKey {
    /// Its ID.
    pub kid: Kid,
    /// The stream it encrypts.
    pub stream: StreamUid,
    /// The AES-128 key. Never logged: [`ContentKey`]'s `Debug` leaves it out.
    pub key: [u8; 16],
    /// When it was made, in ms since the Unix epoch.
    pub created_ms: i64,
}

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentKey")
            .field("kid", &format_args!("{}", self.kid))
            .field("stream", &self.stream)
            .field("created_ms", &self.created_ms)
            .finish_non_exhaustive()
    }
}

/// Why no key could be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system's random source failed.
    #[error("the operating system gave no random bytes for a content key: {0}")]
    Random(String),
    /// The key could not be stored.
    #[error("storing a content key: {0}")]
    Db(#[from] sqlx::Error),
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<Kid, Arc<ContentKey>>,
    latest: HashMap<StreamUid, Arc<ContentKey>>,
}

impl Keys {
    fn insert(&mut self, k: Arc<ContentKey>) {
        let newer = self
            .latest
            .get(&k.stream)
            .is_none_or(|l| l.created_ms <= k.created_ms);
        if newer {
            self.latest.insert(k.stream.clone(), k.clone());
        }
        self.by_kid.insert(k.kid, k);
    }
}

/// Every stream's content keys.
pub struct Keyring {
    db: Option<SqlitePool>,
    keys: Mutex<Keys>,
}

impl Keyring {
    /// The keyring stored in `db`, empty until [`Keyring::reload`].
    pub fn new(db: SqlitePool) -> Keyring {
        Keyring {
            db: Some(db),
            keys: Mutex::default(),
        }
    }

    /// The keyring stored in `db`, read whole.
    ///
    /// # Errors
    /// A database error.
    pub async fn load(db: SqlitePool) -> Result<Keyring, sqlx::Error> {
        let ring = Keyring::new(db);
        ring.reload().await?;
        Ok(ring)
    }

    /// Reads every key from the database again (at start, before serving).
    ///
    /// # Errors
    /// A database error; the keys in memory stay as they were.
    pub async fn reload(&self) -> Result<(), sqlx::Error> {
        let Some(db) = &self.db else { return Ok(()) };
        let rows: Vec<(Vec<u8>, StreamUid, Vec<u8>, i64)> =
            sqlx::query_as("SELECT kid, stream_uid, key, created_ms FROM content_keys")
                .fetch_all(db)
                .await?;
        let mut keys = Keys::default();
        for (kid, stream, key, created_ms) in rows {
            // The table's CHECKs keep both at 16 bytes.
            if let (Ok(kid), Ok(key)) = (kid.try_into(), key.try_into()) {
                keys.insert(Arc::new(ContentKey {
                    kid: Kid(kid),
                    stream,
                    key,
                    created_ms,
                }));
            }
        }
        *self.keys() = keys;
        Ok(())
    }

    /// A keyring that stores nothing (tests, tools).
    pub fn detached() -> Keyring {
        Keyring {
            db: None,
            keys: Mutex::default(),
        }
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key with ID `kid`, of whatever stream.
    pub fn get(&self, kid: &Kid) -> Option<Arc<ContentKey>> {
        self.keys().by_kid.get(kid).cloned()
    }

    /// The key with ID `kid` if it is one of stream `uid`'s: what a viewer of that
    /// stream may be given.
    pub fn of(&self, uid: &StreamUid, kid: &Kid) -> Option<Arc<ContentKey>> {
        self.get(kid).filter(|k| &k.stream == uid)
    }

    /// The newest key of stream `uid`.
    pub fn latest(&self, uid: &StreamUid) -> Option<Arc<ContentKey>> {
        self.keys().latest.get(uid).cloned()
    }

    /// How many keys stream `uid` has had.
    pub fn count(&self, uid: &StreamUid) -> usize {
        self.keys()
            .by_kid
            .values()
            .filter(|k| &k.stream == uid)
            .count()
    }

    /// A new key for `uid` if it has none or `due` says its newest one is due, else the
    /// newest one; decided under the keyring's lock, so the packagers of one
    /// stream (its source and rungs) asking at once make one key. The new key is in use
    /// at once and stored in the database in the background (a failure is logged: the
    /// live stream goes on with it).
    ///
    /// # Errors
    /// [`KeyError::Random`].
    pub fn rotate_if(
        &self,
        uid: &StreamUid,
        due: impl FnOnce(&ContentKey) -> bool,
    ) -> Result<Arc<ContentKey>, KeyError> {
        let mut keys = self.keys();
        if let Some(k) = keys.latest.get(uid).filter(|k| !due(k)) {
            return Ok(k.clone());
        }
        let k = new_key(uid)?;
        keys.insert(k.clone());
        drop(keys);
        if let (Some(db), Ok(rt)) = (&self.db, tokio::runtime::Handle::try_current()) {
            let (db, stored) = (db.clone(), k.clone());
            rt.spawn(async move {
                if let Err(e) = store(&db, &stored).await {
                    tracing::error!(stream = %stored.stream, kid = %stored.kid, error = %e,
                        "a content key in use could not be stored");
                }
            });
        }
        Ok(k)
    }

    /// A new key for `uid`, stored before it is used: an administrator's rotation
    /// ("this link leaked"). The stream's packagers take it for the segment after next.
    ///
    /// # Errors
    /// [`KeyError`]; nothing changed.
    pub async fn rotate(&self, uid: &StreamUid) -> Result<Arc<ContentKey>, KeyError> {
        let k = new_key(uid)?;
        if let Some(db) = &self.db {
            store(db, &k).await?;
        }
        self.keys().insert(k.clone());
        Ok(k)
    }

    /// Forgets the keys of stream `uid` (deleted: its rows went with it).
    pub fn forget(&self, uid: &StreamUid) {
        self.retain(|u| u != uid);
    }

    /// Keeps only the keys of the streams `exists` says are there (after a stream was
    /// deleted, by whatever process).
    pub fn retain(&self, exists: impl Fn(&StreamUid) -> bool) {
        let mut keys = self.keys();
        keys.latest.retain(|u, _| exists(u));
        keys.by_kid.retain(|_, k| exists(&k.stream));
    }
}

fn new_key(uid: &StreamUid) -> Result<Arc<ContentKey>, KeyError> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| KeyError::Random(e.to_string()))?;
    let (kid, key) = bytes.split_at(16);
    Ok(Arc::new(ContentKey {
        kid: Kid(kid.try_into().unwrap_or_default()),
        stream: uid.clone(),
        key: key.try_into().unwrap_or_default(),
        created_ms: crate::db::unix_now_ms(),
    }))
}

async fn store(db: &SqlitePool, k: &ContentKey) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO content_keys (kid, stream_uid, key, created_ms) VALUES (?, ?, ?, ?)")
        .bind(&k.kid.0[..])
        .bind(&k.stream)
        .bind(&k.key[..])
        .bind(k.created_ms)
        .execute(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_random_stored_and_found_again_by_id_and_stream() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = crate::db::open(dir.path()).await.expect("open");
        let ring = Keyring::load(pool.clone()).await.expect("load");
        let (a, b) = (StreamUid::new(), StreamUid::new());
        let k1 = ring.rotate(&a).await.expect("rotate");
        assert!(
            !format!("{k1:?}").contains(&format!("{:?}", k1.key)),
            "the key is never printed"
        );
        // Not due: the same key; due: a new one, used at once.
        let same = ring.rotate_if(&a, |_| false).expect("kept");
        assert_eq!(same.kid, k1.kid);
        let k2 = ring.rotate_if(&a, |_| true).expect("new");
        assert_ne!((k2.kid, k2.key), (k1.kid, k1.key));
        assert_eq!(ring.latest(&a).map(|k| k.kid), Some(k2.kid));
        let kb = ring.rotate_if(&b, |_| false).expect("the first key of b");
        assert_eq!(ring.get(&kb.kid).map(|k| k.stream.clone()), Some(b.clone()));
        // Stored: the background write lands, and a new keyring finds all three.
        for _ in 0..100 {
            let n: (i64,) = sqlx::query_as("SELECT count(*) FROM content_keys")
                .fetch_one(&pool)
                .await
                .expect("count");
            if n.0 == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let again = Keyring::load(pool).await.expect("load");
        assert_eq!(again.count(&a), 2);
        let found = again.get(&k1.kid).expect("k1");
        assert_eq!((found.key, found.stream.clone()), (k1.key, a.clone()));
        assert_eq!(again.latest(&a).map(|k| k.kid), Some(k2.kid));
        // A deleted stream's keys go.
        again.forget(&a);
        assert!(again.get(&k1.kid).is_none() && again.latest(&a).is_none());
        assert!(again.get(&kb.kid).is_some());
    }

    #[test]
    fn key_ids_read_as_32_hex_digits_only() {
        let k = Kid([0xab; 16]);
        assert_eq!(k.to_string(), "ab".repeat(16));
        assert_eq!("AB".repeat(16).parse::<Kid>(), Ok(k));
        for bad in [
            "",
            "ab",
            &"zz".repeat(16),
            &"ab".repeat(17),
            &"é".repeat(16),
        ] {
            assert!(bad.parse::<Kid>().is_err(), "{bad:?}");
        }
    }
}
