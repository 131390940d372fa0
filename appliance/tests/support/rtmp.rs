//! An RTMP publisher built on rml_rtmp's client session, for sessions ffmpeg cannot
//! produce: media in the wrong order, or tags replayed from real FLV files.

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// One tag of an FLV file.
pub struct FlvTag {
    /// 8 audio, 9 video, 18 script data.
    pub kind: u8,
    /// Timestamp in milliseconds.
    pub ms: u32,
    /// The tag body (what RTMP carries in an audio or video message).
    pub body: Bytes,
}

/// The audio and video tags of an FLV file (Adobe FLV 10.1 §E.3-E.4).
pub fn flv_tags(path: &Path) -> Vec<FlvTag> {
    let data = std::fs::read(path).expect("read flv");
    assert_eq!(&data[..3], b"FLV", "not an FLV file");
    let mut pos = u32::from_be_bytes(data[5..9].try_into().expect("4")) as usize + 4;
    let mut tags = Vec::new();
    while pos + 11 <= data.len() {
        let kind = data[pos] & 0x1f;
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let ms = u32::from_be_bytes([data[pos + 7], data[pos + 4], data[pos + 5], data[pos + 6]]);
        let body = Bytes::copy_from_slice(&data[pos + 11..pos + 11 + size]);
        if kind == 8 || kind == 9 {
            tags.push(FlvTag { kind, ms, body });
        }
        pos += 11 + size + 4;
    }
    tags
}

/// Completes the client side of the RTMP handshake; returns the socket and any bytes
/// the server sent past it.
pub fn handshake(addr: SocketAddr) -> (TcpStream, Vec<u8>) {
    let mut sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut hs = Handshake::new(PeerType::Client);
    sock.write_all(&hs.generate_outbound_p0_and_p1().expect("c0c1"))
        .expect("write");
    let mut buf = vec![0u8; 8192];
    loop {
        let n = sock.read(&mut buf).expect("read handshake");
        assert!(n > 0, "server closed during handshake");
        match hs.process_bytes(&buf[..n]).expect("handshake") {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes).expect("write")
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                sock.write_all(&response_bytes).expect("write");
                return (sock, remaining_bytes);
            }
        }
    }
}

/// An rml_rtmp client session on a socket.
pub struct Client {
    pub sock: TcpStream,
    session: ClientSession,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let (sock, leftover) = handshake(addr);
        let (session, initial) = ClientSession::new(ClientSessionConfig::new()).expect("session");
        let mut c = Client { sock, session };
        c.send_all(initial);
        c.feed(&leftover);
        let r = c
            .session
            .request_connection("live".into())
            .expect("connect request");
        c.send_all(vec![r]);
        c.until(|e| matches!(e, ClientSessionEvent::ConnectionRequestAccepted));
        c
    }

    fn send_all(&mut self, results: Vec<ClientSessionResult>) {
        for r in results {
            if let ClientSessionResult::OutboundResponse(p) = r {
                self.sock.write_all(&p.bytes).expect("write");
            }
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Vec<ClientSessionEvent> {
        if bytes.is_empty() {
            return Vec::new();
        }
        let results = self.session.handle_input(bytes).expect("client input");
        let mut events = Vec::new();
        for r in results {
            match r {
                ClientSessionResult::OutboundResponse(p) => {
                    self.sock.write_all(&p.bytes).expect("write")
                }
                ClientSessionResult::RaisedEvent(e) => events.push(e),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        events
    }

    fn until(&mut self, want: impl Fn(&ClientSessionEvent) -> bool) {
        let mut buf = vec![0u8; 65536];
        loop {
            let n = self.sock.read(&mut buf).expect("read");
            assert!(n > 0, "server closed the connection");
            if self.feed(&buf[..n]).iter().any(&want) {
                return;
            }
        }
    }

    pub fn publish(&mut self, name: &str) {
        let r = self
            .session
            .request_publishing(name.into(), PublishRequestType::Live)
            .expect("publish request");
        self.send_all(vec![r]);
        self.until(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted));
    }

    /// Asks to publish `name` and reads until the server answers or closes (for names
    /// the server refuses); whether the publish was accepted.
    pub fn try_publish(&mut self, name: &str) -> bool {
        let r = self
            .session
            .request_publishing(name.into(), PublishRequestType::Live)
            .expect("publish request");
        self.send_all(vec![r]);
        self.sock
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = vec![0u8; 65536];
        loop {
            let n = match self.sock.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            let Ok(results) = self.session.handle_input(&buf[..n]) else {
                return false;
            };
            for r in results {
                match r {
                    ClientSessionResult::RaisedEvent(
                        ClientSessionEvent::PublishRequestAccepted,
                    ) => return true,
                    ClientSessionResult::OutboundResponse(p) => {
                        let _ = self.sock.write_all(&p.bytes);
                    }
                    _ => {}
                }
            }
        }
    }

    pub fn video(&mut self, body: Bytes, ms: u32) {
        let r = self
            .session
            .publish_video_data(body, RtmpTimestamp::new(ms), false)
            .expect("video");
        self.send_all(vec![r]);
    }

    pub fn audio(&mut self, body: Bytes, ms: u32) {
        let r = self
            .session
            .publish_audio_data(body, RtmpTimestamp::new(ms), false)
            .expect("audio");
        self.send_all(vec![r]);
    }

    /// Sends FLV tags (from [`flv_tags`]) paced in real time from `t0`, their timestamps
    /// shifted by `offset_ms`.
    pub fn send_tags(&mut self, tags: &[FlvTag], offset_ms: u32, t0: std::time::Instant) {
        for t in tags {
            let ms = t.ms + offset_ms;
            let due = t0 + Duration::from_millis(u64::from(ms));
            if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(wait);
            }
            match t.kind {
                8 => self.audio(t.body.clone(), ms),
                9 => self.video(t.body.clone(), ms),
                _ => {}
            }
        }
    }
}
