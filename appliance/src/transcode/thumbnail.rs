//! Thumbnails: an H.264 keyframe decoded with OpenH264, scaled to the width asked for
//! (aspect ratio kept), and encoded as JPEG.
//!
//! Decoding runs on one dedicated thread behind a bounded queue ([`QUEUE`] jobs). Each
//! JPEG is cached per keyframe and width, and concurrent requests for the same one share
//! a single decode, so a hundred dashboard tiles cost one. Widths are rounded up to one
//! of [`WIDTHS`], so a client cannot make a decode of each width it can name; and a
//! request that needs a new decode asks the caller's limit first
//! ([`ThumbnailError::Limited`]). When the queue is full, a request gets the newest
//! thumbnail already made for that stream and width (an older keyframe), or
//! [`ThumbnailError::Busy`]; ingest never waits on any of this.

use crate::media::h264::AvcConfig;
use bytes::Bytes;
use prometheus::IntCounterVec;
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Jobs waiting for the decoder before requests are turned away.
pub const QUEUE: usize = 8;
/// Narrowest thumbnail, in pixels.
pub const MIN_WIDTH: u32 = 16;
/// Widest thumbnail, in pixels (never wider than the picture).
pub const MAX_WIDTH: u32 = 1920;
/// The widths made, in pixels: a request is rounded up to the next one.
pub const WIDTHS: [u32; 7] = [160, 320, 480, 640, 960, 1280, MAX_WIDTH];

/// The width made for a request of `asked` pixels of a picture `picture` pixels wide:
/// the next of [`WIDTHS`], never wider than the picture.
pub fn made_width(asked: u32, picture: u32) -> u32 {
    let w = WIDTHS
        .iter()
        .copied()
        .find(|w| *w >= asked)
        .unwrap_or(MAX_WIDTH);
    w.min(picture).max(MIN_WIDTH.min(picture))
}
/// JPEGs kept per stream and width.
const KEEP: usize = 32;
/// Bytes of JPEG the cache may hold in all; past it, the cache starts afresh (widths are
/// the client's choice, so the number of entries is not ours to bound otherwise).
const CACHE_BYTES: usize = 64 << 20;
/// JPEG quality, 1-100.
const QUALITY: u8 = 80;

/// A thumbnail could not be made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ThumbnailError {
    /// The decoder's queue is full and there is no older thumbnail to give.
    #[error("the thumbnail decoder is busy; try again shortly")]
    Busy,
    /// OpenH264 rejected the keyframe.
    #[error("the keyframe does not decode: {0}")]
    Decode(String),
    /// The JPEG could not be encoded.
    #[error("JPEG encoding failed: {0}")]
    Encode(String),
    /// The worker thread is gone.
    #[error("the thumbnail worker stopped")]
    Stopped,
    /// The client has asked for too many new pictures; it may again after this long.
    #[error("too many new thumbnails asked for; try again in {} s", .0.as_secs().max(1))]
    Limited(std::time::Duration),
}

/// Which picture a thumbnail shows: a stream (or recording) and a keyframe time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// `live/UID` or `dvr/UID`: the stream's identity, so a renamed or new stream never
    /// gets another's pictures.
    pub source: String,
    /// The keyframe's time (any unit fixed per source: ticks for live, ms for DVR).
    pub time: i64,
    /// Width in pixels.
    pub width: u32,
}

type Reply = oneshot::Sender<Result<Bytes, ThumbnailError>>;

struct Job {
    key: Key,
    config: AvcConfig,
    data: Bytes,
}

#[derive(Default)]
struct State {
    /// Per (source, width): (time, JPEG), oldest first.
    made: BTreeMap<(String, u32), Vec<(i64, Bytes)>>,
    /// Requests waiting on a job in the queue or being decoded.
    waiting: HashMap<Key, Vec<Reply>>,
    /// Bytes in `made`.
    bytes: usize,
}

/// The thumbnail service: a cache in front of one decoding thread.
pub struct Thumbnailer {
    jobs: SyncSender<Job>,
    state: Arc<Mutex<State>>,
    outcomes: IntCounterVec,
}

