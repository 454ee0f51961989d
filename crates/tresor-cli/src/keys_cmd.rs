//! `tresor key …`: named encryption keys for applications. Arguments and
//! their commands, kept apart from the secret commands.
//!
//! Age keys (`--type age`) are X25519 identities for `tresor encrypt --key`
//! and `tresor decrypt --key`; `key recipient` prints their public side.
//! They seal no envelopes: `key encrypt`, `decrypt` and `rewrap` refuse them
//! with a pointer to the file commands.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use zeroize::Zeroizing;

use tresor::files;
use tresor::{AgeUse, Error, KeyInfo, KeyType, Result, SecretName, Vault, envelope_key};

use crate::{input, output};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Make a named key with a random version 1 (AES-256-GCM unless --type says otherwise;
    /// --type age makes an age X25519 identity for `tresor encrypt/decrypt --key`).
    Create(CreateArgs),
    /// List named keys: type, newest version, minimum decryption version, creation date;
    /// an AES-256-GCM key whose newest version has sealed half its budget of 2^32
    /// envelopes or more says so (--json: `encryptions` and `encryption_budget`).
    #[command(visible_alias = "ls")]
    List,
    /// Add a new random version: new envelopes use it, older ones keep opening.
    Rotate(NameArg),
    /// Set the minimum decryption version: envelopes of older versions are refused.
    Config(ConfigArgs),
    /// Delete a named key and destroy every version: no envelope made with it
    /// can be decrypted again. Refused without --yes-destroy-data.
    #[command(visible_alias = "rm")]
    Delete(DeleteArgs),
    /// Encrypt stdin (or --in FILE), byte for byte, into a one-line envelope on
    /// stdout: tresor:v1:<key name>:<version>:<base64url data>.
    Encrypt(EncryptArgs),
    /// Decrypt an envelope read from stdin (or --in FILE) to stdout (or --out FILE).
    Decrypt(DecryptArgs),
    /// Re-encrypt an envelope from stdin (or --in FILE) under the newest version of
    /// its key; the plaintext never leaves the vault.
    Rewrap(InArg),
    /// Print the public age recipient (age1…) of an age key's newest version, for
    /// `age -r`, `tresor encrypt -r` or a recipients file.
    Recipient(NameArg),
}

/// The key types `--type` accepts.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyTypeArg {
    /// AES-256-GCM, 12-byte random nonces (the default). Each version seals at most
    /// 2^32 envelopes (counted; a warning from 2^31, then `key rotate`).
    #[value(name = "aes256-gcm")]
    Aes256Gcm,
    /// XChaCha20-Poly1305, 24-byte random nonces: no envelope budget; for high volume.
    #[value(name = "xchacha20-poly1305")]
    XChaCha20Poly1305,
    /// An age X25519 identity, for age files (tresor encrypt/decrypt --key); no envelopes.
    #[value(name = "age")]
    Age,
}

