//! Live media over HTTP: the multivariant and media playlists (RFC 8216bis), the DASH
//! MPD, and the init segments, segments and parts they list.
//!
//! | path | what |
//! | --- | --- |
//! | `/live/{stream}/index.m3u8` | multivariant playlist |
//! | `/live/{stream}/{video,audio}.m3u8` | LL-HLS media playlist; `_HLS_msn`, `_HLS_part` block; `_HLS_skip` asks for a delta update |
//! | `/live/{stream}/manifest.mpd` | dynamic DASH manifest |
//! | `/live/{stream}/low-latency.mpd` | the same in DASH-IF's low-latency mode: the segment being written too |
//! | `/live/{stream}/{track}/init-{epoch}.mp4` | init segment |
//! | `/live/{stream}/{track}/seg-{msn}.m4s` | segment (its parts, concatenated); one being written is sent as it grows |
//! | `/live/{stream}/{track}/part-{msn}-{i}.m4s` | partial segment; the next one blocks |
//! | `/live/{stream}/{track}/cenc-init-{epoch}-{kid}.mp4` | init segment in Common Encryption (DASH) |
//! | `/live/{stream}/{track}/cenc-seg-{kid}-{msn}.m4s` | segment in Common Encryption under key `kid` (DASH) |
//! | `/live/{stream}/keys/{kid}.key` | a content key of an encrypted stream (never cached) |
//! | `POST /live/{stream}/keys/license` | ClearKey license: the keys a DASH player asks for |
//! | `/live/{stream}/{rung}.m3u8`, `/live/{stream}/{rung}/…` | an ABR rung (`720p`): its video, as a track |
//!
//! Playlists are cacheable for a second (blocking reloads, whose URLs are unique, for
//! longer); media is immutable. Errors are plain text that no cache keeps.

use super::error;
use crate::app::{App, LiveEntry};
use crate::dvr;
use crate::media::TrackId;
use crate::packager::window::Segment;
use crate::packager::{dash, hls, LiveStream, Window};
use crate::streams::StreamUid;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

const PLAYLIST: &str = "application/vnd.apple.mpegurl";
const MPD: &str = "application/dash+xml";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Delivery directives (RFC 8216bis §6.2.5): blocking playlist reload (`_HLS_msn`,
/// `_HLS_part`, §6.2.5.2) and delta updates (`_HLS_skip`, §6.2.5.1).
#[derive(Debug, serde::Deserialize)]
pub struct HlsQuery {
    #[serde(rename = "_HLS_msn")]
    msn: Option<u64>,
    #[serde(rename = "_HLS_part")]
    part: Option<usize>,
    /// `YES` (or `v2`: there are no date ranges to skip): a delta update.
    #[serde(rename = "_HLS_skip")]
    skip: Option<String>,
}

fn text(content_type: &'static str, cache: &'static str, body: impl Into<Body>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body.into(),
    )
        .into_response()
}

/// Finds the live entry of the stream named `name` now, or the response that says why
/// there is none.
async fn entry(app: &App, name: &str) -> Result<LiveEntry, Response> {
    if let Some(e) = app.stream(name) {
        return Ok(e);
    }
    if app.registry.directory().by_name(name).is_some() {
        Err(error(
            StatusCode::NOT_FOUND,
            format!("stream {name:?} is not live"),
        ))
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            format!("no stream named {name:?}"),
        ))
    }
}

/// How long a request waits for the first segment of a stream that is starting.
fn startup_wait(live: &LiveStream) -> Duration {
    Duration::from_secs_f64(live.cfg.segment_target * 3.0 + 10.0)
}

/// How long a blocking request waits (RFC 8216bis §6.2.5.2: three target durations).
fn block_wait(w: &Window, live: &LiveStream) -> Duration {
    Duration::from_secs_f64(hls::target_duration(w, live.cfg.segment_target) as f64 * 3.0)
}

async fn wait_playable(live: &LiveStream) -> Result<(), Response> {
    if live
        .wait_until(startup_wait(live), Window::is_playable)
        .await
    {
        Ok(())
    } else {
        Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("stream {:?} has no segment yet", live.name),
        ))
    }
}

