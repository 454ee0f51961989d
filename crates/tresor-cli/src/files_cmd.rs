//! `tresor encrypt` / `tresor decrypt`: files in the age v1 format, to age
//! recipients, an age key kept in the vault (`--key`), or a passphrase. The
//! work is in `tresor::files`; this parses arguments, gathers keys and
//! passphrases, and reports.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use tresor::files::age::secrecy::SecretString;
use tresor::files::{self, Copied, DecryptOptions, DecryptWith, EncryptTo, Output};
use tresor::{AgeUse, Error, Result, SecretName, Vault};

use crate::{input, output};

#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// The file to encrypt ("-" or absent: stdin).
    pub file: Option<PathBuf>,
    /// Write to OUT instead of stdout: through a new 0600 file renamed into
    /// place (an existing device or pipe, such as /dev/null, is written
    /// directly: the output is encrypted).
    #[arg(long, short, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Encrypt to this age recipient, age1… (repeatable).
    #[arg(long = "recipient", short = 'r', value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
    /// Encrypt to the recipients listed in FILE, one a line (repeatable).
    #[arg(long = "recipients-file", short = 'R', value_name = "FILE")]
    pub recipients_files: Vec<PathBuf>,
    /// Encrypt to the newest version of the vault's age key NAME (made with
    /// `tresor key create NAME --type age`); combines with -r and -R.
    #[arg(long, value_name = "NAME")]
    pub key: Option<String>,
    /// Encrypt to a passphrase asked twice on the terminal.
    #[arg(long, short = 'p', conflicts_with_all = ["recipients", "recipients_files", "key", "passphrase_file"])]
    pub passphrase: bool,
    /// Encrypt to the passphrase on the first line of FILE.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["recipients", "recipients_files", "key"])]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// The age file to decrypt ("-" or absent: stdin).
    pub file: Option<PathBuf>,
    /// Write to OUT instead of stdout: through a new 0600 file renamed into
    /// place only when the whole file authenticated (nothing is left if it
    /// fails or is interrupted). An existing FIFO, device or folder at OUT is
    /// refused, and so is a symbolic link (neither followed nor replaced).
    #[arg(long, short, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// An age identity file, as age-keygen writes it (repeatable).
    #[arg(long = "identity", short = 'i', value_name = "IDENTITY_FILE")]
    pub identities: Vec<PathBuf>,
    /// Decrypt with the vault's age key NAME: each of its versions from the
    /// minimum decryption version up; combines with -i.
    #[arg(long, value_name = "NAME")]
    pub key: Option<String>,
    /// Decrypt with a passphrase asked on the terminal (asked anyway when
    /// FILE is a passphrase-encrypted file and no identity is given).
    #[arg(long, short = 'p', conflicts_with_all = ["identities", "key", "passphrase_file"])]
    pub passphrase: bool,
    /// Decrypt with the passphrase on the first line of FILE.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["identities", "key"])]
    pub passphrase_file: Option<PathBuf>,
    /// The highest scrypt work factor (log2 N) a passphrase file may ask
    /// for; more is refused before any work. Each step doubles the time and
    /// the memory (1 KiB × 2^N: 4 GiB at the default 22, as stock age); raise
    /// it only for a file you trust.
    #[arg(
        long,
        value_name = "N",
        default_value_t = files::DEFAULT_MAX_WORK_FACTOR,
        value_parser = clap::value_parser!(u8).range(1..=63)
    )]
    pub max_work_factor: u8,
}

/// How to report.
pub struct Report {
    pub json: bool,
    pub quiet: bool,
}

pub fn encrypt(
    a: EncryptArgs,
    report: &Report,
    unlock: impl FnOnce() -> Result<Vault>,
) -> Result<()> {
    let to = encrypt_to(
        a.passphrase,
        a.passphrase_file.as_deref(),
        &a.recipients,
        &a.recipients_files,
        a.key.as_deref(),
        unlock,
    )?;
    if a.output.is_none() && std::io::stdout().is_terminal() {
        return Err(Error::Validation(
            "refusing to write binary age data to a terminal; use -o OUT or a redirect".into(),
        ));
    }
    run(
        a.file.as_deref(),
        a.output.as_deref(),
        report,
        "encrypted",
        |input, out, what| {
            let bar = report.bar(a.output.is_none());
            files::encrypt_file_with(&to, input, out, what, &bar)
        },
    )
    .map(drop)
}

