//! Service configuration: embedded defaults, overridden by an optional TOML file, then by
//! `STREAMBOX_*` environment variables (`STREAMBOX_HTTP__LISTEN=0.0.0.0:80`; a double
//! underscore separates a section from its key), then by command-line flags.
//! `STREAMBOX_LOG` (a tracing filter) and `STREAMBOX_CONFIG` (the file) are not fields.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration. Every field has a default, so an empty file is valid.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the SQLite database and the recordings live. Created on first start.
    pub data_dir: PathBuf,
    /// Host name or address printed in publisher settings (`rtmp://HOST/live`);
    /// the machine's host name when unset.
    pub public_host: Option<String>,
    /// RTMP ingest.
    pub rtmp: RtmpConfig,
    /// HTTP: live media, metrics.
    pub http: HttpConfig,
    /// RTSP: serving live streams to RTSP players.
    pub rtsp: RtspConfig,
    /// Live packaging (segments, parts, window).
    pub live: LiveConfig,
    /// Pulling RTSP cameras.
    pub sources: SourcesConfig,
    /// Recording.
    pub dvr: DvrConfig,
    /// ABR transcoding.
    pub abr: AbrConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
    /// Changing the host's network (the appliance).
    pub network: NetworkConfig,
    /// A file whose presence says the data partition could not be used this boot: the
    /// appliance's `streambox-data.service` writes the reason there when it runs the box
    /// on a stand-in in memory. Its text is shown on every setup, sign-in and admin
    /// page, in `/api/system` (`data_fault`) and on the console. Unset by default.
    pub data_fault_file: Option<PathBuf>,
    /// Where removable media are mounted: update bundles on them are offered on the
    /// System page. The appliance mounts a USB stick read-only at `usb-NAME` below it
    /// (`/etc/udev/rules.d/70-streambox-media.rules`). Default `/run/media`.
    pub removable_media_dir: PathBuf,
}

impl Config {
    /// Where the HTTPS certificate and key are: `http.tls_dir`, or `DATA_DIR/tls`.
    pub fn tls_dir(&self) -> PathBuf {
        self.http
            .tls_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("tls"))
    }
}

/// Where Prometheus metrics are served besides `/metrics` on the HTTP port (which needs
/// an administrator's session or an API token).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// A listener of its own that serves only `/metrics`, to anyone who can reach it:
    /// for a scraper on the box itself (`127.0.0.1:9120`). Unset by default. An address
    /// other than loopback opens the metrics, and the stream names in them, to that
    /// network.
    pub listen: Option<SocketAddr>,
}

/// Changing the host's network settings (through netplan's D-Bus API, on the
/// appliance).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Seconds a network change stays on trial: unless it is confirmed from a browser
    /// within them, the previous settings come back by themselves. 120 by default; a
    /// request may ask for 10-600.
    pub confirm_within: u32,
    /// The network helper's socket (`streambox netplan-helper`, run by the appliance
    /// as root with `CAP_NET_ADMIN` alone), through which every change goes.
    pub helper_socket: PathBuf,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            confirm_within: 120,
            helper_socket: PathBuf::from(crate::system::netplan_helper::SOCKET),
        }
    }
}

/// ABR transcoding limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AbrConfig {
    /// CPU cores ABR transcoding may take in all (decoding, scaling and encoding of every
    /// stream's rungs). Unset: 85 % of the machine's cores, the rest kept for ingest,
    /// packaging and serving.
    pub max_cpu: Option<f64>,
    /// Seconds before a rung that was dropped under overload (or did not fit when its
    /// ladder started) is tried again, if the machine has room by then. Doubles with
    /// each further drop of the same rung, up to 16 times this.
    pub retry_dropped_after: f64,
}

impl Default for AbrConfig {
    fn default() -> Self {
        AbrConfig {
            max_cpu: None,
            retry_dropped_after: 30.0,
        }
    }
}

impl AbrConfig {
    /// The budget in cores: `max_cpu`, or 85 % of the available cores.
    pub fn budget(&self) -> f64 {
        self.max_cpu.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            cores as f64 * 0.85
        })
    }
}

/// Recording settings that hold for the whole appliance (per-stream ones are in the
/// database: `streambox stream set`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DvrConfig {
    /// Recording pauses while the data disk has less than this many bytes free (live
    /// viewing goes on), and resumes by itself when space returns.
    pub min_free_bytes: u64,
}

impl Default for DvrConfig {
    fn default() -> Self {
        DvrConfig {
            min_free_bytes: 1 << 30,
        }
    }
}

