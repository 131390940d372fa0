//! The RTSP server (RFC 2326, RTSP 1.0): any live stream plays at
//! `rtsp://HOST:PORT/live/NAME`, over TCP-interleaved (§10.12) or UDP unicast RTP, and
//! publishers push to the same URL with ANNOUNCE and RECORD (see [`super::record`]),
//! authenticated with the stream key: `?key=`, or Basic or Digest with the stream name
//! as user name and the key as password.
//!
//! Every connection is admitted by its client address's [`ConnectionLimit`]; a request
//! must arrive whole within `rtsp.request_timeout` of its first byte (the first one within
//! that of connecting), and a connection on which nothing arrives for `rtsp.idle_timeout`
//! closes (sessions announce it as their timeout, so players keep alive sooner).
//! Publishers and players hold leases on their stream ([`Lease`]): a rotated key ends a
//! publisher, and a player without a grant is ended when its stream turns private, its
//! viewer link is revoked, or the stream is deleted.
//!
//! Message grammar comes from rtsp-types; the session logic is ours: OPTIONS, DESCRIBE,
//! SETUP (per track), PLAY, TEARDOWN, and GET_PARAMETER/SET_PARAMETER as keep-alives.
//! A new player starts at a keyframe from the hub's GOP cache. Each player has its own
//! task, hub subscription and bounded queue, and waits only for its own socket: one that
//! falls too far behind the hub resumes at the next keyframe, and one that takes nothing
//! for [`STUCK_LIMIT`] is dropped, never slowing the publisher or other players. RTCP
//! sender reports (RFC 3550 §6.4.1) map every track's RTP time to the same wall clock, so
//! players can line audio up with video.

use super::auth::{self as rtsp_auth, Credentials};
use super::record::{Arrival, Publish};
use super::rtp::Packetizer;
use super::sdp::{self, AnnounceError};
use crate::app::{App, LiveEntry};
use crate::auth::stream_keys::{self, Authorized};
use crate::connections::{ConnectionLimit, Slot};
use crate::hub::PublishState;
use crate::ingest::IngestMeter;
use crate::media::{Frame, TrackId, TrackParams};
use crate::streams::registry::{Grant, Holder, Lease};
use crate::streams::{Named, StreamUid};
use bytes::{BufMut, Bytes, BytesMut};
use rtsp_types::headers::{self, RtpLowerTransport, RtpProfile, Transport, Transports};
use rtsp_types::{Message, Method, ParseError, Request, Response, StatusCode, Version};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{broadcast, mpsc};
use tracing::{info, warn, Instrument};

