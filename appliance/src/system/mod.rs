//! The appliance's host: hardware found on it (more to come: network, VPN).

pub mod hardware;
