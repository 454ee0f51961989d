//! Exit codes and remedy hints: what the `tresor` command does about the
//! library's errors. The kind→exit code table is the library's
//! ([`tresor::exit`], shared with the Python package); the flags and
//! commands that fix an error are the CLI's, so the hints live here.

use tresor::Error;

pub use tresor::exit::{ExitCode, code, json_kind};

/// Which command family printed the error: the hints differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// Vault and store commands.
    Secrets,
    /// `encrypt` / `decrypt`.
    Files,
    /// `key decrypt` / `key rewrap`: envelopes given by the user.
    Envelopes,
    /// `migrate` / `sync`.
    Move,
}

impl Context {
    /// The context of a command line.
    pub fn of(command: &crate::cli::Command) -> Self {
        use crate::cli::Command;
        use crate::keys_cmd::KeyCommand;
        match command {
            Command::Encrypt(_) | Command::Decrypt(_) => Context::Files,
            Command::Key(KeyCommand::Decrypt(_) | KeyCommand::Rewrap(_)) => Context::Envelopes,
            Command::Migrate(_) | Command::Sync(_) => Context::Move,
            // Bundles are age files: their errors get the age hints.
            Command::Import(a) if a.format == "bundle" => Context::Files,
            _ => Context::Secrets,
        }
    }
}

/// [`Error::CredentialNeeded`]'s `what` for a new password (`passwd`,
/// `keyslot add --password`).
pub const NEW_PASSWORD: &str = "a new password";
/// [`Error::CredentialNeeded`]'s `what` for `init` with nothing to make
/// the first key slot from.
pub const FIRST_SLOT: &str = "a credential for the new vault's first key slot";
/// [`Error::CredentialNeeded`]'s `what` for `encrypt --passphrase`.
pub const NEW_PASSPHRASE: &str = "a passphrase to encrypt to";

