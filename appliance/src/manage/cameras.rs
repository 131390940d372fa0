//! RTSP cameras as the administrator adds and changes them: the fields are checked,
//! then the camera is tested (connected to as the service would, saving nothing) or
//! saved (the running service connects within seconds).
//!
//! Cameras at loopback, link-local or unspecified addresses (this machine's own
//! services, 169.254/16, fe80::/10, 0.0.0.0), by address or by a name that resolves to
//! one, are refused unless `sources.allow_local_addresses` is set or the actor is on
//! the box (the CLI); and a test that reaches no RTSP server says only that, the same
//! for a closed port, a timeout or another protocol, so "Test connection" is no port
//! scanner.

use super::{streams, Ops, Refused};
use crate::ingest::rtsp_pull::{self, sources};

/// The longest camera URL accepted, in bytes.
pub const MAX_URL: usize = 2048;
/// The longest camera user name or password accepted, in bytes.
pub const MAX_CREDENTIAL: usize = 256;

/// A camera as typed: the form's or the API's fields, or the CLI's arguments.
#[derive(Debug, Clone, Copy, Default)]
pub struct CameraInput<'a> {
    /// Its name (a new camera's; ignored when changing one).
    pub name: &'a str,
    /// `rtsp://host[:port]/path`, credentials allowed in it.
    pub url: &'a str,
    /// The user name; when not empty, it and `password` win over any in the URL.
    pub username: &'a str,
    /// The password; empty when changing a camera keeps the stored one.
    pub password: &'a str,
    /// `tcp` (the default when empty) or `udp`.
    pub transport: &'a str,
}

/// A camera whose fields are checked.
struct Checked {
    /// The URL with the credentials in it.
    raw: String,
    cam: sources::CameraUrl,
    transport: sources::Transport,
    /// Why the camera's address may not be used from here, if it may not.
    local: Option<String>,
}

/// Checks `c`'s fields: their sizes, the transport, the URL.
async fn check(ops: &Ops, c: &CameraInput<'_>) -> Result<Checked, Refused> {
    if c.url.len() > MAX_URL
        || c.username.len() > MAX_CREDENTIAL
        || c.password.len() > MAX_CREDENTIAL
    {
        return Err(Refused::Invalid(format!(
            "The camera URL is limited to {MAX_URL} bytes and its user name and password to {MAX_CREDENTIAL}."
        )));
    }
    let transport: sources::Transport = match c.transport {
        "" => sources::Transport::Tcp,
        t => t.parse().map_err(|e| Refused::Invalid(format!("{e}.")))?,
    };
    let mut url =
        url::Url::parse(c.url.trim()).map_err(|e| Refused::Invalid(format!("Camera URL: {e}.")))?;
    if !c.username.is_empty() {
        url.set_username(c.username)
            .map_err(|()| Refused::Invalid("Camera URL: it cannot carry a user name.".into()))?;
        url.set_password((!c.password.is_empty()).then_some(c.password))
            .map_err(|()| Refused::Invalid("Camera URL: it cannot carry a password.".into()))?;
    }
    let raw = url.to_string();
    let cam = sources::parse_camera_url(&raw).map_err(|e| Refused::Invalid(format!("{e}.")))?;
    let local = if ops.on_box || ops.cfg.sources.allow_local_addresses {
        None
    } else {
        local_target(&cam.url).await
    };
    Ok(Checked {
        raw,
        cam,
        transport,
        local,
    })
}

