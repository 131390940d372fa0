//! The appliance's host: hardware found on it, how busy it is, its network, data disk
//! and time zones (more to come: network changes, VPN).

pub mod cpu;
pub mod hardware;
pub mod network;
pub mod storage;
pub mod zones;
