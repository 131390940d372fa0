//! RTSP (RFC 2326, RTSP 1.0): serving every live stream to RTSP players, whatever its
//! source, and taking RTSP publishers' ANNOUNCE and RECORD (whose media handling is
//! ingest: [`crate::ingest::rtsp_push`]).
//!
//! | spec | where |
//! | --- | --- |
//! | RFC 2326 methods, sessions, states, Transport negotiation | [`session`] (sans-IO) |
//! | RFC 2326 §10.12 interleaving, UDP ports, timeouts | [`server`] (transport) |
//! | RFC 3550 (RTP, RTCP sender reports and BYE) | [`rtp`], [`play`], [`rtp_in`] |
//! | RFC 6184 (H.264 over RTP: single NAL unit, STAP-A, FU-A) | [`rtp`], [`depacketize`] |
//! | RFC 3640 (AAC over RTP, AAC-hbr) | [`rtp`], [`depacketize`] |
//! | RFC 2617 (Basic and Digest for publishers) | [`auth`] |
//! | RFC 8866 (SDP), RFC 6184 §8.1, RFC 3640 §4.1 | [`sdp`] |

pub mod auth;
pub mod depacketize;
pub mod play;
pub mod rtp;
pub mod rtp_in;
pub mod sdp;
pub mod server;
pub mod session;