/// `GET /live/{stream}/{file}`: `index.m3u8`, `video.m3u8`, `audio.m3u8`, `manifest.mpd`,
/// `low-latency.mpd`.
pub async fn playlist(
    State(app): State<App>,
    Path((stream, file)): Path<(String, String)>,
    Query(q): Query<HlsQuery>,
    grant: Option<axum::Extension<super::visitor::Grant>>,
    scheme: Option<axum::Extension<super::Scheme>>,
    headers: HeaderMap,
) -> Response {
    let e = match entry(&app, &stream).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let track = file.strip_suffix(".m3u8").and_then(TrackId::from_name);
    // An ABR rung's media playlist: `720p.m3u8`. A rung waiting for room that has never
    // run has nothing to say yet.
    let rung = match file.strip_suffix(".m3u8") {
        Some(name) if track.is_none() && name != "index" => match e.renditions.get(name) {
            Some(r) if r.running() || r.output.read().is_playable() => Some(r),
            _ => {
                return error(
                    StatusCode::NOT_FOUND,
                    format!("no {file:?} in stream {stream:?}"),
                )
            }
        },
        _ => None,
    };
    let mpd = matches!(file.as_str(), "manifest.mpd" | "low-latency.mpd");
    if track.is_none() && rung.is_none() && file != "index.m3u8" && !mpd {
        return error(
            StatusCode::NOT_FOUND,
            format!("no {file:?} in stream {stream:?}"),
        );
    }
    app.metrics
        .playlist_requests
        .with_label_values(&[&stream])
        .inc();
    if let Some(r) = rung {
        if let Err(resp) = wait_playable(&r.output).await {
            return resp;
        }
        return media_playlist(&app, &e.uid, &r.output, r.track, &r.name, &q).await;
    }
    let live = &*e.output;
    let cfg = &live.cfg;
    if let Err(r) = wait_playable(live).await {
        return r;
    }
    match file.as_str() {
        "index.m3u8" => {
            // Rung windows are read before the source's, never while holding it (see
            // segmenter::Follow).
            let (rungs, stereo) = (rungs(&e), stereo(&e));
            match hls::multivariant(&live.read(), &rungs, stereo.as_ref()) {
                Some(body) => text(PLAYLIST, "public, max-age=2", body),
                None => error(StatusCode::SERVICE_UNAVAILABLE, "stream has no tracks yet"),
            }
        }
        "manifest.mpd" | "low-latency.mpd" => {
            let origin = origin(&headers, scheme.map(|s| s.0));
            let time_url = format!("{origin}/time");
            let link = grant.as_ref().map(|g| &g.0);
            let license_url = license_url(&origin, link, &stream);
            // Time-shift: an encrypted stream's recorded segments are listed under the
            // keys they went out under, and served in Common Encryption.
            let mut older = std::collections::BTreeMap::new();
            for track in TrackId::ALL {
                older.insert(track, time_shift(&app, &e.uid, live, track).await);
            }
            // Rung windows first, then the source's (see segmenter::Follow).
            let running = e.renditions.running();
            let windows: Vec<_> = running.iter().map(|r| r.output.read()).collect();
            let audio = e.renditions.audio();
            let audio_window = audio.as_ref().map(|r| r.output.read());
            let rungs: Vec<dash::Rung<'_>> = running
                .iter()
                .zip(&windows)
                .map(|(r, w)| dash::Rung {
                    name: &r.name,
                    window: w,
                })
                .collect();
            let body = dash::manifest(
                &live.read(),
                cfg.segment_target,
                cfg.window,
                &time_url,
                &license_url,
                &older,
                &rungs,
                audio
                    .as_ref()
                    .zip(audio_window.as_deref())
                    .map(|(r, w)| dash::Rung {
                        name: &r.name,
                        window: w,
                    }),
                (file == "low-latency.mpd").then(|| low_latency(cfg)),
            );
            drop(rungs);
            drop(windows);
            drop(audio_window);
            // A link's token in the body: for that viewer alone.
            let cache = if grant.is_some() {
                "private, max-age=1"
            } else {
                "public, max-age=1"
            };
            text(MPD, cache, body)
        }
        _ => match track {
            Some(track) => media_playlist(&app, &e.uid, live, track, track.name(), &q).await,
            None => error(
                StatusCode::NOT_FOUND,
                format!("no {file:?} in stream {stream:?}"),
            ),
        },
    }
}

