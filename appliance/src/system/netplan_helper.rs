//! The network helper: the one privileged piece between the service and netplan.
//!
//! netplan-dbus answers only callers with uid 0 or `CAP_SYS_ADMIN` (its sd-bus methods
//! are not marked unprivileged, and it asks polkit nothing), so the unprivileged service
//! cannot call it. `streambox netplan-helper` runs as root with `CAP_NET_ADMIN` alone,
//! behind a Unix socket only the `streambox` group may open (`streambox-netplan.service`),
//! and takes a fixed set of typed requests, one JSON line per connection, each answered
//! with one JSON line:
//!
//! | request | answer |
//! | --- | --- |
//! | `{"op": "get"}` | `{"answer": "yaml", "yaml"}`: `netplan get all` |
//! | `{"op": "try", "wired": [Wired], "seconds"}` | `{"answer": "trying", "path", "previous"}` |
//! | `{"op": "confirm", "path"}` | `{"answer": "done"}` |
//! | `{"op": "cancel", "path"}` | `{"answer": "done"}` |
//! | `{"op": "recover", "path", "previous", "proposed"}` | `{"answer": "recovered", "how": Recovery}` |
//! | `{"op": "hostname", "name"}` | `{"answer": "done"}` |
//! | `{"op": "ntp", "servers"}` | `{"answer": "done"}` |
//! | `{"op": "vpn", "tunnel": Tunnel or null}` | `{"answer": "vpn", "public_key"}` |
//! | `{"op": "vpn_status"}` | `{"answer": "vpn_status", "peers": [PeerStatus]}` |
//!
//! or `{"answer": "invalid", "message"}` (refused, nothing changed) or `{"answer":
//! "failed", "message"}`. The helper checks every setting itself ([`Wired::check`],
//! [`hostname::check`]) and refuses interfaces configured by hand, so a compromised
//! service can do no more than the network page can. It writes two files itself, the
//! host name's ([`hostname::STATE_FILE`]) and timesyncd's drop-in
//! ([`timesync::STATE_FILE`]); netplan-dbus writes the network settings, into the one
//! file [`super::netplan_dbus::ORIGIN`]. The VPN's interface it sets up itself
//! ([`wireguard::apply`], with `CAP_NET_ADMIN`, its only capability), keeping the box's
//! private key in [`wireguard::STATE_DIR`], which only root may read.

use super::netplan::{self, Configured, Wired};
use super::netplan_dbus::{Bus, BusError};
use super::wireguard::{self, PeerStatus, Tunnel};
use super::{hostname, timesync};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Where the appliance's helper listens (its unit's runtime directory, root:streambox
/// 0750; the socket is 0660).
pub const SOCKET: &str = "/run/streambox-netplan/socket";

/// The shortest and longest trial, in seconds.
pub const TRIAL_SECONDS: std::ops::RangeInclusive<u32> = 10..=600;

/// The longest request line, in bytes.
const MAX_LINE: u64 = 256 * 1024;

/// Each interface's settings before a change: `None` where streambox had none.
pub type Previous = Vec<(String, Option<Wired>)>;

/// A request to the helper.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The configuration now.
    Get,
    /// Put `wired` on trial for `seconds`.
    Try {
        /// The interfaces to change.
        wired: Vec<Wired>,
        /// The trial's length, within [`TRIAL_SECONDS`].
        seconds: u32,
    },
    /// Keep the trial of netplan's configuration object `path`.
    Confirm {
        /// The object path [`Answer::Trying`] gave.
        path: String,
    },
    /// Revert the trial of `path` now.
    Cancel {
        /// The object path [`Answer::Trying`] gave.
        path: String,
    },
    /// End a trial that was not confirmed in time, or that a restart cut short, and make
    /// sure `previous` is what is in force ([`Recovery`]): cancel it if netplan still
    /// tries it; else write `previous` back wherever netplan's configuration still has
    /// `proposed`; else apply the configuration again if the kernel still has one of the
    /// trial's fixed addresses.
    Recover {
        /// The object path [`Answer::Trying`] gave.
        path: String,
        /// The settings before the trial.
        previous: Previous,
        /// The settings tried.
        proposed: Vec<Wired>,
    },
    /// Make `name` the box's host name (and its mDNS name).
    Hostname {
        /// A name [`hostname::check`] takes.
        name: String,
    },
    /// Make `servers` the NTP servers (none: timesyncd's defaults).
    Ntp {
        /// Servers [`timesync::check`] takes.
        servers: Vec<String>,
    },
    /// Set the VPN's interface up as `tunnel` says, or take it down (`None`).
    Vpn {
        /// A tunnel [`Tunnel::check`] takes.
        tunnel: Option<Tunnel>,
    },
    /// The VPN's peers as the kernel sees them.
    VpnStatus,
}

