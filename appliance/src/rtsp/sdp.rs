//! SDP (RFC 8866) both ways.
//!
//! - Answered to DESCRIBE: one media section per track, H.264 per RFC 6184 §8.1
//!   (`sprop-parameter-sets`, `profile-level-id`, `packetization-mode=1`) and AAC per
//!   RFC 3640 §4.1 (`mode=AAC-hbr`, `config` = the AudioSpecificConfig in hex).
//! - Sent by a publisher with ANNOUNCE: parsed with sdp-types into [`AnnouncedMedia`],
//!   refusing what streambox cannot carry.

use crate::media::{TrackId, TrackParams};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

/// RTP payload type of a track (dynamic range, RFC 3551 §6).
pub fn payload_type(track: TrackId) -> u8 {
    match track {
        TrackId::Video => 96,
        TrackId::Audio => 97,
    }
}

/// The session description of a live stream with these tracks. Each media section's
/// `a=control` is the track name, relative to the Content-Base (`…/live/NAME/`).
pub fn describe(params: &BTreeMap<TrackId, Arc<TrackParams>>, session_id: u64) -> String {
    let mut s = format!(
        "v=0\r\no=- {session_id} 1 IN IP4 0.0.0.0\r\ns=streambox\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\na=range:npt=now-\r\n"
    );
    for (track, p) in params {
        let pt = payload_type(*track);
        match &**p {
            TrackParams::Video(v) => {
                let sets: Vec<String> = v
                    .sps
                    .iter()
                    .chain(v.pps.iter())
                    .map(|n| BASE64.encode(n))
                    .collect();
                let _ = write!(
                    s,
                    "m=video 0 RTP/AVP {pt}\r\na=rtpmap:{pt} H264/90000\r\na=fmtp:{pt} packetization-mode=1;profile-level-id={:02X}{:02X}{:02X};sprop-parameter-sets={}\r\na=framesize:{pt} {}-{}\r\n",
                    v.profile_idc, v.constraints, v.level_idc, sets.join(","), v.width, v.height
                );
            }
            TrackParams::Audio(a) => {
                let config: String = a.asc.iter().map(|b| format!("{b:02X}")).collect();
                let _ = write!(
                    s,
                    "m=audio 0 RTP/AVP {pt}\r\na=rtpmap:{pt} MPEG4-GENERIC/{}/{}\r\na=fmtp:{pt} streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config={config}\r\n",
                    a.sample_rate, a.channels
                );
            }
        }
        let _ = write!(s, "a=control:{}\r\n", track.name());
    }
    s
}

/// An ANNOUNCE body that cannot be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// Not SDP.
    #[error("the session description does not parse: {0}")]
    Parse(String),
    /// A media section with a codec streambox does not take.
    #[error("unsupported media {0}; streambox takes H.264 video and AAC or G.711 audio")]
    Unsupported(String),
    /// More than one video or audio section.
    #[error("more than one {0} track; streambox takes one video and one audio track")]
    TooMany(&'static str),
    /// No media section at all.
    #[error("no media in the session description")]
    NoMedia,
}

/// One media section of an announced SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncedMedia {
    /// Video or audio.
    pub track: TrackId,
    /// The `a=control` value (a URL or a path relative to the request URL); empty when
    /// absent.
    pub control: String,
    /// The RTP payload type.
    pub payload_type: u8,
    /// The encoding name in upper case (`H264`, `MPEG4-GENERIC`, `PCMA`, `PCMU`).
    pub encoding: String,
    /// RTP clock rate, Hz.
    pub clock_rate: u32,
    /// Audio channels (1 when not given).
    pub channels: u16,
    /// The `a=fmtp` parameters of the payload type, if any.
    pub fmtp: Option<String>,
}

/// An ANNOUNCE body that streambox can take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The media sections, in order.
    pub medias: Vec<AnnouncedMedia>,
    /// The session's `a=tool` (e.g. `libavformat 59.27.100`), naming the sender.
    pub tool: Option<String>,
}

