//! Playing recordings back: a time range of a stream as a VOD HLS presentation
//! (RFC 8216bis §4.4: `EXT-X-PLAYLIST-TYPE:VOD`, `EXT-X-ENDLIST`), with an
//! `EXT-X-DISCONTINUITY` (and a new `EXT-X-MAP`) wherever the recording has a gap or
//! new codec parameters; and the recorded ranges and gaps as data for a timeline.
//!
//! Times on the wire are RFC 3339 (`2026-11-21T16:40:00Z`) or Unix seconds.

use super::{DvrError, Range, GAP_MS, MAX_SEGMENT_MS};
use crate::streams::StreamUid;
use sqlx::SqlitePool;
use std::fmt::Write;
use std::time::SystemTime;

/// The longest range served at once, in milliseconds (a day).
pub const MAX_RANGE_MS: i64 = 24 * 3600 * 1000;

/// A requested time range that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// A bound is missing or does not parse.
    #[error("{0}: give RFC 3339 times (2026-11-21T16:40:00Z) or Unix seconds")]
    Unparsable(String),
    /// `end` is not after `start`.
    #[error("the range ends before it starts")]
    WrongOrder,
    /// The range starts after now.
    #[error("the range starts in the future")]
    Future,
    /// Longer than [`MAX_RANGE_MS`].
    #[error("ranges longer than 24 hours are refused; ask for a shorter one")]
    TooLong,
}

/// A validated range of wall-clock time, ms since the Unix epoch, `start < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive start.
    pub start_ms: i64,
    /// Exclusive end.
    pub end_ms: i64,
}

/// Parses one time: RFC 3339, or (fractional) Unix seconds. `None` for anything else.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok();
    }
    let secs: f64 = s.parse().ok()?;
    (secs.is_finite() && (0.0..1e11).contains(&secs)).then_some((secs * 1000.0) as i64)
}

/// Validates `start` and `end` (as given in a query); `end` may lie in the future (the
/// recording goes on), `start` may not.
///
/// # Errors
/// [`RangeError`] saying what is wrong.
pub fn parse_range(start: Option<&str>, end: Option<&str>) -> Result<TimeRange, RangeError> {
    let one = |name: &str, v: Option<&str>| {
        v.and_then(parse_time)
            .ok_or_else(|| RangeError::Unparsable(format!("{name}={:?}", v.unwrap_or(""))))
    };
    check_range(one("start", start)?, one("end", end)?)
}

/// Validates the `from` and `to` of a listing; either may be left out: `to` is then now,
/// and `from` a day before `to`.
///
/// # Errors
/// [`RangeError`] saying what is wrong.
pub fn parse_span(from: Option<&str>, to: Option<&str>) -> Result<TimeRange, RangeError> {
    let one = |name: &str, v: &str| {
        parse_time(v).ok_or_else(|| RangeError::Unparsable(format!("{name}={v:?}")))
    };
    let end_ms = match to {
        Some(t) => one("to", t)?,
        None => now_ms(),
    };
    let start_ms = match from {
        Some(f) => one("from", f)?,
        None => end_ms.min(now_ms()) - MAX_RANGE_MS,
    };
    check_range(start_ms, end_ms)
}

use crate::db::unix_now_ms as now_ms;

fn check_range(start_ms: i64, end_ms: i64) -> Result<TimeRange, RangeError> {
    let now = now_ms();
    if end_ms <= start_ms {
        return Err(RangeError::WrongOrder);
    }
    if start_ms > now {
        return Err(RangeError::Future);
    }
    if end_ms - start_ms > MAX_RANGE_MS {
        return Err(RangeError::TooLong);
    }
    Ok(TimeRange { start_ms, end_ms })
}

/// One recorded segment as playback needs it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RecordedSegment {
    /// `video` or `audio`.
    pub track: String,
    /// The epoch (one set of codec parameters).
    pub epoch: String,
    /// Media sequence number, shared by the tracks of one live stream.
    pub msn: i64,
    /// Wall-clock start, ms since the Unix epoch.
    pub start_wall_ms: i64,
    /// Decode time of the first sample, ticks of `timescale` (the segment's `tfdt`).
    pub start: i64,
    /// Duration in ticks of `timescale`.
    pub duration: i64,
    /// Ticks per second.
    pub timescale: i64,
    /// Size in bytes.
    pub bytes: i64,
    /// File, relative to the recordings directory.
    pub path: String,
    /// Its init segment, relative to the recordings directory.
    pub init_path: String,
    /// RFC 6381 codecs value.
    pub codec: String,
    /// Video width in pixels (0 for audio).
    pub width: i64,
    /// Video height in pixels (0 for audio).
    pub height: i64,
    /// Audio channels (0 for video).
    pub channels: i64,
    /// The content key ID it was encrypted with while live (16 bytes; `None`: it went
    /// out in the clear).
    pub kid: Option<Vec<u8>>,
}

