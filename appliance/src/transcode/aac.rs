//! AAC-LC encoding of linear PCM with fdk-aac (the Fraunhofer FDK AAC codec), and
//! decoding with a downmix to stereo ([`AacDecoder`]).
//!
//! [`AacEncoder`] takes 16-bit PCM stamped in samples and returns raw AAC access units
//! (1024 samples each, ISO/IEC 14496-3 §4.5.2.1) stamped in samples, sample-exact and
//! continuous: a gap in the input of up to [`MAX_FILL`] samples is filled with silence,
//! input that overlaps what was already encoded is cut, and a longer gap re-anchors the
//! output clock. The encoder's own delay (priming) is taken off the output times, so
//! encoded audio stays in sync with the video it came with.

use crate::media::aac::{AacError, AudioConfig};
use bytes::Bytes;
use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};

/// Samples per AAC-LC access unit.
pub const FRAME_LENGTH: usize = 1024;
/// The longest input gap, in samples per channel, filled with silence (about 2 s at
/// 8 kHz, 0.33 s at 48 kHz); a longer one re-anchors the output clock.
pub const MAX_FILL: i64 = 16_000;

/// The encoder could not be set up or failed.
#[derive(Debug, thiserror::Error)]
pub enum AacEncodeError {
    /// Only mono and stereo input is encoded.
    #[error("cannot encode {0} audio channels to AAC (mono and stereo only)")]
    Channels(u16),
    /// fdk-aac refused the configuration or failed to encode.
    #[error("AAC encoder: {0}")]
    Fdk(String),
    /// fdk-aac produced an AudioSpecificConfig we cannot parse.
    #[error("AAC encoder configuration: {0}")]
    Config(#[from] AacError),
}

/// A PCM-to-AAC-LC encoder with sample-exact output timestamps.
pub struct AacEncoder {
    encoder: Encoder,
    config: AudioConfig,
    channels: usize,
    /// Encoder delay in samples per channel.
    delay: i64,
    /// Interleaved samples waiting for a whole frame.
    pending: Vec<i16>,
    /// Sample time of the next input sample expected.
    next_in: Option<i64>,
    /// Sample time of the next output access unit.
    next_out: i64,
    /// Sample time of the first input sample; output before it is priming and dropped.
    first_in: i64,
    out_buf: Vec<u8>,
}

impl std::fmt::Debug for AacEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacEncoder")
            .field("sample_rate", &self.config.sample_rate)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl AacEncoder {
    /// An AAC-LC encoder for `channels` (1 or 2) channels at `sample_rate` Hz, at a
    /// bit rate fitting the rate: 24 kbit/s for 8 kHz mono speech up to 64 kbit/s per
    /// channel.
    ///
    /// # Errors
    /// [`AacEncodeError::Channels`], or [`AacEncodeError::Fdk`] for a sample rate AAC
    /// does not have.
    pub fn new(sample_rate: u32, channels: u16) -> Result<AacEncoder, AacEncodeError> {
        let mode = match channels {
            1 => ChannelMode::Mono,
            2 => ChannelMode::Stereo,
            n => return Err(AacEncodeError::Channels(n)),
        };
        let bit_rate = (sample_rate.saturating_mul(3)).clamp(24_000, 64_000) * u32::from(channels);
        let encoder = Encoder::new(EncoderParams {
            bit_rate: BitRate::Cbr(bit_rate),
            sample_rate,
            transport: Transport::Raw,
            channels: mode,
            audio_object_type: AudioObjectType::Mpeg4LowComplexity,
        })
        .map_err(|e| AacEncodeError::Fdk(e.to_string()))?;
        let info = encoder
            .info()
            .map_err(|e| AacEncodeError::Fdk(e.to_string()))?;
        let asc_len = (info.confSize as usize).min(info.confBuf.len());
        let config = AudioConfig::parse(Bytes::copy_from_slice(&info.confBuf[..asc_len]))?;
        Ok(AacEncoder {
            encoder,
            config,
            channels: usize::from(channels),
            delay: i64::from(info.nDelay),
            pending: Vec::with_capacity(FRAME_LENGTH * 4),
            next_in: None,
            next_out: 0,
            first_in: 0,
            out_buf: vec![0; (info.maxOutBufBytes as usize).max(2048)],
        })
    }

    /// The AudioSpecificConfig of the output.
    pub fn config(&self) -> &AudioConfig {
        &self.config
    }

    /// Encodes interleaved PCM whose first sample is at `pts` (samples at the encoder's
    /// rate). Returns the access units completed, each with its time in samples.
    ///
    /// # Errors
    /// [`AacEncodeError::Fdk`] when fdk-aac fails; the encoder should then be replaced.
    pub fn push(&mut self, pts: i64, pcm: &[i16]) -> Result<Vec<(i64, Bytes)>, AacEncodeError> {
        let ch = self.channels;
        let mut pcm = &pcm[..pcm.len() - pcm.len() % ch];
        match self.next_in {
            None => {
                self.first_in = pts;
                self.next_out = pts - self.delay;
            }
            Some(next) if pts > next && pts - next <= MAX_FILL => {
                // Lost packets: keep the clock by encoding silence for them.
                let fill = usize::try_from(pts - next).unwrap_or(0) * ch;
                self.pending.resize(self.pending.len() + fill, 0);
            }
            Some(next) if pts > next => {
                // A long gap: everything from here on is later by the gap.
                self.next_out += pts - next;
            }
            Some(next) if pts < next => {
                // Overlap: skip what was already encoded.
                let skip = usize::try_from(next - pts).unwrap_or(usize::MAX);
                let skip = skip.saturating_mul(ch).min(pcm.len());
                pcm = &pcm[skip..];
                if pcm.is_empty() {
                    return Ok(Vec::new());
                }
            }
            Some(_) => {}
        }
        let start = self.next_in.map_or(pts, |n| n.max(pts));
        self.next_in = Some(start + (pcm.len() / ch) as i64);
        self.pending.extend_from_slice(pcm);
        let mut out = Vec::new();
        let frame = FRAME_LENGTH * ch;
        let mut offset = 0;
        while self.pending.len() - offset >= frame {
            let info = self
                .encoder
                .encode(&self.pending[offset..offset + frame], &mut self.out_buf)
                .map_err(|e| AacEncodeError::Fdk(e.to_string()))?;
            if info.input_consumed == 0 && info.output_size == 0 {
                break;
            }
            offset += info.input_consumed.min(frame);
            if info.output_size > 0 {
                let t = self.next_out;
                self.next_out += FRAME_LENGTH as i64;
                if t >= self.first_in {
                    let n = info.output_size.min(self.out_buf.len());
                    out.push((t, Bytes::copy_from_slice(&self.out_buf[..n])));
                }
            }
        }
        self.pending.drain(..offset);
        Ok(out)
    }
}

/// An AAC decoder (raw access units, ISO/IEC 14496-3) to 16-bit PCM of at most two
/// channels: fdk-aac downmixes 5.1 and other layouts itself.
pub struct AacDecoder {
    decoder: fdk_aac::dec::Decoder,
    pcm: Vec<i16>,
}

impl std::fmt::Debug for AacDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AacDecoder")
    }
}

