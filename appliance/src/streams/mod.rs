//! Streams by identity: what is configured ([`Directory`]), and what runs ([`registry`]).
//!
//! Every stream and camera has a [`StreamUid`], made when it is created and never
//! changed or reused. Its name is only how URLs and people refer to it: a rename changes
//! the name, a delete ends the identity, and a new stream of an old name is a new
//! identity. Grants (viewer links), settings (visibility, recording, ladder) and
//! recordings are keyed by the identity, so nothing of a stream answers under a name it
//! no longer has, and nothing of an old stream reaches a new one of the same name.
//!
//! The [`Directory`] is an in-memory snapshot of the configured streams (name, identity,
//! kind, visibility, key hash) and the viewer links that are open. The registry reloads
//! it whenever the database changes, from this process or another (`streambox stream
//! rotate-key` while the service runs), and then ends what the change took away: a
//! publisher whose key was rotated, an RTSP player of a stream that turned private, the
//! live entry of a deleted or renamed stream.

pub mod life;
pub mod registry;

use sqlx::SqlitePool;
use std::collections::HashMap;
use std::sync::Arc;

/// A stream's identity: 32 lowercase hex digits (128 random bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::Type, serde::Serialize)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct StreamUid(String);

impl StreamUid {
    /// A new, random identity.
    pub fn new() -> StreamUid {
        StreamUid(format!("{:032x}", rand::random::<u128>()))
    }

    /// The identity as stored: 32 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for StreamUid {
    fn default() -> Self {
        StreamUid::new()
    }
}

impl std::fmt::Display for StreamUid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What feeds a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Pushed by a publisher with the stream key (RTMP, RTSP ANNOUNCE/RECORD).
    Stream,
    /// Pulled from an RTSP camera.
    Camera,
}

impl Kind {
    /// `stream` or `camera`, as the API and the pages say.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Stream => "stream",
            Kind::Camera => "camera",
        }
    }
}

/// One configured stream or camera, as the directory holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// Its identity.
    pub uid: StreamUid,
    /// Its name now.
    pub name: String,
    /// Pushed or pulled.
    pub kind: Kind,
    /// Only viewers with a grant may watch.
    pub private: bool,
    /// Its media is encrypted for viewers ([`crate::protect`]); `None` in the clear.
    pub protection: Option<Protection>,
    /// The keyed hash of its stream key (pushed streams); a publisher authenticated with
    /// another one is ended.
    pub key_hash: Option<Vec<u8>>,
}

/// A stream's content protection: its media is encrypted, with a key that changes
/// every `rotate_secs` seconds of a publishing session (`None`: at each session, and
/// when an administrator rotates it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Protection {
    /// Seconds a key is used for, at least 60; `None` for as long as the session.
    pub rotate_secs: Option<u32>,
}

/// An open viewer link: the stream it opens and when it stops (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenLink {
    /// The stream it opens.
    pub uid: StreamUid,
    /// Seconds since the Unix epoch.
    pub expires_at: i64,
}

/// A snapshot of the configured streams and open viewer links.
#[derive(Debug, Default)]
pub struct Directory {
    by_name: HashMap<String, Arc<Named>>,
    by_uid: HashMap<StreamUid, Arc<Named>>,
    links: HashMap<i64, OpenLink>,
}

impl Directory {
    /// A directory of `streams` and `links` (by link id).
    pub fn new(streams: Vec<Named>, links: HashMap<i64, OpenLink>) -> Directory {
        let mut d = Directory {
            links,
            ..Directory::default()
        };
        for n in streams {
            let n = Arc::new(n);
            d.by_name.insert(n.name.clone(), n.clone());
            d.by_uid.insert(n.uid.clone(), n);
        }
        d
    }

    /// The stream or camera named `name` now.
    pub fn by_name(&self, name: &str) -> Option<&Arc<Named>> {
        self.by_name.get(name)
    }