/// What the user can do about an error, naming this CLI's flags and
/// commands; `None` when there is nothing better than the message.
pub fn hint(e: &Error, context: Context) -> Option<String> {
    let text = match (e, context) {
        (Error::Auth { reason, .. }, Context::Files) if reason.contains("recipients") => {
            "give the identity file with -i IDENTITY_FILE".into()
        }
        (Error::Auth { .. }, Context::Files) => "check the identity file (-i) or passphrase".into(),
        (Error::Validation(_), Context::Files)
            if tresor::files::refused_work_factor(e).is_some() =>
        {
            let factor = tresor::files::refused_work_factor(e).unwrap_or_default();
            format!(
                "if you trust the file, raise the limit: `tresor decrypt --max-work-factor {factor}` \
                 (it then takes that memory and time)"
            )
        }
        (Error::Integrity { .. }, Context::Files) => {
            "the age file was modified, truncated or damaged; an -o OUT file is never written \
             from it, but discard anything already sent to stdout"
                .into()
        }
        (Error::Auth { .. }, Context::Secrets | Context::Envelopes) => {
            "check the password or key; any key slot unlocks (tresor keyslot list)".into()
        }
        (Error::Integrity { .. }, Context::Envelopes) => "the envelope was modified or cut \
             short, or made by another vault or a deleted key of that name; the vault itself is \
             not at fault (`tresor verify` checks it)"
            .into(),
        (Error::Integrity { .. }, Context::Secrets) => "the vault may be tampered with or \
             damaged; run `tresor verify` and restore from a backup"
            .into(),
        (Error::NoSuchSlot { given, .. }, _) => format!(
            "unlock with the credential of one of the vault's key slots instead of {given} \
             (a key file, TRESOR_KEY, TRESOR_RECOVERY_KEY, a keychain slot or a session)"
        ),
        (Error::CredentialNeeded { what, .. }, _) if what == NEW_PASSWORD => {
            "set TRESOR_NEW_PASSWORD to the new password (judged for strength like a typed one), \
             or run the command on a terminal"
                .into()
        }
        (Error::CredentialNeeded { what, .. }, _) if what.starts_with(FIRST_SLOT) => {
            "set TRESOR_NEW_PASSWORD (or TRESOR_PASSWORD) for a password slot or TRESOR_KEY for \
             a key, give --key-file FILE (or TRESOR_KEY_FILE) for a key file, made if missing, \
             or --keychain for an OS keychain slot (it also takes kernel keyutils, whose keys do \
             not survive a reboot); on a terminal, init asks for a password"
                .into()
        }
        (Error::CredentialNeeded { what, .. }, _) if what == NEW_PASSPHRASE => {
            "give --passphrase-file FILE (its first line is the passphrase)".into()
        }
        (Error::WeakPassword { .. }, _) => "choose a longer password (a few uncommon words), \
             or give --weak-password to use this one anyway"
            .into(),
        (Error::Conflict { .. }, Context::Move) => {
            "the target already holds another value under that name: nothing was written; \
             `tresor migrate … --dry-run` lists every conflict; remove or rename them in the \
             target (or in the source), then run again"
                .into()
        }
        (Error::Unavailable { .. }, Context::Move) => {
            "once the store is back, run the same command again: it completes the interrupted \
             run"
            .into()
        }
        (Error::Conflict { .. }, _) => {
            "another writer changed the secret; read it again and retry".into()
        }
        (Error::UnsafePath { problem, .. }, _)
            if problem.starts_with(tresor::fs::REFUSED_OUTPUT) =>
        {
            "to print the secret instead, leave out the output option".into()
        }
        (Error::Malformed { what, .. }, _)
            if what.starts_with("key file") || what == tresor::KEY_ENV =>
        {
            "a key file is made by `tresor init --key-file FILE` or `tresor keyslot add \
             --key-file FILE`"
                .into()
        }
        (Error::Unavailable { reason, .. }, _)
            if reason.starts_with(tresor::pkcs11::MODULE_NOT_ALLOWED) =>
        {
            "or allow the module with `tresor keyslot add --pkcs11 --module MODULE --token LABEL \
             --key-label L`"
                .into()
        }
        (Error::Unavailable { reason, .. }, _) if reason == tresor::fs::READER_GONE => {
            "a value, envelope or age file that arrives incomplete is an error (listings such \
             as ls may be cut short); to keep a part, write it all to a file first"
                .into()
        }
        (Error::Deleted { name, .. }, _) => {
            let name = tresor::trust::shell_word(name);
            format!(
                "restore it with `tresor undelete {name}` (`tresor history {name} --deleted` \
                 shows its versions)"
            )
        }
        (Error::RuleFailed { name: Some(_), .. }, _) => {
            "check that this is the right credential for the name; `--no-validate` stores it \
             anyway (the audit log records that), and [[rules]] in tresor.toml can change the \
             rule (docs/validation-and-scan.md)"
                .into()
        }
        (Error::Malformed { problem, .. }, _)
            if problem.starts_with(tresor::import::EMPTY_VALUE) =>
        {
            "give --allow-empty to import empty values".into()
        }
        (Error::Malformed { problem, .. }, _)
            if problem.starts_with(tresor::import::INVALID_NAME) =>
        {
            "give --rename-invalid to import under the mapped names (see them with --dry-run)"
                .into()
        }
        (Error::NoVault { .. }, _) => "create one with `tresor init`, or name another with \
             --vault or TRESOR_VAULT"
            .into(),
        (Error::NoCredential { password_slot, .. }, _) => {
            if *password_slot {
                "there is no terminal to ask for a password; set TRESOR_KEY_FILE (or \
                 --key-file), TRESOR_KEY or TRESOR_PASSWORD (TRESOR_PKCS11_PIN for a PKCS#11 \
                 slot), add a keychain slot (tresor keyslot add --keychain), or start an \
                 unlock session (tresor unlock)"
                    .into()
            } else {
                "give --key-file, TRESOR_KEY_FILE, TRESOR_KEY or TRESOR_RECOVERY_KEY".into()
            }
        }
        (Error::PassphraseNeeded { .. }, _) => "give --passphrase-file FILE (or --passphrase \
             to be asked on a terminal)"
            .into(),
        (Error::Untrusted { path, .. }, _) => format!(
            "review it (`tresor config check` in its folder shows where it sends what, \
             contacting nothing), then approve it with `tresor config trust {}` (or name a \
             config with --config)",
            tresor::trust::shell_word(&path.display().to_string())
        ),
        (Error::SlotsUnavailable { .. }, _) => {
            "give their credentials, or pass --drop-unavailable-slots to remove them".into()
        }
        (Error::Stale { .. }, _) => {
            "raise --max-age (or max_age in the config), or reach the store again".into()
        }
        (Error::KeyLabel { .. }, _) => {
            "use another --key-label; tresor then makes a fitting key".into()
        }
        (
            Error::WrongKeyType {
                name,
                key_type,
                purpose,
            },
            _,
        ) => match key_type.as_str() {
            "age" => format!("encrypt files with `tresor encrypt --key {name}`"),
            _ if purpose.contains("files") => {
                "files need an age key: `tresor key create NAME --type age`".into()
            }
            _ => format!("see `tresor key show {name}`"),
        },
        (Error::KeyBudgetSpent { name, .. }, _) => format!(
            "run `tresor key rotate {name}` to seal under a fresh version; for high volume \
             make a key with `tresor key create NAME --type xchacha20-poly1305`"
        ),
        _ => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_lists_every_exit_code() {
        let help = crate::cli::EXIT_CODES;
        for c in [
            ExitCode::Ok,
            ExitCode::NotFound,
            ExitCode::Usage,
            ExitCode::Locked,
            ExitCode::Integrity,
            ExitCode::Conflict,
            ExitCode::Unavailable,
        ] {
            let row = format!("\n  {}  ", c as u8);
            assert!(help.contains(&row), "{c:?} is missing from --help");
        }
    }

    #[test]
    fn remedies_name_the_flags_the_library_does_not() {
        let e = Error::Untrusted {
            path: "/p/tresor.toml".into(),
            changed: false,
        };
        assert_eq!(code(&e) as u8, 2);
        let h = hint(&e, Context::Secrets).expect("a hint");
        assert!(h.contains("tresor config trust /p/tresor.toml"), "{h}");
        let e = Error::SlotsUnavailable {
            slots: vec!["2 (keychain)".into()],
        };
        assert!(
            hint(&e, Context::Secrets)
                .unwrap()
                .contains("--drop-unavailable-slots")
        );
    }
}
