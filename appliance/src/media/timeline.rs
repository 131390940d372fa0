//! Widening wire timestamps to the stream timeline, once, at ingest, with one policy
//! for every ingest (RTMP here, RTP in [`crate::ingest::rtp_frames`]):
//!
//! - wire values are widened to `i64` once, wraparound handled there, and never used in
//!   arithmetic afterwards;
//! - a session's first frame lands at a chosen stream time, never below
//!   [`MIN_BASE_MS`], so decode times are never negative (B-frames' decode times come
//!   before their presentation times, and one track may start before the other); a new
//!   hub's stream time zero is that far before it is made
//!   ([`Hub::new`](crate::hub::Hub::new)), so the floor does not shift a first session
//!   away from the wall clock;
//! - a jump of more than [`MAX_JUMP_MS`] either way is a discontinuity in the source,
//!   not media: the timeline is re-anchored so the frame after it follows its track's
//!   previous frame by that track's usual step, and decode times stay strictly
//!   increasing (the next fragment's `tfdt` never overlaps the last one's). The session
//!   goes on; the jump is counted and logged.
//!
//! RTMP carries 32-bit millisecond timestamps that wrap after about 49.7 days;
//! [`MsTimeline`] unwraps and rebases them. [`AudioClock`] then turns the millisecond
//! times of AAC frames into sample-exact times (every AAC access unit is 1024 samples),
//! so rounding to milliseconds on the wire does not show up as 1008/1056-sample jitter
//! in the output.

use super::TrackId;

/// A timestamp jump larger than this (milliseconds, either direction) is a discontinuity.
pub const MAX_JUMP_MS: i64 = 10_000;

/// The earliest stream time (ms) a session's first frame maps to.
pub const MIN_BASE_MS: i64 = 1000;

/// The step (ms) assumed between a track's frames before one was seen: a frame at
/// 25 fps, or thereabouts a 48 kHz AAC frame.
const DEFAULT_STEP_MS: i64 = 40;
/// The longest step (ms) kept as a track's usual one.
const MAX_STEP_MS: i64 = 1000;

/// Per track: the stream time of its last frame, and its last step forward (ms).
#[derive(Debug, Clone, Copy)]
struct TrackTime {
    last: i64,
    step: i64,
}

/// Unwraps and rebases 32-bit millisecond timestamps (RTMP chunk timestamps) of a
/// session's audio and video, which share one clock.
#[derive(Debug, Clone)]
pub struct MsTimeline {
    /// Stream time (ms) the first timestamp maps to.
    base_ms: i64,
    /// Last wire value (any track) and the stream time (ms) it mapped to.
    last: Option<(u32, i64)>,
    tracks: [Option<TrackTime>; 2],
    jumps: u32,
}

impl MsTimeline {
    /// A timeline whose first timestamp maps to `base_ms` milliseconds of stream time
    /// (at least [`MIN_BASE_MS`]).
    pub fn new(base_ms: i64) -> Self {
        MsTimeline {
            base_ms: base_ms.max(MIN_BASE_MS),
            last: None,
            tracks: [None; 2],
            jumps: 0,
        }
    }

    /// Maps a wire timestamp of `track` to stream time in milliseconds. With `strict`
    /// (a track whose decode times must strictly increase: video; AAC frames go through
    /// [`AudioClock`], which drops overlaps itself), a time at or before the track's
    /// previous one is a discontinuity too.
    pub fn map(&mut self, track: TrackId, wire: u32) -> i64 {
        let slot = track as usize;
        let (candidate, delta) = match self.last {
            None => (self.base_ms, 0),
            Some((last_wire, last_out)) => {
                let delta = i64::from(wire.wrapping_sub(last_wire) as i32);
                (last_out + delta, delta)
            }
        };
        let strict = track == TrackId::Video;
        let out = match self.tracks[slot] {
            Some(t) if delta.abs() > MAX_JUMP_MS || (strict && candidate <= t.last) => {
                self.jumps += 1;
                t.last + t.step
            }
            // The other track's frames set `last`; this track's first one may still jump.
            None if delta.abs() > MAX_JUMP_MS => {
                self.jumps += 1;
                self.last.map_or(self.base_ms, |(_, o)| o + 1)
            }
            _ => candidate,
        };
        self.tracks[slot] = Some(match self.tracks[slot] {
            Some(t) if out > t.last && out - t.last <= MAX_STEP_MS => TrackTime {
                last: out,
                step: out - t.last,
            },
            Some(t) => TrackTime {
                last: out.max(t.last),
                step: t.step,
            },
            None => TrackTime {
                last: out,
                step: DEFAULT_STEP_MS,
            },
        });
        self.last = Some((wire, out));
        out
    }

    /// How many discontinuities (jumps, or video going back) were re-anchored.
    pub fn jumps(&self) -> u32 {
        self.jumps
    }
}

/// Sample-exact timestamps for fixed-length audio frames.
#[derive(Debug, Clone)]
pub struct AudioClock {
    sample_rate: u32,
    frame_length: u32,
    next: Option<i64>,
}