impl From<KeyTypeArg> for KeyType {
    fn from(t: KeyTypeArg) -> Self {
        match t {
            KeyTypeArg::Aes256Gcm => KeyType::Aes256Gcm,
            KeyTypeArg::XChaCha20Poly1305 => KeyType::XChaCha20Poly1305,
            KeyTypeArg::Age => KeyType::AgeX25519,
        }
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The key's name, e.g. app/orders (the secret-name rule applies).
    pub name: String,
    /// The cipher.
    #[arg(long = "type", value_enum, default_value_t = KeyTypeArg::Aes256Gcm)]
    pub key_type: KeyTypeArg,
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// The key's name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The key's name.
    pub name: String,
    /// Refuse envelopes of versions below N (1 up to the newest version).
    #[arg(long, value_name = "N")]
    pub min_decryption_version: u32,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The key's name.
    pub name: String,
    /// Confirm that every envelope made with this key becomes undecryptable.
    #[arg(long)]
    pub yes_destroy_data: bool,
}

#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// The key's name.
    pub name: String,
    /// Read the plaintext from FILE instead of stdin.
    #[arg(long = "in", value_name = "FILE")]
    pub input: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// Read the envelope from FILE instead of stdin.
    #[arg(long = "in", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Write the plaintext to FILE instead of stdout: a new 0600 file renamed
    /// over FILE; an existing FIFO, device or folder there is refused.
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InArg {
    /// Read the envelope from FILE instead of stdin.
    #[arg(long = "in", value_name = "FILE")]
    pub input: Option<PathBuf>,
}

/// How the command reports: the global `--json` and `--quiet`.
pub struct Report {
    pub json: bool,
    pub quiet: bool,
}

impl Report {
    /// JSON on stdout, or a status line on stderr (not with --quiet).
    fn done(&self, body: serde_json::Value, text: &str) {
        if self.json {
            output::json(&body);
        } else if !self.quiet {
            eprintln!("{text}");
        }
    }
}

/// Runs one `tresor key` command; `unlock` opens the vault when needed.
pub fn run(
    command: KeyCommand,
    report: &Report,
    unlock: impl FnOnce() -> Result<Vault>,
) -> Result<()> {
    match command {
        KeyCommand::Create(a) => {
            let name = SecretName::new(a.name)?;
            let mut vault = unlock()?;
            let mut keys = vault.keys();
            let info = keys.create(&name, a.key_type.into())?;
            keys.flush()?;
            report.done(
                serde_json::to_value(&info).unwrap_or_default(),
                &format!(
                    "created named key {name} ({}), version {}",
                    info.key_type, info.latest
                ),
            );
        }
        KeyCommand::List => {
            let mut vault = unlock()?;
            let mut keys = vault.keys();
            let list = keys.list()?;
            keys.flush()?;
            if report.json {
                output::json(&list);
            } else {
                for k in &list {
                    output::line(&row(k));
                }
            }
        }
        KeyCommand::Rotate(a) => {
            let name = SecretName::new(a.name)?;
            let mut vault = unlock()?;
            let version = vault.keys().rotate(&name)?;
            report.done(
                json!({"name": name, "version": version}),
                &format!("{name}: rotated to version {version}"),
            );
        }
        KeyCommand::Config(a) => {
            let name = SecretName::new(a.name)?;
            let mut vault = unlock()?;
            let info = vault.keys().config(&name, a.min_decryption_version)?;
            report.done(
                serde_json::to_value(&info).unwrap_or_default(),
                &format!(
                    "{name}: minimum decryption version {} (newest version {})",
                    info.min_decryption_version, info.latest
                ),
            );
        }
        KeyCommand::Delete(a) => {
            let name = SecretName::new(a.name)?;
            if !a.yes_destroy_data {
                return Err(Error::Validation(format!(
                    "deleting named key '{name}' destroys every version: no envelope made with it \
                     can be decrypted again, by anyone. Add --yes-destroy-data to go ahead"
                )));
            }
            let mut vault = unlock()?;
            vault.keys().delete(&name)?;
            report.done(
                json!({"name": name, "deleted": true}),
                &format!("{name}: deleted; every version destroyed"),
            );
        }
        KeyCommand::Encrypt(a) => {
            let name = SecretName::new(a.name)?;
            let plaintext = read_input(a.input.as_ref(), "the plaintext")?;
            let mut vault = unlock()?;
            let mut keys = vault.keys();
            let envelope = keys.encrypt(&name, &plaintext);
            warn_budget(&mut keys);
            let envelope = envelope?;
            keys.flush()?;
            drop(plaintext);
            print_envelope(report, &envelope)?;
        }
        KeyCommand::Decrypt(a) => {
            let text = read_envelope(a.input.as_ref())?;
            let (name, version) = envelope_key(&text)?;
            let mut vault = unlock()?;
            let mut keys = vault.keys();
            let plain = keys.decrypt(&text)?;
            keys.flush()?;
            drop(keys);
            drop(vault);
            let bytes = plain.expose_secret();
            if let Some(out) = &a.out {
                crate::commands::write_private(out, bytes)?;
                report.done(
                    json!({"name": name, "version": version, "out": out}),
                    &format!(
                        "envelope of {name} v{version} decrypted to {}",
                        out.display()
                    ),
                );
            } else if report.json {
                // The plaintext is serialised from borrowed, wiped memory
                // straight into a wiped buffer (never into a json! value).
                let encoded;
                let (field, secret) = match plain.expose_text() {
                    Some(text) => ("plaintext", text),
                    None => {
                        encoded = output::base64_secret(bytes);
                        ("plaintext_base64", encoded.as_str())
                    }
                };
                output::secret_json(&output::WithSecret {
                    body: json!({"name": name, "version": version}),
                    field,
                    secret: Some(secret),
                })?;
            } else {
                output::write_stdout(
                    bytes,
                    std::io::stdout().is_terminal() && !bytes.ends_with(b"\n"),
                )?;
            }
        }
        KeyCommand::Rewrap(a) => {
            let text = read_envelope(a.input.as_ref())?;
            let mut vault = unlock()?;
            let mut keys = vault.keys();
            let envelope = keys.rewrap(&text);
            warn_budget(&mut keys);
            let envelope = envelope?;
            keys.flush()?;
            print_envelope(report, &envelope)?;
        }
        KeyCommand::Recipient(a) => {
            let name = SecretName::new(a.name)?;
            let mut vault = unlock()?;
            let mut keys = vault.keys();
            let recipient = keys.age_use(&name, AgeUse::Recipient, |lent| {
                let (version, material) = lent[0];
                let recipient = files::identity_of(material).to_public().to_string();
                Ok(((recipient, version), Some(version)))
            });
            keys.flush()?;
            let (recipient, version) = recipient?;
            // Data for `age -r`: a reader that goes away is an error.
            if report.json {
                output::data_json(
                    &json!({"name": name, "version": version, "recipient": recipient}),
                )?;
            } else {
                output::data_line(&recipient)?;
            }
        }
    }
    Ok(())
}

fn row(k: &KeyInfo) -> String {
    let mut row = format!(
        "{:<40} {:<19} v{:<4} min v{:<4} {}",
        k.name.as_str(),
        k.key_type.as_str(),
        k.latest,
        k.min_decryption_version,
        output::time(k.created_at)
    );
    if let (true, Some(used), Some(budget)) = (k.near_budget(), k.encryptions, k.encryption_budget)
    {
        row.push_str(&format!(
            "  ({used} of {budget} encryptions used: `tresor key rotate {}`)",
            k.name
        ));
    }
    row
}

/// Prints the warnings of AES-256-GCM key versions near their encryption
/// budget on stderr (even with --quiet: they ask for action).
fn warn_budget(keys: &mut tresor::Keys<'_>) {
    for warning in keys.take_budget_warnings() {
        eprintln!("warning: {warning} (`tresor key rotate {}`)", warning.name);
    }
}

/// An envelope on stdout: alone on its line, or as `--json`.
fn print_envelope(report: &Report, envelope: &str) -> Result<()> {
    if report.json {
        let (name, version) = envelope_key(envelope)?;
        return output::data_json(&json!({"name": name, "version": version, "envelope": envelope}));
    }
    output::write_stdout(envelope.as_bytes(), true)
}

/// The bytes of `--in FILE`, else of stdin (which must not be a terminal).
fn read_input(file: Option<&PathBuf>, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    if let Some(path) = file {
        return input::read_file(path);
    }
    if std::io::stdin().is_terminal() {
        return Err(Error::Validation(format!(
            "give {what} on stdin (a pipe or a redirect) or with --in FILE"
        )));
    }
    input::read_all(std::io::stdin().lock(), "stdin")
}

/// One envelope from `--in FILE` or stdin, surrounding whitespace removed.
fn read_envelope(file: Option<&PathBuf>) -> Result<String> {
    let raw = read_input(file, "the envelope")?;
    let text = std::str::from_utf8(&raw)
        .map_err(|_| Error::Validation("the input is not an envelope (not text)".into()))?
        .trim();
    if text.contains(['\n', '\r']) {
        return Err(Error::Validation(
            "expected one envelope, found several lines; give one envelope per call".into(),
        ));
    }
    Ok(text.to_string())
}
