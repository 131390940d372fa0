//! Fuzzing harnesses: the code paths a publisher's bytes reach, driven from arbitrary
//! input. Shared by the cargo-fuzz targets in `appliance/fuzz/` (built with
//! `--cfg fuzzing`) and by deterministic mutation tests that run in every test suite.

use crate::auth::stream_keys::Authorized;
use crate::hub::{Hub, Publisher};
use crate::ingest::rtsp_push::Publish;
use crate::ingest::IngestMeter;
use crate::media::flv::{Demuxed, FlvDemuxer};
use crate::media::{Frame, TrackId};
use crate::metrics::Metrics;
use crate::packager::segmenter::{Segmenter, SegmenterConfig};
use crate::packager::{dash, hls, Window};
use crate::rtsp::session::{next_message, Action, ClaimRefused, Host, Incoming, Session};
use crate::rtsp::{auth, sdp};
use crate::streams::{Kind, Named, StreamUid};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::broadcast;

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
        for delta in [false, true] {
            let _ = hls::media_playlist(&w, t, t.name(), 1.0, 0.2, &[], delta);
        }
    }
    for low_latency in [
        None,
        Some(dash::LowLatency {
            chunk: 0.2,
            target: 1.0,
        }),
    ] {
        let _ = dash::manifest(
            &w,
            1.0,
            4.0,
            "http://localhost/time",
            "http://localhost/live/s/keys/license",
            &BTreeMap::new(),
            &[],
            None,
            low_latency,
        );
    }
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
        Ok(a) => Publish::new("fuzz", a, "1".into()).is_ok(),
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
    let Ok(mut publish) = Publish::new("fuzz", announced, "1".into()) else {
        return 0;
    };
    let hub = Hub::new("fuzz");
    let (_, mut rx) = hub.subscribe();
    let Ok(publisher) = hub.publish("fuzz") else {
        return 0;
    };
    let metrics = shared_metrics();
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

/// The fmtp of [`PUBLISH_SDP`]'s video and audio.
const VIDEO_FMTP: &str =
    "packetization-mode=1; sprop-parameter-sets=Z01AH9oBQBbsBEAAAAMAQAAADIPGDKg=,aO88gA==";
const AUDIO_FMTP: &str = "mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210";