/// Drift between the counted and the wire clock, in milliseconds, beyond which the
/// counted clock is re-anchored (a gap in the source audio).
const AUDIO_RESYNC_MS: i64 = 60;

impl AudioClock {
    /// A clock for frames of `frame_length` samples at `sample_rate` Hz.
    pub fn new(sample_rate: u32, frame_length: u32) -> Self {
        AudioClock {
            sample_rate,
            frame_length,
            next: None,
        }
    }

    /// Returns the decode time in samples of a frame whose wire time is `ms` milliseconds,
    /// or `None` for a frame to drop.
    ///
    /// Frames follow each other sample-exactly while the wire time agrees within
    /// [`AUDIO_RESYNC_MS`]. A later wire time is a gap in the source: the clock jumps
    /// forward to it. An earlier one by more than a frame means the source repeated or
    /// overlapped audio (encoders re-send their priming frame when a file loops): that
    /// frame is dropped, so time never runs backwards and audio stays within a frame of
    /// video.
    pub fn stamp(&mut self, ms: i64) -> Option<i64> {
        let rate = i64::from(self.sample_rate);
        let wire = ms * rate / 1000;
        let frame = i64::from(self.frame_length);
        let t = match self.next {
            None => wire,
            Some(n) if wire > n && (wire - n) * 1000 > AUDIO_RESYNC_MS * rate => wire,
            Some(n) if n - wire > frame => return None,
            Some(n) => n,
        };
        self.next = Some(t + frame);
        Some(t)
    }
}

/// Decode times for video whose transport carries presentation times only: an RTP
/// timestamp is the sampling instant (RFC 6184 §5.1), which with B-frames runs
/// backwards in decode order.
///
/// Frames are held back `depth` frames (the SPS's `max_num_reorder_frames`), enough to
/// know the smallest presentation time still to come; each frame leaving takes that,
/// less `depth` frame intervals, as its decode time. Decode times are therefore the
/// presentation times in sorted order moved back by the reorder delay, as an encoder
/// sets them: strictly increasing, and not after the frame's presentation time (a
/// negative composition offset shifts presentation in some players and not others). A
/// source whose SPS does not say starts at depth 0 and moves to
/// [`ASSUMED_REORDER_DEPTH`] when it first reorders.
#[derive(Debug)]
pub struct DtsFromPts<T> {
    depth: usize,
    adaptive: bool,
    queue: std::collections::VecDeque<(i64, T)>,
    upcoming: std::collections::BinaryHeap<std::cmp::Reverse<i64>>,
    max_pts: Option<i64>,
    last_dts: Option<i64>,
    /// The reorder delay subtracted from sorted presentation times, fixed when the first
    /// frame leaves (depth times the shortest frame interval seen by then).
    delay: Option<i64>,
}

/// Reorder depth assumed for a source that reorders without saying how deep
/// (libx264's default with B-pyramid).
pub const ASSUMED_REORDER_DEPTH: usize = 2;

impl<T> DtsFromPts<T> {
    /// A deriver holding frames back `depth` frames; `None` when the SPS does not say.
    pub fn new(depth: Option<u32>) -> Self {
        DtsFromPts {
            depth: depth.map_or(0, |d| (d as usize).min(16)),
            adaptive: depth.is_none(),
            queue: Default::default(),
            upcoming: Default::default(),
            max_pts: None,
            last_dts: None,
            delay: None,
        }
    }

    /// Takes a frame with presentation time `pts` (any timescale) in decode order; returns
    /// the frame leaving the buffer, if one does, as `(dts, pts, frame)`.
    pub fn push(&mut self, pts: i64, frame: T) -> Option<(i64, i64, T)> {
        if self.adaptive && self.max_pts.is_some_and(|m| pts < m) {
            self.depth = ASSUMED_REORDER_DEPTH;
            self.adaptive = false;
            self.delay = None;
        }
        self.max_pts = Some(self.max_pts.map_or(pts, |m| m.max(pts)));
        self.queue.push_back((pts, frame));
        self.upcoming.push(std::cmp::Reverse(pts));
        if self.queue.len() > self.depth {
            self.pop()
        } else {
            None
        }
    }

    /// Releases every frame still held (at the end of a session).
    pub fn flush(&mut self) -> Vec<(i64, i64, T)> {
        std::iter::from_fn(|| self.pop()).collect()
    }