/// The low-latency MPD's settings: chunks are the LL-HLS parts, and players hold five
/// of them (at least a second) behind live, as hls.js holds PART-HOLD-BACK.
fn low_latency(cfg: &crate::config::LiveConfig) -> dash::LowLatency {
    dash::LowLatency {
        chunk: cfg.part_target,
        target: (cfg.part_target * 5.0).max(1.0),
    }
}

/// The origin (`http://host:port`) a request was made to, for absolute URLs in an
/// MPD. The Host header goes into a cacheable body: only a plausible host:port, else
/// `localhost`.
pub(super) fn origin(headers: &HeaderMap, scheme: Option<super::Scheme>) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b".-:[]".contains(&c))
        })
        .unwrap_or("localhost");
    match scheme {
        Some(super::Scheme::Https) => format!("https://{host}"),
        _ => format!("http://{host}"),
    }
}

/// The ClearKey license server of `stream` at `origin`, through the viewer's link when
/// they came by one (`link`): an absolute URL, as dash.js uses it as it is (against the
/// page, not the MPD).
pub(super) fn license_url(
    origin: &str,
    link: Option<&super::visitor::Grant>,
    stream: &str,
) -> String {
    let prefix = link.map(|g| format!("/t/{}", g.token)).unwrap_or_default();
    format!("{origin}{prefix}/live/{stream}/keys/license")
}

/// Whether stream `uid` is encrypted now ([`crate::protect`]).
fn encrypted(app: &App, uid: &StreamUid) -> bool {
    app.registry
        .directory()
        .by_uid(uid)
        .is_some_and(|n| n.protection.is_some())
}

/// The transcoded audio rendition, once live with a segment, as the audio group.
fn stereo(e: &LiveEntry) -> Option<hls::Rung> {
    let r = e.renditions.audio()?;
    let w = r.output.read();
    hls::rung(format!("{}.m3u8", r.name), &w, TrackId::Audio)
}

/// The variants of the stream's ABR rungs that are live and have a segment.
fn rungs(e: &LiveEntry) -> Vec<hls::Rung> {
    e.renditions
        .running()
        .iter()
        .filter_map(|r| hls::rung(format!("{}.m3u8", r.name), &r.output.read(), TrackId::Video))
        .collect()
}

/// Recorded segments that play straight into the window of `track`, for time-shift:
/// while the stream is recorded and `live.dvr_window` allows, cached for a few seconds
/// (the window's head moves every segment).
async fn time_shift(
    app: &App,
    uid: &StreamUid,
    live: &LiveStream,
    track: TrackId,
) -> Arc<Vec<Segment>> {
    use std::sync::atomic::Ordering;
    if live.cfg.dvr_window <= 0.0 || !live.recording.load(Ordering::Relaxed) {
        return Arc::default();
    }
    let head = live
        .read()
        .tracks
        .get(&track)
        .and_then(|t| t.segments.front())
        .map(|s| s.msn);
    let Some(head) = head else {
        return Arc::default();
    };
    let cached = live
        .history
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&track)
        .filter(|(h, at, _)| *h == head && at.elapsed() < Duration::from_secs(5))
        .map(|c| c.2.clone());
    if let Some(c) = cached {
        return c;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let since = now_ms - (live.cfg.dvr_window * 1000.0) as i64;
    let run = dvr::run_id(live);
    match dvr::history(&app.db, &app.keyring, uid, track, run, head, since).await {
        Ok(mut segments) => {
            if encrypted(app, uid) {
                // Listed as they went out live, and never clear: only the recorded
                // segments just before the window that were sealed.
                let clear = segments.iter().rposition(|s| s.sealing.is_none());
                if let Some(i) = clear {
                    segments.drain(..=i);
                }
            } else {
                // A clear stream's recordings are served clear.
                for s in &mut segments {
                    s.sealing = None;
                }
            }
            let segments = Arc::new(segments);
            live.history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(track, (head, std::time::Instant::now(), segments.clone()));
            segments
        }
        Err(e) => {
            tracing::warn!(stream = %live.name, error = %e, "time-shift history unavailable");
            Arc::default()
        }
    }
}

