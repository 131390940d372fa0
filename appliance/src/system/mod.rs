//! The appliance's host: hardware found on it, how busy it is, its network and VPN
//! ([`wireguard`]), data disk and time zones, memory, load and uptime, and the service's
//! recent log lines. [`netplan`] is the network settings' form in netplan's YAML.

pub mod console;
pub mod cpu;
pub mod hardware;
pub mod host;
pub mod hostname;
pub mod log;
pub mod netlink;
pub mod netplan;
pub mod netplan_dbus;
pub mod netplan_helper;
pub mod network;
pub mod storage;
pub mod systemd;
pub mod timesync;
pub mod update;
pub mod wireguard;
pub mod zones;
