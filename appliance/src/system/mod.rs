//! The appliance's host: hardware found on it, how busy it is (more to come: network,
//! VPN).

pub mod cpu;
pub mod hardware;
