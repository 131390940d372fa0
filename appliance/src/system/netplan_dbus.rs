//! netplan's own D-Bus API (netplan-dbus(8): `io.netplan.Netplan` at
//! `/io/netplan/Netplan` on the system bus), the one way the host's network is changed.
//! netplan-dbus runs as root, started by the bus on the first call, and answers only
//! root: the network helper ([`super::netplan_helper`]) calls it, on the service's
//! behalf.
//!
//! A change goes: [`Bus::config`] (a copy of the configuration), [`Config::set`] (deltas
//! into the copy), [`Config::try_for`] (`netplan try`: applied, reverted by netplan
//! itself unless accepted in time), then [`Config::apply`] (accept) or
//! [`Config::cancel`] (revert now). Every call has a deadline: a bus or a netplan that
//! hangs is an error, not a hung request.

use std::time::Duration;

#[zbus::proxy(
    interface = "io.netplan.Netplan",
    default_service = "io.netplan.Netplan",
    default_path = "/io/netplan/Netplan"
)]
trait Netplan {
    /// A new configuration object: a copy of `/{etc,run,lib}/netplan/*.yaml`.
    async fn config(&self) -> zbus::Result<zbus::OwnedObjectPath>;
}

#[zbus::proxy(
    interface = "io.netplan.Netplan.Config",
    default_service = "io.netplan.Netplan"
)]
trait NetplanConfig {
    /// `netplan get all` on the copy.
    async fn get(&self) -> zbus::Result<String>;
    /// `netplan set --origin-hint=HINT DELTA` on the copy.
    async fn set(&self, delta: &str, origin_hint: &str) -> zbus::Result<bool>;
    /// The copy becomes the configuration, under `netplan try --timeout=SECONDS`.
    #[zbus(name = "Try")]
    async fn trial(&self, seconds: u32) -> zbus::Result<bool>;
    /// Accepts a running try (or applies the copy with `netplan apply`).
    async fn apply(&self) -> zbus::Result<bool>;
    /// Reverts a running try, and discards the copy.
    async fn cancel(&self) -> zbus::Result<bool>;
}

/// The file under `/etc/netplan` (without `.yaml`) that the service's changes go to:
/// the one the image installs.
pub const ORIGIN: &str = "10-streambox-wired";

/// How long a call other than `Try` may take (`netplan apply` restarts networkd, which
/// takes seconds on a slow box).
const CALL_DEADLINE: Duration = Duration::from_secs(90);

