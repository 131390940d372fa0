//! IPv6 address registration: the box tells a directory (a server the organisation runs,
//! on the internet) its global IPv6 addresses and the URLs it answers at, so the
//! directory can send viewers and administrators to it. The admin sets the directory's
//! URL, a bearer token the directory gave, how often to register again, and optionally
//! the certificate of a private certificate authority the directory's HTTPS uses.
//!
//! The box registers when the settings are saved, when its global IPv6 addresses change
//! (read again at each of the kernel's announcements, [`crate::system::network::watch`]),
//! at the set interval, and again after a failure with a growing pause
//! ([`backoff`]). Each attempt is one HTTPS `POST` of a [`Payload`]
//! (`Content-Type: application/json`, `Authorization: Bearer TOKEN`); any 2xx answer is
//! accepted. 401 or 403 means the token is refused: said on the page, tried again at
//! the interval only. The README has the contract for directories.
//!
//! Every change of the settings is in the audit log (`network.registration`); the
//! token is never logged nor shown again.

use super::{iso_ms as iso, now_ms, Actor, Refused};
use crate::system::network::{global_ipv6_addresses, Interface};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The setting the registration's settings are kept in (JSON).
const SETTING: &str = "registration";
/// The setting with the box's identity for directories (32 hex digits).
const ID_SETTING: &str = "registration_id";

/// The shortest and longest interval between registrations, seconds.
pub const INTERVAL_SECONDS: std::ops::RangeInclusive<u32> = 60..=86_400;
/// The interval when none is given, seconds.
pub const DEFAULT_INTERVAL: u32 = 900;
/// How long one attempt may take, connection included.
const ATTEMPT_DEADLINE: Duration = Duration::from_secs(20);
/// The most of a directory's answer kept to show, bytes.
const ANSWER_LIMIT: usize = 2048;

/// The registration's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The directory's URL: `https://HOST[:PORT]/PATH`, no user or password in it.
    pub url: String,
    /// The bearer token the directory gave (visible ASCII, 1-4096 bytes).
    pub token: String,
    /// Seconds between registrations when nothing changes ([`INTERVAL_SECONDS`]).
    #[serde(default = "default_interval")]
    pub interval_seconds: u32,
    /// PEM certificates to trust for the directory besides the system's authorities
    /// (a private authority's, or the directory's own self-signed one).
    #[serde(default)]
    pub ca_pem: Option<String>,
}

fn default_interval() -> u32 {
    DEFAULT_INTERVAL
}

impl Settings {
    /// Checks the settings on their own, before any attempt.
    ///
    /// # Errors
    /// The reason, a sentence: a URL that is not `https://` with a host, or carries a
    /// user, password or fragment; a token that is empty, too long or not visible
    /// ASCII; an interval outside [`INTERVAL_SECONDS`]; certificates that are not PEM.
    pub fn check(&self) -> Result<(), String> {
        let url = url::Url::parse(self.url.trim())
            .map_err(|e| format!("the directory's URL {:?} is not a URL: {e}", self.url))?;
        if url.scheme() != "https" {
            return Err(format!(
                "the directory's URL must begin with https:// (the token must not cross the network in the clear), not {}://",
                url.scheme()
            ));
        }
        if url.host().is_none() {
            return Err("the directory's URL has no host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "the directory's URL must not carry a user or password; give the token instead"
                    .into(),
            );
        }
        if url.fragment().is_some() {
            return Err("the directory's URL must not have a #fragment".into());
        }
        if self.token.is_empty() || self.token.len() > 4096 {
            return Err("the token must be 1-4096 characters".into());
        }
        if !self.token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token must be visible ASCII characters, without spaces".into());
        }
        if !INTERVAL_SECONDS.contains(&self.interval_seconds) {
            return Err(format!(
                "the interval must be {}-{} seconds, not {}",
                INTERVAL_SECONDS.start(),
                INTERVAL_SECONDS.end(),
                self.interval_seconds
            ));
        }
        if let Some(pem) = &self.ca_pem {
            certificates(pem)?;
        }
        Ok(())
    }
}

