//! HLS playlists (RFC 8216bis): the multivariant playlist (§4.4.6) and LL-HLS media
//! playlists with partial segments (§4.4.4.9), preload hints (§4.4.5.3), blocking
//! reload (§6.2.5.2) and, for encrypted streams, `EXT-X-KEY` (§4.4.4.4; see
//! [`crate::protect`]).
//!
//! URIs are relative to the playlist: `video.m3u8` lists `video/seg-12.m4s`,
//! `video/part-13-2.m4s` and `video/init-0.mp4`.

use super::window::{Segment, TrackWindow, Window};
use crate::media::{TrackId, TrackParams};
use crate::protect::Kid;
use std::fmt::Write;
use std::time::SystemTime;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Parts are listed only for segments this many target durations from the live edge
/// (RFC 8216bis §4.4.4.9: "at least … three Target Durations").
const PART_LIST_TARGETS: f64 = 3.0;

/// ISO 8601 / RFC 3339 with milliseconds, UTC.
pub fn iso8601(t: SystemTime) -> String {
    let dt = OffsetDateTime::from(t);
    let dt = dt
        .replace_nanosecond(dt.millisecond() as u32 * 1_000_000)
        .unwrap_or(dt);
    dt.format(&Rfc3339).unwrap_or_default()
}

/// EXT-X-TARGETDURATION: the configured target, or the longest segment rounded, whichever
/// is larger (§4.4.3.1: every EXTINF rounded must not exceed it).
pub fn target_duration(w: &Window, segment_target: f64) -> u64 {
    let longest = w
        .tracks
        .values()
        .flat_map(|t| t.segments.iter())
        .map(|s| s.seconds().round() as u64)
        .max()
        .unwrap_or(0);
    longest.max(segment_target.ceil() as u64).max(1)
}

/// A rendition made from the stream (an ABR rung of its video, or its audio transcoded
/// to stereo), for the multivariant playlist.
#[derive(Debug, Clone)]
pub struct Rung {
    /// Its media playlist, relative to the multivariant one (`720p.m3u8`).
    pub uri: String,
    /// Its parameters (codec; size or channels).
    pub params: std::sync::Arc<TrackParams>,
    /// Peak and average bitrate of its segments, bit/s.
    pub peak: u64,
    /// See `peak`.
    pub average: u64,
    /// Frames per second.
    pub frame_rate: Option<f64>,
}

/// The multivariant playlist (RFC 8216bis §4.4.6): a variant with the video playlist and
/// an audio rendition group, or an audio-only variant; then a variant per rung in
/// `rungs`, each sharing the audio group. With `stereo`, the audio group is that
/// rendition (the source's audio transcoded) instead of the source's audio. `None`
/// until the window has parameters.
pub fn multivariant(w: &Window, rungs: &[Rung], stereo: Option<&Rung>) -> Option<String> {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let source_audio = match (
        w.current_params(TrackId::Audio),
        w.tracks.get(&TrackId::Audio),
    ) {
        (Some(p), Some(tw)) => Some(Rung {
            uri: "audio.m3u8".into(),
            params: p.clone(),
            peak: tw.peak_bitrate(),
            average: tw.average_bitrate(),
            frame_rate: None,
        }),
        _ => None,
    };
    let (Some(video), Some(vw)) = (
        w.current_params(TrackId::Video),
        w.tracks.get(&TrackId::Video),
    ) else {
        // Audio only: one variant, the source's audio.
        let a = source_audio?;
        let _ = writeln!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"\naudio.m3u8",
            a.peak.max(1),
            a.average.max(1),
            a.params.codec_string()
        );
        return Some(out);
    };
    let group = stereo.cloned().or(source_audio);
    if let Some(g) = &group {
        let channels = match &*g.params {
            TrackParams::Audio(c) => c.channels,
            TrackParams::Video(_) => 2,
        };
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"main\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"{channels}\",URI=\"{}\"",
            g.uri
        );
    }
    let source = Rung {
        uri: "video.m3u8".into(),
        params: video.clone(),
        peak: vw.peak_bitrate(),
        average: vw.average_bitrate(),
        frame_rate: w.frame_rate,
    };
    for v in std::iter::once(&source).chain(rungs) {
        variant(&mut out, v, group.as_ref());
    }
    Some(out)
}

