//! One RTSP connection's session logic (RFC 2326, RTSP 1.0), without I/O, as rml_rtmp's
//! server session is: the transport ([`super::server`]) cuts what it reads into
//! messages ([`next_message`]), hands each request to [`Session::handle`] and carries
//! out the [`Action`]s it returns in order (bytes to write, a player to start or stop,
//! a publisher's hold on its stream to keep); interleaved packets go to
//! [`Session::on_interleaved`]. What the session must know of the appliance (the
//! stream directory, stream keys, live streams, UDP ports) it asks its [`Host`]. So the
//! whole state machine is unit-tested and fuzzed without a socket.
//!
//! Methods: OPTIONS, DESCRIBE, SETUP (per track), PLAY, TEARDOWN for players (§10.2,
//! §10.4, §10.5, §10.7); ANNOUNCE, SETUP with `mode=record`, RECORD, TEARDOWN for
//! publishers (§10.3, §10.11); GET_PARAMETER and SET_PARAMETER as keep-alives (§10.8,
//! §10.9). Transports: RTP/AVP over UDP unicast, or interleaved on the connection
//! (RTP/AVP/TCP, §10.12). Publishers authenticate with the stream key: `?key=`, or
//! Basic or Digest (RFC 2617) with the stream name as user name and the key as
//! password; private streams play with a viewer link's `?token=`.

use super::auth::{self as rtsp_auth, Credentials};
use super::rtp::Packetizer;
use super::sdp::{self, AnnounceError};
use crate::auth::stream_keys::{self, Authorized};
use crate::hub::Publisher;
use crate::ingest::rtsp_push::{Arrival, Publish};
use crate::ingest::IngestMeter;
use crate::media::{TrackId, TrackParams};
use crate::streams::registry::Grant;
use crate::streams::{Named, StreamUid};
use bytes::{Bytes, BytesMut};
use rtsp_types::headers::{self, RtpLowerTransport, RtpProfile, Transport, Transports};
use rtsp_types::{Message, Method, ParseError, Request, Response, StatusCode, Version};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::{info, warn};

/// A request larger than this (headers and body), in bytes, is refused.
pub const MAX_REQUEST: usize = 64 * 1024;

/// What the methods a player or publisher may use, as OPTIONS lists them.
const PUBLIC: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER, ANNOUNCE, RECORD";

/// One message from the connection.
#[derive(Debug)]
pub enum Incoming {
    /// A request.
    Request(Request<Vec<u8>>),
    /// `$`-framed data (§10.12) on `channel`: a publisher's RTP or RTCP, or a player's
    /// RTCP receiver reports.
    Interleaved {
        /// The interleaved channel.
        channel: u8,
        /// The packet, without its 4-byte frame header.
        packet: Bytes,
    },
    /// A response or other message a server has no use for.
    Ignored,
}

/// Why the bytes on a connection cannot be read on; the transport answers 400
/// ([`Session::bad_request`]) and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Bytes that are not an RTSP message.
    #[error("malformed RTSP message")]
    Malformed,
    /// A request over [`MAX_REQUEST`] bytes.
    #[error("request larger than {MAX_REQUEST} bytes")]
    TooLarge,
}

/// Takes the next whole message off the front of `buf`: `None` until one has arrived
/// whole. Interleaved packets are taken without a copy.
///
/// # Errors
/// [`FramingError`]; what is left in `buf` is then of no use.
pub fn next_message(buf: &mut BytesMut) -> Result<Option<Incoming>, FramingError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] == b'$' {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if buf.len() < 4 + len {
            buf.reserve(4 + len - buf.len());
            return Ok(None);
        }
        let channel = buf[1];
        let packet = buf.split_to(4 + len).freeze().slice(4..);
        return Ok(Some(Incoming::Interleaved { channel, packet }));
    }
    match Message::<Vec<u8>>::parse(&buf[..]) {
        Ok((msg, used)) => {
            let _ = buf.split_to(used);
            match msg {
                Message::Request(_) if used > MAX_REQUEST => Err(FramingError::TooLarge),
                Message::Request(req) => Ok(Some(Incoming::Request(req))),
                Message::Data(_) | Message::Response(_) => Ok(Some(Incoming::Ignored)),
            }
        }
        Err(ParseError::Incomplete(_)) if buf.len() > MAX_REQUEST => Err(FramingError::TooLarge),
        Err(ParseError::Incomplete(_)) => Ok(None),
        Err(ParseError::Error) => Err(FramingError::Malformed),
    }
}

