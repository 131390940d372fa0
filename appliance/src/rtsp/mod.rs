//! RTSP: serving every live stream to RTSP players (PLAY), whatever its source.
//!
//! | spec | where |
//! | --- | --- |
//! | RFC 2326 (RTSP 1.0) methods, sessions, interleaving (§10.12) | [`server`] |
//! | RFC 3550 (RTP, RTCP sender reports and BYE) | [`rtp`], [`server`] |
//! | RFC 6184 (H.264 over RTP: single NAL unit, FU-A) | [`rtp`] |
//! | RFC 3640 (AAC over RTP, AAC-hbr) | [`rtp`] |
//! | RFC 8866 (SDP), RFC 6184 §8.1, RFC 3640 §4.1 | [`sdp`] |

pub mod auth;
pub mod depacketize;
pub mod record;
pub mod rtp;
pub mod rtp_in;
pub mod sdp;
pub mod server;
