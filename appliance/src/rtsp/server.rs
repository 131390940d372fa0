//! The RTSP server's transport (RFC 2326, RTSP 1.0): any live stream plays at
//! `rtsp://HOST:PORT/live/NAME`, over TCP-interleaved (§10.12) or UDP unicast RTP, and
//! publishers push to the same URL with ANNOUNCE and RECORD.
//!
//! This module only moves bytes: it accepts connections, reads requests and interleaved
//! packets, writes responses, binds and reads UDP ports, and starts and stops what the
//! connection's [`Session`] (the sans-IO session logic, [`super::session`]) asks for:
//! a player's [`MediaSender`] ([`super::play`]), a publisher's lease and UDP readers.
//! [`ServerHost`] answers the session's questions from the registry and the database.
//!
//! Every connection is admitted by its client address's [`ConnectionLimit`]; a request
//! must arrive whole within `rtsp.request_timeout` of its first byte (the first one within
//! that of connecting), and a connection on which nothing arrives for `rtsp.idle_timeout`
//! closes (sessions announce it as their timeout, so players keep alive sooner).
//! Publishers and players hold leases on their stream ([`Lease`]): a rotated key ends a
//! publisher, and a player without a grant is ended when its stream turns private, its
//! viewer link is revoked, or the stream is deleted.

use super::play::{MediaSender, Out};
use super::session::{
    next_message, Action, ClaimRefused, FramingError, Host, Incoming, Playback, Route, Session,
};
use crate::app::{App, LiveEntry};
use crate::auth::stream_keys::{self, Authorized};
use crate::connections::{ConnectionLimit, Slot};
use crate::hub::Publisher;
use crate::ingest::IngestMeter;
use crate::media::{Frame, TrackId, TrackParams};
use crate::streams::registry::{Holder, Lease};
use crate::streams::{Named, StreamUid};
use bytes::{Bytes, BytesMut};
use rtsp_types::StatusCode;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{broadcast, mpsc};
use tracing::{info, warn, Instrument};

pub use super::play::STUCK_LIMIT;

/// Outgoing messages (mostly RTP packets of up to 1.4 KB) queued per connection before
/// media is skipped.
const QUEUE: usize = 256;
/// Kernel send buffer of an RTSP connection, in bytes: small, so that a player that
/// stops reading is noticed within seconds rather than after megabytes.
const SEND_BUFFER: usize = 256 * 1024;
/// A publisher that sends nothing for this long (over UDP, where the RTSP connection
/// itself may stay quiet) is ended.
const PUBLISH_IDLE: Duration = Duration::from_secs(30);
/// UDP port pairs one connection may hold at once (a player's two tracks and a
/// publisher's, with room for a SETUP that replaces one).
const MAX_UDP_PAIRS: usize = 8;

