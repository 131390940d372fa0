//! The HTML document every page shares.

use leptos::prelude::*;

/// A whole page: `<!DOCTYPE html>`, the head (`title`, the stylesheet), and `body`
/// rendered inside `<body class=…>`.
pub fn document<V: IntoView + 'static>(
    title: &str,
    body_class: &'static str,
    body: impl FnOnce() -> V,
) -> String {
    let title = title.to_string();
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
                <body class=body_class>{body()}</body>
            </html>
        }
        .to_html()
    });
    format!("<!DOCTYPE html>{html}")
}
