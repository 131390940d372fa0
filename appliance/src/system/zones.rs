//! Time zone names, from the system's tz database (`/usr/share/zoneinfo/zone1970.tab`).

use std::path::Path;

/// The default and always-valid zone.
pub const UTC: &str = "UTC";

/// Every zone name the tz database lists, sorted, with `UTC` first. Only `UTC` when the
/// database is not installed. The file is read once, on first use; call this from a
/// blocking thread at start-up (as `serve` does) so no request reads it on an async
/// worker.
pub fn list() -> &'static [String] {
    static ZONES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ZONES.get_or_init(|| list_from(Path::new("/usr/share/zoneinfo/zone1970.tab")))
}

fn list_from(tab: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(tab).unwrap_or_default();
    let mut zones: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('\t').nth(2))
        .map(str::to_string)
        .collect();
    zones.sort();
    zones.dedup();
    zones.insert(0, UTC.to_string());
    zones
}

/// Whether `name` is a zone [`list`] offers.
pub fn valid(name: &str) -> bool {
    name == UTC || list().iter().any(|z| z == name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn zones() {
        let z = super::list();
        assert_eq!(z[0], "UTC");
        assert!(super::valid("UTC"));
        assert!(!super::valid("../../etc/passwd"));
        assert!(!super::valid(""));
        // Debian's tzdata is a dependency of the test setup.
        assert!(
            super::valid("Europe/Berlin"),
            "tz database missing: {} zones",
            z.len()
        );
    }
}