/// The certificates in `pem`.
fn certificates(pem: &str) -> Result<Vec<reqwest::Certificate>, String> {
    use rustls_pki_types::pem::PemObject;
    let ders: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the certificate is not PEM: {e}"))?;
    if ders.is_empty() {
        return Err("no certificate was given (-----BEGIN CERTIFICATE-----)".into());
    }
    ders.iter()
        .map(|d| {
            reqwest::Certificate::from_der(d)
                .map_err(|e| format!("the certificate cannot be used: {e}"))
        })
        .collect()
}

/// What the box sends a directory: the JSON body of each `POST`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payload {
    /// This box, for as long as its database lives: 32 hex digits, random.
    pub id: String,
    /// Its host name (`NAME.local` on its LAN).
    pub name: String,
    /// The service's version.
    pub version: String,
    /// Why now: `settings`, `start`, `addresses`, `interval` or `retry`.
    pub reason: String,
    /// Its global IPv6 addresses now, sorted (none is a registration too: the
    /// directory learns the box has none).
    pub addresses: Vec<Ipv6Addr>,
    /// Where it answers at each address.
    pub urls: Vec<Urls>,
    /// When the attempt was made, ISO 8601 UTC.
    pub sent_at: String,
}

/// The service's URLs at one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Urls {
    /// The address.
    pub address: Ipv6Addr,
    /// The admin pages and API (HTTPS when the box has it).
    pub admin: String,
    /// The viewers' portal.
    pub portal: String,
    /// RTSP players' base URL (`rtsp://[ADDR]:PORT/`, then the stream's name).
    pub rtsp: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// A 2xx answer.
    Accepted {
        /// Its status.
        status: u16,
        /// Its body, up to 2 KiB, as text.
        answer: String,
    },
    /// 401 or 403: the token is refused (wrong, or expired).
    Refused {
        /// Its status.
        status: u16,
        /// Its body, up to 2 KiB, as text.
        answer: String,
    },
    /// No answer, or another status: tried again after [`backoff`].
    Failed {
        /// The status, when there was an answer.
        status: Option<u16>,
        /// What went wrong.
        error: String,
    },
}

/// One attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// When, ISO 8601 UTC.
    pub at: String,
    /// Why.
    pub reason: String,
    /// The addresses sent.
    pub addresses: Vec<Ipv6Addr>,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The registration as the API and page show it (the token left out).
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// Whether the box registers.
    pub enabled: bool,
    /// The directory's URL.
    pub url: Option<String>,
    /// Seconds between registrations.
    pub interval_seconds: Option<u32>,
    /// Whether extra certificates are trusted for the directory.
    pub ca: bool,
    /// The last attempt, since the service started.
    pub last: Option<Attempt>,
    /// Failures in a row.
    pub failures: u32,
    /// When the next attempt is due, ISO 8601 UTC.
    pub next: Option<String>,
}

/// The pause before retry `failures` (1 for the first): 2 s, doubling, at most 300 s and
/// at most the interval.
pub fn backoff(failures: u32, interval_seconds: u32) -> Duration {
    let s = 2u64.saturating_mul(1 << failures.saturating_sub(1).min(16));
    Duration::from_secs(s.min(300).min(u64::from(interval_seconds)))
}

#[derive(Default)]
struct State {
    last: Option<Attempt>,
    failures: u32,
    next_ms: Option<i64>,
}

/// Where the service answers, for [`Urls`].
#[derive(Debug, Clone)]
pub struct Ports {
    /// HTTPS port, when the service has HTTPS.
    pub https: Option<u16>,
    /// Plain HTTP port.
    pub http: u16,
    /// RTSP port.
    pub rtsp: u16,
}

impl Ports {
    fn urls(&self, a: Ipv6Addr) -> Urls {
        let with = |scheme: &str, port: u16, default: u16| {
            if port == default {
                format!("{scheme}://[{a}]/")
            } else {
                format!("{scheme}://[{a}]:{port}/")
            }
        };
        Urls {
            address: a,
            admin: match self.https {
                Some(p) => with("https", p, 443),
                None => with("http", self.http, 80),
            },
            portal: with("http", self.http, 80),
            rtsp: with("rtsp", self.rtsp, 554),
        }
    }
}