/// What the round trip found wrong: the frame index and what differed.
#[derive(Debug, PartialEq, Eq)]
pub struct RoundTripMismatch(pub usize, pub &'static str);

/// Frames from arbitrary bytes through our RTP packetizer (RFC 6184 single NAL unit
/// and FU-A; RFC 3640 AAC-hbr, fragmented when large) and back through RTP parsing,
/// reordering and the depacketizers: every frame must come out as it went in, with the
/// same data, keyframe flag and timestamp distance from the first.
///
/// Input: records of `[flags: u8][length: u16 BE][body]`. Bit 0 of `flags` picks audio
/// (1) or video (0); the other bits advance the frame's time. A video body is NAL units
/// of `[length: u16 BE][bytes]`, their types forced to a slice (1) or, in the first
/// frame and when bit 1 is set, an IDR slice (5). Returns the number of frames that
/// made the trip.
///
/// # Errors
/// The first mismatch: a bug in the packetizer or a depacketizer.
pub fn rtp_round_trip(data: &[u8]) -> Result<usize, RoundTripMismatch> {
    use crate::media::aac::AudioConfig;
    use crate::media::h264::AvcConfig;
    use crate::media::{Frame, TrackParams};
    use crate::rtsp::depacketize::{AacDepacketizer, H264Depacketizer};
    use crate::rtsp::rtp::Packetizer;
    use crate::rtsp::rtp_in::{parse_rtp, Reorder};

    let (Ok(mut h264), Ok(mut aac)) = (
        H264Depacketizer::new(Some(VIDEO_FMTP)),
        AacDepacketizer::new(Some(AUDIO_FMTP)),
    ) else {
        return Err(RoundTripMismatch(0, "the format parameters"));
    };
    let video = h264
        .announced_config()
        .and_then(|c| AvcConfig::parse(c).ok())
        .map(|c| Arc::new(TrackParams::Video(c)))
        .ok_or(RoundTripMismatch(0, "the video parameters"))?;
    let audio = AudioConfig::parse(Bytes::from_static(&[0x12, 0x10]))
        .map(|c| Arc::new(TrackParams::Audio(c)))
        .map_err(|_| RoundTripMismatch(0, "the audio parameters"))?;
    let mut packetizers = [
        Packetizer::new(96, 1, 0xfff0, 0xffff_f000),
        Packetizer::new(97, 2, 0xfffe, 7),
    ];
    let mut reorder = [Reorder::new(), Reorder::new()];
    // Per track: (time, keyframe, data) sent and received.
    let mut sent: [Vec<(i64, bool, Bytes)>; 2] = [Vec::new(), Vec::new()];
    let mut got: [Vec<(i64, bool, Bytes)>; 2] = [Vec::new(), Vec::new()];
    let mut times = [0i64, 0];
    let mut rest = data;
    while rest.len() >= 3 {
        let flags = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let body = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let t = usize::from(flags & 1);
        let (params, payload, is_sync) = if t == 0 {
            let idr = sent[0].is_empty() || flags & 2 != 0;
            let mut au = Vec::new();
            let mut nals = body;
            while nals.len() >= 2 {
                let n = usize::from(u16::from_be_bytes([nals[0], nals[1]])).min(nals.len() - 2);
                let nal = &nals[2..2 + n];
                nals = &nals[2 + n..];
                let Some((&header, tail)) = nal.split_first() else {
                    continue;
                };
                au.extend((nal.len() as u32).to_be_bytes());
                au.push((header & 0x60) | if idr { 5 } else { 1 });
                au.extend_from_slice(tail);
            }
            if au.is_empty() {
                continue;
            }
            (&video, au, idr)
        } else {
            let au = &body[..body.len().min(0x1fff)];
            if au.is_empty() {
                continue;
            }
            (&audio, au.to_vec(), true)
        };
        // Audio frames are 1024 samples apart at least (the depacketizer numbers the
        // units of a packet that way); pictures a tick.
        times[t] += if t == 0 { 1 } else { 1024 } + i64::from(flags >> 1) * 100;
        let frame = Frame {
            track: if t == 0 {
                TrackId::Video
            } else {
                TrackId::Audio
            },
            dts: times[t],
            cts: 0,
            is_sync,
            params: params.clone(),
            data: Bytes::from(payload),
            received: Instant::now(),
        };
        sent[t].push((frame.dts, is_sync, frame.data.clone()));
        for packet in packetizers[t].packetize(&frame) {
            let parsed = parse_rtp(packet).map_err(|_| RoundTripMismatch(sent[t].len(), "RTP"))?;
            let mut ordered = Vec::new();
            reorder[t].push(parsed, &mut ordered);
            for o in &ordered {
                let index = sent[t].len() - 1;
                if t == 0 {
                    let mut aus = Vec::new();
                    h264.push(o, &mut aus)
                        .map_err(|_| RoundTripMismatch(index, "H.264 depacketizer"))?;
                    got[0].extend(aus.into_iter().map(|a| (a.pts, a.is_sync, a.data)));
                } else {
                    let mut aus = Vec::new();
                    aac.push(o, &mut aus)
                        .map_err(|_| RoundTripMismatch(index, "AAC depacketizer"))?;
                    got[1].extend(aus.into_iter().map(|(pts, d)| (pts, true, d)));
                }
            }
        }
    }
    let mut trips = 0;
    for t in 0..2 {
        if got[t].len() != sent[t].len() {
            return Err(RoundTripMismatch(got[t].len(), "frame count"));
        }
        let (Some(s0), Some(g0)) = (sent[t].first(), got[t].first()) else {
            continue;
        };
        let (s0, g0) = (s0.0, g0.0);
        for (i, (s, g)) in sent[t].iter().zip(&got[t]).enumerate() {
            if s.2 != g.2 {
                return Err(RoundTripMismatch(i, "data"));
            }
            if s.1 != g.1 {
                return Err(RoundTripMismatch(i, "keyframe flag"));
            }
            if s.0 - s0 != g.0 - g0 {
                return Err(RoundTripMismatch(i, "timestamp"));
            }
            trips += 1;
        }
    }
    Ok(trips)
}

/// One metrics registry for every run of a harness: making one registers every family,
/// which would cost more than the run itself.
fn shared_metrics() -> Arc<Metrics> {
    static METRICS: std::sync::OnceLock<Arc<Metrics>> = std::sync::OnceLock::new();
    METRICS.get_or_init(|| Arc::new(Metrics::new())).clone()
}

/// The appliance as an RTSP session sees it, held in memory: streams with real hubs,
/// their keys, open viewer links and the UDP ports handed out. For the session's fuzz
/// target and tests.
pub struct MemoryHost {
    /// Streams by name: their directory entry and hub.
    pub streams: BTreeMap<String, (Arc<Named>, Arc<Hub>)>,
    /// Stream keys by stream name.
    pub keys: BTreeMap<String, String>,
    /// Open viewer links: their id and the stream each opens.
    pub links: BTreeMap<i64, StreamUid>,
    /// The secret viewer links are signed with.
    pub secret: Vec<u8>,
    /// Seconds since the Unix epoch.
    pub now: i64,
    /// UDP port pairs handed out and not released, by RTP port.
    pub udp: BTreeSet<u16>,
    /// Publishers holding the streams made live by [`MemoryHost::live`].
    publishers: Vec<Publisher>,
    next_port: u16,
    metrics: Arc<Metrics>,
}

impl Default for MemoryHost {
    fn default() -> Self {
        MemoryHost::new()
    }
}

impl MemoryHost {
    /// No streams, no links; the time is 2026-12-01.
    pub fn new() -> MemoryHost {
        MemoryHost {
            streams: BTreeMap::new(),
            keys: BTreeMap::new(),
            links: BTreeMap::new(),
            secret: vec![7; 32],
            now: 1_795_000_000,
            udp: BTreeSet::new(),
            publishers: Vec::new(),
            next_port: 50_000,
            metrics: shared_metrics(),
        }
    }

    /// Adds stream `name` with stream key `key`, private or public; returns its hub.
    pub fn add(&mut self, name: &str, key: &str, private: bool) -> Arc<Hub> {
        let named = Arc::new(Named {
            uid: StreamUid::new(),
            name: name.into(),
            kind: Kind::Stream,
            private,
            protection: None,
            key_hash: Some(key.as_bytes().to_vec()),
        });
        let hub = Hub::new(name);
        self.streams.insert(name.into(), (named, hub.clone()));
        self.keys.insert(name.into(), key.into());
        hub
    }

    /// Makes stream `name` live, with [`PUBLISH_SDP`]'s H.264 and AAC parameters; false
    /// when there is no such stream or it is live already.
    pub fn live(&mut self, name: &str) -> bool {
        let Some((_, hub)) = self.streams.get(name) else {
            return false;
        };
        let Ok(publisher) = hub.publish("memory") else {
            return false;
        };
        let video = crate::rtsp::depacketize::H264Depacketizer::new(Some(VIDEO_FMTP))
            .ok()
            .and_then(|d| d.announced_config())
            .and_then(|c| crate::media::h264::AvcConfig::parse(c).ok());
        let audio = crate::media::aac::AudioConfig::parse(Bytes::from_static(&[0x12, 0x10])).ok();
        if let (Some(v), Some(a)) = (video, audio) {
            publisher.set_params(Arc::new(crate::media::TrackParams::Video(v)));
            publisher.set_params(Arc::new(crate::media::TrackParams::Audio(a)));
        }
        self.publishers.push(publisher);
        true
    }

    /// Opens viewer link `id` to stream `name`, valid for an hour; returns its token.
    pub fn link(&mut self, name: &str, id: i64) -> Option<String> {
        let uid = self.streams.get(name)?.0.uid.clone();
        let token = crate::auth::viewer::token(&self.secret, &uid, id, self.now + 3600);
        self.links.insert(id, uid);
        Some(token)
    }

    fn by_uid(&self, uid: &StreamUid) -> Option<&(Arc<Named>, Arc<Hub>)> {
        self.streams.values().find(|(n, _)| &n.uid == uid)
    }

    fn authorized(&self, name: &str) -> Option<Authorized> {
        let (named, _) = self.streams.get(name)?;
        Some(Authorized {
            uid: named.uid.clone(),
            name: name.into(),
            key_hash: named.key_hash.clone().unwrap_or_default(),
        })
    }
}

impl Host for MemoryHost {
    type Feed = (Vec<Arc<Frame>>, broadcast::Receiver<Arc<Frame>>);
    type Hold = StreamUid;

    fn named(&self, name: &str) -> Option<Arc<Named>> {
        self.streams.get(name).map(|(n, _)| n.clone())
    }

    fn link_opens(&self, id: i64, uid: &StreamUid) -> bool {
        self.links.get(&id) == Some(uid)
    }

    fn now(&self) -> i64 {
        self.now
    }

    fn live_params(&self, name: &str) -> Option<BTreeMap<TrackId, Arc<crate::media::TrackParams>>> {
        let (_, hub) = self.streams.get(name)?;
        hub.is_live().then(|| hub.params())
    }

    fn has_publisher(&self, name: &str) -> bool {
        self.streams.get(name).is_some_and(|(_, h)| h.is_live())
    }

    fn subscribe(&self, uid: &StreamUid) -> Option<(Self::Feed, BTreeMap<TrackId, i64>)> {
        let (_, hub) = self.by_uid(uid).filter(|(_, h)| h.is_live())?;
        let (gop, rx) = hub.subscribe();
        let mut first = BTreeMap::new();
        for f in &gop {
            first.entry(f.track).or_insert(f.dts + i64::from(f.cts));
        }
        Some(((gop, rx), first))
    }

    // Refusals are metrics in the service; the tests read the statuses instead.
    fn rejected(&self, _reason: &'static str) {}

    async fn viewer_secret(&self) -> Option<Vec<u8>> {
        Some(self.secret.clone())
    }

    async fn authorize_key(&self, name: &str, key: &str) -> Option<Authorized> {
        (self.keys.get(name).map(String::as_str) == Some(key))
            .then(|| self.authorized(name))
            .flatten()
    }

    async fn digest_ha1(&self, name: &str) -> Option<(Authorized, String)> {
        let key = self.keys.get(name)?;
        Some((
            self.authorized(name)?,
            crate::auth::stream_keys::digest_ha1(name, key),
        ))
    }

    async fn offers_digest(&self, _name: &str) -> bool {
        true
    }

    async fn udp_pair(&mut self) -> Option<(u16, u16)> {
        if self.udp.len() >= 8 {
            return None;
        }
        let port = self.next_port;
        self.next_port = self.next_port.wrapping_add(2).max(50_000);
        self.udp.insert(port);
        Some((port, port + 1))
    }

    fn release_udp(&mut self, rtp: u16) {
        self.udp.remove(&rtp);
    }

    async fn claim(
        &mut self,
        who: &Authorized,
        peer: std::net::SocketAddr,
    ) -> Result<(Publisher, IngestMeter, StreamUid), ClaimRefused> {
        let (named, hub) = self
            .by_uid(&who.uid)
            .ok_or((rtsp_types::StatusCode::NotFound, "No Such Stream"))?;
        if named.key_hash.as_ref() != Some(&who.key_hash) {
            return Err((rtsp_types::StatusCode::Forbidden, "Stream Key Changed"));
        }
        let publisher = hub.publish(&format!("rtsp://{peer}")).map_err(|_| {
            (
                rtsp_types::StatusCode::Forbidden,
                "Stream Already Has A Publisher",
            )
        })?;
        let meter = IngestMeter::new(&self.metrics, &named.name);
        Ok((publisher, meter, who.uid.clone()))
    }
}

/// Runs `f` to its end when nothing it waits on can be pending (a session over a
/// [`MemoryHost`], whose answers are ready at once); `None` if it still waits after a
/// thousand polls.
pub fn ready<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..1000 {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Some(v);
        }
    }
    None
}

