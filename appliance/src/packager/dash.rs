//! The dynamic MPEG-DASH manifest (ISO/IEC 23009-1 §5.3, live profile §8.4) over the same
//! CMAF segments as HLS: SegmentTemplate with SegmentTimeline and `$Number$` (the media
//! sequence number), one Period per epoch, UTCTiming (DASH-IF IOP §4.7).
//!
//! Low-latency DASH (DASH-IF IOP v5 Part 9, "Low-latency Modes for DASH", the
//! SegmentTimeline mode) lists the same segments and adds the one being written, once it
//! has its first CMAF chunk (an LL-HLS part: a `moof` + `mdat`), with an estimated
//! duration, and the one after it, so a player asks for the next segment as soon as it
//! has the last one, as an LL-HLS player does on a preload hint (the server holds that
//! request until the segment begins, and refuses it when the segment turns out to begin
//! a new Period). `availabilityTimeOffset` makes each available one chunk after it
//! begins; with `availabilityTimeComplete="false"` the player fetches it as it grows,
//! over chunked transfer. A `ServiceDescription` gives the latency to hold (ISO/IEC
//! 23009-1 Annex K), and the update period is two chunks.
//!
//! An encrypted stream's segments are listed in Common Encryption (ISO/IEC 23001-7
//! `cenc`, [`crate::protect::cenc`]) under their own URLs (`cenc-init-{epoch}-{kid}.mp4`,
//! `cenc-seg-{kid}-$Number$.m4s`), one Period per key (ISO/IEC 23009-1 §5.8.4.1
//! ContentProtection: `cenc:default_KID`, and the DASH-IF ClearKey system with its
//! license URL, DASH-IF IOP §7.6.2.4), so a key rotation starts a new Period.

use super::hls::iso8601;
use super::window::{Segment, Window};
use crate::media::{TrackId, TrackParams};
use crate::protect::Kid;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::SystemTime;

fn secs(s: f64) -> String {
    format!("PT{s:.3}S")
}

/// An ABR rendition's window: a rung's (its video track, listed as another
/// Representation of the video AdaptationSet) or the transcoded audio's. Its media lives
/// under `name/`.
#[derive(Debug, Clone, Copy)]
pub struct Rung<'a> {
    /// URL directory and Representation id (`720p`).
    pub name: &'a str,
    /// The rung's window.
    pub window: &'a Window,
}

/// How a low-latency MPD differs from the regular one (DASH-IF IOP v5 Part 9).
#[derive(Debug, Clone, Copy)]
pub struct LowLatency {
    /// Seconds of media per CMAF chunk: the LL-HLS part target.
    pub chunk: f64,
    /// Seconds behind live the player is asked to hold (`ServiceDescription`
    /// `Latency@target`).
    pub target: f64,
}

/// How the segments of a Representation are listed: complete ones only, or (low
/// latency) with the one being written, once it has a chunk.
#[derive(Debug, Clone, Copy)]
struct Listing {
    low_latency: Option<LowLatency>,
    /// Seconds: the duration a segment being written is listed with when no segment
    /// before it tells better.
    segment_target: f64,
}

impl Listing {
    fn lists(&self, s: &Segment) -> bool {
        s.complete || (self.low_latency.is_some() && !s.parts.is_empty())
    }

    /// The start and duration (ticks) each of `segs` is listed with: its own once
    /// complete. One being written (always the last) is listed with the duration of the
    /// one before it (GOPs are mostly regular), or the segment target without one; never
    /// less than what it holds and one more chunk. Low latency, when `segs` end with the
    /// newest segment of a live window: one more, the next, as long as the last and
    /// right after it. Estimates are a quarter chunk long: a player takes the segment
    /// after one it fetched to be the one at its listed end (plus 10 ms, in dash.js),
    /// so an estimate short by more than that would have it fetch the same one again
    /// (audio segments differ by an AAC frame, 21 ms at 48 kHz).
    fn entries(&self, segs: &[&Segment], newest: bool) -> Vec<(u64, u64)> {
        let ticks = |s: &Segment, secs: f64| (secs * f64::from(s.timescale)).round() as u64;
        let mut out: Vec<(u64, u64)> = segs
            .iter()
            .enumerate()
            .map(|(i, s)| match self.low_latency {
                Some(ll) if !s.complete => {
                    let before = i
                        .checked_sub(1)
                        .map(|j| segs[j])
                        .filter(|p| p.complete && p.timescale == s.timescale)
                        .map_or(ticks(s, self.segment_target), |p| p.duration);
                    let margin = ticks(s, ll.chunk / 4.0);
                    (
                        s.start,
                        before.max(s.duration + ticks(s, ll.chunk)) + margin,
                    )
                }
                _ => (s.start, s.duration),
            })
            .collect();
        if let (Some(ll), true, Some(&(start, d)), Some(last)) =
            (self.low_latency, newest, out.last(), segs.last())
        {
            let margin = if last.complete {
                ticks(last, ll.chunk / 4.0)
            } else {
                0
            };
            out.push((start + d, d + margin));
        }
        out
    }
}