/// Who an age file is encrypted to: a passphrase (asked, or from a file),
/// or recipients (`-r`, `-R` files, the vault's age key `--key NAME`).
pub(crate) fn encrypt_to(
    passphrase: bool,
    passphrase_file: Option<&Path>,
    recipients: &[String],
    recipients_files: &[PathBuf],
    key: Option<&str>,
    unlock: impl FnOnce() -> Result<Vault>,
) -> Result<EncryptTo> {
    Ok(if passphrase {
        EncryptTo::Passphrase(prompt_passphrase(true, None)?)
    } else if let Some(path) = passphrase_file {
        EncryptTo::Passphrase(passphrase_from_file(path)?)
    } else {
        let mut list = Vec::new();
        for r in recipients {
            list.push(files::parse_recipient(r)?);
        }
        for path in recipients_files {
            list.extend(files::read_recipients_file(path)?);
        }
        if let Some(name) = key {
            let name = SecretName::new(name.to_string())?;
            let mut vault = unlock()?;
            let mut keys = vault.keys();
            let recipient = keys.age_use(&name, AgeUse::Encrypt, |lent| {
                let (version, material) = lent[0];
                Ok((files::identity_of(material).to_public(), Some(version)))
            });
            keys.flush()?;
            list.push(Box::new(recipient?));
        }
        if list.is_empty() {
            return Err(Error::Validation(
                "no recipients: give -r RECIPIENT, -R FILE, --key NAME, --passphrase or \
                 --passphrase-file"
                    .into(),
            ));
        }
        EncryptTo::Recipients(list)
    })
}

pub fn decrypt(
    a: DecryptArgs,
    report: &Report,
    unlock: impl FnOnce() -> Result<Vault>,
) -> Result<()> {
    let options = DecryptOptions {
        max_work_factor: a.max_work_factor,
    };
    let decrypt = |with: &DecryptWith| {
        run(
            a.file.as_deref(),
            a.output.as_deref(),
            report,
            "decrypted",
            |input, out, what| {
                let bar = report.bar(a.output.is_none());
                files::decrypt_file_with_options(with, &options, input, out, what, &bar)
            },
        )
    };
    // Before a passphrase is asked: a named file whose header tresor would
    // refuse (malformed, or too much scrypt work) is refused first.
    let check_first = || match a.file.as_deref() {
        Some(p) if p.as_os_str() != "-" && std::fs::metadata(p).is_ok_and(|m| m.is_file()) => {
            files::check_header_before_passphrase(p, &options)
        }
        _ => Ok(()),
    };
    if a.passphrase {
        check_first()?;
        return decrypt(&DecryptWith::Passphrase(prompt_passphrase(
            false,
            a.file.as_deref(),
        )?))
        .map(drop);
    }
    if let Some(path) = &a.passphrase_file {
        return decrypt(&DecryptWith::Passphrase(passphrase_from_file(path)?)).map(drop);
    }
    let mut ids = Vec::new();
    for path in &a.identities {
        ids.extend(files::read_identity_file(path)?);
    }
    let Some(name) = &a.key else {
        if ids.is_empty() && a.file.as_deref().is_some_and(is_passphrase_file) {
            // As stock age does: a passphrase file needs no flag.
            check_first()?;
            return decrypt(&DecryptWith::Passphrase(prompt_passphrase(
                false,
                a.file.as_deref(),
            )?))
            .map(drop);
        }
        if ids.is_empty() {
            return Err(Error::Validation(
                "no identities: give -i IDENTITY_FILE, --key NAME, --passphrase or \
                 --passphrase-file"
                    .into(),
            ));
        }
        return decrypt(&DecryptWith::Identities(ids)).map(drop);
    };
    // The key's identities exist only while the vault lends them; the use is
    // audited with the version that opened the file.
    let name = SecretName::new(name.clone())?;
    let mut vault = unlock()?;
    let mut keys = vault.keys();
    let from_files = ids.len();
    let result = keys.age_use(&name, AgeUse::Decrypt, |lent| {
        for (_, material) in lent {
            ids.push(Box::new(files::identity_of(material)));
        }
        let copied = decrypt(&DecryptWith::Identities(ids))?;
        let version = copied
            .identity
            .and_then(|i| i.checked_sub(from_files))
            .map(|i| lent[i].0);
        Ok(((), version))
    });
    keys.flush()?;
    result
}