/// One RTSP connection from arbitrary bytes, through the sans-IO session: message
/// framing (requests, interleaved packets, junk), every method in every state,
/// stream-key (query, Basic, Digest) and viewer-link checks, transport negotiation,
/// a publisher's RTP into a hub, players set up, played and torn down. The host has
/// public stream `x` (key `k`), live; private stream `p` (key `k2`, link 1 open); and
/// public stream `y` (key `k3`) to publish to. Session IDs count from 1.
/// Must never panic, and when the connection closes every UDP port it took is
/// released. Returns the number of actions the session asked for, and of frames that
/// reached stream `y`'s hub.
pub fn rtsp_session(data: &[u8]) -> (usize, usize) {
    let mut host = MemoryHost::new();
    host.add("x", "k", false);
    host.add("p", "k2", true);
    let (_, mut published) = host.add("y", "k3", false).subscribe();
    host.live("x");
    let _ = host.link("p", 1);
    let addr = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut session = Session::new(addr(8554), addr(40_000), 60).with_first_id(1);
    let mut buf = bytes::BytesMut::from(data);
    let mut actions = 0;
    'read: loop {
        match next_message(&mut buf) {
            Ok(None) | Err(_) => break,
            Ok(Some(Incoming::Ignored)) => {}
            Ok(Some(Incoming::Interleaved { channel, packet })) => {
                if session.on_interleaved(channel, packet).is_err() {
                    break;
                }
            }
            Ok(Some(Incoming::Request(req))) => {
                let Some(done) = ready(session.handle(&req, &mut host)) else {
                    break;
                };
                for action in done {
                    actions += 1;
                    match action {
                        Action::EndPublish => session.end_publish(&mut host),
                        Action::Close => break 'read,
                        Action::Send(_) | Action::Play(_) | Action::StopPlaying => {}
                        Action::Hold { .. } => {}
                    }
                }
            }
        }
    }
    session.close(&mut host);
    assert!(host.udp.is_empty(), "UDP ports left: {:?}", host.udp);
    let mut frames = 0;
    while published.try_recv().is_ok() {
        frames += 1;
    }
    (actions, frames)
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
pub fn publish_session() -> Vec<u8> {
    publish_session_stepping(0)
}

