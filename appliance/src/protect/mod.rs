//! Content protection: the media of a stream set to "encrypted" leaves the box only as
//! ciphertext, and its keys only to viewers who may watch it.
//!
//! HLS uses `METHOD=AES-128` (RFC 8216bis §4.4.4.4, §5.2): every segment and every
//! partial segment is a resource of its own, encrypted whole with AES-128 in CBC mode
//! and PKCS#7 padding, its IV the media sequence number of its segment (§5.2: no `IV`
//! attribute). A partial segment is encrypted on its own with its segment's IV, which
//! is how hls.js decrypts parts (each part as an independent CBC stream); the segment
//! is encrypted again as one resource when it is complete. Init segments stay in the
//! clear (an `EXT-X-KEY:METHOD=NONE` before each `EXT-X-MAP`): they hold only the codec
//! configuration.
//!
//! DASH gets the same media in Common Encryption ([`cenc`], ISO/IEC 23001-7 `cenc`)
//! under the same keys, one Period per key, the keys handed out by a W3C ClearKey
//! license server behind the same gate as the HLS key route.
//!
//! Encryption happens once per part and per segment, in the packager, when they are
//! made ([`crate::packager::segmenter`]), never per request: fan-out serves the sealed
//! bytes as it serves clear ones. Which key a segment uses is decided when it opens and
//! never changes, so a segment's URI always serves the same bytes.
//!
//! Keys ([`keyring`]) are 16 random bytes from the operating system, named by a key ID
//! of 16 more, stored in SQLite (and so in configuration backups), never logged. A
//! stream's key changes at the start of each publishing session (its media sequence
//! numbers, and so its IVs, start again), every `rotate_secs` of a session, and when an
//! administrator rotates it; the change is announced in the playlists one segment
//! ahead ([`Sealer`]), so a player never meets a part encrypted with a key it was not
//! told of.

pub mod cenc;
pub mod keyring;

pub use keyring::{ContentKey, KeyError, Keyring, Kid};

use crate::streams::{Protection, StreamUid};
use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use bytes::Bytes;
use std::sync::Arc;

type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;

/// The IV of the segment with media sequence number `msn` when the `EXT-X-KEY` tag has
/// no `IV` attribute: the number as a 128-bit big-endian integer (RFC 8216bis §5.2).
pub fn msn_iv(msn: u64) -> [u8; 16] {
    u128::from(msn).to_be_bytes()
}

/// `clear` encrypted with AES-128-CBC under `key` and `iv`, PKCS#7-padded (RFC 8216bis
/// §5.2: from 1 to 16 bytes longer than `clear`). `clear` may be given in pieces (a
/// segment's parts), which are encrypted as one resource.
pub fn seal<'a>(key: &[u8; 16], iv: &[u8; 16], clear: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    let mut buf: Vec<u8> = Vec::new();
    for piece in clear {
        buf.extend_from_slice(piece);
    }
    let n = buf.len();
    buf.resize(n + 16 - n % 16, 0);
    let sealed_len = Aes128CbcEnc::new(key.into(), iv.into())
        .encrypt_padded_mut::<Pkcs7>(&mut buf, n)
        .map(<[u8]>::len)
        .unwrap_or_else(|_| unreachable!("the buffer has room for a full padding block"));
    buf.truncate(sealed_len);
    Bytes::from(buf)
}

/// The key a segment is sealed with and its IV (RFC 8216bis §5.2).
#[derive(Debug, Clone)]
pub struct Sealing {
    /// The key.
    pub key: Arc<ContentKey>,
    /// The segment's IV: [`msn_iv`] of its media sequence number.
    pub iv: [u8; 16],
}

impl Sealing {
    /// The segment with media sequence number `msn` sealed under `key`.
    pub fn new(key: Arc<ContentKey>, msn: u64) -> Sealing {
        Sealing {
            key,
            iv: msn_iv(msn),
        }
    }

    /// `clear` (one resource, possibly in pieces) sealed under this key and IV.
    pub fn seal<'a>(&self, clear: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
        seal(&self.key.key, &self.iv, clear)
    }
}

/// How a recorded file is encrypted as it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// A segment sealed for HLS: AES-128-CBC with its sequence number as IV
    /// (RFC 8216bis §5.2, [`Sealing`]).
    Sealed,
    /// A segment as one fragment in Common Encryption for DASH
    /// ([`cenc::recorded_segment`]).
    CommonEncryption,
    /// An init segment in Common Encryption under the key's ID
    /// ([`cenc::recorded_init`]).
    CommonEncryptionInit,
}