/// Camera (RTSP pull) settings. Durations are in seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesConfig {
    /// The longest wait between reconnection attempts to a camera; waits start at one
    /// second and double up to this, with jitter.
    pub retry_max: f64,
    /// Whether the admin pages and the API may test and add cameras, and register with
    /// a directory, at loopback and link-local addresses (this machine's own ports,
    /// 169.254/16, fe80::/10). Off, so a stolen API token cannot scan the appliance's
    /// own services through "Test connection" or registration. The CLI
    /// (`streambox source add`) is not limited.
    pub allow_local_addresses: bool,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            retry_max: 30.0,
            allow_local_addresses: false,
        }
    }
}

/// RTMP ingest settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpConfig {
    /// Listen address; port 0 picks a free port (reported at start-up).
    pub listen: SocketAddr,
    /// The most RTMP connections one client address (an IPv4 address, or an IPv6 /64)
    /// may have open; more are closed at once.
    pub max_connections_per_client: usize,
}

/// HTTP server settings. Durations are in seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address; port 0 picks a free port (reported at start-up).
    pub listen: SocketAddr,
    /// A request's headers must arrive within this of the connection being ready for
    /// them (its opening, or the end of the previous response); else it is closed.
    pub header_timeout: f64,
    /// A form or API body must arrive within this; else 408 and the connection closes.
    pub body_timeout: f64,
    /// The most HTTP connections one client address (an IPv4 address, or an IPv6 /64)
    /// may have open; more get 503 and are closed. A browser opens about six.
    pub max_connections_per_client: usize,
    /// HTTPS listen address (the appliance image sets `0.0.0.0:443`); unset by default,
    /// so a developer's `streambox serve` serves plain HTTP only. When set, the admin
    /// pages, the wizard, sign-in and the API answer on it, and on `listen` they
    /// redirect there (308); viewers' pages and media answer on both.
    pub tls_listen: Option<SocketAddr>,
    /// Where the HTTPS certificate and key are kept (made at first start, see
    /// [`crate::tls`]); `DATA_DIR/tls` when unset.
    pub tls_dir: Option<PathBuf>,
}

/// RTSP server settings. Durations are in seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtspConfig {
    /// Listen address; port 0 picks a free port (reported at start-up).
    pub listen: SocketAddr,
    /// A request must arrive whole within this of its first byte (and the first one
    /// within this of the connection opening); else the connection closes.
    pub request_timeout: f64,
    /// A connection on which nothing arrives for this long closes. Sessions announce it
    /// as their timeout (RFC 2326 §12.37): players send keep-alives sooner.
    pub idle_timeout: f64,
    /// The most RTSP connections one client address (an IPv4 address, or an IPv6 /64)
    /// may have open; more are closed at once.
    pub max_connections_per_client: usize,
    /// The UDP ports (first and last, inclusive) that RTP/RTCP over UDP uses, in even/odd
    /// pairs, so a firewall can open exactly them (the appliance image opens
    /// 40000-40999). Unset: any free ports.
    pub udp_ports: Option<[u16; 2]>,
}

impl Default for RtspConfig {
    fn default() -> Self {
        RtspConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8554)),
            request_timeout: 10.0,
            idle_timeout: 60.0,
            max_connections_per_client: 32,
            udp_ports: None,
        }
    }
}

/// Live packaging settings. Durations are in seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    /// Target segment duration; segments are cut at the first keyframe at or after it.
    pub segment_target: f64,
    /// Target LL-HLS partial segment duration (EXT-X-PART-INF PART-TARGET).
    pub part_target: f64,
    /// Media kept in the live playlists and in memory.
    pub window: f64,
    /// Time-shift: while a stream is recorded, its live HLS playlists also list this many
    /// seconds of recorded segments before the in-memory window, served from disk, so a
    /// viewer can pause and scrub back. 0 turns it off.
    pub dvr_window: f64,
    /// How long after a publisher leaves before the playlist ends (EXT-X-ENDLIST);
    /// a publisher returning sooner continues the stream with a discontinuity.
    pub end_grace: f64,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 1935)),
            max_connections_per_client: 16,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            header_timeout: 10.0,
            body_timeout: 30.0,
            max_connections_per_client: 128,
            tls_listen: None,
            tls_dir: None,
        }
    }
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            segment_target: 2.0,
            part_target: 0.2,
            window: 24.0,
            dvr_window: 7200.0,
            end_grace: 10.0,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: default_data_dir(),
            public_host: None,
            rtmp: RtmpConfig::default(),
            http: HttpConfig::default(),
            rtsp: RtspConfig::default(),
            live: LiveConfig::default(),
            sources: SourcesConfig::default(),
            dvr: DvrConfig::default(),
            abr: AbrConfig::default(),
            metrics: MetricsConfig::default(),
            network: NetworkConfig::default(),
            data_fault_file: None,
            removable_media_dir: PathBuf::from("/run/media"),
        }
    }
}