/// One EXT-X-STREAM-INF (§4.4.6.2) of video `v` with the audio group `audio`, whose
/// bitrate counts in the variant's.
fn variant(out: &mut String, v: &Rung, audio: Option<&Rung>) {
    let TrackParams::Video(c) = &*v.params else {
        return;
    };
    let codecs: Vec<String> = std::iter::once(v.params.codec_string())
        .chain(audio.map(|a| a.params.codec_string()))
        .collect();
    let _ = write!(
        out,
        "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\",RESOLUTION={}x{}",
        (v.peak + audio.map_or(0, |a| a.peak)).max(1),
        (v.average + audio.map_or(0, |a| a.average)).max(1),
        codecs.join(","),
        c.width,
        c.height
    );
    if let Some(fps) = v.frame_rate {
        let _ = write!(out, ",FRAME-RATE={fps:.3}");
    }
    if audio.is_some() {
        out.push_str(",AUDIO=\"audio\"");
    }
    let _ = writeln!(out, "\n{}", v.uri);
}

/// The rendition of `track` in a rung's window, once live with a complete segment.
pub fn rung(uri: String, w: &Window, track: TrackId) -> Option<Rung> {
    let tw = w.tracks.get(&track)?;
    if !w.live || w.ended || !tw.segments.iter().any(|s| s.complete) {
        return None;
    }
    Some(Rung {
        uri,
        params: w.current_params(track)?.clone(),
        peak: tw.peak_bitrate(),
        average: tw.average_bitrate(),
        frame_rate: w.frame_rate,
    })
}

/// Where the next partial segment of a track will be: `(msn, part index)`.
pub fn next_part(w: &Window, tw: &TrackWindow) -> (u64, usize) {
    match tw.segments.back() {
        Some(s) if !s.complete => (s.msn, s.parts.len()),
        _ => (w.next_msn, 0),
    }
}

