//! The capture timeline: each frame's presentation time from the driver's timestamp
//! and frame counter.
//!
//! A driver stamps a buffer with the time it filled it (`CLOCK_MONOTONIC`). That time
//! has the jitter of the driver's thread or the USB bus: a few milliseconds on a busy
//! box, tens of milliseconds in a slow VM. Frame durations that wander make players
//! and probes guess the frame rate wrong (ffprobe read a 15 fps source as 45 fps), and
//! make every fMP4 sample a different length. So a device that says its frame rate is
//! placed on its frame grid: each frame lands a whole number of frame periods after
//! the one before, that number being the step of the driver's frame counter (one, or
//! more over frames the device dropped). The grid follows the capture clock: a
//! smoothed mean of how far the stamps lie from it moves it by that much whenever it
//! passes a quarter of a period (a device whose clock runs slow or fast against the
//! box's), and a stamp more than [`RESYNC_PERIODS`] periods off, or a counter that did
//! not advance, starts the grid again at that frame. A device that does not say its
//! rate keeps its stamps as they are.

use crate::system::hardware::v4l2::Rate;
use std::time::Duration;

/// How many frame periods a stamp may lie from the grid before the grid starts again
/// at it (a device that paused without counting, a clock that stepped).
pub const RESYNC_PERIODS: f64 = 8.0;

/// How many frames the mean of the stamps' distance from the grid is smoothed over.
const SMOOTHING: f64 = 32.0;

/// `since` in ticks of the 90 kHz video clock, rounded to the nearest tick.
pub fn ticks_of(since: Duration) -> i64 {
    let ns = since.as_nanos().min(u128::from(u64::MAX));
    ((ns * 9 + 50_000) / 100_000) as i64
}

/// Places one capture session's frames on the timeline (see the module's doc).
#[derive(Debug)]
pub struct FrameGrid {
    /// Ticks of the 90 kHz clock from one frame to the next; `None` for a device that
    /// does not say its rate.
    period: Option<f64>,
    /// The last frame's counter value and its place on the grid (ticks, unrounded).
    last_frame: Option<(u32, f64)>,
    /// The smoothed mean of (stamp − place on the grid), in ticks.
    drift: f64,
    /// The last presentation time given out, in ticks.
    last_pts: i64,
}

impl FrameGrid {
    /// A grid for a device that delivers `rate` frames per second (`None` or a zero
    /// rate: the stamps are kept as they are).
    pub fn new(rate: Option<Rate>) -> Self {
        let period = rate
            .filter(|r| r.num > 0 && r.den > 0)
            .map(|r| 90_000.0 * f64::from(r.den) / f64::from(r.num));
        FrameGrid {
            period,
            last_frame: None,
            drift: 0.0,
            last_pts: -1,
        }
    }

    /// The presentation time, in ticks of the 90 kHz clock from the timeline's origin,
    /// of the frame the driver stamped `since` after that origin and counted as
    /// `sequence`. Always later than the one before.
    pub fn place(&mut self, since: Duration, sequence: u32) -> i64 {
        let stamp = ticks_of(since);
        let pts = match self.period {
            Some(period) => self.on_grid(stamp, sequence, period),
            None => stamp,
        };
        let pts = pts.max(self.last_pts + 1);
        self.last_pts = pts;
        pts
    }

