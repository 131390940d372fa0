//! Changing the host's wired network, safely: every change is a trial (netplan's `try`)
//! that reverts by itself unless an administrator confirms it from a browser in time,
//! which proves the box is still reachable after it. One trial at a time; each step is
//! in the audit log (`network.try`, `network.confirm`, `network.cancel`,
//! `network.reverted`). The box's name and NTP servers are changed here too
//! ([`Network::set_hostname`], `network.hostname`; [`Network::set_ntp`], `network.ntp`),
//! at once rather than on trial.
//!
//! The trial is also kept in the database, so a restart in the middle of one (of the
//! service, or of the box, which would boot into the new settings) still ends it the
//! way an unconfirmed trial ends: [`Network::recover`], at start, cancels netplan's try
//! if it still runs, or else writes the previous settings back.
//!
//! The settings are [`Wired`] entries ([`crate::system::netplan`]); the host is reached
//! only through the network helper ([`crate::system::netplan_helper`]), which calls
//! netplan's D-Bus API as root.

use super::{iso_ms as iso, now_ms, Actor, Refused};
use crate::system::netplan::{Configured, Wired};
use crate::system::netplan_helper::{
    self as helper, Answer, HelperError, Previous, Recovery, Request,
};
use serde::Serialize;
use sqlx::SqlitePool;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A network change on trial.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    /// netplan's configuration object for it.
    #[serde(skip)]
    pub config_path: String,
    /// Who asked for it.
    pub by: String,
    /// When it was put in force, in milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// When it reverts unless confirmed, in milliseconds since the Unix epoch.
    pub deadline_ms: i64,
    /// Each changed interface's settings before, `None` where streambox had none (the
    /// image's default then applied).
    pub previous: Previous,
    /// The settings on trial.
    pub proposed: Vec<Wired>,
}

/// How the last trial ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Ended {
    /// Confirmed: the settings stay.
    Confirmed {
        /// By whom.
        by: String,
        /// When, in milliseconds since the Unix epoch.
        at_ms: i64,
    },
    /// Cancelled by an administrator: the previous settings came back.
    Cancelled {
        /// By whom.
        by: String,
        /// When, in milliseconds since the Unix epoch.
        at_ms: i64,
    },
    /// Not confirmed in time, or cut short by a restart: the previous settings came
    /// back.
    Reverted {
        /// Why.
        reason: String,
        /// When, in milliseconds since the Unix epoch.
        at_ms: i64,
    },
}

#[derive(Default)]
struct State {
    trying: Option<Trial>,
    last: Option<Ended>,
}

/// The network settings' trials. One per service; cheap to share.
pub struct Network {
    db: SqlitePool,
    socket: PathBuf,
    default_within: u32,
    /// Held for the whole of a change, so two admins get one trial and one refusal.
    busy: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    /// The configuration as last read, and when: what pages show for [`SHOWN_FOR`].
    shown: Mutex<Option<(std::time::Instant, Configured)>>,
}

/// How long a configuration read for the pages is shown before it is read again
/// (reading it runs `netplan get` in netplan-dbus, seconds on a slow box); a change made
/// here is shown at once.
const SHOWN_FOR: Duration = Duration::from_secs(30);

/// How long a helper request other than a trial may take (`netplan apply` restarts
/// networkd, which takes seconds on a slow box).
const HELPER_DEADLINE: Duration = Duration::from_secs(120);

fn unreachable(e: HelperError) -> Refused {
    match e {
        HelperError::Unavailable(_) => Refused::Unavailable(e.to_string()),
        e => Refused::failed(e),
    }
}

/// The answer, or its refusal or failure as [`Refused`].
fn answered(a: Result<Answer, HelperError>) -> Result<Answer, Refused> {
    match a.map_err(unreachable)? {
        Answer::Invalid { message } => Err(Refused::Invalid(message)),
        Answer::Failed { message } => Err(Refused::failed(message)),
        a => Ok(a),
    }
}

fn unexpected(a: Answer) -> Refused {
    Refused::failed(format!("the network helper answered {a:?}"))
}