/// Why a call to netplan failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No system bus, or no netplan on it (a developer's machine, not the appliance).
    #[error("the network cannot be changed here: netplan's D-Bus service is not available ({0})")]
    Unavailable(String),
    /// netplan answered with an error.
    #[error("netplan {method} failed: {detail}")]
    Call {
        /// The method.
        method: &'static str,
        /// What netplan said.
        detail: String,
    },
    /// netplan answered "false".
    #[error("netplan {0} did not succeed")]
    Refused(&'static str),
    /// netplan did not answer in time.
    #[error("netplan {0} did not answer in time")]
    Timeout(&'static str),
}

async fn call<T>(
    method: &'static str,
    deadline: Duration,
    f: impl std::future::Future<Output = zbus::Result<T>>,
) -> Result<T, BusError> {
    match tokio::time::timeout(deadline, f).await {
        Err(_) => Err(BusError::Timeout(method)),
        Ok(Err(e)) => Err(BusError::Call {
            method,
            detail: e.to_string(),
        }),
        Ok(Ok(t)) => Ok(t),
    }
}

async fn succeeded(
    method: &'static str,
    deadline: Duration,
    f: impl std::future::Future<Output = zbus::Result<bool>>,
) -> Result<(), BusError> {
    match call(method, deadline, f).await? {
        true => Ok(()),
        false => Err(BusError::Refused(method)),
    }
}

/// A connection to the system bus.
#[derive(Clone)]
pub struct Bus {
    conn: zbus::Connection,
}

impl Bus {
    /// Connects to the system bus.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when there is none (or it does not answer in 5 s).
    pub async fn system() -> Result<Bus, BusError> {
        match tokio::time::timeout(Duration::from_secs(5), zbus::Connection::system()).await {
            Ok(Ok(conn)) => Ok(Bus { conn }),
            Ok(Err(e)) => Err(BusError::Unavailable(e.to_string())),
            Err(_) => Err(BusError::Unavailable(
                "the system bus did not answer".into(),
            )),
        }
    }

    /// The connection, for the other services the helper calls.
    pub fn connection(&self) -> &zbus::Connection {
        &self.conn
    }

    /// A new configuration object, a copy of the configuration now.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when netplan is not on the bus; the others as named.
    pub async fn config(&self) -> Result<Config, BusError> {
        let netplan = NetplanProxy::new(&self.conn)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        let path = match call("Config", CALL_DEADLINE, netplan.config()).await {
            Err(BusError::Call { detail, .. }) if detail.contains("ServiceUnknown") => {
                return Err(BusError::Unavailable(detail))
            }
            r => r?,
        };
        self.config_at(path.as_str()).await
    }

    /// The configuration object at `path` (from [`Config::path`]), which netplan may
    /// have discarded since: calls on it then fail.
    ///
    /// # Errors
    /// [`BusError::Call`] when `path` is not an object path.
    pub async fn config_at(&self, path: &str) -> Result<Config, BusError> {
        let proxy = NetplanConfigProxy::new(&self.conn, path.to_string())
            .await
            .map_err(|e| BusError::Call {
                method: "Config",
                detail: e.to_string(),
            })?;
        Ok(Config {
            proxy,
            path: path.to_string(),
        })
    }

    /// The configuration now (`netplan get all`'s YAML), read through a copy that is
    /// discarded at once.
    ///
    /// # Errors
    /// As [`Bus::config`] and [`Config::get`].
    pub async fn current(&self) -> Result<String, BusError> {
        let c = self.config().await?;
        let text = c.get().await;
        c.discard().await;
        text
    }
}

/// One configuration object of netplan's.
pub struct Config {
    proxy: NetplanConfigProxy<'static>,
    path: String,
}

impl Config {
    /// Its object path (`/io/netplan/Netplan/config/ID`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Its YAML, as `netplan get all` prints it.
    ///
    /// # Errors
    /// [`BusError`].
    pub async fn get(&self) -> Result<String, BusError> {
        call("Get", CALL_DEADLINE, self.proxy.get()).await
    }

    /// Applies one `netplan set` delta (`network.ethernets.eth0=…`) to the copy, into
    /// [`ORIGIN`]`.yaml`. netplan checks it and refuses what it cannot parse.
    ///
    /// # Errors
    /// [`BusError`].
    pub async fn set(&self, delta: &str) -> Result<(), BusError> {
        succeeded("Set", CALL_DEADLINE, self.proxy.set(delta, ORIGIN)).await
    }

    /// Makes the copy the configuration, on trial for `seconds`: netplan reverts it by
    /// itself unless [`Config::apply`] comes first. Returns once the new configuration
    /// is in force.
    ///
    /// # Errors
    /// [`BusError`]; another try already running is [`BusError::Call`].
    pub async fn try_for(&self, seconds: u32) -> Result<(), BusError> {
        let deadline = Duration::from_secs(u64::from(seconds)) + CALL_DEADLINE;
        succeeded("Try", deadline, self.proxy.trial(seconds)).await
    }

    /// Accepts the running try; without one, applies the copy at once.
    ///
    /// # Errors
    /// [`BusError`].
    pub async fn apply(&self) -> Result<(), BusError> {
        succeeded("Apply", CALL_DEADLINE, self.proxy.apply()).await
    }

    /// Reverts the running try of this copy, and discards the copy.
    ///
    /// # Errors
    /// [`BusError`]; a copy netplan no longer has is [`BusError::Call`].
    pub async fn cancel(&self) -> Result<(), BusError> {
        succeeded("Cancel", CALL_DEADLINE, self.proxy.cancel()).await
    }

    /// Discards an unchanged copy; a failure only leaves netplan a small temporary
    /// directory, and is logged.
    pub async fn discard(&self) {
        if let Err(e) = self.cancel().await {
            tracing::debug!(error = %e, path = self.path, "discarding a netplan copy failed");
        }
    }
}
