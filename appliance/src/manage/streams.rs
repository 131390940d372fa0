//! Streams and cameras as the administrator changes them: add, rename, remove, rotate a
//! key, recording, visibility and content protection settings, viewer links and ABR
//! ladders. Each operation
//! checks its input first and changes nothing when it refuses; each change is told to
//! the running service (which ends at once what it took away) and audited.

use super::{addresses, Ops, Refused};
use crate::auth::{stream_keys, viewer};
use crate::dvr::settings as dvr_settings;
use crate::streams::{Kind, Protection};
use crate::transcode::ladder::{self, Ladder};
use crate::transcode::video::Quality;

/// Creates stream `name` (trimmed) with the recording defaults; returns its name and
/// its key, to show once.
///
/// # Errors
/// [`Refused::Invalid`] for a bad name (`invalid stream name …`),
/// [`Refused::Conflict`] for a taken one (`… already exists`).
pub async fn add(ops: &Ops, name: &str) -> Result<(String, String), Refused> {
    let name = name.trim();
    let key = stream_keys::add(&ops.db, name).await.map_err(|e| match e {
        stream_keys::StreamKeyError::InvalidName(_) => Refused::Invalid(format!("{e}.")),
        stream_keys::StreamKeyError::Exists(_) | stream_keys::StreamKeyError::TakenBySource(_) => {
            Refused::Conflict(format!("{e}."))
        }
        e => Refused::failed(e),
    })?;
    apply_defaults(ops, name).await;
    ops.changed().await;
    ops.audit("stream.add", name).await;
    Ok((name.to_string(), key))
}

/// Gives the new stream or camera `name` the recording defaults setup stored; a
/// failure is logged, and the stream stands without them.
pub(super) async fn apply_defaults(ops: &Ops, name: &str) {
    if let Err(e) = crate::setup::apply_recording_defaults(&ops.db, name).await {
        tracing::warn!(error = %e, stream = %name, "applying recording defaults failed");
    }
}

/// Rotates the key of stream `name`; returns the new key, to show once. The old key
/// stops working at once, and a publisher using it is ended.
///
/// # Errors
/// [`Refused::NotFound`]; [`Refused::Invalid`] for a camera.
pub async fn rotate_key(ops: &Ops, name: &str) -> Result<String, Refused> {
    if ops.named(name).await?.kind != Kind::Stream {
        return Err(Refused::Invalid("Cameras have no stream key.".into()));
    }
    let key = stream_keys::rotate(&ops.db, name)
        .await
        .map_err(Refused::failed)?;
    ops.changed().await;
    ops.audit("stream.rotate-key", name).await;
    Ok(key)
}

/// A change to a stream's recording settings, as typed: `None` leaves a field as it
/// is; a limit is a duration (`7d`) or a size (`50 GB`), and an empty one or `none` is
/// no limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordingChange<'s> {
    /// Record or not.
    pub enabled: Option<bool>,
    /// How long recordings are kept.
    pub keep: Option<&'s str>,
    /// How many bytes of recordings are kept.
    pub keep_bytes: Option<&'s str>,
}

/// The limit typed as `text` for the field people know as `label`, through `parse`.
fn limit(
    text: &str,
    label: &str,
    parse: fn(&str) -> Result<Option<i64>, crate::dvr::DvrError>,
) -> Result<Option<i64>, Refused> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.len() > 32 {
        return Err(Refused::Invalid(format!(
            "{label}: too long. Nothing was changed."
        )));
    }
    parse(t).map_err(|e| {
        Refused::Invalid(format!(
            "{label}: {}. Nothing was changed.",
            e.to_string().trim_start_matches("bad setting: ")
        ))
    })
}

