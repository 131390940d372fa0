//! streambox: a streaming appliance in one service. RTMP and RTSP publishers and RTSP
//! cameras in; LL-HLS, MPEG-DASH and RTSP out, through one hub per stream; recordings,
//! ABR renditions, and the admin pages and API. See `docs/architecture.md` in the
//! repository for the shape of the whole, and `SECURITY.md` for the threat model.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod backup;
pub mod config;
pub mod connections;
pub mod db;
pub mod dvr;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod http;
pub mod hub;
pub mod ingest;
pub mod manage;
pub mod media;
pub mod metrics;
pub mod packager;
pub mod protect;
pub mod rtsp;
pub mod setup;
pub mod streams;
pub mod system;
pub mod tls;
pub mod transcode;
pub mod viewers;
