//! The live window of one stream: per track, the segments and partial segments still
//! listed in the playlists, as shared [`Bytes`]. Serving any of them clones a reference
//! count, never the media.

use crate::media::{TrackId, TrackParams};
use crate::protect::{ContentKey, Sealing};
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One LL-HLS partial segment: a CMAF fragment (`moof` + `mdat`).
#[derive(Debug, Clone)]
pub struct Part {
    /// The fragment bytes.
    pub bytes: Bytes,
    /// Duration in ticks of the segment's timescale.
    pub duration: u64,
    /// Starts with a sync sample (EXT-X-PART INDEPENDENT=YES).
    pub independent: bool,
    /// The fragment encrypted on its own, when its segment is sealed
    /// ([`crate::protect`]): what is served as the partial segment.
    pub sealed: Option<Bytes>,
    /// The fragment in Common Encryption under the same key, when its segment is
    /// sealed ([`crate::protect::cenc`]): what DASH serves, parts concatenated.
    pub cenc: Option<Bytes>,
}

/// One media segment of one track: its parts, concatenated when served.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Media sequence number, shared by every track of the stream.
    pub msn: u64,
    /// Index into the stream's epochs (init segment and DASH Period).
    pub epoch: u32,
    /// First segment of its epoch after an earlier one: EXT-X-DISCONTINUITY.
    pub discontinuity: bool,
    /// Decode time of the first sample, in ticks (`tfdt`).
    pub start: u64,
    /// Ticks per second of this segment's track.
    pub timescale: u32,
    /// Sum of the part durations, in ticks.
    pub duration: u64,
    /// The parts, in order.
    pub parts: Vec<Part>,
    /// No more parts will be added.
    pub complete: bool,
    /// Wall-clock time of the first sample (EXT-X-PROGRAM-DATE-TIME).
    pub pdt: SystemTime,
    /// The key and IV its media is encrypted with (`None`: in the clear), fixed when it
    /// opens.
    pub sealing: Option<Sealing>,
    /// Once complete, when sealed: the segment (its parts concatenated) encrypted as one
    /// resource, which is what is served as the segment.
    pub sealed: Option<Bytes>,
}

impl Segment {
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.duration as f64 / f64::from(self.timescale.max(1))
    }

    /// Start in seconds of stream time.
    pub fn start_seconds(&self) -> f64 {
        self.start as f64 / f64::from(self.timescale.max(1))
    }

    /// What is served as the segment once complete: its parts, or the sealed segment.
    pub fn served(&self) -> Vec<Bytes> {
        match &self.sealed {
            Some(b) => vec![b.clone()],
            None => self.parts.iter().map(|p| p.bytes.clone()).collect(),
        }
    }

    /// What DASH serves as the segment once complete, when it is sealed: its parts in
    /// Common Encryption; `None` for a segment in the clear.
    pub fn cenc(&self) -> Option<Vec<Bytes>> {
        self.parts.iter().map(|p| p.cenc.clone()).collect()
    }

    /// Total bytes of the segment.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.bytes.len()).sum()
    }

    /// Whether the segment has no parts yet.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

/// One epoch: a span with fixed track parameters. A new epoch starts on new parameters
/// (a new sequence header, or a publisher that came back).
#[derive(Debug, Clone)]
pub struct Epoch {
    /// Parameters and init segment of each track.
    pub tracks: BTreeMap<TrackId, (Arc<TrackParams>, Bytes)>,
}

/// The window of one track.
#[derive(Debug, Clone, Default)]
pub struct TrackWindow {
    /// Segments oldest first; the last one may be incomplete.
    pub segments: VecDeque<Segment>,
    /// EXT-X-DISCONTINUITY-SEQUENCE: discontinuities trimmed off the front so far.
    pub discontinuity_sequence: u64,
}

impl TrackWindow {
    /// The segment with this media sequence number.
    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.front()?.msn;
        self.segments
            .get(usize::try_from(msn.checked_sub(first)?).ok()?)
    }

    /// Peak bitrate over the complete segments, in bits per second.
    pub fn peak_bitrate(&self) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.complete && s.duration > 0)
            .map(|s| (s.len() as f64 * 8.0 / s.seconds()) as u64)
            .max()
            .unwrap_or(0)
    }

    /// Average bitrate over the complete segments, in bits per second.
    pub fn average_bitrate(&self) -> u64 {
        let (bytes, secs) = self
            .segments
            .iter()
            .filter(|s| s.complete)
            .fold((0usize, 0f64), |(b, t), s| (b + s.len(), t + s.seconds()));
        if secs > 0.0 {
            (bytes as f64 * 8.0 / secs) as u64
        } else {
            0
        }
    }
}