/// Applies `change` to whether stream or camera `name` records and how much of it is
/// kept; returns the settings now in force.
///
/// # Errors
/// [`Refused::NotFound`]; [`Refused::Invalid`] for a limit that does not parse
/// (nothing is changed then).
pub async fn set_recording(
    ops: &Ops,
    name: &str,
    change: RecordingChange<'_>,
) -> Result<dvr_settings::RecordingSettings, Refused> {
    ops.named(name).await?;
    let keep = change
        .keep
        .map(|t| limit(t, "Keep for", dvr_settings::parse_keep))
        .transpose()?;
    let keep_bytes = change
        .keep_bytes
        .map(|t| limit(t, "Keep at most", dvr_settings::parse_keep_bytes))
        .transpose()?;
    let change = dvr_settings::SettingsChange {
        enabled: change.enabled,
        keep_secs: keep,
        keep_bytes,
    };
    let now = dvr_settings::set(&ops.db, name, change)
        .await
        .map_err(|e| match e {
            crate::dvr::DvrError::NoSuchStream(_) => {
                Refused::NotFound(format!("no stream or camera named {name:?}"))
            }
            e => Refused::failed(e),
        })?;
    // The stream's recorder reads its settings again at once.
    ops.changed().await;
    let detail = format!(
        "{name}: record={} keep={:?} keep_bytes={:?}",
        now.enabled, now.keep_secs, now.keep_bytes
    );
    ops.audit("stream.recording", &detail).await;
    Ok(now)
}

/// Sets the ABR ladder of stream or camera `name` (`720p,360p`; `source` for
/// passthrough only) and the quality preset of its rungs (`efficient`, `balanced`,
/// `best`), whichever is given; returns the settings as stored. A live stream's
/// renditions follow within seconds: a new ladder restarts them at the next keyframe,
/// a new preset moves each running rung to it at its next keyframe, without a restart.
///
/// # Errors
/// [`Refused::Invalid`] for a ladder that does not parse, a preset that is not one of
/// those, or neither given; [`Refused::NotFound`].
pub async fn set_ladder(
    ops: &Ops,
    name: &str,
    text: Option<&str>,
    quality: Option<&str>,
) -> Result<ladder::Settings, Refused> {
    let wanted: Option<Ladder> = text
        .map(|t| t.parse().map_err(|e| Refused::Invalid(format!("{e}"))))
        .transpose()?;
    let quality = quality
        .map(|q| {
            Quality::from_name(q.trim()).ok_or_else(|| {
                Refused::Invalid(format!("quality {q:?}: efficient, balanced or best"))
            })
        })
        .transpose()?;
    if wanted.is_none() && quality.is_none() {
        return Err(Refused::Invalid(
            "give a ladder, a quality, or both".to_string(),
        ));
    }
    let named = ops.named(name).await?;
    if !ladder::set(&ops.db, name, wanted.as_ref(), quality)
        .await
        .map_err(Refused::failed)?
    {
        return Err(Refused::NotFound(format!(
            "no stream or camera named {name:?}"
        )));
    }
    let now = ladder::get(&ops.db, &named.uid)
        .await
        .map_err(Refused::failed)?;
    ops.changed().await;
    ops.audit(
        "stream.ladder",
        &format!("{name}: {} quality={}", now.ladder, now.quality),
    )
    .await;
    Ok(now)
}

/// Makes `name` `public` (anyone on the LAN may watch) or `private` (only through
/// viewer links); returns whether it is private now. RTSP players without a grant are
/// ended at once.
///
/// # Errors
/// [`Refused::Invalid`] for another word; [`Refused::NotFound`].
pub async fn set_visibility(ops: &Ops, name: &str, visibility: &str) -> Result<bool, Refused> {
    let private = match visibility {
        "public" => false,
        "private" => true,
        _ => {
            return Err(Refused::Invalid(
                "Choose public or private. Nothing was changed.".into(),
            ))
        }
    };
    let named = ops.named(name).await?;
    viewer::set_private(&ops.db, &named.uid, private)
        .await
        .map_err(Refused::failed)?;
    ops.changed().await;
    ops.audit("stream.visibility", &format!("{name}: {visibility}"))
        .await;
    Ok(private)
}

/// The longest a content key may be used for before it rotates, in seconds (a day).
pub const MAX_ROTATE_SECS: u32 = 86_400;

