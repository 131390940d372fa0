//! Sound cards and their capture PCMs, read from the ALSA driver's `/proc/asound/cards`
//! and `/proc/asound/pcm` (the kernel's "ALSA Driver procfs" documentation). Reading
//! them opens no device, so listing never disturbs a capture that is running.

use std::path::Path;

use serde::Serialize;

/// A sound card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Card {
    /// The card's index (`hw:0`), which changes with the order cards appear in.
    pub index: u32,
    /// Its identifier (`Loopback`, `C920`), which names it stably in ALSA device names
    /// (`hw:CARD=Loopback,DEV=0`).
    pub id: String,
    /// The driver (`Loopback`, `USB-Audio`).
    pub driver: String,
    /// Its long name ("HD Pro Webcam C920 at usb-0000:00:14.0-1, high speed").
    pub name: String,
    /// Its PCM devices that capture.
    pub captures: Vec<Pcm>,
}

/// One capture PCM of a card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pcm {
    /// The PCM's device number on its card.
    pub device: u32,
    /// Its name ("Loopback PCM", "USB Audio").
    pub name: String,
    /// The ALSA device name that opens it without conversions, stable across replugs:
    /// `hw:CARD=ID,DEV=N`.
    pub alsa: String,
    /// How many substreams can capture at once.
    pub substreams: u32,
}

/// The cards under `root` (`/` here), each with its capture PCMs, by index. Unreadable
/// or malformed lines are skipped: listing never fails.
pub fn cards(root: &Path) -> Vec<Card> {
    let read =
        |f: &str| std::fs::read_to_string(root.join("proc/asound").join(f)).unwrap_or_default();
    let mut cards = parse_cards(&read("cards"));
    for (card, pcm) in parse_pcms(&read("pcm")) {
        if let Some(c) = cards.iter_mut().find(|c| c.index == card) {
            c.captures.push(Pcm {
                alsa: format!("hw:CARD={},DEV={}", c.id, pcm.device),
                ..pcm
            });
        }
    }
    cards
}

/// `/proc/asound/cards`: for each card a line ` 0 [Loopback       ]: Loopback - Loopback`
/// (index, id, driver, short name) and a second with its long name.
fn parse_cards(text: &str) -> Vec<Card> {
    let mut out: Vec<Card> = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some((index, rest)) = line.trim_start().split_once(" [") else {
            continue;
        };
        let Ok(index) = index.trim().parse::<u32>() else {
            continue;
        };
        let Some((id, rest)) = rest.split_once("]:") else {
            continue;
        };
        let driver = rest.split(" - ").next().unwrap_or("").trim().to_string();
        let name = lines.next().map(str::trim).unwrap_or("").to_string();
        out.push(Card {
            index,
            id: id.trim().to_string(),
            driver,
            name,
            captures: Vec::new(),
        });
    }
    out
}

/// `/proc/asound/pcm`: `00-01: ID : NAME : playback 1 : capture 1`, one line per PCM;
/// only those that capture.
fn parse_pcms(text: &str) -> Vec<(u32, Pcm)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(" : ");
            let head = fields.next()?;
            let (card, rest) = head.split_once('-')?;
            let (device, _id) = rest.split_once(':')?;
            let name = fields.next()?.trim().to_string();
            let substreams = fields
                .filter_map(|f| f.trim().strip_prefix("capture "))
                .find_map(|n| n.trim().parse().ok())?;
            Some((
                card.trim().parse().ok()?,
                Pcm {
                    device: device.trim().parse().ok()?,
                    name,
                    alsa: String::new(),
                    substreams,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_and_capture_pcms_from_proc() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("proc/asound");
        std::fs::create_dir_all(&dir).expect("mkdir");
        // As snd-aloop and a USB webcam's microphone print them.
        std::fs::write(
            dir.join("cards"),
            " 0 [Loopback       ]: Loopback - Loopback\n                      Loopback 1\n \
             1 [C920           ]: USB-Audio - HD Pro Webcam C920\n                      \
             HD Pro Webcam C920 at usb-0000:00:14.0-1, high speed\n \
             2 [HDMI           ]: HDA-Intel - HDA ATI HDMI\n                      HDA ATI HDMI at 0xfe860000 irq 35\n",
        )
        .expect("cards");
        std::fs::write(
            dir.join("pcm"),
            "00-00: Loopback PCM : Loopback PCM : playback 8 : capture 8\n\
             00-01: Loopback PCM : Loopback PCM : playback 8 : capture 8\n\
             01-00: USB Audio : USB Audio : capture 1\n\
             02-03: HDMI 0 : HDMI 0 : playback 1\n\
             garbage\n",
        )
        .expect("pcm");
        let found = cards(root.path());
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].id, "Loopback");
        assert_eq!(found[0].driver, "Loopback");
        assert_eq!(found[0].name, "Loopback 1");
        assert_eq!(
            found[0]
                .captures
                .iter()
                .map(|p| p.alsa.as_str())
                .collect::<Vec<_>>(),
            ["hw:CARD=Loopback,DEV=0", "hw:CARD=Loopback,DEV=1"]
        );
        assert_eq!(found[0].captures[0].substreams, 8);
        assert_eq!(found[1].id, "C920");
        assert_eq!(found[1].driver, "USB-Audio");
        assert_eq!(found[1].captures[0].name, "USB Audio");
        assert_eq!(found[1].captures[0].alsa, "hw:CARD=C920,DEV=0");
        // Playback only: a card with nothing to capture from.
        assert!(found[2].captures.is_empty());
        assert!(cards(&root.path().join("none")).is_empty());
    }
}
