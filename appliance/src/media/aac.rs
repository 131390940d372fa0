//! AAC parameters from the AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).

use super::bits::BitReader;
use bytes::Bytes;

/// Sampling frequencies by `samplingFrequencyIndex` (ISO/IEC 14496-3 §1.6.3.3, Table 1.18).
pub const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Why an AudioSpecificConfig was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AacError {
    /// Fewer bytes than the fields need.
    #[error("AudioSpecificConfig truncated")]
    Truncated,
    /// A reserved sampling frequency index (13 or 14).
    #[error("reserved samplingFrequencyIndex {0}")]
    SampleRateIndex(u32),
    /// An explicit sampling frequency of zero.
    #[error("sampling frequency 0")]
    ZeroSampleRate,
    /// channelConfiguration 0 (layout in a program_config_element) or a reserved value.
    #[error("channelConfiguration {0} is not supported (only 1-7, 11, 12, 14)")]
    ChannelConfiguration(u32),
    /// An audio object type other than AAC Main/LC/SSR/LTP, HE-AAC (SBR) or HE-AACv2 (PS).
    #[error("audio object type {0} is not AAC")]
    ObjectType(u32),
}

/// AAC decoder configuration of an audio track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    /// The AudioSpecificConfig as received, written verbatim into `esds`.
    pub asc: Bytes,
    /// `audioObjectType` (2 = AAC-LC).
    pub object_type: u8,
    /// Sampling frequency in Hz; also the track timescale.
    pub sample_rate: u32,
    /// Number of output channels (6 for 5.1).
    pub channels: u8,
    /// Samples per channel in one access unit: 1024, or 960 with `frameLengthFlag`.
    pub frame_length: u32,
}

impl AudioConfig {
    /// Parses an AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).
    ///
    /// # Errors
    /// [`AacError`] for truncated data, reserved sample rates, PCE channel layouts and
    /// object types that are not AAC.
    pub fn parse(asc: Bytes) -> Result<AudioConfig, AacError> {
        let mut r = BitReader::new(&asc);
        let t = |_| AacError::Truncated;
        let mut object_type = r.bits(5).map_err(t)?;
        if object_type == 31 {
            object_type = 32 + r.bits(6).map_err(t)?;
        }
        let sample_rate = match r.bits(4).map_err(t)? {
            15 => r.bits(24).map_err(t)?,
            i @ 13..=14 => return Err(AacError::SampleRateIndex(i)),
            i => SAMPLE_RATES[i as usize],
        };
        if sample_rate == 0 {
            return Err(AacError::ZeroSampleRate);
        }
        let channel_config = r.bits(4).map_err(t)?;
        let channels = match channel_config {
            1..=6 => channel_config as u8,
            7 | 12 | 14 => 8,
            11 => 7,
            c => return Err(AacError::ChannelConfiguration(c)),
        };
        if !matches!(object_type, 1..=5 | 29) {
            return Err(AacError::ObjectType(object_type));
        }
        // GASpecificConfig (§4.4.1) follows directly for the plain AAC object types.
        let frame_length = if matches!(object_type, 1..=4) && r.bit().map_err(t)? == 1 {
            960
        } else {
            1024
        };
        Ok(AudioConfig {
            asc,
            object_type: object_type as u8,
            sample_rate,
            channels,
            frame_length,
        })
    }

    /// RFC 6381 §3.3 codecs value, e.g. `mp4a.40.2` for AAC-LC.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bbb_51() {
        // From the esds of ../shared/media/bigbuckbunny.mp4: AAC-LC, 48 kHz, 5.1.
        let c = AudioConfig::parse(Bytes::from_static(&[0x11, 0xb0])).expect("parse");
        assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 48000, 6));
        assert_eq!(c.codec_string(), "mp4a.40.2");
        assert_eq!(c.frame_length, 1024);
    }

    #[test]
    fn every_standard_rate_and_explicit_rate() {
        for (i, rate) in SAMPLE_RATES.iter().enumerate() {
            let asc = [(2 << 3) | (i as u8 >> 1), ((i as u8 & 1) << 7) | (2 << 3)];
            let c = AudioConfig::parse(Bytes::copy_from_slice(&asc)).expect("parse");
            assert_eq!((c.sample_rate, c.channels), (*rate, 2));
        }
        // Index 15: explicit 24-bit rate 44100 = 0x00AC44, mono.
        let bits: u64 = (2 << 59) | (15 << 55) | (44100 << 31) | (1 << 27);
        let bytes = bits.to_be_bytes();
        let c = AudioConfig::parse(Bytes::copy_from_slice(&bytes)).expect("parse");
        assert_eq!((c.sample_rate, c.channels), (44100, 1));
    }

    #[test]
    fn rejects_bad_configs() {
        assert_eq!(AudioConfig::parse(Bytes::new()), Err(AacError::Truncated));
        assert_eq!(
            AudioConfig::parse(Bytes::from_static(&[0x16, 0x80])),
            Err(AacError::SampleRateIndex(13))
        );
        assert_eq!(
            AudioConfig::parse(Bytes::from_static(&[0x11, 0x80])),
            Err(AacError::ChannelConfiguration(0))
        );
    }
}
