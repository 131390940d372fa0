//! RTP packetization (RFC 3550 §5.1) of [`Frame`]s, sans-IO.
//!
//! - H.264 per RFC 6184: NAL units that fit go as single NAL unit packets (§5.6), larger
//!   ones as FU-A fragments (§5.8); the marker bit ends each access unit.
//! - AAC per RFC 3640 `mode=AAC-hbr` (§3.3.6): one access unit per packet behind a 16-bit
//!   AU-header (13-bit size, 3-bit index); an access unit larger than a packet is
//!   fragmented, every fragment carrying the whole AU-size (§3.2.3), marker on the last.
//!
//! RTP timestamps are the frame's presentation time (DTS + CTS) in the track's clock
//! (90 kHz video, the sample rate for audio) plus a random offset, wrapped to 32 bits.

use crate::media::{Frame, TrackParams};
use bytes::{BufMut, Bytes, BytesMut};

/// Largest RTP payload we emit, in bytes: fits a 1500-byte Ethernet MTU with IP, UDP and
/// RTP headers (and the 4-byte interleave header over TCP).
pub const MAX_PAYLOAD: usize = 1400;

/// Packetizes the frames of one track into RTP packets.
#[derive(Debug, Clone)]
pub struct Packetizer {
    payload_type: u8,
    ssrc: u32,
    sequence: u16,
    timestamp_offset: u32,
    packets: u32,
    octets: u32,
}

impl Packetizer {
    /// A packetizer for payload type `payload_type` with the given SSRC, first sequence
    /// number, and offset added to every timestamp (all random in a real session,
    /// RFC 3550 §5.1).
    pub fn new(payload_type: u8, ssrc: u32, sequence: u16, timestamp_offset: u32) -> Packetizer {
        Packetizer {
            payload_type,
            ssrc,
            sequence,
            timestamp_offset,
            packets: 0,
            octets: 0,
        }
    }

    /// The SSRC of this track.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet gets.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// The RTP timestamp of media time `ticks` (in this track's clock).
    pub fn rtp_time(&self, ticks: i64) -> u32 {
        (ticks as u32).wrapping_add(self.timestamp_offset)
    }

    /// Packets and payload octets sent so far (for RTCP sender reports).
    pub fn counts(&self) -> (u32, u32) {
        (self.packets, self.octets)
    }

    fn packet(&mut self, out: &mut Vec<Bytes>, timestamp: u32, marker: bool, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut b = BytesMut::with_capacity(12 + len);
        b.put_u8(0x80); // V=2, no padding, no extension, no CSRC
        b.put_u8(if marker { 0x80 } else { 0 } | (self.payload_type & 0x7f));
        b.put_u16(self.sequence);
        b.put_u32(timestamp);
        b.put_u32(self.ssrc);
        for p in parts {
            b.put_slice(p);
        }
        self.sequence = self.sequence.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(len as u32);
        out.push(b.freeze());
    }

    /// The RTP packets of one frame, in order. Malformed access units (a length prefix
    /// past the end) yield the NAL units before the fault only.
    pub fn packetize(&mut self, frame: &Frame) -> Vec<Bytes> {
        let timestamp = self.rtp_time(frame.dts + i64::from(frame.cts));
        let mut out = Vec::new();
        match &*frame.params {
            TrackParams::Video(cfg) => {
                let nals = nal_units(&frame.data, usize::from(cfg.nal_length_size));
                let count = nals.len();
                for (i, nal) in nals.into_iter().enumerate() {
                    let last = i + 1 == count;
                    if nal.len() <= MAX_PAYLOAD {
                        self.packet(&mut out, timestamp, last, &[nal]);
                        continue;
                    }
                    // FU-A (RFC 6184 §5.8): FU indicator keeps F and NRI, type 28.
                    let header = nal[0];
                    let indicator = (header & 0xe0) | 28;
                    let body = &nal[1..];
                    let chunks: Vec<&[u8]> = body.chunks(MAX_PAYLOAD - 2).collect();
                    for (j, chunk) in chunks.iter().enumerate() {
                        let start = if j == 0 { 0x80 } else { 0 };
                        let end = if j + 1 == chunks.len() { 0x40 } else { 0 };
                        let fu_header = start | end | (header & 0x1f);
                        self.packet(
                            &mut out,
                            timestamp,
                            last && end != 0,
                            &[&[indicator, fu_header], chunk],
                        );
                    }
                }
            }
            TrackParams::Audio(_) => {
                let au = &frame.data[..];
                let size = au.len().min(0x1fff) as u16;
                // AU-headers-length: 16 bits; AU-header: AU-size(13) | AU-index(3) = 0.
                let headers = [0u8, 16, (size >> 5) as u8, ((size & 0x1f) << 3) as u8];
                let chunks: Vec<&[u8]> = au[..usize::from(size)].chunks(MAX_PAYLOAD - 4).collect();
                for (j, chunk) in chunks.iter().enumerate() {
                    self.packet(
                        &mut out,
                        timestamp,
                        j + 1 == chunks.len(),
                        &[&headers, chunk],
                    );
                }
            }
        }
        out
    }
}

