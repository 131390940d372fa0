//! Receiving RTP (RFC 3550) from an RTSP publisher: packet and sender-report parsing,
//! and putting one source's packets back in order with widened sequence numbers and
//! timestamps.
//!
//! Over UDP, packets arrive late, twice, out of order or not at all; [`Reorder`] holds up
//! to [`REORDER_WINDOW`] packets to restore the order, drops duplicates and packets that
//! come after their place was given up, and reports how many were lost before each
//! packet it releases. Sequence numbers (16 bits) and timestamps (32 bits) wrap; both are
//! widened to `i64` here, once.

use bytes::Bytes;
use std::collections::BTreeMap;

/// Packets held back waiting for a missing one before it is declared lost.
pub const REORDER_WINDOW: usize = 64;

/// A packet that is not RTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than its headers say.
    #[error("RTP packet truncated ({0} bytes)")]
    Truncated(usize),
    /// Not version 2.
    #[error("RTP version {0}, not 2")]
    Version(u8),
    /// Padding longer than the payload.
    #[error("RTP padding overruns the packet")]
    Padding,
}

/// One RTP packet (RFC 3550 §5.1), headers parsed, payload without padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// The marker bit: for video, the last packet of an access unit (RFC 6184 §5.1).
    pub marker: bool,
    /// Sequence number as sent.
    pub sequence: u16,
    /// Timestamp as sent, in ticks of the payload's clock.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// The payload (after CSRCs and any header extension, without padding).
    pub payload: Bytes,
}

/// Parses an RTP packet (RFC 3550 §5.1, header extension §5.3.1, padding).
///
/// # Errors
/// [`RtpError`] for anything that is not a well-formed version 2 packet.
pub fn parse_rtp(data: Bytes) -> Result<RtpPacket, RtpError> {
    let len = data.len();
    if len < 12 {
        return Err(RtpError::Truncated(len));
    }
    let version = data[0] >> 6;
    if version != 2 {
        return Err(RtpError::Version(version));
    }
    let padding = data[0] & 0x20 != 0;
    let extension = data[0] & 0x10 != 0;
    let csrcs = usize::from(data[0] & 0x0f);
    let mut start = 12 + 4 * csrcs;
    if extension {
        if len < start + 4 {
            return Err(RtpError::Truncated(len));
        }
        let words = usize::from(u16::from_be_bytes([data[start + 2], data[start + 3]]));
        start += 4 + 4 * words;
    }
    let mut end = len;
    if padding {
        let pad = usize::from(data[len - 1]);
        if pad == 0 || pad > len.saturating_sub(start) {
            return Err(RtpError::Padding);
        }
        end -= pad;
    }
    if start > end {
        return Err(RtpError::Truncated(len));
    }
    Ok(RtpPacket {
        payload_type: data[1] & 0x7f,
        marker: data[1] & 0x80 != 0,
        sequence: u16::from_be_bytes([data[2], data[3]]),
        timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
        ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
        payload: data.slice(start..end),
    })
}

/// An RTCP sender report's mapping of wall clock to RTP time (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SenderReport {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// NTP wall-clock time, in seconds since 1900.
    pub ntp_secs: f64,
    /// The RTP timestamp of the same instant.
    pub rtp_time: u32,
}

/// Finds the sender reports in a compound RTCP packet; anything else is skipped, and a
/// malformed packet yields what was found before the damage.
pub fn sender_reports(data: &[u8]) -> Vec<SenderReport> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= data.len() {
        let header = &data[pos..];
        if header[0] >> 6 != 2 {
            break;
        }
        let words = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let size = 4 * (words + 1);
        if pos + size > data.len() {
            break;
        }
        if header[1] == 200 && size >= 28 {
            let word = |i: usize| {
                u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]])
            };
            out.push(SenderReport {
                ssrc: word(4),
                ntp_secs: f64::from(word(8)) + f64::from(word(12)) / 4_294_967_296.0,
                rtp_time: word(16),
            });
        }
        pos += size;
    }
    out
}

/// A packet released in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ordered {
    /// The packet.
    pub packet: RtpPacket,
    /// Its timestamp widened to `i64` (ticks; continuous across the 32-bit wrap).
    pub timestamp: i64,
    /// Packets lost just before this one.
    pub lost_before: u64,
}

/// Restores the order of one RTP source's packets and widens their numbering.
#[derive(Debug, Default)]
pub struct Reorder {
    /// Widened sequence number of the next packet to release.
    next: Option<i64>,
    /// The highest widened sequence number seen, and its 16-bit form.
    highest: Option<(i64, u16)>,
    held: BTreeMap<i64, RtpPacket>,
    /// The last released timestamp, as sent and widened.
    last_ts: Option<(u32, i64)>,
    /// Packets dropped as duplicates or too late.
    pub dropped: u64,
    /// Packets declared lost.
    pub lost: u64,
}

impl Reorder {
    /// An empty reorderer.
    pub fn new() -> Reorder {
        Reorder::default()
    }

