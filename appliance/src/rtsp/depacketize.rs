//! RTP payloads back into access units, for RTSP publishers.
//!
//! - H.264, RFC 6184 packetization modes 0 and 1: single NAL unit packets (§5.6),
//!   STAP-A aggregation (§5.7.1) and FU-A fragmentation (§5.8). In-band SPS/PPS replace
//!   those of the SDP's `sprop-parameter-sets` (§8.1), so a publisher that changes
//!   resolution is followed.
//! - AAC, RFC 3640 (`mpeg4-generic`, AAC-hbr and AAC-lbr): AU headers (§3.2.1), several
//!   access units per packet, and one access unit fragmented over several (§3.2.3).
//! - G.711 (RFC 3551 §4.5.14): the payload is the samples.
//!
//! A damaged access unit (a packet lost in its middle) is dropped, and video then skips
//! to the next IDR, so decoders never see a picture with holes. Every limit is checked:
//! nothing a publisher sends can make these buffer more than [`MAX_ACCESS_UNIT`] bytes.
//!
//! retina (which pulls from cameras) has depacketizers too, but its 0.4 API takes
//! packets only from its own client, so publishers' packets come here.

use super::rtp_in::Ordered;
use crate::ingest::rtp_frames::VideoAu;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};

/// The largest access unit accepted, in bytes (an 8K intra picture fits).
pub const MAX_ACCESS_UNIT: usize = 8 << 20;

/// Why a packet or a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepacketizeError {
    /// A payload that does not follow its RTP payload format.
    #[error("malformed {format} payload: {detail}")]
    Malformed {
        /// `H.264` or `AAC`.
        format: &'static str,
        /// What is wrong.
        detail: &'static str,
    },
    /// An RFC 6184 interleaved-mode packet (STAP-B, MTAP, FU-B), which the SDP did not
    /// announce.
    #[error("H.264 NAL unit type {0} (interleaved packetization) is not supported")]
    Interleaved(u8),
    /// An access unit over [`MAX_ACCESS_UNIT`] bytes.
    #[error("access unit larger than {MAX_ACCESS_UNIT} bytes")]
    TooLarge,
    /// The SDP's format parameters cannot be used.
    #[error("unusable SDP format parameters: {0}")]
    Fmtp(String),
}

fn malformed(format: &'static str, detail: &'static str) -> DepacketizeError {
    DepacketizeError::Malformed { format, detail }
}

/// `key=value` pairs of an SDP `a=fmtp` value (RFC 8866 §6.15), keys in lowercase.
pub fn fmtp_params(fmtp: &str) -> Vec<(String, String)> {
    fmtp.split(';')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect()
}

/// Reassembles H.264 access units (RFC 6184, non-interleaved).
#[derive(Debug, Default)]
pub struct H264Depacketizer {
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    /// SPS or PPS changed since the last access unit went out.
    params_changed: bool,
    /// NAL units of the access unit being assembled, and its RTP time.
    nals: Vec<Bytes>,
    au_bytes: usize,
    au_time: Option<i64>,
    /// A FU-A being reassembled.
    fragment: Option<BytesMut>,
    /// The access unit being assembled lost a packet.
    damaged: bool,
    /// Access units are dropped until the next IDR.
    wait_for_idr: bool,
}

impl H264Depacketizer {
    /// A depacketizer starting from the SDP's `fmtp` (RFC 6184 §8.1): its
    /// `sprop-parameter-sets` are used until the stream sends its own.
    ///
    /// # Errors
    /// [`DepacketizeError::Fmtp`] for `packetization-mode=2` (interleaved).
    pub fn new(fmtp: Option<&str>) -> Result<H264Depacketizer, DepacketizeError> {
        let mut d = H264Depacketizer::default();
        for (k, v) in fmtp.map(fmtp_params).unwrap_or_default() {
            match k.as_str() {
                "packetization-mode" if v.trim() == "2" => {
                    return Err(DepacketizeError::Fmtp(
                        "H.264 packetization-mode=2 (interleaved) is not supported".into(),
                    ));
                }
                "sprop-parameter-sets" => {
                    for set in v.split(',') {
                        let Ok(nal) = base64::engine::general_purpose::STANDARD.decode(set.trim())
                        else {
                            continue; // Broken SDP parameter sets: wait for in-band ones.
                        };
                        d.parameter_set(Bytes::from(nal));
                    }
                }
                _ => {}
            }
        }
        Ok(d)
    }

