//! Live packaging: a task per stream consumes the hub, cuts CMAF segments and parts into
//! an in-memory [`Window`], and wakes HTTP requests that wait for them (LL-HLS blocking
//! reload and preload hints).

pub mod dash;
pub mod hls;
pub mod segmenter;
pub mod window;

use crate::config::LiveConfig;
use crate::hub::{Hub, PublishState};
use crate::metrics::Metrics;
use crate::protect::Sealer;
use crate::streams::life::StreamLife;
use segmenter::{Published, Segmenter, SegmenterConfig};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tracing::{info, warn, Instrument};
pub use window::Window;

/// Recorded segments listed before the window, per track: the window's first sequence
/// number they were fetched for, when, and the segments.
pub type TimeShiftCache = std::collections::BTreeMap<
    crate::media::TrackId,
    (u64, std::time::Instant, Arc<Vec<window::Segment>>),
>;

/// The packaged output of one live stream.
pub struct LiveStream {
    /// The stream name.
    pub name: String,
    window: RwLock<Window>,
    /// Bumped after every change to the window.
    changed: watch::Sender<u64>,
    /// Segment and part targets, window, grace.
    pub cfg: LiveConfig,
    /// Set by the recorder while this stream's segments are being recorded.
    pub recording: std::sync::atomic::AtomicBool,
    /// Recorded segments listed before the window (time-shift), per track: the window's
    /// first sequence number they were fetched for, when, and the segments.
    pub history: std::sync::Mutex<TimeShiftCache>,
    /// Which key new segments are encrypted with.
    pub keys: Keys,
    /// The media playlist last rendered per track, whole and as a delta update
    /// ([`LiveStream::rendered`]).
    playlists:
        std::sync::Mutex<std::collections::BTreeMap<(crate::media::TrackId, bool), Rendered>>,
}

/// A media playlist as rendered for a version of the window and a list of time-shift
/// segments.
struct Rendered {
    version: u64,
    older: Arc<Vec<window::Segment>>,
    body: bytes::Bytes,
}

/// Where a packager takes the key its new segments are sealed with
/// ([`crate::protect`]).
pub enum Keys {
    /// Its own sealer: a stream's source.
    Own(Arc<Sealer>),
    /// Its source's cuts ([`Window::key_at`]): a rendition seals its segments that start
    /// at or after a time with the key the source's segments from that time on have,
    /// so one DASH Period (one key) holds every rendition's segments of its time.
    Leader(Arc<LiveStream>),
}

impl Keys {
    /// The key for segments opening with a frame at `seconds` of stream time.
    fn wanted(&self, seconds: f64) -> Option<Arc<crate::protect::ContentKey>> {
        match self {
            Keys::Own(sealer) => sealer.wanted(),
            Keys::Leader(source) => {
                let w = source.read();
                w.key_at(seconds).unwrap_or_else(|| w.sealing.clone())
            }
        }
    }
}