/// Sets whether `name`'s media is encrypted ([`crate::protect`]) and how often its key
/// rotates: `rotate` is a duration (`10m`, `1h`: a minute to [`MAX_ROTATE_SECS`]) or
/// `never` (only at each publishing session and when rotated by hand). Segments opened
/// from the one after next follow it. Returns the setting now.
///
/// # Errors
/// [`Refused::Invalid`] for a rotation period out of range or that does not parse;
/// [`Refused::NotFound`].
pub async fn set_protection(
    ops: &Ops,
    name: &str,
    encrypted: bool,
    rotate: &str,
) -> Result<Option<Protection>, Refused> {
    let rotate = rotate.trim();
    let rotate_secs = match rotate {
        "never" => None,
        _ => match humantime::parse_duration(rotate) {
            Ok(d)
                if rotate.len() <= 16
                    && d.as_secs() >= 60
                    && d.as_secs() <= u64::from(MAX_ROTATE_SECS) =>
            {
                Some(d.as_secs() as u32)
            }
            _ => {
                return Err(Refused::Invalid(format!(
                    "The key rotates every minute to every day ({:?} is neither a duration such as 10m nor \u{201c}never\u{201d}). Nothing was changed.",
                    rotate.chars().take(40).collect::<String>()
                )))
            }
        },
    };
    let named = ops.named(name).await?;
    let now = encrypted.then_some(Protection { rotate_secs });
    let written = match now {
        Some(p) => {
            sqlx::query(
                "INSERT INTO stream_protection (stream_uid, rotate_secs) VALUES (?1, ?2)
             ON CONFLICT (stream_uid) DO UPDATE SET rotate_secs = excluded.rotate_secs",
            )
            .bind(&named.uid)
            .bind(p.rotate_secs)
            .execute(&ops.db)
            .await
        }
        None => {
            sqlx::query("DELETE FROM stream_protection WHERE stream_uid = ?")
                .bind(&named.uid)
                .execute(&ops.db)
                .await
        }
    };
    written.map_err(Refused::failed)?;
    ops.changed().await;
    let what = match now {
        None => "clear".to_string(),
        Some(Protection { rotate_secs: None }) => "encrypted, key rotated by hand".into(),
        Some(Protection {
            rotate_secs: Some(s),
        }) => format!("encrypted, key rotated every {s} s"),
    };
    ops.audit("stream.protection", &format!("{name}: {what}"))
        .await;
    Ok(now)
}

/// A new content key for encrypted stream `name`, at once ("this link leaked"): its
/// segments use it from the one after next; viewers without a valid link or session
/// cannot get it. Returns the key's ID.
///
/// # Errors
/// [`Refused::Invalid`] when the stream is not encrypted; [`Refused::NotFound`];
/// [`Refused::Failed`] when no key could be made or stored.
pub async fn rotate_content_key(
    ops: &Ops,
    keyring: &crate::protect::Keyring,
    name: &str,
) -> Result<crate::protect::Kid, Refused> {
    let named = ops.named(name).await?;
    if named.protection.is_none() {
        return Err(Refused::Invalid(format!(
            "\u{201c}{name}\u{201d} is not encrypted: there is no key to rotate."
        )));
    }
    let k = keyring.rotate(&named.uid).await.map_err(Refused::failed)?;
    ops.audit("stream.key_rotated", name).await;
    Ok(k.kid)
}

/// A viewer link just made: shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    /// The link's id, to revoke it by.
    pub id: i64,
    /// The watch page's URL, with the link's token in it.
    pub url: String,
    /// When it stops working, in seconds since the Unix epoch.
    pub expires: i64,
}

/// A viewer link to `name`'s watch page, valid for `valid` (`2h`, `24h`, `7d`: a
/// minute to [`viewer::MAX_LINK_SECS`]).
///
/// # Errors
/// [`Refused::Invalid`] for a validity out of range or that does not parse;
/// [`Refused::NotFound`].
pub async fn new_link(ops: &Ops, name: &str, valid: &str) -> Result<NewLink, Refused> {
    let valid = valid.trim();
    let secs = match humantime::parse_duration(valid) {
        Ok(d)
            if valid.len() <= 16
                && d.as_secs() >= 60
                && d.as_secs() as i64 <= viewer::MAX_LINK_SECS =>
        {
            d.as_secs() as i64
        }
        _ => {
            return Err(Refused::Invalid(
                "Links are valid for a minute to 30 days, e.g. 2h, 24h or 7d.".into(),
            ))
        }
    };
    let named = ops.named(name).await?;
    let (id, token, expires) = viewer::new_link(&ops.db, &named.uid, secs, &ops.actor().name)
        .await
        .map_err(Refused::failed)?;
    ops.changed().await;
    let url = addresses::web_url(&ops.cfg, &format!("/t/{token}/watch/{name}"));
    let until = crate::packager::hls::iso8601(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(expires.max(0) as u64),
    );
    ops.audit("stream.link", &format!("{name} link {id} until {until}"))
        .await;
    Ok(NewLink { id, url, expires })
}

