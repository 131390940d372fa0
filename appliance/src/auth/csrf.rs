//! CSRF protection for every form: a signed double-submit token.
//!
//! Every browser gets a random `sb_csrf` cookie (HttpOnly, SameSite=Strict). Each form
//! carries `csrf` = base64url(HMAC-SHA256(secret, cookie)), computed when the page is
//! rendered. A post is accepted only when its field matches the HMAC of the cookie it
//! came with: another site can neither read the field nor, knowing no secret, make one
//! for a cookie it planted (OWASP CSRF Prevention Cheat Sheet, "Signed Double-Submit
//! Cookie").

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The name of the cookie.
pub const COOKIE: &str = "sb_csrf";
/// The name of the form field.
pub const FIELD: &str = "csrf";

/// A fresh cookie value: 16 random bytes, unpadded base64url (22 characters).
pub fn new_cookie() -> String {
    let mut raw = [0u8; 16];
    rand::rng().fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// The form token for `cookie` under `secret`: 43 characters of base64url.
pub fn token(secret: &[u8], cookie: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"csrf:");
    mac.update(cookie.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Whether `field` is the token of `cookie`, compared in constant time.
pub fn check(secret: &[u8], cookie: &str, field: &str) -> bool {
    let Ok(got) = URL_SAFE_NO_PAD.decode(field) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"csrf:");
    mac.update(cookie.as_bytes());
    !cookie.is_empty() && mac.verify_slice(&got).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let (secret, other) = (b"one secret".as_slice(), b"another".as_slice());
        let cookie = new_cookie();
        let t = token(secret, &cookie);
        assert!(check(secret, &cookie, &t));
        assert!(!check(other, &cookie, &t), "another appliance's token");
        assert!(!check(secret, &new_cookie(), &t), "another browser's token");
        assert!(!check(secret, &cookie, ""));
        assert!(!check(secret, &cookie, "%%%"));
        assert!(!check(secret, "", &token(secret, "")), "no cookie at all");
    }
}
