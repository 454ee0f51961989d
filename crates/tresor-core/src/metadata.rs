//! Non-secret metadata attached to a secret.

use std::collections::BTreeMap;

use crate::Error;

/// Most entries in one secret's metadata.
pub const MAX_METADATA_ENTRIES: usize = 64;
/// Longest metadata key, in bytes.
pub const MAX_METADATA_KEY: usize = 128;
/// Longest metadata value, in bytes.
pub const MAX_METADATA_VALUE: usize = 512;

/// A small map of non-secret strings (owner, url, expiry…) kept with a secret.
/// The vault still stores it encrypted.
pub type Metadata = BTreeMap<String, String>;

/// Checks metadata against the limits.
pub fn validate(meta: &Metadata) -> Result<(), Error> {
    if meta.len() > MAX_METADATA_ENTRIES {
        return Err(Error::Validation(format!(
            "metadata has {} entries; at most {MAX_METADATA_ENTRIES} are allowed",
            meta.len()
        )));
    }
    for (key, value) in meta {
        if key.is_empty() || key.len() > MAX_METADATA_KEY || key.chars().any(char::is_control) {
            return Err(Error::Validation(format!(
                "metadata key {:?} must be 1 to {MAX_METADATA_KEY} bytes without control characters",
                key.chars().take(32).collect::<String>()
            )));
        }
        if value.len() > MAX_METADATA_VALUE {
            return Err(Error::Validation(format!(
                "metadata value of key {key:?} is {} bytes; at most {MAX_METADATA_VALUE} are allowed",
                value.len()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced() {
        let mut m = Metadata::new();
        m.insert("owner".into(), "ops".into());
        assert!(validate(&m).is_ok());
        m.insert("k".repeat(129), "v".into());
        assert!(validate(&m).is_err());
        let mut m = Metadata::new();
        m.insert("k".into(), "v".repeat(513));
        assert!(validate(&m).is_err());
        let m: Metadata = (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(validate(&m).is_err());
        let mut m = Metadata::new();
        m.insert(String::new(), "v".into());
        assert!(validate(&m).is_err());
    }
}