/// Splits AVCC data into NAL units (without their length prefixes), stopping at the first
/// prefix that points past the end.
fn nal_units(data: &[u8], prefix: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + prefix <= data.len() && prefix > 0 {
        let len = data[pos..pos + prefix]
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
        let start = pos + prefix;
        if len == 0 || start + len > data.len() {
            break;
        }
        out.push(&data[start..start + len]);
        pos = start + len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::aac::AudioConfig;
    use crate::media::h264::AvcConfig;
    use crate::media::TrackId;
    use std::sync::Arc;
    use std::time::Instant;

    fn video_frame(data: Vec<u8>) -> Frame {
        let cfg = AvcConfig::parse(Bytes::from_static(crate::media::h264::tests::BBB_AVCC))
            .expect("avcC");
        Frame {
            track: TrackId::Video,
            dts: 90_000,
            cts: 3600,
            is_sync: true,
            params: Arc::new(TrackParams::Video(cfg)),
            data: Bytes::from(data),
            received: Instant::now(),
        }
    }

    #[test]
    fn small_nals_go_whole_and_the_last_has_the_marker() {
        let mut p = Packetizer::new(96, 7, 65535, 10);
        let pkts = p.packetize(&video_frame(vec![
            0, 0, 0, 2, 0x67, 1, 0, 0, 0, 3, 0x65, 2, 3,
        ]));
        assert_eq!(pkts.len(), 2);
        assert_eq!(&pkts[0][12..], &[0x67, 1]);
        assert_eq!(pkts[0][1], 96, "no marker mid access unit");
        assert_eq!(pkts[1][1], 0x80 | 96, "marker on the last packet");
        assert_eq!(
            u16::from_be_bytes([pkts[1][2], pkts[1][3]]),
            0,
            "sequence wraps"
        );
        assert_eq!(
            u32::from_be_bytes([pkts[0][4], pkts[0][5], pkts[0][6], pkts[0][7]]),
            93_610
        );
    }

    #[test]
    fn large_nal_is_fragmented_as_fu_a_and_reassembles() {
        let mut nal = vec![0x65];
        nal.extend((0..5000u32).map(|i| i as u8));
        let mut data = (nal.len() as u32).to_be_bytes().to_vec();
        data.extend_from_slice(&nal);
        let mut p = Packetizer::new(96, 7, 0, 0);
        let pkts = p.packetize(&video_frame(data));
        assert!(pkts.len() >= 4);
        let mut rebuilt = vec![(pkts[0][12] & 0xe0) | (pkts[0][13] & 0x1f)];
        for (i, pk) in pkts.iter().enumerate() {
            assert!(pk.len() <= 12 + MAX_PAYLOAD);
            assert_eq!(pk[12] & 0x1f, 28);
            assert_eq!(pk[13] & 0x80 != 0, i == 0, "start bit");
            assert_eq!(pk[13] & 0x40 != 0, i + 1 == pkts.len(), "end bit");
            rebuilt.extend_from_slice(&pk[14..]);
        }
        assert_eq!(rebuilt, nal);
        assert_eq!(pkts.last().map(|p| p[1] & 0x80), Some(0x80));
    }

    #[test]
    fn aac_au_header_carries_the_size() {
        let cfg = AudioConfig::parse(Bytes::from_static(&[0x11, 0x90])).expect("asc");
        let f = Frame {
            track: TrackId::Audio,
            dts: 1024,
            cts: 0,
            is_sync: true,
            params: Arc::new(TrackParams::Audio(cfg)),
            data: Bytes::from(vec![9u8; 300]),
            received: Instant::now(),
        };
        let pkts = Packetizer::new(97, 1, 0, 0).packetize(&f);
        assert_eq!(pkts.len(), 1);
        assert_eq!(
            &pkts[0][12..16],
            &[0, 16, (300u16 >> 5) as u8, ((300 & 0x1f) << 3) as u8]
        );
        assert_eq!(pkts[0].len(), 12 + 4 + 300);
    }

    #[test]
    fn truncated_access_unit_stops_at_the_fault() {
        let mut p = Packetizer::new(96, 7, 0, 0);
        assert_eq!(
            p.packetize(&video_frame(vec![0, 0, 0, 1, 0x65, 0, 0, 0, 9, 1]))
                .len(),
            1
        );
        assert!(p.packetize(&video_frame(vec![0, 0])).is_empty());
    }
}