impl RecordedSegment {
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.duration as f64 / self.timescale.max(1) as f64
    }

    /// Wall-clock ms of sample `s` of this segment, whose first sample decodes at
    /// `first_dts` ticks.
    pub fn sample_wall_ms(&self, first_dts: u64, s: &crate::media::mp4::SampleRef) -> i64 {
        self.start_wall_ms
            + (s.dts.saturating_sub(first_dts) * 1000 / self.timescale.max(1) as u64) as i64
    }

    fn end_ms(&self) -> i64 {
        self.start_wall_ms + self.duration * 1000 / self.timescale.max(1)
    }
}

/// The recorded segments of `stream` overlapping `range`, per track: video first, then
/// audio with the same media sequence numbers (the tracks were cut together), oldest
/// first.
///
/// # Errors
/// A database error.
pub async fn segments(
    db: &SqlitePool,
    stream: &StreamUid,
    range: TimeRange,
) -> Result<(Vec<RecordedSegment>, Vec<RecordedSegment>), DvrError> {
    // A segment overlaps when it starts before the end and ends after the start.
    let rows: Vec<RecordedSegment> = sqlx::query_as(
        "SELECT track, epoch, msn, start_wall_ms, start, duration, timescale, bytes, path,
                init_path, codec, width, height, channels, kid
         FROM dvr_segments
         WHERE stream_uid = ? AND deleting = 0 AND start_wall_ms < ? AND start_wall_ms > ?
         ORDER BY start_wall_ms, msn",
    )
    .bind(stream)
    .bind(range.end_ms)
    .bind(range.start_ms - MAX_SEGMENT_MS)
    .fetch_all(db)
    .await?;
    let (video, audio): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .filter(|r| r.end_ms() > range.start_ms)
        .partition(|r| r.track == "video");
    if video.is_empty() {
        return Ok((video, audio));
    }
    let keys: std::collections::BTreeSet<(&str, i64)> =
        video.iter().map(|v| (v.epoch.as_str(), v.msn)).collect();
    let audio = audio
        .into_iter()
        .filter(|a| keys.contains(&(a.epoch.as_str(), a.msn)))
        .collect();
    Ok((video, audio))
}

/// How a recorded range is encrypted as it is served (HLS `METHOD=AES-128`, RFC 8216bis
/// §4.4.4.4, §5.2): the key ID of each segment, in order, and the URI prefix of the
/// keys relative to the playlist.
#[derive(Debug, Clone, Copy)]
pub struct Encryption<'a> {
    /// `keys/`-like prefix; a key's URI is the prefix, its key ID and `.key`.
    pub key_uri_prefix: &'a str,
    /// One per segment.
    pub kids: &'a [crate::protect::Kid],
}

