//! `/admin/hardware`: the capture devices, sound cards and GPUs the box has now. The list
//! is redrawn every second (`refresh.js`), so a device plugged in or pulled out shows
//! within two seconds without a reload.

use crate::admin::{admin_page, Csrf, Message, Shell};
use leptos::prelude::*;

/// A video capture device, formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    /// Its stable ID (`usb-…-video-index0`).
    pub id: String,
    /// Its node now (`/dev/video0`).
    pub node: String,
    /// Its name.
    pub name: String,
    /// `uvcvideo at usb-0000:00:14.0-1`, or empty.
    pub driver: String,
    /// Why it could not be asked what it offers.
    pub error: Option<String>,
    /// One line per pixel format: `MJPG (Motion-JPEG): 1280x720 at 30/15 fps, …`.
    pub formats: Vec<String>,
    /// The sources bound to it: (name, state and format), such as (`stage`, `live: YUYV
    /// 1280x720 at 30 fps, encoded at 2.8 Mbit/s`).
    pub sources: Vec<(String, String)>,
}

/// A capture PCM of a sound card, formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    /// The ALSA device name (`hw:CARD=Loopback,DEV=0`).
    pub alsa: String,
    /// The PCM's name.
    pub name: String,
    /// The card's long name and driver.
    pub card: String,
}

/// A GPU, formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// `VA-API` or `NVIDIA`.
    pub kind: String,
    /// Its node.
    pub node: String,
    /// Vendor and driver.
    pub detail: String,
}

/// The "Add a capture source" form: what was typed, and the answer to the last post.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureForm {
    /// The source's name.
    pub name: String,
    /// The device's stable ID.
    pub device: String,
    /// `WIDTHxHEIGHT`, or empty.
    pub size: String,
    /// Frames per second, or empty.
    pub fps: String,
    /// `4M`, or empty.
    pub bitrate: String,
    /// The sound card's capture device (`hw:CARD=ID,DEV=N`), or empty for none.
    pub audio: String,
    /// Why the last post was refused.
    pub error: Option<String>,
}

/// What the hardware page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hardware {
    /// Video capture devices.
    pub video: Vec<Video>,
    /// Sound cards' capture PCMs.
    pub audio: Vec<Audio>,
    /// GPUs.
    pub gpus: Vec<Gpu>,
    /// The form to add a capture source.
    pub form: CaptureForm,
}