/// Whether `segs` end with the newest segment of `track` in `w`, a window a publisher
/// still feeds.
fn ends_live(w: &Window, track: TrackId, segs: &[&Segment]) -> bool {
    w.live
        && !w.ended
        && w.tracks
            .get(&track)
            .and_then(|t| t.segments.back())
            .map(|s| s.msn)
            == segs.last().map(|s| s.msn)
}

/// A Period's epoch and key (`None`: in the clear).
type PeriodKey = (u32, Option<Kid>);

/// The key a segment is sealed with.
fn kid_of(s: &Segment) -> Option<Kid> {
    s.sealing.as_ref().map(|x| x.key.kid)
}

/// A key ID as a UUID (`cenc:default_KID`, ISO/IEC 23001-7 §11.2).
fn uuid(kid: &Kid) -> String {
    let h = kid.to_string();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The ContentProtection descriptors of an AdaptationSet whose segments are sealed
/// with `kid`: the `cenc` scheme with its default key ID, and the DASH-IF ClearKey
/// system (`urn:uuid:e2719d58-…`) with the URL of its license server. The MPD must
/// declare the `cenc` (`urn:mpeg:cenc:2013`) and `dashif` (`https://dashif.org/CPS`)
/// namespaces.
pub fn content_protection(out: &mut String, kid: &Kid, license_url: &str) {
    let _ = write!(
        out,
        "      <ContentProtection schemeIdUri=\"urn:mpeg:dash:mp4protection:2011\" value=\"cenc\" cenc:default_KID=\"{}\"/>\n      <ContentProtection schemeIdUri=\"urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e\" value=\"ClearKey1.0\">\n        <dashif:Laurl>{}</dashif:Laurl>\n      </ContentProtection>\n",
        uuid(kid),
        xml_escape(license_url)
    );
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the MPD. `time_url` is the absolute URL of the UTCTiming source. `older` are
/// recorded segments per track that play straight into the window (time-shift); those
/// of epochs still in the window are listed in their Periods, and the time-shift buffer
/// grows by what they cover. `rungs` are listed in each Period's video AdaptationSet with
/// the segments they have of it: their segments share the source's numbers and times
/// (ISO/IEC 23009-1 §5.3.3.2 segment alignment), so players switch between them.
/// `stereo`, the transcoded audio rendition when there is one, takes the source audio's
/// place: each Period lists its segments that start within the Period. Encrypted
/// segments are listed in Periods of their key, whose ClearKey license server is
/// `license_url`. With `low_latency`, the MPD of DASH-IF's low-latency SegmentTimeline
/// mode (see the module's documentation); without, only complete segments are listed.
#[allow(clippy::too_many_arguments)]
pub fn manifest(
    w: &Window,
    segment_target: f64,
    window: f64,
    time_url: &str,
    license_url: &str,
    older: &BTreeMap<TrackId, Arc<Vec<Segment>>>,
    rungs: &[Rung<'_>],
    stereo: Option<Rung<'_>>,
    low_latency: Option<LowLatency>,
) -> String {
    let listing = Listing {
        low_latency,
        segment_target,
    };
    let listed_older = |track: &TrackId| -> Vec<&Segment> {
        older
            .get(track)
            .map(|v| {
                v.iter()
                    .filter(|s| w.epochs.contains_key(&s.epoch))
                    .collect()
            })
            .unwrap_or_default()
    };
    let history = w.lead().map_or(0.0, |t| {
        listed_older(&t).iter().map(|s| s.seconds()).sum::<f64>()
    });
    let max_seg = w
        .tracks
        .values()
        .flat_map(|t| t.segments.iter())
        .map(Segment::seconds)
        .fold(segment_target, f64::max)
        // Low latency: a segment being written may be listed longer than it will be
        // (its estimate, one more chunk and a quarter, `Listing::entries`).
        + low_latency.map_or(0.0, |ll| ll.chunk * 1.25);
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
         xmlns:cenc=\"urn:mpeg:cenc:2013\" xmlns:dashif=\"https://dashif.org/CPS\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:com:dashif:dash264{}\" \
         type=\"{}\" availabilityStartTime=\"{}\" publishTime=\"{}\" \
         minBufferTime=\"{}\" maxSegmentDuration=\"{}\"",
        if low_latency.is_some() {
            ",http://www.dashif.org/guidelines/low-latency-live-v5"
        } else {
            ""
        },
        if w.ended { "static" } else { "dynamic" },
        iso8601(w.origin),
        iso8601(SystemTime::now()),
        secs(max_seg),
        secs(max_seg),
    );
    if w.ended {
        let end = w
            .tracks
            .values()
            .filter_map(|t| t.segments.back())
            .map(|s| s.start_seconds() + s.seconds())
            .fold(0.0, f64::max);
        // An ended presentation becomes static (DASH-IF IOP §4.6.4), playable from its
        // first segment.
        let _ = write!(out, " mediaPresentationDuration=\"{}\"", secs(end));
    } else {
        // Low latency: a segment is listed once it has its first chunk, so players
        // look again every two chunks.
        let (update, delay) = match low_latency {
            Some(ll) => (ll.chunk * 2.0, ll.target),
            None => (segment_target, max_seg * 2.0),
        };
        let _ = write!(
            out,
            " minimumUpdatePeriod=\"{}\" timeShiftBufferDepth=\"{}\" suggestedPresentationDelay=\"{}\"",
            secs(update),
            secs(window + history),
            secs(delay)
        );
    }
    out.push_str(">\n");
    if let (Some(ll), false) = (low_latency, w.ended) {
        // ISO/IEC 23009-1 Annex K: the latency to hold, and the playback rates a player
        // may use to get back to it.
        let _ = write!(
            out,
            "  <ServiceDescription id=\"0\">\n    <Latency target=\"{}\" min=\"{}\" max=\"{}\"/>\n    <PlaybackRate min=\"0.9\" max=\"1.5\"/>\n  </ServiceDescription>\n",
            (ll.target * 1000.0).round() as u64,
            (ll.chunk * 2000.0).round() as u64,
            (ll.target * 3000.0).round() as u64,
        );
    }
    // A Period's segments of one track: recorded ones still in the epoch, then the
    // window's, complete only (low latency: and the one being written).
    let period_segs = |(epoch, kid): PeriodKey, track: &TrackId| -> Vec<&Segment> {
        let Some(tw) = w.tracks.get(track) else {
            return Vec::new();
        };
        listed_older(track)
            .into_iter()
            .chain(tw.segments.iter())
            .filter(|s| s.epoch == epoch && kid_of(s) == kid && listing.lists(s))
            .collect()
    };
    // A Period per epoch and key, in order of their first segments, each starting with
    // the earliest first segment of its tracks.
    let mut starts: Vec<(PeriodKey, f64)> = Vec::new();
    for track in w.tracks.keys() {
        for s in listed_older(track)
            .into_iter()
            .chain(w.tracks[track].segments.iter())
        {
            if !listing.lists(s) || !w.epochs.contains_key(&s.epoch) {
                continue;
            }
            let key = (s.epoch, kid_of(s));
            match starts.iter_mut().find(|(k, _)| *k == key) {
                Some((_, start)) => *start = start.min(s.start_seconds()),
                None => starts.push((key, s.start_seconds())),
            }
        }
    }
    starts.sort_by(|a, b| a.1.total_cmp(&b.1));
    for (n, (pkey, start)) in starts.iter().enumerate() {
        let (pkey, start) = (*pkey, *start);
        let (epoch, kid) = pkey;
        let end = starts.get(n + 1).map_or(f64::INFINITY, |s| s.1);
        let Some(e) = w.epochs.get(&epoch) else {
            continue;
        };
        let mut period = String::new();
        for (i, (track, (params, _))) in e.tracks.iter().enumerate() {
            let Some(tw) = w.tracks.get(track) else {
                continue;
            };
            let segs = period_segs(pkey, track);
            let Some(first) = segs.first() else { continue };
            if let (TrackParams::Audio(_), Some(r)) = (&**params, stereo) {
                stereo_adaptation_set(&mut period, i, r, start..end, kid, license_url, listing);
                continue;
            }
            let bandwidth = tw.peak_bitrate().max(1);
            let codecs = params.codec_string();
            match &**params {
                TrackParams::Video(v) => {
                    let _ = writeln!(
                        period,
                        "    <AdaptationSet id=\"{i}\" contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\">"
                    );
                    if let Some(kid) = &kid {
                        content_protection(&mut period, kid, license_url);
                    }
                    let _ = write!(
                        period,
                        "      <Representation id=\"video\" codecs=\"{codecs}\" bandwidth=\"{bandwidth}\" width=\"{}\" height=\"{}\"",
                        v.width, v.height
                    );
                    if let Some(fps) = w.frame_rate {
                        let _ = write!(
                            period,
                            " frameRate=\"{}/1000\"",
                            (fps * 1000.0).round() as u64
                        );
                    }
                    period.push_str(">\n");
                }
                TrackParams::Audio(a) => {
                    let _ = writeln!(
                        period,
                        "    <AdaptationSet id=\"{i}\" contentType=\"audio\" mimeType=\"audio/mp4\" lang=\"und\" segmentAlignment=\"true\" startWithSAP=\"1\">"
                    );
                    if let Some(kid) = &kid {
                        content_protection(&mut period, kid, license_url);
                    }
                    let _ = write!(
                        period,
                        "      <Representation id=\"audio\" codecs=\"{codecs}\" bandwidth=\"{bandwidth}\" audioSamplingRate=\"{}\">\n        <AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"{}\"/>\n",
                        a.sample_rate, a.channels
                    );
                }
            }
            // The Period's start in this track's timescale: every track (and rung) maps
            // stream time the same way, whichever starts first.
            let offset = (start * f64::from(first.timescale)).round() as u64;
            let newest = ends_live(w, *track, &segs);
            segment_template(
                &mut period,
                track.name(),
                pkey,
                offset,
                &segs,
                listing,
                newest,
            );
            if *track == TrackId::Video {
                let last = segs.last().map_or(first.msn, |s| s.msn);
                for r in rungs {
                    rung_representation(&mut period, r, first.msn..=last, kid, offset, listing);
                }
            }
            period.push_str("    </AdaptationSet>\n");
        }
        let id = match kid {
            Some(k) => format!("{epoch}-{}", &k.to_string()[..8]),
            None => epoch.to_string(),
        };
        let _ = write!(
            out,
            "  <Period id=\"{id}\" start=\"{}\">\n{period}  </Period>\n",
            secs(start)
        );
    }
    let _ = writeln!(
        out,
        "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"{time_url}\"/>\n</MPD>"
    );
    out
}

/// A rendition's listed segments of `track` that `keep` selects, of the epoch of the
/// first of them, with that epoch's parameters; `None` when there are none.
fn rendition_segments(
    w: &Window,
    track: TrackId,
    listing: Listing,
    keep: impl Fn(&Segment) -> bool,
) -> Option<(PeriodKey, Vec<&Segment>, &TrackParams)> {
    let tw = w.tracks.get(&track)?;
    let kept = tw.segments.iter().filter(|s| listing.lists(s) && keep(s));
    let epoch = kept.clone().next()?.epoch;
    let segs: Vec<&Segment> = kept.filter(|s| s.epoch == epoch).collect();
    let (params, _) = w.epochs.get(&epoch)?.tracks.get(&track)?;
    Some(((epoch, segs.first().and_then(|s| kid_of(s))), segs, params))
}

/// A SegmentTemplate with its SegmentTimeline (ISO/IEC 23009-1 §5.3.9.4) for `segs` (at
/// least one) of epoch and key `pkey` under `name/`, mapped so that media time `offset`
/// is the Period's start; closes the Representation. Encrypted segments are listed by
/// their Common Encryption URLs. Low latency: a segment being written is available one
/// chunk after it begins (`availabilityTimeOffset` is its listed duration less a
/// chunk), and is fetched as it grows (`availabilityTimeComplete="false"`).
fn segment_template(
    out: &mut String,
    name: &str,
    (epoch, kid): PeriodKey,
    offset: u64,
    segs: &[&Segment],
    listing: Listing,
    newest: bool,
) {
    let first = segs[0];
    let (init, media) = match kid {
        Some(k) => (
            format!("{name}/cenc-init-{epoch}-{k}.mp4"),
            format!("{name}/cenc-seg-{k}-$Number$.m4s"),
        ),
        None => (
            format!("{name}/init-{epoch}.mp4"),
            format!("{name}/seg-$Number$.m4s"),
        ),
    };
    let entries = listing.entries(segs, newest);
    let _ = write!(
        out,
        "        <SegmentTemplate timescale=\"{}\" presentationTimeOffset=\"{offset}\" startNumber=\"{}\" initialization=\"{init}\" media=\"{media}\"",
        first.timescale, first.msn
    );
    if let (Some(ll), Some((_, last))) = (listing.low_latency, entries.last()) {
        let listed = *last as f64 / f64::from(first.timescale.max(1));
        let _ = write!(
            out,
            " availabilityTimeOffset=\"{:.3}\" availabilityTimeComplete=\"false\"",
            (listed - ll.chunk).max(0.0)
        );
    }
    out.push_str(">\n          <SegmentTimeline>\n");
    timeline(out, &entries);
    out.push_str(
        "          </SegmentTimeline>\n        </SegmentTemplate>\n      </Representation>\n",
    );
}

/// A rung's Representation for the Period whose source segments are `msns`, sealed
/// with `kid`, starting at `offset` (the source's presentationTimeOffset, the same
/// clock): the rung's complete segments in that range with that key, of the epoch of
/// the first of them. Nothing when it has none.
fn rung_representation(
    out: &mut String,
    r: &Rung<'_>,
    msns: std::ops::RangeInclusive<u64>,
    kid: Option<Kid>,
    offset: u64,
    listing: Listing,
) {
    let w = r.window;
    let Some((pkey, segs, params)) = rendition_segments(w, TrackId::Video, listing, |s| {
        msns.contains(&s.msn) && kid_of(s) == kid
    }) else {
        return;
    };
    let TrackParams::Video(v) = params else {
        return;
    };
    let bandwidth = w
        .tracks
        .get(&TrackId::Video)
        .map_or(1, |t| t.peak_bitrate().max(1));
    let _ = write!(
        out,
        "      <Representation id=\"{}\" codecs=\"{}\" bandwidth=\"{bandwidth}\" width=\"{}\" height=\"{}\"",
        r.name,
        params.codec_string(),
        v.width,
        v.height
    );
    if let Some(fps) = w.frame_rate {
        let _ = write!(out, " frameRate=\"{}/1000\"", (fps * 1000.0).round() as u64);
    }
    out.push_str(">\n");
    let newest = ends_live(w, TrackId::Video, &segs);
    segment_template(out, r.name, pkey, offset, &segs, listing, newest);
}

/// The audio AdaptationSet (number `id`) of the transcoded audio rendition `r` for the
/// Period that spans `period` (seconds of stream time) with key `kid`: its complete
/// segments that start in it, of the epoch of the first of them, mapped so that stream
/// time lines up with the other AdaptationSets (presentationTimeOffset is the Period's
/// start). Nothing when it has none.
fn stereo_adaptation_set(
    out: &mut String,
    id: usize,
    r: Rung<'_>,
    period: std::ops::Range<f64>,
    kid: Option<Kid>,
    license_url: &str,
    listing: Listing,
) {
    let w = r.window;
    let Some((pkey, segs, params)) = rendition_segments(w, TrackId::Audio, listing, |s| {
        period.contains(&s.start_seconds()) && kid_of(s) == kid
    }) else {
        return;
    };
    let TrackParams::Audio(a) = params else {
        return;
    };
    let bandwidth = w
        .tracks
        .get(&TrackId::Audio)
        .map_or(1, |t| t.peak_bitrate().max(1));
    let _ = writeln!(
        out,
        "    <AdaptationSet id=\"{id}\" contentType=\"audio\" mimeType=\"audio/mp4\" lang=\"und\" segmentAlignment=\"true\" startWithSAP=\"1\">"
    );
    if let Some(kid) = &kid {
        content_protection(out, kid, license_url);
    }
    let _ = write!(
        out,
        "      <Representation id=\"{}\" codecs=\"{}\" bandwidth=\"{bandwidth}\" audioSamplingRate=\"{}\">\n        <AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"{}\"/>\n",
        r.name,
        params.codec_string(),
        a.sample_rate,
        a.channels,
    );
    let offset = (period.start * f64::from(segs[0].timescale)).round() as u64;
    let newest = ends_live(w, TrackId::Audio, &segs);
    segment_template(out, r.name, pkey, offset, &segs, listing, newest);
    out.push_str("    </AdaptationSet>\n");
}

/// `<S t d r>` elements for segments listed at `(start, duration)` (ticks);
/// consecutive segments of equal duration share one with `r`. Segment numbers must be
/// consecutive for `$Number$` to work, so a gap in numbers (a track that had no media
/// in a segment) restarts with an explicit `t`.
fn timeline(out: &mut String, entries: &[(u64, u64)]) {
    let mut i = 0;
    let mut expected_t = None;
    while i < entries.len() {
        let (start, d) = entries[i];
        let mut r = 0;
        while i + r + 1 < entries.len()
            && entries[i + r + 1].1 == d
            && entries[i + r + 1].0 == entries[i + r].0 + entries[i + r].1
        {
            r += 1;
        }
        if expected_t == Some(start) {
            let _ = write!(out, "            <S d=\"{d}\"");
        } else {
            let _ = write!(out, "            <S t=\"{start}\" d=\"{d}\"");
        }
        if r > 0 {
            let _ = write!(out, " r=\"{r}\"");
        }
        out.push_str("/>\n");
        expected_t = Some(entries[i + r].0 + entries[i + r].1);
        i += r + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packager::window::Part;
    use bytes::Bytes;

    fn segment(msn: u64, start: u64, parts: &[u64], complete: bool) -> Segment {
        Segment {
            msn,
            epoch: 0,
            discontinuity: false,
            start,
            timescale: 90_000,
            duration: parts.iter().sum(),
            parts: parts
                .iter()
                .map(|&duration| Part {
                    bytes: Bytes::from_static(b"moof"),
                    duration,
                    independent: false,
                    sealed: None,
                    cenc: None,
                })
                .collect(),
            complete,
            pdt: SystemTime::UNIX_EPOCH,
            sealing: None,
            sealed: None,
        }
    }

    #[test]
    fn low_latency_lists_the_segment_being_written_and_the_next_with_estimates() {
        let regular = Listing {
            low_latency: None,
            segment_target: 2.0,
        };
        let ll = Listing {
            low_latency: Some(LowLatency {
                chunk: 0.2,
                target: 1.0,
            }),
            segment_target: 2.0,
        };
        let done = segment(7, 0, &[18_000; 10], true);
        let open = segment(8, 180_000, &[18_000; 3], false);
        let fresh = segment(9, 360_000, &[], false);
        // Regular: complete segments only, as they are.
        assert!(regular.lists(&done) && !regular.lists(&open));
        assert!(
            ll.lists(&open) && !ll.lists(&fresh),
            "listed once it has a part"
        );
        // The one being written takes the previous one's duration and a quarter chunk
        // (4,500 ticks); the next follows it, as long.
        assert_eq!(
            ll.entries(&[&done, &open], true),
            vec![(0, 180_000), (180_000, 184_500), (364_500, 184_500)]
        );
        // Not the newest of a live window: nothing ahead.
        assert_eq!(
            ll.entries(&[&done, &open], false),
            vec![(0, 180_000), (180_000, 184_500)]
        );
        // Between segments: the next after the last complete one, with the margin.
        assert_eq!(
            ll.entries(&[&done], true),
            vec![(0, 180_000), (180_000, 184_500)]
        );
        // Without a segment before it: the segment target; a long one being written is
        // never listed shorter than it is and a chunk.
        let first = segment(0, 0, &[18_000; 2], false);
        assert_eq!(ll.entries(&[&first], false), vec![(0, 184_500)]);
        let long = segment(8, 180_000, &[18_000; 12], false);
        assert_eq!(
            ll.entries(&[&done, &long], false),
            vec![(0, 180_000), (180_000, 216_000 + 18_000 + 4_500)]
        );
    }
}
