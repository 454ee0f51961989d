//! `tresor encrypt` / `tresor decrypt`: files in the age v1 format, to age
//! recipients or a passphrase. The work is in `tresor::files`; this parses
//! arguments, gathers keys and passphrases, and reports.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use tresor::files::age::secrecy::SecretString;
use tresor::files::{self, Copied, DecryptWith, EncryptTo, Output};
use tresor::{Error, Result};

use crate::{input, output};

#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// The file to encrypt ("-" or absent: stdin).
    pub file: Option<PathBuf>,
    /// Write to OUT (through a 0600 temporary file renamed into place) instead of stdout.
    #[arg(long, short, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Encrypt to this age recipient, age1… (repeatable).
    #[arg(long = "recipient", short = 'r', value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
    /// Encrypt to the recipients listed in FILE, one a line (repeatable).
    #[arg(long = "recipients-file", short = 'R', value_name = "FILE")]
    pub recipients_files: Vec<PathBuf>,
    /// Encrypt to a passphrase asked twice on the terminal.
    #[arg(long, conflicts_with_all = ["recipients", "recipients_files", "passphrase_file"])]
    pub passphrase: bool,
    /// Encrypt to the passphrase on the first line of FILE.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["recipients", "recipients_files"])]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// The age file to decrypt ("-" or absent: stdin).
    pub file: Option<PathBuf>,
    /// Write to OUT (through a 0600 temporary file renamed into place only when
    /// the whole file authenticated) instead of stdout.
    #[arg(long, short, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// An age identity file, as age-keygen writes it (repeatable).
    #[arg(long = "identity", short = 'i', value_name = "IDENTITY_FILE")]
    pub identities: Vec<PathBuf>,
    /// Decrypt with a passphrase asked on the terminal.
    #[arg(long, conflicts_with_all = ["identities", "passphrase_file"])]
    pub passphrase: bool,
    /// Decrypt with the passphrase on the first line of FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "identities")]
    pub passphrase_file: Option<PathBuf>,
}

/// How to report.
pub struct Report {
    pub json: bool,
    pub quiet: bool,
}

pub fn encrypt(a: EncryptArgs, report: &Report) -> Result<()> {
    let to = if a.passphrase {
        EncryptTo::Passphrase(prompt_passphrase(true)?)
    } else if let Some(path) = &a.passphrase_file {
        EncryptTo::Passphrase(passphrase_from_file(path)?)
    } else {
        let mut list = Vec::new();
        for r in &a.recipients {
            list.push(files::parse_recipient(r)?);
        }
        for path in &a.recipients_files {
            list.extend(files::read_recipients_file(path)?);
        }
        if list.is_empty() {
            return Err(Error::Validation(
                "no recipients: give -r RECIPIENT, -R FILE, --passphrase or --passphrase-file"
                    .into(),
            ));
        }
        EncryptTo::Recipients(list)
    };
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
        |input, out, what| files::encrypt_file(&to, input, out, what),
    )
}

pub fn decrypt(a: DecryptArgs, report: &Report) -> Result<()> {
    let with = if a.passphrase {
        DecryptWith::Passphrase(prompt_passphrase(false)?)
    } else if let Some(path) = &a.passphrase_file {
        DecryptWith::Passphrase(passphrase_from_file(path)?)
    } else {
        let mut ids = Vec::new();
        for path in &a.identities {
            ids.extend(files::read_identity_file(path)?);
        }
        if ids.is_empty() {
            return Err(Error::Validation(
                "no identities: give -i IDENTITY_FILE, --passphrase or --passphrase-file".into(),
            ));
        }
        DecryptWith::Identities(ids)
    };
    run(
        a.file.as_deref(),
        a.output.as_deref(),
        report,
        "decrypted",
        |input, out, what| files::decrypt_file(&with, input, out, what),
    )
}

/// Opens the input and output, runs `work`, and commits the output only on
/// success (a dropped temporary file is removed).
fn run(
    file: Option<&Path>,
    out: Option<&Path>,
    report: &Report,
    verb: &str,
    work: impl FnOnce(&std::fs::File, &mut Output, &str) -> Result<Copied>,
) -> Result<()> {
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
        Some(p) => Output::path(p)?,
        None => Output::stdout(),
    };
    let copied = work(&input, &mut output, &what)?;
    output.commit()?;
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
    Ok(())
}

/// A passphrase from the terminal; asked twice when encrypting.
fn prompt_passphrase(twice: bool) -> Result<SecretString> {
    if !input::can_prompt() {
        return Err(Error::Locked {
            store: "passphrase".into(),
            hint: "no terminal to ask for the passphrase; use --passphrase-file FILE".into(),
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
fn passphrase_from_file(path: &Path) -> Result<SecretString> {
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
