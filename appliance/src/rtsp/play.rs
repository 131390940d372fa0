//! Sending a live stream to one RTSP player (egress): frames from the hub are
//! packetized (RFC 6184, RFC 3640) and routed over the player's transport, with RTCP
//! sender reports (RFC 3550 §6.4.1) that map every track's RTP time to the same wall
//! clock, so players can line audio up with video, and a BYE (§6.6) when the publisher
//! leaves.
//!
//! A new player starts at a keyframe from the hub's GOP cache. Each player has its own
//! task, hub subscription and bounded queue, and waits only for its own socket: one that
//! falls too far behind the hub resumes at the next keyframe, and one that takes nothing
//! for [`STUCK_LIMIT`] is dropped, never slowing the publisher or other players.

use super::rtp::Packetizer;
use crate::hub::PublishState;
use crate::media::{Frame, TrackId, TrackParams};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc};
use tracing::{info, warn};

/// A player whose queue stays full this long is dropped.
pub const STUCK_LIMIT: Duration = Duration::from_secs(10);
/// Interval between RTCP sender reports.
const SR_INTERVAL: Duration = Duration::from_secs(2);
/// After the publisher left and what it sent was drained, how long the BYE waits, so a
/// player's jitter buffer can play out the last packets first (GStreamer's turns BYE into
/// EOS at once and drops what it still holds).
const BYE_DELAY: Duration = Duration::from_secs(1);
/// After the publisher left and BYE was sent, how long a player may take to send its
/// TEARDOWN (GStreamer does) before the server closes the connection (which ffmpeg,
/// ignoring BYE over TCP, needs in order to end).
const BYE_GRACE: Duration = Duration::from_secs(2);

/// Where one track's packets go, with the sockets they leave by.
#[derive(Debug, Clone)]
pub enum Out {
    /// `$`-framed on the RTSP connection (RFC 2326 §10.12), on these channels.
    Interleaved {
        /// RTP's channel.
        rtp: u8,
        /// RTCP's channel.
        rtcp: u8,
    },
    /// UDP datagrams from our socket pair to the player's ports.
    Udp {
        /// Our RTP socket.
        rtp: Arc<UdpSocket>,
        /// Our RTCP socket.
        rtcp: Arc<UdpSocket>,
        /// The player's RTP address.
        to_rtp: SocketAddr,
        /// The player's RTCP address.
        to_rtcp: SocketAddr,
    },
}

/// Sends one player's media: packetizes frames from the hub and routes them.
pub struct MediaSender {
    /// Per track: where packets go, the packetizer, and the RTP clock rate (Hz).
    pub tracks: BTreeMap<TrackId, (Out, Packetizer, u32)>,
    /// The connection's outgoing queue (interleaved packets).
    pub tx: mpsc::Sender<Bytes>,
    /// Wall-clock time of the hub's media time zero.
    pub origin: SystemTime,
    waiting_for_keyframe: bool,
}

enum Sent {
    Ok,
    /// Nothing could be sent for [`STUCK_LIMIT`].
    Stuck,
    /// The connection is gone.
    Closed,
}

impl MediaSender {
    /// A sender of `tracks` on the connection queue `tx`, for a hub whose media time zero
    /// was at `origin`.
    pub fn new(
        tracks: BTreeMap<TrackId, (Out, Packetizer, u32)>,
        tx: mpsc::Sender<Bytes>,
        origin: SystemTime,
    ) -> MediaSender {
        MediaSender {
            tracks,
            tx,
            origin,
            waiting_for_keyframe: false,
        }
    }

    /// Sends the GOP cache `gop`, then what `rx` brings, until the publisher leaves (see
    /// `state`) or the player cannot keep up. Ends after the BYE and its grace period;
    /// the connection then closes.
    pub async fn run(
        mut self,
        gop: Vec<Arc<Frame>>,
        rx: broadcast::Receiver<Arc<Frame>>,
        state: tokio::sync::watch::Receiver<PublishState>,
    ) {
        if self.send_all(gop, rx, state).await {
            // A TEARDOWN in the meantime ends the session, and this task with it.
            tokio::time::sleep(BYE_GRACE).await;
        }
    }