/// Parses an ANNOUNCE body: at most one H.264 video and one AAC/G.711 audio section.
///
/// # Errors
/// [`AnnounceError`] for anything else.
pub fn parse_announce(body: &[u8]) -> Result<Announcement, AnnounceError> {
    let session =
        sdp_types::Session::parse(body).map_err(|e| AnnounceError::Parse(e.to_string()))?;
    let tool = session
        .get_first_attribute_value("tool")
        .flatten()
        .map(str::to_string);
    let mut out: Vec<AnnouncedMedia> = Vec::new();
    for m in &session.medias {
        let pt: u8 = m
            .fmt
            .split_whitespace()
            .next()
            .and_then(|f| f.parse().ok())
            .filter(|pt| *pt < 128)
            .ok_or_else(|| AnnounceError::Parse(format!("bad payload type {:?}", m.fmt)))?;
        let attr = |name: &str| {
            m.attributes.iter().find_map(|a| {
                let v = a.value.as_deref()?;
                let (p, rest) = v.split_once(' ')?;
                (a.attribute == name && p.trim() == pt.to_string()).then(|| rest.trim().to_string())
            })
        };
        // Static payload types need no rtpmap (RFC 3551 §6).
        let rtpmap = attr("rtpmap").or(match pt {
            0 => Some("PCMU/8000".into()),
            8 => Some("PCMA/8000".into()),
            _ => None,
        });
        let mut parts = rtpmap.as_deref().unwrap_or("").split('/');
        let encoding = parts.next().unwrap_or("").to_ascii_uppercase();
        let clock_rate: u32 = parts.next().and_then(|r| r.parse().ok()).unwrap_or(0);
        let channels: u16 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
        let track = match (m.media.as_str(), encoding.as_str()) {
            ("video", "H264") => TrackId::Video,
            ("audio", "MPEG4-GENERIC" | "PCMA" | "PCMU") => TrackId::Audio,
            (media, _) => {
                let name = if encoding.is_empty() {
                    format!("payload type {pt}")
                } else {
                    encoding.clone()
                };
                return Err(AnnounceError::Unsupported(format!("{media}/{name}")));
            }
        };
        if clock_rate == 0 || channels == 0 || channels > 8 {
            return Err(AnnounceError::Parse(format!("bad rtpmap {rtpmap:?}")));
        }
        if out.iter().any(|o| o.track == track) {
            return Err(AnnounceError::TooMany(track.name()));
        }
        out.push(AnnouncedMedia {
            track,
            control: m
                .get_first_attribute_value("control")
                .flatten()
                .unwrap_or("")
                .to_string(),
            payload_type: pt,
            encoding,
            clock_rate,
            channels,
            fmtp: attr("fmtp"),
        });
    }
    if out.is_empty() {
        return Err(AnnounceError::NoMedia);
    }
    Ok(Announcement { medias: out, tool })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `ffmpeg -f rtsp` announces for H.264 + AAC.
    const FFMPEG_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=tool:libavformat 59.27.100\r\nm=video 0 RTP/AVP 96\r\nb=AS:1500\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z01AH9oBQBbsBEAAAAMAQAAADIPGDKg=,aO88gA==; profile-level-id=4D401F\r\na=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\nb=AS:128\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\na=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=1190\r\na=control:streamid=1\r\n";

    #[test]
    fn parses_what_ffmpeg_announces() {
        let a = parse_announce(FFMPEG_SDP.as_bytes()).expect("parse");
        assert_eq!(a.tool.as_deref(), Some("libavformat 59.27.100"));
        let m = a.medias;
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].track, m[0].payload_type, m[0].clock_rate),
            (TrackId::Video, 96, 90000)
        );
        assert_eq!(m[0].control, "streamid=0");
        assert!(m[0]
            .fmtp
            .as_deref()
            .is_some_and(|f| f.contains("sprop-parameter-sets")));
        assert_eq!(
            (m[1].encoding.as_str(), m[1].clock_rate, m[1].channels),
            ("MPEG4-GENERIC", 48000, 2)
        );
    }

    #[test]
    fn refuses_what_it_cannot_carry() {
        let h265 = FFMPEG_SDP.replace("H264/90000", "H265/90000");
        assert_eq!(
            parse_announce(h265.as_bytes()),
            Err(AnnounceError::Unsupported("video/H265".into()))
        );
        let opus = FFMPEG_SDP.replace("MPEG4-GENERIC/48000/2", "opus/48000/2");
        assert!(matches!(
            parse_announce(opus.as_bytes()),
            Err(AnnounceError::Unsupported(_))
        ));
        let two = format!("{FFMPEG_SDP}m=video 0 RTP/AVP 98\r\na=rtpmap:98 H264/90000\r\n");
        assert_eq!(
            parse_announce(two.as_bytes()),
            Err(AnnounceError::TooMany("video"))
        );
        assert!(matches!(
            parse_announce(b"hello"),
            Err(AnnounceError::Parse(_))
        ));
        assert_eq!(
            parse_announce(b"v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\n"),
            Err(AnnounceError::NoMedia)
        );
        // G.711 with a static payload type and no rtpmap.
        let pcma = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 8\r\na=control:trackID=1\r\n";
        let m = parse_announce(pcma.as_bytes()).expect("pcma").medias;
        assert_eq!((m[0].encoding.as_str(), m[0].clock_rate), ("PCMA", 8000));
    }
}