/// The registration: its settings, its state, and the task that registers.
pub struct Registration {
    db: SqlitePool,
    ports: Ports,
    /// Whether a directory may be at a loopback or link-local address
    /// (`sources.allow_local_addresses`).
    allow_local: bool,
    state: Mutex<State>,
    /// Told when the settings change (the task starts over).
    changed: tokio::sync::Notify,
    /// One change of the settings at a time.
    busy: tokio::sync::Mutex<()>,
}

impl Registration {
    /// The registration over `db`, for a service answering at `ports`; directories at
    /// loopback or link-local addresses only when `allow_local`.
    pub fn new(db: SqlitePool, ports: Ports, allow_local: bool) -> Arc<Registration> {
        Arc::new(Registration {
            db,
            ports,
            allow_local,
            state: Mutex::new(State::default()),
            changed: tokio::sync::Notify::new(),
            busy: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The settings saved, if any.
    ///
    /// # Errors
    /// [`Refused::Failed`] when the database fails.
    pub async fn settings(&self) -> Result<Option<Settings>, Refused> {
        super::json_setting(&self.db, SETTING).await
    }

    /// The registration as shown.
    ///
    /// # Errors
    /// As [`Registration::settings`].
    pub async fn view(&self) -> Result<View, Refused> {
        let s = self.settings().await?;
        let st = self.lock();
        Ok(View {
            enabled: s.is_some(),
            url: s.as_ref().map(|s| s.url.clone()),
            interval_seconds: s.as_ref().map(|s| s.interval_seconds),
            ca: s.as_ref().is_some_and(|s| s.ca_pem.is_some()),
            last: st.last.clone(),
            failures: st.failures,
            next: s.as_ref().and(st.next_ms).map(iso),
        })
    }

    async fn id(&self) -> String {
        match crate::db::secret(&self.db, ID_SETTING).await {
            Ok(v) => v.iter().take(16).map(|b| format!("{b:02x}")).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "reading the registration id failed");
                String::new()
            }
        }
    }

    async fn payload(&self, reason: &str, addresses: Vec<Ipv6Addr>) -> Payload {
        Payload {
            id: self.id().await,
            name: crate::system::network::host_name(),
            version: env!("CARGO_PKG_VERSION").into(),
            reason: reason.into(),
            urls: addresses.iter().map(|a| self.ports.urls(*a)).collect(),
            addresses,
            sent_at: iso(now_ms()),
        }
    }

    /// Saves `s` after one attempt with it succeeds or fails on the directory's side
    /// (a status other than 401/403): the box then registers with them from now on.
    ///
    /// # Errors
    /// [`Refused::Invalid`] for settings [`Settings::check`] refuses, a directory at a
    /// loopback or link-local address (unless allowed), a directory that cannot be
    /// reached (no connection, TLS refused, no answer in 20 s), or a token it
    /// refuses (401/403); nothing is saved then. [`Refused::Failed`] when the database
    /// fails.
    pub async fn set(
        &self,
        actor: &Actor,
        mut s: Settings,
        interfaces: &[Interface],
    ) -> Result<View, Refused> {
        s.url = s.url.trim().to_string();
        s.ca_pem = s.ca_pem.filter(|p| !p.trim().is_empty());
        s.check().map_err(Refused::Invalid)?;
        if !self.allow_local {
            let url = url::Url::parse(&s.url).map_err(|e| Refused::Invalid(e.to_string()))?;
            if let Some(local) = crate::system::network::local_target(&url, 443).await {
                return Err(Refused::Invalid(format!(
                    "the directory's address ({local}) is a loopback or link-local address, which the admin pages do not connect to; set sources.allow_local_addresses in the configuration if the directory really is there"
                )));
            }
        }
        let _busy = self.busy.lock().await;
        let addresses = global_ipv6_addresses(interfaces);
        let payload = self.payload("settings", addresses.clone()).await;
        let outcome = attempt(&s, &payload).await;
        match &outcome {
            Outcome::Failed {
                status: None,
                error,
            } => {
                return Err(Refused::Invalid(format!(
                    "the directory at {} could not be reached: {error}",
                    s.url
                )))
            }
            Outcome::Refused { status, answer } => {
                return Err(Refused::Invalid(format!(
                    "the directory refused the token ({status}): {answer}"
                )))
            }
            _ => {}
        }
        let text = serde_json::to_string(&s).map_err(Refused::failed)?;
        crate::db::set_setting(&self.db, SETTING, &text)
            .await
            .map_err(Refused::failed)?;
        // New settings start a new count: an old directory's failures do not lengthen
        // the new one's backoff.
        self.lock().failures = 0;
        self.record(&s, "settings", addresses, outcome);
        self.changed.notify_one();
        self.audit(actor, &format!("register with {}", s.url)).await;
        self.view().await
    }

    /// Stops registering; the settings are forgotten (the directory is not told).
    ///
    /// # Errors
    /// [`Refused::Failed`] when the database fails.
    pub async fn clear(&self, actor: &Actor) -> Result<View, Refused> {
        let _busy = self.busy.lock().await;
        crate::db::set_setting(&self.db, SETTING, "")
            .await
            .map_err(Refused::failed)?;
        *self.lock() = State::default();
        self.changed.notify_one();
        self.audit(actor, "registration off").await;
        self.view().await
    }

    async fn audit(&self, actor: &Actor, detail: &str) {
        super::audit(&self.db, actor, "network.registration", detail).await;
    }

    /// Keeps `outcome` as the last attempt and sets when the next is due.
    fn record(&self, s: &Settings, reason: &str, addresses: Vec<Ipv6Addr>, outcome: Outcome) {
        let mut st = self.lock();
        st.failures = match outcome {
            Outcome::Failed { .. } => st.failures + 1,
            _ => 0,
        };
        let wait = match st.failures {
            0 => Duration::from_secs(u64::from(s.interval_seconds)),
            n => backoff(n, s.interval_seconds),
        };
        st.next_ms = Some(now_ms() + wait.as_millis() as i64);
        match &outcome {
            Outcome::Accepted { status, .. } => {
                tracing::info!(
                    status,
                    reason,
                    addresses = addresses.len(),
                    "registered with the directory"
                )
            }
            Outcome::Refused { status, .. } => {
                tracing::warn!(status, "the directory refused the registration's token")
            }
            Outcome::Failed { error, .. } => {
                tracing::warn!(
                    error,
                    failures = st.failures,
                    "registering with the directory failed"
                )
            }
        }
        st.last = Some(Attempt {
            at: iso(now_ms()),
            reason: reason.into(),
            addresses,
            outcome,
        });
    }

    /// Registers until the process ends: at start, when the global IPv6 addresses in
    /// `interfaces` change, at the interval, after failures with [`backoff`], and
    /// whenever the settings change (they are read again each time).
    pub async fn run(
        self: Arc<Self>,
        mut interfaces: tokio::sync::watch::Receiver<Vec<Interface>>,
    ) {
        let mut sent: Option<Vec<Ipv6Addr>> = None;
        let mut reason = "start";
        loop {
            let settings = match self.settings().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the registration settings failed");
                    None
                }
            };
            let now = global_ipv6_addresses(&interfaces.borrow_and_update());
            if let Some(s) = &settings {
                let due = self.lock().next_ms.is_none_or(|n| n <= now_ms());
                if due || sent.as_ref() != Some(&now) {
                    let payload = self.payload(reason, now.clone()).await;
                    let outcome = attempt(s, &payload).await;
                    self.record(s, reason, now.clone(), outcome);
                    sent = Some(now);
                }
            }
            let wait = self
                .lock()
                .next_ms
                .filter(|_| settings.is_some())
                .map(|n| Duration::from_millis((n - now_ms()).max(0) as u64));
            let sleep = async {
                match wait {
                    Some(w) => tokio::time::sleep(w).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => {
                    reason = if self.lock().failures > 0 { "retry" } else { "interval" };
                }
                r = interfaces.changed() => {
                    if r.is_err() {
                        return;
                    }
                    reason = "addresses";
                }
                () = self.changed.notified() => {
                    // The settings were saved (and registered with) or cleared.
                    sent = self.lock().last.as_ref().map(|a| a.addresses.clone());
                    reason = "settings";
                }
            }
        }
    }
}

