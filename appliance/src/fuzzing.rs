//! Fuzzing harnesses: the code paths a publisher's bytes reach, driven from arbitrary
//! input. Shared by the cargo-fuzz targets in `appliance/fuzz/` (built with
//! `--cfg fuzzing`) and by deterministic mutation tests that run in every test suite.

use crate::hub::Hub;
use crate::ingest::IngestMeter;
use crate::media::flv::{Demuxed, FlvDemuxer};
use crate::media::TrackId;
use crate::metrics::Metrics;
use crate::packager::segmenter::{Segmenter, SegmenterConfig};
use crate::packager::{dash, hls, Window};
use crate::rtsp::record::Publish;
use crate::rtsp::{auth, sdp};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// H.264 parameter sets from arbitrary bytes, as a publisher's sequence header or a
/// camera's in-band NAL units reach them: `data` as an AVCDecoderConfigurationRecord,
/// and as the body of an SPS NAL unit. Must never panic; the cargo-fuzz target builds
/// with debug assertions, so an arithmetic overflow panics too.
pub fn h264_parameters(data: &[u8]) {
    let _ = crate::media::h264::AvcConfig::parse(Bytes::copy_from_slice(data));
    let mut nal = Vec::with_capacity(data.len() + 1);
    nal.push(0x67);
    nal.extend_from_slice(data);
    let _ = crate::media::h264::parse_sps(&nal);
}

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
    let _ = hls::multivariant(&w, &[], None);
    for t in TrackId::ALL {
        let _ = hls::media_playlist(&w, t, t.name(), 1.0, 0.2, &[]);
    }
    let _ = dash::manifest(
        &w,
        1.0,
        4.0,
        "http://localhost/time",
        &BTreeMap::new(),
        &[],
        None,
    );
    w
}

/// One RTSP request from arbitrary bytes, through what a publisher's ANNOUNCE reaches:
/// the message grammar (rtsp-types), the `Authorization` and `Transport` headers, the
/// SDP body (sdp-types and ours), and the depacketizers' format parameters. Must never
/// panic. Returns whether a publish session could be created from it.
pub fn rtsp_announce(data: &[u8]) -> bool {
    use rtsp_types::headers::{Transports, AUTHORIZATION};
    let Ok((rtsp_types::Message::Request(req), _)) = rtsp_types::Message::<Vec<u8>>::parse(data)
    else {
        return false;
    };
    if let Some(v) = req.header(&AUTHORIZATION) {
        if let Some(auth::Credentials::Digest(d)) = auth::parse_authorization(v.as_str()) {
            let _ = auth::digest_matches("00", "ANNOUNCE", "n", &d);
        }
    }
    let _ = req.typed_header::<Transports>();
    match sdp::parse_announce(req.body()) {
        Ok(a) => Publish::new("fuzz", a).is_ok(),
        Err(_) => false,
    }
}

/// SDP of a publisher sending H.264 (bigbuckbunny's parameter sets) on track 0 and AAC
/// (LC, 44.1 kHz stereo) on track 1.
pub const PUBLISH_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=fuzz\r\nt=0 0\r\n\
m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z01AH9oBQBbsBEAAAAMAQAAADIPGDKg=,aO88gA==\r\n\
a=control:streamid=0\r\n\
m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
a=fmtp:97 mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210\r\n\
a=control:streamid=1\r\n";

