//! Authentication: administrators and their browser sessions, CSRF tokens for forms,
//! and stream keys for publishers.

pub mod csrf;
pub mod limit;
pub mod sessions;
pub mod stream_keys;
pub mod users;
pub mod viewer;