/// [`publish_session`] whose RTP clocks step `step_s` seconds ahead after the first
/// second.
pub fn publish_session_stepping(step_s: u32) -> Vec<u8> {
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

/// Frames for the round trip: pictures of one to three NAL units, some larger than
/// a packet (FU-A), keyframes every fourth; AAC frames, some larger than a packet.
pub fn round_trip_seed() -> Vec<u8> {
    let mut d = Vec::new();
    for i in 0..8u16 {
        let mut body = Vec::new();
        for n in 0..1 + i % 3 {
            let len = [5usize, 1300, 2900, 40][usize::from((i + n) % 4)];
            body.extend((len as u16).to_be_bytes());
            body.extend((0..len).map(|j| (j as u8) ^ (i as u8)));
        }
        let flags = if i % 4 == 0 { 2 } else { 0 } | 4;
        d.push(flags);
        d.extend((body.len() as u16).to_be_bytes());
        d.extend(body);
        let au_len = [7usize, 300, 1500, 1][usize::from(i % 4)];
        d.push(1);
        d.extend((au_len as u16).to_be_bytes());
        d.extend((0..au_len).map(|j| (j as u8).wrapping_mul(3)));
    }
    d
}

/// A publisher's whole connection (Digest challenge, ANNOUNCE with the key, SETUP
/// of both tracks, RECORD, media, TEARDOWN) and a player's (DESCRIBE, SETUP over UDP
/// and TCP, PLAY, keep-alive, TEARDOWN), as [`rtsp_session`] takes them: the seeds of its fuzz target.
pub fn rtsp_session_seeds() -> [Vec<u8>; 2] {
    let sdp = PUBLISH_SDP;
    let mut publisher = format!(
        "OPTIONS rtsp://h/live/y RTSP/1.0\r\nCSeq: 1\r\n\r\n\
         ANNOUNCE rtsp://h/live/y RTSP/1.0\r\nCSeq: 2\r\nContent-Length: {n}\r\n\r\n{sdp}\
         ANNOUNCE rtsp://h/live/y?key=k3 RTSP/1.0\r\nCSeq: 3\r\nContent-Length: {n}\r\n\r\n{sdp}\
         SETUP rtsp://h/live/y/streamid=0 RTSP/1.0\r\nCSeq: 4\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n\r\n\
         SETUP rtsp://h/live/y/streamid=1 RTSP/1.0\r\nCSeq: 5\r\nSession: 0000000000000001\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3;mode=record\r\n\r\n",
        n = sdp.len()
    )
    .into_bytes();
    publisher
        .extend(b"RECORD rtsp://h/live/y RTSP/1.0\r\nCSeq: 6\r\nSession: 0000000000000001\r\n\r\n");
    let media = publish_session();
    let mut rest = &media[..];
    while rest.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let channel = (rest[0] & 1) * 2 + (rest[0] >> 1 & 1);
        publisher.extend([b'$', channel]);
        publisher.extend(&rest[1..3 + len]);
        rest = &rest[3 + len..];
    }
    publisher.extend(
        b"TEARDOWN rtsp://h/live/y RTSP/1.0\r\nCSeq: 7\r\nSession: 0000000000000001\r\n\r\n",
    );
    let player = b"DESCRIBE rtsp://h/live/x RTSP/1.0\r\nCSeq: 1\r\n\r\n\
        SETUP rtsp://h/live/x/video RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;unicast;client_port=6000-6001\r\n\r\n\
        SETUP rtsp://h/live/x/audio RTSP/1.0\r\nCSeq: 3\r\nSession: 0000000000000001\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n\r\n\
        PLAY rtsp://h/live/x RTSP/1.0\r\nCSeq: 4\r\nSession: 0000000000000001\r\n\r\n\
        GET_PARAMETER rtsp://h/live/x RTSP/1.0\r\nCSeq: 5\r\n\r\n\
        DESCRIBE rtsp://h/live/p?token=1.2.3 RTSP/1.0\r\nCSeq: 6\r\n\r\n\
        TEARDOWN rtsp://h/live/x RTSP/1.0\r\nCSeq: 7\r\nSession: 0000000000000001\r\n\r\n"
        .to_vec();
    [publisher, player]
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

        /// `base` with 1 to `max` bytes replaced by random ones and, when `cut`, one
        /// time in eight cut short.
        fn mutate(&mut self, base: &[u8], max: u64, cut: bool) -> Vec<u8> {
            let mut d = base.to_vec();
            for _ in 0..1 + self.next() % max {
                let pos = (self.next() % d.len() as u64) as usize;
                d[pos] = self.next() as u8;
            }
            if cut && self.next() % 8 == 0 {
                d.truncate((self.next() % d.len() as u64) as usize);
            }
            d
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
            let d = rng.mutate(&base, 12, true);
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
            let d = rng.mutate(&base, 12, false);
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
            let d = rng.mutate(&base, 8, false);
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

    #[test]
    fn every_frame_makes_the_rtp_round_trip() {
        assert_eq!(rtp_round_trip(&round_trip_seed()), Ok(16));
        let mut rng = Rng(0xc0ffee);
        let base = round_trip_seed();
        for _ in 0..300 {
            let d = rng.mutate(&base, 8, false);
            if let Err(e) = rtp_round_trip(&d) {
                panic!("{e:?}");
            }
        }
    }

    #[test]
    fn mutated_rtsp_sessions_never_panic_and_release_their_ports() {
        let seeds = rtsp_session_seeds();
        // The seeds must reach deep: a reply for each request, plus the publisher's
        // hold and end, and the player's start and stop.
        assert_eq!(rtsp_session(&seeds[0]), (7 + 2, 100));
        assert_eq!(rtsp_session(&seeds[1]), (7 + 2, 0));
        let mut rng = Rng(0x7275_7370);
        for seed in &seeds {
            for _ in 0..1500 {
                let d = rng.mutate(seed, 10, true);
                let _ = rtsp_session(&d);
            }
        }
    }

    #[test]
    fn the_fuzz_targets_start_from_these_seeds() {
        // The committed seed files are what the harnesses above reach deep with; after a
        // change to a seed, `STREAMBOX_WRITE_SEEDS=1 cargo test` writes them again.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
        let [publisher, player] = rtsp_session_seeds();
        let seeds = [
            ("rtp_round_trip/frames", round_trip_seed()),
            ("rtsp_session/publisher", publisher),
            ("rtsp_session/player", player),
        ];
        for (name, bytes) in seeds {
            let path = dir.join(name);
            if std::env::var_os("STREAMBOX_WRITE_SEEDS").is_some() {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).expect("seed directory");
                }
                std::fs::write(&path, &bytes).expect("write seed");
            }
            let committed =
                std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(committed == bytes, "{name} differs from the harness's seed");
        }
    }

    #[test]
    fn inputs_that_once_crashed_a_harness_do_not() {
        // fuzz/regressions/TARGET/NAME: what the fuzzers found, kept as tests.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        let mut ran = 0;
        for entry in std::fs::read_dir(dir.join("rtsp_session")).expect("regressions") {
            let data = std::fs::read(entry.expect("entry").path()).expect("read");
            let _ = rtsp_session(&data);
            ran += 1;
        }
        assert!(ran > 0, "no regression inputs were found");
    }
}