/// The settings' account for the audit log, `; `-separated.
fn describe(wired: &[Wired]) -> String {
    wired
        .iter()
        .map(Wired::summary)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Network {
    /// Trials over `db`, through the helper at `socket`, `default_within` seconds long
    /// unless a request asks otherwise.
    pub fn new(db: SqlitePool, socket: PathBuf, default_within: u32) -> Arc<Network> {
        Arc::new(Network {
            db,
            socket,
            default_within,
            busy: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::default()),
            shown: Mutex::new(None),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The trial in force, if any, and how the last one ended.
    pub fn trial(&self) -> (Option<Trial>, Option<Ended>) {
        let s = self.lock();
        (s.trying.clone(), s.last.clone())
    }

    /// The configuration netplan has now, as the pages and `GET /api/network` show it:
    /// read through the helper at most every 30 s ([`SHOWN_FOR`]), and again after any
    /// change made here (an edit by hand on the box shows within 30 s).
    ///
    /// # Errors
    /// [`Refused::Unavailable`] where there is no network helper (a developer's
    /// machine); [`Refused::Failed`] when it fails or its answer cannot be read.
    pub async fn configured(&self) -> Result<Configured, Refused> {
        let cached = self
            .shown
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|(at, _)| at.elapsed() < SHOWN_FOR);
        if let Some((_, c)) = cached {
            return Ok(c);
        }
        let c = match self.ask(&Request::Get, HELPER_DEADLINE).await? {
            Answer::Yaml { yaml } => Configured::parse(&yaml).map_err(Refused::failed)?,
            a => return Err(unexpected(a)),
        };
        *self.shown.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), c.clone()));
        Ok(c)
    }

    /// Reads the configuration again at the next [`Network::configured`].
    fn changed(&self) {
        *self.shown.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    async fn ask(&self, r: &Request, deadline: Duration) -> Result<Answer, Refused> {
        answered(helper::call(&self.socket, r, deadline).await)
    }

    async fn audit(&self, actor: &Actor, action: &str, detail: &str) {
        if let Err(e) = crate::db::audit(&self.db, &actor.name, action, detail, &actor.client).await
        {
            tracing::warn!(error = %e, action, "writing the audit log failed");
        }
    }

    /// Puts `proposed` on trial for `within` seconds (the configured default when
    /// `None`): netplan applies it, and reverts it by itself unless
    /// [`Network::confirm`] comes first. Interfaces not named are left as they are.
    ///
    /// # Errors
    /// [`Refused::Invalid`] for settings refused (with the reason), an interface the box
    /// does not have or that was configured by hand, a `within` outside
    /// [`helper::TRIAL_SECONDS`], or settings already in force; [`Refused::Conflict`] while
    /// another change is being tried; [`Refused::Unavailable`] without netplan;
    /// [`Refused::Failed`] when netplan fails. Nothing is changed on any error.
    pub async fn propose(
        self: &Arc<Self>,
        actor: &Actor,
        proposed: Vec<Wired>,
        within: Option<u32>,
    ) -> Result<Trial, Refused> {
        let within = within.unwrap_or(self.default_within);
        helper::check_change(&proposed, within, &crate::system::network::links())
            .map_err(Refused::Invalid)?;
        let Ok(_busy) = self.busy.try_lock() else {
            return Err(Refused::Conflict(
                "a network change is already being tried".into(),
            ));
        };
        if let Some(t) = &self.lock().trying {
            return Err(Refused::Conflict(format!(
                "a network change is already being tried (by {}): confirm or cancel it first",
                t.by
            )));
        }
        let request = Request::Try {
            wired: proposed.clone(),
            seconds: within,
        };
        let deadline = HELPER_DEADLINE + Duration::from_secs(u64::from(within));
        let (path, previous) = match self.ask(&request, deadline).await? {
            Answer::Trying { path, previous } => (path, previous),
            a => return Err(unexpected(a)),
        };
        let started_ms = now_ms();
        let trial = Trial {
            config_path: path,
            by: actor.name.clone(),
            started_ms,
            deadline_ms: started_ms + i64::from(within) * 1000,
            previous,
            proposed,
        };
        if let Err(e) = self.store(&trial).await {
            // Not kept, so a restart could not end it: end it now.
            let cancel = Request::Cancel {
                path: trial.config_path.clone(),
            };
            let _ = self.ask(&cancel, HELPER_DEADLINE).await;
            return Err(Refused::failed(e));
        }
        self.lock().trying = Some(trial.clone());
        self.changed();
        self.audit(
            actor,
            "network.try",
            &format!("{} (confirm within {within} s)", describe(&trial.proposed)),
        )
        .await;
        let me = self.clone();
        let path = trial.config_path.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(u64::from(within) + 3)).await;
            me.expire(&path).await;
        });
        Ok(trial)
    }

    /// Renames the box: `name` becomes its host name and its mDNS name (`NAME.local`)
    /// at once, and after every boot. Not a trial: a new name cannot cut the box off
    /// (its addresses stay), and the page says the new name to open. Audited as
    /// `network.hostname`, old name to new.
    ///
    /// # Errors
    /// [`Refused::Invalid`] for a name that is not one DNS label
    /// ([`crate::system::hostname::check`]) or the name already;
    /// [`Refused::Unavailable`] without the helper; [`Refused::Failed`] when hostnamed or
    /// avahi fails (the name is then kept for the next boot).
    pub async fn set_hostname(&self, actor: &Actor, name: &str) -> Result<(), Refused> {
        crate::system::hostname::check(name).map_err(Refused::Invalid)?;
        let before = crate::system::network::host_name();
        if before == name {
            return Err(Refused::Invalid(format!(
                "the box is called {name} already"
            )));
        }
        let _busy = self.busy.lock().await;
        let request = Request::Hostname {
            name: name.to_string(),
        };
        self.ask(&request, HELPER_DEADLINE).await?;
        self.audit(actor, "network.hostname", &format!("{before} -> {name}"))
            .await;
        Ok(())
    }

    /// Makes `servers` the NTP servers the box sets its clock from (none: what DHCP
    /// gives, then the distribution's). At once, not a trial. Audited as `network.ntp`.
    ///
    /// # Errors
    /// [`Refused::Invalid`] for servers [`crate::system::timesync::check`] refuses;
    /// [`Refused::Unavailable`] without the helper; [`Refused::Failed`] when systemd
    /// fails (the servers are then kept for the next boot).
    pub async fn set_ntp(&self, actor: &Actor, servers: Vec<String>) -> Result<(), Refused> {
        crate::system::timesync::check(&servers).map_err(Refused::Invalid)?;
        let _busy = self.busy.lock().await;
        let detail = if servers.is_empty() {
            "the defaults (DHCP's, then the distribution's)".to_string()
        } else {
            servers.join(" ")
        };
        self.ask(&Request::Ntp { servers }, HELPER_DEADLINE).await?;
        self.audit(actor, "network.ntp", &detail).await;
        Ok(())
    }

    /// Confirms the trial: its settings stay.
    ///
    /// # Errors
    /// [`Refused::Conflict`] when no change is being tried (with how the last one ended:
    /// a confirmation after the revert says so) or its time is up;
    /// [`Refused::Unavailable`]/[`Refused::Failed`] when the helper or netplan fails.
    pub async fn confirm(&self, actor: &Actor) -> Result<Ended, Refused> {
        self.finish(actor, true).await
    }

    /// Cancels the trial: the previous settings come back now.
    ///
    /// # Errors
    /// As [`Network::confirm`].
    pub async fn cancel(&self, actor: &Actor) -> Result<Ended, Refused> {
        self.finish(actor, false).await
    }

    /// Ends the trial by `actor`'s word: kept, or undone now.
    async fn finish(&self, actor: &Actor, keep: bool) -> Result<Ended, Refused> {
        let _busy = self.busy.lock().await;
        let trial = self.current_trial()?;
        if keep && now_ms() > trial.deadline_ms {
            return Err(Refused::Conflict(
                "too late: the change was not confirmed in time, and the previous settings are coming back".into(),
            ));
        }
        let path = trial.config_path.clone();
        let (request, action, detail) = if keep {
            let d = describe(&trial.proposed);
            (Request::Confirm { path }, "network.confirm", d)
        } else {
            let d = "the previous settings are back".to_string();
            (Request::Cancel { path }, "network.cancel", d)
        };
        self.ask(&request, HELPER_DEADLINE).await?;
        let (by, at_ms) = (actor.name.clone(), now_ms());
        let ended = if keep {
            Ended::Confirmed { by, at_ms }
        } else {
            Ended::Cancelled { by, at_ms }
        };
        self.end(ended.clone()).await;
        self.audit(actor, action, &detail).await;
        Ok(ended)
    }

    fn current_trial(&self) -> Result<Trial, Refused> {
        let s = self.lock();
        if let Some(t) = &s.trying {
            return Ok(t.clone());
        }
        Err(Refused::Conflict(match &s.last {
            Some(Ended::Reverted { reason, at_ms }) => format!(
                "no network change is being tried: the last one was undone at {} ({reason})",
                iso(*at_ms)
            ),
            Some(Ended::Cancelled { by, .. }) => {
                format!("no network change is being tried: the last one was cancelled by {by}")
            }
            Some(Ended::Confirmed { by, .. }) => {
                format!("no network change is being tried: the last one was confirmed by {by}")
            }
            None => "no network change is being tried".into(),
        }))
    }

    /// Ends the trial at `path` as unconfirmed, if it is still the one on trial. netplan
    /// has reverted it by now, or should have: the helper's [`Request::Recover`] cancels
    /// it if netplan still tries it, and applies the previous settings again if the
    /// trial's addresses are still in force ([`Recovery`]). Only then is the trial
    /// recorded as undone; while the helper fails, the trial stays (the page keeps
    /// showing it) and is asked for again, after 5 s, then less often (at most every
    /// minute).
    async fn expire(&self, path: &str) {
        let mut pause = Duration::from_secs(5);
        loop {
            {
                let _busy = self.busy.lock().await;
                let trial = self.lock().trying.clone();
                let Some(trial) = trial.filter(|t| t.config_path == path) else {
                    return;
                };
                let request = Request::Recover {
                    path: path.to_string(),
                    previous: trial.previous,
                    proposed: trial.proposed,
                };
                match self.ask(&request, HELPER_DEADLINE).await {
                    Ok(Answer::Recovered { how }) => {
                        self.reverted(why_reverted(how, true)).await;
                        return;
                    }
                    Ok(a) => {
                        tracing::error!(answer = ?a, "undoing an unconfirmed network change failed; trying again")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "undoing an unconfirmed network change failed; trying again")
                    }
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(60));
        }
    }

    /// Ends the trial as undone without anyone's word, for `reason`; audited as the
    /// service's own.
    async fn reverted(&self, reason: String) {
        self.end(Ended::Reverted {
            reason: reason.clone(),
            at_ms: now_ms(),
        })
        .await;
        self.audit(&system_actor(), "network.reverted", &reason)
            .await;
    }

    async fn end(&self, ended: Ended) {
        self.forget().await;
        self.changed();
        let mut s = self.lock();
        s.trying = None;
        s.last = Some(ended);
    }

    async fn store(&self, t: &Trial) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO network_trial (id, config_path, actor, started_ms, deadline_ms, previous, proposed)
             VALUES (1, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.config_path)
        .bind(&t.by)
        .bind(t.started_ms)
        .bind(t.deadline_ms)
        .bind(serde_json::to_string(&t.previous).map_err(|e| sqlx::Error::Encode(e.into()))?)
        .bind(serde_json::to_string(&t.proposed).map_err(|e| sqlx::Error::Encode(e.into()))?)
        .execute(&self.db)
        .await
        .map(|_| ())
    }

    async fn forget(&self) {
        if let Err(e) = sqlx::query("DELETE FROM network_trial")
            .execute(&self.db)
            .await
        {
            tracing::warn!(error = %e, "forgetting the network trial failed");
        }
    }

    /// At start: ends a trial a restart cut short, as an unconfirmed one ends. netplan's
    /// try is cancelled if it still runs (the service alone restarted); otherwise (the
    /// box restarted, and booted into the trial's settings) the previous settings are
    /// written back and applied wherever the trial's are still in force, in netplan's
    /// configuration or on the interfaces ([`Recovery`]).
    ///
    /// # Errors
    /// The database's; netplan's failures are logged and the trial kept for the next
    /// start.
    pub async fn recover(&self) -> Result<(), sqlx::Error> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT config_path, previous, proposed FROM network_trial WHERE id = 1",
        )
        .fetch_optional(&self.db)
        .await?;
        let Some((path, previous, proposed)) = row else {
            return Ok(());
        };
        let _busy = self.busy.lock().await;
        let request = Request::Recover {
            path,
            previous: serde_json::from_str(&previous).unwrap_or_default(),
            proposed: serde_json::from_str(&proposed).unwrap_or_default(),
        };
        // At boot the helper may start after the service: wait for it a little.
        let mut answer = self.ask(&request, HELPER_DEADLINE).await;
        for _ in 0..30 {
            if !matches!(answer, Err(Refused::Unavailable(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            answer = self.ask(&request, HELPER_DEADLINE).await;
        }
        match answer {
            Ok(Answer::Recovered { how }) => self.reverted(why_reverted(how, false)).await,
            Ok(a) => {
                tracing::error!(answer = ?a, "undoing a network trial cut short by a restart failed")
            }
            Err(e) => {
                tracing::error!(error = %e, "undoing a network trial cut short by a restart failed")
            }
        }
        Ok(())
    }
}

/// Why a trial was undone without anyone's word, for the page and the audit log: it was
/// `expired` (not confirmed in time), else a restart cut it short; `how` says what the
/// helper had to do.
fn why_reverted(how: Recovery, expired: bool) -> String {
    match (how, expired) {
        (Recovery::Cancelled | Recovery::Ended, true) => "not confirmed in time".into(),
        (Recovery::Reapplied, true) => "not confirmed in time; netplan had left the tried \
            address in force, so the previous settings were applied again"
            .into(),
        (Recovery::Rewritten, true) => "not confirmed in time; netplan still had the tried \
            settings, so the previous ones were written back"
            .into(),
        (Recovery::Cancelled, false) => "the service restarted during the trial".into(),
        (Recovery::Ended, false) => "the box restarted after the trial ended".into(),
        (Recovery::Reapplied, false) => "the box restarted after the trial ended, with the \
            tried address still in force: the previous settings were applied again"
            .into(),
        (Recovery::Rewritten, false) => "the box restarted during the trial".into(),
    }
}

/// The service itself, as the audit log names it for what no one asked for.
fn system_actor() -> Actor {
    Actor {
        name: "system".into(),
        client: "system".into(),
    }
}
