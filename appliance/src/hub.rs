//! Per-stream fan-out of [`Frame`]s from one publisher to any number of consumers.
//!
//! A [`Hub`] keeps the current [`TrackParams`] of each track, a GOP cache (every frame
//! since the last video keyframe, bounded) so a new consumer starts at once, and a bounded
//! broadcast channel. A consumer that falls behind gets `RecvError::Lagged` and must
//! resume at the next keyframe; it never slows the publisher and never grows memory.
//!
//! At most one [`Publisher`] holds a hub at a time. A publisher that comes back continues
//! the same hub: its timeline is rebased to follow on from the previous one (media time
//! tracks wall-clock time since the hub was created), and its new parameter `Arc`s tell
//! consumers that a discontinuity happened.

use crate::media::{Frame, TrackId, TrackParams};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{broadcast, watch};

/// Frames buffered per consumer before it lags: about 7 s of 25 fps video with 48 kHz
/// AAC. The channel keeps its last this-many frames alive until they are overwritten, so
/// this is also memory held per stream.
const BROADCAST_CAPACITY: usize = 512;
/// The GOP cache never holds more than this many bytes (a long-GOP source keeps only
/// the newest part of its GOP, and a new consumer then waits for the next keyframe).
const GOP_CACHE_MAX_BYTES: usize = 32 << 20;

/// Whether a stream has a publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishState {
    /// Nobody is publishing.
    Idle,
    /// A publisher is connected.
    Live {
        /// The publisher's address, for logs and the API.
        peer: String,
        /// Counts publish sessions on this hub, from 1.
        session: u64,
        /// When this publish session began (wall clock), for uptime.
        since: SystemTime,
    },
}

/// A publish was refused.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Another publisher holds the stream.
    #[error("stream {stream:?} already has a publisher ({peer})")]
    AlreadyPublishing {
        /// The stream.
        stream: String,
        /// The publisher that holds it.
        peer: String,
    },
}

#[derive(Default)]
struct Inner {
    params: BTreeMap<TrackId, Arc<TrackParams>>,
    gop: Vec<Arc<Frame>>,
    gop_bytes: usize,
    /// End of the newest frame so far, in milliseconds of stream time.
    end_ms: i64,
    sessions: u64,
}

/// The live state and fan-out of one stream.
pub struct Hub {
    name: String,
    /// Wall-clock time of stream time zero.
    origin: SystemTime,
    origin_instant: Instant,
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Frame>>,
    state: watch::Sender<PublishState>,
}

impl Hub {
    /// A new idle hub for stream `name`; stream time zero is
    /// [`MIN_BASE_MS`](crate::media::timeline::MIN_BASE_MS) before now, so a first
    /// session starts about that far into stream time: room for frames stamped a little
    /// before its first one (B-frames' decode times, a track that starts earlier) with
    /// no negative decode time, and stream time still maps to the wall clock.
    pub fn new(name: &str) -> Arc<Hub> {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let lead = Duration::from_millis(crate::media::timeline::MIN_BASE_MS.unsigned_abs());
        let now = Instant::now();
        let origin_instant = now.checked_sub(lead).unwrap_or(now);
        let origin = SystemTime::now() - now.duration_since(origin_instant);
        Arc::new(Hub {
            name: name.to_string(),
            origin,
            origin_instant,
            inner: Mutex::new(Inner::default()),
            tx,
            state: watch::Sender::new(PublishState::Idle),
        })
    }

    /// A new idle hub named `name` on `leader`'s clock (the same stream time zero), for
    /// a rendition made from the leader's frames.
    pub fn follower(leader: &Hub, name: &str) -> Arc<Hub> {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        Arc::new(Hub {
            name: name.to_string(),
            origin: leader.origin,
            origin_instant: leader.origin_instant,
            inner: Mutex::new(Inner::default()),
            tx,
            state: watch::Sender::new(PublishState::Idle),
        })
    }

