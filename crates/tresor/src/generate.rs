//! Random values: `tresor set --generate`, and declared secrets with
//! `generate = { length, charset }` (`tresor check --fix`).
//!
//! ```
//! use tresor::generate::{Charset, generate};
//!
//! let v = generate(24, Charset::Hex)?;
//! assert_eq!(v.len(), 24);
//! assert!(v.expose_secret().iter().all(u8::is_ascii_hexdigit));
//! assert_eq!(Charset::parse("base64url"), Some(Charset::Base64url));
//! # Ok::<(), tresor::Error>(())
//! ```

use std::fmt;

use tresor_core::{Error, Result, SecretValue};
use zeroize::{Zeroize, Zeroizing};

/// The longest value generated.
pub const MAX_LENGTH: usize = 4096;
/// The length used when none is given.
pub const DEFAULT_LENGTH: usize = 32;

/// The characters a generated value is made of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Charset {
    /// A-Z a-z 0-9
    #[default]
    Alnum,
    /// A-Z a-z
    Alpha,
    /// 0-9
    Digits,
    /// 0-9 a-f
    Hex,
    /// A-Z a-z 0-9 - _
    Base64url,
    /// Printable ASCII without space
    Ascii,
}

impl Charset {
    /// Every charset, as written in `tresor.toml` and on the command line.
    pub const ALL: [Charset; 6] = [
        Charset::Alnum,
        Charset::Alpha,
        Charset::Digits,
        Charset::Hex,
        Charset::Base64url,
        Charset::Ascii,
    ];

    /// The name as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Charset::Alnum => "alnum",
            Charset::Alpha => "alpha",
            Charset::Digits => "digits",
            Charset::Hex => "hex",
            Charset::Base64url => "base64url",
            Charset::Ascii => "ascii",
        }
    }

    /// Parses a name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    fn alphabet(self) -> Vec<u8> {
        match self {
            Charset::Alnum => (b'A'..=b'Z')
                .chain(b'a'..=b'z')
                .chain(b'0'..=b'9')
                .collect(),
            Charset::Alpha => (b'A'..=b'Z').chain(b'a'..=b'z').collect(),
            Charset::Digits => (b'0'..=b'9').collect(),
            Charset::Hex => (b'0'..=b'9').chain(b'a'..=b'f').collect(),
            Charset::Base64url => (b'A'..=b'Z')
                .chain(b'a'..=b'z')
                .chain(b'0'..=b'9')
                .chain([b'-', b'_'])
                .collect(),
            Charset::Ascii => (b'!'..=b'~').collect(),
        }
    }
}

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A random value of `len` characters (1 to [`MAX_LENGTH`]) from `charset`,
/// by rejection sampling so every character is equally likely.
pub fn generate(len: usize, charset: Charset) -> Result<SecretValue> {
    if len == 0 || len > MAX_LENGTH {
        return Err(Error::Validation(format!(
            "a generated value is 1 to {MAX_LENGTH} characters long, not {len}"
        )));
    }
    let alphabet = charset.alphabet();
    let limit = 256 - (256 % alphabet.len());
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    let mut pool = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut pool)
            .map_err(|e| Error::Validation(format!("the OS random source failed: {e}")))?;
        for &b in &pool {
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % alphabet.len()]);
            }
        }
    }
    pool.zeroize();
    Ok(SecretValue::copy_from(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_charset_gives_only_its_characters() {
        for c in Charset::ALL {
            let v = generate(300, c).unwrap();
            let alphabet = c.alphabet();
            assert!(
                v.expose_secret().iter().all(|b| alphabet.contains(b)),
                "{c}"
            );
            assert_eq!(Charset::parse(c.as_str()), Some(c));
        }
        assert_ne!(
            generate(32, Charset::Alnum).unwrap(),
            generate(32, Charset::Alnum).unwrap()
        );
        assert!(generate(0, Charset::Alnum).is_err());
        assert!(generate(MAX_LENGTH + 1, Charset::Alnum).is_err());
    }
}
