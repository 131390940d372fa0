//! The HTML document every page shares.

use leptos::prelude::*;
use std::sync::RwLock;

/// A fault of the appliance itself that every setup, sign-in and admin page shows at
/// its top until it is gone (the data partition that could not be used this boot).
static FAULT: RwLock<Option<String>> = RwLock::new(None);

/// Sets (or with `None` clears) the fault every administrator's page shows.
pub fn set_fault(text: Option<String>) {
    if let Ok(mut f) = FAULT.write() {
        *f = text;
    }
}

/// A whole page: `<!DOCTYPE html>`, the head (`title`, the stylesheet), and `body`
/// rendered inside `<body class=…>`.
pub fn document<V: IntoView + 'static>(
    title: &str,
    body_class: &'static str,
    body: impl FnOnce() -> V,
) -> String {
    let title = title.to_string();
    let fault = match body_class {
        "admin" | "signin" | "setup" => FAULT.read().ok().and_then(|f| f.clone()),
        _ => None,
    };
    let owner = Owner::new();
    let html = owner.with(|| {
        view! {
            <html lang="en">
                <head>
                    <meta charset="utf-8" />
                    <meta name="viewport" content="width=device-width, initial-scale=1" />
                    <title>{title}</title>
                    <link rel="stylesheet" href="/assets/portal.css" />
                    <link rel="stylesheet" href="/assets/admin.css" />
                </head>
                <body class=body_class>
                    {fault.map(|f| view! { <p class="notice fault" id="system-fault">{f}</p> })}
                    {body()}
                </body>
            </html>
        }
        .to_html()
    });
    format!("<!DOCTYPE html>{html}")
}