async fn media_playlist(
    app: &App,
    uid: &StreamUid,
    live: &LiveStream,
    track: TrackId,
    dir: &str,
    q: &HlsQuery,
) -> Response {
    let cfg = &live.cfg;
    let mut cache = "public, max-age=1";
    let delta = match q.skip.as_deref() {
        None => false,
        Some("YES" | "v2") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("_HLS_skip={other:?}: YES or v2"),
            )
        }
    };
    if q.part.is_some() && q.msn.is_none() {
        // RFC 8216bis §6.2.5.2: _HLS_part without _HLS_msn is a bad request.
        return error(StatusCode::BAD_REQUEST, "_HLS_part needs _HLS_msn");
    }
    if let Some(msn) = q.msn {
        let (next_msn, wait) = {
            let w = live.read();
            (w.next_msn, block_wait(&w, live))
        };
        // RFC 8216bis §6.2.5.2: more than two segments ahead is a bad request.
        if msn > next_msn + 2 {
            return error(
                StatusCode::BAD_REQUEST,
                format!("_HLS_msn={msn} is too far past the live edge ({next_msn})"),
            );
        }
        let part = q.part;
        let arrived = move |w: &Window| {
            if w.ended || !w.live && w.next_msn > msn {
                return true;
            }
            let Some(tw) = w.tracks.get(&track) else {
                return true;
            };
            if tw.segments.back().is_some_and(|s| s.msn > msn) {
                return true;
            }
            match (tw.segment(msn), part) {
                (Some(s), Some(p)) => s.complete || s.parts.len() > p,
                (Some(s), None) => s.complete,
                (None, _) => tw.segments.front().is_some_and(|s| s.msn > msn),
            }
        };
        if !live.wait_until(wait, arrived).await {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the requested part did not arrive in time",
            );
        }
        cache = "public, max-age=6";
    }
    let older = time_shift(app, uid, live, track).await;
    let rendered = live.rendered(track, delta, &older, |w| {
        hls::media_playlist(
            w,
            track,
            dir,
            cfg.segment_target,
            cfg.part_target,
            &older,
            delta,
        )
    });
    match rendered {
        Some(body) => text(PLAYLIST, cache, body),
        None => error(
            StatusCode::NOT_FOUND,
            format!("stream has no {} track", track.name()),
        ),
    }
}

enum MediaFile {
    Init(u32),
    Segment(u64),
    Part(u64, usize),
    /// An init segment in Common Encryption under a key ID (DASH).
    CencInit(u32, crate::protect::Kid),
    /// A segment in Common Encryption (DASH) under the key ID its Period lists: a
    /// segment under another key is refused, never sent for the player to decrypt with
    /// the wrong key.
    CencSegment(u64, crate::protect::Kid),
}

fn parse_media_file(file: &str) -> Option<MediaFile> {
    if let Some(rest) = file
        .strip_prefix("cenc-init-")
        .and_then(|f| f.strip_suffix(".mp4"))
    {
        let (epoch, kid) = rest.split_once('-')?;
        return Some(MediaFile::CencInit(epoch.parse().ok()?, kid.parse().ok()?));
    }
    if let Some(rest) = file
        .strip_prefix("cenc-seg-")
        .and_then(|f| f.strip_suffix(".m4s"))
    {
        let (kid, msn) = rest.split_once('-')?;
        return Some(MediaFile::CencSegment(msn.parse().ok()?, kid.parse().ok()?));
    }
    if let Some(e) = file
        .strip_prefix("init-")
        .and_then(|f| f.strip_suffix(".mp4"))
    {
        return e.parse().ok().map(MediaFile::Init);
    }
    let stem = file.strip_suffix(".m4s")?;
    if let Some(n) = stem.strip_prefix("seg-") {
        return n.parse().ok().map(MediaFile::Segment);
    }
    let (msn, part) = stem.strip_prefix("part-")?.split_once('-')?;
    Some(MediaFile::Part(msn.parse().ok()?, part.parse().ok()?))
}

/// The sequence number of the segment a media file is.
fn segment_msn(f: &MediaFile) -> Option<u64> {
    match *f {
        MediaFile::Segment(msn) | MediaFile::CencSegment(msn, _) => Some(msn),
        _ => None,
    }
}

fn segment(w: &Window, track: TrackId, msn: u64) -> Option<&Segment> {
    w.tracks.get(&track)?.segment(msn)
}

