//! H.264 parameters: the AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1), the
//! parts of the sequence parameter set we need (ISO/IEC 14496-10 §7.3.2.1.1), and checks
//! of AVCC (length-prefixed) access units.

use bytes::{BufMut, Bytes, BytesMut};

/// Why H.264 data was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum H264Error {
    /// The AVCDecoderConfigurationRecord is shorter than its fields say.
    #[error("avcC record truncated at byte {0}")]
    RecordTruncated(usize),
    /// `configurationVersion` is not 1.
    #[error("avcC configurationVersion {0} is not 1")]
    RecordVersion(u8),
    /// The record carries no SPS or no PPS.
    #[error("avcC record has {sps} SPS and {pps} PPS; need at least one of each")]
    MissingParameterSets {
        /// SPS count.
        sps: usize,
        /// PPS count.
        pps: usize,
    },
    /// The SPS could not be parsed.
    #[error("SPS truncated or malformed")]
    Sps,
    /// An NAL unit length prefix points past the end of the access unit.
    #[error("NAL unit at byte {offset} claims {len} bytes, only {left} remain")]
    NalOverrun {
        /// Byte offset of the length prefix in the access unit.
        offset: usize,
        /// Length claimed, in bytes.
        len: usize,
        /// Bytes left after the prefix.
        left: usize,
    },
    /// The access unit contains no NAL unit.
    #[error("empty access unit")]
    EmptyAccessUnit,
}

/// H.264 decoder configuration of a video track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// The AVCDecoderConfigurationRecord as received, written verbatim into `avcC`.
    pub record: Bytes,
    /// `AVCProfileIndication` (66 Baseline, 77 Main, 100 High, …).
    pub profile_idc: u8,
    /// `profile_compatibility` (constraint_set flags).
    pub constraints: u8,
    /// `AVCLevelIndication`, ten times the level number (31 = level 3.1).
    pub level_idc: u8,
    /// Bytes in each NAL unit length prefix of the access units: 1, 2 or 4.
    pub nal_length_size: u8,
    /// Sequence parameter sets (NAL units without start codes).
    pub sps: Vec<Bytes>,
    /// Picture parameter sets (NAL units without start codes).
    pub pps: Vec<Bytes>,
    /// Displayed width in pixels, after cropping.
    pub width: u32,
    /// Displayed height in pixels, after cropping.
    pub height: u32,
    /// The SPS's `max_num_reorder_frames` (VUI bitstream restriction, ISO/IEC 14496-10
    /// §E.2.1): how many frames may precede a frame in decode order and follow it in
    /// output order. `None` when the SPS does not say.
    pub max_num_reorder_frames: Option<u32>,
}

impl AvcConfig {
    /// Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) and the
    /// dimensions from its first SPS.
    ///
    /// # Errors
    /// [`H264Error`] when the record is truncated, of another version, lacks SPS or PPS,
    /// or its SPS does not parse.
    pub fn parse(record: Bytes) -> Result<AvcConfig, H264Error> {
        let b = &record[..];
        let at = |i: usize| b.get(i).copied().ok_or(H264Error::RecordTruncated(i));
        if at(0)? != 1 {
            return Err(H264Error::RecordVersion(b[0]));
        }
        let profile_idc = at(1)?;
        let constraints = at(2)?;
        let level_idc = at(3)?;
        let nal_length_size = (at(4)? & 0x03) + 1;
        if nal_length_size == 3 {
            // 3-byte length prefixes are reserved (ISO/IEC 14496-15 §5.3.3.1.2).
            return Err(H264Error::RecordTruncated(4));
        }
        let mut pos = 5;
        let read_sets = |count: usize, pos: &mut usize| -> Result<Vec<Bytes>, H264Error> {
            let mut sets = Vec::with_capacity(count);
            for _ in 0..count {
                let len = usize::from(u16::from_be_bytes([at(*pos)?, at(*pos + 1)?]));
                let start = *pos + 2;
                if start + len > b.len() {
                    return Err(H264Error::RecordTruncated(b.len()));
                }
                sets.push(record.slice(start..start + len));
                *pos = start + len;
            }
            Ok(sets)
        };
        let n_sps = usize::from(at(pos)? & 0x1f);
        pos += 1;
        let sps = read_sets(n_sps, &mut pos)?;
        let n_pps = usize::from(at(pos)?);
        pos += 1;
        let pps = read_sets(n_pps, &mut pos)?;
        if sps.is_empty() || pps.is_empty() {
            return Err(H264Error::MissingParameterSets {
                sps: sps.len(),
                pps: pps.len(),
            });
        }
        let info = parse_sps(&sps[0])?;
        Ok(AvcConfig {
            width: info.width,
            height: info.height,
            max_num_reorder_frames: info.max_num_reorder_frames,
            profile_idc,
            constraints,
            level_idc,
            nal_length_size,
            sps,
            pps,
            record,
        })
    }