/// What it took to end a trial and have the previous settings in force
/// ([`Request::Recover`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovery {
    /// netplan still tried it: cancelled, and netplan put the previous settings back.
    Cancelled,
    /// Neither netplan's configuration nor the interfaces had the trial's settings any
    /// more: nothing was left to do.
    Ended,
    /// netplan's configuration was the previous one again, but an interface still had
    /// one of the trial's fixed addresses (netplan's own revert had not run to its end):
    /// the configuration was applied again, and an address that outlived that removed.
    Reapplied,
    /// netplan's configuration still had the trial's settings (the box had restarted
    /// into them): the previous settings were written back and applied.
    Rewritten,
}

/// The helper's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    /// `netplan get all`'s YAML.
    Yaml {
        /// The YAML.
        yaml: String,
    },
    /// On trial now.
    Trying {
        /// netplan's configuration object for the trial.
        path: String,
        /// The changed interfaces' settings before.
        previous: Previous,
    },
    /// Done.
    Done,
    /// The VPN is as asked.
    Vpn {
        /// The box's public key (Base64).
        public_key: Option<String>,
    },
    /// The VPN's peers now.
    VpnStatus {
        /// Each peer the kernel has.
        peers: Vec<PeerStatus>,
    },
    /// A trial ended, and the previous settings are in force.
    Recovered {
        /// What it took.
        how: Recovery,
    },
    /// Refused; nothing was changed.
    Invalid {
        /// Why, for the person who asked.
        message: String,
    },
    /// Failed.
    Failed {
        /// What failed.
        message: String,
    },
}

/// Why a request to the helper got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// No helper at the socket (not the appliance).
    #[error(
        "the network cannot be changed here: the appliance's network helper is not running ({0})"
    )]
    Unavailable(String),
    /// The connection failed, or the answer was not one.
    #[error("the network helper failed: {0}")]
    Broken(String),
    /// No answer in time.
    #[error("the network helper did not answer in time")]
    Timeout,
}

/// Sends `request` to the helper at `socket`, waiting at most `deadline`.
///
/// # Errors
/// [`HelperError`].
pub async fn call(
    socket: &Path,
    request: &Request,
    deadline: Duration,
) -> Result<Answer, HelperError> {
    let exchange = async {
        let mut s = UnixStream::connect(socket)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound
                | std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::PermissionDenied => {
                    HelperError::Unavailable(format!("{}: {e}", socket.display()))
                }
                _ => HelperError::Broken(e.to_string()),
            })?;
        let mut line =
            serde_json::to_vec(request).map_err(|e| HelperError::Broken(e.to_string()))?;
        line.push(b'\n');
        s.write_all(&line)
            .await
            .map_err(|e| HelperError::Broken(e.to_string()))?;
        let mut answer = String::new();
        BufReader::new(s)
            .take(MAX_LINE)
            .read_line(&mut answer)
            .await
            .map_err(|e| HelperError::Broken(e.to_string()))?;
        serde_json::from_str(&answer).map_err(|e| HelperError::Broken(format!("its answer: {e}")))
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| HelperError::Timeout)?
}

/// Serves requests on `listener` until the process ends. Changes are made one at a
/// time; a client has 10 s to send its request.
pub async fn serve(listener: UnixListener) {
    let changes = std::sync::Arc::new(tokio::sync::Mutex::new(()));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a helper connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let changes = changes.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(read).take(MAX_LINE);
            let read = reader.read_line(&mut line);
            let answer = match tokio::time::timeout(Duration::from_secs(10), read).await {
                Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
                    Ok(Request::Get) => handle(Request::Get).await,
                    Ok(r) => {
                        let _one = changes.lock().await;
                        handle(r).await
                    }
                    Err(e) => Answer::Invalid {
                        message: format!("not a request: {e}"),
                    },
                },
                Ok(Err(e)) => Answer::Invalid {
                    message: format!("reading the request: {e}"),
                },
                Err(_) => Answer::Invalid {
                    message: "no request within 10 s".into(),
                },
            };
            if let Ok(mut out) = serde_json::to_vec(&answer) {
                out.push(b'\n');
                let _ = write.write_all(&out).await;
            }
        });
    }
}

fn failed(e: impl std::fmt::Display) -> Answer {
    Answer::Failed {
        message: e.to_string(),
    }
}

