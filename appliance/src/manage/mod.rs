//! What an administrator changes on the appliance, whoever asks: the admin pages, the
//! JSON API, the setup wizard and the CLI all call these operations, so a change is
//! checked, made, told to the running service and audited the same way from each.
//!
//! - [`streams`]: adding, renaming and removing streams, rotating keys, recording and
//!   visibility settings, viewer links, ABR ladders.
//! - [`cameras`]: checking, testing, adding and changing RTSP cameras.
//! - [`capture`]: adding and changing capture devices on the box as sources.
//! - [`addresses`]: the URLs at which publishers, players and viewers reach the box.
//! - [`network`]: the host's wired network, changed on trial (confirm or revert).
//! - [`registration`]: IPv6 address registration with a directory.
//! - [`vpn`]: remote management over WireGuard, and who may open the admin pages.
//! - [`update`]: updates of the appliance's root file system (RAUC, A/B).
//!
//! Nothing here knows HTTP: an operation takes an [`Ops`] (the database, the
//! configuration, the running service's registry when there is one, and the [`Actor`])
//! and answers with what it did or why it [`Refused`]. Operations on a stream that does
//! not exist refuse with [`Refused::NotFound`] and change nothing.

pub mod addresses;
pub mod cameras;
pub mod capture;
pub mod network;
pub mod registration;
pub mod streams;
pub mod update;
pub mod vpn;

use crate::config::Config;
use crate::streams::registry::Registry;
use crate::streams::Named;
use sqlx::SqlitePool;
use std::sync::Arc;

/// Who makes a change, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The user, with the API token when one was used (`admin (token "backup")`), or
    /// `cli`.
    pub name: String,
    /// Where the request came from: the client's address, or `cli`.
    pub client: String,
}

impl Actor {
    /// The command line on the box itself.
    pub fn cli() -> Actor {
        Actor {
            name: "cli".into(),
            client: "cli".into(),
        }
    }
}

/// Why an operation changed nothing. The messages are sentences for the person who
/// asked; [`Refused::Failed`] is the appliance's own failure (its database), logged by
/// whoever answers.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No such stream, camera or link.
    #[error("{0}")]
    NotFound(String),
    /// The input is wrong; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// The change conflicts with the current state (a taken name, a rename while
    /// live); nothing was changed.
    #[error("{0}")]
    Conflict(String),
    /// What was asked for cannot be done on this machine (no netplan on a developer's
    /// machine); nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// The appliance itself failed.
    #[error("{0}")]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl Refused {
    /// The appliance's own failure `e`.
    pub fn failed(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Refused {
        Refused::Failed(e.into())
    }
}

/// What an operation works with: the database, the configuration, the running
/// service's registry (told of each change at once; the CLI has none, and the service
/// sees its commits through the database within a second) and who acts. Cheap to clone.
#[derive(Clone)]
pub struct Ops {
    /// The SQLite pool.
    pub db: SqlitePool,
    /// The loaded configuration.
    pub cfg: Arc<Config>,
    registry: Option<Arc<Registry>>,
    actor: Actor,
    /// The actor is on the box itself (the CLI), so a camera at a loopback or
    /// link-local address is theirs to use: everything on the box is theirs already.
    on_box: bool,
}

impl Ops {
    /// Operations by `actor` inside the running service, whose `registry` is told of
    /// each change.
    pub fn in_service(
        db: SqlitePool,
        cfg: Arc<Config>,
        registry: Arc<Registry>,
        actor: Actor,
    ) -> Ops {
        Ops {
            db,
            cfg,
            registry: Some(registry),
            actor,
            on_box: false,
        }
    }

    /// Operations from the command line ([`Actor::cli`]), beside or without a running
    /// service.
    pub fn cli(db: SqlitePool, cfg: Arc<Config>) -> Ops {
        Ops {
            db,
            cfg,
            registry: None,
            actor: Actor::cli(),
            on_box: true,
        }
    }

    /// Who acts.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The stream or camera named `name` now.
    ///
    /// # Errors
    /// [`Refused::NotFound`]; [`Refused::Failed`] when the database fails (CLI).
    pub async fn named(&self, name: &str) -> Result<Arc<Named>, Refused> {
        let found = match &self.registry {
            Some(r) => r.directory().by_name(name).cloned(),
            None => crate::streams::lookup(&self.db, name)
                .await
                .map_err(Refused::failed)?
                .map(Arc::new),
        };
        found.ok_or_else(|| Refused::NotFound(format!("no stream or camera named {name:?}")))
    }

    /// Whether stream `name` has a publisher or camera feeding it now (never, seen from
    /// the CLI).
    pub fn is_live(&self, name: &str) -> bool {
        self.registry
            .as_ref()
            .and_then(|r| r.stream(name))
            .is_some_and(|e| e.hub.is_live())
    }

    /// Tells the running service the configuration changed: it reloads its directory
    /// and ends what the change took away (a rotated key's publisher, a deleted
    /// stream's live entry, a revoked link's players).
    async fn changed(&self) {
        if let Some(r) = &self.registry {
            r.changed().await;
        }
    }

    /// Writes `action` (`stream.add`, …) with `detail` to the audit log; a failure to
    /// write it is logged, and the change stands.
    async fn audit(&self, action: &str, detail: &str) {
        audit(&self.db, &self.actor, action, detail).await;
    }
}

/// Writes `action` by `actor` with `detail` to the audit log; a failure to write it is
/// logged, and the change stands.
pub(crate) async fn audit(db: &SqlitePool, actor: &Actor, action: &str, detail: &str) {
    if let Err(e) = crate::db::audit(db, &actor.name, action, detail, &actor.client).await {
        tracing::warn!(error = %e, action, "writing the audit log failed");
    }
}

/// The setting `name` as JSON of `T`: `None` when unset, empty, or not a `T` (settings
/// of an older shape are as good as none).
///
/// # Errors
/// [`Refused::Failed`] when the database fails.
pub(crate) async fn json_setting<T: serde::de::DeserializeOwned>(
    db: &SqlitePool,
    name: &str,
) -> Result<Option<T>, Refused> {
    let text = crate::db::setting(db, name)
        .await
        .map_err(Refused::failed)?;
    Ok(text
        .filter(|t| !t.is_empty())
        .and_then(|t| serde_json::from_str(&t).ok()))
}

pub use crate::db::unix_now_ms as now_ms;

/// Milliseconds since the Unix epoch as ISO 8601 UTC (`2026-11-21T22:40:00.000Z`), as
/// pages and JSON show times; times before 1970 show as 1970.
pub(crate) fn iso_ms(ms: i64) -> String {
    crate::packager::hls::iso8601(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
}
