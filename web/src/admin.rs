//! The admin pages behind sign-in: the shell every page shares (header, navigation,
//! sign-out), the sign-in page, the dashboard, the password page and the audit log.
//!
//! Every form is a plain `POST` that works without JavaScript and carries the CSRF
//! token it was rendered with, in a hidden field named `csrf`.

use crate::page::document;
use leptos::prelude::*;

/// What every admin page needs to draw its header and forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    /// The appliance's name, from setup.
    pub appliance: String,
    /// The signed-in administrator.
    pub user: String,
    /// The CSRF token for this browser's forms.
    pub csrf: String,
}

/// The hidden CSRF field every form carries.
#[component]
pub fn Csrf(token: String) -> impl IntoView {
    view! { <input type="hidden" name="csrf" value=token /> }
}

/// A message box: an error (red) or a notice (green); nothing when `text` is `None`.
#[component]
pub fn Message(text: Option<String>, #[prop(optional)] ok: bool) -> impl IntoView {
    text.map(|t| {
        let class = if ok { "notice" } else { "error" };
        view! { <p class=class role="alert">{t}</p> }
    })
}

const NAV: [(&str, &str); 8] = [
    ("/admin", "Dashboard"),
    ("/admin/streams", "Streams"),
    ("/admin/hardware", "Hardware"),
    ("/admin/network", "Network"),
    ("/admin/vpn", "Remote access"),
    ("/admin/system", "System"),
    ("/admin/audit", "Audit log"),
    ("/admin/account", "Account"),
];

/// An admin page: header with the appliance name, navigation (`active` is the current
/// entry's path), the user and a sign-out button; then `body`.
pub(crate) fn admin_page<V: IntoView + 'static>(
    title: &str,
    shell: Shell,
    active: &'static str,
    body: impl FnOnce() -> V,
) -> String {
    let full = format!("{title} — {}", shell.appliance);
    document(&full, "admin", move || {
        let nav = NAV
            .iter()
            .map(|(href, label)| {
                let current = (*href == active).then_some("page");
                view! { <a href=*href aria-current=current>{*label}</a> }
            })
            .collect_view();
        view! {
            <header class="bar">
                <strong class="appliance">{shell.appliance.clone()}</strong>
                <nav>{nav}</nav>
                <form class="signout" method="post" action="/logout">
                    <Csrf token=shell.csrf.clone() />
                    <span class="user">{shell.user.clone()}</span>
                    <button type="submit">"Sign out"</button>
                </form>
            </header>
            <main class="content">{body()}</main>
        }
    })
}

/// `/login`: the sign-in form. `next` is where to go after (kept in a hidden field);
/// `error` explains a refused attempt or an ended session.
pub fn login(
    appliance: &str,
    csrf: &str,
    name: &str,
    next: &str,
    error: Option<String>,
    notice: Option<String>,
) -> String {
    let (csrf, name, next) = (csrf.to_string(), name.to_string(), next.to_string());
    let heading = appliance.to_string();
    document(&format!("Sign in — {appliance}"), "signin", move || {
        view! {
            <main class="narrow">
                <h1>{heading}</h1>
                <Message text=error />
                <Message text=notice ok=true />
                <form method="post" action="/login" class="stack">
                    <Csrf token=csrf />
                    <input type="hidden" name="next" value=next />
                    <label>"User name" <input name="name" value=name autocomplete="username" required maxlength="64" autofocus /></label>
                    <label>"Password" <input name="password" type="password" autocomplete="current-password" required maxlength="1024" /></label>
                    <button type="submit">"Sign in"</button>
                </form>
            </main>
        }
    })
}

/// One stream or camera on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCard {
    /// The stream name (URL-safe).
    pub name: String,
    /// `stream` (pushed over RTMP/RTSP) or `camera` (pulled over RTSP).
    pub kind: &'static str,
    /// Whether it has a publisher now.
    pub live: bool,
    /// Where it comes from: the publisher's address, or the camera's URL.
    pub source: String,
    /// A camera's state and last error (`live`, `retrying: 401 Unauthorized`); empty
    /// for pushed streams.
    pub detail: String,
    /// Incoming bitrate, e.g. `2.1 Mbit/s`; empty when not live.
    pub bitrate: String,
    /// Viewers now (RTSP sessions and HLS/DASH players).
    pub viewers: usize,
    /// How long the current publish session has lasted, e.g. `1h 2m 5s`; empty when not
    /// live.
    pub uptime: String,
    /// Whether new segments are recorded.
    pub recording: bool,
    /// Disk used by its recordings, e.g. `1.2 GB`.
    pub disk: String,
}