    /// Takes one packet and appends every packet that can now be released, in sequence
    /// order, to `out`.
    pub fn push(&mut self, packet: RtpPacket, out: &mut Vec<Ordered>) {
        let seq = match self.highest {
            None => i64::from(packet.sequence),
            Some((ext, raw)) => ext + i64::from(packet.sequence.wrapping_sub(raw) as i16),
        };
        if self.highest.is_none_or(|(ext, _)| seq > ext) {
            self.highest = Some((seq, packet.sequence));
        }
        let next = *self.next.get_or_insert(seq);
        if seq < next || self.held.contains_key(&seq) {
            self.dropped += 1;
            return;
        }
        self.held.insert(seq, packet);
        let mut lost = 0;
        while let Some(next) = self.next {
            if let Some(p) = self.held.remove(&next) {
                self.release(p, lost, out);
                lost = 0;
                self.next = Some(next + 1);
            } else if self.held.len() > REORDER_WINDOW {
                // Give up on the missing packets: resume at the oldest one held.
                let first = self.held.keys().next().copied().unwrap_or(next);
                lost += (first - next) as u64;
                self.lost += (first - next) as u64;
                self.next = Some(first);
            } else {
                break;
            }
        }
    }

    fn release(&mut self, packet: RtpPacket, lost_before: u64, out: &mut Vec<Ordered>) {
        let timestamp = match self.last_ts {
            None => i64::from(packet.timestamp),
            Some((raw, ext)) => ext + i64::from(packet.timestamp.wrapping_sub(raw) as i32),
        };
        self.last_ts = Some((packet.timestamp, timestamp));
        out.push(Ordered {
            packet,
            timestamp,
            lost_before,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16, ts: u32) -> RtpPacket {
        RtpPacket {
            payload_type: 96,
            marker: false,
            sequence: seq,
            timestamp: ts,
            ssrc: 1,
            payload: Bytes::from_static(b"x"),
        }
    }

    fn push_all(r: &mut Reorder, seqs: &[u16]) -> Vec<(u16, u64)> {
        let mut out = Vec::new();
        for &s in seqs {
            r.push(packet(s, u32::from(s) * 10), &mut out);
        }
        out.iter()
            .map(|o| (o.packet.sequence, o.lost_before))
            .collect()
    }

    #[test]
    fn parses_headers_extension_and_padding() {
        let mut raw = vec![0xb1, 0xe0, 0x12, 0x34, 0, 0, 0x03, 0xe8, 0, 0, 0, 7];
        raw.extend([0, 0, 0, 1]); // one CSRC
        raw.extend([0xbe, 0xde, 0, 1, 9, 9, 9, 9]); // extension of one word
        raw.extend([0xaa, 0xbb, 0, 0, 3]); // payload and 3 bytes of padding
        let p = parse_rtp(Bytes::from(raw)).expect("parse");
        assert_eq!(
            (p.payload_type, p.marker, p.sequence, p.timestamp, p.ssrc),
            (96, true, 0x1234, 1000, 7)
        );
        assert_eq!(&p.payload[..], &[0xaa, 0xbb]);
        assert_eq!(
            parse_rtp(Bytes::from_static(&[0x80; 11])),
            Err(RtpError::Truncated(11))
        );
        assert_eq!(
            parse_rtp(Bytes::from_static(&[0x40; 12])),
            Err(RtpError::Version(1))
        );
        let mut bad_pad = vec![0xa0, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 200];
        assert_eq!(
            parse_rtp(Bytes::from(bad_pad.clone())),
            Err(RtpError::Padding)
        );
        bad_pad.pop();
        bad_pad.push(0);
        assert_eq!(parse_rtp(Bytes::from(bad_pad)), Err(RtpError::Padding));
    }

    #[test]
    fn restores_order_and_drops_duplicates() {
        let mut r = Reorder::new();
        let out = push_all(&mut r, &[10, 12, 11, 11, 13, 9]);
        assert_eq!(out, [(10, 0), (11, 0), (12, 0), (13, 0)]);
        assert_eq!(r.dropped, 2);
    }

    #[test]
    fn wraps_sequence_numbers_and_timestamps() {
        let mut r = Reorder::new();
        let mut out = Vec::new();
        r.push(packet(65534, u32::MAX - 100), &mut out);
        r.push(packet(0, 100), &mut out);
        r.push(packet(65535, u32::MAX), &mut out);
        let got: Vec<(u16, i64)> = out
            .iter()
            .map(|o| (o.packet.sequence, o.timestamp))
            .collect();
        let base = i64::from(u32::MAX);
        assert_eq!(got, [(65534, base - 100), (65535, base), (0, base + 101)]);
    }

    #[test]
    fn a_lost_packet_is_given_up_after_the_window() {
        let mut r = Reorder::new();
        let mut seqs = vec![0u16];
        seqs.extend(2..(3 + REORDER_WINDOW as u16));
        let out = push_all(&mut r, &seqs);
        assert_eq!(out[0], (0, 0));
        assert_eq!(out[1], (2, 1), "packet 1 counted lost");
        assert_eq!(out.len(), seqs.len());
        assert_eq!(r.lost, 1);
        // It arrives after all: too late.
        assert!(push_all(&mut r, &[1]).is_empty());
    }

    #[test]
    fn reads_sender_reports_from_compound_packets() {
        let mut b = vec![
            0x80, 200, 0, 6, 0, 0, 0, 5, 0, 0, 0, 100, 0x80, 0, 0, 0, 0, 0, 0x10, 0,
        ];
        b.extend([0, 0, 0, 1, 0, 0, 0, 2]);
        b.extend([0x81, 202, 0, 1, 0, 0, 0, 5]); // SDES, skipped
        let srs = sender_reports(&b);
        assert_eq!(srs.len(), 1);
        assert_eq!((srs[0].ssrc, srs[0].rtp_time), (5, 0x1000));
        assert!((srs[0].ntp_secs - 100.5).abs() < 1e-9);
        assert!(sender_reports(&b[..10]).is_empty());
    }
}