/// One registration: `payload` to the directory of `s`.
pub async fn attempt(s: &Settings, payload: &Payload) -> Outcome {
    let failed = |error: String| Outcome::Failed {
        status: None,
        error,
    };
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(ATTEMPT_DEADLINE)
        .user_agent(concat!("streambox/", env!("CARGO_PKG_VERSION")))
        .https_only(true);
    if let Some(pem) = &s.ca_pem {
        match certificates(pem) {
            Ok(certs) => {
                for c in certs {
                    builder = builder.add_root_certificate(c);
                }
            }
            Err(e) => return failed(e),
        }
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => return failed(format!("{e}")),
    };
    let body = match serde_json::to_vec(payload) {
        Ok(b) => b,
        Err(e) => return failed(e.to_string()),
    };
    let sent = client
        .post(&s.url)
        .bearer_auth(&s.token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let mut answer = match sent {
        Ok(a) => a,
        Err(e) => return failed(error_chain(&e)),
    };
    let status = answer.status().as_u16();
    let mut text = Vec::new();
    while text.len() < ANSWER_LIMIT {
        match answer.chunk().await {
            Ok(Some(c)) => text.extend_from_slice(&c),
            Ok(None) | Err(_) => break,
        }
    }
    text.truncate(ANSWER_LIMIT);
    let answer = String::from_utf8_lossy(&text).trim().to_string();
    match status {
        200..=299 => Outcome::Accepted { status, answer },
        401 | 403 => Outcome::Refused { status, answer },
        _ => Outcome::Failed {
            status: Some(status),
            error: format!("the directory answered {status}: {answer}"),
        },
    }
}

/// `e` and its sources, `: `-separated (reqwest's own text hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, token: &str) -> Settings {
        Settings {
            url: url.into(),
            token: token.into(),
            interval_seconds: DEFAULT_INTERVAL,
            ca_pem: None,
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(settings("https://dir.example/register", "abc.DEF-123_~+/=")
            .check()
            .is_ok());
        for (s, why) in [
            (settings("http://dir.example/", "t"), "https://"),
            (settings("dir.example/register", "t"), "not a URL"),
            (
                settings("https://user:pw@dir.example/", "t"),
                "user or password",
            ),
            (settings("https://dir.example/#x", "t"), "fragment"),
            (settings("https://dir.example/", ""), "1-4096"),
            (
                settings("https://dir.example/", "two words"),
                "visible ASCII",
            ),
            (settings("https://dir.example/", "tök"), "visible ASCII"),
            (
                Settings {
                    interval_seconds: 5,
                    ..settings("https://dir.example/", "t")
                },
                "60-86400",
            ),
            (
                Settings {
                    ca_pem: Some("not a certificate".into()),
                    ..settings("https://dir.example/", "t")
                },
                "no certificate",
            ),
        ] {
            let e = s.check().expect_err(&s.url);
            assert!(e.contains(why), "{s:?}: {e}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let secs: Vec<u64> = (1..=10).map(|n| backoff(n, 900).as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(9, 60).as_secs(), 60);
        assert_eq!(backoff(u32::MAX, 900).as_secs(), 300);
    }

    #[test]
    fn urls_at_an_address() {
        let p = Ports {
            https: Some(443),
            http: 80,
            rtsp: 8554,
        };
        let u = p.urls("2001:db8::5".parse().expect("ip"));
        assert_eq!(u.admin, "https://[2001:db8::5]/");
        assert_eq!(u.portal, "http://[2001:db8::5]/");
        assert_eq!(u.rtsp, "rtsp://[2001:db8::5]:8554/");
    }
}
