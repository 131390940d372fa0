//! The state every front end shares: configuration, database, metrics, and the
//! [`Registry`] of streams (their live entries, by identity).

use crate::config::Config;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::packager;
use crate::streams::life::StreamLife;
use crate::streams::registry::{Gone, Registry};
use crate::streams::StreamUid;
use sqlx::SqlitePool;
use std::sync::Arc;

pub use crate::streams::registry::LiveEntry;

/// The exit status with which the service asks to be started again (`EX_TEMPFAIL`,
/// sysexits.h): after a restore is staged ([`crate::backup::stage`]), the service stops
/// and its supervisor (systemd's `Restart=on-failure`, or `serve.sh`) starts it, and the
/// start puts the restore in place.
pub const RESTART_EXIT: i32 = 75;

/// Stopping the service from inside.
#[derive(Debug, Default)]
pub struct Lifecycle {
    /// Cancelled when the service is to stop (a signal, or [`Lifecycle::restart`]): the
    /// web listeners stop accepting and finish the requests in flight.
    pub stop: tokio_util::sync::CancellationToken,
    restart: std::sync::atomic::AtomicBool,
}

impl Lifecycle {
    /// Stops the service to be started again (exit status [`RESTART_EXIT`]).
    pub fn restart(&self) {
        self.restart
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.stop.cancel();
    }