    /// The AVCDecoderConfigurationRecord of the SDP's `sprop-parameter-sets`, when it
    /// had both an SPS and a PPS.
    pub fn announced_config(&self) -> Option<Bytes> {
        Some(crate::media::h264::avc_decoder_configuration(
            self.sps.as_ref()?,
            self.pps.as_ref()?,
        ))
    }

    fn parameter_set(&mut self, nal: Bytes) {
        let slot = match nal.first().map(|h| h & 0x1f) {
            Some(7) => &mut self.sps,
            Some(8) => &mut self.pps,
            _ => return,
        };
        if slot.as_ref() != Some(&nal) {
            *slot = Some(nal);
            self.params_changed = true;
        }
    }

    /// Takes the next packet in order; appends completed access units to `out`.
    ///
    /// # Errors
    /// [`DepacketizeError`] when the packet is malformed or too large; it is dropped
    /// (with the access unit it belonged to) and the depacketizer carries on.
    pub fn push(&mut self, p: &Ordered, out: &mut Vec<VideoAu>) -> Result<(), DepacketizeError> {
        if p.lost_before > 0 {
            self.damaged = true;
            self.fragment = None;
        }
        if self.au_time.is_some_and(|t| t != p.timestamp) {
            // A new timestamp starts a new access unit, marker bit or not.
            self.finish(out);
        }
        self.au_time = Some(p.timestamp);
        let result = self.payload(&p.packet.payload);
        if result.is_err() {
            self.damaged = true;
            self.fragment = None;
        }
        if p.packet.marker {
            self.finish(out);
        }
        result
    }

    fn add_nal(&mut self, nal: Bytes) -> Result<(), DepacketizeError> {
        if nal.is_empty() {
            return Err(malformed("H.264", "empty NAL unit"));
        }
        self.au_bytes += nal.len() + 4;
        if self.au_bytes > MAX_ACCESS_UNIT {
            return Err(DepacketizeError::TooLarge);
        }
        self.nals.push(nal);
        Ok(())
    }

    fn payload(&mut self, payload: &Bytes) -> Result<(), DepacketizeError> {
        let Some(&header) = payload.first() else {
            return Err(malformed("H.264", "empty payload"));
        };
        match header & 0x1f {
            1..=23 => self.add_nal(payload.clone()),
            24 => {
                // STAP-A: 16-bit sizes, each followed by a NAL unit.
                let mut pos = 1;
                while pos < payload.len() {
                    if pos + 2 > payload.len() {
                        return Err(malformed("H.264", "STAP-A size truncated"));
                    }
                    let size = usize::from(u16::from_be_bytes([payload[pos], payload[pos + 1]]));
                    pos += 2;
                    if size == 0 || pos + size > payload.len() {
                        return Err(malformed("H.264", "STAP-A unit overruns the packet"));
                    }
                    self.add_nal(payload.slice(pos..pos + size))?;
                    pos += size;
                }
                Ok(())
            }
            28 => {
                let Some(&fu) = payload.get(1) else {
                    return Err(malformed("H.264", "FU-A header missing"));
                };
                let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
                if start && end {
                    return Err(malformed("H.264", "FU-A both starts and ends"));
                }
                let body = &payload[2..];
                if start {
                    if self.fragment.is_some() {
                        return Err(malformed("H.264", "FU-A restarted before its end"));
                    }
                    let mut b = BytesMut::with_capacity(body.len() * 8 + 1);
                    b.put_u8((header & 0xe0) | (fu & 0x1f));
                    b.put_slice(body);
                    self.fragment = Some(b);
                    return Ok(());
                }
                let Some(b) = self.fragment.as_mut() else {
                    // The start was lost; the access unit is already marked damaged.
                    self.damaged = true;
                    return Ok(());
                };
                if b.len() + body.len() > MAX_ACCESS_UNIT {
                    return Err(DepacketizeError::TooLarge);
                }
                b.put_slice(body);
                if end {
                    let nal = self.fragment.take().unwrap_or_default().freeze();
                    self.add_nal(nal)?;
                }
                Ok(())
            }
            t @ (25 | 26 | 27 | 29) => Err(DepacketizeError::Interleaved(t)),
            _ => Err(malformed("H.264", "reserved NAL unit type")),
        }
    }