/// A VOD media playlist of `segs` (one track, oldest first); URIs are `files/…` relative
/// to the playlist. With `encryption`, each segment is preceded by its `EXT-X-KEY`
/// with an explicit IV (its media sequence number, [`crate::protect::msn_iv`]: a
/// recorded segment keeps its URL and bytes whatever range lists it) and its URI names
/// its key (`?k=KID`); init segments stay clear (`METHOD=NONE` before each
/// `EXT-X-MAP`).
pub fn media_playlist(segs: &[RecordedSegment], encryption: Option<Encryption<'_>>) -> String {
    let target = segs
        .iter()
        .map(|s| s.seconds().ceil() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut p = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    );
    let mut prev: Option<&RecordedSegment> = None;
    for (i, s) in segs.iter().enumerate() {
        let new_epoch = prev.is_none_or(|p| p.init_path != s.init_path);
        let gap = prev.is_some_and(|p| s.start_wall_ms - p.end_ms() > GAP_MS);
        if prev.is_some() && (new_epoch || gap) {
            p.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if new_epoch {
            if encryption.is_some() {
                p.push_str("#EXT-X-KEY:METHOD=NONE\n");
            }
            let _ = writeln!(p, "#EXT-X-MAP:URI=\"files/{}\"", s.init_path_in_stream());
        }
        let pdt = SystemTime::UNIX_EPOCH
            + std::time::Duration::from_millis(s.start_wall_ms.max(0) as u64);
        let mut query = String::new();
        if let Some(kid) = encryption.and_then(|e| e.kids.get(i).map(|k| (e, k))) {
            let (e, kid) = kid;
            let iv = format!(
                "{:032X}",
                u128::from_be_bytes(crate::protect::msn_iv(s.msn.max(0) as u64))
            );
            let _ = writeln!(
                p,
                "#EXT-X-KEY:METHOD=AES-128,URI=\"{}{kid}.key\",IV=0x{iv}",
                e.key_uri_prefix
            );
            query = format!("?k={kid}");
        }
        let _ = writeln!(
            p,
            "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{:.5},\nfiles/{}{query}",
            crate::packager::hls::iso8601(pdt),
            s.seconds(),
            s.path_in_stream()
        );
        prev = Some(s);
    }
    p.push_str("#EXT-X-ENDLIST\n");
    p
}

impl RecordedSegment {
    /// The path below the stream's directory (`EPOCH/TRACK/MSN.m4s`).
    fn path_in_stream(&self) -> &str {
        self.path
            .split_once('/')
            .map_or(&self.path, |(_, rest)| rest)
    }

    fn init_path_in_stream(&self) -> &str {
        self.init_path
            .split_once('/')
            .map_or(&self.init_path, |(_, rest)| rest)
    }
}

/// The multivariant playlist of a recorded range; `query` (the range, as asked) is
/// appended to the media playlist URIs.
pub fn multivariant(video: &[RecordedSegment], audio: &[RecordedSegment], query: &str) -> String {
    let lead = if video.is_empty() { audio } else { video };
    let secs: f64 = lead.iter().map(|s| s.seconds()).sum::<f64>().max(0.001);
    let bytes: i64 = video.iter().chain(audio.iter()).map(|s| s.bytes).sum();
    let peak = video
        .iter()
        .map(|v| {
            let a: i64 = audio
                .iter()
                .filter(|a| a.msn == v.msn && a.epoch == v.epoch)
                .map(|a| a.bytes)
                .sum();
            ((v.bytes + a) as f64 * 8.0 / v.seconds().max(0.001)) as u64
        })
        .max()
        .unwrap_or(0);
    let average = (bytes as f64 * 8.0 / secs) as u64;
    let mut p = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let mut codecs: Vec<&str> = Vec::new();
    if let Some(v) = video.first() {
        codecs.push(&v.codec);
    }
    if let Some(a) = audio.first() {
        codecs.push(&a.codec);
        let _ = writeln!(
            p,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"main\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"{}\",URI=\"audio.m3u8?{query}\"",
            a.channels
        );
    }
    let resolution = video
        .iter()
        .max_by_key(|v| v.width * v.height)
        .map(|v| format!(",RESOLUTION={}x{}", v.width, v.height))
        .unwrap_or_default();
    let group = if audio.is_empty() {
        ""
    } else {
        ",AUDIO=\"audio\""
    };
    let _ = writeln!(
        p,
        "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={average},CODECS=\"{}\"{resolution}{group}\n{}.m3u8?{query}",
        peak.max(average),
        codecs.join(","),
        if video.is_empty() { "audio" } else { "video" }
    );
    p
}

/// Whether `b` plays straight on from `a` (one track): same epoch, the next sequence
/// number, no gap.
fn continues(a: &RecordedSegment, b: &RecordedSegment) -> bool {
    a.epoch == b.epoch && b.msn == a.msn + 1 && b.start_wall_ms - a.end_ms() <= GAP_MS
}

/// How a recorded range is encrypted for DASH: Common Encryption (ISO/IEC 23001-7, the
/// `cenc` scheme) with the W3C ClearKey key system.
#[derive(Debug, Clone, Copy)]
pub struct DashEncryption<'a> {
    /// The ClearKey license server, an absolute URL.
    pub license_url: &'a str,
    /// The key ID of each video segment, in order.
    pub video: &'a [crate::protect::Kid],
    /// The key ID of each audio segment, in order.
    pub audio: &'a [crate::protect::Kid],
}