    /// Whether [`Lifecycle::restart`] was asked for.
    pub fn restarting(&self) -> bool {
        self.restart.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Shared service state: a handle to one [`AppState`], cheap to clone (one reference
/// count, however many parts the state has: the router clones it for every request).
#[derive(Clone)]
pub struct App(Arc<AppState>);

impl std::ops::Deref for App {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.0
    }
}

/// The service's state, shared through [`App`].
pub struct AppState {
    /// The loaded configuration.
    pub cfg: Arc<Config>,
    /// The SQLite pool.
    pub db: SqlitePool,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// What transcoding costs here, and the cores committed to ABR ladders.
    pub costs: Arc<crate::transcode::cost::Costs>,
    /// Keyframes to JPEG, on their own thread.
    pub thumbnails: Arc<crate::transcode::thumbnail::Thumbnailer>,
    /// Sign-in and password-check attempts per client address and per account.
    pub sign_in: Arc<crate::auth::limit::SignInLimiter>,
    /// Thumbnail decodes per client address.
    pub thumbnail_limit: Arc<crate::auth::limit::ClientLimiter>,
    /// When the service started.
    pub started: std::time::Instant,
    /// The configured streams and the live ones.
    pub registry: Arc<Registry>,
    /// Recordings: their index, directory and metrics.
    pub dvr: crate::dvr::Dvr,
    /// The host's network settings and the change on trial.
    pub network: Arc<crate::manage::network::Network>,
    /// The interfaces and their addresses now, kept current from the kernel.
    pub interfaces: tokio::sync::watch::Receiver<Vec<crate::system::network::Interface>>,
    /// Capture devices, sound cards and GPUs, kept current as they come and go.
    pub hardware: tokio::sync::watch::Receiver<Arc<crate::system::hardware::Inventory>>,
    /// IPv6 address registration with a directory.
    pub registration: Arc<crate::manage::registration::Registration>,
    /// Remote management over WireGuard, and who may open the admin pages.
    pub vpn: Arc<crate::manage::vpn::Vpn>,
    /// Stopping (and restarting) the service from a request.
    pub lifecycle: Arc<Lifecycle>,
    /// Updates of the appliance (RAUC).
    pub updates: Arc<crate::manage::update::Updates>,
    /// Every stream's content keys (encrypted HLS). Call `keyring.reload()` before
    /// serving.
    pub keyring: Arc<crate::protect::Keyring>,
    /// Content key requests per client address.
    pub key_limit: Arc<crate::auth::limit::ClientLimiter>,
    /// The appliance-wide secrets, read once ([`crate::db::Secrets`]).
    pub secrets: Arc<crate::db::Secrets>,
}

impl App {
    /// New state over an open database. Call `registry.refresh()` before serving.
    pub fn new(cfg: Config, db: SqlitePool) -> App {
        let metrics = Arc::new(Metrics::new());
        let network = crate::manage::network::Network::new(
            db.clone(),
            cfg.network.helper_socket.clone(),
            cfg.network.confirm_within,
        );
        let thumbnails =
            crate::transcode::thumbnail::Thumbnailer::start(metrics.thumbnails.clone());
        let registration = crate::manage::registration::Registration::new(
            db.clone(),
            crate::manage::registration::Ports {
                https: cfg.http.tls_listen.map(|a| a.port()),
                http: cfg.http.listen.port(),
                rtsp: cfg.rtsp.listen.port(),
            },
            cfg.sources.allow_local_addresses,
        );
        // UDP ports the VPN may not take: RTP/RTCP's, and what the host's own services
        // listen on (DNS, DHCP, NTP, mDNS).
        let mut reserved = vec![53..=53, 67..=68, 123..=123, 546..=547, 5353..=5353];
        reserved.extend(cfg.rtsp.udp_ports.map(|[a, b]| a..=b));
        let vpn =
            crate::manage::vpn::Vpn::new(db.clone(), cfg.network.helper_socket.clone(), reserved);
        let updates = crate::manage::update::Updates::new(
            db.clone(),
            &cfg.data_dir,
            &cfg.removable_media_dir,
        );
        App(Arc::new(AppState {
            updates,
            keyring: Arc::new(crate::protect::Keyring::new(db.clone())),
            key_limit: Arc::new(crate::auth::limit::ClientLimiter::keys()),
            secrets: Arc::default(),
            dvr: crate::dvr::Dvr::new(&cfg, db.clone(), metrics.clone()),
            cfg: Arc::new(cfg),
            registry: Registry::new(db.clone(), metrics.clone(), thumbnails.clone()),
            network,
            interfaces: crate::system::network::watch(),
            hardware: crate::system::hardware::watch(),
            registration,
            vpn,
            db,
            thumbnails,
            metrics,
            costs: Arc::default(),
            sign_in: Arc::default(),
            thumbnail_limit: Arc::new(crate::auth::limit::ClientLimiter::thumbnails()),
            started: std::time::Instant::now(),
            lifecycle: Arc::default(),
        }))
    }

    /// The live entry of stream `uid`, opened (hub, packager, recorder, renditions) on
    /// first use. Must be called inside the tokio runtime.
    ///
    /// # Errors
    /// [`Gone`] when no stream has that identity.
    pub async fn open_stream(&self, uid: &StreamUid) -> Result<LiveEntry, Gone> {
        self.registry
            .open(uid, |named| {
                let life = StreamLife::default();
                let hub = Hub::new(&named.name);
                let registry = self.registry.clone();
                let uid = named.uid.clone();
                let sealer = crate::protect::Sealer::new(
                    named.uid.clone(),
                    self.keyring.clone(),
                    move || registry.directory().by_uid(&uid).and_then(|n| n.protection),
                );
                let output = packager::spawn(
                    hub.clone(),
                    self.cfg.live.clone(),
                    self.metrics.clone(),
                    Arc::new(sealer),
                    &life,
                );
                crate::dvr::recorder(
                    self.dvr.clone(),
                    named.uid.clone(),
                    output.clone(),
                    self.registry.changes(),
                    &life,
                );
                let renditions = Arc::new(crate::transcode::rendition::Renditions::default());
                crate::transcode::rendition::supervise(
                    self.transcoding(),
                    named.uid.clone(),
                    hub.clone(),
                    output.clone(),
                    renditions.clone(),
                    &life,
                );
                LiveEntry {
                    uid: named.uid.clone(),
                    name: named.name.clone(),
                    hub,
                    output,
                    renditions,
                    viewers: Arc::default(),
                    life,
                }
            })
            .await
    }

    /// What a stream's renditions work with.
    pub fn transcoding(&self) -> crate::transcode::rendition::Transcoding {
        crate::transcode::rendition::Transcoding {
            db: self.db.clone(),
            costs: self.costs.clone(),
            metrics: self.metrics.clone(),
            abr: self.cfg.abr.clone(),
            live: self.cfg.live.clone(),
        }
    }

    /// The live entry of the stream named `name`, if it was opened.
    pub fn stream(&self, name: &str) -> Option<LiveEntry> {
        self.registry.stream(name)
    }
}