/// Accepts RTSP connections forever, one task per connection.
pub async fn serve(listener: TcpListener, app: App) {
    let limit = ConnectionLimit::new(
        "rtsp",
        app.cfg.rtsp.max_connections_per_client,
        app.metrics.clone(),
    );
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                let Some(slot) = limit.admit(peer.ip()) else {
                    continue;
                };
                let span = tracing::info_span!("rtsp", %peer, stream = tracing::field::Empty);
                let app = app.clone();
                let limit = limit.clone();
                tokio::spawn(
                    async move {
                        match connection(sock, peer, app, slot).await {
                            Ok(()) => info!("RTSP connection closed"),
                            Err(RtspError::Timeout(phase)) => {
                                limit.timed_out(phase);
                                info!(
                                    phase,
                                    "RTSP connection closed: the client was too slow or silent"
                                );
                            }
                            Err(e) => warn!(error = %e, "RTSP connection ended"),
                        }
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                warn!(error = %e, "RTSP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RtspError {
    /// The socket failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// Bytes that are no RTSP message, or a request too large (answered 400 first).
    #[error(transparent)]
    Framing(#[from] FramingError),
    /// The publisher's media could not go on.
    #[error("publisher's media: {0}")]
    Media(#[from] crate::ingest::rtp_frames::RtpMediaError),
    /// A recording publisher sent nothing for `PUBLISH_IDLE` (30 s).
    #[error("publisher sent nothing for {}s", PUBLISH_IDLE.as_secs())]
    PublisherIdle,
    /// A request did not arrive whole in time (`request`), or nothing arrived for the
    /// idle timeout (`idle`).
    #[error("the client was too slow ({0})")]
    Timeout(&'static str),
    /// The appliance ended the session: a rotated key, a deleted stream.
    #[error("ended: {0}")]
    Ended(&'static str),
}

/// The session's questions, answered from the running service; and the UDP sockets the
/// connection holds, by their RTP port.
pub struct ServerHost {
    app: App,
    local: SocketAddr,
    udp: HashMap<u16, (Arc<UdpSocket>, Arc<UdpSocket>)>,
}

/// A player's feed: the live entry (for its viewer count and publish state), the GOP
/// cache and the subscription.
pub type Feed = (LiveEntry, Vec<Arc<Frame>>, broadcast::Receiver<Arc<Frame>>);

impl Host for ServerHost {
    type Feed = Feed;
    type Hold = Lease;

    fn named(&self, name: &str) -> Option<Arc<Named>> {
        self.app.registry.directory().by_name(name).cloned()
    }

    fn link_opens(&self, id: i64, uid: &StreamUid) -> bool {
        self.app
            .registry
            .directory()
            .link_opens(id, uid, self.now())
    }

    fn now(&self) -> i64 {
        crate::db::unix_now()
    }

    fn live_params(&self, name: &str) -> Option<BTreeMap<TrackId, Arc<TrackParams>>> {
        self.app
            .stream(name)
            .filter(|e| e.hub.is_live())
            .map(|e| e.hub.params())
    }

    fn has_publisher(&self, name: &str) -> bool {
        self.app.stream(name).is_some_and(|e| e.hub.is_live())
    }

    fn subscribe(&self, uid: &StreamUid) -> Option<(Feed, BTreeMap<TrackId, i64>)> {
        let name = self.app.registry.directory().by_uid(uid)?.name.clone();
        let entry = self
            .app
            .stream(&name)
            .filter(|e| &e.uid == uid && e.hub.is_live())?;
        let (gop, rx) = entry.hub.subscribe();
        let mut first = BTreeMap::new();
        for f in &gop {
            first.entry(f.track).or_insert(f.dts + i64::from(f.cts));
        }
        Some(((entry, gop, rx), first))
    }

    fn rejected(&self, reason: &'static str) {
        self.app.metrics.rejected.with_label_values(&[reason]).inc();
    }

    async fn viewer_secret(&self) -> Option<Vec<u8>> {
        self.app
            .secrets
            .get(&self.app.db, crate::auth::viewer::SECRET)
            .await
            .ok()
            .map(|s| s.to_vec())
    }

    async fn authorize_key(&self, name: &str, key: &str) -> Option<Authorized> {
        stream_keys::authorize_publish(&self.app.db, &format!("{name}?key={key}"))
            .await
            .ok()
    }

    async fn digest_ha1(&self, name: &str) -> Option<(Authorized, String)> {
        stream_keys::authorized_by_digest(&self.app.db, name)
            .await
            .ok()
            .flatten()
    }

    async fn offers_digest(&self, name: &str) -> bool {
        match stream_keys::stored_digest_ha1(&self.app.db, name).await {
            Ok(Some(_)) => true,
            Ok(None) => !stream_keys::exists(&self.app.db, name)
                .await
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    async fn udp_pair(&mut self) -> Option<(u16, u16)> {
        if self.udp.len() >= MAX_UDP_PAIRS {
            warn!("RTSP connection holds {MAX_UDP_PAIRS} UDP port pairs; refusing another");
            return None;
        }
        let (rtp, rtcp) = match udp_pair(self.local, self.app.cfg.rtsp.udp_ports).await {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "binding an RTP/RTCP port pair failed");
                return None;
            }
        };
        let ports = (
            rtp.local_addr().ok()?.port(),
            rtcp.local_addr().ok()?.port(),
        );
        self.udp.insert(ports.0, (Arc::new(rtp), Arc::new(rtcp)));
        tracing::debug!(rtp = ports.0, rtcp = ports.1, "RTP/RTCP port pair bound");
        Some(ports)
    }

    fn release_udp(&mut self, rtp: u16) {
        self.udp.remove(&rtp);
    }

    async fn claim(
        &mut self,
        who: &Authorized,
        peer: SocketAddr,
    ) -> Result<(Publisher, IngestMeter, Lease), ClaimRefused> {
        let holder = Holder::Publisher {
            key_hash: who.key_hash.clone(),
        };
        let lease = self
            .app
            .registry
            .lease(&who.uid, holder)
            .await
            .map_err(|_| (StatusCode::Forbidden, "Stream Key Changed"))?;
        let entry = self
            .app
            .open_stream(&who.uid)
            .await
            .map_err(|_| (StatusCode::NotFound, "No Such Stream"))?;
        let publisher = entry.hub.publish(&format!("rtsp://{peer}")).map_err(|e| {
            warn!(error = %e, "RTSP publish refused");
            self.rejected("already_publishing");
            (StatusCode::Forbidden, "Stream Already Has A Publisher")
        })?;
        Ok((
            publisher,
            IngestMeter::new(&self.app.metrics, &entry.name),
            lease,
        ))
    }
}

async fn connection(
    sock: TcpStream,
    peer: SocketAddr,
    app: App,
    _slot: Slot,
) -> Result<(), RtspError> {
    sock.set_nodelay(true)?;
    socket2::SockRef::from(&sock).set_send_buffer_size(SEND_BUFFER)?;
    let local = sock.local_addr()?;
    let (mut rd, mut wr) = sock.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let mut session = Session::new(local, peer, app.cfg.rtsp.idle_timeout as u64);
    let mut conn = Conn {
        request_timeout: Duration::from_secs_f64(app.cfg.rtsp.request_timeout),
        idle_timeout: Duration::from_secs_f64(app.cfg.rtsp.idle_timeout),
        peer,
        tx,
        hang_up: Arc::new(tokio::sync::Notify::new()),
        ended: Arc::default(),
        playing: None,
        lease: None,
        udp_in: None,
        udp_tasks: Vec::new(),
    };
    let mut host = ServerHost {
        app,
        local,
        udp: HashMap::new(),
    };
    let result = conn.read_loop(&mut rd, &mut session, &mut host).await;
    conn.stop_playing();
    conn.stop_udp();
    session.close(&mut host);
    drop(conn);
    drop(host);
    // Let queued responses (a 400, a TEARDOWN's 200) reach the peer.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    result
}

/// What the transport runs for the connection's session.
struct Conn {
    peer: SocketAddr,
    tx: mpsc::Sender<Bytes>,
    /// Signalled by the player's task when the connection must close: the publisher
    /// left, the player could not keep up, or its lease ended. Players see the end as
    /// the socket closing (ffmpeg ignores RTCP BYE over TCP).
    hang_up: Arc<tokio::sync::Notify>,
    /// Why the player's task hung up, when the appliance ended the session.
    ended: Arc<std::sync::OnceLock<&'static str>>,
    /// The player's task, while it plays.
    playing: Option<tokio::task::JoinHandle<()>>,
    /// The publisher's hold on its stream, from RECORD on.
    lease: Option<Lease>,
    /// A request must arrive whole within this.
    request_timeout: Duration,
    /// The connection closes after this long without a byte.
    idle_timeout: Duration,
    /// RTP and RTCP a publisher sends over UDP: (track, is RTCP, packet).
    udp_in: Option<mpsc::Receiver<(usize, bool, Bytes)>>,
    udp_tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Resolves when `lease` is ended, with why; never when there is none.
async fn lease_ended(lease: &Option<Lease>) -> &'static str {
    match lease {
        Some(l) => l.ended().await,
        None => std::future::pending().await,
    }
}

/// Waits for the next UDP packet of a publisher, or for ever when there is none.
async fn next_udp(
    rx: &mut Option<mpsc::Receiver<(usize, bool, Bytes)>>,
) -> Option<(usize, bool, Bytes)> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Conn {
    async fn read_loop(
        &mut self,
        rd: &mut tokio::net::tcp::OwnedReadHalf,
        session: &mut Session,
        host: &mut ServerHost,
    ) -> Result<(), RtspError> {
        let mut buf = BytesMut::with_capacity(8192);
        let opened = tokio::time::Instant::now();
        let mut requested = false;
        let mut last_read = opened;
        // When the message now in `buf` began to arrive, while it is incomplete.
        let mut partial_since: Option<tokio::time::Instant> = None;
        loop {
            // Handle every complete message in the buffer.
            loop {
                match next_message(&mut buf) {
                    Ok(None) => break,
                    Ok(Some(Incoming::Interleaved { channel, packet })) => {
                        session.on_interleaved(channel, packet)?;
                    }
                    Ok(Some(Incoming::Ignored)) => {}
                    Ok(Some(Incoming::Request(req))) => {
                        requested = true;
                        let actions = session.handle(&req, host).await;
                        if !self.carry_out(actions, session, host).await {
                            return Ok(());
                        }
                    }
                    Err(e) => {
                        self.send(Session::bad_request()).await;
                        return Err(e.into());
                    }
                }
            }
            if buf.is_empty() {
                partial_since = None;
            } else {
                partial_since.get_or_insert_with(tokio::time::Instant::now);
            }
            // The first request, and any request begun, must arrive whole in time; and
            // something must arrive within the idle timeout.
            let (deadline, phase) = match partial_since {
                Some(t) => (t + self.request_timeout, "request"),
                None if !requested => (opened + self.request_timeout, "request"),
                None => (last_read + self.idle_timeout, "idle"),
            };
            let deadline = deadline.min(last_read + self.idle_timeout);
            tokio::select! {
                n = rd.read_buf(&mut buf) => {
                    if n? == 0 {
                        return Ok(());
                    }
                    last_read = tokio::time::Instant::now();
                }
                () = tokio::time::sleep_until(deadline) => return Err(RtspError::Timeout(phase)),
                _ = self.hang_up.notified() => {
                    return match self.ended.get() {
                        Some(why) => Err(RtspError::Ended(why)),
                        None => Ok(()),
                    };
                }
                why = lease_ended(&self.lease) => return Err(RtspError::Ended(why)),
                Some((track, rtcp, packet)) = next_udp(&mut self.udp_in) => {
                    last_read = tokio::time::Instant::now();
                    session.on_udp(track, rtcp, packet)?;
                }
                _ = tokio::time::sleep(Duration::from_secs(5)), if session.recording() => {
                    if session.publisher_silent_for().is_some_and(|d| d > PUBLISH_IDLE) {
                        return Err(RtspError::PublisherIdle);
                    }
                }
            }
        }
    }

    async fn send(&self, b: Bytes) {
        // The writer only stops when the socket failed; the reader will notice.
        let _ = self.tx.send(b).await;
    }

    /// Carries out the session's actions in order; false closes the connection.
    async fn carry_out(
        &mut self,
        actions: Vec<Action<ServerHost>>,
        session: &mut Session,
        host: &mut ServerHost,
    ) -> bool {
        for action in actions {
            match action {
                Action::Send(b) => self.send(b).await,
                Action::Play(p) => self.play(p, host),
                Action::StopPlaying => self.stop_playing(),
                Action::Hold { hold, udp } => {
                    self.lease = Some(hold);
                    self.read_udp(&udp, host);
                }
                Action::EndPublish => {
                    self.drain_udp(session).await;
                    self.stop_udp();
                    session.end_publish(host);
                    self.lease = None;
                }
                Action::Close => return false,
            }
        }
        true
    }

    /// Starts the player's task: it holds a lease on the stream while it sends, and
    /// hangs the connection up when sending ends.
    fn play(&mut self, p: Playback<Feed>, host: &ServerHost) {
        let Playback {
            feed: (entry, gop, rx),
            uid,
            grant,
            tracks,
        } = p;
        let tracks = tracks
            .into_iter()
            .filter_map(|(track, (route, packetizer, clock))| {
                let out = match route {
                    Route::Interleaved { rtp, rtcp } => Out::Interleaved { rtp, rtcp },
                    Route::Udp {
                        local_rtp,
                        to_rtp,
                        to_rtcp,
                    } => {
                        let (rtp, rtcp) = host.udp.get(&local_rtp)?.clone();
                        Out::Udp {
                            rtp,
                            rtcp,
                            to_rtp,
                            to_rtcp,
                        }
                    }
                };
                Some((track, (out, packetizer, clock)))
            })
            .collect();
        let sender = MediaSender::new(tracks, self.tx.clone(), entry.hub.origin());
        let playing = entry.viewers.playing();
        let run = sender.run(gop, rx, entry.hub.state());
        let registry = host.app.registry.clone();
        let (ended, hang_up) = (self.ended.clone(), self.hang_up.clone());
        let task = async move {
            let _playing = playing;
            // Held while playing: the registry ends it when the grounds go.
            match registry.lease(&uid, Holder::Player(grant)).await {
                Ok(lease) => tokio::select! {
                    () = run => {}
                    why = lease.ended() => {
                        let _ = ended.set(why);
                        info!(why, "RTSP player ended by the appliance");
                    }
                },
                Err(why) => {
                    let _ = ended.set(why);
                    info!(why, "RTSP player ended by the appliance");
                }
            }
            // However sending ended, the connection closes (after what is queued).
            hang_up.notify_one();
        };
        self.stop_playing();
        self.playing = Some(tokio::spawn(task.instrument(tracing::Span::current())));
    }

    fn stop_playing(&mut self) {
        if let Some(task) = self.playing.take() {
            task.abort();
        }
    }

    /// Reads the publisher's UDP ports: `(track, local RTP port)`; only datagrams from
    /// the publisher's own address are taken.
    fn read_udp(&mut self, ports: &[(usize, u16)], host: &ServerHost) {
        if ports.is_empty() {
            return;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        self.udp_in = Some(rx);
        let from = self.peer.ip();
        for &(track, port) in ports {
            let Some((rtp, rtcp)) = host.udp.get(&port).cloned() else {
                continue;
            };
            for (sock, is_rtcp) in [(rtp, false), (rtcp, true)] {
                let tx = tx.clone();
                self.udp_tasks.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok((n, addr)) = sock.recv_from(&mut buf).await {
                        if addr.ip() != from {
                            continue;
                        }
                        if tx
                            .send((track, is_rtcp, Bytes::copy_from_slice(&buf[..n])))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }));
            }
        }
    }

    /// Takes the UDP packets a publisher sent just before its TEARDOWN (which came on the
    /// faster path): until none comes for 100 ms, for at most a second.
    async fn drain_udp(&mut self, session: &mut Session) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while tokio::time::Instant::now() < deadline {
            let Some(rx) = self.udp_in.as_mut() else {
                return;
            };
            match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
                Ok(Some((track, rtcp, packet))) => {
                    if let Err(e) = session.on_udp(track, rtcp, packet) {
                        warn!(error = %e, "RTSP publisher's last packets");
                        return;
                    }
                }
                _ => return,
            }
        }
    }

    fn stop_udp(&mut self) {
        for t in self.udp_tasks.drain(..) {
            t.abort();
        }
        self.udp_in = None;
    }
}

/// Binds an even/odd UDP port pair (RTP, RTCP; RFC 3550 §11) on the address the peer
/// reached us at: within `range` (inclusive) when given, from a random even port of it
/// upwards, wrapping; else any free pair the system gives.
///
/// # Errors
/// When no pair is free (every pair of `range` tried, or 20 system picks).
async fn udp_pair(
    local: SocketAddr,
    range: Option<[u16; 2]>,
) -> std::io::Result<(UdpSocket, UdpSocket)> {
    if let Some([first, last]) = range {
        let (even, last32) = (u32::from(first) + u32::from(first % 2), u32::from(last));
        let pairs = if even < last32 {
            (last32 - even - 1) / 2 + 1
        } else {
            0
        };
        let start = if pairs > 0 {
            rand::random_range(0..pairs)
        } else {
            0
        };
        for i in 0..pairs {
            // even + 2k + 1 <= last for every k < pairs, so both fit in u16.
            let port = (even + 2 * ((start + i) % pairs)) as u16;
            let Ok(rtp) = UdpSocket::bind(SocketAddr::new(local.ip(), port)).await else {
                continue;
            };
            if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(local.ip(), port + 1)).await {
                return Ok((rtp, rtcp));
            }
        }
        return Err(std::io::Error::other(format!(
            "no free UDP port pair in {first}-{last}"
        )));
    }
    for _ in 0..20 {
        let rtp = UdpSocket::bind(SocketAddr::new(local.ip(), 0)).await?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(local.ip(), port + 1)).await {
            return Ok((rtp, rtcp));
        }
    }
    Err(std::io::Error::other("no free UDP port pair"))
}
