//! Widening wire timestamps to the stream timeline, once, at ingest.
//!
//! RTMP carries 32-bit millisecond timestamps that wrap after about 49.7 days; the wire
//! value is never used in arithmetic. [`MsTimeline`] unwraps them into `i64` and rebases
//! them so the session's first frame lands at a chosen stream time. A jump of more than
//! [`MAX_JUMP_MS`] either way is treated as a discontinuity in the source, not as media:
//! the timeline is re-anchored so the next frame follows the previous one.
//!
//! [`AudioClock`] then turns the millisecond times of AAC frames into sample-exact times
//! (every AAC access unit is 1024 samples), so rounding to milliseconds on the wire does not
//! show up as 1008/1056-sample jitter in the output.

/// A timestamp jump larger than this (milliseconds, either direction) is a discontinuity.
pub const MAX_JUMP_MS: i64 = 10_000;

/// Unwraps and rebases 32-bit millisecond timestamps (RTMP chunk timestamps).
#[derive(Debug, Clone)]
pub struct MsTimeline {
    /// Stream time (ms) the first timestamp maps to.
    base_ms: i64,
    /// Last wire value and the stream time (ms) it mapped to.
    last: Option<(u32, i64)>,
}

impl MsTimeline {
    /// A timeline whose first timestamp maps to `base_ms` milliseconds of stream time.
    pub fn new(base_ms: i64) -> Self {
        MsTimeline {
            base_ms,
            last: None,
        }
    }

    /// Maps a wire timestamp to stream time in milliseconds.
    pub fn map(&mut self, wire: u32) -> i64 {
        let out = match self.last {
            None => self.base_ms,
            Some((last_wire, last_out)) => {
                let delta = i64::from(wire.wrapping_sub(last_wire) as i32);
                if delta.abs() > MAX_JUMP_MS {
                    last_out
                } else {
                    last_out + delta
                }
            }
        };
        self.last = Some((wire, out));
        out
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

    #[test]
    fn unwraps_across_u32_wrap() {
        let mut t = MsTimeline::new(1000);
        assert_eq!(t.map(u32::MAX - 10), 1000);
        assert_eq!(t.map(u32::MAX), 1010);
        assert_eq!(t.map(29), 1040);
        assert_eq!(t.map(20), 1031); // small reordering stays
    }

    #[test]
    fn jump_is_a_discontinuity() {
        let mut t = MsTimeline::new(0);
        t.map(100);
        assert_eq!(t.map(140), 40);
        assert_eq!(t.map(1_000_000), 40);
        assert_eq!(t.map(1_000_040), 80);
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