impl LiveStream {
    /// Reads the window. Hold the guard briefly: the packager waits for it.
    pub fn read(&self) -> RwLockReadGuard<'_, Window> {
        self.window.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Window> {
        self.window.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver that sees every change to the window.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// The media playlist of `track` (whole, or as a `delta` update) for the window as it
    /// is now and the time-shift segments `older`: rendered by `render` at most once per
    /// change to the window (and to `older`), however many viewers ask, and shared by all
    /// of them. `None` when `render` has none.
    pub fn rendered(
        &self,
        track: crate::media::TrackId,
        delta: bool,
        older: &Arc<Vec<window::Segment>>,
        render: impl FnOnce(&Window) -> Option<String>,
    ) -> Option<bytes::Bytes> {
        // The version before the window: a render of a newer window under an older
        // version is only rendered again, never served stale.
        let version = *self.changed.borrow();
        let same = |r: &Rendered| {
            r.version == version
                && (Arc::ptr_eq(&r.older, older) || r.older.is_empty() && older.is_empty())
        };
        let lock = || self.playlists.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = lock().get(&(track, delta)).filter(|r| same(r)) {
            return Some(r.body.clone());
        }
        let body = bytes::Bytes::from(render(&self.read())?);
        lock().insert(
            (track, delta),
            Rendered {
                version,
                older: older.clone(),
                body: body.clone(),
            },
        );
        Some(body)
    }

    /// Waits until `ready` holds for the window, or `timeout` passes. Returns whether
    /// it held.
    pub async fn wait_until(&self, timeout: Duration, ready: impl Fn(&Window) -> bool) -> bool {
        let mut rx = self.changed.subscribe();
        let deadline = Instant::now() + timeout;
        loop {
            if ready(&self.read()) {
                return true;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return false,
            }
        }
    }
}

/// Starts the packager task of `hub`, one of the stream's tasks (`life`), and returns its
/// output; its segments are encrypted as `sealer` says.
pub fn spawn(
    hub: Arc<Hub>,
    cfg: LiveConfig,
    metrics: Arc<Metrics>,
    sealer: Arc<Sealer>,
    life: &StreamLife,
) -> Arc<LiveStream> {
    spawn_following(hub, cfg, metrics, None, Keys::Own(sealer), life)
}

/// Starts the packager task of `hub`; with `follow`, its segments are cut and numbered as
/// another stream's are (an ABR rung following its source; see [`segmenter::Follow`]);
/// they are sealed with the keys `keys` gives. It ends when the stream closes (`life`).
pub fn spawn_following(
    hub: Arc<Hub>,
    cfg: LiveConfig,
    metrics: Arc<Metrics>,
    follow: Option<segmenter::Follow>,
    keys: Keys,
    life: &StreamLife,
) -> Arc<LiveStream> {
    let live = Arc::new(LiveStream {
        name: hub.name().to_string(),
        window: RwLock::new(Window::new(hub.origin())),
        changed: watch::Sender::new(0),
        cfg,
        recording: Default::default(),
        history: Default::default(),
        playlists: Default::default(),
        keys,
    });
    let live_task = live.clone();
    let span = tracing::info_span!("packager", stream = %hub.name());
    let closing = life.clone();
    let task = life.spawn(
        async move {
            tokio::select! {
                () = run(hub, live_task, metrics, follow) => {}
                () = closing.cancelled() => {}
            }
        }
        .instrument(span.clone()),
    );
    // A packager that dies must say so: its stream would otherwise just stop.
    life.spawn(
        async move {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "packager task failed; the stream is no longer packaged");
            }
        }
        .instrument(span),
    );
    live
}