    /// The stream name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Wall-clock time at stream time zero: media time `t` s was live at `origin + t`.
    pub fn origin(&self) -> SystemTime {
        self.origin
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims the stream for a publisher at `peer`.
    ///
    /// The returned [`Publisher`] maps its session's first frame to
    /// [`Publisher::base_ms`]. Dropping it makes the stream idle again.
    ///
    /// # Errors
    /// [`HubError::AlreadyPublishing`] when another publisher holds the stream.
    pub fn publish(self: &Arc<Self>, peer: &str) -> Result<Publisher, HubError> {
        let mut inner = self.lock();
        let mut claimed = None;
        self.state.send_if_modified(|s| match s {
            PublishState::Live { peer: holder, .. } => {
                claimed = Some(holder.clone());
                false
            }
            PublishState::Idle => {
                inner.sessions += 1;
                *s = PublishState::Live {
                    peer: peer.to_string(),
                    session: inner.sessions,
                    since: SystemTime::now(),
                };
                true
            }
        });
        if let Some(holder) = claimed {
            return Err(HubError::AlreadyPublishing {
                stream: self.name.clone(),
                peer: holder,
            });
        }
        // Stream time follows wall-clock time, and never goes back.
        let wall_ms = self.origin_instant.elapsed().as_millis() as i64;
        let base_ms = wall_ms.max(inner.end_ms);
        inner.params.clear();
        inner.gop.clear();
        inner.gop_bytes = 0;
        Ok(Publisher {
            hub: self.clone(),
            base_ms,
        })
    }

    /// Watches the publish state.
    pub fn state(&self) -> watch::Receiver<PublishState> {
        self.state.subscribe()
    }

    /// Whether a publisher holds the stream now.
    pub fn is_live(&self) -> bool {
        matches!(*self.state.borrow(), PublishState::Live { .. })
    }

    /// Current parameters of every track seen in this publish session.
    pub fn params(&self) -> BTreeMap<TrackId, Arc<TrackParams>> {
        self.lock().params.clone()
    }

    /// The newest video keyframe, if the GOP cache holds one (it starts with it).
    pub fn latest_keyframe(&self) -> Option<Arc<Frame>> {
        let inner = self.lock();
        inner
            .gop
            .first()
            .filter(|f| f.track == TrackId::Video && f.is_sync)
            .cloned()
    }

    /// Subscribes: returns the GOP cache (oldest first, starting at a keyframe when the
    /// stream has video) and a receiver for every later frame.
    pub fn subscribe(&self) -> (Vec<Arc<Frame>>, broadcast::Receiver<Arc<Frame>>) {
        let inner = self.lock();
        (inner.gop.clone(), self.tx.subscribe())
    }

    fn send(&self, frame: Frame) {
        let frame = Arc::new(frame);
        let mut inner = self.lock();
        let timescale = i64::from(frame.params.timescale().max(1));
        inner.end_ms = inner.end_ms.max(frame.dts * 1000 / timescale + 1);
        inner.params.insert(frame.track, frame.params.clone());
        let has_video = inner.params.contains_key(&TrackId::Video);
        let restart = if has_video {
            frame.track == TrackId::Video && frame.is_sync
        } else {
            inner.gop_bytes > GOP_CACHE_MAX_BYTES / 8
        };
        if restart || inner.gop_bytes + frame.data.len() > GOP_CACHE_MAX_BYTES {
            inner.gop.clear();
            inner.gop_bytes = 0;
        }
        // After an overflow the cache stays empty until the next keyframe.
        if restart || !inner.gop.is_empty() || !has_video {
            inner.gop_bytes += frame.data.len();
            inner.gop.push(frame.clone());
        }
        // An error only means no consumer is subscribed right now.
        let _ = self.tx.send(frame);
    }
}

/// The right to publish into a hub; the stream goes idle when it is dropped.
pub struct Publisher {
    hub: Arc<Hub>,
    base_ms: i64,
}

impl Publisher {
    /// Stream time, in milliseconds, that this session's first frame must map to.
    pub fn base_ms(&self) -> i64 {
        self.base_ms
    }

    /// Declares a track's parameters as soon as the publisher knows them (its sequence
    /// header), so consumers see the whole track set before the first frame.
    pub fn set_params(&self, params: Arc<TrackParams>) {
        self.hub.lock().params.insert(params.track(), params);
    }

    /// Fans a frame out to every consumer. Never blocks.
    pub fn send(&self, frame: Frame) {
        self.hub.send(frame);
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.hub.state.send_replace(PublishState::Idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::aac::AudioConfig;
    use bytes::Bytes;

    fn audio_frame(dts: i64) -> Frame {
        let cfg = AudioConfig::parse(Bytes::from_static(&[0x11, 0x90])).expect("asc");
        Frame {
            track: TrackId::Audio,
            dts,
            cts: 0,
            is_sync: true,
            params: Arc::new(TrackParams::Audio(cfg)),
            data: Bytes::from_static(&[1, 2, 3]),
            received: Instant::now(),
        }
    }

    #[test]
    fn one_publisher_at_a_time_and_timeline_continues() {
        let hub = Hub::new("lobby");
        let p = hub.publish("a").expect("first");
        assert!(matches!(
            hub.publish("b"),
            Err(HubError::AlreadyPublishing { .. })
        ));
        p.send(audio_frame(48_000 * 30)); // 30 s of stream time
        drop(p);
        assert_eq!(*hub.state().borrow(), PublishState::Idle);
        let p2 = hub.publish("b").expect("after the first left");
        assert!(
            p2.base_ms() > 30_000,
            "rebased after the old end: {}",
            p2.base_ms()
        );
    }

    #[test]
    fn lagging_consumer_is_told() {
        let hub = Hub::new("lobby");
        let p = hub.publish("a").expect("publish");
        let (_, mut rx) = hub.subscribe();
        for i in 0..(BROADCAST_CAPACITY as i64 + 10) {
            p.send(audio_frame(i * 1024));
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }
}