#[component]
fn Card(card: StreamCard) -> impl IntoView {
    let thumb = format!("/live/{}/thumbnail.jpg?width=320", card.name);
    let watch = format!("/watch/{}", card.name);
    let state = if card.live { "live" } else { "offline" };
    view! {
        <li class="dash-card" data-stream=card.name.clone()>
            {card.live.then(|| view! { <img src=thumb.clone() alt="" width="320" height="180" /> })}
            {(!card.live).then(|| view! { <div class="no-picture">"No picture"</div> })}
            <div class="facts">
                <a class="name" href=watch>{card.name.clone()}</a>
                <span class=format!("state {state}")>{state}</span>
                <dl>
                    <dt>"Type"</dt><dd>{card.kind}</dd>
                    <dt>"Source"</dt><dd class="source">{card.source.clone()}</dd>
                    {(!card.detail.is_empty()).then(|| view! { <dt>"State"</dt><dd>{card.detail.clone()}</dd> })}
                    {(!card.bitrate.is_empty()).then(|| view! { <dt>"Bitrate"</dt><dd>{card.bitrate.clone()}</dd> })}
                    {(!card.uptime.is_empty()).then(|| view! { <dt>"Uptime"</dt><dd class="uptime">{card.uptime.clone()}</dd> })}
                    <dt>"Viewers"</dt><dd class="viewers">{card.viewers}</dd>
                    <dt>"Recording"</dt><dd>{if card.recording { "on" } else { "off" }}</dd>
                    <dt>"Recorded"</dt><dd>{card.disk.clone()}</dd>
                </dl>
            </div>
        </li>
    }
}

/// `/admin`: every stream and camera with its thumbnail, state, source, bitrate,
/// recording state and disk use; the list refreshes itself every few seconds.
pub fn dashboard(shell: Shell, cards: Vec<StreamCard>, notice: Option<String>) -> String {
    admin_page("Dashboard", shell, "/admin", move || {
        let empty = cards.is_empty();
        view! {
            <h1>"Dashboard"</h1>
            <Message text=notice ok=true />
            <section id="streams" data-refresh="5">
                {empty.then(|| view! { <p class="empty">"No streams or cameras yet."</p> })}
                <ul class="dash-cards">
                    {cards.into_iter().map(|card| view! { <Card card /> }).collect_view()}
                </ul>
            </section>
            <script src="/assets/refresh.js"></script>
        }
    })
}

/// One API token, as the account page lists it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenItem {
    /// Row id, to revoke it by.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// What it may do: `admin` (everything) or `metrics` (read /metrics only).
    pub scope: String,
    /// When it was made, e.g. `2026-11-21T22:40:00.000Z`.
    pub created: String,
    /// When it was last used, or `never`.
    pub last_used: String,
}

/// What the account page shows besides its forms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountView {
    /// The user's API tokens.
    pub tokens: Vec<TokenItem>,
    /// A token just made: its name and the secret, shown this once.
    pub new_token: Option<(String, String)>,
    /// What went wrong with the last post.
    pub error: Option<String>,
    /// What the last post did.
    pub notice: Option<String>,
}