/// Revokes viewer link `id` (decimal, as typed) of `name`: its players are refused from
/// their next request, and RTSP sessions through it end.
///
/// # Errors
/// [`Refused::NotFound`] for no such open link of this stream.
pub async fn end_link(ops: &Ops, name: &str, id: &str) -> Result<(), Refused> {
    let gone = || Refused::NotFound(format!("No open link {id} of \u{201c}{name}\u{201d}."));
    let id: i64 = id.parse().map_err(|_| gone())?;
    let named = ops.named(name).await.map_err(|_| gone())?;
    if !viewer::revoke(&ops.db, &named.uid, id)
        .await
        .map_err(Refused::failed)?
    {
        return Err(gone());
    }
    ops.changed().await;
    ops.audit("stream.link-revoke", &format!("{name} link {id}"))
        .await;
    Ok(())
}

/// Renames `name` to `new` (trimmed) in every table that names it; recordings,
/// settings and links follow its identity. Returns the new name.
///
/// # Errors
/// [`Refused::Invalid`] for a bad name; [`Refused::Conflict`] while the stream is live
/// (viewers and recordings would be split) or when the name is taken;
/// [`Refused::NotFound`].
pub async fn rename(ops: &Ops, name: &str, new: &str) -> Result<String, Refused> {
    let new = new.trim().to_string();
    if !stream_keys::valid_name(&new) {
        return Err(Refused::Invalid(format!(
            "{}.",
            stream_keys::StreamKeyError::InvalidName(new)
        )));
    }
    ops.named(name).await?;
    if ops.is_live(name) {
        return Err(Refused::Conflict(
            "The stream is live; stop the publisher before renaming it, so viewers and recordings are not split.".into(),
        ));
    }
    crate::db::rename_stream(&ops.db, name, &new)
        .await
        .map_err(|e| match e {
            crate::db::RenameError::Taken(_) => Refused::Conflict(format!("{e}.")),
            e => Refused::failed(e),
        })?;
    // The live entry under the old name closes; nothing answers under it.
    ops.changed().await;
    ops.audit("stream.rename", &format!("{name} -> {new}"))
        .await;
    Ok(new)
}