/// Whether segment `msn` of `track` is in another epoch, or under another key, than the
/// one before it: the first of a new DASH Period.
fn begins_period(w: &Window, track: TrackId, msn: u64) -> bool {
    let key = |s: &Segment| (s.epoch, s.sealing.as_ref().map(|x| x.key.kid));
    match (
        segment(w, track, msn),
        msn.checked_sub(1).and_then(|p| segment(w, track, p)),
    ) {
        (Some(s), Some(before)) => key(s) != key(before),
        _ => false,
    }
}

/// Whether segment `msn`, not begun in this track, is the next one the packager begins
/// in it: the open one (begun in another track), or the one after the open one, which
/// the low-latency MPD lists ahead.
fn upcoming(w: &Window, tw: &crate::packager::window::TrackWindow, msn: u64) -> bool {
    let open = tw
        .segments
        .back()
        .is_some_and(|s| !s.complete && s.msn == w.next_msn);
    !w.ended && (msn == w.next_msn || (open && msn == w.next_msn + 1))
}

/// What a media request resolves to, looked up under the window lock.
enum Lookup {
    Found(Vec<Bytes>),
    /// A segment being written, with a part already: sent as it grows ([`growing`]).
    Growing,
    /// Not there yet, but it is the next thing the packager will produce.
    Soon,
    /// A segment asked for under a key it is not sealed with.
    OtherKey,
    Gone,
}

fn lookup(w: &Window, track: TrackId, f: &MediaFile) -> Lookup {
    let Some(tw) = w.tracks.get(&track) else {
        return Lookup::Gone;
    };
    match *f {
        MediaFile::Init(e) => match w.epochs.get(&e).and_then(|ep| ep.tracks.get(&track)) {
            Some((_, init)) => Lookup::Found(vec![init.clone()]),
            None => Lookup::Gone,
        },
        MediaFile::Segment(msn) => match tw.segment(msn) {
            Some(s) if s.complete => Lookup::Found(s.served()),
            // A sealed segment is encrypted as one resource once complete: it waits.
            Some(s) if s.sealing.is_none() && !s.parts.is_empty() => Lookup::Growing,
            Some(_) => Lookup::Soon,
            None if upcoming(w, tw, msn) => Lookup::Soon,
            None => Lookup::Gone,
        },
        // Only for a key this track's window seals with: the URLs the MPD lists.
        MediaFile::CencInit(e, kid) => {
            let sealed_with = |s: &Segment| s.sealing.as_ref().is_some_and(|x| x.key.kid == kid);
            match w.epochs.get(&e).and_then(|ep| ep.tracks.get(&track)) {
                Some((params, _)) if tw.segments.iter().any(|s| s.epoch == e && sealed_with(s)) => {
                    Lookup::Found(vec![crate::media::fmp4::protected_init_segment(
                        params, &kid.0,
                    )])
                }
                _ => Lookup::Gone,
            }
        }
        MediaFile::CencSegment(msn, kid) => match tw.segment(msn) {
            // Listed in another key's Period (the low-latency MPD lists the next segment
            // ahead, before the key it will have is known).
            Some(s) if s.sealing.as_ref().is_some_and(|x| x.key.kid != kid) => Lookup::OtherKey,
            Some(s) if s.complete => s.cenc().map_or(Lookup::Gone, Lookup::Found),
            Some(s) if s.parts.first().is_some_and(|p| p.cenc.is_some()) => Lookup::Growing,
            Some(s) if s.sealing.is_none() => Lookup::Gone,
            Some(_) => Lookup::Soon,
            None if upcoming(w, tw, msn) => Lookup::Soon,
            None => Lookup::Gone,
        },
        MediaFile::Part(msn, i) => {
            if let Some(p) = tw.segment(msn).and_then(|s| s.parts.get(i)) {
                return Lookup::Found(vec![p.sealed.clone().unwrap_or_else(|| p.bytes.clone())]);
            }
            // The preload hint names the next part; a player may ask for it early.
            if !w.ended && hls::next_part(w, tw) == (msn, i) {
                Lookup::Soon
            } else {
                Lookup::Gone
            }
        }
    }
}