/// `$STATE_DIRECTORY` (systemd), else `$XDG_DATA_HOME/streambox`, else
/// `$HOME/.local/share/streambox`, else `./streambox-data`.
fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STATE_DIRECTORY") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("streambox");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".local/share/streambox");
    }
    PathBuf::from("streambox-data")
}

/// A configuration value that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable did not parse.
    #[error(transparent)]
    Parse(#[from] Box<figment::Error>),
    /// A value is out of range.
    #[error("{field}: {problem}")]
    Invalid {
        /// The dotted field name.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
}

impl Config {
    /// Loads defaults, then `file` (if given; it must exist), then `STREAMBOX_*` variables.
    ///
    /// # Errors
    /// [`ConfigError`] when the file is missing or malformed, or a value is out of range.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            fig = fig.merge(Toml::file_exact(f));
        }
        let cfg: Config = fig
            .merge(
                Env::prefixed("STREAMBOX_")
                    // Read by the CLI itself, not configuration fields.
                    .filter(|k| !(k == "log" || k == "config"))
                    .split("__"),
            )
            .extract()
            .map_err(Box::new)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.live;
        let bad = |field, problem| Err(ConfigError::Invalid { field, problem });
        if self
            .abr
            .max_cpu
            .is_some_and(|c| !(0.0..=1024.0).contains(&c))
        {
            return bad("abr.max_cpu", "must be between 0 and 1024 cores");
        }
        if !(1.0..=3600.0).contains(&self.abr.retry_dropped_after) {
            return bad(
                "abr.retry_dropped_after",
                "must be between 1 and 3600 seconds",
            );
        }
        if let Some([first, last]) = self.rtsp.udp_ports {
            let even = u32::from(first) + u32::from(first % 2);
            if first < 1024 || even + 1 > u32::from(last) {
                return bad(
                    "rtsp.udp_ports",
                    "must be [first, last] with 1024 <= first and room for one even/odd pair",
                );
            }
        }
        if !(0.1..=60.0).contains(&l.segment_target) {
            return bad("live.segment_target", "must be between 0.1 and 60 seconds");
        }
        if !(0.05..=l.segment_target).contains(&l.part_target) {
            return bad(
                "live.part_target",
                "must be between 0.05 s and the segment target",
            );
        }
        if !(l.segment_target * 2.0..=86_400.0).contains(&l.window) {
            return bad(
                "live.window",
                "must be between two segment targets and a day",
            );
        }
        if !(0.0..=7.0 * 86_400.0).contains(&l.dvr_window) {
            return bad("live.dvr_window", "must be between 0 and a week");
        }
        if !(0.0..=3600.0).contains(&l.end_grace) {
            return bad("live.end_grace", "must be between 0 and 3600 seconds");
        }
        if !(1.0..=3600.0).contains(&self.sources.retry_max) {
            return bad("sources.retry_max", "must be between 1 and 3600 seconds");
        }
        let seconds: [(&'static str, f64); 4] = [
            ("http.header_timeout", self.http.header_timeout),
            ("http.body_timeout", self.http.body_timeout),
            ("rtsp.request_timeout", self.rtsp.request_timeout),
            ("rtsp.idle_timeout", self.rtsp.idle_timeout),
        ];
        for (field, v) in seconds {
            if !(0.5..=3600.0).contains(&v) {
                return bad(field, "must be between 0.5 and 3600 seconds");
            }
        }
        if self.rtsp.idle_timeout < self.rtsp.request_timeout {
            return bad("rtsp.idle_timeout", "must be at least rtsp.request_timeout");
        }
        let caps: [(&'static str, usize); 3] = [
            (
                "http.max_connections_per_client",
                self.http.max_connections_per_client,
            ),
            (
                "rtsp.max_connections_per_client",
                self.rtsp.max_connections_per_client,
            ),
            (
                "rtmp.max_connections_per_client",
                self.rtmp.max_connections_per_client,
            ),
        ];
        for (field, v) in caps {
            if !(1..=100_000).contains(&v) {
                return bad(field, "must be between 1 and 100000");
            }
        }
        Ok(())
    }
}