/// The LL-HLS media playlist of one track, its media under `dir/` (the track's name, or
/// an ABR rung's). `None` when the stream has no such track.
///
/// `older` are recorded segments that play straight into the window (time-shift, oldest
/// first, their discontinuities flagged as the segmenter flagged them); they are listed
/// before it, and the discontinuity sequence counts only what precedes them.
///
/// The playlist offers delta updates (`CAN-SKIP-UNTIL`, six target durations: the least
/// RFC 8216bis §4.4.3.8 allows). With `delta` (a request's `_HLS_skip=YES`, §6.2.5.1) the
/// segments that end more than that before the live edge are left out and counted in
/// `EXT-X-SKIP:SKIPPED-SEGMENTS` (§4.4.5.2): with two hours of time-shift listed, a
/// reload is then a few kilobytes instead of a few hundred.
pub fn media_playlist(
    w: &Window,
    track: TrackId,
    dir: &str,
    segment_target: f64,
    part_target: f64,
    older: &[Segment],
    delta: bool,
) -> Option<String> {
    let tw = w.tracks.get(&track)?;
    let name = dir;
    let older_longest = older
        .iter()
        .map(|s| s.seconds().round() as u64)
        .max()
        .unwrap_or(0);
    let td = target_duration(w, segment_target).max(older_longest);
    let older_flags = older.iter().filter(|s| s.discontinuity).count() as u64;
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{td}\n\
         #EXT-X-PART-INF:PART-TARGET={part_target:.3}\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={:.3},PART-HOLD-BACK={:.3},HOLD-BACK={:.3}\n\
         #EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-DISCONTINUITY-SEQUENCE:{}\n",
        skip_until(td),
        part_target * 3.0,
        td as f64 * 3.0,
        older
            .first()
            .or(tw.segments.front())
            .map_or(w.next_msn, |s| s.msn),
        tw.discontinuity_sequence.saturating_sub(older_flags),
    );
    let live_edge = tw
        .segments
        .back()
        .map_or(0.0, |s| s.start_seconds() + s.seconds());
    // Delta update: the oldest segments that end before the skip boundary, complete.
    let skipped = if delta {
        let boundary = live_edge - skip_until(td);
        older
            .iter()
            .chain(tw.segments.iter())
            .take_while(|s| s.complete && s.start_seconds() + s.seconds() < boundary)
            .count()
    } else {
        0
    };
    if skipped > 0 {
        let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
    }
    let mut epoch = None;
    // The key in force (§4.4.4.4): none at the top (of what is listed).
    let mut key: Option<Kid> = None;
    for s in older.iter().chain(tw.segments.iter()).skip(skipped) {
        // Also on the first listed segment: EXT-X-DISCONTINUITY-SEQUENCE counts only the
        // segments trimmed off, so a segment keeps its discontinuity sequence number from
        // reload to reload (RFC 8216bis §6.2.2) as the window slides past a discontinuity.
        if s.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if epoch != Some(s.epoch) {
            // Init segments stay in the clear: no key applies to an EXT-X-MAP.
            announce_key(&mut out, &mut key, None);
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{name}/init-{}.mp4\"", s.epoch);
            epoch = Some(s.epoch);
        }
        announce_key(&mut out, &mut key, s.sealing.as_ref().map(|x| x.key.kid));
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(s.pdt));
        let end = s.start_seconds() + s.seconds();
        if !s.complete || live_edge - end < PART_LIST_TARGETS * td as f64 {
            for (i, p) in s.parts.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "#EXT-X-PART:DURATION={:.5},URI=\"{name}/part-{}-{i}.m4s\"{}",
                    p.duration as f64 / f64::from(s.timescale),
                    s.msn,
                    if p.independent {
                        ",INDEPENDENT=YES"
                    } else {
                        ""
                    }
                );
            }
        }
        if s.complete {
            let _ = writeln!(out, "#EXTINF:{:.5},\n{name}/seg-{}.m4s", s.seconds(), s.msn);
        }
    }
    if w.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    } else {
        let (msn, part) = next_part(w, tw);
        if msn == w.next_msn && part == 0 {
            // The hinted part opens a segment not listed yet: announce its key, which
            // cannot change before it opens (`Window::sealing`).
            announce_key(&mut out, &mut key, w.sealing.as_ref().map(|k| k.kid));
        }
        let _ = writeln!(
            out,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{name}/part-{msn}-{part}.m4s\""
        );
    }
    Some(out)
}

/// The skip boundary of delta updates, in seconds: six target durations
/// (`CAN-SKIP-UNTIL`, RFC 8216bis §4.4.3.8).
fn skip_until(td: u64) -> f64 {
    td as f64 * 6.0
}

