//! Static assets, embedded at build time from `web/assets/`: stylesheets, page scripts,
//! and third-party players under `vendor/` (from the npm registry at the versions in
//! `web/package.json`, each with its license file; `web/vendor.sh` refreshes them).

use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Files;

/// An embedded asset.
#[derive(Debug, Clone)]
pub struct Asset {
    /// The bytes.
    pub data: std::borrow::Cow<'static, [u8]>,
    /// Its MIME type, from the file name (`text/css`, `text/javascript`, …).
    pub mime: String,
    /// A strong validator: the SHA-256 of the content, hex.
    pub etag: String,
}

/// The asset at `path` (relative to `web/assets/`, `vendor/hls.min.js`), if there is one.
pub fn get(path: &str) -> Option<Asset> {
    let f = Files::get(path)?;
    let etag = f
        .metadata
        .sha256_hash()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(Asset {
        mime: f.metadata.mimetype().to_string(),
        data: f.data,
        etag,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn assets_are_embedded_with_their_types_and_licenses() {
        let hls = super::get("vendor/hls.min.js").expect("hls.js");
        assert!(hls.mime.contains("javascript"), "{}", hls.mime);
        assert!(hls.data.len() > 100_000);
        assert_eq!(hls.etag.len(), 64);
        let license = super::get("vendor/hls.js.LICENSE").expect("license ships with it");
        assert!(String::from_utf8_lossy(&license.data).contains("Apache"));
        assert_eq!(super::get("portal.css").expect("css").mime, "text/css");
        assert!(super::get("nosuch.js").is_none());
        assert!(super::get("../Cargo.toml").is_none());
    }
}
