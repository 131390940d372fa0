//! RTMP publish ingest (Adobe RTMP 1.0 over TCP), using rml_rtmp's sans-IO handshake and
//! server session for chunking and AMF commands; FLV tag bodies and timestamps are ours.
//!
//! A publisher connects to application `live` and publishes either its stream key
//! (`rtmp://HOST/live/<key>`, as OBS does) or `<name>?key=<key>`. Any failure ends that
//! one session with a log line naming the peer and stream, and a status to the peer where
//! RTMP has one; nothing else is disturbed. A publisher holds a lease on its stream
//! ([`Lease`]): rotating the key or deleting the stream ends the session at once. Each
//! client address may have `rtmp.max_connections_per_client` connections open.

use crate::app::App;
use crate::auth::stream_keys::{self, StreamKeyError};
use crate::connections::ConnectionLimit;
use crate::hub::{HubError, Publisher};
use crate::ingest::IngestMeter;
use crate::media::flv::{DemuxError, Demuxed, FlvDemuxer, FlvError};
use crate::media::{TrackId, TrackParams};
use crate::streams::registry::{Holder, Lease};
use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn, Instrument};

/// The RTMP application name publishers connect to.
pub const APP_NAME: &str = "live";
/// A peer that sends nothing for this long is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A peer that does not take our bytes for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes a peer may send without a single message we act on (a command or media). An
/// RTMP message is at most 16 MiB (a 24-bit length), so this bounds what one connection
/// can make us buffer, and cuts off peers that stream junk that parses as messages.
const MAX_BYTES_WITHOUT_MESSAGE: usize = 20 << 20;

