//! The admin's streams: the list with a form to create one, and a stream's page (player,
//! publish settings, recording, visibility and viewer links, recordings with export,
//! rename and delete).

use crate::admin::{admin_page, Csrf, Message, Shell};
use crate::setup::{CameraForm, CameraFormView};
use leptos::prelude::*;

/// A stream or camera as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Stream name.
    pub name: String,
    /// `stream` or `camera`.
    pub kind: &'static str,
    /// Whether it has a publisher now.
    pub live: bool,
    /// Whether it plays only through viewer links.
    pub private: bool,
    /// Whether it records.
    pub recording: bool,
}

/// What the "Add a camera" form shows: its values and the last test's result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CameraState {
    /// The form's values.
    pub form: CameraForm,
    /// Ok(what the camera offers, or that it was saved) or Err(why not).
    pub test: Option<Result<String, String>>,
}

/// `/admin/streams`: every stream and camera, a form to create a stream, and one to add
/// a camera (with "Test connection").
pub fn list(
    shell: Shell,
    rows: Vec<Row>,
    name: String,
    error: Option<String>,
    camera: CameraState,
) -> String {
    let csrf = shell.csrf.clone();
    let csrf2 = shell.csrf.clone();
    admin_page("Streams", shell, "/admin/streams", move || {
        let rows = rows
            .into_iter()
            .map(|r| {
                let href = format!("/admin/streams/{}", r.name);
                view! {
                    <tr data-stream=r.name.clone()>
                        <td><a href=href>{r.name.clone()}</a></td>
                        <td>{r.kind}</td>
                        <td>{if r.live { "live" } else { "offline" }}</td>
                        <td>{if r.private { "private" } else { "public" }}</td>
                        <td>{if r.recording { "recording" } else { "not recording" }}</td>
                    </tr>
                }
            })
            .collect_view();
        view! {
            <h1>"Streams"</h1>
            <Message text=error />
            <form method="post" action="/admin/streams" class="inline">
                <Csrf token=csrf />
                <label>"New stream name" <input name="name" value=name required maxlength="64" placeholder="main-hall" /></label>
                <button type="submit">"Create stream"</button>
            </form>
            <table class="audit" id="streams-table">
                <thead><tr><th>"Name"</th><th>"Type"</th><th>"State"</th><th>"Visibility"</th><th>"Recording"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
            <section id="add-camera">
                <h2>"Add a camera (RTSP)"</h2>
                <CameraFormView csrf=csrf2 action="/admin/cameras" camera=camera.form test=camera.test save_label="Add camera" />
            </section>
        }
    })
}

/// How a stream is published to (pushed streams only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// OBS "Server", e.g. `rtmp://192.0.2.10/live`.
    pub server: String,
    /// RTSP publish URL without credentials, e.g. `rtsp://192.0.2.10:8554/live/lobby`.
    pub rtsp: String,
    /// The key, only right after it was made (creation or rotation).
    pub key: Option<String>,
    /// When the key was made, e.g. `2026-11-21T22:40:00Z`.
    pub key_since: String,
}

/// One recorded range, and where it sits on the day's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Start, RFC 3339 UTC.
    pub start: String,
    /// End, RFC 3339 UTC.
    pub end: String,
    /// Thumbnail URL (the keyframe at the start).
    pub thumbnail: String,
    /// The range's MP4 export URL.
    pub export: String,
    /// The range's VOD playlist URL.
    pub playlist: String,
    /// Where it starts on the timeline, in percent of the day from its left edge.
    pub left: f64,
    /// How much of the timeline it covers, in percent.
    pub width: f64,
}

/// A thumbnail on the recordings' timeline: the recorded keyframe at a time, which
/// plays the recording from there to the end of its range.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumb {
    /// The time, RFC 3339 UTC.
    pub at: String,
    /// The thumbnail's URL.
    pub thumbnail: String,
    /// The VOD playlist from `at` to the end of its range.
    pub playlist: String,
}

/// The last day's recordings: the timeline, thumbnails along it, and the clip export
/// form's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// The timeline's left edge (a day ago), RFC 3339 UTC.
    pub from: String,
    /// Its right edge (now), RFC 3339 UTC.
    pub to: String,
    /// Recorded ranges, newest first.
    pub ranges: Vec<Recorded>,
    /// Thumbnails spread over the recorded time, oldest first.
    pub thumbs: Vec<Thumb>,
    /// The clip export form's action, `/dvr/{stream}/export.mp4`.
    pub export: String,
    /// Its start and end fields' defaults (the newest range's last minute).
    pub clip: (String, String),
}

