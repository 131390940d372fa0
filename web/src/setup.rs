//! `/setup`: the first-run wizard, one page per step, each a plain form post validated
//! on the server.

use crate::admin::{Csrf, Message};
use crate::page::document;
use leptos::prelude::*;

/// The step names, in order (step 1 is index 0).
pub const STEPS: [&str; 5] = [
    "Administrator",
    "Appliance",
    "Network",
    "Storage",
    "First stream",
];

/// An interface as the network step shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Kernel name, e.g. `eth0`.
    pub name: String,
    /// `192.0.2.10/24`, `fd00::10/64`, …
    pub addresses: Vec<String>,
}

/// What step 3 can change: the box's name and each interface's settings, on trial as
/// on the Network page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkChange {
    /// The host name now.
    pub hostname: String,
    /// Its mDNS name (`NAME.local`).
    pub mdns_name: Option<String>,
    /// The name as typed, when it was refused.
    pub hostname_typed: Option<String>,
    /// The interfaces, with their forms.
    pub nics: Vec<crate::network::Nic>,
    /// The change on trial.
    pub trial: Option<crate::network::TrialBanner>,
    /// The trial's default length, seconds.
    pub confirm_within: u32,
    /// Why the settings cannot be changed here, if they cannot.
    pub unavailable: Option<String>,
    /// A success to show.
    pub notice: Option<String>,
    /// The NTP servers.
    pub ntp: crate::network::NtpBox,
    /// Remote access.
    pub vpn: crate::vpn::SetupVpn,
}

/// A stream the last step just created: what OBS needs, shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The stream name.
    pub name: String,
    /// OBS "Server", e.g. `rtmp://192.0.2.10/live`.
    pub server: String,
    /// OBS "Stream Key".
    pub key: String,
    /// Where it will play, e.g. `http://192.0.2.10:8080/watch/lobby`.
    pub watch: String,
}

/// The camera form's values (never the password).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CameraForm {
    /// Stream name.
    pub name: String,
    /// `rtsp://host:554/path`.
    pub url: String,
    /// Camera user name.
    pub username: String,
    /// `tcp` or `udp`.
    pub transport: String,
}

/// What one step shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepView {
    /// 1: the administrator's name (the password is never echoed).
    Admin {
        /// Name typed so far.
        name: String,
    },
    /// A backup was accepted on the first step: the box restarts with it.
    Restored {
        /// What was restored ([`crate::system::restored_text`]).
        notice: String,
    },
    /// Setup goes on after a reload or restart only for the administrator.
    SignIn {
        /// Name typed so far.
        name: String,
    },
    /// 2: appliance name and time zone.
    Identity {
        /// The name.
        name: String,
        /// The chosen zone.
        zone: String,
        /// Every zone offered.
        zones: Vec<String>,
    },
    /// 3: what the network is now.
    Network {
        /// Interfaces with addresses.
        interfaces: Vec<Interface>,
        /// Default routes, e.g. `via 192.0.2.1 on eth0`.
        routes: Vec<String>,
        /// (what, URL): where viewers and publishers go.
        urls: Vec<(String, String)>,
        /// What can be changed.
        change: NetworkChange,
    },
    /// 4: the data disk and default retention.
    Storage {
        /// The data directory.
        data_dir: String,
        /// Size of its file system, e.g. `250.0 GB`.
        total: String,
        /// Free there.
        free: String,
        /// The default age limit as typed, e.g. `7d` or `none`.
        keep: String,
        /// Whether new streams record.
        record: bool,
    },
    /// 5: a first stream or camera.
    FirstStream {
        /// Name typed for a new stream.
        stream: String,
        /// A stream just created.
        created: Option<Created>,
        /// The camera form.
        camera: CameraForm,
        /// The result of "Test connection": Ok(what the camera offers) or Err(why not).
        test: Option<Result<String, String>>,
    },
}

/// A wizard page: `step` (1–5) is shown, `reached` is the furthest step (earlier ones
/// can be revisited); `error` is the server's verdict on the last post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wizard {
    /// The step shown, 1–5.
    pub step: u8,
    /// The furthest step reached, 1–5.
    pub reached: u8,
    /// The CSRF token for the forms.
    pub csrf: String,
    /// What was wrong with the last post.
    pub error: Option<String>,
    /// What the step shows.
    pub view: StepView,
}