/// `GET /live/{stream}/keys/{kid}.key`: a content key of the stream (the 16 bytes of
/// its AES-128 key, RFC 8216bis §5.2), for its playlists' `EXT-X-KEY` tags. Behind the
/// viewer gate as the playlists are (a link to this stream, or an administrator's
/// session, for a private stream), rate-limited per client there, and never cached
/// (`Cache-Control: no-store`). A key ID that is not one of this stream's keys, or not
/// a key ID at all, is 404; every outcome is counted in `streambox_key_requests_total`.
pub async fn key(State(app): State<App>, Path((stream, file)): Path<(String, String)>) -> Response {
    let count = |outcome: &str| {
        app.metrics.key_requests.with_label_values(&[outcome]).inc();
    };
    let uid = app
        .registry
        .directory()
        .by_name(&stream)
        .map(|n| n.uid.clone());
    let found = file
        .strip_suffix(".key")
        .and_then(|k| k.parse::<crate::protect::Kid>().ok())
        .zip(uid.as_ref())
        .and_then(|(kid, uid)| app.keyring.of(uid, &kid));
    let Some(k) = found else {
        count("unknown");
        return error(
            StatusCode::NOT_FOUND,
            format!("no key {file:?} for stream {stream:?}"),
        );
    };
    count("served");
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Bytes::copy_from_slice(&k.key),
    )
        .into_response()
}

/// The largest ClearKey license request read: a few key IDs in JSON.
const LICENSE_REQUEST_MAX: usize = 4096;

/// A ClearKey license request (W3C Encrypted Media Extensions §9.1.3): the key IDs
/// wanted, base64url without padding.
#[derive(Debug, serde::Deserialize)]
struct LicenseRequest {
    kids: Vec<String>,
}

/// `POST /live/{stream}/keys/license`: the W3C ClearKey license server of a DASH player
/// (Encrypted Media Extensions §9.1.3, §9.1.4): given `{"kids": [..]}`, the stream's
/// keys with those IDs as a JSON Web Key Set (`{"keys": [{"kty": "oct", "kid", "k"}],
/// "type": "temporary"}`). Behind the viewer gate as the key route is, and counted and
/// rate-limited with it; never cached. A body that is no such request is 400; a key ID
/// that is not one of this stream's keys is 404, and then no key is given.
pub async fn license(
    State(app): State<App>,
    Path((stream, file)): Path<(String, String)>,
    body: Body,
) -> Response {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let count = |outcome: &str| {
        app.metrics.key_requests.with_label_values(&[outcome]).inc();
    };
    if file != "license" {
        count("unknown");
        return error(StatusCode::NOT_FOUND, format!("no {file:?} to post to"));
    }
    let limit = Duration::from_secs_f64(app.cfg.http.body_timeout);
    let bytes =
        match tokio::time::timeout(limit, axum::body::to_bytes(body, LICENSE_REQUEST_MAX)).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => {
                count("unknown");
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "a license request is a few key IDs",
                );
            }
            Err(_) => {
                count("unknown");
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    "the license request was too slow",
                );
            }
        };
    let request: LicenseRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            count("unknown");
            return error(
                StatusCode::BAD_REQUEST,
                format!("not a ClearKey license request ({{\"kids\": [..]}}): {e}"),
            );
        }
    };
    if request.kids.is_empty() || request.kids.len() > 16 {
        count("unknown");
        return error(StatusCode::BAD_REQUEST, "ask for 1 to 16 key IDs");
    }
    let uid = app
        .registry
        .directory()
        .by_name(&stream)
        .map(|n| n.uid.clone());
    let mut keys = Vec::with_capacity(request.kids.len());
    for kid in &request.kids {
        let found = URL_SAFE_NO_PAD
            .decode(kid.trim_end_matches('='))
            .ok()
            .and_then(|b| crate::protect::Kid::from_bytes(&b))
            .zip(uid.as_ref())
            .and_then(|(kid, uid)| app.keyring.of(uid, &kid));
        let Some(k) = found else {
            count("unknown");
            return error(
                StatusCode::NOT_FOUND,
                format!("no key {kid:?} for stream {stream:?}"),
            );
        };
        keys.push(serde_json::json!({
            "kty": "oct",
            "kid": URL_SAFE_NO_PAD.encode(k.kid.0),
            "k": URL_SAFE_NO_PAD.encode(k.key),
        }));
    }
    count("served");
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(serde_json::json!({ "keys": keys, "type": "temporary" })),
    )
        .into_response()
}

