//! Sample-rate conversion of interleaved 16-bit PCM, for the ABR audio rendition: rubato's
//! synchronous FFT resampler (band-limited, fixed input chunks), with the presentation
//! times carried across.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

/// Input frames per resampler call.
const CHUNK: usize = 1024;

/// Why resampling failed.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    /// rubato refused the rates or channel count, or failed on a chunk.
    #[error("resampling: {0}")]
    Rubato(String),
}

/// Converts interleaved PCM from one sample rate to another.
pub struct Resampler {
    fft: Fft<f32>,
    from: u32,
    to: u32,
    channels: usize,
    /// Interleaved input not yet resampled, as f32 in [-1, 1).
    pending: Vec<f32>,
    /// Input time (samples at `from`) just after the last frame taken in.
    next_in: Option<i64>,
    /// Output time (samples at `to`) of the next frame given out.
    next_out: i64,
    /// Output frames still to drop: the resampler's delay, at the start.
    skip: usize,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Resampler({} Hz → {} Hz, {} ch)",
            self.from, self.to, self.channels
        )
    }
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz for `channels` interleaved channels.
    ///
    /// # Errors
    /// [`ResampleError::Rubato`] for a zero rate or no channels.
    pub fn new(from: u32, to: u32, channels: usize) -> Result<Resampler, ResampleError> {
        if channels == 0 {
            return Err(ResampleError::Rubato("no channels".into()));
        }
        let fft = Fft::<f32>::new(
            from as usize,
            to as usize,
            CHUNK,
            channels,
            FixedSync::Input,
        )
        .map_err(|e| ResampleError::Rubato(e.to_string()))?;
        let skip = fft.output_delay();
        Ok(Resampler {
            fft,
            from,
            to,
            channels,
            pending: Vec::new(),
            next_in: None,
            next_out: 0,
            skip,
        })
    }

    /// Takes interleaved PCM whose first frame is at `pts` (samples at the input rate)
    /// and returns what was converted: interleaved PCM at the output rate and the output
    /// time of its first frame (samples at the output rate), or `None` while too little
    /// has come in. Input that does not follow on from the last (a gap or an overlap)
    /// starts the conversion afresh at its own time.
    ///
    /// # Errors
    /// [`ResampleError::Rubato`] when a chunk fails.
    pub fn push(
        &mut self,
        pts: i64,
        pcm: &[i16],
    ) -> Result<Option<(i64, Vec<i16>)>, ResampleError> {
        let ch = self.channels;
        let pcm = &pcm[..pcm.len() - pcm.len() % ch];
        if self.next_in != Some(pts) {
            if let Ok(fresh) = Resampler::new(self.from, self.to, ch) {
                *self = fresh;
            }
            self.next_out = pts * i64::from(self.to) / i64::from(self.from);
        }
        self.next_in = Some(pts + (pcm.len() / ch) as i64);
        self.pending
            .extend(pcm.iter().map(|s| f32::from(*s) / 32_768.0));
        let mut out = Vec::new();
        while self.pending.len() >= CHUNK * ch {
            let input = InterleavedSlice::new(&self.pending[..CHUNK * ch], ch, CHUNK)
                .map_err(|e| ResampleError::Rubato(e.to_string()))?;
            let converted = self
                .fft
                .process(&input, None)
                .map_err(|e| ResampleError::Rubato(e.to_string()))?
                .take_data();
            self.pending.drain(..CHUNK * ch);
            let drop = (self.skip * ch).min(converted.len());
            self.skip -= drop / ch;
            out.extend(
                converted[drop..]
                    .iter()
                    .map(|s| (s * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16),
            );
        }
        if out.is_empty() {
            return Ok(None);
        }
        let at = self.next_out;
        self.next_out += (out.len() / ch) as i64;
        Ok(Some((at, out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1 kHz tone at `rate`, stereo, `frames` long, starting at frame `from`.
    fn tone(rate: u32, from: usize, frames: usize) -> Vec<i16> {
        (from..from + frames)
            .flat_map(|n| {
                let v = (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / f64::from(rate)).sin();
                let s = (v * 16_000.0) as i16;
                [s, s]
            })
            .collect()
    }

    #[test]
    fn a_tone_keeps_its_pitch_and_the_clock_carries_across() {
        let mut r = Resampler::new(32_000, 48_000, 2).expect("resampler");
        let mut out = Vec::new();
        let mut first = None;
        // One second in uneven pieces, as decoded frames come.
        let mut t = 0;
        for piece in [700, 1024, 1500, 300, 2000].iter().cycle() {
            if t >= 32_000 {
                break;
            }
            if let Some((at, pcm)) = r.push(t as i64, &tone(32_000, t, *piece)).expect("push") {
                first.get_or_insert(at);
                out.extend(pcm);
            }
            t += piece;
        }
        assert_eq!(first, Some(0), "output time starts where the input did");
        let frames = out.len() / 2;
        // All of it at 3/2 the rate, but for the last partial chunk and the delay.
        let all = t as f64 * 1.5;
        assert!(
            frames as f64 <= all && frames as f64 > all - 3.0 * 1536.0,
            "{frames} of {all}"
        );
        // 1 kHz at 48 kHz: 48 samples a cycle, so about 2 zero crossings per 48 samples.
        let left: Vec<i16> = out.iter().step_by(2).copied().collect();
        let crossings = left
            .windows(2)
            .skip(1000)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        let expected = (left.len() - 1001) as f64 / 24.0;
        assert!(
            (crossings as f64 - expected).abs() < expected * 0.02,
            "{crossings} crossings, {expected:.0} expected"
        );
        // Louder than silence, not clipped.
        let peak = left.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!((14_000..18_000).contains(&peak), "{peak}");
        // A jump in input time starts afresh at the new time.
        let (at, _) = loop {
            if let Some(x) = r.push(100_000, &tone(32_000, 0, 4096)).expect("push") {
                break x;
            }
        };
        assert_eq!(at, 150_000);
    }

    #[test]
    fn zero_rates_are_refused() {
        assert!(Resampler::new(0, 48_000, 2).is_err());
        assert!(Resampler::new(44_100, 48_000, 0).is_err());
    }
}