/// Renders a wizard page.
pub fn page(w: Wizard) -> String {
    let title = format!(
        "Setup: {} — streambox",
        STEPS[usize::from(w.step.clamp(1, 5)) - 1]
    );
    document(&title, "setup", move || {
        let steps = STEPS
            .iter()
            .enumerate()
            .map(|(i, label)| {
                let n = i as u8 + 1;
                let class = if n == w.step {
                    "current"
                } else if n < w.reached {
                    "done"
                } else {
                    "todo"
                };
                // Steps 2–4 can be revisited once passed; step 1 cannot be redone.
                let link =
                    (n >= 2 && n < w.reached && n != w.step).then(|| format!("/setup?step={n}"));
                let label = format!("{n}. {label}");
                view! {
                    <li class=class>
                        {match link {
                            Some(href) => view! { <a href=href>{label}</a> }.into_any(),
                            None => view! { <span>{label}</span> }.into_any(),
                        }}
                    </li>
                }
            })
            .collect_view();
        let csrf = w.csrf.clone();
        view! {
            <main class="narrow">
                <h1>"Set up streambox"</h1>
                <ol class="steps">{steps}</ol>
                <Message text=w.error.clone() />
                {step_body(w.view.clone(), csrf)}
            </main>
        }
    })
}

fn step_body(view: StepView, csrf: String) -> AnyView {
    match view {
        StepView::Admin { name } => {
            let csrf_for_restore = csrf.clone();
            view! {
            <h2>"Create the administrator"</h2>
            <p>"This account manages the appliance. Choose a password of at least 10 characters that is hard to guess; a few unrelated words work well."</p>
            <form method="post" action="/setup/admin" class="stack">
                <Csrf token=csrf />
                <label>"User name" <input name="name" value=name autocomplete="username" required maxlength="64" autofocus /></label>
                <label>"Password" <input name="password" type="password" autocomplete="new-password" required minlength="10" maxlength="1024" /></label>
                <label>"Password, again" <input name="again" type="password" autocomplete="new-password" required maxlength="1024" /></label>
                <button type="submit">"Create and continue"</button>
            </form>
            <h2>"Or restore a backup"</h2>
            <p>"Moving from another streambox, or setting this one up again? A backup made with \"Back up configuration\" brings back its users, streams and their keys, cameras and settings."</p>
            <crate::system::RestoreForm action="/setup/restore" csrf=csrf_for_restore />
            }
            .into_any()
        }
        StepView::Restored { notice } => view! {
            <meta http-equiv="refresh" content="8;url=/login" />
            <p class="notice" role="status" id="restored">{notice}</p>
            <p><a href="/login">"Sign in"</a></p>
        }
        .into_any(),
        StepView::SignIn { name } => view! {
            <h2>"Sign in to continue setup"</h2>
            <p>"Setup was started on this appliance. Sign in as the administrator created in step 1 to go on where it was left."</p>
            <form method="post" action="/setup/login" class="stack">
                <Csrf token=csrf />
                <label>"User name" <input name="name" value=name autocomplete="username" required maxlength="64" autofocus /></label>
                <label>"Password" <input name="password" type="password" autocomplete="current-password" required maxlength="1024" /></label>
                <button type="submit">"Sign in"</button>
            </form>
        }
        .into_any(),
        StepView::Identity { name, zone, zones } => {
            let options = zones
                .into_iter()
                .map(|z| {
                    let selected = z == zone;
                    let label = z.clone();
                    view! { <option value=z selected=selected>{label}</option> }
                })
                .collect_view();
            view! {
                <h2>"Name the appliance"</h2>
                <form method="post" action="/setup/identity" class="stack">
                    <Csrf token=csrf />
                    <label>"Appliance name" <input name="name" value=name required maxlength="64" placeholder="Main hall" autofocus /></label>
                    <label>"Time zone" <select name="time_zone">{options}</select></label>
                    <button type="submit">"Save and continue"</button>
                </form>
            }
            .into_any()
        }
        StepView::Network { interfaces, routes, urls, change } => {
            use crate::network::{name_section, nic_section, ntp_section, trial_section, SETUP};
            let ntp = ntp_section(change.ntp, csrf.clone(), SETUP);
            let vpn = crate::vpn::setup_section(change.vpn, csrf.clone());
            let trial = change.trial.map(|t| trial_section(t, csrf.clone(), SETUP));
            let name = name_section(change.hostname, change.mdns_name, change.hostname_typed, csrf.clone(), SETUP);
            let within = change.confirm_within.to_string();
            let open = trial.is_some() || change.nics.iter().any(|n| n.source == "as typed");
            let nics = change
                .nics
                .into_iter()
                .map(|n| nic_section(n, csrf.clone(), within.clone(), SETUP, None))
                .collect_view();
            let ifaces = interfaces
                .into_iter()
                .map(|i| view! { <tr><th>{i.name}</th><td>{i.addresses.join(", ")}</td></tr> })
                .collect_view();
            let routes = if routes.is_empty() {
                view! { <p class="error">"No default route: this appliance cannot reach other networks."</p> }.into_any()
            } else {
                view! { <ul>{routes.into_iter().map(|r| view! { <li>{r}</li> }).collect_view()}</ul> }.into_any()
            };
            let urls = urls
                .into_iter()
                .map(|(what, url)| view! { <tr><th>{what}</th><td><code class="copy">{url}</code></td></tr> })
                .collect_view();
            view! {
                <h2>"Network"</h2>
                <p>"This is the network as the appliance sees it now. Rename the box or change its addresses here if you need to (or later, on the Network page): each address change is tried first, and undone by itself unless you confirm it from its new address."</p>
                <h3>"Interfaces"</h3>
                <table class="facts" id="interfaces">{ifaces}</table>
                <h3>"Default route"</h3>
                {routes}
                <h3>"Addresses to use"</h3>
                <table class="facts" id="urls">{urls}</table>
                <Message text=change.notice ok=true />
                <Message text=change.unavailable />
                {trial}
                {name}
                {ntp}
                {vpn}
                <details id="change-network" open=open>
                    <summary>"Change the addresses (optional)"</summary>
                    <p class="hint">"Each change is tried first: open the box at its new address, sign in, and confirm it there, or the previous settings come back by themselves."</p>
                    {nics}
                </details>
                <form method="post" action="/setup/network">
                    <Csrf token=csrf />
                    <button type="submit">"Continue"</button>
                </form>
            }
            .into_any()
        }
        StepView::Storage { data_dir, total, free, keep, record } => view! {
            <h2>"Storage"</h2>
            <table class="facts" id="disk">
                <tr><th>"Data directory"</th><td><code>{data_dir}</code></td></tr>
                <tr><th>"Disk size"</th><td>{total}</td></tr>
                <tr><th>"Free"</th><td>{free}</td></tr>
            </table>
            <form method="post" action="/setup/storage" class="stack">
                <Csrf token=csrf />
                <label class="check"><input type="checkbox" name="record" value="on" checked=record />" Record new streams"</label>
                <label>"Keep recordings for" <input name="keep" value=keep required maxlength="32" placeholder="7d" /></label>
                <p class="hint">"A duration such as 7d, 48h or 30d, or none to keep them until the disk needs the space. Each stream can change this later."</p>
                <button type="submit">"Save and continue"</button>
            </form>
        }
        .into_any(),
        StepView::FirstStream { stream, created, camera, test } => first_stream(csrf, stream, created, camera, test),
    }
}