/// Connects to camera `c` as the service would, saving nothing: what it offers
/// (`H.264 1280x720, AAC`), or why it failed. Testing a change of camera `existing`
/// with the password left empty uses the stored one.
///
/// # Errors
/// [`Refused::Invalid`] when the fields are wrong (nothing was tried).
pub async fn test(
    ops: &Ops,
    c: &CameraInput<'_>,
    existing: Option<&str>,
) -> Result<Result<String, String>, Refused> {
    let checked = check(ops, c).await?;
    if let Some(why) = checked.local {
        return Ok(Err(why));
    }
    let cam = &checked.cam;
    let mut row = sources::SourceRow::probe_row(cam, checked.transport);
    if let Some(name) = existing {
        if row.password.is_empty() {
            let stored = sources::list(&ops.db).await.map_err(Refused::failed)?;
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
    Ok(rtsp_pull::probe(&row).await.map_err(|e| {
        if e.spoke_rtsp() {
            format!(
                "Could not connect: {}.",
                sources::mask_urls_in(&e.to_string())
            )
        } else {
            format!("Could not connect: no RTSP server answered at {target}.")
        }
    }))
}

/// Adds camera `c` (with the recording defaults), or with `existing` saves new
/// settings for that camera; returns its name and a sentence saying what happens next.
///
/// # Errors
/// [`Refused::Invalid`] when the fields are wrong, the address is local, or the name
/// is bad or taken (nothing was saved).
pub async fn save(
    ops: &Ops,
    c: &CameraInput<'_>,
    existing: Option<&str>,
) -> Result<(String, String), Refused> {
    let checked = check(ops, c).await?;
    if let Some(why) = checked.local {
        return Err(Refused::Invalid(why));
    }
    let (raw, transport) = (&checked.raw, checked.transport);
    let saved = match existing {
        Some(name) => sources::update(&ops.db, name, raw, transport)
            .await
            .map(|_| name.to_string()),
        None => {
            let name = c.name.trim();
            sources::add(&ops.db, name, raw, transport)
                .await
                .map(|_| name.to_string())
        }
    };
    let name = match saved {
        Ok(name) => name,
        Err(sources::SourceError::Db(e)) => return Err(Refused::failed(e)),
        Err(e) => return Err(Refused::Invalid(format!("{e}."))),
    };
    if existing.is_none() {
        streams::apply_defaults(ops, &name).await;
    }
    ops.changed().await;
    let (action, message) = if existing.is_some() {
        (
            "camera.edit",
            format!("Camera \u{201c}{name}\u{201d} saved. The appliance reconnects to it within seconds."),
        )
    } else {
        (
            "camera.add",
            format!("Camera \u{201c}{name}\u{201d} added. The appliance connects to it within seconds; its state shows on the dashboard."),
        )
    };
    ops.audit(action, &name).await;
    Ok((name, message))
}

/// Why a camera at `url` may not be used from the admin pages: its host is, or resolves
/// to, a loopback, link-local or unspecified address ([`crate::system::network::local_target`]).
async fn local_target(url: &url::Url) -> Option<String> {
    let local = crate::system::network::local_target(url, 554).await?;
    Some(format!(
        "The camera's address ({local}) is a loopback or link-local address, which the admin pages do not connect to. If the camera really is there, set sources.allow_local_addresses in the configuration."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::sync::Arc;

    #[tokio::test]
    async fn fields_are_checked_and_local_cameras_only_from_the_box() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = crate::db::open(dir.path()).await.expect("open");
        let cli = Ops::cli(pool, Arc::new(Config::default()));
        let web = Ops {
            on_box: false,
            actor: crate::manage::Actor {
                name: "admin".into(),
                client: "192.0.2.7".into(),
            },
            ..cli.clone()
        };
        fn cam<'a>(url: &'a str, transport: &'a str) -> CameraInput<'a> {
            CameraInput {
                name: "door",
                url,
                transport,
                ..CameraInput::default()
            }
        }
        let long = format!("rtsp://cam/{}", "x".repeat(MAX_URL));
        for (input, says) in [
            (cam(&long, ""), "limited to"),
            (cam("rtsp://cam/x", "sctp"), "invalid transport"),
            (cam("http://cam/x", ""), "invalid camera URL"),
            (cam("rtsp://127.0.0.1:8554/x", ""), "loopback or link-local"),
            (cam("rtsp://[fe80::1]/x", ""), "loopback or link-local"),
            (cam("rtsp://169.254.1.1/x", "udp"), "loopback or link-local"),
        ] {
            match save(&web, &input, None).await {
                Err(Refused::Invalid(m)) => assert!(m.contains(says), "{}: {m}", input.url),
                other => panic!("{}: {other:?}", input.url),
            }
        }
        // A test of a local camera from the pages says why, and connects to nothing.
        let tested = test(&web, &cam("rtsp://127.0.0.1:9/x", ""), None)
            .await
            .expect("checked");
        assert!(
            tested
                .as_ref()
                .is_err_and(|e| e.contains("loopback or link-local")),
            "{tested:?}"
        );
        assert!(sources::list(&web.db).await.expect("list").is_empty());
        assert!(crate::db::audit_log(&web.db, 10)
            .await
            .expect("audit")
            .is_empty());

        // On the box, the same camera is the administrator's to add; then the name is
        // taken.
        let (name, said) = save(&cli, &cam("rtsp://127.0.0.1:8554/x", ""), None)
            .await
            .expect("add");
        assert_eq!(name, "door");
        assert!(said.contains("added"), "{said}");
        assert!(matches!(
            save(&cli, &cam("rtsp://127.0.0.1:8554/y", ""), None).await,
            Err(Refused::Invalid(m)) if m.contains("already exists")
        ));
        let rows = sources::list(&cli.db).await.expect("list");
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].url.as_str(), rows[0].transport.as_str()),
            ("rtsp://127.0.0.1:8554/x", "tcp")
        );
        let audit = crate::db::audit_log(&cli.db, 10).await.expect("audit");
        assert_eq!(audit.len(), 1);
        assert_eq!(
            (audit[0].action.as_str(), audit[0].actor.as_str()),
            ("camera.add", "cli")
        );
    }
}