/// A static DASH manifest (ISO/IEC 23009-1 §5.3, `type="static"`) of a recorded range:
/// one Period per continuous run (gaps are cut out), each with SegmentTemplate and
/// SegmentTimeline over the recorded files (`files/…/$Number$.m4s`, relative to the
/// manifest). With `encryption`, also one Period per key: each AdaptationSet carries
/// its key ID (`cenc:default_KID`, ISO/IEC 23001-7 §11.2) and the ClearKey license
/// server, and names its files in Common Encryption under that key
/// (`files/…/cenc-init.mp4?k=KID`, `files/…/cenc-$Number$.m4s?k=KID`).
pub fn mpd(
    video: &[RecordedSegment],
    audio: &[RecordedSegment],
    encryption: Option<DashEncryption<'_>>,
) -> String {
    use crate::protect::Kid;
    let lead_is_video = !video.is_empty();
    let lead = if lead_is_video { video } else { audio };
    let kid_of = |video: bool, i: usize| -> Option<Kid> {
        encryption.and_then(|e| if video { e.video } else { e.audio }.get(i).copied())
    };
    // The audio segment cut with each video segment.
    let audio_at: std::collections::HashMap<(&str, i64), usize> = if lead_is_video {
        audio
            .iter()
            .enumerate()
            .map(|(i, a)| ((a.epoch.as_str(), a.msn), i))
            .collect()
    } else {
        Default::default()
    };
    let with_lead = |i: usize| {
        audio_at
            .get(&(lead[i].epoch.as_str(), lead[i].msn))
            .copied()
    };
    let keys_at = |i: usize| {
        (
            kid_of(lead_is_video, i),
            with_lead(i).and_then(|j| kid_of(false, j)),
        )
    };
    // Periods as ranges of `lead`: split where it does not play on, or a key changes.
    let mut periods: Vec<std::ops::Range<usize>> = Vec::new();
    let mut from = 0;
    for i in 1..=lead.len() {
        if i == lead.len() || !continues(&lead[i - 1], &lead[i]) || keys_at(i - 1) != keys_at(i) {
            periods.push(from..i);
            from = i;
        }
    }
    let total: f64 = lead.iter().map(RecordedSegment::seconds).sum();
    let max_seg = lead
        .iter()
        .map(RecordedSegment::seconds)
        .fold(1.0, f64::max);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" xmlns:cenc=\"urn:mpeg:cenc:2013\" xmlns:dashif=\"https://dashif.org/CPS\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" type=\"static\" mediaPresentationDuration=\"PT{total:.3}S\" minBufferTime=\"PT{max_seg:.3}S\" maxSegmentDuration=\"PT{max_seg:.3}S\">\n"
    );
    let mut at = 0.0;
    for (n, period) in periods.into_iter().enumerate() {
        let _ = writeln!(out, "<Period id=\"{n}\" start=\"PT{at:.3}S\">");
        let run = &lead[period.clone()];
        let (lead_kid, audio_kid) = keys_at(period.start);
        let others: Vec<&RecordedSegment> =
            period.filter_map(with_lead).map(|j| &audio[j]).collect();
        // One presentation time offset for every track of the period, in seconds of the
        // stream timeline, so audio keeps its offset from video.
        let origin = run
            .first()
            .map_or(0.0, |s| s.start as f64 / s.timescale.max(1) as f64);
        let lead_set: Vec<&RecordedSegment> = run.iter().collect();
        for (set, kid) in [(lead_set, lead_kid), (others, audio_kid)] {
            let Some(first) = set.first().copied() else {
                continue;
            };
            let video = first.track == "video";
            let secs: f64 = set.iter().map(|s| s.seconds()).sum::<f64>().max(0.001);
            let bandwidth = (set.iter().map(|s| s.bytes).sum::<i64>() as f64 * 8.0 / secs) as u64;
            let dir = first.path_in_stream().rsplit_once('/').map_or("", |d| d.0);
            let _ = writeln!(
                out,
                "<AdaptationSet contentType=\"{}\" mimeType=\"{}/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\">",
                if video { "video" } else { "audio" },
                if video { "video" } else { "audio" }
            );
            let (init, media) = match (&kid, encryption) {
                (Some(kid), Some(e)) => {
                    crate::packager::dash::content_protection(&mut out, kid, e.license_url);
                    let init_dir = first
                        .init_path_in_stream()
                        .rsplit_once('/')
                        .map_or("", |d| d.0);
                    (
                        format!("{init_dir}/cenc-init.mp4?k={kid}"),
                        format!("{dir}/cenc-$Number$.m4s?k={kid}"),
                    )
                }
                _ => (
                    first.init_path_in_stream().to_string(),
                    format!("{dir}/$Number$.m4s"),
                ),
            };
            let size = if video {
                format!(" width=\"{}\" height=\"{}\"", first.width, first.height)
            } else {
                format!(" audioSamplingRate=\"{}\"", first.timescale)
            };
            let _ = writeln!(
                out,
                "<Representation id=\"{}\" codecs=\"{}\" bandwidth=\"{bandwidth}\"{size}>",
                first.track, first.codec
            );
            if !video {
                let _ = writeln!(
                    out,
                    "<AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"{}\"/>",
                    first.channels
                );
            }
            let _ = writeln!(
                out,
                "<SegmentTemplate timescale=\"{}\" presentationTimeOffset=\"{}\" startNumber=\"{}\" initialization=\"files/{init}\" media=\"files/{media}\">\n<SegmentTimeline>",
                first.timescale,
                (origin * first.timescale as f64).round() as i64,
                first.msn,
            );
            for s in set {
                let _ = writeln!(out, "<S t=\"{}\" d=\"{}\"/>", s.start, s.duration);
            }
            out.push_str(
                "</SegmentTimeline>\n</SegmentTemplate>\n</Representation>\n</AdaptationSet>\n",
            );
        }
        out.push_str("</Period>\n");
        at += run.iter().map(RecordedSegment::seconds).sum::<f64>();
    }
    out.push_str("</MPD>\n");
    out
}