fn first_stream(
    csrf: String,
    stream: String,
    created: Option<Created>,
    camera: CameraForm,
    test: Option<Result<String, String>>,
) -> AnyView {
    let finish = {
        let csrf = csrf.clone();
        view! {
            <form method="post" action="/setup/finish" class="finish">
                <Csrf token=csrf />
                <button type="submit">"Finish setup"</button>
            </form>
        }
    };
    if let Some(c) = created {
        return view! {
            <h2>"Stream created"</h2>
            <p>"In OBS, open Settings → Stream, choose Custom, and enter:"</p>
            <table class="facts" id="publish">
                <tr><th>"Server"</th><td><code class="copy" id="server">{c.server}</code></td></tr>
                <tr><th>"Stream key"</th><td><code class="copy" id="key">{c.key}</code></td></tr>
                <tr><th>"Watch at"</th><td><code class="copy" id="watch">{c.watch}</code></td></tr>
            </table>
            <p class="hint">"The key is shown only now. If it is lost, rotate it from the stream's page."</p>
            {finish}
            <script src="/assets/copy.js"></script>
        }
        .into_any();
    }
    let csrf2 = csrf.clone();
    view! {
        <h2>"Your first stream"</h2>
        <section class="choice">
            <h3>"Publish from OBS or an encoder (RTMP)"</h3>
            <form method="post" action="/setup/stream" class="stack">
                <Csrf token=csrf />
                <label>"Stream name" <input name="name" value=stream required maxlength="64" placeholder="main-hall" pattern="[a-z0-9][a-z0-9_\\-]{0,63}" /></label>
                <p class="hint">"Lower-case letters, digits, - and _. It becomes part of the viewers' address."</p>
                <button type="submit">"Create stream"</button>
            </form>
        </section>
        <section class="choice">
            <h3>"Or pull from an IP camera (RTSP)"</h3>
            <CameraFormView csrf=csrf2 action="/setup/camera" camera test save_label="Add camera" />
        </section>
        <p class="hint">"Or add streams later:"</p>
        {finish}
    }
    .into_any()
}

