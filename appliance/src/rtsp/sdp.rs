//! The SDP (RFC 8866) answered to DESCRIBE: one media section per track, H.264 per
//! RFC 6184 §8.1 (`sprop-parameter-sets`, `profile-level-id`, `packetization-mode=1`) and
//! AAC per RFC 3640 §4.1 (`mode=AAC-hbr`, `config` = the AudioSpecificConfig in hex).

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
