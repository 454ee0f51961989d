//! The `.v3keystore` file: `salt(16) ‖ Fernet token (base64url text) ‖
//! HMAC-SHA256(32)` over a JSON object. The key is
//! PBKDF2-HMAC-SHA256(password, salt, 20 000 iterations, 32 bytes); its
//! base64url text is both the Fernet key and the outer HMAC key.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use ring::{hmac, pbkdf2, rand::SecureRandom as _};
use zeroize::Zeroizing;

/// Salt bytes at the start of the file.
pub const SALT_LEN: usize = 16;
/// Outer MAC bytes at the end of the file.
pub const MAC_LEN: usize = 32;
/// The framework's file KDF iterations (4.x).
const ITERATIONS: u32 = 20_000;

/// Why a file does not open.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Too short, or the token is not Fernet text: not a keystore.
    Malformed(&'static str),
    /// The outer MAC does not match: a wrong password, or a changed file
    /// (the format cannot tell them apart).
    WrongPasswordOrAltered,
    /// The outer MAC matched but the inner token did not open.
    Inner,
}

/// The Fernet key text (base64url of the derived key) for `password` and `salt`.
fn key_text(password: &[u8], salt: &[u8]) -> Zeroizing<String> {
    let mut raw = Zeroizing::new([0u8; 32]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(ITERATIONS).expect("non-zero"),
        salt,
        password,
        &mut raw[..],
    );
    Zeroizing::new(URL_SAFE.encode(&raw[..]))
}

/// Decrypts a keystore file's bytes to its JSON text.
pub fn open(file: &[u8], password: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    if file.len() < SALT_LEN + MAC_LEN + 1 {
        return Err(OpenError::Malformed("shorter than a keystore can be"));
    }
    let (salt, rest) = file.split_at(SALT_LEN);
    let (token, mac) = rest.split_at(rest.len() - MAC_LEN);
    let token = std::str::from_utf8(token)
        .map_err(|_| OpenError::Malformed("the token is not base64 text"))?;
    let key = key_text(password, salt);
    let mac_key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let mut signed = Vec::with_capacity(SALT_LEN + token.len());
    signed.extend_from_slice(salt);
    signed.extend_from_slice(token.as_bytes());
    hmac::verify(&mac_key, &signed, mac).map_err(|_| OpenError::WrongPasswordOrAltered)?;
    fernet_decrypt(&key, token).ok_or(OpenError::Inner)
}

/// Opens a Fernet token with its key text (base64url, 32 bytes) as Python's
/// `Fernet(key).decrypt(token)` does with no TTL: the token's timestamp is
/// never checked. (The crate refuses a token more than 60 s in the future,
/// so "now" is taken to be no earlier than the token's own time.) `None`:
/// a wrong key, or a token that is not Fernet or was altered.
pub fn fernet_decrypt(key_text: &str, token: &str) -> Option<Zeroizing<Vec<u8>>> {
    let fernet = fernet::Fernet::new(key_text.trim())?;
    let token = token.trim();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stamped = token_time(token).unwrap_or(0);
    fernet
        .decrypt_at_time(token, None, now.max(stamped))
        .ok()
        .map(Zeroizing::new)
}

/// The timestamp in a Fernet token (bytes 1..9 of its decoded form).
fn token_time(token: &str) -> Option<u64> {
    // 12 base64 characters decode to 9 bytes: the version and the time.
    let head = URL_SAFE.decode(token.get(..12)?).ok()?;
    Some(u64::from_be_bytes(head.get(1..9)?.try_into().ok()?))
}

/// Encrypts JSON text into a keystore file's bytes, with a fresh salt (and
/// a fresh IV inside the token).
pub fn seal(plaintext: &[u8], password: &[u8]) -> Vec<u8> {
    let mut salt = [0u8; SALT_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .expect("the OS random source works");
    let key = key_text(password, &salt);
    let fernet = fernet::Fernet::new(&key).expect("a derived key is a valid Fernet key");
    let token = fernet.encrypt(plaintext);
    let mac_key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let mut out = Vec::with_capacity(SALT_LEN + token.len() + MAC_LEN);
    out.extend_from_slice(&salt);
    out.extend_from_slice(token.as_bytes());
    let tag = hmac::sign(&mac_key, &out);
    out.extend_from_slice(tag.as_ref());
    out
}

/// The machine password the framework derives for a keystore opened with
/// no password outside container mode (`SecureKeyGenerator`):
/// base64(PBKDF2-SHA256(`{app}:{path}:{ids}`, sha256(`dtPyAppFramework-v3-{app}`)[..16],
/// 100 000, 32)), `ids` = `machine_id:…|hostname:…` on Linux.
pub fn machine_password(app: &str, absolute_path: &str, ids: &str) -> Zeroizing<String> {
    use base64::engine::general_purpose::STANDARD;
    let seed = Zeroizing::new(format!("{app}:{absolute_path}:{ids}"));
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("dtPyAppFramework-v3-{app}").as_bytes(),
    );
    let mut raw = Zeroizing::new([0u8; 32]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(100_000).expect("non-zero"),
        &digest.as_ref()[..16],
        seed.as_bytes(),
        &mut raw[..],
    );
    Zeroizing::new(STANDARD.encode(&raw[..]))
}

/// This machine's identifiers as the framework collects them on Linux: the
/// first readable of `/var/lib/dbus/machine-id` and `/etc/machine-id`
/// (trimmed; nothing if that one is empty), then the host name.
pub fn linux_machine_ids() -> std::io::Result<String> {
    let mut ids = Vec::new();
    for path in ["/var/lib/dbus/machine-id", "/etc/machine-id"] {
        if let Ok(text) = std::fs::read_to_string(path) {
            let id = text.trim();
            if !id.is_empty() {
                ids.push(format!("machine_id:{id}"));
            }
            break;
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    ids.push(format!("hostname:{}", host.trim_end_matches('\n')));
    Ok(ids.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_and_every_refusal() {
        let file = seal(b"{\"a\": \"b\"}", b"pw");
        assert_eq!(&open(&file, b"pw").unwrap()[..], b"{\"a\": \"b\"}");
        assert_eq!(
            open(&file, b"other").unwrap_err(),
            OpenError::WrongPasswordOrAltered
        );
        let mut altered = file.clone();
        altered[SALT_LEN + 20] ^= 1;
        assert_eq!(
            open(&altered, b"pw").unwrap_err(),
            OpenError::WrongPasswordOrAltered
        );
        assert!(matches!(
            open(&file[..40], b"pw"),
            Err(OpenError::Malformed(_))
        ));
        // A fresh salt every time.
        assert_ne!(
            seal(b"{}", b"pw")[..SALT_LEN],
            seal(b"{}", b"pw")[..SALT_LEN]
        );
    }

    #[test]
    fn a_token_from_the_future_opens_as_python_opens_it() {
        // A writer whose clock runs an hour ahead.
        let salt = [7u8; SALT_LEN];
        let key = key_text(b"pw", &salt);
        let fernet = fernet::Fernet::new(&key).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = fernet.encrypt_at_time(b"{}", now + 3600);
        let mut file = salt.to_vec();
        file.extend_from_slice(token.as_bytes());
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()), &file);
        file.extend_from_slice(tag.as_ref());
        assert_eq!(&open(&file, b"pw").unwrap()[..], b"{}");
    }
}