    /// RFC 6381 §3.3 codecs value: `avc1.PPCCLL` in hex.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraints, self.level_idc
        )
    }

    /// Checks that `data` is a sequence of NAL units with this config's length prefixes,
    /// each inside the buffer. Returns the number of NAL units.
    ///
    /// # Errors
    /// [`H264Error::NalOverrun`] or [`H264Error::EmptyAccessUnit`].
    pub fn check_access_unit(&self, data: &[u8]) -> Result<usize, H264Error> {
        let n = usize::from(self.nal_length_size);
        let mut pos = 0;
        let mut count = 0;
        while pos < data.len() {
            if pos + n > data.len() {
                return Err(H264Error::NalOverrun {
                    offset: pos,
                    len: n,
                    left: data.len() - pos,
                });
            }
            let len = data[pos..pos + n]
                .iter()
                .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
            let left = data.len() - pos - n;
            if len > left {
                return Err(H264Error::NalOverrun {
                    offset: pos,
                    len,
                    left,
                });
            }
            pos += n + len;
            count += 1;
        }
        if count == 0 {
            return Err(H264Error::EmptyAccessUnit);
        }
        Ok(count)
    }
}

impl AvcConfig {
    /// Returns the access unit with this config's SPS and PPS prepended (length-prefixed),
    /// unless it already carries an SPS. Keyframes packaged this way decode even in
    /// readers that ignore a changed init segment (ffmpeg's HLS demuxer, some TVs);
    /// ISO/IEC 14496-15 §5.3.2 allows parameter sets in-band as well as in `avcC`.
    pub fn with_parameter_sets(&self, au: &Bytes) -> Bytes {
        let n = usize::from(self.nal_length_size);
        let mut pos = 0;
        while pos + n < au.len() {
            let len = au[pos..pos + n]
                .iter()
                .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
            if au[pos + n] & 0x1f == 7 {
                return au.clone();
            }
            pos += n + len;
        }
        let sets = self.sps.iter().chain(self.pps.iter());
        let extra: usize = sets.clone().map(|s| n + s.len()).sum();
        let mut out = Vec::with_capacity(extra + au.len());
        for set in sets {
            let len = (set.len() as u32).to_be_bytes();
            out.extend_from_slice(&len[4 - n..]);
            out.extend_from_slice(set);
        }
        out.extend_from_slice(au);
        Bytes::from(out)
    }
}

/// An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) for one SPS and PPS,
/// with 4-byte NAL length prefixes.
pub fn avc_decoder_configuration(sps: &[u8], pps: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(11 + sps.len() + pps.len());
    b.put_u8(1);
    b.put_slice(sps.get(1..4).unwrap_or(&[0, 0, 0]));
    b.put_u8(0xff); // lengthSizeMinusOne = 3
    b.put_u8(0xe1); // one SPS
    b.put_u16(sps.len().min(usize::from(u16::MAX)) as u16);
    b.put_slice(&sps[..sps.len().min(usize::from(u16::MAX))]);
    b.put_u8(1); // one PPS
    b.put_u16(pps.len().min(usize::from(u16::MAX)) as u16);
    b.put_slice(&pps[..pps.len().min(usize::from(u16::MAX))]);
    b.freeze()
}

/// Splits a byte stream in Annex B format (ISO/IEC 14496-10 Annex B: 3- or 4-byte
/// start codes) into its NAL units, without the start codes. Bytes before the first
/// start code are not a NAL unit and are left out.
pub fn annex_b_nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &(_, body)) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(stream.len(), |s| s.0);
        // A 4-byte start code leaves its leading zero behind the previous unit.
        while end > body && stream[end - 1] == 0 && k + 1 < starts.len() {
            end -= 1;
        }
        if end > body {
            out.push(&stream[body..end]);
        }
    }
    out
}

