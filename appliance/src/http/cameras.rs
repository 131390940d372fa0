//! The camera form, shared by the setup wizard's last step and the admin pages: checks
//! the fields, tests a camera without saving it, adds one, or changes one.
//!
//! Cameras at loopback, link-local or unspecified addresses (this machine's own
//! services, 169.254/16, fe80::/10, 0.0.0.0), by address or by a name that resolves to
//! one, are refused unless `sources.allow_local_addresses` is set; and a test that
//! reaches no RTSP server says only that, the same for a closed port, a timeout or
//! another protocol, so "Test connection" is no port scanner.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /admin/cameras` | `action=test`: try the camera; `action=add`: add it |
//! | `POST /admin/streams/{stream}/camera` | the same for an existing camera: test or save |

use super::admin::audit;
use super::visitor::{Signed, Visitor};
use crate::app::App;
use crate::auth::stream_keys;
use crate::ingest::rtsp_pull::{self, sources};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Form};
use serde::Deserialize;
use streambox_web::setup::CameraForm;
use streambox_web::streams::CameraState;

/// The camera form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CameraFields {
    name: String,
    url: String,
    username: String,
    password: String,
    transport: String,
    action: String,
}

/// The longest camera URL accepted, in bytes.
const MAX_URL: usize = 2048;
/// The longest camera user name or password accepted, in bytes.
const MAX_CREDENTIAL: usize = 256;

impl CameraFields {
    /// The same fields for `action` (`test` or `add`), as the API posts them; an empty
    /// transport is `tcp`.
    pub fn with_action(mut self, action: &str) -> CameraFields {
        self.action = action.to_string();
        if self.transport.is_empty() {
            self.transport = "tcp".into();
        }
        self
    }

    /// The camera's name as given.
    pub fn name(&self) -> &str {
        self.name.trim()
    }

    /// The values to show again (never the password; nothing over its limit).
    pub fn shown(&self, editing: Option<&str>) -> CameraForm {
        let name = editing.unwrap_or(self.name.trim());
        CameraForm {
            name: if stream_keys::valid_name(name) {
                name.to_string()
            } else {
                String::new()
            },
            url: if self.url.len() <= MAX_URL {
                self.url.trim().to_string()
            } else {
                String::new()
            },
            username: if self.username.len() <= MAX_CREDENTIAL {
                self.username.clone()
            } else {
                String::new()
            },
            transport: self.transport.clone(),
        }
    }

    /// The camera's URL with the form's credentials in it (they win over any in the URL).
    fn url(&self) -> Result<String, String> {
        let mut url = url::Url::parse(self.url.trim()).map_err(|e| format!("Camera URL: {e}."))?;
        if !self.username.is_empty() {
            url.set_username(&self.username)
                .map_err(|()| "Camera URL: it cannot carry a user name.".to_string())?;
            url.set_password((!self.password.is_empty()).then_some(self.password.as_str()))
                .map_err(|()| "Camera URL: it cannot carry a password.".to_string())?;
        }
        Ok(url.to_string())
    }
}

/// What a post of the camera form came to.
pub enum Outcome {
    /// The fields were wrong; nothing was tried or saved.
    Invalid(String),
    /// "Test connection" ran: what the camera offers, or why it failed.
    Tested(Result<String, String>),
    /// The camera was added or changed; the message says so.
    Saved(String),
}

impl Outcome {
    /// The form's state to render: the values again (cleared after saving) and the result.
    pub fn state(self, f: &CameraFields, editing: Option<&str>) -> (CameraState, Option<String>) {
        match self {
            Outcome::Invalid(m) => (
                CameraState {
                    form: f.shown(editing),
                    test: None,
                },
                Some(m),
            ),
            Outcome::Tested(r) => (
                CameraState {
                    form: f.shown(editing),
                    test: Some(r),
                },
                None,
            ),
            Outcome::Saved(m) => {
                let form = if editing.is_some() {
                    f.shown(editing)
                } else {
                    CameraForm::default()
                };
                (
                    CameraState {
                        form,
                        test: Some(Ok(m)),
                    },
                    None,
                )
            }
        }
    }
}