    /// The stream or camera of identity `uid`.
    pub fn by_uid(&self, uid: &StreamUid) -> Option<&Arc<Named>> {
        self.by_uid.get(uid)
    }

    /// Every stream and camera, in no order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Named>> {
        self.by_uid.values()
    }

    /// Whether link `id` is open and opens stream `uid` at `now` (Unix seconds).
    pub fn link_opens(&self, id: i64, uid: &StreamUid, now: i64) -> bool {
        self.links
            .get(&id)
            .is_some_and(|l| &l.uid == uid && now < l.expires_at)
    }

    /// Reads the directory from the database, with the links open at `now`.
    ///
    /// # Errors
    /// A database error.
    pub async fn load(pool: &SqlitePool, now: i64) -> Result<Directory, sqlx::Error> {
        type Row = (
            StreamUid,
            String,
            String,
            Option<Vec<u8>>,
            bool,
            bool,
            Option<u32>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT s.uid, s.name, 'stream', s.key_hash, COALESCE(v.private, 0),
                    p.stream_uid IS NOT NULL, p.rotate_secs
               FROM streams s LEFT JOIN stream_visibility v ON v.stream_uid = s.uid
                              LEFT JOIN stream_protection p ON p.stream_uid = s.uid
             UNION ALL
             SELECT c.uid, c.name, 'camera', NULL, COALESCE(v.private, 0),
                    p.stream_uid IS NOT NULL, p.rotate_secs
               FROM sources c LEFT JOIN stream_visibility v ON v.stream_uid = c.uid
                              LEFT JOIN stream_protection p ON p.stream_uid = c.uid",
        )
        .fetch_all(pool)
        .await?;
        let links: Vec<(i64, StreamUid, i64)> = sqlx::query_as(
            "SELECT id, stream_uid, expires_at FROM viewer_links WHERE expires_at > ?",
        )
        .bind(now)
        .fetch_all(pool)
        .await?;
        let streams = rows
            .into_iter()
            .map(
                |(uid, name, kind, key_hash, private, protected, rotate_secs)| Named {
                    uid,
                    name,
                    kind: if kind == "camera" {
                        Kind::Camera
                    } else {
                        Kind::Stream
                    },
                    private,
                    protection: protected.then_some(Protection { rotate_secs }),
                    key_hash,
                },
            )
            .collect();
        let links = links
            .into_iter()
            .map(|(id, uid, expires_at)| (id, OpenLink { uid, expires_at }))
            .collect();
        Ok(Directory::new(streams, links))
    }
}

/// The stream or camera named `name`, read from the database (for the CLI, which has no
/// registry).
///
/// # Errors
/// A database error.
pub async fn lookup(pool: &SqlitePool, name: &str) -> Result<Option<Named>, sqlx::Error> {
    let d = Directory::load(pool, 0).await?;
    Ok(d.by_name(name).map(|n| (**n).clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, private: bool) -> Named {
        Named {
            uid: StreamUid::new(),
            name: name.into(),
            kind: Kind::Stream,
            private,
            protection: None,
            key_hash: None,
        }
    }

    #[test]
    fn identities_are_random_hex_and_links_open_only_their_stream_until_expiry() {
        let (a, b) = (StreamUid::new(), StreamUid::new());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        let lobby = named("lobby", true);
        let uid = lobby.uid.clone();
        let d = Directory::new(
            vec![lobby, named("hall", false)],
            HashMap::from([(
                7,
                OpenLink {
                    uid: uid.clone(),
                    expires_at: 100,
                },
            )]),
        );
        assert_eq!(d.by_name("lobby").map(|n| &n.uid), Some(&uid));
        assert!(d.by_name("LOBBY").is_none());
        assert!(d.link_opens(7, &uid, 99));
        assert!(!d.link_opens(7, &uid, 100), "expired");
        assert!(!d.link_opens(8, &uid, 0), "no such link");
        let hall = d.by_name("hall").map(|n| n.uid.clone()).expect("hall");
        assert!(!d.link_opens(7, &hall, 0), "another stream's link");
    }
}
