//! Sound for a capture source, from an ALSA capture PCM (libasound, through the `alsa`
//! crate): 16-bit PCM, stereo, at the card's own rate nearest 48 kHz, read on a thread
//! of its own and stamped on the monotonic clock the video's buffers are stamped on, so
//! that sound and pictures stay in sync.
//!
//! The device is opened as `plughw:CARD=ID,DEV=N` (the `hw:` name the inventory lists,
//! through ALSA's plug layer): the card's sample format and channel count are converted
//! to 16-bit stereo there, but never its rate (no resampling: AAC takes the common
//! rates as they are).
//!
//! Timing ([`PcmTimeline`]): the first sample of each read was captured at the status
//! timestamp (`htstamp`, `CLOCK_MONOTONIC`) less the frames the read and the ones still
//! waiting in the buffer. The timeline counts samples from there, so the AAC encoder
//! sees sound without gaps, and moves to the card's timestamps only when the two part by
//! more than [`RESYNC`]: after an overrun (samples lost: counted, and the gap the
//! encoder fills with silence keeps the sound in sync), or when the card's crystal has
//! drifted from the system's clock.

use super::{monotonic, CaptureError};
use alsa::pcm::{Access, Format, HwParams, TstampType, PCM};
use alsa::{Direction, ValueOr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How far, in seconds, the sample count may part from the card's timestamps before the
/// timeline follows the timestamps: half a video frame at 25 fps, so sound stays within
/// a frame of the pictures.
pub const RESYNC: f64 = 0.020;
/// The rate asked for, in Hz; the card's nearest is taken.
pub const PREFERRED_RATE: u32 = 48_000;
/// One read, in seconds of sound.
const PERIOD: f64 = 0.020;
/// The buffer, in periods: 160 ms of sound before an overrun.
const PERIODS: u32 = 8;

/// Places reads of samples on the stream's timeline: continuous while every sample
/// arrives, moved to the card's timestamps when they part by more than [`RESYNC`].
#[derive(Debug, Clone)]
pub struct PcmTimeline {
    /// Samples per second.
    rate: i64,
    /// The time of the next sample, in samples since the origin.
    next: Option<i64>,
    /// How often the timeline moved.
    resyncs: u64,
}

impl PcmTimeline {
    /// A timeline at `rate` samples per second.
    pub fn new(rate: u32) -> PcmTimeline {
        PcmTimeline {
            rate: i64::from(rate.max(1)),
            next: None,
            resyncs: 0,
        }
    }

    /// The time, in samples since the origin, of a read of `frames` samples whose first
    /// was captured `measured` samples after the origin (by the card's timestamp).
    pub fn place(&mut self, frames: usize, measured: i64) -> i64 {
        let tolerance = (RESYNC * self.rate as f64) as i64;
        let at = match self.next {
            Some(next) if (next - measured).abs() <= tolerance => next,
            Some(_) => {
                self.resyncs += 1;
                measured
            }
            None => measured,
        };
        self.next = Some(at + frames as i64);
        at
    }

    /// How often the timeline moved to the card's timestamps.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }
}

/// A capture PCM opened and set up, not yet started.
pub struct Opened {
    pcm: PCM,
    /// Samples per second per channel.
    pub rate: u32,
    /// Always 2.
    pub channels: u16,
    /// Samples per channel in one read.
    period: usize,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

/// What ALSA's error number means for the source.
fn error(device: &str, what: &str, e: alsa::Error) -> CaptureError {
    use rustix::io::Errno;
    let n = e.errno();
    let code = |x: Errno| x.raw_os_error();
    if n == code(Errno::NOENT) || n == code(Errno::NODEV) || n == code(Errno::NXIO) {
        CaptureError::AudioUnplugged
    } else if n == code(Errno::BUSY) {
        CaptureError::AudioBusy
    } else if n == code(Errno::ACCESS) || n == code(Errno::PERM) {
        CaptureError::Denied(format!("{device}: {e}"))
    } else {
        CaptureError::Audio(format!("{what} {device}: {e}"))
    }
}

/// Opens `device` (`hw:CARD=ID,DEV=N`) for capture through the plug layer: 16-bit
/// stereo, interleaved, at the card's rate nearest [`PREFERRED_RATE`], with status
/// timestamps on `CLOCK_MONOTONIC`.
///
/// # Errors
/// [`CaptureError::AudioUnplugged`], [`CaptureError::AudioBusy`],
/// [`CaptureError::Denied`], or [`CaptureError::Audio`] with what ALSA said.
pub fn open(device: &str) -> Result<Opened, CaptureError> {
    let name = match device.strip_prefix("hw:") {
        Some(rest) => format!("plughw:{rest}"),
        None => device.to_string(),
    };
    let pcm =
        PCM::new(&name, Direction::Capture, false).map_err(|e| error(device, "opening", e))?;
    let (rate, period) = {
        let set = |e| error(device, "setting up", e);
        let hw = HwParams::any(&pcm).map_err(set)?;
        hw.set_access(Access::RWInterleaved).map_err(set)?;
        hw.set_format(Format::s16()).map_err(set)?;
        hw.set_channels(2).map_err(set)?;
        hw.set_rate_resample(false).map_err(set)?;
        let rate = hw
            .set_rate_near(PREFERRED_RATE, ValueOr::Nearest)
            .map_err(set)?;
        let period = hw
            .set_period_size_near(
                (f64::from(rate) * PERIOD) as alsa::pcm::Frames,
                ValueOr::Nearest,
            )
            .map_err(set)?;
        hw.set_periods_near(PERIODS, ValueOr::Nearest)
            .map_err(set)?;
        pcm.hw_params(&hw).map_err(set)?;
        let sw = pcm.sw_params_current().map_err(set)?;
        sw.set_tstamp_mode(true).map_err(set)?;
        sw.set_tstamp_type(TstampType::Monotonic).map_err(set)?;
        pcm.sw_params(&sw).map_err(set)?;
        (rate, period.max(1) as usize)
    };
    Ok(Opened {
        pcm,
        rate,
        channels: 2,
        period,
    })
}

/// One read, placed: its time in samples since the origin, and the samples
/// (interleaved, 16-bit little-endian).
pub struct Read {
    /// Samples since the origin.
    pub at: i64,
    /// When its first sample was captured, on the monotonic clock.
    pub captured: Duration,
    /// The PCM bytes.
    pub data: Vec<u8>,
}

/// The audio thread: reads `opened` until `stopped` or `send` refuses; each read placed
/// on the timeline counted from `origin` (the monotonic time the video's timeline also
/// starts at). An overrun is counted in `overruns`, and the capture goes on. Returns
/// why it ended. Blocking.
pub fn run(
    device: &str,
    opened: Opened,
    origin: Duration,
    overruns: &AtomicU64,
    stopped: &AtomicBool,
    mut send: impl FnMut(Read) -> bool,
) -> CaptureError {
    let Opened {
        pcm,
        rate,
        channels,
        period,
    } = opened;
    let io = match pcm.io_i16() {
        Ok(io) => io,
        Err(e) => return error(device, "reading", e),
    };
    let mut buf = vec![0i16; period * usize::from(channels)];
    let mut timeline = PcmTimeline::new(rate);
    if let Err(e) = pcm.start() {
        return error(device, "starting", e);
    }
    let stall_ms = super::STALL.as_millis() as u32;
    loop {
        if stopped.load(Ordering::Relaxed) {
            return CaptureError::Ended("stopped");
        }
        let read = match pcm.wait(Some(stall_ms)) {
            Ok(false) => return CaptureError::AudioStalled,
            Ok(true) => io.readi(&mut buf),
            Err(e) => Err(e),
        };
        let frames = match read {
            Ok(n) => n,
            Err(e) if e.errno() == rustix::io::Errno::PIPE.raw_os_error() => {
                // An overrun: the buffer filled before it was read, samples are lost.
                overruns.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(device, "audio overrun");
                if let Err(e) = pcm.prepare().and_then(|()| pcm.start()) {
                    return error(device, "restarting after an overrun", e);
                }
                continue;
            }
            Err(e) => {
                if let Err(e) = pcm.try_recover(e, true) {
                    return error(device, "reading", e);
                }
                continue;
            }
        };
        if frames == 0 {
            continue;
        }
        // When the first sample of this read was captured: the status's timestamp less
        // what was read and what still waits (a plugin without timestamps: now).
        let (stamp, waiting) = match pcm.status() {
            Ok(s) => {
                let t = s.get_htstamp();
                let t = Duration::new(
                    t.tv_sec.max(0) as u64,
                    t.tv_nsec.clamp(0, 999_999_999) as u32,
                );
                let t = if t.is_zero() { monotonic() } else { t };
                (t, s.get_avail().max(0) as u64)
            }
            Err(_) => (monotonic(), 0),
        };
        let behind = Duration::from_secs_f64((waiting + frames as u64) as f64 / f64::from(rate));
        let captured = stamp.saturating_sub(behind);
        let measured = (captured.as_secs_f64() - origin.as_secs_f64()) * f64::from(rate);
        let at = timeline.place(frames, measured.round() as i64);
        let samples = &buf[..frames * usize::from(channels)];
        let data = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        if !send(Read { at, captured, data }) {
            return CaptureError::Ended("stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_follow_each_other_until_the_card_says_otherwise() {
        let mut t = PcmTimeline::new(48_000);
        // The card's stamps wobble by a few ms around the count: the count stands.
        assert_eq!(t.place(960, 1000), 1000);
        assert_eq!(t.place(960, 1960 + 300), 1960);
        assert_eq!(t.place(960, 2920 - 500), 2920);
        assert_eq!(t.resyncs(), 0);
        // An overrun lost 100 ms: the timeline jumps with the card.
        assert_eq!(t.place(960, 3880 + 4800), 8680);
        assert_eq!(t.resyncs(), 1);
        // A clock that drifted by more than 20 ms is followed as well.
        let drifted = 8680 + 960 - 1000;
        assert_eq!(t.place(960, drifted), drifted);
        assert_eq!(t.resyncs(), 2);
    }
}
