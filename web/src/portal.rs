//! The LAN viewer portal: the public live streams, and a page that plays one.

use crate::page::document;
use leptos::prelude::*;

/// A live stream as the portal lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// The stream name (URL-safe: letters, digits, `-`, `_`).
    pub name: String,
}

#[component]
fn StreamCard(card: Card) -> impl IntoView {
    let watch = format!("/watch/{}", card.name);
    let thumb = format!("/live/{}/thumbnail.jpg?width=480", card.name);
    view! {
        <li class="card">
            <a href=watch>
                <img src=thumb alt=card.name.clone() width="480" height="270" loading="lazy" />
                <span class="name">{card.name.clone()}</span>
            </a>
        </li>
    }
}

/// `/`: the live streams as cards (thumbnail, name) linking to their watch pages; a
/// short script refreshes the list every few seconds.
pub fn index(streams: Vec<Card>) -> String {
    document("Live — streambox", "portal", move || {
        let empty = streams.is_empty();
        view! {
            <header>
                <h1>"Live now"</h1>
            </header>
            <main id="streams" data-refresh="5">
                <Show when=move || empty>
                    <p class="empty">"Nothing is live right now. This page updates by itself."</p>
                </Show>
                <ul class="cards">
                    {streams.into_iter().map(|card| view! { <StreamCard card /> }).collect_view()}
                </ul>
            </main>
            <script src="/assets/refresh.js"></script>
        }
    })
}

/// `/watch/{stream}`: the stream full-width, played by hls.js in low-latency mode (native
/// HLS where the browser has it), with a line that says whether it is live, offline, or
/// back. `prefix` goes before the page's stream URLs: empty, or a viewer link's
/// `/t/{token}`.
pub fn watch(stream: &str, prefix: &str) -> String {
    let name = stream.to_string();
    let src = format!("{prefix}/live/{stream}/index.m3u8");
    let state = format!("{prefix}/watch/{stream}/state");
    document(&format!("{stream} — streambox"), "watch", move || {
        view! {
            <header>
                <a class="back" href="/">"All streams"</a>
                <h1>{name}</h1>
                <span id="state" class="state connecting">"Connecting…"</span>
            </header>
            <video id="player" controls autoplay muted playsinline data-src=src data-state=state></video>
            <script src="/assets/vendor/hls.min.js"></script>
            <script src="/assets/watch.js"></script>
        }
    })
}

/// A page for a stream that is not there (a mistyped or removed name): says so, and
/// links back to the list.
pub fn no_such_stream(stream: &str) -> String {
    let message = format!("There is no stream named \u{201c}{stream}\u{201d} here.");
    document("No such stream — streambox", "portal", move || {
        view! {
            <header>
                <h1>"No such stream"</h1>
            </header>
            <main>
                <p class="empty">{message}</p>
                <p class="empty"><a href="/">"See what is live"</a></p>
            </main>
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_lists_each_stream_with_its_thumbnail_and_link() {
        let html = index(vec![
            Card {
                name: "lobby".into(),
            },
            Card {
                name: "chapel-2".into(),
            },
        ]);
        assert!(
            html.starts_with("<!DOCTYPE html><html lang=\"en\">"),
            "{html}"
        );
        assert!(html.contains("href=\"/watch/lobby\""), "{html}");
        assert!(
            html.contains("src=\"/live/chapel-2/thumbnail.jpg?width=480\""),
            "{html}"
        );
        assert!(!html.contains("Nothing is live"), "{html}");
        assert!(index(Vec::new()).contains("Nothing is live right now"));
    }

    #[test]
    fn the_watch_page_points_the_player_at_the_stream() {
        let html = watch("lobby", "");
        assert!(
            html.contains("data-src=\"/live/lobby/index.m3u8\""),
            "{html}"
        );
        assert!(html.contains("data-state=\"/watch/lobby/state\""), "{html}");
        assert!(html.contains("/assets/vendor/hls.min.js"), "{html}");
        assert!(html.contains("<title>lobby — streambox</title>"), "{html}");
        let html = watch("lobby", "/t/123.abc");
        assert!(
            html.contains("data-src=\"/t/123.abc/live/lobby/index.m3u8\""),
            "{html}"
        );
        assert!(
            html.contains("data-state=\"/t/123.abc/watch/lobby/state\""),
            "{html}"
        );
    }

    #[test]
    fn a_missing_stream_is_named_and_escaped() {
        let html = no_such_stream("<b>x</b>");
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"), "{html}");
        assert!(!html.contains("<b>x</b>"), "{html}");
        assert!(html.contains("href=\"/\""), "{html}");
    }
}