    /// Ends the access unit being assembled: out it goes, unless damaged.
    fn finish(&mut self, out: &mut Vec<VideoAu>) {
        let nals = std::mem::take(&mut self.nals);
        let damaged = std::mem::take(&mut self.damaged) || self.fragment.take().is_some();
        self.au_bytes = 0;
        let Some(time) = self.au_time.take() else {
            return;
        };
        let mut data = BytesMut::new();
        let mut is_sync = false;
        for nal in nals {
            match nal[0] & 0x1f {
                7 | 8 => self.parameter_set(nal),
                9 => {} // access unit delimiter
                t => {
                    is_sync |= t == 5;
                    data.put_u32(nal.len() as u32);
                    data.put_slice(&nal);
                }
            }
        }
        if damaged {
            self.wait_for_idr = true;
            return;
        }
        if data.is_empty() {
            return; // parameter sets only; they go with the next picture
        }
        if self.wait_for_idr && !is_sync {
            return;
        }
        self.wait_for_idr = false;
        let params = match (&self.sps, &self.pps) {
            (Some(sps), Some(pps)) if self.params_changed => {
                self.params_changed = false;
                Some(crate::media::h264::avc_decoder_configuration(sps, pps))
            }
            _ => None,
        };
        out.push(VideoAu {
            pts: time,
            is_sync,
            data: data.freeze(),
            params,
        });
    }
}

/// Reassembles AAC access units from RFC 3640 payloads.
#[derive(Debug)]
pub struct AacDepacketizer {
    size_length: u32,
    index_length: u32,
    index_delta_length: u32,
    /// Samples per access unit (1024 for AAC-LC).
    frame_length: i64,
    /// The AudioSpecificConfig from `config`.
    config: Bytes,
    /// An access unit fragmented over packets: its time, bytes so far, and full size.
    fragment: Option<(i64, BytesMut, usize)>,
}

impl AacDepacketizer {
    /// A depacketizer for the SDP's `fmtp` (RFC 3640 §4.1).
    ///
    /// # Errors
    /// [`DepacketizeError::Fmtp`] when `config` or `sizelength` is missing or invalid,
    /// or the stream uses CTS/DTS deltas or auxiliary data.
    pub fn new(fmtp: Option<&str>) -> Result<AacDepacketizer, DepacketizeError> {
        let params = fmtp.map(fmtp_params).unwrap_or_default();
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let number = |k: &str| -> Result<u32, DepacketizeError> {
            get(k).map_or(Ok(0), |v| {
                v.parse()
                    .map_err(|_| DepacketizeError::Fmtp(format!("{k}={v} is not a number")))
            })
        };
        let config = get("config")
            .and_then(|hex| {
                (hex.len() % 2 == 0)
                    .then(|| {
                        (0..hex.len())
                            .step_by(2)
                            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                            .collect::<Option<Vec<u8>>>()
                    })
                    .flatten()
            })
            .filter(|c| !c.is_empty())
            .ok_or_else(|| DepacketizeError::Fmtp("AAC without a valid config".into()))?;
        let size_length = number("sizelength")?;
        let index_length = number("indexlength")?;
        let index_delta_length = number("indexdeltalength")?;
        if !(1..=16).contains(&size_length) || index_length > 8 || index_delta_length > 8 {
            return Err(DepacketizeError::Fmtp(
                "AAC sizelength must be 1-16 and index lengths at most 8".into(),
            ));
        }
        for k in [
            "ctsdeltalength",
            "dtsdeltalength",
            "auxiliarydatasizelength",
        ] {
            if number(k)? != 0 {
                return Err(DepacketizeError::Fmtp(format!(
                    "AAC with {k} is not supported"
                )));
            }
        }
        Ok(AacDepacketizer {
            size_length,
            index_length,
            index_delta_length,
            frame_length: 1024,
            config: Bytes::from(config),
            fragment: None,
        })
    }

    /// The AudioSpecificConfig announced in the SDP.
    pub fn config(&self) -> &Bytes {
        &self.config
    }