/// One access unit in Annex B byte stream format (what OpenH264 and a camera that
/// encodes H.264 itself deliver), split the way MP4 carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnexBUnit {
    /// The NAL units other than parameter sets, access unit delimiters and filler
    /// (types 7, 8, 9, 12), each after a 4-byte big-endian length (ISO/IEC 14496-15
    /// §5.3.2); empty when there were none.
    pub data: Vec<u8>,
    /// Whether it holds an IDR slice (NAL unit type 5).
    pub idr: bool,
    /// An AVCDecoderConfigurationRecord of the SPS and PPS it carried, when it carried
    /// both (the last of each).
    pub record: Option<Bytes>,
}

impl AnnexBUnit {
    /// Splits `stream`, one access unit in Annex B format.
    pub fn split(stream: &[u8]) -> AnnexBUnit {
        let mut sps = None;
        let mut pps = None;
        let mut data = Vec::with_capacity(stream.len());
        let mut idr = false;
        for nal in annex_b_nal_units(stream) {
            match nal[0] & 0x1f {
                7 => sps = Some(nal),
                8 => pps = Some(nal),
                9 | 12 => {}
                t => {
                    idr |= t == 5;
                    data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    data.extend_from_slice(nal);
                }
            }
        }
        let record = match (sps, pps) {
            (Some(sps), Some(pps)) => Some(avc_decoder_configuration(sps, pps)),
            _ => None,
        };
        AnnexBUnit { data, idr, record }
    }
}

impl AvcConfig {
    /// The access unit `au` (this config's length-prefixed NAL units) in Annex B byte
    /// stream format (ISO/IEC 14496-10 Annex B: 4-byte start codes), as decoders take it;
    /// with this config's SPS and PPS first when `with_parameter_sets`.
    ///
    /// # Errors
    /// [`H264Error::NalOverrun`] when a length prefix points past the end.
    pub fn annex_b(&self, au: &[u8], with_parameter_sets: bool) -> Result<Vec<u8>, H264Error> {
        let mut out = Vec::with_capacity(au.len() + 64);
        if with_parameter_sets {
            for nal in self.sps.iter().chain(self.pps.iter()) {
                out.extend_from_slice(&[0, 0, 0, 1]);
                out.extend_from_slice(nal);
            }
        }
        let n = usize::from(self.nal_length_size);
        let mut pos = 0;
        while pos < au.len() {
            let left = au.len() - pos;
            if left < n {
                return Err(H264Error::NalOverrun {
                    offset: pos,
                    len: n,
                    left,
                });
            }
            let len = au[pos..pos + n]
                .iter()
                .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
            if len > left - n {
                return Err(H264Error::NalOverrun {
                    offset: pos,
                    len,
                    left: left - n,
                });
            }
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(&au[pos + n..pos + n + len]);
            pos += n + len;
        }
        Ok(out)
    }
}

/// What streambox needs from a sequence parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// Displayed width in pixels, after cropping.
    pub width: u32,
    /// Displayed height in pixels, after cropping.
    pub height: u32,
    /// `max_num_reorder_frames` from the VUI bitstream restriction (§E.2.1), when the
    /// SPS carries it.
    pub max_num_reorder_frames: Option<u32>,
}

/// Displayed (cropped) width and height in pixels from an SPS NAL unit
/// (ISO/IEC 14496-10 §7.3.2.1.1, cropping per §7.4.2.1.1).
///
/// # Errors
/// [`H264Error::Sps`] when the NAL is not an SPS or does not parse.
pub fn sps_dimensions(nal: &[u8]) -> Result<(u32, u32), H264Error> {
    parse_sps(nal).map(|i| (i.width, i.height))
}

/// The largest picture side accepted, in pixels (H.264 level 6.2 allows 8192 × 4320).
const MAX_SIDE: u32 = 16_384;