/// Why RECORD could not claim the stream: the status and its reason phrase.
pub type ClaimRefused = (StatusCode, &'static str);

/// What the session asks of the appliance. The service's implementation reads the
/// registry and the database and binds sockets; tests and fuzz targets use one in
/// memory.
pub trait Host {
    /// A player's subscription to a live stream's frames, from its GOP cache on: what
    /// [`Action::Play`] hands the transport.
    type Feed: Send;
    /// A publisher's hold on its stream (its lease), kept while it records: what
    /// [`Action::Hold`] hands the transport.
    type Hold: Send;

    /// The stream or camera named `name` now.
    fn named(&self, name: &str) -> Option<Arc<Named>>;
    /// Whether viewer link `id` is open and opens stream `uid`.
    fn link_opens(&self, id: i64, uid: &StreamUid) -> bool;
    /// The time now, in seconds since the Unix epoch (for viewer links' expiry).
    fn now(&self) -> i64;
    /// The track parameters of stream `name` when it is live and has sent them.
    fn live_params(&self, name: &str) -> Option<BTreeMap<TrackId, Arc<TrackParams>>>;
    /// Whether stream `name` has a publisher now.
    fn has_publisher(&self, name: &str) -> bool;
    /// Subscribes to stream `uid` while it is live: the feed, and each track's first
    /// presentation time in the GOP cache (ticks of the track's timescale).
    fn subscribe(&self, uid: &StreamUid) -> Option<(Self::Feed, BTreeMap<TrackId, i64>)>;
    /// A publisher or player was refused for `reason` (a metric label).
    fn rejected(&self, reason: &'static str);

    /// The secret viewer links are signed with (`None` when it cannot be read).
    fn viewer_secret(&self) -> impl Future<Output = Option<Vec<u8>>> + Send;
    /// Who publishing to `name` with stream key `key` is, when the key is right.
    fn authorize_key(
        &self,
        name: &str,
        key: &str,
    ) -> impl Future<Output = Option<Authorized>> + Send;
    /// Who publishes to `name`, and the Digest HA1 of its key (RFC 2617 §3.2.2.2), when
    /// the stream has one.
    fn digest_ha1(&self, name: &str) -> impl Future<Output = Option<(Authorized, String)>> + Send;
    /// Whether a publisher of `name` is challenged with Digest (Basic otherwise).
    fn offers_digest(&self, name: &str) -> impl Future<Output = bool> + Send;
    /// Binds an even/odd UDP port pair (RTP, RTCP) for this connection; returns the two
    /// ports, or `None` when none is free.
    fn udp_pair(&mut self) -> impl Future<Output = Option<(u16, u16)>> + Send;
    /// Releases the UDP pair whose RTP port is `rtp`.
    fn release_udp(&mut self, rtp: u16);
    /// Claims stream `who.uid` for a publisher at `peer`: the hub's publisher, its ingest
    /// meter, and the hold that ends it when its grounds go.
    fn claim(
        &mut self,
        who: &Authorized,
        peer: SocketAddr,
    ) -> impl Future<Output = Result<(Publisher, IngestMeter, Self::Hold), ClaimRefused>> + Send;
}

/// Where one track's packets go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `$`-framed on the RTSP connection (§10.12), on these channels.
    Interleaved {
        /// RTP's channel.
        rtp: u8,
        /// RTCP's channel.
        rtcp: u8,
    },
    /// UDP datagrams from our port pair (whose RTP port this is) to the player's ports.
    Udp {
        /// Our RTP port ([`Host::udp_pair`]); RTCP's is the next.
        local_rtp: u16,
        /// The player's RTP address.
        to_rtp: SocketAddr,
        /// The player's RTCP address.
        to_rtcp: SocketAddr,
    },
}

impl Route {
    fn local_port(&self) -> Option<u16> {
        match self {
            Route::Udp { local_rtp, .. } => Some(*local_rtp),
            Route::Interleaved { .. } => None,
        }
    }
}

/// What PLAY starts: a feed of frames to packetize and route, per track.
pub struct Playback<F> {
    /// The stream's frames.
    pub feed: F,
    /// The stream played.
    pub uid: StreamUid,
    /// On what grounds the player watches (its lease's holder).
    pub grant: Grant,
    /// Per track: where packets go, the packetizer, and the RTP clock rate (Hz).
    pub tracks: BTreeMap<TrackId, (Route, Packetizer, u32)>,
}

/// What the transport does for a request, in order.
pub enum Action<H: Host> {
    /// Write these bytes (a response) on the connection.
    Send(Bytes),
    /// Start sending media to the player (after the reply before it: players skip
    /// interleaved data that arrives before PLAY's reply).
    Play(Playback<H::Feed>),
    /// Stop sending to the player: its session was torn down.
    StopPlaying,
    /// The publisher records: keep its hold, and take its UDP packets arriving on these
    /// local RTP ports (and the RTCP port after each) from the peer's address, for the
    /// track of each index.
    Hold {
        /// The publisher's hold.
        hold: H::Hold,
        /// `(track index, local RTP port)` of the tracks sent over UDP.
        udp: Vec<(usize, u16)>,
    },
    /// The publisher sent TEARDOWN: hand the session the UDP packets still on their way
    /// ([`Session::on_udp`]), then call [`Session::end_publish`] and drop the hold.
    EndPublish,
    /// Close the connection (after what is queued).
    Close,
}

impl<H: Host> std::fmt::Debug for Action<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Send(b) => write!(f, "Send({:?})", String::from_utf8_lossy(b)),
            Action::Play(p) => write!(f, "Play({:?})", p.tracks),
            Action::StopPlaying => f.write_str("StopPlaying"),
            Action::Hold { udp, .. } => write!(f, "Hold({udp:?})"),
            Action::EndPublish => f.write_str("EndPublish"),
            Action::Close => f.write_str("Close"),
        }
    }
}

/// A player's session, from its first SETUP.
struct Player {
    id: String,
    uid: StreamUid,
    name: String,
    grant: Grant,
    tracks: BTreeMap<TrackId, (Route, Packetizer)>,
    playing: bool,
}

/// The state of one RTSP connection: a player's session or a publisher's, the Digest
/// nonce issued on it, and the viewer link a request on it presented.
pub struct Session {
    local: SocketAddr,
    peer: SocketAddr,
    /// Announced to players as the session timeout, in seconds.
    timeout_secs: u64,
    nonce: String,
    /// The last session ID given out, as a number.
    last_id: u64,
    player: Option<Player>,
    publish: Option<Publish>,
    /// Who the ANNOUNCE authenticated as.
    publisher: Option<Authorized>,
    /// The private stream a viewer link (`?token=…`) opened on this connection, and the
    /// link's id.
    granted: Option<(StreamUid, i64)>,
}

impl Session {
    /// The session of a connection from `peer` to our `local` address, which announces
    /// `timeout_secs` as the session timeout.
    pub fn new(local: SocketAddr, peer: SocketAddr, timeout_secs: u64) -> Session {
        Session {
            local,
            peer,
            timeout_secs,
            nonce: format!("{:032x}", rand::random::<u128>()),
            last_id: rand::random(),
            player: None,
            publish: None,
            publisher: None,
            granted: None,
        }
    }

    /// The same session, whose session IDs count from `first` (random otherwise): for
    /// fuzzing, where a request must be able to name its session.
    pub fn with_first_id(mut self, first: u64) -> Session {
        self.last_id = first.wrapping_sub(1);
        self
    }

    /// A new session ID (RFC 2326 §12.37): 16 hex digits, unique on the connection.
    fn new_id(&mut self) -> String {
        self.last_id = self.last_id.wrapping_add(1);
        format!("{:016X}", self.last_id)
    }

