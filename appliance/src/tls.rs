//! The HTTPS listener's identity: a self-signed certificate and its private key, made
//! at first start and kept in `http.tls_dir` (`DATA_DIR/tls` unless set) as
//! `cert.pem` and `key.pem` (mode 0600), so the fingerprint a user has checked once
//! stays the same across restarts, reboots and updates.
//!
//! The certificate is ECDSA P-256 (RFC 5480), names the appliance's host name, that
//! name under `.local` (mDNS), `localhost` and every address the machine had when it
//! was made (subjectAltName, RFC 5280 §4.2.1.6), and is valid from 1975 to 4096: a box
//! without a real-time clock battery may boot with a wrong clock, and a self-signed
//! certificate is trusted by its fingerprint, not by its dates. Users compare the
//! SHA-256 fingerprint their browser shows with the one on the box's console.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The certificate file's name in the TLS directory.
pub const CERT_FILE: &str = "cert.pem";
/// The private key file's name in the TLS directory.
pub const KEY_FILE: &str = "key.pem";

/// Why the TLS identity could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read, written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file is not a PEM certificate or key (or holds none).
    #[error("{path}: not a PEM {what}; move it away to have a new certificate made")]
    Pem {
        /// The file.
        path: PathBuf,
        /// "certificate" or "private key".
        what: &'static str,
    },
    /// rcgen could not make the certificate.
    #[error("making the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate and key (a key that is not the certificate's).
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A loaded certificate and key.
#[derive(Debug)]
pub struct Identity {
    /// The certificate, DER (ITU-T X.690).
    pub cert: CertificateDer<'static>,
    /// The private key, DER (PKCS #8).
    pub key: PrivateKeyDer<'static>,
    /// Whether this start made it (first start, or the files were moved away).
    pub created: bool,
}

impl Identity {
    /// The certificate's SHA-256 fingerprint as browsers show it: 32 upper-case hex
    /// bytes separated by colons.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert)
    }

    /// A rustls server configuration serving this identity over TLS 1.2 and 1.3, with
    /// ALPN `http/1.1` (RFC 7301).
    ///
    /// # Errors
    /// [`TlsError::Rustls`] when the key is not the certificate's.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], self.key.clone_key())?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// The SHA-256 fingerprint of a DER certificate (see [`Identity::fingerprint`]).
pub fn fingerprint(cert_der: &[u8]) -> String {
    Sha256::digest(cert_der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The fingerprint of the certificate in `dir`, or `None` when there is none yet or it
/// cannot be read (the console banner shows that it is being made).
pub fn fingerprint_in(dir: &Path) -> Option<String> {
    let pem = std::fs::read(dir.join(CERT_FILE)).ok()?;
    let cert = CertificateDer::from_pem_slice(&pem).ok()?;
    Some(fingerprint(&cert))
}

/// The names a new certificate carries: `host`, `host.local` (when `host` is a bare
/// name), `localhost`, and `addrs`, without repeats.
pub fn subject_names(host: &str, addrs: &[IpAddr]) -> Vec<String> {
    let mut names = vec![host.to_string()];
    names.extend(crate::system::network::mdns_name(host));
    names.push("localhost".into());
    names.extend(addrs.iter().map(IpAddr::to_string));
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Loads the certificate and key in `dir`, or makes them when there is no certificate
/// yet (naming [`subject_names`] of `host` and `addrs`). A new key is written before
/// its certificate, each to a temporary file renamed into place, so a crash leaves
/// either no certificate (and a new pair is made) or a whole pair.
///
/// # Errors
/// [`TlsError::Io`] when `dir` cannot be made or a file read or written;
/// [`TlsError::Pem`] when an existing file is not PEM (it is never overwritten: the
/// administrator moves it away); [`TlsError::Generate`] when rcgen fails.
pub fn load_or_create(dir: &Path, host: &str, addrs: &[IpAddr]) -> Result<Identity, TlsError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    match std::fs::read(&cert_path) {
        Ok(pem) => {
            let cert = CertificateDer::from_pem_slice(&pem).map_err(|_| TlsError::Pem {
                path: cert_path.clone(),
                what: "certificate",
            })?;
            let key_pem = std::fs::read(&key_path).map_err(io(&key_path))?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Pem {
                path: key_path.clone(),
                what: "private key",
            })?;
            return Ok(Identity {
                cert,
                key,
                created: false,
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&cert_path)(e)),
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let key_pair = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(subject_names(host, addrs))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "streambox appliance");
    let cert = params.self_signed(&key_pair)?;
    write_atomically(&key_path, key_pair.serialize_pem().as_bytes(), 0o600)
        .map_err(io(&key_path))?;
    write_atomically(&cert_path, cert.pem().as_bytes(), 0o644).map_err(io(&cert_path))?;
    let key = PrivateKeyDer::try_from(key_pair.serialize_der()).map_err(|_| TlsError::Pem {
        path: key_path,
        what: "private key",
    })?;
    Ok(Identity {
        cert: cert.der().clone(),
        key,
        created: true,
    })
}

/// Writes `bytes` to `path` through a temporary file in the same directory, synced,
/// then renamed over `path`; the file gets permission bits `mode` from its creation.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let addrs = ["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()];
        let first = load_or_create(dir.path(), "studio", &addrs).unwrap();
        assert!(first.created);
        let again = load_or_create(dir.path(), "other-name", &[]).unwrap();
        assert!(!again.created);
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert_eq!(fingerprint_in(dir.path()), Some(first.fingerprint()));
        assert_eq!(first.fingerprint().len(), 32 * 3 - 1);
        again.server_config().unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is the service's alone");
    }

    #[test]
    fn names_cover_the_host_its_mdns_name_and_every_address() {
        let addrs = ["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()];
        assert_eq!(
            subject_names("studio", &addrs),
            [
                "studio",
                "studio.local",
                "localhost",
                "192.0.2.7",
                "2001:db8::7"
            ]
        );
        assert_eq!(subject_names("localhost", &[]), ["localhost"]);
        assert_eq!(
            subject_names("box.example.org", &[]),
            ["box.example.org", "localhost"]
        );
    }

    #[test]
    fn a_damaged_certificate_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CERT_FILE), "not a certificate").unwrap();
        let e = load_or_create(dir.path(), "studio", &[]).unwrap_err();
        assert!(
            matches!(
                e,
                TlsError::Pem {
                    what: "certificate",
                    ..
                }
            ),
            "{e}"
        );
        let kept = std::fs::read_to_string(dir.path().join(CERT_FILE)).unwrap();
        assert_eq!(kept, "not a certificate");
        assert!(!dir.path().join(KEY_FILE).exists());
    }
}
