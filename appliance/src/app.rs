//! The state every front end shares: configuration, database, metrics, and the live
//! streams (hub + packager) by name.

use crate::config::Config;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::packager::{self, LiveStream};
use sqlx::SqlitePool;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A stream that has been published to since start: its hub and its packaged output.
#[derive(Clone)]
pub struct LiveEntry {
    /// Fan-out of frames.
    pub hub: Arc<Hub>,
    /// Segments, parts and playlists.
    pub output: Arc<LiveStream>,
    /// The ABR rungs made from it.
    pub renditions: Arc<crate::transcode::rendition::Renditions>,
    /// Who watches it now.
    pub viewers: Arc<crate::viewers::Viewers>,
}

/// Shared service state; cheap to clone.
#[derive(Clone)]
pub struct App {
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
    /// Sign-in attempts per client address.
    pub sign_in: Arc<crate::auth::limit::SignInLimiter>,
    /// When the service started.
    pub started: std::time::Instant,
    streams: Arc<Mutex<BTreeMap<String, LiveEntry>>>,
}

impl App {
    /// New state over an open database.
    pub fn new(cfg: Config, db: SqlitePool) -> App {
        let metrics = Arc::new(Metrics::new());
        App {
            cfg: Arc::new(cfg),
            db,
            thumbnails: crate::transcode::thumbnail::Thumbnailer::start(metrics.thumbnails.clone()),
            metrics,
            costs: Arc::default(),
            sign_in: Arc::default(),
            started: std::time::Instant::now(),
            streams: Arc::default(),
        }
    }

    /// The live entry of `name`, created (with its packager task) on first use.
    /// Must be called inside the tokio runtime.
    pub fn open_stream(&self, name: &str) -> LiveEntry {
        let mut map = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = map.get(name) {
            return e.clone();
        }
        let hub = Hub::new(name);
        let output = packager::spawn(hub.clone(), self.cfg.live.clone(), self.metrics.clone());
        crate::dvr::recorder(self.clone(), output.clone());
        let renditions = Arc::new(crate::transcode::rendition::Renditions::default());
        crate::transcode::rendition::supervise(
            self.clone(),
            hub.clone(),
            output.clone(),
            renditions.clone(),
        );
        let e = LiveEntry {
            hub,
            output,
            renditions,
            viewers: Arc::default(),
        };
        map.insert(name.to_string(), e.clone());
        e
    }

    /// The live entry of `name`, if it was published to since start.
    pub fn stream(&self, name: &str) -> Option<LiveEntry> {
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}