/// Opens the input and output, runs `work`, and commits the output only on
/// success (a dropped temporary file is removed).
fn run(
    file: Option<&Path>,
    out: Option<&Path>,
    report: &Report,
    verb: &str,
    work: impl FnOnce(&std::fs::File, &mut Output, &str) -> Result<Copied>,
) -> Result<Copied> {
    let file = file.filter(|p| p.as_os_str() != "-");
    let what = file.map_or_else(|| "stdin".to_string(), |p| p.display().to_string());
    let input = match file {
        Some(p) => std::fs::File::open(p).map_err(|source| Error::Io {
            store: "input".into(),
            path: p.to_path_buf(),
            source,
        })?,
        // Stdin as a file: a redirected regular file is then read on every
        // core like a named one; a pipe is read in order.
        None => std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map(std::fs::File::from)
            .map_err(|source| Error::Io {
                store: "input".into(),
                path: PathBuf::from("stdin"),
                source,
            })?,
    };
    let mut output = match out {
        // Ciphertext may go into /dev/null or a pipe; plaintext only into a
        // new private file renamed into place.
        Some(p) if verb == "encrypted" => Output::ciphertext_path(p)?,
        Some(p) => Output::path(p)?,
        None => Output::stdout(),
    };
    let target = out.map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
    let copied = work(&input, &mut output, &what).map_err(|e| name_output(e, &target))?;
    output.commit().map_err(|e| name_output(e, &target))?;
    if let Some(p) = out {
        if report.json {
            output::json(&json!({
                "operation": if verb == "encrypted" { "encrypt" } else { "decrypt" },
                "input": what,
                "output": p,
                "bytes_in": copied.bytes_in,
                "bytes_out": copied.bytes_out,
            }));
        } else if !report.quiet {
            eprintln!(
                "{verb} {what} ({} bytes) to {} ({} bytes)",
                copied.bytes_in,
                p.display(),
                copied.bytes_out
            );
        }
    }
    Ok(copied)
}

/// The library names the writer it was given "output"; this names it as
/// the user did (`stdout`, or the -o path), so the error says it once.
fn name_output(e: Error, target: &str) -> Error {
    match e {
        Error::Unavailable { store, reason } if store == "output" => Error::Unavailable {
            store: target.into(),
            reason,
        },
        Error::Io {
            store,
            path,
            source,
        } if store == "output" && path == Path::new("output") => Error::Io {
            store,
            path: target.into(),
            source,
        },
        e => e,
    }
}

/// Whether the regular file at `path` is an age file encrypted to a
/// passphrase: its header's first stanza is `-> scrypt` (age allows no other
/// stanza beside a passphrase one). Anything unreadable is "no".
fn is_passphrase_file(path: &Path) -> bool {
    use std::io::Read;
    if path == Path::new("-") {
        return false;
    }
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = Vec::with_capacity(64);
    if file.take(64).read_to_end(&mut head).is_err() {
        return false;
    }
    head.starts_with(b"age-encryption.org/v1\n-> scrypt ")
}

/// A passphrase from the terminal; asked twice when encrypting.
/// Without a terminal: encrypting needs a passphrase to encrypt to;
/// decrypting `file`, the passphrase it is encrypted to.
pub(crate) fn prompt_passphrase(twice: bool, file: Option<&Path>) -> Result<SecretString> {
    if !input::can_prompt() {
        return Err(if twice {
            Error::CredentialNeeded {
                what: crate::exit::NEW_PASSPHRASE.into(),
            }
        } else {
            Error::PassphraseNeeded {
                what: file
                    .filter(|p| p.as_os_str() != "-")
                    .map_or_else(|| "stdin".into(), |p| p.display().to_string()),
            }
        });
    }
    let first = input::prompt("Passphrase: ")?;
    if first.is_empty() {
        return Err(Error::Validation(
            "an empty passphrase is not allowed".into(),
        ));
    }
    if twice {
        let second = input::prompt("Repeat the passphrase: ")?;
        if *first != *second {
            return Err(Error::Validation("the two entries differ".into()));
        }
    }
    Ok(secret_string(&first))
}

/// The first line of `path`, without its line ending.
pub(crate) fn passphrase_from_file(path: &Path) -> Result<SecretString> {
    let raw = input::read_file(path)?;
    let line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| {
        Error::Validation(format!(
            "{}: the passphrase is not UTF-8 text",
            path.display()
        ))
    })?;
    if text.is_empty() {
        return Err(Error::Validation(format!(
            "{}: the passphrase is empty",
            path.display()
        )));
    }
    Ok(secret_string(text))
}

/// Copies into a string of exact capacity, so boxing it never reallocates
/// and leaves an unwiped copy behind.
fn secret_string(text: &str) -> SecretString {
    let mut s = String::with_capacity(text.len());
    s.push_str(text);
    SecretString::from(s)
}