/// Everything a stream's page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    /// Stream name.
    pub name: String,
    /// `stream` or `camera`.
    pub kind: &'static str,
    /// Whether it has a publisher now.
    pub live: bool,
    /// Whether it plays only through viewer links.
    pub private: bool,
    /// Its media is encrypted for viewers, with its key's rotation period as typed
    /// (`10m`, `never`); `None` in the clear.
    pub encrypted: Option<String>,
    /// How many content keys it has had.
    pub keys: usize,
    /// Publish settings (streams only).
    pub publish: Option<Publish>,
    /// A camera's URL (password masked), state and last error.
    pub camera: Option<String>,
    /// A camera's edit form, and the last test's result.
    pub camera_form: Option<CameraState>,
    /// A capture source's device, state and format (`device usb-…: live: YUYV …`).
    pub capture: Option<String>,
    /// Recording on.
    pub recording: bool,
    /// Age limit as typed (`7d`, `none`).
    pub keep: String,
    /// Size limit as typed (`50 GB`, `none`).
    pub keep_bytes: String,
    /// The last day's recordings.
    pub recorded: Timeline,
    /// The ABR ladder as typed (`720p:2800k,360p:600k`, or `source`).
    pub ladder: String,
    /// The rungs' quality preset: `efficient`, `balanced` or `best`.
    pub quality: &'static str,
    /// The rungs being made now, each as `720p: 1280x720, 2800 kbit/s, balanced`.
    pub rungs: Vec<String>,
    /// A viewer link just made, and when it expires.
    pub link: Option<(String, String)>,
    /// The open viewer links.
    pub links: Vec<OpenLink>,
    /// What the last action did.
    pub notice: Option<String>,
    /// What was wrong with the last post.
    pub error: Option<String>,
}

/// An open viewer link as its stream's page lists it (its URL was shown once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenLink {
    /// Its id, which the revoke form posts to.
    pub id: i64,
    /// When it was made (ISO 8601 UTC).
    pub created: String,
    /// When it expires (ISO 8601 UTC).
    pub expires: String,
    /// Who made it.
    pub by: String,
}