    /// Takes the next packet in order; appends `(RTP time, access unit)` pairs to `out`.
    ///
    /// # Errors
    /// [`DepacketizeError`] when the payload is malformed; it is dropped.
    pub fn push(
        &mut self,
        p: &Ordered,
        out: &mut Vec<(i64, Bytes)>,
    ) -> Result<(), DepacketizeError> {
        if p.lost_before > 0 {
            self.fragment = None;
        }
        let payload = &p.packet.payload;
        if payload.len() < 2 {
            return Err(malformed("AAC", "no AU-headers-length"));
        }
        let header_bits = usize::from(u16::from_be_bytes([payload[0], payload[1]]));
        let header_bytes = header_bits.div_ceil(8);
        if 2 + header_bytes > payload.len() {
            return Err(malformed("AAC", "AU headers overrun the packet"));
        }
        let mut bits = crate::media::bits::BitReader::new(&payload[2..2 + header_bytes]);
        let mut sizes = Vec::new();
        let mut used = 0usize;
        while used < header_bits {
            let index_bits = if sizes.is_empty() {
                self.index_length
            } else {
                self.index_delta_length
            };
            let size = bits
                .bits(self.size_length)
                .map_err(|_| malformed("AAC", "AU header truncated"))?;
            bits.skip(index_bits as usize)
                .map_err(|_| malformed("AAC", "AU header truncated"))?;
            used += (self.size_length + index_bits) as usize;
            if used > header_bits {
                return Err(malformed("AAC", "AU header truncated"));
            }
            sizes.push(size as usize);
            if sizes.len() > 256 {
                return Err(malformed("AAC", "too many access units"));
            }
        }
        let data = payload.slice(2 + header_bytes..);
        // One AU header whose access unit does not fit: a fragment (§3.2.3).
        if let [size] = sizes[..] {
            if size > data.len() || self.fragment.is_some() {
                if size > MAX_ACCESS_UNIT {
                    return Err(DepacketizeError::TooLarge);
                }
                let frag = match self.fragment.take() {
                    Some(f) if f.0 == p.timestamp && f.2 == size => Some(f),
                    Some(_) if size <= data.len() => None, // a whole unit after a broken one
                    Some(_) => return Err(malformed("AAC", "fragment does not continue")),
                    None => Some((p.timestamp, BytesMut::with_capacity(size), size)),
                };
                if let Some((t, mut buf, size)) = frag {
                    if buf.len() + data.len() > size {
                        return Err(malformed("AAC", "fragment longer than its access unit"));
                    }
                    buf.put_slice(&data);
                    if buf.len() == size {
                        out.push((t, buf.freeze()));
                    } else {
                        self.fragment = Some((t, buf, size));
                    }
                    return Ok(());
                }
            }
        }
        let mut pos = 0;
        for (i, size) in sizes.into_iter().enumerate() {
            if pos + size > data.len() {
                return Err(malformed("AAC", "access unit overruns the packet"));
            }
            out.push((
                p.timestamp + i as i64 * self.frame_length,
                data.slice(pos..pos + size),
            ));
            pos += size;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtsp::rtp_in::RtpPacket;

    fn ordered(seq: u16, ts: i64, marker: bool, payload: &[u8]) -> Ordered {
        Ordered {
            packet: RtpPacket {
                payload_type: 96,
                marker,
                sequence: seq,
                timestamp: ts as u32,
                ssrc: 1,
                payload: Bytes::copy_from_slice(payload),
            },
            timestamp: ts,
            lost_before: 0,
        }
    }

    const SPS: &[u8] = &[
        0x67, 0x4d, 0x40, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00,
        0x40, 0x00, 0x00, 0x0c, 0x83, 0xc6, 0x0c, 0xa8,
    ];
    const PPS: &[u8] = &[0x68, 0xef, 0x3c, 0x80];

    #[test]
    fn h264_stap_a_and_fu_a_make_one_access_unit() {
        let mut d = H264Depacketizer::new(Some("packetization-mode=1")).expect("new");
        let mut out = Vec::new();
        let mut stap = vec![24u8, 0, SPS.len() as u8];
        stap.extend(SPS);
        stap.extend([0, PPS.len() as u8]);
        stap.extend(PPS);
        d.push(&ordered(1, 0, false, &stap), &mut out)
            .expect("stap");
        d.push(&ordered(2, 0, false, &[0x7c, 0x85, 1, 2]), &mut out)
            .expect("fu start");
        d.push(&ordered(3, 0, false, &[0x7c, 0x05, 3]), &mut out)
            .expect("fu middle");
        d.push(&ordered(4, 0, true, &[0x7c, 0x45, 4]), &mut out)
            .expect("fu end");
        assert_eq!(out.len(), 1);
        let au = &out[0];
        assert!(au.is_sync);
        assert_eq!(&au.data[..], &[0, 0, 0, 5, 0x65, 1, 2, 3, 4]);
        let cfg =
            crate::media::h264::AvcConfig::parse(au.params.clone().expect("params")).expect("avcC");
        assert_eq!((cfg.width, cfg.height), (1280, 720));
        // The next picture: no parameters, not a keyframe; a new timestamp ends it even
        // without a marker.
        d.push(&ordered(5, 3600, false, &[0x41, 9]), &mut out)
            .expect("p");
        d.push(&ordered(6, 7200, true, &[0x41, 8]), &mut out)
            .expect("p");
        assert_eq!(out.len(), 3);
        assert!(!out[1].is_sync && out[1].params.is_none() && out[1].pts == 3600);
    }

    #[test]
    fn h264_loss_drops_pictures_until_the_next_idr() {
        let mut d = H264Depacketizer::new(None).expect("new");
        let mut out = Vec::new();
        d.push(&ordered(1, 0, true, &[0x65, 1]), &mut out)
            .expect("idr");
        let mut lost = ordered(3, 3600, true, &[0x41, 2]);
        lost.lost_before = 1;
        d.push(&lost, &mut out).expect("p");
        d.push(&ordered(4, 7200, true, &[0x41, 3]), &mut out)
            .expect("p");
        d.push(&ordered(5, 10800, true, &[0x65, 4]), &mut out)
            .expect("idr");
        let pts: Vec<i64> = out.iter().map(|a| a.pts).collect();
        assert_eq!(pts, [0, 10800]);
    }

    #[test]
    fn h264_malformed_payloads_are_refused() {
        let mut d = H264Depacketizer::new(None).expect("new");
        let mut out = Vec::new();
        for bad in [
            &[][..],
            &[24, 0, 9, 1],
            &[28],
            &[28, 0xc5],
            &[26, 0],
            &[0x1e],
        ] {
            assert!(
                d.push(&ordered(1, 0, true, bad), &mut out).is_err(),
                "{bad:?}"
            );
        }
        assert!(out.is_empty());
        assert!(H264Depacketizer::new(Some("packetization-mode=2")).is_err());
    }

    #[test]
    fn aac_several_units_and_fragments() {
        let fmtp = "profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190";
        let mut d = AacDepacketizer::new(Some(fmtp)).expect("new");
        assert_eq!(&d.config()[..], &[0x11, 0x90]);
        let mut out = Vec::new();
        // Two units of 2 and 3 bytes: headers (13-bit size, 3-bit index) = 32 bits.
        let p = [0, 32, 0, 2 << 3, 0, 3 << 3, 0xa, 0xa, 0xb, 0xb, 0xb];
        d.push(&ordered(1, 1000, true, &p), &mut out).expect("two");
        assert_eq!(
            out,
            [
                (1000, Bytes::from_static(&[0xa, 0xa])),
                (2024, Bytes::from_static(&[0xb; 3]))
            ]
        );
        out.clear();
        // One unit of 5 bytes in two fragments.
        d.push(
            &ordered(2, 3048, false, &[0, 16, 0, 5 << 3, 1, 2, 3]),
            &mut out,
        )
        .expect("f1");
        assert!(out.is_empty());
        d.push(&ordered(3, 3048, true, &[0, 16, 0, 5 << 3, 4, 5]), &mut out)
            .expect("f2");
        assert_eq!(out, [(3048, Bytes::from_static(&[1, 2, 3, 4, 5]))]);
        // Headers that overrun, and units that overrun.
        assert!(d
            .push(&ordered(4, 4072, true, &[0, 64, 0]), &mut out)
            .is_err());
        assert!(d
            .push(
                &ordered(5, 4072, true, &[0, 32, 0, 9 << 3, 0, 9 << 3, 1]),
                &mut out
            )
            .is_err());
        assert!(
            AacDepacketizer::new(Some("sizelength=13")).is_err(),
            "no config"
        );
        assert!(AacDepacketizer::new(Some("config=1190;sizelength=13;ctsdeltalength=2")).is_err());
    }
}
