//! Where the box is reached: the URLs publishers enter (RTMP "Server", RTSP ANNOUNCE),
//! the watch pages and viewer links people open, for the wizard, the stream pages and
//! the API to show.

use crate::config::Config;
use crate::system::network;
use std::net::{IpAddr, SocketAddr};

/// The loopback, link-local or unspecified address (this machine's own services,
/// 169.254/16, fe80::/10, 0.0.0.0) that `url`'s host is, or resolves to (port
/// `default_port` when the URL has none, for the lookup), if any: what the admin pages
/// do not connect to unless `sources.allow_local_addresses` is set, so a stolen session
/// cannot probe the box's own services. `None` too when a name does not resolve in
/// 5 s: connecting then fails like any unreachable host.
pub async fn local_target(url: &url::Url, default_port: u16) -> Option<IpAddr> {
    let port = url.port().unwrap_or(default_port);
    let addrs: Vec<IpAddr> = match url.host()? {
        url::Host::Ipv4(a) => vec![a.into()],
        url::Host::Ipv6(a) => vec![a.into()],
        url::Host::Domain(name) => {
            let found = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                tokio::net::lookup_host((name, port)),
            )
            .await;
            match found {
                Ok(Ok(a)) => a.map(|s| s.ip()).collect(),
                _ => return None,
            }
        }
    };
    addrs.into_iter().find(|a| {
        let a = a.to_canonical();
        a.is_loopback()
            || a.is_unspecified()
            || match a {
                IpAddr::V4(v4) => v4.is_link_local(),
                IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
            }
    })
}

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
