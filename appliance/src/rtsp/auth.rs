//! Authentication of RTSP publishers (RFC 2326 §D.1 defers to HTTP authentication):
//! Basic (RFC 7617) and Digest (RFC 2617) with the stream name as user name and the
//! stream key as password, besides `?key=` in the URL.
//!
//! Digest is verified against the stored H(A1) and a nonce issued on the same
//! connection; responses are compared in constant time.

use crate::auth::stream_keys::DIGEST_REALM;
use base64::Engine;
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// What an `Authorization` header carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Basic base64(user:password)`.
    Basic {
        /// The user name.
        user: String,
        /// The password (for publishers, the stream key).
        password: String,
    },
    /// `Digest username=…, realm=…, nonce=…, uri=…, response=…`.
    Digest(DigestResponse),
}

/// The parameters of a Digest `Authorization` header (RFC 2617 §3.2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestResponse {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`, as issued by us.
    pub nonce: String,
    /// `uri`, the digest-uri.
    pub uri: String,
    /// `response`, 32 hex digits.
    pub response: String,
    /// `qop`, when the client chose one.
    pub qop: Option<String>,
    /// `nc`, with `qop`.
    pub nc: Option<String>,
    /// `cnonce`, with `qop`.
    pub cnonce: Option<String>,
}

/// Parses an `Authorization` header value; `None` when it is neither well-formed Basic
/// nor Digest.
pub fn parse_authorization(value: &str) -> Option<Credentials> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (user, password) = text.split_once(':')?;
        return Some(Credentials::Basic {
            user: user.to_string(),
            password: password.to_string(),
        });
    }
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut d = DigestResponse::default();
    for (k, v) in digest_params(rest)? {
        match k.to_ascii_lowercase().as_str() {
            "username" => d.username = v,
            "realm" => d.realm = v,
            "nonce" => d.nonce = v,
            "uri" => d.uri = v,
            "response" => d.response = v.to_ascii_lowercase(),
            "qop" => d.qop = Some(v),
            "nc" => d.nc = Some(v),
            "cnonce" => d.cnonce = Some(v),
            _ => {}
        }
    }
    (!d.username.is_empty() && !d.nonce.is_empty() && !d.response.is_empty())
        .then_some(Credentials::Digest(d))
}

/// `k=v, k="v, with comma"` pairs; `None` on an unterminated quote.
fn digest_params(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        out.push((key.trim().to_string(), value.to_string()));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
        if out.len() > 32 {
            return None;
        }
    }
    Some(out)
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a Digest response is right for `ha1` (H(A1), lowercase hex), the request
/// `method`, and the `nonce` this connection issued (RFC 2617 §3.2.2.1).
pub fn digest_matches(ha1: &str, method: &str, nonce: &str, d: &DigestResponse) -> bool {
    if d.realm != DIGEST_REALM || !bool::from(d.nonce.as_bytes().ct_eq(nonce.as_bytes())) {
        return false;
    }
    let ha2 = md5_hex(&format!("{method}:{}", d.uri));
    let expected = match (&d.qop, &d.nc, &d.cnonce) {
        (Some(qop), Some(nc), Some(cnonce)) if qop == "auth" => {
            md5_hex(&format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", d.nonce))
        }
        (None, _, _) => md5_hex(&format!("{ha1}:{}:{ha2}", d.nonce)),
        _ => return false,
    };
    bool::from(expected.as_bytes().ct_eq(d.response.as_bytes()))
}

/// The `WWW-Authenticate` challenge: Digest when the stream can be checked that way,
/// Basic otherwise.
pub fn challenge(nonce: &str, digest: bool) -> String {
    if digest {
        format!("Digest realm=\"{DIGEST_REALM}\", nonce=\"{nonce}\"")
    } else {
        format!("Basic realm=\"{DIGEST_REALM}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::stream_keys::digest_ha1;

    #[test]
    fn basic_is_decoded() {
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("lobby:k3y:with:colons")
        );
        assert_eq!(
            parse_authorization(&v),
            Some(Credentials::Basic {
                user: "lobby".into(),
                password: "k3y:with:colons".into()
            })
        );
        assert_eq!(parse_authorization("Basic !!!"), None);
        assert_eq!(parse_authorization("Bearer x"), None);
    }

    #[test]
    fn digest_as_ffmpeg_sends_it_is_verified() {
        // Computed as ffmpeg's libavformat/httpauth.c does, without qop.
        let ha1 = digest_ha1("lobby", "secretkey");
        let ha2 = md5_hex("ANNOUNCE:rtsp://127.0.0.1:8554/live/lobby");
        let response = md5_hex(&format!("{ha1}:abc123:{ha2}"));
        let header = format!(
            "Digest username=\"lobby\", realm=\"streambox\", nonce=\"abc123\", uri=\"rtsp://127.0.0.1:8554/live/lobby\", response=\"{response}\""
        );
        let Some(Credentials::Digest(d)) = parse_authorization(&header) else {
            panic!("not parsed");
        };
        assert!(digest_matches(&ha1, "ANNOUNCE", "abc123", &d));
        assert!(
            !digest_matches(&ha1, "ANNOUNCE", "other-nonce", &d),
            "stale nonce"
        );
        assert!(!digest_matches(
            &digest_ha1("lobby", "wrong"),
            "ANNOUNCE",
            "abc123",
            &d
        ));
        assert!(
            !digest_matches(&ha1, "RECORD", "abc123", &d),
            "other method"
        );
        assert_eq!(parse_authorization("Digest username=\"x"), None);
    }

    #[test]
    fn digest_with_qop_auth() {
        let ha1 = digest_ha1("lobby", "k");
        let ha2 = md5_hex("ANNOUNCE:/live/lobby");
        let response = md5_hex(&format!("{ha1}:n1:00000001:c1:auth:{ha2}"));
        let header = format!("Digest username=lobby, realm=streambox, nonce=n1, uri=/live/lobby, qop=auth, nc=00000001, cnonce=\"c1\", response={response}");
        let Some(Credentials::Digest(d)) = parse_authorization(&header) else {
            panic!("not parsed");
        };
        assert!(digest_matches(&ha1, "ANNOUNCE", "n1", &d));
    }
}