/// Checks the fields, then tests the camera (`action=test`) or saves it (`action=add`):
/// a new source, or, with `existing`, new settings for that source.
///
/// # Errors
/// A response for a failure of the appliance itself (the database).
pub async fn handle(
    app: &App,
    v: &Visitor,
    s: &Signed,
    f: &CameraFields,
    existing: Option<&str>,
) -> Result<Outcome, Response> {
    if f.url.len() > MAX_URL
        || f.username.len() > MAX_CREDENTIAL
        || f.password.len() > MAX_CREDENTIAL
    {
        return Ok(Outcome::Invalid(format!(
            "The camera URL is limited to {MAX_URL} bytes and its user name and password to {MAX_CREDENTIAL}."
        )));
    }
    let transport: sources::Transport = match f.transport.parse() {
        Ok(t) => t,
        Err(e) => return Ok(Outcome::Invalid(format!("{e}."))),
    };
    let raw = match f.url() {
        Ok(u) => u,
        Err(m) => return Ok(Outcome::Invalid(m)),
    };
    let cam = match sources::parse_camera_url(&raw) {
        Ok(c) => c,
        Err(e) => return Ok(Outcome::Invalid(format!("{e}."))),
    };
    let local = if app.cfg.sources.allow_local_addresses {
        None
    } else {
        local_target(&cam.url).await
    };
    match f.action.as_str() {
        "test" => {
            if let Some(why) = local {
                return Ok(Outcome::Tested(Err(why)));
            }
            let mut row = sources::SourceRow::probe_row(&cam, transport);
            // Testing an edit with the password left blank uses the stored one.
            if let Some(name) = existing {
                if row.password.is_empty() {
                    let stored = sources::list(&app.db).await.map_err(internal)?;
                    if let Some(old) = stored
                        .into_iter()
                        .find(|r| r.name == name && r.username == row.username)
                    {
                        row.password = old.password;
                    }
                }
            }
            let target = format!(
                "{}:{}",
                cam.url.host_str().unwrap_or(""),
                cam.url.port().unwrap_or(554)
            );
            Ok(Outcome::Tested(rtsp_pull::probe(&row).await.map_err(|e| {
                if e.spoke_rtsp() {
                    format!(
                        "Could not connect: {}.",
                        sources::mask_urls_in(&e.to_string())
                    )
                } else {
                    format!("Could not connect: no RTSP server answered at {target}.")
                }
            })))
        }
        "add" => {
            if let Some(why) = local {
                return Ok(Outcome::Invalid(why));
            }
            let saved = match existing {
                Some(name) => sources::update(&app.db, name, &raw, transport)
                    .await
                    .map(|_| name.to_string()),
                None => {
                    let name = f.name.trim();
                    sources::add(&app.db, name, &raw, transport)
                        .await
                        .map(|_| name.to_string())
                }
            };
            match saved {
                Ok(name) => {
                    app.registry.changed().await;
                    if existing.is_none() {
                        if let Err(e) = crate::setup::apply_recording_defaults(&app.db, &name).await
                        {
                            tracing::warn!(error = %e, stream = %name, "applying recording defaults failed");
                        }
                    }
                    let action = if existing.is_some() {
                        "source.edit"
                    } else {
                        "source.add"
                    };
                    audit(app, &s.actor(), v, action, &name).await;
                    Ok(Outcome::Saved(if existing.is_some() {
                        format!("Camera \u{201c}{name}\u{201d} saved. The appliance reconnects to it within seconds.")
                    } else {
                        format!("Camera \u{201c}{name}\u{201d} added. The appliance connects to it within seconds; its state shows on the dashboard.")
                    }))
                }
                Err(sources::SourceError::Db(e)) => Err(internal(e)),
                Err(e) => Ok(Outcome::Invalid(format!("{e}."))),
            }
        }
        _ => Ok(Outcome::Invalid(
            "Choose \u{201c}Test connection\u{201d} or save.".into(),
        )),
    }
}

/// Why a camera at `url` may not be used from the admin pages: its host is, or resolves
/// to, a loopback, link-local or unspecified address. `None` when it may (or when the
/// name does not resolve: connecting then fails like any unreachable camera).
async fn local_target(url: &url::Url) -> Option<String> {
    let port = url.port().unwrap_or(554);
    let addrs: Vec<std::net::IpAddr> = match url.host()? {
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
    let local = addrs.into_iter().find(|a| {
        let a = a.to_canonical();
        a.is_loopback()
            || a.is_unspecified()
            || match a {
                std::net::IpAddr::V4(v4) => v4.is_link_local(),
                std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
            }
    })?;
    Some(format!(
        "The camera's address ({local}) is a loopback or link-local address, which the admin pages do not connect to. If the camera really is there, set sources.allow_local_addresses in the configuration."
    ))
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "camera request failed");
    super::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// `POST /admin/cameras`: test or add a camera from the streams page.
pub async fn add(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Form(f): Form<CameraFields>,
) -> Response {
    let outcome = match handle(&app, &v, &s, &f, None).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let (state, error) = outcome.state(&f, None);
    super::streams::render_list(&app, &v, &s, String::new(), error, state).await
}

/// `POST /admin/streams/{stream}/camera`: test or save an existing camera's settings.
pub async fn edit(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    Form(f): Form<CameraFields>,
) -> Response {
    super::streams::camera_edit(app, v, s, stream, f).await
}