/// Parses an SPS NAL unit (ISO/IEC 14496-10 §7.3.2.1.1, with its VUI, §E.1.1) with
/// h264-reader, which checks every syntax element's range (a `delta_scale` out of
/// -128..=127, say) rather than computing with it.
///
/// # Errors
/// [`H264Error::Sps`] when the NAL is not an SPS, does not parse (a truncated, malformed
/// or out-of-range field), or describes a picture wider or taller than [`MAX_SIDE`].
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, H264Error> {
    use h264_reader::nal::{sps::SeqParameterSet, Nal, RefNal};
    if nal.first().map(|h| h & 0x1f) != Some(7) {
        return Err(H264Error::Sps);
    }
    let sps = SeqParameterSet::from_bits(RefNal::new(nal, &[], true).rbsp_bits())
        .map_err(|_| H264Error::Sps)?;
    let (width, height) = sps.pixel_dimensions().map_err(|_| H264Error::Sps)?;
    if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
        return Err(H264Error::Sps);
    }
    let max_num_reorder_frames = sps
        .vui_parameters
        .as_ref()
        .and_then(|v| v.bitstream_restrictions.as_ref())
        .map(|b| b.max_num_reorder_frames);
    Ok(SpsInfo {
        width,
        height,
        max_num_reorder_frames,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// avcC of ../shared/media/bigbuckbunny.mp4 (x264, Main profile, 1280x720), as ffmpeg
    /// sends it in the FLV sequence header.
    pub(crate) const BBB_AVCC: &[u8] = &[
        0x01, 0x4d, 0x40, 0x1f, 0xff, 0xe1, 0x00, 0x17, 0x67, 0x4d, 0x40, 0x1f, 0xda, 0x01, 0x40,
        0x16, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0c, 0x83, 0xc6, 0x0c,
        0xa8, 0x01, 0x00, 0x04, 0x68, 0xef, 0x3c, 0x80,
    ];

    #[test]
    fn annex_b_splits_into_annex_b_nal_units() {
        let s = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 0,
        ];
        assert_eq!(
            annex_b_nal_units(&s),
            vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 0]]
        );
        assert!(annex_b_nal_units(&[1, 2, 3]).is_empty());
    }

    #[test]
    fn an_annex_b_access_unit_splits_into_avcc_and_its_parameter_sets() {
        let s = [
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0x4d, 0x40, 0x1f, 0, 0, 1, 0x68, 3, 0, 0, 0,
            1, 0x65, 4, 5,
        ];
        let u = AnnexBUnit::split(&s);
        assert!(u.idr);
        assert_eq!(u.data, [0, 0, 0, 3, 0x65, 4, 5]);
        let record = u.record.expect("SPS and PPS");
        assert_eq!(
            record,
            avc_decoder_configuration(&[0x67, 0x4d, 0x40, 0x1f], &[0x68, 3])
        );
        let p = AnnexBUnit::split(&[0, 0, 1, 0x41, 9]);
        assert!(!p.idr && p.record.is_none());
        assert_eq!(p.data, [0, 0, 0, 2, 0x41, 9]);
    }

    #[test]
    fn parses_real_avcc() {
        let c = AvcConfig::parse(Bytes::from_static(BBB_AVCC)).expect("parse");
        assert_eq!((c.width, c.height), (1280, 720));
        assert_eq!(c.codec_string(), "avc1.4d401f");
        assert_eq!(c.nal_length_size, 4);
        assert_eq!((c.sps.len(), c.pps.len()), (1, 1));
    }

    #[test]
    fn reads_the_reorder_depth_from_the_vui() {
        // SPS of a 320x180 libx264 encode with `-bf 3` (High profile, VUI with timing
        // and bitstream restriction).
        let sps: Vec<u8> = (0..52)
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(
                    &"6764000cacd941419f9f011000000300100000030320f1429960"[i..i + 2],
                    16,
                )
                .expect("hex")
            })
            .collect();
        let info = parse_sps(&sps).expect("parse");
        assert_eq!((info.width, info.height), (320, 180));
        assert_eq!(info.max_num_reorder_frames, Some(2));
        // Big Buck Bunny has no B-frames, and its SPS says so.
        let c = AvcConfig::parse(Bytes::from_static(BBB_AVCC)).expect("parse");
        assert_eq!(c.max_num_reorder_frames, Some(0));
    }

    #[test]
    fn rejects_every_truncation() {
        for n in 0..BBB_AVCC.len() {
            assert!(
                AvcConfig::parse(Bytes::copy_from_slice(&BBB_AVCC[..n])).is_err(),
                "{n}"
            );
        }
    }

    #[test]
    fn parameter_sets_go_in_band_once() {
        let c = AvcConfig::parse(Bytes::from_static(BBB_AVCC)).expect("parse");
        let idr = Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]);
        let with = c.with_parameter_sets(&idr);
        assert_eq!(c.check_access_unit(&with), Ok(3));
        assert_eq!(with[4] & 0x1f, 7);
        assert!(with.ends_with(&idr));
        assert_eq!(c.with_parameter_sets(&with), with, "not added twice");
    }

    #[test]
    fn access_unit_bounds() {
        let c = AvcConfig::parse(Bytes::from_static(BBB_AVCC)).expect("parse");
        assert_eq!(c.check_access_unit(&[0, 0, 0, 2, 0x65, 0x88]), Ok(1));
        assert!(matches!(
            c.check_access_unit(&[0, 0, 0, 9, 0x65, 0x88]),
            Err(H264Error::NalOverrun { .. })
        ));
        assert_eq!(c.check_access_unit(&[]), Err(H264Error::EmptyAccessUnit));
    }

    /// Bits written MSB first, with Exp-Golomb codes: for building SPS by hand.
    struct Bits(Vec<bool>);

    impl Bits {
        fn put(&mut self, n: u32, v: u64) -> &mut Self {
            for i in (0..n).rev() {
                self.0.push((v >> i) & 1 == 1);
            }
            self
        }
        fn ue(&mut self, v: u64) -> &mut Self {
            let x = v + 1;
            let len = 64 - x.leading_zeros();
            self.put(len - 1, 0).put(len, x)
        }
        fn bytes(&mut self) -> Vec<u8> {
            self.0.push(true); // rbsp_stop_one_bit
            while self.0.len() % 8 != 0 {
                self.0.push(false);
            }
            self.0
                .chunks(8)
                .map(|c| c.iter().fold(0u8, |b, bit| b << 1 | u8::from(*bit)))
                .collect()
        }
    }

    /// A High-profile SPS (640x360) whose first scaling list starts with `delta` (the
    /// `delta_scale` syntax element, coded as its Exp-Golomb code number).
    fn high_sps_with_scaling_delta(delta_code: u64) -> Vec<u8> {
        let mut b = Bits(Vec::new());
        b.put(8, 100).put(8, 0).put(8, 30); // profile_idc, constraints, level_idc
        b.ue(0); // seq_parameter_set_id
        b.ue(1).ue(0).ue(0).put(1, 0); // 4:2:0, 8-bit, no bypass
        b.put(1, 1); // seq_scaling_matrix_present_flag
        b.put(1, 1).ue(delta_code); // the first list, its first delta
        for _ in 0..15 {
            b.ue(0);
        }
        for _ in 1..8 {
            b.put(1, 0);
        }
        b.ue(0).ue(0).ue(0); // log2_max_frame_num, poc type 0, log2_max_poc_lsb
        b.ue(1).put(1, 0); // max_num_ref_frames, gaps
        b.ue(39).ue(22); // 40x23 macroblocks
        b.put(1, 1).put(1, 1); // frame_mbs_only, direct_8x8_inference
        b.put(1, 1).ue(0).ue(0).ue(0).ue(4); // cropping: 8 lines off the bottom
        b.put(1, 0); // no VUI
        let mut nal = vec![0x67];
        nal.extend(b.bytes());
        nal
    }

    #[test]
    fn a_scaling_list_delta_out_of_range_is_an_error_not_an_overflow() {
        // A sane one parses.
        let ok = parse_sps(&high_sps_with_scaling_delta(2)).expect("a valid SPS");
        assert_eq!((ok.width, ok.height), (640, 360));
        // delta_scale is -128..=127 (ISO/IEC 14496-10 §7.4.2.1.1.1): code numbers 254
        // (+127) and 256 (-128) are its ends; 255 (+128) and 258 (-129) are out, and the
        // largest code numbers overflowed a 32-bit sum in the old parser.
        for code in [254, 256] {
            assert!(
                parse_sps(&high_sps_with_scaling_delta(code)).is_ok(),
                "code {code}"
            );
        }
        for code in [u64::from(u32::MAX) - 2, u64::from(u32::MAX) - 1, 255, 258] {
            assert_eq!(
                parse_sps(&high_sps_with_scaling_delta(code)),
                Err(H264Error::Sps),
                "code {code}"
            );
        }
    }
}
