//! The service's recent log lines, kept in memory for the System page: a tracing
//! writer that keeps the last [`KEEP`] lines (plain text, no colours) beside the log
//! on stderr.

use std::collections::VecDeque;
use std::io;
use std::sync::{Mutex, OnceLock};

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
}
