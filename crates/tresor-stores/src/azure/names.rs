//! The one-to-one mapping of tresor names to Key Vault names.

use super::*;

/// The Key Vault name of a tresor name (see the [module docs](self)), or
/// the length it would have when that is over 127 characters.
///
/// ```
/// use tresor_core::SecretName;
/// use tresor_stores::azure::{key_vault_name, secret_name};
///
/// let name = SecretName::new("openai/api_key")?;
/// assert_eq!(key_vault_name(&name).unwrap(), "openai-api03key");
/// assert_eq!(secret_name("openai-api03key"), Some(name));
/// assert_eq!(key_vault_name(&SecretName::new("Db.prod/0")?).unwrap(), "0db02prod-00");
/// # Ok::<(), tresor_core::Error>(())
/// ```
pub fn key_vault_name(name: &SecretName) -> std::result::Result<String, usize> {
    let mut out = String::with_capacity(name.as_str().len() * 2);
    for c in name.as_str().chars() {
        match c {
            'a'..='z' | '1'..='9' => out.push(c),
            '/' => out.push('-'),
            '0' => out.push_str("00"),
            '-' => out.push_str("01"),
            '.' => out.push_str("02"),
            '_' => out.push_str("03"),
            'A'..='Z' => {
                out.push('0');
                out.push(c.to_ascii_lowercase());
            }
            // SecretName allows nothing else.
            _ => unreachable!("a character outside the naming rule in a SecretName"),
        }
    }
    if out.len() > MAX_KEY_VAULT_NAME {
        Err(out.len())
    } else {
        Ok(out)
    }
}

/// The tresor name a Key Vault name stands for, if it is the image of one
/// under [`key_vault_name`].
pub fn secret_name(kv: &str) -> Option<SecretName> {
    let mut out = String::with_capacity(kv.len());
    let mut chars = kv.chars();
    while let Some(c) = chars.next() {
        match c {
            'a'..='z' | '1'..='9' => out.push(c),
            '-' => out.push('/'),
            '0' => match chars.next()? {
                '0' => out.push('0'),
                '1' => out.push('-'),
                '2' => out.push('.'),
                '3' => out.push('_'),
                l @ 'a'..='z' => out.push(l.to_ascii_uppercase()),
                _ => return None,
            },
            _ => return None,
        }
    }
    let name = SecretName::new(out).ok()?;
    // Only canonical spellings: keeps the mapping one to one.
    (key_vault_name(&name).ok()? == kv).then_some(name)
}
