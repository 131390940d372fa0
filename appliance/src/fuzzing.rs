//! Fuzzing harnesses: the code paths a publisher's bytes reach, driven from arbitrary
//! input. Shared by the cargo-fuzz targets in `appliance/fuzz/` (built with
//! `--cfg fuzzing`) and by deterministic mutation tests that run in every test suite.

use crate::media::flv::{Demuxed, FlvDemuxer};
use crate::media::TrackId;
use crate::packager::segmenter::{Segmenter, SegmenterConfig};
use crate::packager::{dash, hls, Window};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// One publish session from arbitrary bytes, through everything a publisher reaches
/// after RTMP chunking: FLV tag bodies, sequence headers (avcC + SPS, AudioSpecificConfig),
/// timestamp widening, access-unit checks, the segmenter, and the playlists and MPD.
///
/// Input: records of `[flags: u8][timestamp: u32 BE][length: u16 BE][body]`. Bit 0 of
/// `flags` picks audio (1) or video (0); bit 7 ends the publish session there (as a
/// publisher leaving does). Must never panic. Returns the final window.
pub fn flv_session(data: &[u8]) -> Window {
    let mut demux = FlvDemuxer::new(0);
    let mut seg = Segmenter::new(SegmenterConfig {
        segment_target: 1.0,
        part_target: 0.2,
        window: 4.0,
    });
    let mut w = Window::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let mut params = BTreeMap::new();
    let now = Instant::now();
    let mut rest = data;
    while rest.len() >= 7 {
        let flags = rest[0];
        let ts = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let len = usize::from(u16::from_be_bytes([rest[5], rest[6]])).min(rest.len() - 7);
        let body = Bytes::copy_from_slice(&rest[7..7 + len]);
        rest = &rest[7 + len..];
        let out = if flags & 1 == 0 {
            demux.video(&body, ts, now)
        } else {
            demux.audio(&body, ts, now)
        };
        match out {
            Ok(Demuxed::NewParams(p)) => {
                params.insert(p.track(), p);
            }
            Ok(Demuxed::Frame(f)) => seg.push(&Arc::new(f), || params.clone(), &mut w),
            Ok(Demuxed::Nothing) | Err(_) => {}
        }
        if flags & 0x80 != 0 {
            seg.finish(&mut w);
            demux = FlvDemuxer::new(i64::from(ts));
            params.clear();
        }
    }
    seg.finish(&mut w);
    w.ended = true;
    let _ = hls::multivariant(&w);
    for t in TrackId::ALL {
        let _ = hls::media_playlist(&w, t, 1.0, 0.2);
    }
    let _ = dash::manifest(&w, 1.0, 4.0, "http://localhost/time");
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(out: &mut Vec<u8>, flags: u8, ts: u32, body: &[u8]) {
        out.push(flags);
        out.extend_from_slice(&ts.to_be_bytes());
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
    }

    /// A well-formed session: real sequence headers (bigbuckbunny's avcC, AAC-LC stereo
    /// 44.1 kHz), then 3 s of 25 fps video with a keyframe per second and AAC frames.
    fn valid_session() -> Vec<u8> {
        let mut d = Vec::new();
        let mut seq = vec![0x17, 0, 0, 0, 0];
        seq.extend_from_slice(crate::media::h264::tests::BBB_AVCC);
        record(&mut d, 0, 0, &seq);
        record(&mut d, 1, 0, &[0xaf, 0, 0x12, 0x10]);
        for i in 0..75u32 {
            let key = i % 25 == 0;
            let nal = if key { 0x65 } else { 0x41 };
            let tag = [
                if key { 0x17 } else { 0x27 },
                1,
                0,
                0,
                80,
                0,
                0,
                0,
                3,
                nal,
                0x88,
                0x84,
            ];
            record(&mut d, 0, i * 40, &tag);
            record(&mut d, 1, i * 40, &[0xaf, 1, 0x21, 0x10, 0x05]);
            record(&mut d, 1, i * 40 + 23, &[0xaf, 1, 0x21, 0x10, 0x05]);
        }
        d
    }

    /// xorshift64*: deterministic, so a failure reproduces.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn valid_session_is_segmented() {
        // The harness must reach the segmenter, or the mutation test below proves little.
        let mut demux = FlvDemuxer::new(0);
        let d = valid_session();
        let body = Bytes::copy_from_slice(&d[7..7 + usize::from(u16::from_be_bytes([d[5], d[6]]))]);
        assert!(matches!(
            demux.video(&body, 0, Instant::now()),
            Ok(Demuxed::NewParams(_))
        ));
        flv_session(&d);
    }

    #[test]
    fn mutated_sessions_never_panic() {
        let base = valid_session();
        let mut rng = Rng(0x5eed_5eed_5eed_5eed);
        for _ in 0..3000 {
            let mut d = base.clone();
            for _ in 0..1 + rng.next() % 12 {
                let pos = (rng.next() % d.len() as u64) as usize;
                d[pos] = rng.next() as u8;
            }
            if rng.next() % 8 == 0 {
                d.truncate((rng.next() % d.len() as u64) as usize);
            }
            let _ = flv_session(&d);
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(42);
        for _ in 0..2000 {
            let len = (rng.next() % 600) as usize;
            let d: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = flv_session(&d);
        }
    }
}