/// The camera form: name (when adding), URL, user name, password (never echoed; left
/// blank on an edit, the stored one is kept), transport, and two buttons: `action=test`
/// tries the camera without saving, `action=add` saves. `test` is the result of the last
/// test (or a notice after saving).
#[component]
pub(crate) fn CameraFormView(
    csrf: String,
    #[prop(into)] action: String,
    camera: CameraForm,
    test: Option<Result<String, String>>,
    save_label: &'static str,
    #[prop(optional)] editing: bool,
) -> impl IntoView {
    let test_result = test.map(|r| match r {
        Ok(m) => view! { <p class="notice" role="status" id="test-result">{m}</p> }.into_any(),
        Err(m) => view! { <p class="error" role="alert" id="test-result">{m}</p> }.into_any(),
    });
    let tcp = camera.transport != "udp";
    let name = (!editing).then(|| {
        view! { <label>"Stream name" <input name="name" value=camera.name.clone() required maxlength="64" placeholder="gate-camera" /></label> }
    });
    view! {
        {test_result}
        <form method="post" action=action class="stack narrow-form camera-form">
            <Csrf token=csrf />
            {name}
            <label>"Camera URL" <input name="url" value=camera.url required maxlength="2048" placeholder="rtsp://192.0.2.20:554/stream1" /></label>
            <label>"Camera user name" <input name="username" value=camera.username maxlength="256" autocomplete="off" /></label>
            <label>"Camera password" <input name="password" type="password" maxlength="256" autocomplete="off" placeholder=if editing { "unchanged" } else { "" } /></label>
            <label>"Transport" <select name="transport">
                <option value="tcp" selected=tcp>"TCP (works through most networks)"</option>
                <option value="udp" selected=!tcp>"UDP"</option>
            </select></label>
            <div class="buttons">
                <button type="submit" name="action" value="test">"Test connection"</button>
                <button type="submit" name="action" value="add">{save_label}</button>
            </div>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_before_the_reached_one_can_be_revisited_but_not_the_first() {
        let html = page(Wizard {
            step: 4,
            reached: 5,
            csrf: "T".into(),
            error: Some("bad <input>".into()),
            view: StepView::Storage {
                data_dir: "/var/lib/streambox".into(),
                total: "1 GB".into(),
                free: "0.5 GB".into(),
                keep: "7d".into(),
                record: true,
            },
        });
        assert!(html.contains("href=\"/setup?step=2\""), "{html}");
        assert!(html.contains("href=\"/setup?step=3\""), "{html}");
        assert!(!html.contains("href=\"/setup?step=1\""), "{html}");
        assert!(!html.contains("href=\"/setup?step=4\""), "{html}");
        assert!(html.contains("bad &lt;input&gt;"), "{html}");
        assert!(html.contains("name=\"csrf\" value=\"T\""), "{html}");
        assert!(html.contains("checked"), "{html}");
    }
}
