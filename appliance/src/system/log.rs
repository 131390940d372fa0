//! The log: [`fields`], how every field of a line is written (control characters
//! escaped, so nothing from the network, a file or a form can forge a line or a
//! terminal escape), and the service's recent lines, kept in memory for the System
//! page ([`Recent`], the last [`KEEP`] lines, plain text, no colours) beside the log on
//! stderr.

use std::collections::VecDeque;
use std::io;
use std::sync::{Mutex, OnceLock};
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::Writer;

/// Writes `text` with every control character escaped: `\n`, `\r`, `\t`, `\u{1b}`.
fn escaped(w: &mut Writer<'_>, text: &str) -> std::fmt::Result {
    for c in text.chars() {
        match c {
            '\n' => w.write_str("\\n")?,
            '\r' => w.write_str("\\r")?,
            '\t' => w.write_str("\\t")?,
            c if c.is_control() => write!(w, "\\u{{{:x}}}", u32::from(c))?,
            c => w.write_char(c)?,
        }
    }
    Ok(())
}

/// How the fields of log lines (events and spans) are written: `name=value` separated
/// by spaces, the message bare, as tracing-subscriber's default, but with every control
/// character in a name or value escaped. A value from outside (an RTMP publish name, a
/// user name, an error text quoting what a peer sent) can then never start a line of
/// its own or send escape codes to a terminal.
pub fn fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    tracing_subscriber::fmt::format::debug_fn(|w: &mut Writer<'_>, field, value| {
        let text = format!("{value:?}");
        if field.name() != "message" {
            escaped(w, field.name())?;
            w.write_char('=')?;
        }
        escaped(w, &text)
    })
    .delimited(" ")
}

/// How many lines are kept.
pub const KEEP: usize = 500;
/// The longest line kept, in bytes (longer lines are cut).
const MAX_LINE: usize = 2048;

fn ring() -> &'static Mutex<VecDeque<String>> {
    static RING: OnceLock<Mutex<VecDeque<String>>> = OnceLock::new();
    RING.get_or_init(|| Mutex::new(VecDeque::with_capacity(KEEP)))
}

/// The kept lines, oldest first.
pub fn recent() -> Vec<String> {
    ring()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}

/// A `MakeWriter` for tracing-subscriber's fmt layer: each event it formats becomes
/// kept lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recent;

impl io::Write for Recent {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let mut ring = ring().lock().unwrap_or_else(|e| e.into_inner());
        for line in text.lines().filter(|l| !l.is_empty()) {
            if ring.len() == KEEP {
                ring.pop_front();
            }
            let mut line = line.to_string();
            if line.len() > MAX_LINE {
                let mut cut = MAX_LINE;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
            }
            ring.push_back(line);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Recent {
    type Writer = Recent;

    fn make_writer(&'a self) -> Self::Writer {
        Recent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn keeps_the_last_lines() {
        let mut w = Recent;
        for i in 0..KEEP + 3 {
            w.write_all(format!("line {i}\n").as_bytes())
                .expect("write");
        }
        let kept = recent();
        assert_eq!(kept.len(), KEEP);
        assert_eq!(
            kept.last().map(String::as_str),
            Some(format!("line {}", KEEP + 2).as_str())
        );
        w.write_all("é".repeat(MAX_LINE).as_bytes()).expect("write");
        assert!(recent().last().is_some_and(|l| l.len() <= MAX_LINE));
    }

    #[test]
    fn control_characters_in_fields_are_escaped() {
        use tracing_subscriber::layer::SubscriberExt;
        let lines = std::sync::Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = lines.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .fmt_fields(fields())
                .with_writer(move || Sink(sink.clone())),
        );
        tracing::subscriber::with_default(subscriber, || {
            let name = "lobby\nFORGED line\u{1b}[31m";
            let span = tracing::info_span!("rtmp", stream = name);
            let _in = span.enter();
            tracing::warn!(user = %"bob\r\nFORGED", "refused {}", "x\ny");
        });
        let text = String::from_utf8(lines.lock().expect("lock").clone()).expect("utf-8");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\r') && !text.contains('\u{1b}'), "{text:?}");
        assert!(text.contains("user=bob\\r\\nFORGED"), "{text}");
        assert!(text.contains("refused x\\ny"), "{text}");
        assert!(
            text.contains("stream=\"lobby\\nFORGED line\\u{1b}[31m\""),
            "{text}"
        );
    }

    struct Sink(std::sync::Arc<Mutex<Vec<u8>>>);

    impl io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