/// Deletes stream or camera `name` and everything that is its: its publisher or camera
/// session, players and viewer links end at once, its live entry closes, its
/// recordings are deleted. Returns what it was.
///
/// # Errors
/// [`Refused::NotFound`].
pub async fn remove(ops: &Ops, name: &str) -> Result<Kind, Refused> {
    let kind = ops.named(name).await?.kind;
    crate::db::delete_stream(&ops.db, name)
        .await
        .map_err(Refused::failed)?;
    ops.changed().await;
    ops.audit(&format!("{}.rm", kind.as_str()), name).await;
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::sync::Arc;

    async fn ops() -> (tempfile::TempDir, Ops) {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = crate::db::open(dir.path()).await.expect("open");
        (dir, Ops::cli(pool, Arc::new(Config::default())))
    }

    async fn audit(ops: &Ops) -> Vec<(String, String)> {
        crate::db::audit_log(&ops.db, 100)
            .await
            .expect("audit log")
            .into_iter()
            .rev()
            .map(|e| (e.action, e.detail))
            .collect()
    }

    async fn names(ops: &Ops) -> Vec<String> {
        stream_keys::list(&ops.db)
            .await
            .expect("list")
            .into_iter()
            .map(|r| r.name)
            .collect()
    }

    #[tokio::test]
    async fn refusals_change_nothing_and_each_change_is_audited_once() {
        let (_dir, ops) = ops().await;
        let (name, key) = add(&ops, " lobby ").await.expect("add");
        assert_eq!(name, "lobby");
        assert!(!key.is_empty());

        // Each refusal says why, in its kind, and leaves no trace.
        let refused = [
            add(&ops, "Bad Name").await.map(|_| ()),
            add(&ops, "lobby").await.map(|_| ()),
            rotate_key(&ops, "nosuch").await.map(|_| ()),
            rename(&ops, "lobby", "../etc").await.map(|_| ()),
            rename(&ops, "nosuch", "hall").await.map(|_| ()),
            set_visibility(&ops, "lobby", "secret").await.map(|_| ()),
            new_link(&ops, "lobby", "90d").await.map(|_| ()),
            new_link(&ops, "lobby", "30s").await.map(|_| ()),
            end_link(&ops, "lobby", "7").await.map(|_| ()),
            end_link(&ops, "lobby", "x").await.map(|_| ()),
            remove(&ops, "nosuch").await.map(|_| ()),
        ];
        let kinds: Vec<&str> = refused
            .iter()
            .map(|r| match r {
                Err(Refused::Invalid(_)) => "invalid",
                Err(Refused::Conflict(_)) => "conflict",
                Err(Refused::NotFound(_)) => "not found",
                Err(Refused::Unavailable(m)) => panic!("unavailable: {m}"),
                Err(Refused::Failed(e)) => panic!("failed: {e}"),
                Ok(()) => "done",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "invalid",
                "conflict",
                "not found",
                "invalid",
                "not found",
                "invalid",
                "invalid",
                "invalid",
                "not found",
                "not found",
                "not found"
            ]
        );
        let change = RecordingChange {
            enabled: Some(true),
            keep: Some("forever"),
            keep_bytes: None,
        };
        match set_recording(&ops, "lobby", change).await {
            Err(Refused::Invalid(m)) => {
                assert!(m.starts_with("Keep for:") && m.contains("--keep"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            set_ladder(&ops, "lobby", Some("720"), None).await,
            Err(Refused::Invalid(_))
        ));
        for bad in [None, Some("superb"), Some("")] {
            assert!(
                matches!(
                    set_ladder(&ops, "lobby", None, bad).await,
                    Err(Refused::Invalid(_))
                ),
                "{bad:?}"
            );
        }
        let uid = ops.named("lobby").await.expect("named").uid.clone();
        assert!(
            !dvr_settings::get(&ops.db, &uid)
                .await
                .expect("settings")
                .enabled
        );
        assert_eq!(names(&ops).await, ["lobby"]);
        assert_eq!(
            audit(&ops).await,
            [("stream.add".to_string(), "lobby".to_string())]
        );

        // What is done is done once, under the actor, and follows the identity.
        let change = RecordingChange {
            enabled: Some(true),
            keep: Some("7d"),
            keep_bytes: Some(""),
        };
        let now = set_recording(&ops, "lobby", change).await.expect("record");
        assert_eq!((now.enabled, now.keep_secs), (true, Some(7 * 86_400)));
        assert!(set_visibility(&ops, "lobby", "private")
            .await
            .expect("private"));
        let link = new_link(&ops, "lobby", "2h").await.expect("link");
        assert!(
            link.url.contains("/t/") && link.url.ends_with("/watch/lobby"),
            "{}",
            link.url
        );
        assert_eq!(rename(&ops, "lobby", "hall").await.expect("rename"), "hall");
        let moved = ops.named("hall").await.expect("renamed");
        assert_eq!(moved.uid, uid);
        assert!(moved.private);
        end_link(&ops, "hall", &link.id.to_string())
            .await
            .expect("revoke");
        let new_key = rotate_key(&ops, "hall").await.expect("rotate");
        assert_ne!(new_key, key);
        assert_eq!(remove(&ops, "hall").await.expect("remove"), Kind::Stream);
        assert!(names(&ops).await.is_empty());
        let actions: Vec<String> = audit(&ops).await.into_iter().map(|(a, _)| a).collect();
        assert_eq!(
            actions,
            [
                "stream.add",
                "stream.recording",
                "stream.visibility",
                "stream.link",
                "stream.rename",
                "stream.link-revoke",
                "stream.rotate-key",
                "stream.rm"
            ]
        );
        let actors: Vec<(String, String)> = crate::db::audit_log(&ops.db, 100)
            .await
            .expect("audit")
            .into_iter()
            .map(|e| (e.actor, e.client))
            .collect();
        assert!(
            actors.iter().all(|(a, c)| a == "cli" && c == "cli"),
            "{actors:?}"
        );
    }
}