    fn pop(&mut self) -> Option<(i64, i64, T)> {
        if self.delay.is_none() {
            let mut seen: Vec<i64> = self.upcoming.iter().map(|r| r.0).collect();
            seen.sort_unstable();
            let interval = seen
                .windows(2)
                .map(|w| w[1] - w[0])
                .filter(|d| *d > 0)
                .min();
            self.delay = Some(interval.unwrap_or(0) * self.depth as i64);
        }
        let (pts, frame) = self.queue.pop_front()?;
        let smallest = self.upcoming.pop().map_or(pts, |r| r.0) - self.delay.unwrap_or(0);
        let dts = match self.last_dts {
            Some(last) if smallest <= last => last + 1,
            _ => smallest,
        };
        self.last_dts = Some(dts);
        Some((dts, pts, frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b_frames_get_increasing_decode_times() {
        // I0 P3 B1 B2 P6 B4 B5 in decode order, depth 2 as the SPS says.
        let mut d = DtsFromPts::new(Some(2));
        let pts = [0, 3, 1, 2, 6, 4, 5];
        let mut out: Vec<(i64, i64, usize)> = Vec::new();
        for (i, p) in pts.iter().enumerate() {
            out.extend(d.push(*p, i));
        }
        out.extend(d.flush());
        let dts: Vec<i64> = out.iter().map(|o| o.0).collect();
        assert_eq!(
            dts,
            [-2, -1, 0, 1, 2, 3, 4],
            "sorted, less two frames of delay"
        );
        assert_eq!(
            out.iter().map(|o| o.2).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 6]
        );
        // Every frame is decoded before (or as) it is shown, as an encoder stamps it.
        assert!(out.iter().all(|&(dts, pts, _)| dts <= pts), "{out:?}");
    }

    #[test]
    fn an_unknown_depth_adapts_on_the_first_reordering() {
        let mut d = DtsFromPts::new(None);
        assert_eq!(d.push(0, ()), Some((0, 0, ())));
        assert_eq!(d.push(3, ()), Some((3, 3, ())));
        // B-frame: from now on frames are held back two deep.
        assert_eq!(d.push(1, ()), None);
        assert_eq!(d.push(2, ()), None);
        let (dts, ..) = d.push(6, ()).expect("released");
        assert!(dts > 3);
    }

    use crate::media::TrackId::{Audio, Video};

    #[test]
    fn unwraps_across_u32_wrap() {
        let mut t = MsTimeline::new(1000);
        assert_eq!(t.map(Video, u32::MAX - 10), 1000);
        assert_eq!(t.map(Video, u32::MAX), 1010);
        assert_eq!(t.map(Video, 29), 1040);
        // Audio a little behind video, as tags interleave: media, not a jump.
        assert_eq!(t.map(Audio, 20), 1031);
        assert_eq!(t.map(Video, 69), 1080);
        assert_eq!(t.jumps(), 0);
    }

    #[test]
    fn times_never_start_below_the_minimum_base() {
        let mut t = MsTimeline::new(0);
        assert_eq!(t.map(Audio, 500), MIN_BASE_MS);
        // Video whose first frame is stamped a little before the first audio.
        let video = t.map(Video, 480);
        assert_eq!(video, MIN_BASE_MS - 20);
        assert!(video > 0, "{video}");
    }

    #[test]
    fn a_jump_is_a_discontinuity_with_strictly_increasing_times() {
        let mut t = MsTimeline::new(1000);
        assert_eq!(t.map(Video, 100), 1000);
        assert_eq!(t.map(Audio, 110), 1010);
        assert_eq!(t.map(Video, 140), 1040);
        assert_eq!(t.map(Audio, 131), 1031);
        // The publisher's clock steps a quarter hour forward: each track follows its
        // previous frame by its usual step, the other track then follows on.
        assert_eq!(t.map(Video, 900_140), 1080);
        assert_eq!(t.map(Audio, 900_131), 1071);
        assert_eq!(t.map(Video, 900_180), 1120);
        assert_eq!(t.jumps(), 1);
        // And back by an hour.
        assert_eq!(t.map(Video, 100), 1160);
        assert_eq!(t.map(Video, 140), 1200);
        assert_eq!(t.jumps(), 2);
        // Video that does not move forward (a publisher restarting its clock by a
        // few seconds) is re-anchored too: decode times must increase.
        assert_eq!(t.map(Video, 140), 1240);
        assert_eq!(t.map(Video, 180), 1280);
        assert_eq!(t.jumps(), 3);
    }

    #[test]
    fn audio_clock_is_sample_exact() {
        let mut c = AudioClock::new(48000, 1024);
        let stamps: Vec<Option<i64>> = [0, 21, 43, 64, 85].iter().map(|&ms| c.stamp(ms)).collect();
        assert_eq!(stamps, [0, 1024, 2048, 3072, 4096].map(Some));
        // A gap of a second re-anchors forward.
        assert_eq!(c.stamp(1085), Some(1085 * 48));
    }

    #[test]
    fn overlapping_audio_is_dropped_never_stamped_backwards() {
        let mut c = AudioClock::new(48000, 1024);
        assert_eq!(c.stamp(0), Some(0));
        assert_eq!(c.stamp(21), Some(1024));
        // 13 ms early (less than a frame): absorbed, still sample-exact.
        assert_eq!(c.stamp(30), Some(2048));
        // A loop re-sends a priming frame 43 ms early (more than a frame): dropped.
        assert_eq!(c.stamp(21), None);
        assert_eq!(c.stamp(64), Some(3072));
    }
}
