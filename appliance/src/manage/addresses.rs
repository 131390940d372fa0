//! Where the box is reached: the URLs publishers enter (RTMP "Server", RTSP ANNOUNCE),
//! the watch pages and viewer links people open, for the wizard, the stream pages and
//! the API to show.

use crate::config::Config;
use crate::system::network;
use std::net::{IpAddr, SocketAddr};

/// The hosts a service listening on `listen` is reached at, as URL hosts: the
/// configured `public_host`; else the listen address itself when it is one address;
/// else every non-loopback address of its family among `found` (`0.0.0.0` takes IPv4
/// only, `[::]` both), or loopback when there is nothing else. Link-local IPv6 is left
/// out: it needs a zone index no browser takes in a URL.
pub fn hosts(cfg: &Config, found: &[network::Interface], listen: SocketAddr) -> Vec<String> {
    if let Some(h) = &cfg.public_host {
        return vec![h.clone()];
    }
    let url_host = |ip: IpAddr| match ip {
        IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    if !listen.ip().is_unspecified() {
        return vec![url_host(listen.ip())];
    }
    let mut out: Vec<String> = found
        .iter()
        .filter(|i| !i.loopback)
        .flat_map(|i| i.addresses.iter())
        .filter(|a| match a.ip {
            IpAddr::V4(_) => true,
            IpAddr::V6(ip) => listen.is_ipv6() && (ip.segments()[0] & 0xffc0) != 0xfe80,
        })
        .map(|a| url_host(a.ip))
        .collect();
    if out.is_empty() {
        out.push("127.0.0.1".into());
    }
    out
}

/// The first of [`hosts`] for a service listening on `listen`, with this machine's
/// interfaces now.
pub fn first_host(cfg: &Config, listen: SocketAddr) -> String {
    let found = network::interfaces().unwrap_or_default();
    hosts(cfg, &found, listen)
        .into_iter()
        .next()
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// The RTMP server URL publishers enter (OBS "Server"; the key goes in "Stream Key"),
/// with the port when not 1935.
pub fn rtmp_url(host: &str, port: u16) -> String {
    match port {
        1935 => format!("rtmp://{host}/{}", crate::ingest::rtmp::APP_NAME),
        p => format!("rtmp://{host}:{p}/{}", crate::ingest::rtmp::APP_NAME),
    }
}

/// Where publishers send stream `name`: the RTMP server URL and the RTSP ANNOUNCE URL.
pub fn publish_urls(cfg: &Config, name: &str) -> (String, String) {
    let (rtmp, rtsp) = (cfg.rtmp.listen, cfg.rtsp.listen);
    (
        rtmp_url(&first_host(cfg, rtmp), rtmp.port()),
        format!(
            "rtsp://{}:{}/live/{name}",
            first_host(cfg, rtsp),
            rtsp.port()
        ),
    )
}

/// The web address of the box, `http://HOST:PORT`, followed by `path` (which starts
/// with `/`).
pub fn web_url(cfg: &Config, path: &str) -> String {
    let web = cfg.http.listen;
    format!("http://{}:{}{path}", first_host(cfg, web), web.port())
}
