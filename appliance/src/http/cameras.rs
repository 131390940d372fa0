//! The camera form, shared by the setup wizard's last step, the stream pages and the
//! API: its fields, what a post of it came to, and the form's state to render again.
//! The checks, the test and the saving are [`crate::manage::cameras`]'.

use super::visitor::{Signed, Visitor};
use super::Refusal;
use crate::app::App;
use crate::auth::stream_keys;
use crate::manage::cameras::{self as ops, CameraInput, MAX_CREDENTIAL, MAX_URL};
use axum::response::Response;
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

impl CameraFields {
    /// The same fields for `action` (`test` or `add`), as the API posts them.
    pub fn with_action(mut self, action: &str) -> CameraFields {
        self.action = action.to_string();
        self
    }

    /// The camera's name as given.
    pub fn name(&self) -> &str {
        self.name.trim()
    }

    /// The camera as typed.
    fn input(&self) -> CameraInput<'_> {
        CameraInput {
            name: &self.name,
            url: &self.url,
            username: &self.username,
            password: &self.password,
            transport: &self.transport,
        }
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

/// Tests the camera (`action=test`) or saves it (`action=add`): a new camera, or, with
/// `existing`, new settings for that camera.
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
    let ops = super::ops(app, v, s);
    let done = match f.action.as_str() {
        "test" => ops::test(&ops, &f.input(), existing)
            .await
            .map(Outcome::Tested),
        "add" => ops::save(&ops, &f.input(), existing)
            .await
            .map(|(_, message)| Outcome::Saved(message)),
        _ => {
            return Ok(Outcome::Invalid(
                "Choose \u{201c}Test connection\u{201d} or save.".into(),
            ))
        }
    };
    match done.map_err(Refusal::from) {
        Ok(o) => Ok(o),
        Err(Refusal::Failed(r)) => Err(r),
        Err(
            Refusal::Invalid(m)
            | Refusal::Conflict(m)
            | Refusal::NotFound(m)
            | Refusal::Limited(m, _)
            | Refusal::Unavailable(m),
        ) => Ok(Outcome::Invalid(m)),
    }
}