/// Everything the playlists and manifests of one stream are made from.
#[derive(Debug, Clone)]
pub struct Window {
    /// Wall-clock time of stream time zero (DASH availabilityStartTime).
    pub origin: SystemTime,
    /// Epochs by index; only those still referenced by a segment are kept.
    pub epochs: BTreeMap<u32, Epoch>,
    /// Per track.
    pub tracks: BTreeMap<TrackId, TrackWindow>,
    /// Media sequence number the next new segment gets.
    pub next_msn: u64,
    /// The publisher left and the grace period ran out (EXT-X-ENDLIST).
    pub ended: bool,
    /// A publisher is connected.
    pub live: bool,
    /// Video frames per second, measured over the last complete segment.
    pub frame_rate: Option<f64>,
    /// The latest segment cuts, oldest first. A cut is recorded the moment its keyframe
    /// arrives, before the segment has a part to list, so followers
    /// ([`super::segmenter::Follow`]) can match it at once.
    pub cuts: VecDeque<Cut>,
    /// The key the next segment to open is sealed with (`None`: in the clear). HLS
    /// playlists announce it before a preload hint of that segment's first part, so it
    /// changes only when no such hint can be out: when a segment closes, or before the
    /// first one ([`Window::seal_next`]).
    pub sealing: Option<Arc<ContentKey>>,
    /// A change of [`Window::sealing`] waiting for the open segment to close.
    pub sealing_after: Option<Option<Arc<ContentKey>>>,
}

/// Where a segment began: recorded in [`Window::cuts`] when its first keyframe arrives.
#[derive(Debug, Clone)]
pub struct Cut {
    /// Decode time of the keyframe that starts the segment, in ticks of the lead track.
    pub dts: i64,
    /// The same in seconds of stream time.
    pub seconds: f64,
    /// The segment's media sequence number.
    pub msn: u64,
    /// The key the segment is sealed with (`None`: in the clear). Renditions seal
    /// their segments from the same time on with the same key, so that a DASH Period
    /// (one key) holds every rendition's segments of its time.
    pub key: Option<Arc<ContentKey>>,
}

/// Cuts remembered in [`Window::cuts`].
pub const CUTS_KEPT: usize = 16;

impl Window {
    /// An empty window whose stream time zero was at `origin`.
    pub fn new(origin: SystemTime) -> Window {
        Window {
            origin,
            epochs: BTreeMap::new(),
            tracks: BTreeMap::new(),
            next_msn: 0,
            ended: false,
            live: false,
            frame_rate: None,
            cuts: VecDeque::new(),
            sealing: None,
            sealing_after: None,
        }
    }

    /// Seals the segments opened from now on with `key` (`None`: in the clear): at once
    /// when the window has no segment yet, else from the segment after the open one
    /// (announced once that one closes). Returns whether the key to seal with changed.
    pub fn seal_next(&mut self, key: Option<Arc<ContentKey>>) -> bool {
        let same =
            |a: &Option<Arc<ContentKey>>| a.as_ref().map(|k| k.kid) == key.as_ref().map(|k| k.kid);
        if self.tracks.values().all(|t| t.segments.is_empty()) {
            let changed = !same(&self.sealing) || self.sealing_after.is_some();
            self.sealing = key;
            self.sealing_after = None;
            changed
        } else if !same(self.sealing_after.as_ref().unwrap_or(&self.sealing)) {
            self.sealing_after = Some(key);
            true
        } else {
            false
        }
    }

    /// Whether there is anything to play: a complete segment in every track.
    pub fn is_playable(&self) -> bool {
        !self.tracks.is_empty()
            && self
                .tracks
                .values()
                .all(|t| t.segments.iter().any(|s| s.complete))
    }

    /// The track that paces segmentation: video when the stream has it.
    pub fn lead(&self) -> Option<TrackId> {
        self.tracks.keys().next().copied()
    }

    /// Wall-clock time of `seconds` of stream time.
    pub fn wall_clock(&self, seconds: f64) -> SystemTime {
        self.origin + Duration::from_secs_f64(seconds.max(0.0))
    }

    /// The key the segments of the lead track starting at `seconds` of stream time are
    /// sealed with, from the latest cut at or before it; `None` before the first cut.
    pub fn key_at(&self, seconds: f64) -> Option<Option<Arc<ContentKey>>> {
        self.cuts
            .iter()
            .rev()
            .find(|c| c.seconds <= seconds + 1e-6)
            .map(|c| c.key.clone())
    }

    /// The newest epoch's parameters for `track`.
    pub fn current_params(&self, track: TrackId) -> Option<&Arc<TrackParams>> {
        self.epochs
            .values()
            .next_back()?
            .tracks
            .get(&track)
            .map(|(p, _)| p)
    }
}