    /// Whether a publisher is recording on this connection.
    pub fn recording(&self) -> bool {
        self.publish.as_ref().is_some_and(Publish::recording)
    }

    /// How long ago the recording publisher's last packet arrived.
    pub fn publisher_silent_for(&self) -> Option<std::time::Duration> {
        self.publish
            .as_ref()
            .filter(|p| p.recording())
            .map(|p| p.last_packet.elapsed())
    }

    /// The 400 that answers bytes that are no RTSP message.
    pub fn bad_request() -> Bytes {
        response(status(StatusCode::BadRequest, None).empty())
    }

    /// Interleaved data on `channel`: a publisher's RTP or RTCP; a player's RTCP
    /// receiver reports are ignored.
    ///
    /// # Errors
    /// The publisher's media cannot go on (see [`Publish::on_packet`]).
    pub fn on_interleaved(
        &mut self,
        channel: u8,
        packet: Bytes,
    ) -> Result<(), crate::ingest::rtp_frames::RtpMediaError> {
        if let Some(p) = self.publish.as_mut() {
            if let Some((track, rtcp)) = p.channel(channel) {
                p.on_packet(track, rtcp, packet)?;
            }
        }
        Ok(())
    }

    /// A UDP packet for track `track` (RTCP when `rtcp`) of the publisher.
    ///
    /// # Errors
    /// As [`Session::on_interleaved`].
    pub fn on_udp(
        &mut self,
        track: usize,
        rtcp: bool,
        packet: Bytes,
    ) -> Result<(), crate::ingest::rtp_frames::RtpMediaError> {
        match self.publish.as_mut() {
            Some(p) => p.on_packet(track, rtcp, packet),
            None => Ok(()),
        }
    }

    /// Ends the publish session, if any: what is complete goes to the hub, and the
    /// stream is released. Its UDP ports are released.
    pub fn end_publish<H: Host>(&mut self, host: &mut H) {
        if let Some(mut p) = self.publish.take() {
            for (_, port) in p.udp_ports() {
                host.release_udp(port);
            }
            if p.recording() {
                info!(stream = %p.name, "RTSP publisher left");
            }
            p.finish();
        }
        self.publisher = None;
    }

    /// Ends the player's session, if any, releasing its UDP ports.
    fn end_player<H: Host>(&mut self, host: &mut H) {
        if let Some(p) = self.player.take() {
            for (route, _) in p.tracks.values() {
                if let Some(port) = route.local_port() {
                    host.release_udp(port);
                }
            }
        }
    }

    /// Ends whatever the connection had: the transport calls it when it closes.
    pub fn close<H: Host>(&mut self, host: &mut H) {
        self.end_player(host);
        self.end_publish(host);
    }

    /// Handles one request: the actions to carry out, in order.
    pub async fn handle<H: Host>(
        &mut self,
        req: &Request<Vec<u8>>,
        host: &mut H,
    ) -> Vec<Action<H>> {
        tracing::debug!(
            method = ?req.method(),
            uri = ?req.request_uri().map(|u| u.as_str()),
            session = ?req.header(&headers::SESSION).map(|v| v.as_str()),
            "RTSP request"
        );
        let Some(cseq) = req.header(&headers::CSEQ).map(|v| v.as_str().to_string()) else {
            return vec![Action::Send(Self::bad_request()), Action::Close];
        };
        let cseq = Some(cseq.as_str());
        let ok = || status(StatusCode::Ok, cseq);
        let refuse = |code| Action::Send(response(status(code, cseq).empty()));
        match req.method() {
            Method::Options => {
                vec![Action::Send(response(
                    ok().header(headers::PUBLIC, PUBLIC).empty(),
                ))]
            }
            Method::Describe => {
                let Some((name, _)) = target(req) else {
                    return vec![refuse(StatusCode::NotFound)];
                };
                let params = match self.live(req, &name, host).await {
                    Ok((_, _, params)) => params,
                    Err(code) => return vec![refuse(code)],
                };
                tracing::Span::current().record("stream", name.as_str());
                let sdp = sdp::describe(&params, u64::from(rand::random::<u32>()));
                let content_base = format!("rtsp://{}/live/{name}/", self.host(req));
                vec![Action::Send(response(
                    ok().header(headers::CONTENT_TYPE, "application/sdp")
                        .header(headers::CONTENT_BASE, content_base.as_str())
                        .build(sdp.into_bytes()),
                ))]
            }
            Method::Announce => {
                let r = match self.announce(req, host).await {
                    Ok(()) => ok().empty(),
                    Err((code, reason, challenge)) => {
                        let mut b = status(code, cseq);
                        if let Some(c) = &challenge {
                            b = b.header(headers::WWW_AUTHENTICATE, c.as_str());
                        }
                        with_reason(b.empty(), reason)
                    }
                };
                vec![Action::Send(response(r))]
            }
            Method::Record => match self.record(req, host).await {
                Ok((id, hold)) => {
                    let mut actions = Vec::new();
                    if let Some((hold, udp)) = hold {
                        actions.push(Action::Hold { hold, udp });
                    }
                    actions.push(Action::Send(response(
                        ok().header(headers::SESSION, id.as_str()).empty(),
                    )));
                    actions
                }
                Err((code, reason)) => vec![Action::Send(response(with_reason(
                    status(code, cseq).empty(),
                    reason.map(str::to_string),
                )))],
            },
            Method::Setup => {
                let result = if self.publish.is_some() {
                    self.setup_record(req, host).await
                } else {
                    self.setup_play(req, host).await
                };
                match result {
                    Ok((transport, id)) => {
                        let session = format!("{id};timeout={}", self.timeout_secs);
                        vec![Action::Send(response(
                            ok().header(headers::SESSION, session.as_str())
                                .header(headers::TRANSPORT, transport.as_str())
                                .empty(),
                        ))]
                    }
                    Err(code) => vec![refuse(code)],
                }
            }
            Method::Play => {
                if let Err(code) = self.check_session(req) {
                    return vec![refuse(code)];
                }
                match self.play(req, host) {
                    Ok((id, rtp_info, playback)) => {
                        let mut actions = vec![Action::Send(response(
                            ok().header(headers::SESSION, id.as_str())
                                .header(headers::RANGE, "npt=0.000-")
                                .header(headers::RTP_INFO, rtp_info.as_str())
                                .empty(),
                        ))];
                        if let Some(p) = playback {
                            info!("playing");
                            actions.push(Action::Play(p));
                        }
                        actions
                    }
                    Err(code) => vec![refuse(code)],
                }
            }
            Method::Teardown if self.publish.is_some() => {
                info!("publisher sent TEARDOWN");
                vec![Action::EndPublish, Action::Send(response(ok().empty()))]
            }
            Method::Teardown => {
                let known = self.check_session(req).is_ok();
                let was_playing = self.player.as_ref().is_some_and(|p| p.playing);
                self.end_player(host);
                let mut actions = Vec::new();
                if was_playing {
                    actions.push(Action::StopPlaying);
                }
                // The connection stays open: a player may set up a new session on it.
                actions.push(refuse(if known {
                    StatusCode::Ok
                } else {
                    StatusCode::SessionNotFound
                }));
                actions
            }
            Method::GetParameter | Method::SetParameter => {
                vec![Action::Send(response(ok().empty()))]
            }
            _ => vec![refuse(StatusCode::NotImplemented)],
        }
    }