fn invalid(message: String) -> Answer {
    Answer::Invalid { message }
}

/// A netplan configuration object's path, as netplan-dbus makes them.
fn valid_path(path: &str) -> bool {
    path.strip_prefix("/io/netplan/Netplan/config/")
        .is_some_and(|id| {
            !id.is_empty() && id.len() <= 16 && id.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Refuses a request on its values alone, before anything reaches netplan.
fn refuse(r: &Request) -> Option<String> {
    match r {
        Request::Get | Request::VpnStatus => None,
        Request::Vpn { tunnel } => tunnel.as_ref().and_then(|t| t.check().err()),
        Request::Try { wired, seconds } => {
            check_change(wired, *seconds, &super::network::links()).err()
        }
        Request::Hostname { name } => hostname::check(name).err(),
        Request::Ntp { servers } => timesync::check(servers).err(),
        Request::Confirm { path } | Request::Cancel { path } => {
            (!valid_path(path)).then(|| format!("{path:?} is not a netplan configuration"))
        }
        Request::Recover {
            previous, proposed, ..
        } => {
            let settings = previous
                .iter()
                .filter_map(|(_, w)| w.as_ref())
                .chain(proposed);
            let names = previous.iter().map(|(n, _)| n);
            settings
                .map(Wired::check)
                .find_map(Result::err)
                .or_else(|| {
                    names
                        .filter(|n| !netplan::valid_interface_name(n))
                        .map(|n| format!("{n:?} is not an interface name"))
                        .next()
                })
        }
    }
}

async fn handle(r: Request) -> Answer {
    if let Some(m) = refuse(&r) {
        return invalid(m);
    }
    // The VPN is the kernel's, not the bus's.
    let dir = Path::new(wireguard::STATE_DIR);
    match &r {
        Request::Vpn { tunnel } => {
            return match wireguard::apply(tunnel.as_ref(), dir).await {
                Ok(k) => Answer::Vpn {
                    public_key: Some(k),
                },
                Err(e) if e.contains("Address already in use") => invalid(format!(
                    "the VPN's UDP port is in use on this box ({e}); choose another"
                )),
                Err(e) => failed(e),
            }
        }
        Request::VpnStatus => {
            return match wireguard::status().await {
                Ok(peers) => Answer::VpnStatus { peers },
                Err(e) => failed(e),
            }
        }
        _ => {}
    }
    let bus = match Bus::system().await {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    match r {
        Request::Get => match bus.current().await {
            Ok(yaml) => Answer::Yaml { yaml },
            Err(e) => failed(e),
        },
        Request::Try { wired, seconds } => try_change(&bus, wired, seconds).await,
        Request::Confirm { path } => match bus.config_at(&path).await {
            Ok(c) => c.apply().await.map_or_else(failed, |()| Answer::Done),
            Err(e) => failed(e),
        },
        Request::Cancel { path } => match bus.config_at(&path).await {
            Ok(c) => c.cancel().await.map_or_else(failed, |()| Answer::Done),
            Err(e) => failed(e),
        },
        Request::Recover {
            path,
            previous,
            proposed,
        } => match recover(&bus, &path, &previous, &proposed).await {
            Ok(how) => Answer::Recovered { how },
            Err(e) => failed(e),
        },
        Request::Hostname { name } => {
            let file = Path::new(hostname::STATE_FILE);
            match hostname::set(bus.connection(), file, &name).await {
                Ok(()) => Answer::Done,
                Err(hostname::Error::Invalid(m)) => invalid(m),
                Err(e) => failed(e),
            }
        }
        Request::Ntp { servers } => {
            let file = Path::new(timesync::STATE_FILE);
            match timesync::set(bus.connection(), file, &servers).await {
                Ok(()) => Answer::Done,
                Err(timesync::Error::Invalid(m)) => invalid(m),
                Err(e) => failed(e),
            }
        }
        // Answered above, without the bus.
        Request::Vpn { .. } | Request::VpnStatus => failed("not a request for the system bus"),
    }
}

/// Refuses a change the box must not try, with the reason: a length outside
/// [`TRIAL_SECONDS`], no interface, settings [`Wired::check`] refuses, an interface given
/// twice or one not among `links` (the kernel's interfaces). The service checks this
/// before asking, the helper again before doing.
///
/// # Errors
/// The reason, a sentence.
pub fn check_change(wired: &[Wired], seconds: u32, links: &[String]) -> Result<(), String> {
    if !TRIAL_SECONDS.contains(&seconds) {
        return Err(format!(
            "a change must be confirmed within {}-{} seconds, not {seconds}",
            TRIAL_SECONDS.start(),
            TRIAL_SECONDS.end()
        ));
    }
    if wired.is_empty() {
        return Err("no interface's settings were given".into());
    }
    for (i, w) in wired.iter().enumerate() {
        w.check()?;
        if wired[..i].iter().any(|o| o.interface == w.interface) {
            return Err(format!("{} is given twice", w.interface));
        }
        if !links.contains(&w.interface) {
            return Err(format!(
                "this box has no network interface named {:?} (it has {})",
                w.interface,
                links.join(", ")
            ));
        }
    }
    Ok(())
}

async fn try_change(bus: &Bus, wired: Vec<Wired>, seconds: u32) -> Answer {
    let config = match bus.config().await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let answer = put_on_trial(&config, wired, seconds).await;
    if !matches!(answer, Answer::Trying { .. }) {
        config.discard().await;
    }
    answer
}

async fn put_on_trial(
    config: &super::netplan_dbus::Config,
    wired: Vec<Wired>,
    seconds: u32,
) -> Answer {
    let now = match config.get().await.map(|t| Configured::parse(&t)) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return failed(e),
        Err(e) => return failed(e),
    };
    let mut previous = Vec::new();
    for w in &wired {
        if now.by_hand(&w.interface).is_some() {
            return invalid(format!(
                "{} was configured by hand on the box; streambox leaves it alone",
                w.interface
            ));
        }
        previous.push((w.interface.clone(), now.wired(&w.interface).cloned()));
    }
    if previous
        .iter()
        .zip(&wired)
        .all(|((_, p), w)| p.as_ref() == Some(w))
    {
        return invalid("these settings are in force already".into());
    }
    for w in &wired {
        let deltas = match w.deltas() {
            Ok(d) => d,
            Err(e) => return failed(e),
        };
        for d in deltas {
            if let Err(e) = config.set(&d).await {
                return match e {
                    BusError::Call { detail, .. } => {
                        invalid(format!("netplan refused {}: {detail}", w.interface))
                    }
                    e => failed(e),
                };
            }
        }
    }
    match config.try_for(seconds).await {
        Ok(()) => Answer::Trying {
            path: config.path().to_string(),
            previous,
        },
        Err(e) => failed(e),
    }
}

/// The trial's fixed addresses that the previous settings do not have and that an
/// interface in `live` (the kernel's) still carries, as `(interface, "ADDRESS/PREFIX")`.
pub fn leftover(
    previous: &[(String, Option<Wired>)],
    proposed: &[Wired],
    live: &[super::network::Interface],
) -> Vec<(String, String)> {
    let fixed = |w: &Wired| {
        let mut out = Vec::new();
        if let netplan::Ipv4::Static {
            address, prefix, ..
        } = w.ipv4
        {
            out.push((std::net::IpAddr::V4(address), prefix));
        }
        if let netplan::Ipv6::Static {
            address, prefix, ..
        } = w.ipv6
        {
            out.push((std::net::IpAddr::V6(address), prefix));
        }
        out
    };
    let mut out = Vec::new();
    for w in proposed {
        let before: Vec<_> = previous
            .iter()
            .filter(|(name, _)| *name == w.interface)
            .filter_map(|(_, p)| p.as_ref())
            .flat_map(fixed)
            .collect();
        let Some(now) = live.iter().find(|i| i.name == w.interface) else {
            continue;
        };
        for (ip, prefix) in fixed(w) {
            if !before.contains(&(ip, prefix))
                && now
                    .addresses
                    .iter()
                    .any(|a| a.ip == ip && a.prefix == prefix)
            {
                out.push((w.interface.clone(), format!("{ip}/{prefix}")));
            }
        }
    }
    out
}

/// How long an address netplan's apply should have removed may take to go.
const LEFTOVER_GRACE: Duration = Duration::from_secs(10);

/// [`leftover`] against the kernel's interfaces now (none when they cannot be read).
async fn leftover_now(
    previous: &[(String, Option<Wired>)],
    proposed: &[Wired],
) -> Vec<(String, String)> {
    let (previous, proposed) = (previous.to_vec(), proposed.to_vec());
    tokio::task::spawn_blocking(move || {
        let live = super::network::interfaces().unwrap_or_default();
        leftover(&previous, &proposed, &live)
    })
    .await
    .unwrap_or_default()
}

/// Ends a trial ([`Request::Recover`]). netplan's own revert is not trusted to have run:
/// the boot test saw a trial's address stay on its interface after netplan had put the
/// previous file back, with the page saying the trial was undone.
async fn recover(
    bus: &Bus,
    path: &str,
    previous: &[(String, Option<Wired>)],
    proposed: &[Wired],
) -> Result<Recovery, String> {
    if valid_path(path) {
        if let Ok(c) = bus.config_at(path).await {
            if c.cancel().await.is_ok() {
                return Ok(Recovery::Cancelled);
            }
        }
    }
    let config = bus.config().await.map_err(|e| e.to_string())?;
    let yaml = config.get().await.map_err(|e| e.to_string())?;
    let now = Configured::parse(&yaml).map_err(|e| e.to_string())?;
    if !proposed.iter().any(|w| now.wired(&w.interface) == Some(w)) {
        if leftover_now(previous, proposed).await.is_empty() {
            config.discard().await;
            return Ok(Recovery::Ended);
        }
        tracing::warn!(
            "a trial's address outlived netplan's revert; applying the configuration again"
        );
        config.apply().await.map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + LEFTOVER_GRACE;
        let mut left = leftover_now(previous, proposed).await;
        while !left.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            left = leftover_now(previous, proposed).await;
        }
        for (interface, address) in left {
            tracing::warn!(
                interface,
                address,
                "removing a trial's address netplan left"
            );
            wireguard::run("ip", &["address", "delete", &address, "dev", &interface]).await?;
        }
        return Ok(Recovery::Reapplied);
    }
    for (name, before) in previous {
        let deltas = match before {
            Some(w) => w.deltas().map_err(|e| e.to_string())?,
            None => [netplan::removal(name), String::new()],
        };
        for d in deltas.iter().filter(|d| !d.is_empty()) {
            config.set(d).await.map_err(|e| e.to_string())?;
        }
    }
    config.apply().await.map_err(|e| e.to_string())?;
    Ok(Recovery::Rewritten)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_typed_and_paths_checked() {
        let r: Request = serde_json::from_str(r#"{"op":"get"}"#).expect("get");
        assert!(matches!(r, Request::Get));
        assert!(serde_json::from_str::<Request>(r#"{"op":"shell","cmd":"id"}"#).is_err());
        assert!(
            serde_json::from_str::<Request>(r#"{"op":"confirm","path":"/x","extra":1}"#).is_err()
        );
        assert!(valid_path("/io/netplan/Netplan/config/ULJIU0"));
        for bad in [
            "/io/netplan/Netplan/config/",
            "/io/netplan/Netplan/config/../x",
            "/org/x",
        ] {
            assert!(!valid_path(bad), "{bad}");
        }
    }

    #[test]
    fn a_tried_address_still_in_force_is_found() {
        let at = |a: &str| -> Wired {
            serde_json::from_value(serde_json::json!({
                "interface": "enp0s3",
                "ipv4": {"mode": "static", "address": a, "prefix": 24},
                "ipv6": {"mode": "static", "address": "fd00:76::20", "prefix": 64},
            }))
            .expect("wired")
        };
        let live = |addrs: &[(&str, u8)]| {
            vec![super::super::network::Interface {
                name: "enp0s3".into(),
                loopback: false,
                addresses: addrs
                    .iter()
                    .map(|(ip, prefix)| super::super::network::Address {
                        ip: ip.parse().expect("ip"),
                        prefix: *prefix,
                    })
                    .collect(),
            }]
        };
        let previous = vec![("enp0s3".to_string(), Some(at("192.168.76.20")))];
        let proposed = vec![at("192.168.76.21")];
        // netplan's revert ran: only the previous addresses.
        let reverted = live(&[("192.168.76.20", 24), ("fd00:76::20", 64)]);
        assert!(leftover(&previous, &proposed, &reverted).is_empty());
        // It did not: the tried address is there (the IPv6 one both have is not counted).
        let stuck = live(&[("192.168.76.21", 24), ("fd00:76::20", 64)]);
        assert_eq!(
            leftover(&previous, &proposed, &stuck),
            [("enp0s3".to_string(), "192.168.76.21/24".to_string())]
        );
        // From DHCP (no previous settings of streambox's): a fixed address tried counts.
        let from_dhcp = vec![("enp0s3".to_string(), None)];
        assert_eq!(leftover(&from_dhcp, &proposed, &stuck).len(), 2);
        // Another interface's addresses are not the trial's.
        let mut other = stuck.clone();
        other[0].name = "enp0s2".into();
        assert!(leftover(&previous, &proposed, &other).is_empty());
    }
}