/// Writes an EXT-X-KEY tag (RFC 8216bis §4.4.4.4) when `want` is not the key in force
/// (`key`): `METHOD=AES-128` with the key's URI (`keys/KID.key`, relative to the
/// playlist, so a viewer link in the path stays in it) and no IV (the media sequence
/// number is the IV, §5.2), or `METHOD=NONE` for clear media.
fn announce_key(out: &mut String, key: &mut Option<Kid>, want: Option<Kid>) {
    if *key == want {
        return;
    }
    match want {
        Some(kid) => {
            let _ = writeln!(out, "#EXT-X-KEY:METHOD=AES-128,URI=\"keys/{kid}.key\"");
        }
        None => out.push_str("#EXT-X-KEY:METHOD=NONE\n"),
    }
    *key = want;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packager::window::TrackWindow;
    use std::time::{Duration, UNIX_EPOCH};

    fn segment(msn: u64, epoch: u32, discontinuity: bool) -> Segment {
        Segment {
            msn,
            epoch,
            discontinuity,
            start: msn * 180_000,
            timescale: 90_000,
            duration: 180_000,
            parts: Vec::new(),
            complete: true,
            pdt: UNIX_EPOCH + Duration::from_secs(msn * 2),
            sealing: None,
            sealed: None,
        }
    }

    /// The discontinuity sequence number of each listed segment, by media sequence number.
    fn sequence_numbers(playlist: &str) -> Vec<(u64, u64)> {
        let mut dsn: u64 = playlist
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:"))
            .and_then(|v| v.parse().ok())
            .expect("DSN");
        let mut out = Vec::new();
        for line in playlist.lines() {
            if line == "#EXT-X-DISCONTINUITY" {
                dsn += 1;
            } else if let Some(msn) = line
                .strip_prefix("video/seg-")
                .and_then(|l| l.strip_suffix(".m4s"))
            {
                out.push((msn.parse().expect("msn"), dsn));
            }
        }
        out
    }

    #[test]
    fn keys_are_announced_where_they_change_init_segments_stay_clear_and_the_next_key_comes_before_the_hint(
    ) {
        use crate::protect::{ContentKey, Kid, Sealing};
        use std::sync::Arc;
        let key = |b: u8| {
            Arc::new(ContentKey {
                kid: Kid([b; 16]),
                stream: crate::streams::StreamUid::new(),
                key: [b; 16],
                created_ms: 0,
            })
        };
        let (a, b) = (key(0xaa), key(0xbb));
        let sealed = |msn, epoch, k: &Arc<ContentKey>| Segment {
            sealing: Some(Sealing::new(k.clone(), msn)),
            ..segment(msn, epoch, epoch > 0 && msn == 2)
        };
        let mut w = Window::new(UNIX_EPOCH);
        let mut tw = TrackWindow::default();
        tw.segments
            .extend([segment(0, 0, false), sealed(1, 0, &a), sealed(2, 1, &a)]);
        w.tracks.insert(TrackId::Video, tw);
        w.next_msn = 3;
        w.sealing = Some(b.clone());
        let p =
            media_playlist(&w, TrackId::Video, "video", 2.0, 0.5, &[], false).expect("playlist");
        let tags: Vec<&str> = p
            .lines()
            .filter(|l| {
                l.starts_with("#EXT-X-KEY")
                    || l.starts_with("#EXT-X-MAP")
                    || l.starts_with("video/seg")
                    || l.starts_with("#EXT-X-PRELOAD")
            })
            .collect();
        let (ka, kb) = (
            format!(
                "#EXT-X-KEY:METHOD=AES-128,URI=\"keys/{}.key\"",
                "aa".repeat(16)
            ),
            format!(
                "#EXT-X-KEY:METHOD=AES-128,URI=\"keys/{}.key\"",
                "bb".repeat(16)
            ),
        );
        assert_eq!(
            tags,
            [
                "#EXT-X-MAP:URI=\"video/init-0.mp4\"",
                "video/seg-0.m4s",
                &ka,
                "video/seg-1.m4s",
                "#EXT-X-KEY:METHOD=NONE",
                "#EXT-X-MAP:URI=\"video/init-1.mp4\"",
                &ka,
                "video/seg-2.m4s",
                &kb,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"video/part-3-0.m4s\"",
            ],
            "{p}"
        );
    }

    #[test]
    fn a_delta_update_skips_what_ends_before_six_target_durations_and_keeps_the_rest() {
        use crate::protect::{ContentKey, Kid, Sealing};
        use std::sync::Arc;
        let key = Arc::new(ContentKey {
            kid: Kid([0xaa; 16]),
            stream: crate::streams::StreamUid::new(),
            key: [0xaa; 16],
            created_ms: 0,
        });
        // Twenty 2 s segments: the first ten recorded (time-shift), a discontinuity in
        // them, the last ones sealed.
        let all: Vec<Segment> = (0..20)
            .map(|msn| Segment {
                sealing: (msn >= 15).then(|| Sealing::new(key.clone(), msn)),
                ..segment(msn, u32::from(msn >= 4), msn == 4)
            })
            .collect();
        let mut w = Window::new(UNIX_EPOCH);
        let mut tw = TrackWindow::default();
        tw.segments.extend(all[10..].iter().cloned());
        w.tracks.insert(TrackId::Video, tw);
        w.next_msn = 20;
        let render = |delta| {
            media_playlist(&w, TrackId::Video, "video", 2.0, 0.5, &all[..10], delta)
                .expect("playlist")
        };
        let (full, delta) = (render(false), render(true));
        assert!(full.contains("CAN-SKIP-UNTIL=12.000,"), "{full}");
        assert!(!full.contains("#EXT-X-SKIP"), "{full}");
        // The live edge is at 40 s: what ends before 28 s (segments 0-12) is skipped.
        assert!(
            delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=13\n"),
            "{delta}"
        );
        let header = |p: &str| -> Vec<String> {
            p.lines()
                .filter(|l| {
                    l.starts_with("#EXT-X-MEDIA-SEQUENCE") || l.starts_with("#EXT-X-DISCONTINUITY-")
                })
                .map(str::to_string)
                .collect()
        };
        assert_eq!(
            header(&full),
            header(&delta),
            "the sequence numbers count the skipped"
        );
        // What is left is the full playlist's tail, starting with its init segment and
        // restating the key in force.
        let listed: Vec<&str> = delta
            .lines()
            .filter(|l| l.starts_with("video/seg"))
            .collect();
        assert_eq!(listed.first(), Some(&"video/seg-13.m4s"), "{delta}");
        assert_eq!(listed.len(), 7, "{delta}");
        let tail = delta
            .split("#EXT-X-SKIP:SKIPPED-SEGMENTS=13\n")
            .nth(1)
            .expect("after the skip");
        assert!(
            tail.starts_with("#EXT-X-MAP:URI=\"video/init-1.mp4\"\n"),
            "{delta}"
        );
        assert!(
            full.ends_with(tail.split_once('\n').map_or("", |t| t.1)),
            "{delta}"
        );
        let key_at = tail
            .find(&format!(
                "#EXT-X-KEY:METHOD=AES-128,URI=\"keys/{}.key\"",
                "aa".repeat(16)
            ))
            .expect("the key restated");
        assert!(
            tail.find("video/seg-14.m4s") < Some(key_at)
                && Some(key_at) < tail.find("video/seg-15.m4s"),
            "{delta}"
        );
        // Without time-shift: segments 10-12 end before 28 s.
        let window_only =
            media_playlist(&w, TrackId::Video, "video", 2.0, 0.5, &[], true).expect("playlist");
        assert!(
            window_only.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n"),
            "{window_only}"
        );
    }

    #[test]
    fn a_segment_keeps_its_discontinuity_sequence_as_the_window_slides() {
        let mut w = Window::new(UNIX_EPOCH);
        w.ended = true;
        let mut tw = TrackWindow::default();
        tw.segments.extend([
            segment(0, 0, false),
            segment(1, 1, true),
            segment(2, 1, false),
        ]);
        w.tracks.insert(TrackId::Video, tw);
        let mut seen = std::collections::BTreeMap::new();
        for _ in 0..3 {
            let p = media_playlist(&w, TrackId::Video, "video", 2.0, 0.5, &[], false)
                .expect("playlist");
            for (msn, dsn) in sequence_numbers(&p) {
                assert_eq!(
                    *seen.entry(msn).or_insert(dsn),
                    dsn,
                    "segment {msn} changed its DSN:\n{p}"
                );
            }
            // Trim the oldest, as the segmenter does.
            let tw = w.tracks.get_mut(&TrackId::Video).expect("track");
            if let Some(s) = tw.segments.pop_front() {
                tw.discontinuity_sequence += u64::from(s.discontinuity);
            }
        }
        assert_eq!(seen.get(&2), Some(&1));
    }
}