/// Ranges and gaps of `stream` within `range`, for a timeline.
///
/// # Errors
/// A database error.
pub async fn timeline(
    db: &SqlitePool,
    stream: &StreamUid,
    range: TimeRange,
) -> Result<Vec<Range>, DvrError> {
    Ok(
        super::ranges(db, stream, Some((range.start_ms, range.end_ms)))
            .await?
            .into_iter()
            .filter(|r| r.end_ms > range.start_ms && r.start_ms < range.end_ms)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(epoch: &str, msn: i64, start: i64) -> RecordedSegment {
        RecordedSegment {
            track: "video".into(),
            epoch: epoch.into(),
            msn,
            start_wall_ms: start,
            start: start * 90,
            duration: 180_000,
            timescale: 90_000,
            bytes: 250_000,
            path: format!("lobby/{epoch}/video/{msn}.m4s"),
            init_path: format!("lobby/{epoch}/video/init.mp4"),
            codec: "avc1.64001e".into(),
            width: 640,
            height: 360,
            channels: 0,
            kid: None,
        }
    }

    #[test]
    fn ranges_are_validated() {
        assert_eq!(parse_time("2026-11-21T16:40:00Z"), Some(1_795_279_200_000));
        assert_eq!(parse_time("1795279200.5"), Some(1_795_279_200_500));
        assert_eq!(parse_time("yesterday"), None);
        assert!(matches!(
            parse_range(None, Some("1")),
            Err(RangeError::Unparsable(_))
        ));
        assert_eq!(
            parse_range(Some("20"), Some("10")),
            Err(RangeError::WrongOrder)
        );
        assert_eq!(
            parse_range(Some("99999999999"), Some("99999999999.5")),
            Err(RangeError::Future)
        );
        assert_eq!(
            parse_range(Some("0"), Some("90000")),
            Err(RangeError::TooLong)
        );
        assert_eq!(
            parse_range(Some("10"), Some("20")),
            Ok(TimeRange {
                start_ms: 10_000,
                end_ms: 20_000
            })
        );
        // A listing: the last day by default, its own names in errors.
        let day = parse_span(None, None).expect("default span");
        assert_eq!(day.end_ms - day.start_ms, MAX_RANGE_MS);
        assert!((now_ms() - day.end_ms).abs() < 5_000);
        assert_eq!(
            parse_span(Some("10"), None).map(|r| r.start_ms),
            Err(RangeError::TooLong)
        );
        let to = parse_span(None, Some("100000")).expect("span before a time");
        assert_eq!(
            (to.start_ms, to.end_ms),
            (100_000_000 - MAX_RANGE_MS, 100_000_000)
        );
        match parse_span(Some("soon"), None) {
            Err(RangeError::Unparsable(m)) => assert!(m.starts_with("from="), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gaps_and_new_epochs_are_discontinuities() {
        let segs = [
            seg("1-0", 0, 0),
            seg("1-0", 1, 2000),
            seg("1-1", 2, 7000),
            seg("1-1", 3, 9000),
        ];
        let p = media_playlist(&segs, None);
        assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{p}");
        assert_eq!(p.matches("#EXT-X-MAP:").count(), 2, "{p}");
        assert!(
            p.contains("files/1-1/video/2.m4s") && p.ends_with("#EXT-X-ENDLIST\n"),
            "{p}"
        );
        assert!(p.contains("#EXT-X-PLAYLIST-TYPE:VOD"));
        let d = mpd(&segs, &[], None);
        assert_eq!(d.matches("<Period ").count(), 2, "{d}");
        assert!(
            d.contains("media=\"files/1-1/video/$Number$.m4s\"") && d.contains("startNumber=\"2\""),
            "{d}"
        );
        let m = multivariant(&segs, &[], "start=0&end=10");
        assert!(
            m.contains("RESOLUTION=640x360") && m.contains("video.m3u8?start=0&end=10"),
            "{m}"
        );
    }
}