/// A recording RTSP publisher's packets from arbitrary bytes, through RTP and RTCP
/// parsing, reordering, the H.264 (RFC 6184) or AAC (RFC 3640) depacketizer, decode-time
/// derivation and the hub. `sdp` is the announced session.
///
/// Input: records of `[flags: u8][length: u16 BE][packet]`; bit 0 of `flags` picks the
/// track (unless `track` forces one), bit 1 marks RTCP. Must never panic. Returns the
/// number of frames published.
pub fn rtsp_record(sdp: &str, track: Option<usize>, data: &[u8]) -> u64 {
    let Ok(announced) = sdp::parse_announce(sdp.as_bytes()) else {
        return 0;
    };
    let Ok(mut publish) = Publish::new("fuzz", announced) else {
        return 0;
    };
    let hub = Hub::new("fuzz");
    let (_, mut rx) = hub.subscribe();
    let Ok(publisher) = hub.publish("fuzz") else {
        return 0;
    };
    let metrics = Metrics::new();
    publish.start(publisher, IngestMeter::new(&metrics, "fuzz"));
    let mut frames = 0;
    let mut rest = data;
    while rest.len() >= 3 {
        let flags = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let packet = Bytes::copy_from_slice(&rest[3..3 + len]);
        rest = &rest[3 + len..];
        if publish
            .on_packet(
                track.unwrap_or(usize::from(flags & 1)),
                flags & 2 != 0,
                packet,
            )
            .is_err()
        {
            break; // the session would end here
        }
        while rx.try_recv().is_ok() {
            frames += 1;
        }
    }
    publish.finish();
    while rx.try_recv().is_ok() {
        frames += 1;
    }
    frames
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

    /// An RTP packet of `publish_session`'s format.
    fn rtp(out: &mut Vec<u8>, track: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) {
        let pt = if track == 0 { 96 } else { 97 };
        let mut p = vec![0x80, if marker { 0x80 | pt } else { pt }];
        p.extend(seq.to_be_bytes());
        p.extend(ts.to_be_bytes());
        p.extend([0, 0, 0, track + 1]);
        p.extend(payload);
        out.push(track);
        out.extend((p.len() as u16).to_be_bytes());
        out.extend(p);
    }

    /// A well-formed recording: sender reports, 2 s of 25 fps H.264 (FU-A keyframes each
    /// second) and AAC (two access units per packet).
    fn publish_session() -> Vec<u8> {
        publish_session_stepping(0)
    }

    /// [`publish_session`] whose RTP clocks step `step_s` seconds ahead after the first
    /// second.
    fn publish_session_stepping(step_s: u32) -> Vec<u8> {
        let mut d = Vec::new();
        for track in 0..2u8 {
            let mut sr = vec![0x80, 200, 0, 6, 0, 0, 0, track + 1, 0, 0, 0, 9, 0, 0, 0, 0];
            sr.extend([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
            d.push(track | 2);
            d.extend((sr.len() as u16).to_be_bytes());
            d.extend(sr);
        }
        let (mut vseq, mut aseq) = (100u16, 7u16);
        for i in 0..50u32 {
            let (vstep, astep) = if i >= 25 {
                (step_s.wrapping_mul(90_000), step_s.wrapping_mul(48_000))
            } else {
                (0, 0)
            };
            let vts = (i * 3600).wrapping_add(vstep);
            if i % 25 == 0 {
                rtp(&mut d, 0, vseq, vts, false, &[0x7c, 0x85, 0x88, 0x84]);
                rtp(&mut d, 0, vseq + 1, vts, true, &[0x7c, 0x45, 0x21]);
                vseq += 2;
            } else {
                rtp(&mut d, 0, vseq, vts, true, &[0x41, 0x9a, 0x02]);
                vseq += 1;
            }
            if i % 2 == 0 {
                let au = [0, 32, 0, 2 << 3, 0, 2 << 3, 0x21, 0x10, 0x21, 0x10];
                rtp(
                    &mut d,
                    1,
                    aseq,
                    (i / 2 * 2048).wrapping_add(astep),
                    true,
                    &au,
                );
                aseq += 1;
            }
        }
        d
    }

    #[test]
    fn valid_publish_reaches_the_hub() {
        let frames = rtsp_record(PUBLISH_SDP, None, &publish_session());
        // 50 pictures and 50 AAC frames; the harness must get that far.
        assert_eq!(frames, 100);
    }

    #[test]
    fn a_publisher_whose_clock_steps_goes_on_publishing() {
        // Before, an RTP clock step of more than 10 s ended the session: 25 pictures
        // and 25 AAC frames reached the hub.
        for step in [60, 3600, 4_000_000] {
            let frames = rtsp_record(PUBLISH_SDP, None, &publish_session_stepping(step));
            assert_eq!(frames, 100, "a {step} s step");
        }
    }

    #[test]
    fn mutated_publishes_never_panic() {
        let base = publish_session();
        let mut rng = Rng(0xfeed_f00d);
        for _ in 0..2000 {
            let mut d = base.clone();
            for _ in 0..1 + rng.next() % 12 {
                let pos = (rng.next() % d.len() as u64) as usize;
                d[pos] = rng.next() as u8;
            }
            let _ = rtsp_record(PUBLISH_SDP, None, &d);
        }
    }

    #[test]
    fn mutated_announces_never_panic() {
        let body = PUBLISH_SDP;
        let base = format!(
            "ANNOUNCE rtsp://h/live/x RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Digest username=\"x\", realm=\"streambox\", nonce=\"n\", uri=\"/\", response=\"00\"\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        assert!(rtsp_announce(&base), "the seed must reach Publish::new");
        let mut rng = Rng(7);
        for _ in 0..3000 {
            let mut d = base.clone();
            for _ in 0..1 + rng.next() % 8 {
                let pos = (rng.next() % d.len() as u64) as usize;
                d[pos] = rng.next() as u8;
            }
            let _ = rtsp_announce(&d);
        }
    }

    #[test]
    fn mutated_parameter_sets_never_panic() {
        use crate::media::h264::tests::BBB_AVCC;
        // Real SPS bodies (after the NAL header byte): Big Buck Bunny's (Main), a
        // libx264 High one with a VUI and bitstream restriction.
        let hex = "64000cacd941419f9f011000000300100000030320f1429960";
        let x264: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0))
            .collect();
        let bbb_sps = BBB_AVCC[9..9 + 0x16].to_vec();
        let seeds = [BBB_AVCC.to_vec(), bbb_sps, x264];
        let mut rng = Rng(0x5b5_5b5);
        for seed in &seeds {
            h264_parameters(seed);
            for _ in 0..20_000 {
                let mut d = seed.clone();
                for _ in 0..1 + rng.next() % 6 {
                    let pos = (rng.next() % d.len() as u64) as usize;
                    // Mostly flipped bits, which keep Exp-Golomb codes nearly intact;
                    // sometimes a whole new byte.
                    if rng.next() % 4 == 0 {
                        d[pos] = rng.next() as u8;
                    } else {
                        d[pos] ^= 1 << (rng.next() % 8);
                    }
                }
                if rng.next() % 16 == 0 {
                    d.truncate((rng.next() % d.len() as u64) as usize);
                }
                h264_parameters(&d);
            }
        }
    }
}