/// The recorded file `file` of `track` (our clear CMAF as the recorder keeps it;
/// segment `msn`) encrypted under `key` as `how` says: what time-shift and recordings
/// serve of an encrypted stream.
///
/// # Errors
/// [`crate::media::mp4::Mp4Error`] when the file is not what the recorder writes.
pub fn recorded(
    key: &ContentKey,
    msn: u64,
    track: crate::media::TrackId,
    file: &Bytes,
    how: Served,
) -> Result<Bytes, crate::media::mp4::Mp4Error> {
    match how {
        Served::Sealed => Ok(seal(&key.key, &msn_iv(msn), [&file[..]])),
        Served::CommonEncryption => cenc::recorded_segment(&key.key, msn as u32, track, file),
        Served::CommonEncryptionInit => cenc::recorded_init(file, &key.kid.0),
    }
}

/// Decides, for the packager of one live stream's source, which key new segments are
/// sealed with (its renditions follow the source's cuts:
/// [`crate::packager::Keys::Leader`]): none while the stream is not encrypted; else the
/// stream's newest key, made anew when this live session has none yet, when it is
/// `rotate_secs` old, or when an administrator rotated it ([`Keyring::rotate`]).
pub struct Sealer {
    uid: StreamUid,
    keyring: Arc<Keyring>,
    /// The stream's protection setting now (read from the stream directory).
    setting: Box<dyn Fn() -> Option<Protection> + Send + Sync>,
    /// When this live session began, in ms since the Unix epoch: a key made before it
    /// is not used again.
    opened_ms: i64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("uid", &self.uid)
            .field("opened_ms", &self.opened_ms)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// The sealer of the live session of stream `uid` opening now, reading its setting
    /// with `setting`.
    pub fn new(
        uid: StreamUid,
        keyring: Arc<Keyring>,
        setting: impl Fn() -> Option<Protection> + Send + Sync + 'static,
    ) -> Sealer {
        Sealer {
            uid,
            keyring,
            setting: Box::new(setting),
            opened_ms: crate::db::unix_now_ms(),
        }
    }

    /// A sealer that never encrypts (tests, and streams outside the registry).
    pub fn clear() -> Sealer {
        Sealer::new(StreamUid::new(), Arc::new(Keyring::detached()), || None)
    }

    /// The key segments opening now are to be sealed with, `None` for clear. A key is
    /// made (from the OS's random source) when one is due; when that fails the stream
    /// goes on with its previous key, and the failure is logged.
    pub fn wanted(&self) -> Option<Arc<ContentKey>> {
        let p = (self.setting)()?;
        let now = crate::db::unix_now_ms();
        let due = |k: &ContentKey| {
            k.created_ms < self.opened_ms
                || p.rotate_secs
                    .is_some_and(|s| now - k.created_ms >= i64::from(s) * 1000)
        };
        match self.keyring.latest(&self.uid) {
            Some(k) if !due(&k) => Some(k),
            latest => match self.keyring.rotate_if(&self.uid, due) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::error!(error = %e, "no new content key; the previous one goes on");
                    latest
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::BlockDecryptMut;

    type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

    fn open(key: &[u8; 16], iv: &[u8; 16], sealed: &[u8]) -> Vec<u8> {
        let mut buf = sealed.to_vec();
        Aes128CbcDec::new(key.into(), iv.into())
            .decrypt_padded_mut::<Pkcs7>(&mut buf)
            .expect("valid padding")
            .to_vec()
    }

    #[test]
    fn sealed_resources_are_padded_cbc_that_opens_with_the_segment_iv() {
        let key = [7u8; 16];
        let iv = msn_iv(0x0102);
        assert_eq!(iv[14..], [1, 2]);
        assert!(iv[..14].iter().all(|&b| b == 0));
        for n in [0usize, 1, 15, 16, 17, 1000] {
            let clear: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let sealed = seal(&key, &iv, [&clear[..]]);
            assert_eq!(sealed.len(), n + 16 - n % 16, "PKCS#7 adds 1 to 16 bytes");
            if n > 0 {
                assert_ne!(&sealed[..n.min(16)], &clear[..n.min(16)]);
            }
            assert_eq!(open(&key, &iv, &sealed), clear);
        }
        // Pieces are one resource: the same bytes as the whole.
        let whole: Vec<u8> = (0..100u8).collect();
        assert_eq!(
            seal(&key, &iv, [&whole[..30], &whole[30..]]),
            seal(&key, &iv, [&whole[..]])
        );
        // Another IV, another ciphertext.
        assert_ne!(
            seal(&key, &msn_iv(1), [&whole[..]]),
            seal(&key, &msn_iv(2), [&whole[..]])
        );
    }

    /// NIST SP 800-38A F.2.1 (CBC-AES128.Encrypt), its first block: our use of the
    /// cipher is the standard one.
    /// The bytes of a string of hexadecimal digits (test vectors).
    pub(super) fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn cbc_matches_the_nist_vector() {
        let key: [u8; 16] = hex("2b7e151628aed2a6abf7158809cf4f3c")
            .try_into()
            .expect("16");
        let iv: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f")
            .try_into()
            .expect("16");
        let sealed = seal(&key, &iv, [&hex("6bc1bee22e409f96e93d7e117393172a")[..]]);
        assert_eq!(&sealed[..16], &hex("7649abac8119b246cee98e9b12e9197d")[..]);
    }
}