    /// ANNOUNCE: authenticates the publisher and reads its SDP. The error is the status,
    /// a reason phrase, and a WWW-Authenticate challenge.
    async fn announce<H: Host>(
        &mut self,
        req: &Request<Vec<u8>>,
        host: &mut H,
    ) -> Result<(), (StatusCode, Option<String>, Option<String>)> {
        let Some((name, None)) = target(req) else {
            return Err((StatusCode::NotFound, None, None));
        };
        if self.player.is_some() || self.recording() {
            return Err((StatusCode::MethodNotValidInThisState, None, None));
        }
        let tried = req.header(&headers::AUTHORIZATION).is_some()
            || req.request_uri().and_then(|u| u.query()).is_some();
        let authorized = if stream_keys::valid_name(&name) {
            self.authorized(req, &name, host).await
        } else {
            None
        };
        let Some(authorized) = authorized else {
            if tried {
                warn!(stream = %name, "RTSP publish refused: unknown or wrong stream key");
                host.rejected("bad_key");
            } else {
                // Clients send credentials only once challenged.
                tracing::debug!(stream = %name, "RTSP publisher challenged for the stream key");
            }
            // Digest unless the stream exists from before Digest (Basic still works).
            let digest = host.offers_digest(&name).await;
            let challenge = rtsp_auth::challenge(&self.nonce, digest);
            return Err((StatusCode::Unauthorized, None, Some(challenge)));
        };
        let announced = match sdp::parse_announce(req.body()) {
            Ok(m) => m,
            Err(e) => {
                warn!(stream = %name, error = %e, "RTSP publish refused");
                let code = match e {
                    AnnounceError::Unsupported(_) | AnnounceError::TooMany(_) => {
                        host.rejected("unsupported_codec");
                        StatusCode::UnsupportedMediaType
                    }
                    AnnounceError::Parse(_) | AnnounceError::NoMedia => {
                        host.rejected("bad_media");
                        StatusCode::BadRequest
                    }
                };
                return Err((code, Some(e.to_string()), None));
            }
        };
        let publish = Publish::new(&name, announced, self.new_id()).map_err(|e| {
            warn!(stream = %name, error = %e, "RTSP publish refused");
            host.rejected("unsupported_codec");
            (StatusCode::UnsupportedMediaType, Some(e.to_string()), None)
        })?;
        if host.has_publisher(&name) {
            warn!(stream = %name, "RTSP publish refused: the stream already has a publisher");
            host.rejected("already_publishing");
            return Err((
                StatusCode::Forbidden,
                Some("Stream Already Has A Publisher".into()),
                None,
            ));
        }
        self.end_publish(host);
        self.publish = Some(publish);
        self.publisher = Some(authorized);
        tracing::Span::current().record("stream", name.as_str());
        info!("RTSP publisher announced");
        Ok(())
    }