/// Interleaved samples one decoded access unit can fill at most (2048 samples of up to
/// 8 channels, as fdk-aac asks for).
const DECODE_BUFFER: usize = 2048 * 8;

impl AacDecoder {
    /// A decoder for `config`'s stream, giving out stereo (mono stays mono).
    ///
    /// # Errors
    /// [`AacEncodeError::Fdk`] when fdk-aac refuses the AudioSpecificConfig.
    pub fn new(config: &AudioConfig) -> Result<AacDecoder, AacEncodeError> {
        let fdk = |e: fdk_aac::dec::DecoderError| AacEncodeError::Fdk(e.message().to_string());
        let mut decoder = fdk_aac::dec::Decoder::new(fdk_aac::dec::Transport::Raw);
        decoder.config_raw(&config.asc).map_err(fdk)?;
        decoder.set_max_output_channels(2).map_err(fdk)?;
        Ok(AacDecoder {
            decoder,
            pcm: vec![0; DECODE_BUFFER],
        })
    }

    /// Decodes one access unit; returns its interleaved PCM and channel count.
    ///
    /// # Errors
    /// [`AacEncodeError::Fdk`] for an access unit fdk-aac rejects.
    pub fn decode(&mut self, au: &[u8]) -> Result<(&[i16], usize), AacEncodeError> {
        let fdk = |e: fdk_aac::dec::DecoderError| AacEncodeError::Fdk(e.message().to_string());
        self.decoder.fill(au).map_err(fdk)?;
        self.decoder.decode_frame(&mut self.pcm).map_err(fdk)?;
        let n = self.decoder.decoded_frame_size().min(self.pcm.len());
        let channels = usize::try_from(self.decoder.stream_info().numChannels)
            .unwrap_or(0)
            .clamp(1, 2);
        Ok((&self.pcm[..n], channels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, rate: f64) -> Vec<i16> {
        (0..n)
            .map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / rate).sin() * 8000.0) as i16)
            .collect()
    }

    #[test]
    fn output_is_sample_exact_and_starts_at_the_input() {
        let mut enc = AacEncoder::new(8000, 1).expect("encoder");
        assert_eq!(enc.config().sample_rate, 8000);
        assert_eq!(enc.config().channels, 1);
        let pcm = tone(8000, 8000.0);
        let mut stamps = Vec::new();
        // 20 ms packets, as cameras send G.711.
        for (i, chunk) in pcm.chunks(160).enumerate() {
            for (t, au) in enc.push(1000 + i as i64 * 160, chunk).expect("encode") {
                assert!(!au.is_empty());
                stamps.push(t);
            }
        }
        assert!(stamps.len() >= 4, "{stamps:?}");
        assert!(stamps[0] >= 1000 && stamps[0] < 1000 + 1024, "{stamps:?}");
        assert!(stamps.windows(2).all(|w| w[1] - w[0] == 1024), "{stamps:?}");
    }

    #[test]
    fn gaps_are_filled_and_overlaps_cut() {
        let mut enc = AacEncoder::new(8000, 1).expect("encoder");
        let pcm = tone(160, 8000.0);
        let mut stamps = Vec::new();
        let mut t = 0;
        for i in 0..200 {
            // Every tenth packet is lost; every seventh is sent twice.
            if i % 10 != 9 {
                stamps.extend(enc.push(t, &pcm).expect("encode").into_iter().map(|x| x.0));
            }
            if i % 7 == 6 {
                stamps.extend(enc.push(t, &pcm).expect("encode").into_iter().map(|x| x.0));
            }
            t += 160;
        }
        assert!(stamps.windows(2).all(|w| w[1] - w[0] == 1024), "{stamps:?}");
        // 32000 samples in; all but the encoder's delay come out.
        assert!(stamps.len() >= 28, "{}", stamps.len());
    }

    #[test]
    fn surround_is_refused() {
        assert!(matches!(
            AacEncoder::new(48000, 6),
            Err(AacEncodeError::Channels(6))
        ));
    }
}