/// `/admin/streams/{stream}`.
pub fn detail(shell: Shell, d: Detail) -> String {
    let csrf = shell.csrf.clone();
    let title = d.name.clone();
    admin_page(&title, shell, "/admin/streams", move || {
        let base = format!("/admin/streams/{}", d.name);
        let action = |a: &str| format!("{base}/{a}");
        let hls = format!("/live/{}/index.m3u8", d.name);
        let dash = format!("/live/{}/low-latency.mpd", d.name);
        let state = format!("/watch/{}/state", d.name);
        let watch = format!("/watch/{}", d.name);
        let c = || csrf.clone();
        let publish = d.publish.clone().map(|p| {
            let key = match p.key {
                Some(k) => view! {
                    <tr><th>"Stream key"</th><td><code class="copy" id="key">{k}</code>
                    <p class="hint">"Shown only now. Publishers using the old key are refused from now on."</p></td></tr>
                }.into_any(),
                None => view! {
                    <tr><th>"Stream key"</th><td>"hidden (made " {p.key_since.clone()} "); rotate it to see a new one"</td></tr>
                }.into_any(),
            };
            view! {
                <section>
                    <h2>"Publish"</h2>
                    <table class="facts" id="publish">
                        <tr><th>"Server (OBS)"</th><td><code class="copy" id="server">{p.server.clone()}</code></td></tr>
                        {key}
                        <tr><th>"RTSP"</th><td><code class="copy">{p.rtsp.clone()}</code>" (user: stream name, password: key)"</td></tr>
                    </table>
                    <form method="post" action=action("key")>
                        <Csrf token=c() />
                        <button type="submit">"Rotate key"</button>
                    </form>
                </section>
            }
        });
        let edit = action("camera");
        let csrf_edit = c();
        let camera_form = d.camera_form.clone().unwrap_or_default();
        let camera = d.camera.clone().map(move |c| {
            view! {
                <section>
                    <h2>"Camera"</h2>
                    <p id="camera">{c}</p>
                    <CameraFormView csrf=csrf_edit action=edit camera=camera_form.form test=camera_form.test save_label="Save camera" editing=true />
                </section>
            }
        });
        let capture = d.capture.clone().map(|c| {
            view! {
                <section>
                    <h2>"Capture device"</h2>
                    <p id="capture">{c}</p>
                    <p class="hint">"The source follows the device to any USB port, and comes back by itself when the device is plugged in again. Its device and settings change with PUT /api/streams/NAME/capture; the device's formats are on the "<a href="/admin/hardware">"Hardware"</a>" page."</p>
                </section>
            }
        });
        let link = d.link.clone().map(|(url, until)| view! {
            <p class="notice">"Viewer link, valid until " {until} ": " <code class="copy" id="link">{url}</code></p>
        });
        let links = (!d.links.is_empty()).then(|| {
            let rows = d
                .links
                .iter()
                .map(|l| {
                    let revoke = action(&format!("links/{}/revoke", l.id));
                    view! {
                        <tr data-link=l.id>
                            <td>{l.created.clone()}</td><td>{l.expires.clone()}</td><td>{l.by.clone()}</td>
                            <td><form method="post" action=revoke class="inline">
                                <Csrf token=c() />
                                <button type="submit" class="danger">"Revoke"</button>
                            </form></td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <table class="audit" id="links">
                    <thead><tr><th>"Made"</th><th>"Expires"</th><th>"By"</th><th></th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
                <p class="hint">"A revoked link stops at once, also for players watching through it."</p>
            }
        });
        let recorded = timeline(d.recorded.clone());
        view! {
            <h1>{d.name.clone()} " " <span class=if d.live { "state live" } else { "state offline" }>{if d.live { "live" } else { "offline" }}</span></h1>
            <Message text=d.error.clone() />
            <Message text=d.notice.clone() ok=true />
            <section class="player">
                <label class="check">"Player "
                    <select id="player-kind">
                        <option value="hls" selected=true>"LL-HLS (hls.js, low latency)"</option>
                        <option value="dash">"DASH (dash.js)"</option>
                    </select>
                </label>
                <span id="state" class="state connecting">"Connecting…"</span>
                <video id="player" controls autoplay muted playsinline data-src=hls data-dash=dash data-state=state></video>
                <p class="hint">"Viewers: " <a href=watch.clone()>{watch.clone()}</a></p>
            </section>
            {publish}
            {camera}
            {capture}
            <section>
                <h2>"Recording"</h2>
                <form method="post" action=action("recording") class="stack narrow-form">
                    <Csrf token=c() />
                    <label class="check"><input type="checkbox" name="enabled" value="on" checked=d.recording />" Record this stream"</label>
                    <label>"Keep for" <input name="keep" value=d.keep.clone() maxlength="32" /></label>
                    <label>"Keep at most" <input name="keep_bytes" value=d.keep_bytes.clone() maxlength="32" /></label>
                    <p class="hint">"Durations such as 7d or 48h, sizes such as 50GB, or none."</p>
                    <button type="submit">"Save recording settings"</button>
                </form>
                {recorded}
            </section>
            <section>
                <h2>"Renditions (adaptive bitrate)"</h2>
                <form method="post" action=action("ladder") class="stack narrow-form">
                    <Csrf token=c() />
                    <label>"Ladder" <input name="ladder" value=d.ladder.clone() maxlength="200" /></label>
                    <p class="hint">"Lower renditions made from the source, highest first: standard (720p, 480p, 360p), full (from 1080p), a list such as 720p,360p (each optionally :BITRATE and :FPS, as in 480p:900k:15fps), or source for the source alone."</p>
                    <label>"Picture quality "
                        <select name="quality">
                            {[("efficient", "Efficient: the least CPU"), ("balanced", "Balanced"), ("best", "Best: the most CPU")].into_iter().map(|(v, label)| view! {
                                <option value=v selected=d.quality == v>{label}</option>
                            }).collect_view()}
                        </select>
                    </label>
                    <p class="hint">"Better quality costs CPU. When the box cannot afford every rendition at the quality chosen, it makes some cheaper, and only then leaves the lowest out; they move back up when there is room again."</p>
                    <button type="submit">"Save renditions"</button>
                </form>
                {(!d.rungs.is_empty()).then(|| view! {
                    <ul class="rungs">{d.rungs.clone().into_iter().map(|r| view! { <li>{r}</li> }).collect_view()}</ul>
                })}
            </section>
            <section>
                <h2>"Visibility"</h2>
                <form method="post" action=action("visibility") class="inline">
                    <Csrf token=c() />
                    <label class="check"><input type="radio" name="visibility" value="public" checked=!d.private />" Public on the LAN"</label>
                    <label class="check"><input type="radio" name="visibility" value="private" checked=d.private />" Private: only through links"</label>
                    <button type="submit">"Save visibility"</button>
                </form>
                {link}
                {links}
                <form method="post" action=action("link") class="inline">
                    <Csrf token=c() />
                    <label>"Link valid for" <input name="valid" value="24h" maxlength="16" /></label>
                    <button type="submit">"Make a viewer link"</button>
                </form>
            </section>
            <section>
                <h2>"Encryption"</h2>
                <form method="post" action=action("protection") class="inline">
                    <Csrf token=c() />
                    <label class="check"><input type="radio" name="encrypted" value="off" checked=d.encrypted.is_none() />" In the clear"</label>
                    <label class="check"><input type="radio" name="encrypted" value="on" checked=d.encrypted.is_some() />" Encrypted (AES-128 HLS)"</label>
                    <label>"New key every" <input name="rotate" value=d.encrypted.clone().unwrap_or_else(|| "10m".into()) maxlength="16" /></label>
                    <button type="submit">"Save encryption"</button>
                </form>
                <p class="hint">"Encrypted: every segment that leaves the box is ciphertext, and its key goes only to viewers who may watch (public streams: everyone on the LAN; private ones: through their links). Durations such as 10m or 1h, or never. HLS and DASH players need nothing more. Its recordings and time-shift play encrypted over HLS and DASH; RTSP of an encrypted stream is refused."</p>
                {(d.encrypted.is_some()).then(|| view! {
                    <form method="post" action=action("protection/rotate") class="inline">
                        <Csrf token=c() />
                        <button type="submit">"New key now"</button>
                        <span class="hint">{format!(" {} key(s) so far. Use it when a link leaked: players without a valid link cannot get the new key.", d.keys)}</span>
                    </form>
                })}
            </section>
            <section>
                <h2>"Rename or delete"</h2>
                <form method="post" action=action("rename") class="inline">
                    <Csrf token=c() />
                    <label>"New name" <input name="name" maxlength="64" required /></label>
                    <button type="submit">"Rename"</button>
                </form>
                <form method="post" action=action("delete") class="inline">
                    <Csrf token=c() />
                    <label>"Type the name to delete" <input name="confirm" maxlength="64" required /></label>
                    <button type="submit" class="danger">"Delete"</button>
                </form>
                <p class="hint">"Deleting ends its publisher and its viewer links at once, and deletes its recordings. Export what you want to keep first."</p>
            </section>
            <script src="/assets/vendor/hls.min.js"></script>
            <script src="/assets/vendor/dash.all.min.js"></script>
            <script src="/assets/watch.js"></script>
            <script src="/assets/recordings.js"></script>
            <script src="/assets/copy.js"></script>
        }
    })
}

/// The recordings section: a 24-hour bar with the recorded ranges on it, thumbnails
/// along the recorded time, a player for them, the ranges as a list, and the clip
/// export form. Links play in the page's recordings player (`recordings.js`); without
/// JavaScript they open the playlist.
fn timeline(t: Timeline) -> impl IntoView {
    if t.ranges.is_empty() {
        return view! { <h3>"Recorded in the last day"</h3><p class="hint">"Nothing recorded in the last day."</p> }.into_any();
    }
    let bar = t.ranges.clone().into_iter().map(|r| {
        let style = format!("left:{:.3}%;width:{:.3}%", r.left, r.width.max(0.2));
        let title = format!("{} – {}", r.start, r.end);
        view! { <a class="span" style=style title=title href=r.playlist.clone() data-play=r.playlist></a> }
    }).collect_view();
    let thumbs = t
        .thumbs
        .into_iter()
        .map(|th| {
            view! {
                <li>
                    <a href=th.playlist.clone() data-play=th.playlist>
                        <img src=th.thumbnail alt="" width="160" height="90" loading="lazy" />
                        <span>{th.at}</span>
                    </a>
                </li>
            }
        })
        .collect_view();
    let list = t
        .ranges
        .into_iter()
        .map(|r| {
            view! {
                <li class="range">
                    <span>{r.start.clone()} " – " {r.end.clone()}</span>
                    <a href=r.playlist.clone() data-play=r.playlist>"Play"</a>
                    <a href=r.export download="">"Export MP4"</a>
                </li>
            }
        })
        .collect_view();
    view! {
        <h3>"Recorded in the last day"</h3>
        <div class="timeline" id="timeline">{bar}</div>
        <div class="timeline-ends"><span>{t.from}</span><span>{t.to}</span></div>
        <ol class="thumbs" id="thumbs">{thumbs}</ol>
        <video id="recording" controls playsinline hidden></video>
        <ul class="ranges" id="recorded">{list}</ul>
        <h3>"Export a clip"</h3>
        <form id="clip" method="get" action=t.export class="inline">
            <label>"From" <input name="start" value=t.clip.0 maxlength="40" required /></label>
            <label>"To" <input name="end" value=t.clip.1 maxlength="40" required /></label>
            <button type="submit">"Export MP4"</button>
        </form>
        <p class="hint">"Times in UTC (RFC 3339), up to a day apart; the clip starts at the keyframe before its start."</p>
    }
    .into_any()
}