    /// Who the request authenticates as, when it carries the stream key of `name`:
    /// `?key=` in the URL, or Basic or Digest credentials with the key as password.
    async fn authorized<H: Host>(
        &self,
        req: &Request<Vec<u8>>,
        name: &str,
        host: &H,
    ) -> Option<Authorized> {
        if let Some(key) = query(req, "key") {
            return host.authorize_key(name, &key).await;
        }
        let credentials = req
            .header(&headers::AUTHORIZATION)
            .and_then(|v| rtsp_auth::parse_authorization(v.as_str()));
        match credentials {
            Some(Credentials::Basic { password, .. }) => host.authorize_key(name, &password).await,
            Some(Credentials::Digest(d)) => {
                let uri_ok = req
                    .request_uri()
                    .is_some_and(|u| u.as_str() == d.uri || u.path() == d.uri);
                let (who, ha1) = host.digest_ha1(name).await?;
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
    async fn setup_record<H: Host>(
        &mut self,
        req: &Request<Vec<u8>>,
        host: &mut H,
    ) -> Result<(String, String), StatusCode> {
        let Some(p) = self.publish.as_mut() else {
            return Err(StatusCode::MethodNotValidInThisState);
        };
        if p.recording() {
            return Err(StatusCode::MethodNotValidInThisState);
        }
        let uri = req.request_uri().map(|u| u.as_str()).unwrap_or_default();
        let index = p.track_for(uri).ok_or(StatusCode::NotFound)?;
        let transports = transports(req)?;
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
                    if let Some(old) = p.set_arrival(index, Arrival::Interleaved(a, b)) {
                        host.release_udp(old);
                    }
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
                    let (sp, sq) = host
                        .udp_pair()
                        .await
                        .ok_or(StatusCode::InternalServerError)?;
                    // The borrow of the publish session, taken again after the await.
                    let p = self
                        .publish
                        .as_mut()
                        .ok_or(StatusCode::MethodNotValidInThisState)?;
                    if let Some(old) = p.set_arrival(index, Arrival::Udp(sp)) {
                        host.release_udp(old);
                    }
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

    /// RECORD: claims the stream and starts taking media. Returns the session ID and,
    /// when recording starts now, the hold and the UDP ports to take packets on; or the
    /// status and a reason phrase.
    #[allow(clippy::type_complexity)]
    async fn record<H: Host>(
        &mut self,
        req: &Request<Vec<u8>>,
        host: &mut H,
    ) -> Result<(String, Option<(H::Hold, Vec<(usize, u16)>)>), (StatusCode, Option<&'static str>)>
    {
        let Some(p) = self.publish.as_mut() else {
            return Err((StatusCode::MethodNotValidInThisState, None));
        };
        if session_id(req).as_deref() != Some(p.session_id.as_str()) {
            return Err((StatusCode::SessionNotFound, None));
        }
        if p.recording() {
            return Ok((p.session_id.clone(), None));
        }
        if !p.all_set_up() {
            return Err((
                StatusCode::MethodNotValidInThisState,
                Some("Set Up Every Track First"),
            ));
        }
        let Some(who) = self.publisher.clone() else {
            return Err((StatusCode::MethodNotValidInThisState, None));
        };
        let (publisher, meter, hold) =
            host.claim(&who, self.peer).await.map_err(|(code, why)| {
                warn!(why, "RTSP publish refused");
                (code, Some(why))
            })?;
        // The borrow of the publish session, taken again after the await.
        let Some(p) = self.publish.as_mut() else {
            return Err((StatusCode::MethodNotValidInThisState, None));
        };
        p.start(publisher, meter);
        info!("RTSP publisher recording");
        Ok((p.session_id.clone(), Some((hold, p.udp_ports()))))
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

    /// The stream a player asks for, the grant it watches on, and its tracks' parameters:
    /// 404 when it is no stream or not live, 403 when it is private and neither this
    /// request nor an earlier one on the connection carried a valid viewer link token
    /// (`rtsp://…/live/NAME?token=…`).
    async fn live<H: Host>(
        &mut self,
        req: &Request<Vec<u8>>,
        name: &str,
        host: &H,
    ) -> Result<(Arc<Named>, Grant, BTreeMap<TrackId, Arc<TrackParams>>), StatusCode> {
        let named = host.named(name).ok_or(StatusCode::NotFound)?;
        if named.protection.is_some() {
            // RTSP would carry it in the clear ([`crate::protect`]).
            info!(
                stream = name,
                "RTSP refused: the stream is encrypted and plays over HLS only"
            );
            return Err(StatusCode::Forbidden);
        }
        let granted = self
            .granted
            .as_ref()
            .filter(|(uid, id)| *uid == named.uid && host.link_opens(*id, uid))
            .map(|(_, id)| *id);
        let grant = match (named.private, granted) {
            (false, _) => Grant::Public,
            (true, Some(id)) => Grant::Link(id),
            (true, None) => {
                let token = query(req, "token").ok_or(StatusCode::Forbidden)?;
                let secret = host
                    .viewer_secret()
                    .await
                    .ok_or(StatusCode::InternalServerError)?;
                let checked = crate::auth::viewer::check(&secret, &named.uid, &token, host.now())
                    .and_then(|id| {
                        if host.link_opens(id, &named.uid) {
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
        let params = host
            .live_params(name)
            .filter(|p| !p.is_empty())
            .ok_or(StatusCode::NotFound)?;
        Ok((named, grant, params))
    }

    /// Checks the `Session` header against the player's session.
    fn check_session(&self, req: &Request<Vec<u8>>) -> Result<(), StatusCode> {
        let Some(s) = &self.player else {
            return Err(StatusCode::MethodNotValidInThisState);
        };
        match session_id(req) {
            Some(id) if id == s.id => Ok(()),
            _ => Err(StatusCode::SessionNotFound),
        }
    }

    /// SETUP of a player's track: returns the Transport reply and the session ID.
    async fn setup_play<H: Host>(
        &mut self,
        req: &Request<Vec<u8>>,
        host: &mut H,
    ) -> Result<(String, String), StatusCode> {
        let (name, track) = target(req).ok_or(StatusCode::NotFound)?;
        let track = track.ok_or(StatusCode::NotFound)?;
        if let Some(s) = &self.player {
            self.check_session(req)?;
            if s.playing {
                return Err(StatusCode::MethodNotValidInThisState);
            }
            if s.name != name {
                return Err(StatusCode::AggregateOperationNotAllowed);
            }
        }
        let (named, grant, params) = self.live(req, &name, host).await?;
        if let Some(s) = &self.player {
            // The stream was deleted and another made under its name since.
            if s.uid != named.uid {
                return Err(StatusCode::NotFound);
            }
        }
        if !params.contains_key(&track) {
            return Err(StatusCode::NotFound);
        }
        let transports = transports(req)?;
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
                    let (sp, sq) = host
                        .udp_pair()
                        .await
                        .ok_or(StatusCode::InternalServerError)?;
                    chosen = Some((
                        Route::Udp {
                            local_rtp: sp,
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
        let packetizer = Packetizer::new(
            sdp::payload_type(track),
            ssrc,
            rand::random(),
            rand::random(),
        );
        let id = match &self.player {
            Some(p) => p.id.clone(),
            None => self.new_id(),
        };
        let player = self.player.get_or_insert_with(|| Player {
            id,
            uid: named.uid.clone(),
            name,
            grant,
            tracks: BTreeMap::new(),
            playing: false,
        });
        if let Some((old, _)) = player.tracks.insert(track, (route, packetizer)) {
            if let Some(port) = old.local_port() {
                host.release_udp(port);
            }
        }
        Ok((reply, player.id.clone()))
    }

    /// PLAY: returns the session ID, the RTP-Info header value, and (unless already
    /// playing) what to start once the reply is queued; 404 when the stream is no longer
    /// live.
    #[allow(clippy::type_complexity)]
    fn play<H: Host>(
        &mut self,
        req: &Request<Vec<u8>>,
        host: &H,
    ) -> Result<(String, String, Option<Playback<H::Feed>>), StatusCode> {
        let Some(s) = &mut self.player else {
            return Err(StatusCode::MethodNotValidInThisState);
        };
        let base = req
            .request_uri()
            .map(|u| u.as_str().trim_end_matches('/').to_string())
            .unwrap_or_default();
        let info = |first: &BTreeMap<TrackId, i64>| {
            // RTP-Info: the first packet's sequence number and timestamp per track.
            s.tracks
                .iter()
                .map(|(track, (_, p))| {
                    let ticks = first.get(track).copied().unwrap_or(0);
                    format!(
                        "url={base}/{};seq={};rtptime={}",
                        track.name(),
                        p.next_sequence(),
                        p.rtp_time(ticks)
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        if s.playing {
            return Ok((s.id.clone(), info(&BTreeMap::new()), None));
        }
        let params = host.live_params(&s.name).ok_or(StatusCode::NotFound)?;
        let (feed, first) = host.subscribe(&s.uid).ok_or(StatusCode::NotFound)?;
        let rtp_info = info(&first);
        let tracks = s
            .tracks
            .iter()
            .map(|(k, (route, p))| {
                let clock = params
                    .get(k)
                    .map_or(crate::media::VIDEO_TIMESCALE, |p| p.timescale());
                (*k, (route.clone(), p.clone(), clock))
            })
            .collect();
        s.playing = true;
        let playback = Playback {
            feed,
            uid: s.uid.clone(),
            grant: s.grant,
            tracks,
        };
        Ok((s.id.clone(), rtp_info, Some(playback)))
    }
}

/// A response builder with `status` and the request's CSeq.
fn status(code: StatusCode, cseq: Option<&str>) -> rtsp_types::ResponseBuilder {
    let mut b = Response::builder(Version::V1_0, code);
    if let Some(c) = cseq {
        b = b.header(headers::CSEQ, c);
    }
    b
}

/// `r` with `reason` as its reason phrase, when there is one.
fn with_reason<B>(mut r: Response<B>, reason: Option<String>) -> Response<B> {
    if let Some(reason) = reason {
        r.set_reason_phrase(reason);
    }
    r
}

/// A response's bytes.
fn response<B: AsRef<[u8]>>(r: Response<B>) -> Bytes {
    let mut out = Vec::new();
    // Writing into a Vec fails only for a body too large for the length header.
    let _ = r.write(&mut out);
    Bytes::from(out)
}

/// The transports a SETUP offers: 400 without a parsable `Transport` header.
fn transports(req: &Request<Vec<u8>>) -> Result<Transports, StatusCode> {
    req.typed_header::<Transports>()
        .map_err(|_| StatusCode::BadRequest)?
        .ok_or(StatusCode::BadRequest)
}

/// The value of query parameter `name` of the request URL.
fn query(req: &Request<Vec<u8>>, name: &str) -> Option<String> {
    req.request_uri().and_then(|u| {
        u.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::{ready, MemoryHost, PUBLISH_SDP};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    /// Parses `text` (lines joined with CRLF, a blank line added) and a body.
    fn request(lines: &[&str], body: &str) -> Request<Vec<u8>> {
        let mut text = lines.join("\r\n");
        if !body.is_empty() {
            text.push_str(&format!("\r\nContent-Length: {}", body.len()));
        }
        text.push_str("\r\n\r\n");
        text.push_str(body);
        let mut buf = BytesMut::from(text.as_bytes());
        match next_message(&mut buf) {
            Ok(Some(Incoming::Request(r))) => r,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn handle(s: &mut Session, host: &mut MemoryHost, lines: &[&str]) -> Vec<Action<MemoryHost>> {
        ready(s.handle(&request(lines, ""), host)).expect("a memory host never waits")
    }

    /// The responses among `actions`, as text.
    fn replies(actions: &[Action<MemoryHost>]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect()
    }

    fn status_of(actions: &[Action<MemoryHost>]) -> u16 {
        let text = replies(actions).pop().unwrap_or_default();
        text.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no reply in {actions:?}"))
    }

    /// The value of `header` in the last reply.
    fn header(actions: &[Action<MemoryHost>], header: &str) -> String {
        let text = replies(actions).pop().unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{header}: ")))
            .unwrap_or_else(|| panic!("no {header} in {text}"))
            .to_string()
    }

    /// The packets of one H.264 keyframe and the sender report before them, as a
    /// publisher sends them on channel 0 and 1.
    fn keyframe_packets() -> Vec<(u8, Bytes)> {
        let mut sr = vec![0x80, 200, 0, 6, 0, 0, 0, 9, 0, 0, 0, 9, 0, 0, 0, 0];
        sr.extend([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
        let rtp = |seq: u16, marker: bool, payload: &[u8]| {
            let mut p = vec![0x80, if marker { 0xe0 } else { 0x60 }];
            p.extend(seq.to_be_bytes());
            p.extend(0u32.to_be_bytes());
            p.extend(9u32.to_be_bytes());
            p.extend(payload);
            Bytes::from(p)
        };
        vec![
            (1, Bytes::from(sr)),
            (0, rtp(1, false, &[0x7c, 0x85, 0x88, 0x84])),
            (0, rtp(2, true, &[0x7c, 0x45, 0x21])),
            // The next picture's first packet ends the keyframe's access unit.
            (0, {
                let mut p = rtp(3, true, &[0x41, 0x9a]).to_vec();
                p[4..8].copy_from_slice(&3600u32.to_be_bytes());
                Bytes::from(p)
            }),
        ]
    }

    #[test]
    fn a_publisher_records_and_a_player_plays_what_it_sent() {
        let mut host = MemoryHost::new();
        let hub = host.add("lobby", "secret-key", false);
        let (_, mut frames) = hub.subscribe();
        let url = "rtsp://box:8554/live/lobby";
        let mut publisher = Session::new(addr(8554), addr(40_000), 60);
        let announce = |query: &str| format!("ANNOUNCE {url}{query} RTSP/1.0");

        // Without credentials the publisher is challenged; with a wrong key, refused.
        let a = ready(publisher.handle(
            &request(&[&announce(""), "CSeq: 1"], PUBLISH_SDP),
            &mut host,
        ))
        .expect("ready");
        assert_eq!(status_of(&a), 401);
        assert!(
            header(&a, "WWW-Authenticate").starts_with("Digest "),
            "{a:?}"
        );
        let a = ready(publisher.handle(
            &request(&[&announce("?key=wrong"), "CSeq: 2"], PUBLISH_SDP),
            &mut host,
        ))
        .expect("ready");
        assert_eq!(status_of(&a), 401);
        let a = ready(publisher.handle(
            &request(&[&announce("?key=secret-key"), "CSeq: 3"], PUBLISH_SDP),
            &mut host,
        ))
        .expect("ready");
        assert_eq!(status_of(&a), 200, "{a:?}");

        // Video interleaved, audio over UDP; RECORD only once both are set up.
        let a = handle(
            &mut publisher,
            &mut host,
            &[
                &format!("SETUP {url}/streamid=0 RTSP/1.0"),
                "CSeq: 4",
                "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
            ],
        );
        assert_eq!(status_of(&a), 200, "{a:?}");
        let id = header(&a, "Session");
        let id = id.split(';').next().unwrap_or_default().to_string();
        let record = |cseq: &str| {
            request(
                &[
                    &format!("RECORD {url} RTSP/1.0"),
                    &format!("CSeq: {cseq}"),
                    &format!("Session: {id}"),
                ],
                "",
            )
        };
        let a = ready(publisher.handle(&record("5"), &mut host)).expect("ready");
        assert_eq!(status_of(&a), 455);
        let a = handle(
            &mut publisher,
            &mut host,
            &[
                &format!("SETUP {url}/streamid=1 RTSP/1.0"),
                "CSeq: 6",
                &format!("Session: {id}"),
                "Transport: RTP/AVP;unicast;client_port=5000-5001;mode=record",
            ],
        );
        assert_eq!(status_of(&a), 200, "{a:?}");
        let transport = header(&a, "Transport");
        let port: u16 = transport
            .split("server_port=")
            .nth(1)
            .and_then(|p| p.split('-').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{transport}"));
        let a = ready(publisher.handle(&record("7"), &mut host)).expect("ready");
        assert!(
            matches!(&a[..], [Action::Hold { udp, .. }, Action::Send(_)] if udp == &vec![(1, port)]),
            "{a:?}"
        );
        assert_eq!(status_of(&a), 200);
        assert!(publisher.recording() && hub.is_live());

        // What it sends reaches the hub.
        for (channel, packet) in keyframe_packets() {
            publisher
                .on_interleaved(channel, packet)
                .expect("well-formed media");
        }
        let keyframe = frames.try_recv().expect("the keyframe reached the hub");
        assert!(keyframe.is_sync && keyframe.track == TrackId::Video);

        // A second publisher of the same stream is refused while the first records.
        let mut second = Session::new(addr(8554), addr(40_002), 60);
        let a = ready(second.handle(
            &request(&[&announce("?key=secret-key"), "CSeq: 1"], PUBLISH_SDP),
            &mut host,
        ))
        .expect("ready");
        assert_eq!(status_of(&a), 403);

        // A player describes, sets up and plays from the GOP cache.
        let mut player = Session::new(addr(8554), addr(41_000), 60);
        let a = handle(
            &mut player,
            &mut host,
            &[&format!("DESCRIBE {url} RTSP/1.0"), "CSeq: 1"],
        );
        assert_eq!(status_of(&a), 200);
        let sdp = replies(&a).pop().unwrap_or_default();
        assert!(sdp.contains("m=video") && sdp.contains("m=audio"), "{sdp}");
        assert_eq!(header(&a, "Content-Base"), format!("{url}/"));
        let a = handle(
            &mut player,
            &mut host,
            &[
                &format!("SETUP {url}/video RTSP/1.0"),
                "CSeq: 2",
                "Transport: RTP/AVP/TCP;unicast;interleaved=0-1",
            ],
        );
        assert_eq!(status_of(&a), 200, "{a:?}");
        let sid = header(&a, "Session");
        assert!(sid.ends_with(";timeout=60"), "{sid}");
        let sid = sid.split(';').next().unwrap_or_default().to_string();
        let a = handle(
            &mut player,
            &mut host,
            &[
                &format!("PLAY {url} RTSP/1.0"),
                "CSeq: 3",
                &format!("Session: {sid}"),
            ],
        );
        assert_eq!(status_of(&a), 200);
        assert!(header(&a, "RTP-Info").starts_with(&format!("url={url}/video;seq=")));
        let Some(Action::Play(p)) = a.last() else {
            panic!("PLAY must start the player after its reply: {a:?}");
        };
        let (gop, _) = &p.feed;
        assert!(
            gop.first().is_some_and(|f| f.is_sync),
            "starts at the keyframe"
        );
        assert_eq!(
            p.tracks.get(&TrackId::Video).map(|t| (&t.0, t.2)),
            Some((&Route::Interleaved { rtp: 0, rtcp: 1 }, 90_000))
        );
        let a = handle(
            &mut player,
            &mut host,
            &[
                &format!("TEARDOWN {url} RTSP/1.0"),
                "CSeq: 4",
                &format!("Session: {sid}"),
            ],
        );
        assert!(
            matches!(&a[..], [Action::StopPlaying, Action::Send(_)]),
            "{a:?}"
        );
        assert_eq!(status_of(&a), 200);

        // The publisher leaves: the stream is released, and so are its ports.
        let a = handle(
            &mut publisher,
            &mut host,
            &[
                &format!("TEARDOWN {url} RTSP/1.0"),
                "CSeq: 8",
                &format!("Session: {id}"),
            ],
        );
        assert!(
            matches!(&a[..], [Action::EndPublish, Action::Send(_)]),
            "{a:?}"
        );
        publisher.end_publish(&mut host);
        assert!(!hub.is_live());
        assert!(host.udp.is_empty(), "{:?}", host.udp);
    }

    #[test]
    fn refusals_say_why_and_change_nothing() {
        let mut host = MemoryHost::new();
        host.add("hall", "k", false);
        host.add("vault", "k2", true);
        host.add("idle", "k3", false);
        assert!(host.live("hall") && host.live("vault"));
        let token = host.link("vault", 5).expect("link");
        let mut s = Session::new(addr(8554), addr(40_000), 30);
        let hall = "rtsp://box/live/hall";
        let tcp = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1";
        let cases: Vec<(Vec<String>, u16)> = vec![
            (vec!["OPTIONS * RTSP/1.0".into(), "CSeq: 1".into()], 200),
            (vec![format!("PLAY {hall} RTSP/1.0"), "CSeq: 2".into()], 455),
            (
                vec![
                    "DESCRIBE rtsp://box/live/nosuch RTSP/1.0".into(),
                    "CSeq: 3".into(),
                ],
                404,
            ),
            (
                vec![
                    "DESCRIBE rtsp://box/live/idle RTSP/1.0".into(),
                    "CSeq: 4".into(),
                ],
                404,
            ),
            (
                vec![
                    "DESCRIBE rtsp://box/live/vault RTSP/1.0".into(),
                    "CSeq: 5".into(),
                ],
                403,
            ),
            (
                vec![
                    "DESCRIBE rtsp://box/live/vault?token=1.2.3 RTSP/1.0".into(),
                    "CSeq: 6".into(),
                ],
                403,
            ),
            (
                vec![format!("SETUP {hall}/video RTSP/1.0"), "CSeq: 7".into()],
                400,
            ),
            (
                vec![
                    format!("SETUP {hall}/video RTSP/1.0"),
                    "CSeq: 8".into(),
                    "Transport: RTP/SAVP;unicast;client_port=1-2".into(),
                ],
                461,
            ),
            (
                vec![
                    format!("SETUP {hall}/subtitles RTSP/1.0"),
                    "CSeq: 9".into(),
                    tcp.into(),
                ],
                404,
            ),
            (
                vec![format!("REDIRECT {hall} RTSP/1.0"), "CSeq: 10".into()],
                501,
            ),
            (
                vec![format!("TEARDOWN {hall} RTSP/1.0"), "CSeq: 11".into()],
                454,
            ),
        ];
        for (lines, want) in &cases {
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let a = handle(&mut s, &mut host, &lines);
            assert_eq!(status_of(&a), *want, "{lines:?}: {a:?}");
            assert!(a.iter().all(|a| matches!(a, Action::Send(_))), "{a:?}");
        }
        assert!(host.udp.is_empty());

        // A request without CSeq ends the connection.
        let a = handle(&mut s, &mut host, &[&format!("OPTIONS {hall} RTSP/1.0")]);
        assert!(matches!(&a[..], [Action::Send(_), Action::Close]), "{a:?}");
        assert_eq!(status_of(&a), 400);

        // One session, one stream; its ID must be given.
        let a = handle(
            &mut s,
            &mut host,
            &[&format!("SETUP {hall}/video RTSP/1.0"), "CSeq: 12", tcp],
        );
        assert_eq!(status_of(&a), 200);
        let sid = header(&a, "Session");
        let sid = sid.split(';').next().unwrap_or_default();
        let a = handle(
            &mut s,
            &mut host,
            &[
                &format!("SETUP {hall}/audio RTSP/1.0"),
                "CSeq: 13",
                "Session: 0BAD",
                tcp,
            ],
        );
        assert_eq!(status_of(&a), 454);
        let a = handle(
            &mut s,
            &mut host,
            &[
                "SETUP rtsp://box/live/vault/video RTSP/1.0",
                "CSeq: 14",
                &format!("Session: {sid}"),
                tcp,
            ],
        );
        assert_eq!(status_of(&a), 459);
        // No ANNOUNCE on a connection that plays.
        let a = ready(s.handle(
            &request(
                &["ANNOUNCE rtsp://box/live/idle?key=k3 RTSP/1.0", "CSeq: 15"],
                PUBLISH_SDP,
            ),
            &mut host,
        ))
        .expect("ready");
        assert_eq!(status_of(&a), 455);

        // A viewer link opens the private stream for the rest of the connection, until
        // it is revoked.
        let mut v = Session::new(addr(8554), addr(40_100), 30);
        let a = handle(
            &mut v,
            &mut host,
            &[
                &format!("DESCRIBE rtsp://box/live/vault?token={token} RTSP/1.0"),
                "CSeq: 1",
            ],
        );
        assert_eq!(status_of(&a), 200, "{a:?}");
        let a = handle(
            &mut v,
            &mut host,
            &["DESCRIBE rtsp://box/live/vault RTSP/1.0", "CSeq: 2"],
        );
        assert_eq!(status_of(&a), 200, "{a:?}");
        host.links.clear();
        let a = handle(
            &mut v,
            &mut host,
            &["DESCRIBE rtsp://box/live/vault RTSP/1.0", "CSeq: 3"],
        );
        assert_eq!(status_of(&a), 403);
    }

    #[test]
    fn udp_ports_are_released_when_a_setup_replaces_them_and_when_the_connection_closes() {
        let mut host = MemoryHost::new();
        host.add("hall", "k", false);
        assert!(host.live("hall"));
        let mut s = Session::new(addr(8554), addr(40_000), 30);
        let setup = |cseq: u32, sid: &str| {
            let mut l = vec![
                "SETUP rtsp://box/live/hall/video RTSP/1.0".to_string(),
                format!("CSeq: {cseq}"),
                "Transport: RTP/AVP;unicast;client_port=6000-6001".into(),
            ];
            if !sid.is_empty() {
                l.push(format!("Session: {sid}"));
            }
            l
        };
        let lines = setup(1, "");
        let a = handle(
            &mut s,
            &mut host,
            &lines.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(status_of(&a), 200);
        let sid = header(&a, "Session")
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        for cseq in 2..40 {
            let lines = setup(cseq, &sid);
            let a = handle(
                &mut s,
                &mut host,
                &lines.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            assert_eq!(status_of(&a), 200, "{a:?}");
            assert_eq!(
                host.udp.len(),
                1,
                "each SETUP of the track replaces its ports"
            );
        }
        s.close(&mut host);
        assert!(host.udp.is_empty());
    }
}