/// A request larger than this (headers and body) is refused.
const MAX_REQUEST: usize = 64 * 1024;
/// Outgoing messages (mostly RTP packets of up to 1.4 KB) queued per connection before
/// media is skipped.
const QUEUE: usize = 256;
/// Kernel send buffer of an RTSP connection, in bytes: small, so that a player that
/// stops reading is noticed within seconds rather than after megabytes.
const SEND_BUFFER: usize = 256 * 1024;
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
    /// Bytes that are not an RTSP message (answered 400 first).
    #[error("malformed RTSP message")]
    Malformed,
    /// A request over [`MAX_REQUEST`] bytes (answered 400 first).
    #[error("request larger than {MAX_REQUEST} bytes")]
    TooLarge,
    /// The publisher's media could not go on.
    #[error("publisher's media: {0}")]
    Media(#[from] crate::ingest::rtp_frames::RtpMediaError),
    /// A recording publisher sent nothing for [`PUBLISH_IDLE`].
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

/// Where one track's packets go.
#[derive(Debug, Clone)]
enum Route {
    /// `$`-framed on the RTSP connection (RFC 2326 §10.12), on these channels.
    Interleaved { rtp: u8, rtcp: u8 },
    /// UDP datagrams from our socket pair to the player's ports.
    Udp {
        rtp: Arc<UdpSocket>,
        rtcp: Arc<UdpSocket>,
        to_rtp: SocketAddr,
        to_rtcp: SocketAddr,
    },
}

struct TrackSetup {
    route: Route,
    packetizer: Packetizer,
}

struct Session {
    id: String,
    entry: LiveEntry,
    /// On what grounds the player watches.
    grant: Grant,
    tracks: BTreeMap<TrackId, TrackSetup>,
    playing: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(task) = self.playing.take() {
            task.abort();
        }
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
    let mut conn = Conn {
        request_timeout: Duration::from_secs_f64(app.cfg.rtsp.request_timeout),
        idle_timeout: Duration::from_secs_f64(app.cfg.rtsp.idle_timeout),
        app,
        peer,
        local,
        tx,
        session: None,
        hang_up: Arc::new(tokio::sync::Notify::new()),
        ended: Arc::default(),
        publish: None,
        publisher: None,
        lease: None,
        nonce: format!("{:032x}", rand::random::<u128>()),
        udp_in: None,
        udp_tasks: Vec::new(),
        granted: None,
    };
    let result = conn.read_loop(&mut rd).await;
    conn.session = None;
    conn.end_publish();
    drop(conn);
    // Let queued responses (a 400, a TEARDOWN's 200) reach the peer.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    result
}

struct Conn {
    app: App,
    peer: SocketAddr,
    local: SocketAddr,
    tx: mpsc::Sender<Bytes>,
    session: Option<Session>,
    /// Signalled by the media sender when the connection must close: the publisher
    /// left, the player could not keep up, or its lease ended. Players see the end as
    /// the socket closing (ffmpeg ignores RTCP BYE over TCP).
    hang_up: Arc<tokio::sync::Notify>,
    /// Why the media sender hung up, when the appliance ended the session.
    ended: Arc<std::sync::OnceLock<&'static str>>,
    /// The publish session, from ANNOUNCE on.
    publish: Option<Publish>,
    /// Who the ANNOUNCE authenticated as.
    publisher: Option<Authorized>,
    /// The publisher's hold on its stream, from RECORD on.
    lease: Option<Lease>,
    /// A request must arrive whole within this.
    request_timeout: Duration,
    /// The connection closes after this long without a byte.
    idle_timeout: Duration,
    /// The Digest nonce issued on this connection.
    nonce: String,
    /// RTP and RTCP a publisher sends over UDP: (track, is RTCP, packet).
    udp_in: Option<mpsc::Receiver<(usize, bool, Bytes)>>,
    udp_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The private stream a viewer link (`?token=…` on DESCRIBE) opened on this
    /// connection, and the link's id.
    granted: Option<(StreamUid, i64)>,
}

/// A publisher that sends nothing for this long (over UDP, where the RTSP connection
/// itself may stay quiet) is ended.
const PUBLISH_IDLE: Duration = Duration::from_secs(30);

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
                if buf.is_empty() {
                    break;
                }
                if buf[0] == b'$' {
                    // Interleaved data (§10.12): taken without a copy.
                    if buf.len() < 4 {
                        break;
                    }
                    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
                    if buf.len() < 4 + len {
                        buf.reserve(4 + len - buf.len());
                        break;
                    }
                    let channel = buf[1];
                    let packet = buf.split_to(4 + len).freeze().slice(4..);
                    self.on_interleaved(channel, packet)?;
                    continue;
                }
                match Message::<Vec<u8>>::parse(&buf[..]) {
                    Ok((msg, used)) => {
                        let _ = buf.split_to(used);
                        match msg {
                            Message::Request(_) if used > MAX_REQUEST => {
                                self.reply_status(StatusCode::BadRequest, None).await;
                                return Err(RtspError::TooLarge);
                            }
                            Message::Request(req) => {
                                requested = true;
                                if !self.handle(req).await {
                                    return Ok(());
                                }
                            }
                            // RTCP receiver reports and the like from the player.
                            Message::Data(_) | Message::Response(_) => {}
                        }
                    }
                    Err(ParseError::Incomplete(_)) => {
                        if buf.len() > MAX_REQUEST {
                            self.reply_status(StatusCode::BadRequest, None).await;
                            return Err(RtspError::TooLarge);
                        }
                        break;
                    }
                    Err(ParseError::Error) => {
                        self.reply_status(StatusCode::BadRequest, None).await;
                        return Err(RtspError::Malformed);
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
                    if let Some(p) = self.publish.as_mut() {
                        p.on_packet(track, rtcp, packet)?;
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(5)), if self.publish.as_ref().is_some_and(|p| p.recording()) => {
                    if self.publish.as_ref().is_some_and(|p| p.last_packet.elapsed() > PUBLISH_IDLE) {
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

    async fn reply<B: AsRef<[u8]>>(&self, resp: Response<B>) {
        let mut out = Vec::new();
        if resp.write(&mut out).is_ok() {
            self.send(Bytes::from(out)).await;
        }
    }

    async fn reply_status(&self, status: StatusCode, cseq: Option<&str>) {
        let mut b = Response::builder(Version::V1_0, status);
        if let Some(c) = cseq {
            b = b.header(headers::CSEQ, c);
        }
        self.reply(b.empty()).await;
    }

    /// Handles one request; false ends the connection.
    async fn handle(&mut self, req: Request<Vec<u8>>) -> bool {
        tracing::debug!(
            method = ?req.method(),
            uri = ?req.request_uri().map(|u| u.as_str()),
            session = ?req.header(&headers::SESSION).map(|v| v.as_str()),
            "RTSP request"
        );
        let cseq = req.header(&headers::CSEQ).map(|v| v.as_str().to_string());
        let Some(cseq) = cseq else {
            self.reply_status(StatusCode::BadRequest, None).await;
            return false;
        };
        let base =
            Response::builder(Version::V1_0, StatusCode::Ok).header(headers::CSEQ, cseq.as_str());
        let status_only =
            |status| Response::builder(Version::V1_0, status).header(headers::CSEQ, cseq.as_str());
        match req.method() {
            Method::Options => {
                let r = base
                    .header(
                        headers::PUBLIC,
                        "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER, ANNOUNCE, RECORD",
                    )
                    .empty();
                self.reply(r).await;
                true
            }
            Method::Describe => {
                let Some((name, _)) = target(&req) else {
                    self.reply(status_only(StatusCode::NotFound).empty()).await;
                    return true;
                };
                let entry = match self.live(&req, &name).await {
                    Ok((e, _)) => e,
                    Err(status) => {
                        self.reply(status_only(status).empty()).await;
                        return true;
                    }
                };
                tracing::Span::current().record("stream", name.as_str());
                let params = entry.hub.params();
                let id = rand::random::<u32>();
                let sdp = sdp::describe(&params, u64::from(id));
                let content_base = format!("rtsp://{}/live/{name}/", self.host(&req));
                let r = base
                    .header(headers::CONTENT_TYPE, "application/sdp")
                    .header(headers::CONTENT_BASE, content_base.as_str())
                    .build(sdp.into_bytes());
                self.reply(r).await;
                true
            }
            Method::Announce => {
                let r = match self.announce(&req).await {
                    Ok(()) => base.empty(),
                    Err((status, reason, challenge)) => {
                        let mut b = status_only(status);
                        if let Some(c) = &challenge {
                            b = b.header(headers::WWW_AUTHENTICATE, c.as_str());
                        }
                        let mut r = b.empty();
                        if let Some(reason) = reason {
                            r.set_reason_phrase(reason);
                        }
                        r
                    }
                };
                self.reply(r).await;
                true
            }
            Method::Record => {
                let r = match self.record(&req).await {
                    Ok(id) => base.header(headers::SESSION, id.as_str()).empty(),
                    Err((status, reason)) => {
                        let mut r = status_only(status).empty();
                        if let Some(reason) = reason {
                            r.set_reason_phrase(reason);
                        }
                        r
                    }
                };
                self.reply(r).await;
                true
            }
            Method::Setup => {
                let result = if self.publish.is_some() {
                    self.setup_record(&req).await
                } else {
                    self.setup(&req).await.map(|t| {
                        (
                            t,
                            self.session
                                .as_ref()
                                .map_or(String::new(), |s| s.id.clone()),
                        )
                    })
                };
                match result {
                    Ok((transport, id)) => {
                        let session = format!("{id};timeout={}", self.idle_timeout.as_secs());
                        let r = base
                            .header(headers::SESSION, session.as_str())
                            .header(headers::TRANSPORT, transport.as_str())
                            .empty();
                        self.reply(r).await;
                    }
                    Err(status) => self.reply(status_only(status).empty()).await,
                }
                true
            }
            Method::Play => {
                if let Err(status) = self.check_session(&req) {
                    self.reply(status_only(status).empty()).await;
                    return true;
                }
                let (rtp_info, start) = self.play(&req);
                let r = base
                    .header(
                        headers::SESSION,
                        self.session.as_ref().map_or("", |s| s.id.as_str()),
                    )
                    .header(headers::RANGE, "npt=0.000-")
                    .header(headers::RTP_INFO, rtp_info.as_str())
                    .empty();
                // The reply goes first: players skip interleaved data that arrives
                // before it, and would lose the first sender reports and keyframe.
                self.reply(r).await;
                if let (Some(start), Some(s)) = (start, &mut self.session) {
                    s.playing = Some(tokio::spawn(start.instrument(tracing::Span::current())));
                    info!("playing");
                }
                true
            }
            Method::Teardown if self.publish.is_some() => {
                info!("publisher sent TEARDOWN");
                self.drain_udp().await;
                self.end_publish();
                self.reply(base.empty()).await;
                true
            }
            Method::Teardown => {
                let ok = self.check_session(&req).is_ok();
                self.session = None;
                let status = if ok {
                    StatusCode::Ok
                } else {
                    StatusCode::SessionNotFound
                };
                self.reply(status_only(status).empty()).await;
                // The connection stays open: a player may set up a new session on it.
                true
            }
            Method::GetParameter | Method::SetParameter => {
                self.reply(base.empty()).await;
                true
            }
            _ => {
                self.reply(status_only(StatusCode::NotImplemented).empty())
                    .await;
                true
            }
        }
    }

    /// Interleaved data on `channel`: a publisher's RTP or RTCP (a player's RTCP
    /// receiver reports are ignored).
    fn on_interleaved(&mut self, channel: u8, packet: Bytes) -> Result<(), RtspError> {
        if let Some(p) = self.publish.as_mut() {
            if let Some((track, rtcp)) = p.channel(channel) {
                p.on_packet(track, rtcp, packet)?;
            }
        }
        Ok(())
    }

    /// Takes the UDP packets a publisher sent just before its TEARDOWN (which came on the
    /// faster path): until none comes for 100 ms, for at most a second.
    async fn drain_udp(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while tokio::time::Instant::now() < deadline {
            let Some(rx) = self.udp_in.as_mut() else {
                return;
            };
            match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
                Ok(Some((track, rtcp, packet))) => {
                    if let Some(p) = self.publish.as_mut() {
                        if let Err(e) = p.on_packet(track, rtcp, packet) {
                            warn!(error = %e, "RTSP publisher's last packets");
                            return;
                        }
                    }
                }
                _ => return,
            }
        }
    }

    /// Ends the publish session, if any: the stream is released.
    fn end_publish(&mut self) {
        for t in self.udp_tasks.drain(..) {
            t.abort();
        }
        self.udp_in = None;
        if let Some(mut p) = self.publish.take() {
            if p.recording() {
                info!(stream = %p.name, "RTSP publisher left");
            }
            p.finish();
        }
        self.lease = None;
    }

    /// ANNOUNCE: authenticates the publisher and reads its SDP. The error is the status,
    /// a reason phrase, and a WWW-Authenticate challenge.
    async fn announce(
        &mut self,
        req: &Request<Vec<u8>>,
    ) -> Result<(), (StatusCode, Option<String>, Option<String>)> {
        let Some((name, None)) = target(req) else {
            return Err((StatusCode::NotFound, None, None));
        };
        if self.session.is_some() || self.publish.as_ref().is_some_and(|p| p.recording()) {
            return Err((StatusCode::MethodNotValidInThisState, None, None));
        }
        let refuse = |reason: &str| {
            self.app.metrics.rejected.with_label_values(&[reason]).inc();
        };
        let tried = req.header(&headers::AUTHORIZATION).is_some()
            || req.request_uri().and_then(|u| u.query()).is_some();
        let authorized = if stream_keys::valid_name(&name) {
            self.authorized(req, &name).await
        } else {
            None
        };
        let Some(authorized) = authorized else {
            if tried {
                warn!(stream = %name, "RTSP publish refused: unknown or wrong stream key");
                refuse("bad_key");
            } else {
                // Clients send credentials only once challenged.
                tracing::debug!(stream = %name, "RTSP publisher challenged for the stream key");
            }
            // Digest unless the stream exists from before Digest (Basic still works).
            let digest = match stream_keys::stored_digest_ha1(&self.app.db, &name).await {
                Ok(Some(_)) => true,
                Ok(None) => !stream_keys::exists(&self.app.db, &name)
                    .await
                    .unwrap_or(false),
                Err(_) => false,
            };
            let challenge = rtsp_auth::challenge(&self.nonce, digest);
            return Err((StatusCode::Unauthorized, None, Some(challenge)));
        };
        let announced = match sdp::parse_announce(req.body()) {
            Ok(m) => m,
            Err(e) => {
                warn!(stream = %name, error = %e, "RTSP publish refused");
                let status = match e {
                    AnnounceError::Unsupported(_) | AnnounceError::TooMany(_) => {
                        refuse("unsupported_codec");
                        StatusCode::UnsupportedMediaType
                    }
                    AnnounceError::Parse(_) | AnnounceError::NoMedia => {
                        refuse("bad_media");
                        StatusCode::BadRequest
                    }
                };
                return Err((status, Some(e.to_string()), None));
            }
        };
        let publish = Publish::new(&name, announced).map_err(|e| {
            warn!(stream = %name, error = %e, "RTSP publish refused");
            refuse("unsupported_codec");
            (StatusCode::UnsupportedMediaType, Some(e.to_string()), None)
        })?;
        if let Some(entry) = self.app.stream(&name) {
            if let PublishState::Live { peer, .. } = &*entry.hub.state().borrow() {
                warn!(stream = %name, holder = %peer, "RTSP publish refused: the stream already has a publisher");
                refuse("already_publishing");
                return Err((
                    StatusCode::Forbidden,
                    Some("Stream Already Has A Publisher".into()),
                    None,
                ));
            }
        }
        self.end_publish();
        self.publish = Some(publish);
        self.publisher = Some(authorized);
        tracing::Span::current().record("stream", name.as_str());
        info!("RTSP publisher announced");
        Ok(())
    }

    /// Who the request authenticates as, when it carries the stream key of `name`:
    /// `?key=` in the URL, or Basic or Digest credentials with the key as password.
    async fn authorized(&self, req: &Request<Vec<u8>>, name: &str) -> Option<Authorized> {
        let db = &self.app.db;
        let query_key = req.request_uri().and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "key")
                .map(|(_, v)| v.into_owned())
        });
        let with_key = |key: String| async move {
            stream_keys::authorize_publish(db, &format!("{name}?key={key}"))
                .await
                .ok()
        };
        if let Some(key) = query_key {
            return with_key(key).await;
        }
        let credentials = req
            .header(&headers::AUTHORIZATION)
            .and_then(|v| rtsp_auth::parse_authorization(v.as_str()));
        match credentials {
            Some(Credentials::Basic { password, .. }) => with_key(password).await,
            Some(Credentials::Digest(d)) => {
                let uri_ok = req
                    .request_uri()
                    .is_some_and(|u| u.as_str() == d.uri || u.path() == d.uri);
                let Ok(Some((who, ha1))) = stream_keys::authorized_by_digest(db, name).await else {
                    return None;
                };
                (d.username == name
                    && uri_ok
                    && rtsp_auth::digest_matches(&ha1, "ANNOUNCE", &self.nonce, &d))
                .then_some(who)
            }
            None => None,
        }
    }

    /// SETUP of a publisher's track (`mode=record`): returns the Transport reply and the
    /// session ID.
    async fn setup_record(
        &mut self,
        req: &Request<Vec<u8>>,
    ) -> Result<(String, String), StatusCode> {
        let local = self.local;
        let Some(p) = self.publish.as_mut() else {
            return Err(StatusCode::MethodNotValidInThisState);
        };
        if p.recording() {
            return Err(StatusCode::MethodNotValidInThisState);
        }
        let uri = req
            .request_uri()
            .map(|u| u.as_str().to_string())
            .unwrap_or_default();
        let index = p.track_for(&uri).ok_or(StatusCode::NotFound)?;
        let transports: Transports = req
            .typed_header::<Transports>()
            .map_err(|_| StatusCode::BadRequest)?
            .ok_or(StatusCode::BadRequest)?;
        for t in transports.iter() {
            let Transport::Rtp(rtp) = t else { continue };
            if rtp.profile != RtpProfile::Avp
                || rtp
                    .params
                    .mode
                    .iter()
                    .any(|m| *m != headers::TransportMode::Record)
            {
                continue;
            }
            match rtp.lower_transport {
                Some(RtpLowerTransport::Tcp) => {
                    let i = index as u8;
                    let (a, b) = rtp.params.interleaved.unwrap_or((i * 2, Some(i * 2 + 1)));
                    let b = b.unwrap_or(a.wrapping_add(1));
                    if a == b
                        || [a, b]
                            .iter()
                            .any(|c| p.channel(*c).is_some_and(|(t, _)| t != index))
                    {
                        return Err(StatusCode::UnsupportedTransport);
                    }
                    p.set_arrival(index, Arrival::Interleaved(a, b));
                    return Ok((
                        format!("RTP/AVP/TCP;unicast;interleaved={a}-{b};mode=record"),
                        p.session_id.clone(),
                    ));
                }
                Some(RtpLowerTransport::Udp) | None => {
                    let Some((cp, cq)) = rtp.params.client_port else {
                        continue;
                    };
                    let cq = cq.unwrap_or(cp.wrapping_add(1));
                    let (rtp_sock, rtcp_sock) = udp_pair(local)
                        .await
                        .map_err(|_| StatusCode::InternalServerError)?;
                    let port = |s: &UdpSocket| s.local_addr().map(|a| a.port()).unwrap_or(0);
                    let (sp, sq) = (port(&rtp_sock), port(&rtcp_sock));
                    p.set_arrival(index, Arrival::Udp(Arc::new(rtp_sock), Arc::new(rtcp_sock)));
                    return Ok((
                        format!("RTP/AVP;unicast;client_port={cp}-{cq};server_port={sp}-{sq};mode=record"),
                        p.session_id.clone(),
                    ));
                }
                Some(_) => continue,
            }
        }
        Err(StatusCode::UnsupportedTransport)
    }

    /// RECORD: claims the stream and starts taking media. Returns the session ID, or the
    /// status and a reason phrase.
    async fn record(
        &mut self,
        req: &Request<Vec<u8>>,
    ) -> Result<String, (StatusCode, Option<String>)> {
        let Some(p) = self.publish.as_mut() else {
            return Err((StatusCode::MethodNotValidInThisState, None));
        };
        let given = session_id(req);
        if given.as_deref() != Some(p.session_id.as_str()) {
            return Err((StatusCode::SessionNotFound, None));
        }
        if p.recording() {
            return Ok(p.session_id.clone());
        }
        if !p.all_set_up() {
            return Err((
                StatusCode::MethodNotValidInThisState,
                Some("Set Up Every Track First".into()),
            ));
        }
        let Some(who) = self.publisher.clone() else {
            return Err((StatusCode::MethodNotValidInThisState, None));
        };
        let holder = Holder::Publisher {
            key_hash: who.key_hash,
        };
        let lease = match self.app.registry.lease(&who.uid, holder).await {
            Ok(l) => l,
            Err(why) => {
                warn!(why, "RTSP publish refused");
                return Err((StatusCode::Forbidden, Some("Stream Key Changed".into())));
            }
        };
        let gone = || (StatusCode::NotFound, Some("No Such Stream".to_string()));
        let entry = self.app.open_stream(&who.uid).await.map_err(|_| gone())?;
        // The borrow of the publish session, taken again after the awaits.
        let Some(p) = self.publish.as_mut() else {
            return Err((StatusCode::MethodNotValidInThisState, None));
        };
        let publisher = entry
            .hub
            .publish(&format!("rtsp://{}", self.peer))
            .map_err(|e| {
                warn!(error = %e, "RTSP publish refused");
                self.app
                    .metrics
                    .rejected
                    .with_label_values(&["already_publishing"])
                    .inc();
                (
                    StatusCode::Forbidden,
                    Some("Stream Already Has A Publisher".to_string()),
                )
            })?;
        p.start(publisher, IngestMeter::new(&self.app.metrics, &entry.name));
        let sockets = p.udp_sockets();
        let id = p.session_id.clone();
        self.lease = Some(lease);
        if !sockets.is_empty() {
            let (tx, rx) = mpsc::channel(QUEUE);
            self.udp_in = Some(rx);
            let from = self.peer.ip();
            for (track, rtp, rtcp) in sockets {
                for (sock, is_rtcp) in [(rtp, false), (rtcp, true)] {
                    let tx = tx.clone();
                    self.udp_tasks.push(tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        while let Ok((n, addr)) = sock.recv_from(&mut buf).await {
                            // Only the publisher's address may feed its stream.
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
        info!("RTSP publisher recording");
        Ok(id)
    }

    /// The host (and port) the player used, for Content-Base.
    fn host(&self, req: &Request<Vec<u8>>) -> String {
        req.request_uri()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_string(),
                })
            })
            .unwrap_or_else(|| self.local.to_string())
    }

    /// The live entry a player asks for, and the grant it watches on: 404 when it is no
    /// stream or not live, 403 when it is private and neither this request nor an
    /// earlier one on the connection carried a valid viewer link token
    /// (`rtsp://…/live/NAME?token=…`).
    async fn live(
        &mut self,
        req: &Request<Vec<u8>>,
        name: &str,
    ) -> Result<(LiveEntry, Grant), StatusCode> {
        let named: Arc<Named> = self
            .app
            .registry
            .directory()
            .by_name(name)
            .cloned()
            .ok_or(StatusCode::NotFound)?;
        let now = crate::db::unix_now();
        let dir = self.app.registry.directory();
        let granted = self
            .granted
            .as_ref()
            .filter(|(uid, id)| *uid == named.uid && dir.link_opens(*id, uid, now))
            .map(|(_, id)| *id);
        let grant = match (named.private, granted) {
            (false, _) => Grant::Public,
            (true, Some(id)) => Grant::Link(id),
            (true, None) => {
                let token = req.request_uri().and_then(|u| {
                    u.query_pairs()
                        .find(|(k, _)| k == "token")
                        .map(|(_, v)| v.into_owned())
                });
                let Some(token) = token else {
                    return Err(StatusCode::Forbidden);
                };
                let secret = crate::db::secret(&self.app.db, crate::auth::viewer::SECRET)
                    .await
                    .map_err(|_| StatusCode::InternalServerError)?;
                let checked = crate::auth::viewer::check(&secret, &named.uid, &token, now)
                    .and_then(|id| {
                        if dir.link_opens(id, &named.uid, now) {
                            Ok(id)
                        } else {
                            Err(crate::auth::viewer::LinkError::Revoked)
                        }
                    });
                match checked {
                    Ok(id) => {
                        self.granted = Some((named.uid.clone(), id));
                        Grant::Link(id)
                    }
                    Err(e) => {
                        info!(stream = name, error = %e, "RTSP viewer link refused");
                        return Err(StatusCode::Forbidden);
                    }
                }
            }
        };
        let entry = self.app.stream(name).ok_or(StatusCode::NotFound)?;
        if entry.hub.is_live() && !entry.hub.params().is_empty() {
            Ok((entry, grant))
        } else {
            Err(StatusCode::NotFound)
        }
    }

    fn check_session(&self, req: &Request<Vec<u8>>) -> Result<(), StatusCode> {
        let Some(s) = &self.session else {
            return Err(StatusCode::MethodNotValidInThisState);
        };
        let given = session_id(req);
        match given {
            Some(id) if id == s.id => Ok(()),
            _ => Err(StatusCode::SessionNotFound),
        }
    }

    async fn setup(&mut self, req: &Request<Vec<u8>>) -> Result<String, StatusCode> {
        let (name, track) = target(req).ok_or(StatusCode::NotFound)?;
        let track = track.ok_or(StatusCode::NotFound)?;
        if let Some(s) = &self.session {
            self.check_session(req)?;
            if s.playing.is_some() {
                return Err(StatusCode::MethodNotValidInThisState);
            }
            if s.entry.hub.name() != name {
                return Err(StatusCode::AggregateOperationNotAllowed);
            }
        }
        let (entry, grant) = match &self.session {
            Some(s) => (s.entry.clone(), s.grant),
            None => self.live(req, &name).await?,
        };
        let params = entry.hub.params();
        if !params.contains_key(&track) {
            return Err(StatusCode::NotFound);
        }
        let transports: Transports = req
            .typed_header::<Transports>()
            .map_err(|_| StatusCode::BadRequest)?
            .ok_or(StatusCode::BadRequest)?;
        let ssrc = rand::random::<u32>();
        let mut chosen = None;
        for t in transports.iter() {
            let Transport::Rtp(rtp) = t else { continue };
            if rtp.profile != RtpProfile::Avp {
                continue;
            }
            let index = track_index(track);
            match rtp.lower_transport {
                Some(RtpLowerTransport::Tcp) => {
                    let (a, b) = rtp
                        .params
                        .interleaved
                        .unwrap_or((index * 2, Some(index * 2 + 1)));
                    let b = b.unwrap_or(a.wrapping_add(1));
                    chosen = Some((
                        Route::Interleaved { rtp: a, rtcp: b },
                        format!("RTP/AVP/TCP;unicast;interleaved={a}-{b};ssrc={ssrc:08X}"),
                    ));
                    break;
                }
                Some(RtpLowerTransport::Udp) | None => {
                    let Some((p, q)) = rtp.params.client_port else {
                        continue;
                    };
                    let q = q.unwrap_or(p.wrapping_add(1));
                    let Ok((rtp_sock, rtcp_sock)) = udp_pair(self.local).await else {
                        return Err(StatusCode::InternalServerError);
                    };
                    let (sp, sq) = (
                        rtp_sock.local_addr().map(|a| a.port()).unwrap_or(0),
                        rtcp_sock.local_addr().map(|a| a.port()).unwrap_or(0),
                    );
                    chosen = Some((
                        Route::Udp {
                            rtp: Arc::new(rtp_sock),
                            rtcp: Arc::new(rtcp_sock),
                            to_rtp: SocketAddr::new(self.peer.ip(), p),
                            to_rtcp: SocketAddr::new(self.peer.ip(), q),
                        },
                        format!("RTP/AVP;unicast;client_port={p}-{q};server_port={sp}-{sq};ssrc={ssrc:08X}"),
                    ));
                    break;
                }
                Some(_) => continue,
            }
        }
        let (route, reply) = chosen.ok_or(StatusCode::UnsupportedTransport)?;
        let setup = TrackSetup {
            route,
            packetizer: Packetizer::new(
                sdp::payload_type(track),
                ssrc,
                rand::random(),
                rand::random(),
            ),
        };
        let session = self.session.get_or_insert_with(|| Session {
            id: format!("{:016X}", rand::random::<u64>()),
            entry,
            grant,
            tracks: BTreeMap::new(),
            playing: None,
        });
        session.tracks.insert(track, setup);
        Ok(reply)
    }

    /// Prepares sending: returns the RTP-Info header value, and (unless already playing)
    /// the sender to spawn once the reply is queued.
    fn play(
        &mut self,
        req: &Request<Vec<u8>>,
    ) -> (
        String,
        Option<impl std::future::Future<Output = ()> + Send + 'static>,
    ) {
        let Some(s) = &mut self.session else {
            return (String::new(), None);
        };
        let base = req
            .request_uri()
            .map(|u| u.as_str().trim_end_matches('/').to_string())
            .unwrap_or_default();
        let origin = s.entry.hub.origin();
        let (gop, rx) = s.entry.hub.subscribe();
        // RTP-Info: the first packet's sequence number and timestamp per track.
        let first = |track: TrackId| gop.iter().find(|f| f.track == track);
        let mut info = Vec::new();
        for (track, t) in &s.tracks {
            let ticks = first(*track).map_or(0, |f| f.dts + i64::from(f.cts));
            info.push(format!(
                "url={base}/{};seq={};rtptime={}",
                track.name(),
                t.packetizer.next_sequence(),
                t.packetizer.rtp_time(ticks)
            ));
        }
        let mut start = None;
        if s.playing.is_none() {
            let params = s.entry.hub.params();
            let tracks: BTreeMap<TrackId, (Route, Packetizer, u32)> = s
                .tracks
                .iter()
                .map(|(k, t)| {
                    let clock = params.get(k).map_or(90_000, |p| p.timescale());
                    (*k, (t.route.clone(), t.packetizer.clone(), clock))
                })
                .collect();
            let sender = MediaSender {
                tracks,
                tx: self.tx.clone(),
                hang_up: self.hang_up.clone(),
                origin,
                waiting_for_keyframe: false,
            };
            let playing = s.entry.viewers.playing();
            let run = sender.run(gop, rx, s.entry.hub.state());
            let (registry, uid, grant) = (self.app.registry.clone(), s.entry.uid.clone(), s.grant);
            let (ended, hang_up) = (self.ended.clone(), self.hang_up.clone());
            start = Some(async move {
                let _playing = playing;
                // Held while playing: the registry ends it when the grounds go.
                let why = match registry.lease(&uid, Holder::Player(grant)).await {
                    Ok(lease) => tokio::select! {
                        () = run => return,
                        why = lease.ended() => why,
                    },
                    Err(why) => why,
                };
                let _ = ended.set(why);
                info!(why, "RTSP player ended by the appliance");
                hang_up.notify_one();
            });
        }
        (info.join(","), start)
    }
}

/// The session ID of a request's `Session` header, without its parameters.
fn session_id(req: &Request<Vec<u8>>) -> Option<String> {
    req.header(&headers::SESSION).map(|v| {
        v.as_str()
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    })
}

/// `(stream, track)` from a request URL `…/live/NAME[/TRACK]`.
fn target(req: &Request<Vec<u8>>) -> Option<(String, Option<TrackId>)> {
    let url = req.request_uri()?;
    let mut parts = url.path().trim_matches('/').split('/');
    if parts.next()? != "live" {
        return None;
    }
    let name = parts.next()?.to_string();
    let track = match parts.next() {
        None | Some("") => None,
        Some(t) => Some(TrackId::from_name(t)?),
    };
    if parts.next().is_some() {
        return None;
    }
    Some((name, track))
}

fn track_index(track: TrackId) -> u8 {
    match track {
        TrackId::Video => 0,
        TrackId::Audio => 1,
    }
}

/// Binds an even/odd UDP port pair (RTP, RTCP) on the address the player reached us at.
async fn udp_pair(local: SocketAddr) -> std::io::Result<(UdpSocket, UdpSocket)> {
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

/// Sends one player's media: packetizes frames from the hub and routes them.
struct MediaSender {
    /// Per track: where packets go, the packetizer, and the RTP clock rate (Hz).
    tracks: BTreeMap<TrackId, (Route, Packetizer, u32)>,
    tx: mpsc::Sender<Bytes>,
    hang_up: Arc<tokio::sync::Notify>,
    origin: SystemTime,
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
    async fn run(
        mut self,
        gop: Vec<Arc<Frame>>,
        rx: broadcast::Receiver<Arc<Frame>>,
        state: tokio::sync::watch::Receiver<PublishState>,
    ) {
        if self.send_all(gop, rx, state).await {
            // A TEARDOWN in the meantime ends the session, and this task with it.
            tokio::time::sleep(BYE_GRACE).await;
        }
        // However sending ended, the connection closes (after what is queued).
        self.hang_up.notify_one();
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
        let Some((route, packetizer, _)) = self.tracks.get_mut(&f.track) else {
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
        let route = route.clone();
        for p in packets {
            match self.route_packet(&route, false, p).await {
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
    async fn route_packet(&self, route: &Route, rtcp: bool, p: Bytes) -> Sent {
        let sent = match route {
            Route::Interleaved { rtp, rtcp: rtcp_ch } => {
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
            Route::Udp {
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
        let reports: Vec<(Route, Bytes)> = self
            .tracks
            .values()
            .map(|(route, p, clock)| {
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
                (route.clone(), b.freeze())
            })
            .collect();
        for (route, b) in reports {
            let _ = self.route_packet(&route, true, b).await;
        }
    }

    /// RTCP BYE (RFC 3550 §6.6) on every track.
    async fn bye(&self) {
        for (route, p, _) in self.tracks.values() {
            let mut b = BytesMut::with_capacity(8);
            b.put_u8(0x81);
            b.put_u8(203);
            b.put_u16(1);
            b.put_u32(p.ssrc());
            let _ = self.route_packet(route, true, b.freeze()).await;
        }
    }
}