/// `/admin/account`: change the password (current one, new one twice), and make,
/// list and revoke API tokens.
pub fn account(shell: Shell, a: AccountView) -> String {
    let csrf = shell.csrf.clone();
    admin_page("Account", shell, "/admin/account", move || {
        let AccountView {
            tokens,
            new_token,
            error,
            notice,
        } = a;
        let none = tokens.is_empty();
        view! {
            <h1>"Account"</h1>
            <Message text=error />
            <Message text=notice ok=true />
            <h2>"Change password"</h2>
            <form method="post" action="/admin/account/password" class="stack narrow">
                <Csrf token=csrf.clone() />
                <label>"Current password" <input name="current" type="password" autocomplete="current-password" required maxlength="1024" /></label>
                <label>"New password" <input name="new" type="password" autocomplete="new-password" required minlength="10" maxlength="1024" /></label>
                <label>"New password, again" <input name="again" type="password" autocomplete="new-password" required maxlength="1024" /></label>
                <button type="submit">"Change password"</button>
                <p class="hint">"Other browsers signed in as you are signed out. API tokens keep working until you revoke them."</p>
            </form>
            <h2 id="tokens">"API tokens"</h2>
            <p class="hint">"Scripts and other machines use the JSON API under /api/ with a token: "<code>"Authorization: Bearer TOKEN"</code>". An admin token can do everything you can; a metrics token only reads /metrics (for Prometheus). Revoke one you no longer use."</p>
            {new_token.map(|(name, secret)| view! {
                <div class="notice" role="status">
                    <p>"Token \u{201c}"{name}"\u{201d} made. Copy it now: it is not shown again."</p>
                    <code class="copy" id="api-token">{secret}</code>
                </div>
                <script src="/assets/copy.js"></script>
            })}
            {none.then(|| view! { <p class="empty">"No tokens yet."</p> })}
            {(!none).then(|| view! {
                <table class="tokens">
                    <thead><tr><th>"Name"</th><th>"Scope"</th><th>"Made"</th><th>"Last used"</th><th></th></tr></thead>
                    <tbody>
                        {tokens.into_iter().map(|t| view! {
                            <tr>
                                <td>{t.name}</td><td>{t.scope}</td><td>{t.created}</td><td>{t.last_used}</td>
                                <td>
                                    <form method="post" action=format!("/admin/account/tokens/{}/revoke", t.id)>
                                        <Csrf token=csrf.clone() />
                                        <button type="submit" class="danger">"Revoke"</button>
                                    </form>
                                </td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
            <form method="post" action="/admin/account/tokens" class="stack narrow">
                <Csrf token=csrf.clone() />
                <label>"Name" <input name="name" required maxlength="64" placeholder="e.g. backup script" /></label>
                <label>"Scope" <select name="scope">
                    <option value="admin" selected=true>"Admin: the whole API"</option>
                    <option value="metrics">"Metrics: read /metrics only"</option>
                </select></label>
                <button type="submit">"Make a token"</button>
            </form>
        }
    })
}

/// One audit log row, formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// When, e.g. `2026-11-21 22:40:00 UTC`.
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// To what.
    pub detail: String,
    /// From where.
    pub client: String,
}

/// `/admin/audit`: the newest admin actions first.
pub fn audit(shell: Shell, rows: Vec<AuditRow>) -> String {
    admin_page("Audit log", shell, "/admin/audit", move || {
        view! {
            <h1>"Audit log"</h1>
            <table class="audit">
                <thead><tr><th>"When"</th><th>"Who"</th><th>"What"</th><th>"Detail"</th><th>"From"</th></tr></thead>
                <tbody>
                    {rows.into_iter().map(|r| view! {
                        <tr><td>{r.at}</td><td>{r.actor}</td><td>{r.action}</td><td>{r.detail}</td><td>{r.client}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
        }
    })
}

/// A page that only explains something went wrong (a refused form, a bad request),
/// with a link onwards.
pub fn problem(title: &str, message: &str, link: (&str, &str)) -> String {
    let (title_s, message) = (title.to_string(), message.to_string());
    let (href, label) = (link.0.to_string(), link.1.to_string());
    document(&format!("{title} — streambox"), "signin", move || {
        view! {
            <main class="narrow">
                <h1>{title_s}</h1>
                <p class="error" role="alert">{message}</p>
                <p><a href=href>{label}</a></p>
            </main>
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell() -> Shell {
        Shell {
            appliance: "Chapel <box>".into(),
            user: "admin".into(),
            csrf: "TOKEN".into(),
        }
    }

    #[test]
    fn every_form_carries_the_csrf_token() {
        for html in [
            dashboard(shell(), Vec::new(), None),
            account(
                shell(),
                AccountView {
                    tokens: vec![TokenItem {
                        id: 3,
                        name: "ci".into(),
                        scope: "admin".into(),
                        created: "2026-11-22T10:00:00.000Z".into(),
                        last_used: "never".into(),
                    }],
                    new_token: Some(("ci".into(), "sbx_secret".into())),
                    ..Default::default()
                },
            ),
            audit(shell(), Vec::new()),
            login("x", "TOKEN", "", "/admin", None, None),
        ] {
            let forms = html.matches("<form").count();
            assert!(forms > 0, "{html}");
            assert_eq!(
                html.matches("name=\"csrf\" value=\"TOKEN\"").count(),
                forms,
                "{html}"
            );
        }
    }

    #[test]
    fn names_are_escaped() {
        let html = dashboard(shell(), Vec::new(), None);
        assert!(html.contains("Chapel &lt;box&gt;"), "{html}");
        let html = login("x", "t", "\"><script>", "/admin", Some("<b>".into()), None);
        assert!(
            !html.contains("<script>") && !html.contains("<b>"),
            "{html}"
        );
    }
}