/// Why an RTMP session ended.
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    /// The socket failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// No data within [`READ_TIMEOUT`], or the peer did not read within [`WRITE_TIMEOUT`].
    #[error("peer idle for too long")]
    Timeout,
    /// The bytes were not an RTMP handshake.
    #[error("bad RTMP handshake: {0}")]
    Handshake(String),
    /// The chunk stream or an AMF command could not be parsed.
    #[error("bad RTMP chunk stream: {0}")]
    Protocol(String),
    /// The peer connected to an application other than [`APP_NAME`].
    #[error("unknown RTMP application {0:?}; publish to rtmp://HOST/{APP_NAME}")]
    UnknownApp(String),
    /// The stream key was refused.
    #[error("publish refused: {0}")]
    Auth(#[from] StreamKeyError),
    /// Someone else is publishing the stream.
    #[error(transparent)]
    Busy(#[from] HubError),
    /// Media arrived before `publish`.
    #[error("media before publish")]
    NotPublishing,
    /// A tag body could not become a frame.
    #[error(transparent)]
    Media(#[from] DemuxError),
    /// More than [`MAX_BYTES_WITHOUT_MESSAGE`] bytes arrived without a message we act on.
    #[error("{0} bytes without a usable RTMP message")]
    Oversized(usize),
    /// The peer asked to play; this server only ingests over RTMP.
    #[error("RTMP playback is not offered; play over HLS, DASH or RTSP")]
    PlayRefused,
    /// The appliance ended the session: the key was rotated, the stream deleted.
    #[error("ended: {0}")]
    Ended(&'static str),
}

impl RtmpError {
    /// A short label for the `reason` of the rejected-sessions metric.
    fn reason(&self) -> &'static str {
        match self {
            RtmpError::Io(_) | RtmpError::Timeout => "connection",
            RtmpError::Handshake(_) | RtmpError::Protocol(_) | RtmpError::Oversized(_) => {
                "protocol"
            }
            RtmpError::UnknownApp(_) => "unknown_app",
            RtmpError::Auth(_) => "bad_key",
            RtmpError::Busy(_) => "already_publishing",
            RtmpError::NotPublishing | RtmpError::Media(DemuxError::NoSequenceHeader(_)) => {
                "bad_order"
            }
            RtmpError::Media(DemuxError::Tag(
                FlvError::UnsupportedAudioCodec(_) | FlvError::UnsupportedVideoCodec(_),
            )) => "unsupported_codec",
            RtmpError::Media(_) => "bad_media",
            RtmpError::PlayRefused => "play",
            RtmpError::Ended(_) => "ended",
        }
    }
}

/// Accepts RTMP connections forever, one task per connection.
pub async fn serve(listener: TcpListener, app: App) {
    let limit = ConnectionLimit::new(
        "rtmp",
        app.cfg.rtmp.max_connections_per_client,
        app.metrics.clone(),
    );
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                let Some(slot) = limit.admit(peer.ip()) else {
                    continue;
                };
                let span = tracing::info_span!("rtmp", %peer, stream = tracing::field::Empty);
                let app = app.clone();
                tokio::spawn(
                    async move {
                        let _slot = slot;
                        let mut conn = Connection::new(peer, app);
                        match conn.run(sock).await {
                            Ok(()) => info!("RTMP session closed"),
                            Err(e) => {
                                if conn.publisher.is_none()
                                    || !matches!(
                                        e,
                                        RtmpError::Io(_) | RtmpError::Timeout | RtmpError::Ended(_)
                                    )
                                {
                                    conn.app
                                        .metrics
                                        .rejected
                                        .with_label_values(&[e.reason()])
                                        .inc();
                                }
                                warn!(error = %e, "RTMP session ended");
                            }
                        }
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "RTMP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

struct Connection {
    peer: SocketAddr,
    app: App,
    publisher: Option<Publisher>,
    /// The hold on the stream while publishing.
    lease: Option<Lease>,
    meter: Option<IngestMeter>,
    demuxer: FlvDemuxer,
}

async fn read_some(sock: &mut TcpStream, buf: &mut [u8]) -> Result<usize, RtmpError> {
    match tokio::time::timeout(READ_TIMEOUT, sock.read(buf)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(RtmpError::Timeout),
    }
}

async fn write_all(sock: &mut TcpStream, bytes: &[u8]) -> Result<(), RtmpError> {
    match tokio::time::timeout(WRITE_TIMEOUT, sock.write_all(bytes)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(RtmpError::Timeout),
    }
}

impl Connection {
    fn new(peer: SocketAddr, app: App) -> Connection {
        Connection {
            peer,
            app,
            publisher: None,
            lease: None,
            meter: None,
            demuxer: FlvDemuxer::new(0),
        }
    }

    async fn run(&mut self, mut sock: TcpStream) -> Result<(), RtmpError> {
        sock.set_nodelay(true)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut handshake = Handshake::new(PeerType::Server);
        let leftover = loop {
            let n = read_some(&mut sock, &mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            match handshake.process_bytes(&buf[..n]) {
                Ok(HandshakeProcessResult::InProgress { response_bytes }) => {
                    write_all(&mut sock, &response_bytes).await?;
                }
                Ok(HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                }) => {
                    write_all(&mut sock, &response_bytes).await?;
                    break remaining_bytes;
                }
                Err(e) => return Err(RtmpError::Handshake(format!("{e:?}"))),
            }
        };
        let (mut session, initial) = ServerSession::new(ServerSessionConfig::new())
            .map_err(|e| RtmpError::Protocol(format!("{e:?}")))?;
        self.handle_results(&mut sock, &mut session, initial)
            .await?;
        // The bytes that came with the end of the handshake go first, then each read is
        // handed to the session straight from the read buffer.
        let mut pending = leftover;
        let mut unanswered = 0usize;
        loop {
            let n = if pending.is_empty() {
                let read = read_some(&mut sock, &mut buf);
                let n = match &self.lease {
                    Some(lease) => tokio::select! {
                        n = read => n?,
                        why = lease.ended() => return Err(RtmpError::Ended(why)),
                    },
                    None => read.await?,
                };
                if n == 0 {
                    return Ok(());
                }
                n
            } else {
                0
            };
            let input: &[u8] = if n == 0 { &pending } else { &buf[..n] };
            let results = session
                .handle_input(input)
                .map_err(|e| RtmpError::Protocol(format!("{e:?}")))?;
            let progress = results
                .iter()
                .any(|r| matches!(r, ServerSessionResult::RaisedEvent(_)));
            if progress {
                unanswered = 0;
            } else {
                unanswered += input.len();
                if unanswered > MAX_BYTES_WITHOUT_MESSAGE {
                    return Err(RtmpError::Oversized(unanswered));
                }
            }
            pending.clear();
            if self
                .handle_results(&mut sock, &mut session, results)
                .await?
            {
                return Ok(());
            }
        }
    }

    /// Sends responses and acts on events. Returns true when the publisher finished.
    async fn handle_results(
        &mut self,
        sock: &mut TcpStream,
        session: &mut ServerSession,
        results: Vec<ServerSessionResult>,
    ) -> Result<bool, RtmpError> {
        let mut finished = false;
        for r in results {
            match r {
                ServerSessionResult::OutboundResponse(p) => write_all(sock, &p.bytes).await?,
                ServerSessionResult::RaisedEvent(ev) => {
                    let more = self.on_event(session, ev).await;
                    match more {
                        Ok((out, done)) => {
                            for r in out {
                                if let ServerSessionResult::OutboundResponse(p) = r {
                                    write_all(sock, &p.bytes).await?;
                                }
                            }
                            finished |= done;
                        }
                        Err((out, e)) => {
                            for r in out {
                                if let ServerSessionResult::OutboundResponse(p) = r {
                                    // Best effort: tell the peer why before closing.
                                    let _ = write_all(sock, &p.bytes).await;
                                }
                            }
                            return Err(e);
                        }
                    }
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(finished)
    }

    /// Handles one session event: the results to send, and whether publishing finished;
    /// or the results to send before closing, and the error.
    #[allow(clippy::type_complexity)]
    async fn on_event(
        &mut self,
        session: &mut ServerSession,
        ev: ServerSessionEvent,
    ) -> Result<(Vec<ServerSessionResult>, bool), (Vec<ServerSessionResult>, RtmpError)> {
        let proto = |e: rml_rtmp::sessions::ServerSessionError| {
            (Vec::new(), RtmpError::Protocol(format!("{e:?}")))
        };
        match ev {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if app_name.split('?').next() != Some(APP_NAME) {
                    let out = session
                        .reject_request(
                            request_id,
                            "NetConnection.Connect.Rejected",
                            "unknown application",
                        )
                        .unwrap_or_default();
                    return Err((out, RtmpError::UnknownApp(app_name)));
                }
                Ok((session.accept_request(request_id).map_err(proto)?, false))
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => match self.start_publish(&stream_key).await {
                Ok(()) => Ok((session.accept_request(request_id).map_err(proto)?, false)),
                Err(e) => {
                    let out = session
                        .reject_request(request_id, "NetStream.Publish.BadName", &e.to_string())
                        .unwrap_or_default();
                    Err((out, e))
                }
            },
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                let out = session
                    .reject_request(
                        request_id,
                        "NetStream.Play.Failed",
                        "RTMP playback is not offered",
                    )
                    .unwrap_or_default();
                Err((out, RtmpError::PlayRefused))
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                self.on_media(TrackId::Video, data, timestamp.value)
                    .map_err(|e| (Vec::new(), e))?;
                Ok((Vec::new(), false))
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                self.on_media(TrackId::Audio, data, timestamp.value)
                    .map_err(|e| (Vec::new(), e))?;
                Ok((Vec::new(), false))
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                info!("publisher finished");
                self.publisher = None;
                self.lease = None;
                Ok((Vec::new(), true))
            }
            _ => Ok((Vec::new(), false)),
        }
    }

    async fn start_publish(&mut self, publish_name: &str) -> Result<(), RtmpError> {
        if self.publisher.is_some() {
            return Err(RtmpError::Protocol(
                "second publish on one connection".into(),
            ));
        }
        let requested = publish_name.split_once('?').map(|(name, _)| name);
        if let Some(requested) = requested {
            // Name the stream in the log even if the key turns out wrong (never the key).
            tracing::Span::current().record("stream", requested);
        }
        let auth = stream_keys::authorize_publish(&self.app.db, publish_name).await?;
        if requested.is_none() {
            tracing::Span::current().record("stream", auth.name.as_str());
        }
        let holder = Holder::Publisher {
            key_hash: auth.key_hash,
        };
        let lease = self
            .app
            .registry
            .lease(&auth.uid, holder)
            .await
            .map_err(RtmpError::Ended)?;
        let entry = self
            .app
            .open_stream(&auth.uid)
            .await
            .map_err(|_| RtmpError::Ended("the stream was deleted"))?;
        let publisher = entry.hub.publish(&self.peer.to_string())?;
        self.demuxer = FlvDemuxer::new(publisher.base_ms());
        self.publisher = Some(publisher);
        self.lease = Some(lease);
        self.meter = Some(IngestMeter::new(&self.app.metrics, &entry.name));
        info!(stream = %entry.name, "publishing");
        Ok(())
    }

    /// Passes one audio or video message body through the demuxer into the hub.
    fn on_media(&mut self, track: TrackId, body: Bytes, wire_ms: u32) -> Result<(), RtmpError> {
        let publisher = self.publisher.as_ref().ok_or(RtmpError::NotPublishing)?;
        let jumps = self.demuxer.jumps();
        let out = match track {
            TrackId::Video => self.demuxer.video(&body, wire_ms, Instant::now())?,
            TrackId::Audio => self.demuxer.audio(&body, wire_ms, Instant::now())?,
        };
        if self.demuxer.jumps() > jumps {
            warn!(
                track = track.name(),
                wire_ms, "publisher's timestamps jumped; the stream goes on from its last frame"
            );
        }
        match out {
            Demuxed::NewParams(p) => {
                match &*p {
                    TrackParams::Video(v) => {
                        info!(codec = %v.codec_string(), width = v.width, height = v.height, "video sequence header")
                    }
                    TrackParams::Audio(a) => {
                        info!(codec = %a.codec_string(), rate = a.sample_rate, channels = a.channels, "audio sequence header")
                    }
                }
                publisher.set_params(p);
            }
            Demuxed::Frame(f) => {
                let len = f.data.len();
                publisher.send(f);
                if let Some(m) = self.meter.as_mut() {
                    m.frame(track, len);
                }
            }
            Demuxed::Nothing => {}
        }
        Ok(())
    }
}