/// A recorded file of `track` (relative to the recordings directory) for time-shift:
/// with `key` (and the segment's sequence number), a segment encrypted under it as
/// `how` says ([`crate::protect::recorded`]).
async fn serve_recorded(
    app: &App,
    rel: &str,
    track: TrackId,
    key: Option<(Arc<crate::protect::ContentKey>, u64)>,
    how: crate::protect::Served,
) -> Response {
    let bytes = match tokio::fs::read(app.dvr.root.join(rel)).await {
        Ok(b) => Bytes::from(b),
        Err(_) => return error(StatusCode::NOT_FOUND, "the recording is gone"),
    };
    let body = match key {
        Some((key, msn)) => match crate::protect::recorded(&key, msn, track, &bytes, how) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        None => bytes,
    };
    media_body(track, vec![body])
}

/// `GET /live/{stream}/{track}/{file}`: init segments, segments and parts.
pub async fn media(
    State(app): State<App>,
    Path((stream, track, file)): Path<(String, String, String)>,
) -> Response {
    let e = match entry(&app, &stream).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            format!("no {track}/{file} in stream {stream:?}"),
        )
    };
    let Some(f) = parse_media_file(&file) else {
        return not_found();
    };
    // A source track, or an ABR rung's video.
    let rung = match TrackId::from_name(&track) {
        Some(_) => None,
        None => match e.renditions.get(&track) {
            Some(r) => Some(r),
            None => return not_found(),
        },
    };
    let t = match &rung {
        Some(r) => r.track,
        None => TrackId::from_name(&track).unwrap_or(TrackId::Video),
    };
    app.metrics
        .segment_requests
        .with_label_values(&[&stream])
        .inc();
    let live = rung.as_ref().map_or(&*e.output, |r| &*r.output);
    let mut found = lookup(&live.read(), t, &f);
    if matches!(found, Lookup::Soon) {
        let (wait, absent) = {
            let w = live.read();
            (
                block_wait(&w, live),
                segment_msn(&f).is_some_and(|n| segment(&w, t, n).is_none()),
            )
        };
        live.wait_until(wait, |w| !matches!(lookup(w, t, &f), Lookup::Soon))
            .await;
        let w = live.read();
        // A segment asked for before it began was predicted from the one before it
        // (the low-latency MPD lists the next segment in that one's Period): one that
        // begins another Period (epoch or key) is not what was asked for.
        if absent && segment_msn(&f).is_some_and(|n| begins_period(&w, t, n)) {
            return error(
                StatusCode::NOT_FOUND,
                format!("{track}/{file} begins a new period: read the manifest again"),
            );
        }
        found = lookup(&w, t, &f);
    }
    if let (Lookup::Growing, Some(msn)) = (&found, segment_msn(&f)) {
        let live = rung.as_ref().map_or(&e.output, |r| &r.output).clone();
        let cenc = matches!(f, MediaFile::CencSegment(..));
        return growing(live, t, msn, cenc);
    }
    let other_key = || {
        error(
            StatusCode::NOT_FOUND,
            format!("{track}/{file} is under another key: read the manifest again"),
        )
    };
    if matches!(found, Lookup::OtherKey) {
        return other_key();
    }
    let Lookup::Found(chunks) = found else {
        if rung.is_some() {
            // Rungs are not recorded.
            return not_found();
        }
        // Out of the window: time-shift serves it from the recording, if there is one.
        let encrypted = encrypted(&app, &e.uid);
        let (epoch, msn) = match f {
            MediaFile::Init(epoch) => (epoch, None),
            MediaFile::Segment(msn) | MediaFile::CencSegment(msn, _) => (0, Some(msn)),
            // The init segment of a Period of recorded segments only (the window has
            // none under its key): the epoch's parameters under one of the stream's
            // keys.
            MediaFile::CencInit(epoch, kid) if encrypted => {
                let params = live
                    .read()
                    .epochs
                    .get(&epoch)
                    .and_then(|ep| ep.tracks.get(&t))
                    .map(|(params, _)| params.clone());
                return match params.zip(app.keyring.of(&e.uid, &kid)) {
                    Some((params, _)) => media_body(
                        t,
                        vec![crate::media::fmp4::protected_init_segment(&params, &kid.0)],
                    ),
                    None => not_found(),
                };
            }
            MediaFile::Part(..) | MediaFile::CencInit(..) => return not_found(),
        };
        let how = match f {
            MediaFile::CencSegment(..) if !encrypted => return not_found(),
            MediaFile::CencSegment(..) => crate::protect::Served::CommonEncryption,
            _ => crate::protect::Served::Sealed,
        };
        let run = dvr::run_id(live);
        return match dvr::recorded_file(&app.db, &e.uid, t, run, epoch, msn).await {
            Ok(Some((_, kid))) if matches!(f, MediaFile::CencSegment(_, want) if kid != Some(want)) => {
                other_key()
            }
            Ok(Some((rel, kid))) => {
                // As the time-shift playlist lists it: an encrypted stream's segment under
                // the key it went out under live, never clear: sealed for HLS, in
                // Common Encryption for DASH. Init segments clear.
                let key = match (msn, encrypted) {
                    (Some(msn), true) => match kid.and_then(|k| app.keyring.of(&e.uid, &k)) {
                        Some(key) => Some((key, msn)),
                        None => return not_found(),
                    },
                    _ => None,
                };
                serve_recorded(&app, &rel, t, key, how).await
            }
            Ok(None) => not_found(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    };
    media_body(t, chunks)
}

/// Segment `msn` of `track` while it is being written (in Common Encryption with
/// `cenc`): its parts so far at once, then each as the packager adds it, until the
/// segment is complete; the same bytes as the complete segment, in chunked transfer
/// (low-latency DASH's chunked CMAF, DASH-IF IOP v5 Part 9). The body ends with an
/// error (the client sees a truncated response) when no part comes within the blocking
/// wait (three target durations) or the segment leaves the window unfinished.
fn growing(live: Arc<LiveStream>, track: TrackId, msn: u64, cenc: bool) -> Response {
    use futures_util::StreamExt;
    let gone = move |why: &str| std::io::Error::other(format!("segment {msn}: {why}"));
    // (the stream, parts sent, whether the last one was sent)
    let parts = futures_util::stream::unfold(
        (live, 0usize, false),
        move |(live, sent, done)| async move {
            if done {
                return None;
            }
            let segment = |w: &Window| -> Option<(Vec<Bytes>, usize, bool)> {
                let s = w.tracks.get(&track)?.segment(msn)?;
                let chunks = s.parts.get(sent..)?.iter().map(|p| {
                    if cenc {
                        p.cenc.clone().unwrap_or_default()
                    } else {
                        p.bytes.clone()
                    }
                });
                Some((chunks.collect(), s.parts.len(), s.complete))
            };
            let wait = block_wait(&live.read(), &live);
            let grew = live
                .wait_until(wait, |w| {
                    segment(w).is_none_or(|(c, _, done)| !c.is_empty() || done)
                })
                .await;
            let next = if grew { segment(&live.read()) } else { None };
            Some(match next {
                Some((chunks, n, complete)) => (Ok(chunks), (live, n, complete)),
                None if grew => (
                    Err(gone("it left the window unfinished")),
                    (live, sent, true),
                ),
                None => (Err(gone("no part came in time")), (live, sent, true)),
            })
        },
    )
    .flat_map(|r: Result<Vec<Bytes>, std::io::Error>| {
        let items: Vec<Result<Bytes, std::io::Error>> = match r {
            Ok(chunks) => chunks.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        futures_util::stream::iter(items)
    });
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(media_type(track)),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
        ],
        Body::from_stream(parts),
    )
        .into_response()
}

/// The MIME type of `track`'s CMAF media.
fn media_type(track: TrackId) -> &'static str {
    match track {
        TrackId::Video => "video/mp4",
        TrackId::Audio => "audio/mp4",
    }
}

/// A media response of `track` whose body is `chunks` in order, immutable.
fn media_body(track: TrackId, chunks: Vec<Bytes>) -> Response {
    let len: usize = chunks.iter().map(Bytes::len).sum();
    let content_type = media_type(track);
    let body = if chunks.len() == 1 {
        Body::from(chunks.into_iter().next().unwrap_or_default())
    } else {
        Body::from_stream(futures_util::stream::iter(
            chunks.into_iter().map(Ok::<_, Infallible>),
        ))
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
        ],
        body,
    )
        .into_response()
}