    fn on_grid(&mut self, stamp: i64, sequence: u32, period: f64) -> i64 {
        let s = stamp as f64;
        if let Some((last_sequence, last_at)) = self.last_frame {
            let step = sequence.wrapping_sub(last_sequence);
            // A counter that advanced (a step back or a huge one is a driver restart).
            if step > 0 && step < 1 << 20 {
                let mut at = last_at + f64::from(step) * period;
                let error = s - at;
                if error.abs() <= RESYNC_PERIODS * period {
                    self.drift += (error - self.drift) / SMOOTHING;
                    if self.drift.abs() > period / 4.0 {
                        at += self.drift;
                        self.drift = 0.0;
                    }
                    self.last_frame = Some((sequence, at));
                    return at.round() as i64;
                }
            }
        }
        self.last_frame = Some((sequence, s));
        self.drift = 0.0;
        stamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FPS15: Rate = Rate { num: 15, den: 1 };

    /// The stamp of frame `n` of a device at `fps`, `offset_ns` after the origin.
    fn nominal(n: u64, fps: f64, offset_ns: u64) -> Duration {
        Duration::from_nanos(offset_ns + (n as f64 * 1e9 / fps) as u64)
    }

    /// A small deterministic pseudo-random sequence in [-1, 1).
    fn jitter(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*state >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
    }

    #[test]
    fn frames_at_an_exact_period_get_exactly_equal_steps_from_any_origin() {
        for offset_ns in [0u64, 123_456_789, 999_999_999] {
            let mut grid = FrameGrid::new(Some(FPS15));
            let pts: Vec<i64> = (0..30u32)
                .map(|n| grid.place(nominal(u64::from(n), 15.0, offset_ns), n))
                .collect();
            assert!(
                pts.windows(2).all(|w| w[1] - w[0] == 6000),
                "{offset_ns}: {pts:?}"
            );
        }
    }

    #[test]
    fn stamps_that_jitter_by_a_third_of_a_period_still_get_equal_steps() {
        let mut grid = FrameGrid::new(Some(FPS15));
        let mut state = 7;
        let mut worst = 0i64;
        let mut last = None;
        for n in 0..900u32 {
            let exact = nominal(u64::from(n), 15.0, 5_000_000);
            let off = jitter(&mut state) * 22_000_000.0;
            let stamp = Duration::from_nanos((exact.as_nanos() as f64 + off) as u64);
            let pts = grid.place(stamp, 100 + n);
            if let Some(prev) = last {
                assert_eq!(pts - prev, 6000, "frame {n}");
            }
            last = Some(pts);
            worst = worst.max((pts - ticks_of(exact)).abs());
        }
        // The grid sits where the frames' mean lies: within a quarter of a period of it.
        assert!(worst <= 1500, "{worst}");
    }

    #[test]
    fn frames_the_device_dropped_leave_a_gap_of_their_periods() {
        let mut grid = FrameGrid::new(Some(Rate {
            num: 30000,
            den: 1001,
        }));
        let seqs = [0u32, 1, 2, 5, 6, 9];
        let pts: Vec<i64> = seqs
            .iter()
            .map(|&n| grid.place(nominal(u64::from(n), 30000.0 / 1001.0, 0), n))
            .collect();
        let steps: Vec<i64> = pts.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(steps, [3003, 3003, 3 * 3003, 3003, 3 * 3003]);
    }

    #[test]
    fn a_device_clock_that_runs_slow_moves_the_grid_and_keeps_the_timeline_true() {
        // The device says 15 fps and delivers 14.985 (0.1 % slow): over ten minutes the
        // grid moves now and then by about a quarter period, and never lies further from
        // the stamps than that and the smoothing's lag (32 frames × 6 ticks).
        let mut grid = FrameGrid::new(Some(FPS15));
        let mut moves = 0;
        let mut last = None;
        for n in 0..9000u32 {
            let stamp = nominal(u64::from(n), 14.985, 0);
            let pts = grid.place(stamp, n);
            assert!((pts - ticks_of(stamp)).abs() <= 1800, "frame {n}");
            if let Some(prev) = last {
                if pts - prev != 6000 {
                    moves += 1;
                }
            }
            last = Some(pts);
        }
        // 600 s × 0.1 % = 0.6 s of drift, taken in steps of about a quarter period.
        assert!((30..=45).contains(&moves), "{moves}");
    }

    #[test]
    fn a_counter_that_does_not_advance_or_a_stamp_far_off_keeps_the_stamps() {
        let mut grid = FrameGrid::new(Some(FPS15));
        let stamps = [0u64, 70_000_000, 130_000_000, 210_000_000];
        let pts: Vec<i64> = stamps
            .iter()
            .map(|&ns| grid.place(Duration::from_nanos(ns), 0))
            .collect();
        assert_eq!(pts, [0, 6300, 11700, 18900]);
        // A stamp 10 s on while the counter moved by one: the grid starts again there.
        let far = grid.place(Duration::from_secs(10), 1);
        assert_eq!(far, 900_000);
        assert_eq!(grid.place(Duration::from_nanos(10_066_666_667), 2), 906_000);
    }

    #[test]
    fn a_device_that_does_not_say_its_rate_keeps_its_stamps_and_they_still_increase() {
        let mut grid = FrameGrid::new(None);
        assert_eq!(grid.place(Duration::from_millis(10), 0), 900);
        assert_eq!(grid.place(Duration::from_millis(45), 1), 4050);
        // A stamp that does not advance still gives a later time.
        assert_eq!(grid.place(Duration::from_millis(45), 2), 4051);
    }
}
