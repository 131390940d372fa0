//! CSRF protection for every form: a signed double-submit token, bound to the session.
//!
//! Every browser gets an `sb_csrf` cookie (HttpOnly, SameSite=Strict) that this
//! appliance minted: 16 random bytes and their HMAC, so a value the client (or a page on
//! a sibling host that can set cookies for it) chose is not taken, and is replaced with
//! a new one. Each form carries `csrf` = base64url(HMAC-SHA256(secret, "csrf:" cookie
//! "\0" session)), where session is the browser's session cookie when it is signed in,
//! and nothing otherwise. A post is accepted only when its field is that value for the
//! cookie and session it came with (OWASP CSRF Prevention Cheat Sheet, "Signed
//! Double-Submit Cookie", with the session binding it recommends). A new cookie is
//! issued at sign-in, and a token made before sign-in is refused after it, so a token
//! planted or learnt while signed out (login CSRF, fixation) never works in a session.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The name of the cookie.
pub const COOKIE: &str = "sb_csrf";
/// The name of the form field.
pub const FIELD: &str = "csrf";

fn mac(secret: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for p in parts {
        mac.update(p);
    }
    mac
}

/// A fresh cookie value: `RANDOM.SIGNATURE`, 16 random bytes and their HMAC under
/// `secret`, each unpadded base64url (66 characters).
pub fn new_cookie(secret: &[u8]) -> String {
    let mut raw = [0u8; 16];
    rand::rng().fill_bytes(&mut raw);
    let random = URL_SAFE_NO_PAD.encode(raw);
    let sig = mac(secret, &[b"csrf-cookie:", random.as_bytes()])
        .finalize()
        .into_bytes();
    format!("{random}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Whether `cookie` is one [`new_cookie`] made under `secret`.
pub fn minted(secret: &[u8], cookie: &str) -> bool {
    let Some((random, sig)) = cookie.split_once('.') else {
        return false;
    };
    let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
        return false;
    };
    !random.is_empty()
        && mac(secret, &[b"csrf-cookie:", random.as_bytes()])
            .verify_slice(&sig)
            .is_ok()
}

/// The form token for `cookie` and `session` (the session cookie's value, or `""` when
/// not signed in) under `secret`: 43 characters of base64url.
pub fn token(secret: &[u8], cookie: &str, session: &str) -> String {
    let m = mac(
        secret,
        &[b"csrf:", cookie.as_bytes(), b"\0", session.as_bytes()],
    );
    URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
}

/// Whether `field` is the token of `cookie` and `session`, compared in constant time.
pub fn check(secret: &[u8], cookie: &str, session: &str, field: &str) -> bool {
    let Ok(got) = URL_SAFE_NO_PAD.decode(field) else {
        return false;
    };
    !cookie.is_empty()
        && mac(
            secret,
            &[b"csrf:", cookie.as_bytes(), b"\0", session.as_bytes()],
        )
        .verify_slice(&got)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let (secret, other) = (b"one secret".as_slice(), b"another".as_slice());
        let cookie = new_cookie(secret);
        assert!(minted(secret, &cookie));
        assert!(!minted(other, &cookie), "another appliance's cookie");
        for planted in ["attacker-chosen", "", ".", "abc.def", &format!("x{cookie}")] {
            assert!(!minted(secret, planted), "{planted}");
        }
        let t = token(secret, &cookie, "");
        assert!(check(secret, &cookie, "", &t));
        assert!(!check(other, &cookie, "", &t), "another appliance's token");
        assert!(
            !check(secret, &new_cookie(secret), "", &t),
            "another browser's token"
        );
        assert!(!check(secret, &cookie, "", ""));
        assert!(!check(secret, &cookie, "", "%%%"));
        assert!(
            !check(secret, "", "", &token(secret, "", "")),
            "no cookie at all"
        );
        // Bound to the session: a token from before sign-in, or of another session,
        // does not work in this one.
        let signed = token(secret, &cookie, "session-a");
        assert!(check(secret, &cookie, "session-a", &signed));
        assert!(!check(secret, &cookie, "session-a", &t));
        assert!(!check(secret, &cookie, "session-b", &signed));
        assert!(!check(secret, &cookie, "", &signed));
    }
}