/// Renders the Hardware page.
pub fn page(shell: Shell, hw: Hardware) -> String {
    let csrf = shell.csrf.clone();
    admin_page("Hardware", shell, "/admin/hardware", move || {
        let form = hw.form.clone();
        let devices = hw
            .video
            .iter()
            .filter(|v| v.error.is_none())
            .map(|v| {
                let selected = v.id == form.device;
                let label = format!("{} ({})", v.name, v.id);
                view! { <option value=v.id.clone() selected=selected>{label}</option> }
            })
            .collect_view();
        let sounds = hw
            .audio
            .iter()
            .map(|a| {
                let selected = a.alsa == form.audio;
                let label = format!("{} ({})", a.name, a.alsa);
                view! { <option value=a.alsa.clone() selected=selected>{label}</option> }
            })
            .collect_view();
        let add = if hw.video.iter().all(|v| v.error.is_some()) {
            view! { <p class="hint" id="no-capture-form">"Plug in a capture device to add it as a source."</p> }
                .into_any()
        } else {
            view! {
                <form method="post" action="/admin/hardware/capture" id="add-capture">
                    <Csrf token=csrf />
                    <label>"Name" <input name="name" value=form.name.clone() required pattern="[a-z0-9][a-z0-9_-]{0,63}" /></label>
                    <label>"Device" <select name="device">{devices}</select></label>
                    <label>"Size" <input name="size" value=form.size.clone() placeholder="best up to 1920x1080" /></label>
                    <label>"Frame rate" <input name="fps" value=form.fps.clone() placeholder="best up to 30" /></label>
                    <label>"Bitrate" <input name="bitrate" value=form.bitrate.clone() placeholder="fits the size, e.g. 4M" /></label>
                    <label>"Sound" <select name="audio"><option value="">"none"</option>{sounds}</select></label>
                    <button>"Add capture source"</button>
                    <p class="hint">"The source follows the device to any USB port. H.264 from the camera is passed through; other formats are encoded here, within the CPU budget."</p>
                </form>
            }
            .into_any()
        };
        let video = if hw.video.is_empty() {
            view! { <p class="hint" id="no-video">"No video capture device is plugged in."</p> }
                .into_any()
        } else {
            hw.video
                .into_iter()
                .map(|v| {
                    let formats = v
                        .formats
                        .into_iter()
                        .map(|f| view! { <li>{f}</li> })
                        .collect_view();
                    let id = v.id.clone();
                    let used = v
                        .sources
                        .into_iter()
                        .map(|(name, state)| {
                            let href = format!("/admin/streams/{name}");
                            view! { <li class="source">"Source "<a href=href>{name}</a>": "{state}</li> }
                        })
                        .collect_view();
                    let snapshot = format!(
                        "/api/hardware/video/{}/snapshot",
                        percent_encoding::utf8_percent_encode(&v.id, percent_encoding::NON_ALPHANUMERIC)
                    );
                    view! {
                        <section class="device video" data-id=id>
                            <h3>{v.name}</h3>
                            <table class="facts">
                                <tr><th>"Stable ID"</th><td><code>{v.id}</code></td></tr>
                                <tr><th>"Node"</th><td><code>{v.node}</code></td></tr>
                                <tr><th>"Driver"</th><td>{v.driver}</td></tr>
                            </table>
                            {v.error.map(|e| view! { <p class="error">{e}</p> })}
                            <ul class="formats">{formats}</ul>
                            <ul class="sources">{used}</ul>
                            <p><a class="snapshot" href=snapshot target="_blank">"What it sees now"</a>
                                " (one frame, taken when opened; not while a source or another program captures from it)"</p>
                        </section>
                    }
                })
                .collect_view()
                .into_any()
        };
        let audio = if hw.audio.is_empty() {
            view! { <p class="hint" id="no-audio">"No sound card that captures."</p> }.into_any()
        } else {
            let rows = hw
                .audio
                .into_iter()
                .map(|a| {
                    view! {
                        <tr class="audio"><td><code>{a.alsa}</code></td><td>{a.name}</td><td>{a.card}</td></tr>
                    }
                })
                .collect_view();
            view! {
                <table class="list">
                    <tr><th>"ALSA device"</th><th>"Name"</th><th>"Card"</th></tr>
                    {rows}
                </table>
            }
            .into_any()
        };
        let gpus = if hw.gpus.is_empty() {
            view! { <p class="hint" id="no-gpu">"No GPU found: ABR rungs encode on the CPU."</p> }
                .into_any()
        } else {
            let rows = hw
                .gpus
                .into_iter()
                .map(|g| view! { <tr class="gpu"><td>{g.kind}</td><td><code>{g.node}</code></td><td>{g.detail}</td></tr> })
                .collect_view();
            view! { <table class="list">{rows}</table> }.into_any()
        };
        view! {
            <h1>"Hardware"</h1>
            <p class="hint">"What is plugged in now; the list follows devices as they come and go."</p>
            <div id="hardware" data-refresh="1">
                <h2>"Video capture"</h2>
                {video}
                <h2>"Audio capture"</h2>
                {audio}
                <h2>"GPUs"</h2>
                {gpus}
            </div>
            <h2>"Add a capture source"</h2>
            <Message text=hw.form.error.clone() />
            {add}
            <script src="/assets/refresh.js"></script>
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_devices_and_says_when_there_are_none() {
        let shell = Shell {
            appliance: "studio".into(),
            user: "admin".into(),
            csrf: "t".into(),
        };
        let html = page(
            shell.clone(),
            Hardware {
                video: vec![Video {
                    id: "usb-Cam_<1>-video-index0".into(),
                    node: "/dev/video0".into(),
                    name: "Cam".into(),
                    driver: "uvcvideo at usb-1".into(),
                    error: None,
                    formats: vec!["MJPG (Motion-JPEG): 1280x720 at 30 fps".into()],
                    sources: vec![("stage".into(), "live: MJPG 1280x720 at 30 fps".into())],
                }],
                audio: vec![Audio {
                    alsa: "hw:CARD=Loopback,DEV=0".into(),
                    name: "Loopback PCM".into(),
                    card: "Loopback 1 (Loopback)".into(),
                }],
                gpus: Vec::new(),
                form: CaptureForm {
                    error: Some("The device does not offer 640x480.".into()),
                    device: "usb-Cam_<1>-video-index0".into(),
                    audio: "hw:CARD=Loopback,DEV=0".into(),
                    ..CaptureForm::default()
                },
            },
        );
        assert!(
            html.contains(r#"<a href="/admin/streams/stage">stage</a>"#),
            "{html}"
        );
        assert!(
            html.contains("live: MJPG 1280x720 at 30 fps</li>"),
            "{html}"
        );
        assert!(html.contains(r#"action="/admin/hardware/capture""#));
        assert!(
            html.contains(r#"<option value="usb-Cam_&lt;1&gt;-video-index0" selected"#),
            "{html}"
        );
        assert!(html.contains("The device does not offer 640x480."));
        assert!(
            html.contains(r#"<option value="hw:CARD=Loopback,DEV=0" selected"#),
            "the sound card typed stays chosen: {html}"
        );
        assert!(html.contains("usb-Cam_&lt;1&gt;-video-index0"), "{html}");
        assert!(
            html.contains(
                r#"href="/api/hardware/video/usb%2DCam%5F%3C1%3E%2Dvideo%2Dindex0/snapshot""#
            ),
            "{html}"
        );
        assert!(html.contains("MJPG (Motion-JPEG): 1280x720 at 30 fps"));
        assert!(html.contains("hw:CARD=Loopback,DEV=0"));
        assert!(html.contains(r#"id="no-gpu""#));
        assert!(html.contains(r#"data-refresh="1""#));
        let empty = page(shell, Hardware::default());
        assert!(empty.contains(r#"id="no-video""#) && empty.contains(r#"id="no-audio""#));
        assert!(empty.contains(r#"id="no-capture-form""#));
    }
}
