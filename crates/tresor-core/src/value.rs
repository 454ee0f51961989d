//! The secret value type.

use std::fmt;

use secrecy::{ExposeSecret, SecretBox};

use crate::memory;

/// Default largest value accepted by the vault: 1 MiB.
pub const DEFAULT_MAX_VALUE_LEN: usize = 1024 * 1024;

/// A secret value: bytes (text or binary) that are wiped from memory on drop,
/// locked in RAM where the OS allows once [`memory::set_lock_values`] is on,
/// and print as `[redacted]`.
///
/// The bytes are reachable only through [`SecretValue::expose_secret`], so
/// every place that handles plaintext can be found with one grep.
pub struct SecretValue {
    inner: SecretBox<[u8]>,
    locked: bool,
}

impl SecretValue {
    /// Copies `bytes` into a new secret value. The caller stays responsible
    /// for wiping its own copy.
    pub fn copy_from(bytes: &[u8]) -> Self {
        Self::from(bytes.to_vec())
    }

    /// The plaintext bytes.
    pub fn expose_secret(&self) -> &[u8] {
        self.inner.expose_secret()
    }

    /// Length in bytes (not secret: the vault reveals ciphertext lengths too).
    pub fn len(&self) -> usize {
        self.expose_secret().len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value as UTF-8 text, if it is text.
    pub fn expose_text(&self) -> Option<&str> {
        std::str::from_utf8(self.expose_secret()).ok()
    }
}

impl From<Vec<u8>> for SecretValue {
    /// Takes ownership of `bytes`. Spare capacity is released first (by a copy
    /// that is wiped), so the boxed slice never reallocates afterwards.
    fn from(mut bytes: Vec<u8>) -> Self {
        let boxed: Box<[u8]> = if bytes.len() == bytes.capacity() {
            bytes.into_boxed_slice()
        } else {
            let exact: Box<[u8]> = bytes.as_slice().into();
            zeroize::Zeroize::zeroize(&mut bytes);
            exact
        };
        let inner = SecretBox::new(boxed);
        let locked = memory::lock_values() && memory::lock(inner.expose_secret());
        Self { inner, locked }
    }
}

impl From<String> for SecretValue {
    fn from(text: String) -> Self {
        Self::from(text.into_bytes())
    }
}

impl Clone for SecretValue {
    fn clone(&self) -> Self {
        Self::copy_from(self.expose_secret())
    }
}

impl PartialEq for SecretValue {
    /// Constant-time comparison.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.expose_secret(), other.expose_secret());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for SecretValue {}

impl Drop for SecretValue {
    fn drop(&mut self) {
        if self.locked {
            memory::unlock(self.inner.expose_secret());
        }
        // SecretBox wipes the bytes when the field drops, right after this.
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let v = SecretValue::from("hunter2".to_string());
        assert_eq!(format!("{v:?} {v}"), "[redacted] [redacted]");
        assert_eq!(v.expose_text(), Some("hunter2"));
    }

    #[test]
    fn binary_and_empty_values_keep_their_bytes() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(SecretValue::from(bytes.clone()).expose_secret(), &bytes[..]);
        assert!(SecretValue::from(Vec::new()).is_empty());
        let mut spare = Vec::with_capacity(100);
        spare.extend_from_slice(b"abc");
        assert_eq!(SecretValue::from(spare).expose_secret(), b"abc");
    }

    #[test]
    fn equality_compares_contents() {
        assert_eq!(SecretValue::copy_from(b"a"), SecretValue::copy_from(b"a"));
        assert_ne!(SecretValue::copy_from(b"a"), SecretValue::copy_from(b"b"));
        assert_ne!(SecretValue::copy_from(b"a"), SecretValue::copy_from(b"ab"));
    }
}
