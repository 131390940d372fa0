//! streambox's web pages, rendered on the server with Leptos (complete HTML; no wasm),
//! and the assets they use, embedded in the binary with rust-embed so the appliance
//! ships one file.
//!
//! This crate knows nothing of streams or the database: the service gathers what a page
//! shows into the plain structs here and mounts the pages on its router. Components are
//! ordinary Leptos components, so hydration can be switched on where a wasm target
//! exists.
//!
//! | page | what |
//! | --- | --- |
//! | `/`, `/watch` | [`portal::index`]: the public live streams, with thumbnails |
//! | `/watch/{stream}` | [`portal::watch`]: one stream full-width, hls.js (native HLS on Safari) |
//! | `/setup` | [`setup::page`]: the first-run wizard, one step per page |
//! | `/login` | [`admin::login`]: sign-in |
//! | `/admin` | [`admin::dashboard`]: every stream and camera, refreshing itself |
//! | `/admin/streams`, `/admin/streams/{stream}` | [`streams::list`], [`streams::detail`]: create, play (hls.js or dash.js), publish settings, recording, visibility and viewer links, recordings, rename, delete |
//! | `/admin/hardware` | [`hardware::page`]: capture devices (formats, sizes, rates), sound cards that capture, GPUs, following hotplug |
//! | `/admin/vpn` | [`vpn::page`]: remote access over WireGuard, peers with QR codes, who may open the admin pages |
//! | `/admin/system` | [`system::page`]: version, uptime, CPU, memory, disk, recent log lines |
//! | `/admin/account`, `/admin/audit` | [`admin::account`], [`admin::audit`] |
//! | `/assets/…` | [`assets::get`]: CSS, scripts, hls.js (from npm, pinned; license beside it) |

pub mod admin;
pub mod assets;
pub mod hardware;
pub mod network;
mod page;

pub use page::set_fault;
pub mod portal;
pub mod setup;
pub mod streams;
pub mod system;
pub mod vpn;