impl std::fmt::Debug for Thumbnailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Thumbnailer")
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Thumbnailer {
    /// Starts the decoding thread. `outcomes` (label `result`) counts requests (cached:
    /// answered from the cache; shared: joined a decode already asked for; queued: a new
    /// decode; stale: an older thumbnail while busy; busy: nothing to give) and decodes
    /// (decoded, failed).
    pub fn start(outcomes: IntCounterVec) -> Arc<Thumbnailer> {
        let (jobs, rx) = sync_channel::<Job>(QUEUE);
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let counts = outcomes.clone();
        let spawned = std::thread::Builder::new()
            .name("thumbnails".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    let result = render(&job.config, &job.data, job.key.width);
                    let outcome = if result.is_ok() { "decoded" } else { "failed" };
                    counts.with_label_values(&[outcome]).inc();
                    let mut s = lock(&shared);
                    if let Ok(jpeg) = &result {
                        if s.bytes + jpeg.len() > CACHE_BYTES {
                            s.made.clear();
                            s.bytes = 0;
                        }
                        s.bytes += jpeg.len();
                        let made = s
                            .made
                            .entry((job.key.source.clone(), job.key.width))
                            .or_default();
                        made.push((job.key.time, jpeg.clone()));
                        made.sort_by_key(|m| m.0);
                        let evicted = if made.len() > KEEP {
                            made.remove(0).1.len()
                        } else {
                            0
                        };
                        s.bytes -= evicted;
                    }
                    for reply in s.waiting.remove(&job.key).unwrap_or_default() {
                        let _ = reply.send(result.clone());
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the thumbnail thread");
        }
        Arc::new(Thumbnailer {
            jobs,
            state,
            outcomes,
        })
    }

    /// Forgets every thumbnail of the stream of identity `uid` (it is gone).
    pub fn forget(&self, uid: &str) {
        let mut s = lock(&self.state);
        let mut freed = 0;
        s.made.retain(|(source, _), made| {
            let keep = source.rsplit('/').next() != Some(uid);
            if !keep {
                freed += made.iter().map(|m| m.1.len()).sum::<usize>();
            }
            keep
        });
        s.bytes -= freed.min(s.bytes);
    }

    /// The JPEG of the keyframe `data` (AVCC NAL units decodable with `config`) at
    /// `key.width` pixels wide. `may_decode` is asked before a new decode is queued (not
    /// for a cached picture or one being made): `Err(wait)` refuses it.
    ///
    /// # Errors
    /// [`ThumbnailError`]; `Busy` only when no older thumbnail of the source exists;
    /// `Limited` when `may_decode` refused.
    pub async fn jpeg(
        &self,
        key: Key,
        config: &AvcConfig,
        data: &Bytes,
        may_decode: impl FnOnce() -> Result<(), std::time::Duration>,
    ) -> Result<Bytes, ThumbnailError> {
        let count = |outcome: &str| self.outcomes.with_label_values(&[outcome]).inc();
        let rx = {
            let mut guard = lock(&self.state);
            let s = &mut *guard;
            let made = s.made.get(&(key.source.clone(), key.width));
            if let Some((_, jpeg)) = made.and_then(|m| m.iter().find(|(t, _)| *t == key.time)) {
                count("cached");
                return Ok(jpeg.clone());
            }
            let (tx, rx) = oneshot::channel();
            if let Some(waiting) = s.waiting.get_mut(&key) {
                count("shared");
                waiting.push(tx);
            } else {
                if let Err(wait) = may_decode() {
                    count("limited");
                    return Err(ThumbnailError::Limited(wait));
                }
                let job = Job {
                    key: key.clone(),
                    config: config.clone(),
                    data: data.clone(),
                };
                match self.jobs.try_send(job) {
                    Ok(()) => {
                        count("queued");
                        s.waiting.insert(key.clone(), vec![tx]);
                    }
                    Err(TrySendError::Full(_)) => {
                        // Behind: the newest picture already made, if any.
                        let stale = made.and_then(|m| m.last()).map(|(_, jpeg)| jpeg.clone());
                        count(if stale.is_some() { "stale" } else { "busy" });
                        return stale.ok_or(ThumbnailError::Busy);
                    }
                    Err(TrySendError::Disconnected(_)) => return Err(ThumbnailError::Stopped),
                }
            }
            rx
        };
        rx.await.unwrap_or(Err(ThumbnailError::Stopped))
    }
}

/// Decodes, scales and encodes one keyframe. Runs on the worker thread.
fn render(config: &AvcConfig, data: &[u8], width: u32) -> Result<Bytes, ThumbnailError> {
    use openh264::formats::YUVSource;
    let stream = config
        .annex_b(data, true)
        .map_err(|e| ThumbnailError::Decode(e.to_string()))?;
    let mut decoder =
        openh264::decoder::Decoder::new().map_err(|e| ThumbnailError::Decode(e.to_string()))?;
    let decode_error = |e: openh264::Error| ThumbnailError::Decode(e.to_string());
    let (w, h, rgb) = {
        let picture = match decoder.decode(&stream).map_err(decode_error)? {
            Some(p) => p,
            None => {
                let mut rest = decoder.flush_remaining().map_err(decode_error)?;
                rest.pop()
                    .ok_or_else(|| ThumbnailError::Decode("no picture".into()))?
            }
        };
        let (w, h) = picture.dimensions();
        let mut rgb = vec![0u8; w * h * 3];
        picture.write_rgb8(&mut rgb);
        (w as u32, h as u32, rgb)
    };
    let image = image::RgbImage::from_raw(w, h, rgb)
        .ok_or_else(|| ThumbnailError::Decode("picture size mismatch".into()))?;
    let tw = width.clamp(MIN_WIDTH, MAX_WIDTH).min(w);
    let th = ((u64::from(h) * u64::from(tw) / u64::from(w.max(1))) as u32).max(2) & !1;
    let scaled = if (tw, th) == (w, h) {
        image
    } else {
        image::imageops::resize(&image, tw, th, image::imageops::FilterType::Triangle)
    };
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(&scaled)
        .map_err(|e| ThumbnailError::Encode(e.to_string()))?;
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::h264::tests::BBB_AVCC;

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        let config = AvcConfig::parse(Bytes::from_static(BBB_AVCC)).expect("avcC");
        assert!(config.annex_b(&[0, 0, 0, 9, 0x65], true).is_err());
        for data in [&[0u8, 0, 0, 2, 0x65, 0x88][..], &[0, 0, 0, 1, 0x41]] {
            assert!(render(&config, data, 320).is_err(), "{data:?}");
        }
    }
}

#[cfg(test)]
mod width_tests {
    use super::*;

    #[test]
    fn widths_round_up_to_a_few_sizes_within_the_picture() {
        let made: std::collections::BTreeSet<u32> = (MIN_WIDTH..=MAX_WIDTH)
            .map(|w| made_width(w, 1920))
            .collect();
        assert_eq!(made.into_iter().collect::<Vec<_>>(), WIDTHS.to_vec());
        assert_eq!(made_width(100, 1280), 160);
        assert_eq!(made_width(161, 1280), 320);
        assert_eq!(made_width(1500, 1280), 1280, "never wider than the picture");
        assert_eq!(made_width(300, 200), 200);
    }
}
