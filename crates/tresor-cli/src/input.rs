//! Reading values and passwords without leaving copies behind.

use std::io::{IsTerminal, Read};
use std::path::Path;

use base64::Engine as _;
use zeroize::Zeroizing;

use tresor::{Error, Result, SecretValue};

use crate::cli::{Charset, Encoding, ValueArgs};

/// Largest input read before the vault's own limit applies (values above
/// the vault's `max_value_len` are refused by the vault with a clear error).
const READ_LIMIT: usize = 64 * 1024 * 1024;

/// The value for `set`/`rotate`: generated, from --file, from stdin, or from
/// a hidden prompt (asked twice) on a terminal.
pub fn value(args: &ValueArgs, name: &str) -> Result<SecretValue> {
    let (value, source) = read_value(args, name)?;
    // An empty value is almost always a mistake (`set x < /dev/null`, a
    // file that was not written yet): stored only when asked for.
    if value.expose_secret().is_empty() && !args.allow_empty {
        return Err(Error::Validation(format!(
            "no value {source}; give --allow-empty to store an empty value"
        )));
    }
    Ok(value)
}

/// The value and where it came from (for the empty-value refusal).
fn read_value(args: &ValueArgs, name: &str) -> Result<(SecretValue, String)> {
    if let Some(len) = args.generate {
        return generate(len, args.charset).map(|v| (v, "generated".into()));
    }
    if let Some(path) = &args.file {
        let mut raw = read_file(path)?;
        let value = match args.encoding {
            Encoding::Raw => SecretValue::from(std::mem::take(&mut *raw)),
            Encoding::Base64 => decode_base64(&raw, &path.display().to_string())?,
        };
        return Ok((value, format!("in {}", path.display())));
    }
    if !std::io::stdin().is_terminal() {
        let mut raw = read_all(std::io::stdin().lock(), "stdin")?;
        if !args.keep_newline {
            let len = raw.len();
            if raw.ends_with(b"\r\n") {
                raw.truncate(len - 2);
            } else if raw.ends_with(b"\n") {
                raw.truncate(len - 1);
            }
        }
        return Ok((
            SecretValue::from(std::mem::take(&mut *raw)),
            "on stdin".into(),
        ));
    }
    let first = prompt(&format!("Value for {name}: "))?;
    let second = prompt("Again: ")?;
    if *first != *second {
        return Err(Error::Validation(
            "the two entries differ; nothing was stored".into(),
        ));
    }
    Ok((SecretValue::from(first.to_string()), "was entered".into()))
}

/// Asks for a hidden line on the terminal.
pub fn prompt(message: &str) -> Result<Zeroizing<String>> {
    rpassword::prompt_password(message)
        .map(Zeroizing::new)
        .map_err(|source| Error::Io {
            store: "terminal".into(),
            path: "/dev/tty".into(),
            source,
        })
}

/// Whether a prompt can be shown.
pub fn can_prompt() -> bool {
    std::io::stdin().is_terminal() || std::fs::File::open("/dev/tty").is_ok_and(|f| f.is_terminal())
}

/// A new password: `env_var` if set, else asked twice on the terminal.
pub fn new_password(env_var: &str, what: &str) -> Result<Zeroizing<String>> {
    if let Ok(pw) = std::env::var(env_var)
        && !pw.is_empty()
    {
        return Ok(Zeroizing::new(pw));
    }
    if !can_prompt() {
        return Err(Error::Locked {
            store: "vault".into(),
            hint: format!("no terminal to ask for {what}; set {env_var}"),
        });
    }
    let first = prompt(&format!("New {what}: "))?;
    if first.is_empty() {
        return Err(Error::Validation("an empty password is not allowed".into()));
    }
    let second = prompt(&format!("Repeat the {what}: "))?;
    if *first != *second {
        return Err(Error::Validation("the two entries differ".into()));
    }
    Ok(first)
}

pub fn read_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        store: "input".into(),
        path: path.to_path_buf(),
        source,
    })?;
    read_all(file, &path.display().to_string())
}

/// Reads everything into a zeroizing buffer that grows by copying, wiping
/// the old buffer each time, so no stray copy stays in freed memory.
pub fn read_all(mut reader: impl Read, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; 8192]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            if buf.len() >= READ_LIMIT {
                return Err(Error::Validation(format!(
                    "{what} holds more than {READ_LIMIT} bytes"
                )));
            }
            let mut bigger = Zeroizing::new(vec![0u8; buf.len() * 2]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger;
        }
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::Io {
                    store: "input".into(),
                    path: what.into(),
                    source,
                });
            }
        }
    }
    let mut exact = Zeroizing::new(vec![0u8; len]);
    exact.copy_from_slice(&buf[..len]);
    Ok(exact)
}

fn decode_base64(text: &[u8], what: &str) -> Result<SecretValue> {
    let trimmed: Zeroizing<Vec<u8>> = Zeroizing::new(
        text.iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect(),
    );
    base64::engine::general_purpose::STANDARD
        .decode(&trimmed[..])
        .map(SecretValue::from)
        .map_err(|_| Error::Validation(format!("{what} is not valid base64")))
}

/// A random value of `len` characters from `charset` (the library's
/// generator, [`tresor::generate`]).
pub fn generate(len: usize, charset: Charset) -> Result<SecretValue> {
    if len == 0 || len > tresor::generate::MAX_LENGTH {
        return Err(Error::Validation(
            "--generate takes a length from 1 to 4096".into(),
        ));
    }
    tresor::generate::generate(len, charset.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_use_the_charset() {
        let v = generate(200, Charset::Hex).unwrap();
        assert_eq!(v.len(), 200);
        assert!(
            v.expose_secret()
                .iter()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(
            generate(32, Charset::Alnum).unwrap(),
            generate(32, Charset::Alnum).unwrap()
        );
        assert!(generate(0, Charset::Alnum).is_err());
    }

    #[test]
    fn read_all_grows_past_the_first_buffer() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        assert_eq!(&read_all(&data[..], "x").unwrap()[..], &data[..]);
    }
}