async fn run(
    hub: Arc<Hub>,
    live: Arc<LiveStream>,
    metrics: Arc<Metrics>,
    follow: Option<segmenter::Follow>,
) {
    let c = &live.cfg;
    let sc = SegmenterConfig {
        segment_target: c.segment_target,
        part_target: c.part_target,
        window: c.window,
    };
    let mut seg = match follow {
        Some(f) => Segmenter::following(sc, f),
        None => Segmenter::new(sc),
    };
    let grace = Duration::from_secs_f64(c.end_grace);
    let mut state = hub.state();
    let (gop, mut rx) = hub.subscribe();
    let mut end_at: Option<Instant> = None;
    if matches!(*state.borrow_and_update(), PublishState::Live { .. }) {
        live.write().live = true;
    }
    let name = hub.name().to_string();
    // Readers (blocking playlist requests, growing segments, the recorder, the rendered
    // playlists) wake only for what they can see: a frame that only joins the part being
    // made changes nothing for them.
    let publish = |seg: &mut Segmenter, sealing_changed: bool| {
        if seg.take_changed() || sealing_changed {
            live.notify();
        }
        for p in seg.take_published() {
            let (hist, track, at) = match p {
                Published::Part(t, at) => (&metrics.part_delay, t, at),
                Published::Segment(t, at) => {
                    metrics
                        .segments
                        .with_label_values(&[name.as_str(), t.name()])
                        .inc();
                    (&metrics.segment_delay, t, at)
                }
            };
            let delay = at.elapsed().as_secs_f64();
            hist.with_label_values(&[name.as_str(), track.name()])
                .observe(delay);
        }
    };
    let push = |seg: &mut Segmenter, f: &Arc<crate::media::Frame>| {
        let key = live
            .keys
            .wanted(f.dts as f64 / f64::from(f.params.timescale()));
        let mut w = live.write();
        let sealing_changed = w.seal_next(key);
        seg.push(f, || hub.params(), &mut w);
        drop(w);
        publish(seg, sealing_changed);
    };
    for f in &gop {
        push(&mut seg, f);
    }
    loop {
        let sleep_until = end_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            r = rx.recv() => match r {
                Ok(f) => push(&mut seg, &f),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(skipped = n, "packager fell behind; restarting at the next keyframe");
                    seg.finish(&mut live.write());
                    publish(&mut seg, false);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            r = state.changed() => {
                if r.is_err() {
                    break;
                }
                let s = state.borrow_and_update().clone();
                match s {
                    PublishState::Live { .. } => {
                        end_at = None;
                        let mut w = live.write();
                        w.live = true;
                        w.ended = false;
                    }
                    PublishState::Idle => {
                        // Frames sent before the publisher left are still queued.
                        while let Ok(f) = rx.try_recv() {
                            push(&mut seg, &f);
                        }
                        let mut w = live.write();
                        seg.finish(&mut w);
                        w.live = false;
                        drop(w);
                        publish(&mut seg, false);
                        end_at = Some(Instant::now() + grace);
                        info!(grace_s = c.end_grace, "publisher left; playlist ends after the grace period");
                    }
                }
                live.notify();
            }
            _ = tokio::time::sleep_until(sleep_until), if end_at.is_some() => {
                end_at = None;
                live.write().ended = true;
                live.notify();
                info!("stream ended (EXT-X-ENDLIST)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::TrackId;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A media playlist is rendered once per change to the window (or to its time-shift
    /// segments), and every viewer in between shares the same bytes.
    #[test]
    fn a_playlist_is_rendered_once_per_change() {
        let live = LiveStream {
            name: "lobby".into(),
            window: RwLock::new(Window::new(std::time::SystemTime::UNIX_EPOCH)),
            changed: watch::Sender::new(0),
            cfg: LiveConfig::default(),
            recording: Default::default(),
            history: Default::default(),
            keys: Keys::Own(Arc::new(Sealer::clear())),
            playlists: Default::default(),
        };
        let renders = AtomicUsize::new(0);
        let render = |_: &Window| {
            let n = renders.fetch_add(1, Ordering::Relaxed);
            Some(format!("#EXTM3U\n# render {n}\n"))
        };
        let none: Arc<Vec<window::Segment>> = Arc::default();
        let a = live
            .rendered(TrackId::Video, false, &none, render)
            .expect("body");
        // Another empty time-shift list is the same list.
        let b = live
            .rendered(TrackId::Video, false, &Arc::default(), render)
            .expect("body");
        assert_eq!(a.as_ptr(), b.as_ptr(), "shared, not rendered again");
        assert_eq!(renders.load(Ordering::Relaxed), 1);
        // Each track has its own, and so has a track's delta update.
        live.rendered(TrackId::Audio, false, &none, render)
            .expect("body");
        assert_eq!(renders.load(Ordering::Relaxed), 2);
        live.rendered(TrackId::Audio, true, &none, render)
            .expect("body");
        assert_eq!(renders.load(Ordering::Relaxed), 3);
        live.rendered(TrackId::Audio, true, &none, render)
            .expect("body");
        assert_eq!(renders.load(Ordering::Relaxed), 3);
        // A change to the window renders it again.
        live.notify();
        let c = live
            .rendered(TrackId::Video, false, &none, render)
            .expect("body");
        assert_eq!(&c[..], b"#EXTM3U\n# render 3\n");
        assert_eq!(renders.load(Ordering::Relaxed), 4);
        // Nothing to render is not kept.
        live.notify();
        assert!(live
            .rendered(TrackId::Video, false, &none, |_| None)
            .is_none());
        live.rendered(TrackId::Video, false, &none, render)
            .expect("body");
        assert_eq!(renders.load(Ordering::Relaxed), 5);
    }
}