    /// Sends until the publisher leaves (true, after RTCP BYE) or the player must go
    /// (false).
    async fn send_all(
        &mut self,
        gop: Vec<Arc<Frame>>,
        mut rx: broadcast::Receiver<Arc<Frame>>,
        mut state: tokio::sync::watch::Receiver<PublishState>,
    ) -> bool {
        let has_video = self.tracks.contains_key(&TrackId::Video);
        // The GOP cache starts at a keyframe when the stream has video.
        self.waiting_for_keyframe = has_video
            && !gop
                .first()
                .is_some_and(|f| f.track == TrackId::Video && f.is_sync);
        // Sender reports first, so players can place the very first packets in time.
        self.sender_reports().await;
        for f in &gop {
            if !self.frame(f).await {
                return false;
            }
        }
        let mut reports = tokio::time::interval(SR_INTERVAL);
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(f) => {
                        if !self.frame(&f).await {
                            return false;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        warn!(skipped = n, "RTSP player fell behind the hub; skipping to the next keyframe");
                        self.waiting_for_keyframe = has_video;
                    }
                    Err(broadcast::error::RecvError::Closed) => return false,
                },
                _ = reports.tick() => self.sender_reports().await,
                r = state.changed() => {
                    if r.is_err() || matches!(*state.borrow_and_update(), PublishState::Idle) {
                        // The publisher left: drain what it sent, say goodbye, hang up.
                        while let Ok(f) = rx.try_recv() {
                            if !self.frame(&f).await {
                                return false;
                            }
                        }
                        tokio::time::sleep(BYE_DELAY).await;
                        self.bye().await;
                        info!("publisher left; ending the RTSP session");
                        return true;
                    }
                }
            }
        }
    }

    /// Sends one frame; false when the player must be dropped.
    async fn frame(&mut self, f: &Frame) -> bool {
        if self.waiting_for_keyframe {
            if f.track == TrackId::Video && f.is_sync {
                self.waiting_for_keyframe = false;
            } else {
                return true;
            }
        }
        let Some((out, packetizer, _)) = self.tracks.get_mut(&f.track) else {
            return true;
        };
        // Keyframes carry their parameter sets in-band, for players that join, or whose
        // SDP predates a change of resolution.
        let packets = match &*f.params {
            TrackParams::Video(cfg) if f.is_sync => {
                let mut with = f.clone();
                with.data = cfg.with_parameter_sets(&f.data);
                packetizer.packetize(&with)
            }
            _ => packetizer.packetize(f),
        };
        let out = out.clone();
        for p in packets {
            match self.route_packet(&out, false, p).await {
                Sent::Ok => {}
                Sent::Closed => return false,
                Sent::Stuck => {
                    warn!("RTSP player took nothing for {STUCK_LIMIT:?}; dropping it");
                    return false;
                }
            }
        }
        true
    }

    /// Sends one packet, waiting while this player's queue or socket is full. Only this
    /// player waits: it has its own task and hub subscription, and if it falls too far
    /// behind the hub it resumes at the next keyframe.
    async fn route_packet(&self, out: &Out, rtcp: bool, p: Bytes) -> Sent {
        let sent = match out {
            Out::Interleaved { rtp, rtcp: rtcp_ch } => {
                let mut b = BytesMut::with_capacity(4 + p.len());
                b.put_u8(b'$');
                b.put_u8(if rtcp { *rtcp_ch } else { *rtp });
                b.put_u16(p.len() as u16);
                b.put_slice(&p);
                match tokio::time::timeout(STUCK_LIMIT, self.tx.send(b.freeze())).await {
                    Ok(Ok(())) => return Sent::Ok,
                    Ok(Err(_)) => return Sent::Closed,
                    Err(_) => return Sent::Stuck,
                }
            }
            Out::Udp {
                rtp,
                rtcp: rtcp_sock,
                to_rtp,
                to_rtcp,
            } => {
                let (sock, to) = if rtcp {
                    (rtcp_sock, to_rtcp)
                } else {
                    (rtp, to_rtp)
                };
                tokio::time::timeout(STUCK_LIMIT, sock.send_to(&p, *to)).await
            }
        };
        match sent {
            _ if self.tx.is_closed() => Sent::Closed,
            Err(_) => Sent::Stuck,
            // A datagram the kernel refuses is lost, as on a network.
            Ok(_) => Sent::Ok,
        }
    }

    /// RTCP sender reports (RFC 3550 §6.4.1): wall clock (NTP) against each track's RTP
    /// time for the same instant, from the hub's one origin.
    async fn sender_reports(&mut self) {
        let now = SystemTime::now();
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let ntp_secs = since_epoch.as_secs() + 2_208_988_800;
        let ntp_frac = (u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000;
        let media = now
            .duration_since(self.origin)
            .unwrap_or_default()
            .as_secs_f64();
        let reports: Vec<(Out, Bytes)> = self
            .tracks
            .values()
            .map(|(out, p, clock)| {
                let clock = f64::from(*clock);
                let (packets, octets) = p.counts();
                let mut b = BytesMut::with_capacity(28);
                b.put_u8(0x80);
                b.put_u8(200); // SR
                b.put_u16(6); // length in 32-bit words minus one
                b.put_u32(p.ssrc());
                b.put_u32(ntp_secs as u32);
                b.put_u32(ntp_frac as u32);
                b.put_u32(p.rtp_time((media * clock) as i64));
                b.put_u32(packets);
                b.put_u32(octets);
                (out.clone(), b.freeze())
            })
            .collect();
        for (out, b) in reports {
            let _ = self.route_packet(&out, true, b).await;
        }
    }

    /// RTCP BYE (RFC 3550 §6.6) on every track.
    async fn bye(&self) {
        for (out, p, _) in self.tracks.values() {
            let mut b = BytesMut::with_capacity(8);
            b.put_u8(0x81);
            b.put_u8(203);
            b.put_u16(1);
            b.put_u32(p.ssrc());
            let _ = self.route_packet(out, true, b.freeze()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::h264::{tests::BBB_AVCC, AvcConfig};
    use tokio::sync::watch;

    /// `n` pictures of 25 fps video, the first a keyframe.
    fn pictures(n: i64) -> Vec<Arc<Frame>> {
        let avcc = AvcConfig::parse(Bytes::from_static(BBB_AVCC)).expect("avcC");
        let params = Arc::new(TrackParams::Video(avcc));
        (0..n)
            .map(|i| {
                let nal: &[u8] = if i == 0 {
                    &[0x65, 0x88, 0x84]
                } else {
                    &[0x41, 0x9a]
                };
                let mut data = (nal.len() as u32).to_be_bytes().to_vec();
                data.extend_from_slice(nal);
                Arc::new(Frame {
                    track: TrackId::Video,
                    dts: i * 3600,
                    cts: 0,
                    is_sync: i == 0,
                    params: params.clone(),
                    data: Bytes::from(data),
                    received: std::time::Instant::now(),
                })
            })
            .collect()
    }

    fn sender(tx: mpsc::Sender<Bytes>) -> MediaSender {
        let tracks = BTreeMap::from([(
            TrackId::Video,
            (
                Out::Interleaved { rtp: 0, rtcp: 1 },
                Packetizer::new(96, 7, 0, 0),
                90_000,
            ),
        )]);
        MediaSender::new(tracks, tx, SystemTime::now())
    }

    fn live() -> PublishState {
        PublishState::Live {
            peer: "test".into(),
            session: 1,
            since: SystemTime::now(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_player_that_takes_nothing_is_dropped_after_the_stuck_limit() {
        // The connection's queue holds one message and nobody reads it.
        let (tx, _unread) = mpsc::channel(1);
        let (_frames, rx) = broadcast::channel(8);
        let (_state, state) = watch::channel(live());
        let began = tokio::time::Instant::now();
        sender(tx).run(pictures(10), rx, state).await;
        let waited = began.elapsed();
        assert!(
            waited >= STUCK_LIMIT && waited < STUCK_LIMIT + Duration::from_secs(1),
            "dropped after {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn when_the_publisher_leaves_the_player_gets_everything_then_a_bye() {
        let (tx, mut queue) = mpsc::channel(256);
        let (frames, rx) = broadcast::channel(64);
        let (state_tx, state) = watch::channel(live());
        let gop = pictures(3);
        let later = pictures(6).split_off(3);
        let run = tokio::spawn(sender(tx).run(gop, rx, state));
        for f in later {
            frames.send(f).expect("the sender listens");
        }
        let _ = state_tx.send(PublishState::Idle);
        let began = tokio::time::Instant::now();
        run.await.expect("the sender ends");
        // The BYE waits for the player's buffer, then the player may send TEARDOWN.
        assert!(began.elapsed() >= BYE_DELAY + BYE_GRACE);
        let mut rtp = Vec::new();
        let mut bye = false;
        while let Ok(b) = queue.try_recv() {
            match (b[1], b[5]) {
                (0, _) => rtp.push(u16::from_be_bytes([b[6], b[7]])),
                (1, 203) => bye = true,
                _ => {}
            }
        }
        // The keyframe goes with its SPS and PPS in-band: three packets, then one a
        // picture.
        assert_eq!(rtp, (0..8).collect::<Vec<u16>>(), "every picture, in order");
        assert!(bye, "an RTCP BYE on the RTCP channel");
    }
}
