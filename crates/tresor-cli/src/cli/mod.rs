//! Command-line arguments, as the user types them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod args;

pub use args::*;

pub(crate) const EXIT_CODES: &str = "\
Exit codes:
  0  ok
  1  not found (a soft-deleted secret is not found)
  2  usage or invalid input (bad name, value too large, bad flags)
  3  locked, or wrong password or key
  4  integrity failure (tampered or corrupt vault, broken audit chain)
  5  conflict (--expect-version did not match)
  6  unavailable (I/O error, lock timeout: see TRESOR_LOCK_TIMEOUT; a reader
     that closed the pipe before all of the data was written)

Unlocking, first found wins:
  --key-file FILE / TRESOR_KEY_FILE   a key file (base64 of 32 random bytes; a
                                      regular file of yours, mode 0600 or 0400)
  TRESOR_KEY                          the same text in a variable (a password goes
                                      in TRESOR_PASSWORD)
  TRESOR_PASSWORD                     a password (KEYSTORE_PASSWORD and
                                      SECRETS_STORE_PASSWORD are read too)
  TRESOR_RECOVERY_KEY                 the recovery key shown at init
  a keychain slot                     its entry in the Secret Service or keyutils
  an unlock session                   started by `tresor unlock` (see `tresor status`)
  a PKCS#11 slot                      the token's PIN from TRESOR_PKCS11_PIN, or a
                                      hidden prompt on a terminal (empty: skip);
                                      its module is loaded only when listed in
                                      [pkcs11] modules of ~/.config/tresor/
                                      config.toml or a root-owned system library
  a hidden password prompt            only when a terminal is attached

New passwords (init, passwd, keyslot add --password):
  TRESOR_NEW_PASSWORD                 the new password when there is no terminal
                                      (init also reads TRESOR_PASSWORD); typed or
                                      not, one below strength 3 of 4 (zxcvbn) is
                                      refused unless --weak-password

Values never go on the command line: they come from a prompt, stdin, a file
(--file) or a generator (--generate).

Pipes: data (get's value, key encrypt/decrypt/rewrap's envelope, encrypt and
decrypt's output) whose reader stops early is an error, exit 6: it arrived
incomplete. Listings and reports (ls, history, audit log, keyslot list,
completions, …) may be cut short (`| head`) and exit 0.";

/// tresor keeps secrets encrypted, versioned and audited in a local vault,
/// and hands them to programs.
#[derive(Debug, Parser)]
#[command(name = "tresor", version, about, after_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// The options every command takes (before or after its name).
#[derive(Debug, Default, Args)]
pub struct GlobalArgs {
    /// The vault file [default: $XDG_DATA_HOME/tresor/vault.db].
    #[arg(long, global = true, env = "TRESOR_VAULT", value_name = "PATH")]
    pub vault: Option<PathBuf>,

    /// Unlock with this key file (TRESOR_KEY_FILE also works). For `init` and
    /// `keyslot add`, the file is created if it does not exist.
    #[arg(long, global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// The config file listing the stores [default: TRESOR_CONFIG, else ./tresor.toml, else
    /// $XDG_CONFIG_HOME/tresor/config.toml]. Without one, the only store is the vault.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Use this profile of the config: its own set of stores (TRESOR_PROFILE also works).
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,

    /// Ask (get, ls, history, rm, …) or write (set, rotate) only this store of the config.
    #[arg(long, global = true, value_name = "NAME")]
    pub store: Option<String>,

    /// Contact no remote store (openbao, aws, azure): those with `cache = true` answer from
    /// their offline copies in the local vault, the others are skipped.
    #[arg(long, global = true)]
    pub offline: bool,

    /// Use no offline copy older than AGE (e.g. 90s, 30m, 12h, 7d).
    #[arg(long, global = true, value_name = "AGE")]
    pub max_age: Option<String>,

    /// Print machine-readable JSON on stdout (errors as JSON on stderr).
    #[arg(long, global = true)]
    pub json: bool,

    /// Print nothing but requested data and errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

impl Cli {
    /// Parses the process's arguments. `tresor get NAME`, the command
    /// programs run most, is parsed without building clap's full tree of
    /// every command (and copying the global options into each), which was
    /// most of the start-up time of a `tresor get` process: first by
    /// [`Cli::parse_plain_get`], then by a clap command holding only the
    /// global options and `get`. Anything neither accepts as it stands —
    /// help, `--version`, another command, a mistake — goes through the
    /// full parser, which gives the answer and the error messages users see.
    ///
    /// `args` are the process's arguments, the program name first (main.rs
    /// takes them from C's `argv`, or from `std::env::args_os`).
    pub fn parse_args_from(args: Vec<std::ffi::OsString>) -> Result<Self, clap::Error> {
        if let Some(cli) = Self::parse_plain_get(&args) {
            return Ok(cli);
        }
        if let Some(cli) = Self::parse_plain_run(&args) {
            return Ok(cli);
        }
        if let Some(cli) = Self::parse_get(&args) {
            return Ok(cli);
        }
        Self::try_parse_from(args)
    }

    /// `tresor [--vault P] [--key-file F] [other global options] get NAME
    /// [--version N | --label L] [--out F]` in its plainest spelling (each
    /// option once, its value as the next argument), recognised without
    /// clap: even the narrow clap command costs a tenth of a millisecond
    /// to build. Every other spelling (`--vault=P`, `-oF`, `--`, repeats,
    /// values that look like options, text that is not UTF-8, …) is
    /// declined and left to clap. A test checks, on every arrangement of a
    /// vocabulary of arguments, that an accepted line parses exactly as
    /// clap parses it.
    pub(crate) fn parse_plain_get(args: &[std::ffi::OsString]) -> Option<Self> {
        let mut global = PlainGlobal::default();
        let (mut seen_get, mut name, mut version, mut label, mut out) =
            (false, None, None, None, None);
        let mut rest = args.iter().skip(1);
        while let Some(arg) = rest.next() {
            let arg = arg.to_str()?;
            if global.take(arg, &mut rest)? {
                continue;
            }
            match arg {
                "get" if !seen_get => seen_get = true,
                "--version" if seen_get => {
                    let v = plain_value(&mut rest)?;
                    if !v.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    plain_once(&mut version, v.parse::<u64>().ok()?)?
                }
                "--label" if seen_get => plain_once(&mut label, plain_value(&mut rest)?)?,
                "--out" | "-o" if seen_get => {
                    plain_once(&mut out, PathBuf::from(plain_value(&mut rest)?))?
                }
                _ if seen_get && !arg.is_empty() && !arg.starts_with('-') => {
                    plain_once(&mut name, arg.to_string())?
                }
                _ => return None,
            }
        }
        if version.is_some() && label.is_some() {
            return None;
        }
        Some(Self {
            global: global.finish()?,
            command: Command::Get(GetArgs {
                name: name?,
                version,
                label,
                out,
            }),
        })
    }

    /// `tresor [global options] run [--env V=N] [--file V=N] [--prefix P]
    /// [--no-declared] [--redact] [--] CMD [ARGS…]` in its plainest
    /// spelling, recognised without clap, as [`Cli::parse_plain_get`] does
    /// for `get`: `run` starts a program, so clap's parse (a millisecond of
    /// building every command's definition) was most of what `tresor run`
    /// adds to the program's own start. The command's words are taken as
    /// they are, whatever they look like. Anything else goes to clap, and a
    /// test checks on every arrangement of a vocabulary of arguments that an
    /// accepted line parses exactly as clap parses it.
    pub(crate) fn parse_plain_run(args: &[std::ffi::OsString]) -> Option<Self> {
        let mut global = PlainGlobal::default();
        let mut seen_run = false;
        let (mut env, mut file, mut prefix) = (Vec::new(), Vec::new(), Vec::new());
        let (mut no_declared, mut redact) = (false, false);
        let mut rest = args.iter().skip(1);
        let command: Vec<std::ffi::OsString> = loop {
            let raw = rest.next()?;
            if seen_run && raw == "--" {
                let command: Vec<_> = rest.cloned().collect();
                // `-- --` and the like: clap's reading decides.
                if command
                    .first()
                    .is_none_or(|c| c.as_encoded_bytes().starts_with(b"-"))
                {
                    return None;
                }
                break command;
            }
            let arg = raw.to_str()?;
            if global.take(arg, &mut rest)? {
                continue;
            }
            match arg {
                "run" if !seen_run => seen_run = true,
                "--env" if seen_run => env.push(plain_value(&mut rest)?),
                "--file" if seen_run => file.push(plain_value(&mut rest)?),
                "--prefix" if seen_run => prefix.push(plain_value(&mut rest)?),
                "--no-declared" if seen_run => plain_flag(&mut no_declared)?,
                "--redact" if seen_run => plain_flag(&mut redact)?,
                _ if seen_run && !arg.is_empty() && !arg.starts_with('-') => {
                    break std::iter::once(raw).chain(rest).cloned().collect();
                }
                _ => return None,
            }
        };
        Some(Self {
            global: global.finish()?,
            command: Command::Run(crate::run_cmd::RunArgs {
                env,
                file,
                prefix,
                no_declared,
                redact,
                command,
            }),
        })
    }

    /// The narrow parse of `tresor [global options] get …`, or `None` when
    /// the full parser has to decide.
    pub(crate) fn parse_get(args: &[std::ffi::OsString]) -> Option<Self> {
        // The narrow parse costs little, but only a `get` can succeed.
        if !args.iter().skip(1).any(|a| a == "get") {
            return None;
        }
        let parsed = GetOnly::try_parse_from(args).ok()?;
        let GetOnlyCommand::Get(get) = parsed.command;
        Some(Self {
            global: parsed.global,
            command: Command::Get(get),
        })
    }
}

/// The global options of a plain parse ([`Cli::parse_plain_get`],
/// [`Cli::parse_plain_run`]): each given once, its value the next argument.
#[derive(Default)]
struct PlainGlobal(GlobalArgs);

impl PlainGlobal {
    /// Takes `arg` when it is a global option (its value from `rest`):
    /// `Some(true)`; `Some(false)` when it is not one; `None` when it is
    /// one spelled in a way left to clap (repeated, a missing value).
    fn take<'a>(
        &mut self,
        arg: &str,
        rest: &mut impl Iterator<Item = &'a std::ffi::OsString>,
    ) -> Option<bool> {
        let g = &mut self.0;
        match arg {
            "--vault" => plain_once(&mut g.vault, PathBuf::from(plain_value(rest)?))?,
            "--key-file" => plain_once(&mut g.key_file, PathBuf::from(plain_value(rest)?))?,
            "--config" => plain_once(&mut g.config, PathBuf::from(plain_value(rest)?))?,
            "--profile" => plain_once(&mut g.profile, plain_value(rest)?)?,
            "--store" => plain_once(&mut g.store, plain_value(rest)?)?,
            "--max-age" => plain_once(&mut g.max_age, plain_value(rest)?)?,
            "--offline" => plain_flag(&mut g.offline)?,
            "--json" => plain_flag(&mut g.json)?,
            "--quiet" | "-q" => plain_flag(&mut g.quiet)?,
            _ => return Some(false),
        }
        Some(true)
    }

    /// The options, with `--vault` from TRESOR_VAULT when not given (as
    /// clap's `env = "TRESOR_VAULT"`; unusual values are left to clap).
    fn finish(self) -> Option<GlobalArgs> {
        let mut global = self.0;
        if global.vault.is_none()
            && let Some(v) = std::env::var_os("TRESOR_VAULT")
        {
            let v = v.into_string().ok()?;
            if v.is_empty() {
                return None;
            }
            global.vault = Some(PathBuf::from(v));
        }
        Some(global)
    }
}

/// Sets an option given once; `None` (left to clap) the second time.
fn plain_once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

/// Sets a flag given once; `None` (left to clap) the second time.
fn plain_flag(slot: &mut bool) -> Option<()> {
    if *slot {
        return None;
    }
    *slot = true;
    Some(())
}

/// An option's value: the next argument, when it is UTF-8, not empty and
/// does not look like an option (clap would read those differently).
fn plain_value<'a>(rest: &mut impl Iterator<Item = &'a std::ffi::OsString>) -> Option<String> {
    let v = rest.next()?.to_str()?;
    (!v.is_empty() && !v.starts_with('-')).then(|| v.to_string())
}

/// The narrow command of [`Cli::parse_get`]: the global options and `get`,
/// with the same argument definitions as the full command.
#[derive(Debug, Parser)]
#[command(name = "tresor", disable_help_subcommand = true)]
struct GetOnly {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(subcommand)]
    command: GetOnlyCommand,
}

#[derive(Debug, Subcommand)]
enum GetOnlyCommand {
    Get(GetArgs),
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new vault.
    ///
    /// The first key slot is, in order: --password (prompt or TRESOR_PASSWORD), --key-file
    /// FILE / TRESOR_KEY_FILE (created if missing), --keychain, TRESOR_KEY or TRESOR_PASSWORD
    /// when set, an OS keychain when one answers (Secret Service, else kernel keyutils;
    /// --no-keychain skips it), else a password prompt on a terminal. A recovery key is
    /// shown once: store it offline.
    ///
    /// A new password comes from TRESOR_NEW_PASSWORD (or TRESOR_PASSWORD) without a
    /// terminal; typed or not, one below strength 3 of 4 (zxcvbn) is refused, saying why,
    /// unless --weak-password.
    Init(InitArgs),
    /// Store a new version of a secret (value from a prompt, stdin, --file or --generate).
    Set(SetArgs),
    /// Print a secret's value (the current version unless --version or --label).
    Get(GetArgs),
    /// List secrets, optionally under a name prefix.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show every version of a secret, without values.
    History(HistoryArgs),
    /// Write a new version (like set), or stage it as pending with --stage.
    Rotate(RotateArgs),
    /// Make the pending version current.
    Promote(ReasonedName),
    /// Point `current` back at an earlier version; history is kept.
    Rollback(RollbackArgs),
    /// Delete a secret: hidden until `undelete`, or destroyed with --purge.
    #[command(visible_alias = "delete")]
    Rm(RmArgs),
    /// Restore a soft-deleted secret.
    Undelete(NameArg),
    /// Show or change a secret's metadata: KEY=VALUE sets, KEY= removes.
    Meta(MetaArgs),
    /// Change the password of a password slot.
    ///
    /// Unlock with the current credential (TRESOR_PASSWORD, a key file, … or the prompt);
    /// the new password comes from TRESOR_NEW_PASSWORD, else a hidden prompt asked twice.
    /// One below strength 3 of 4 (zxcvbn) is refused, saying why, unless --weak-password.
    Passwd(PasswdArgs),
    /// Manage key slots: any slot unlocks the vault.
    #[command(subcommand)]
    Keyslot(KeyslotCommand),
    /// Named encryption keys for applications: envelopes that carry their key's
    /// name and version (create, list, rotate, config, delete, encrypt, decrypt, rewrap),
    /// and age identities for files (create --type age, recipient).
    #[command(subcommand)]
    Key(crate::keys_cmd::KeyCommand),
    /// Encrypt a file in the age v1 format to age recipients (-r, -R), the vault's age key
    /// (--key) or a passphrase, on every core; stock `age -d` decrypts it.
    Encrypt(crate::files_cmd::EncryptArgs),
    /// Decrypt an age v1 file with age identity files (-i), the vault's age key (--key) or a
    /// passphrase; output is written only when the whole file authenticated.
    Decrypt(crate::files_cmd::DecryptArgs),
    /// Bring secrets in from the files they live in now (legacy JSON config, Fernet file,
    /// dtPyAppFramework keystore or secrets.yaml, JSON, dotenv, env-map): all or nothing,
    /// counted per provider or prefix.
    Import(crate::import_cmd::ImportArgs),
    /// Take secrets out: metadata only by default; values only in an age-encrypted bundle
    /// (`import bundle` reads it back), a dtPyAppFramework keystore, or with --plaintext.
    Export(crate::import_cmd::ExportArgs),
    /// Read or check the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Decrypt every record and check the audit chain.
    Verify,
    /// Show or change vault settings: audit_reads, max_versions, max_value_len.
    Settings(SettingsArgs),
    /// Rotate the vault's own keys: a new data key for new writes; with
    /// --reencrypt every record rewritten under it and the old keys destroyed;
    /// with --master a new master key too, every key slot rewrapped.
    ///
    /// --master rewraps each slot with its own credential: the one that unlocked, plus
    /// TRESOR_KEY_FILE / --key-file, TRESOR_KEY, TRESOR_PASSWORD and TRESOR_RECOVERY_KEY when
    /// set. Slots without a credential are listed and left alone unless
    /// --drop-unavailable-slots removes them. Each rotation is one transaction.
    Rekey(RekeyArgs),
    /// Unlock the vault once and keep it unlocked for this user until the session
    /// expires: later commands use the session before asking for a password.
    ///
    /// The master key is kept in the kernel user keyring with a timeout, or, where the
    /// kernel keyring refuses, by a `tresor agent` process on a socket only this user can
    /// reach. The session ends after --idle without a use or at --for, whichever comes
    /// first; `tresor lock` ends it now. `tresor unlock` always asks for a credential
    /// (the environment, a keychain slot or the prompt), never an existing session.
    Unlock(crate::session_cmd::UnlockArgs),
    /// End the vault's unlock session: the kernel key is revoked, or the agent wipes the
    /// key and exits.
    Lock,
    /// Show how the vault unlocks now: its unlock session (backend, how it was unlocked,
    /// expiry, idle deadline), else the credential the unlock chain would use (a key file,
    /// a variable, a keychain slot, a prompt), without unlocking or extending anything.
    Status,
    /// The unlock-session agent. Started by `tresor unlock` (with --agent, or when the
    /// kernel keyring is unavailable), which hands it the key on stdin; not run by hand.
    Agent,
    /// List the stores of the config, in the order reads ask them: name, kind, priority,
    /// read-only, required, cache, and whether each is available now.
    Stores,
    /// Check every store: reachable, authenticated, a write/read/delete probe on a scratch
    /// name (always removed; skipped for read-only stores), latency.
    ///
    /// Exits with 6 when a required store is unhealthy.
    Doctor,
    /// Inspect the config file (tresor.toml), and approve project configs (trust).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Find stored secrets' values (also encoded) and known tokens in files, the git index
    /// (--staged) or recent commits (--history N); exit 1 on a finding.
    #[command(long_about = crate::scan_cmd::SCAN_HELP)]
    Scan(crate::scan_cmd::ScanArgs),
    /// Copy secrets from one store to another, verified, with rollback and resumable runs.
    Migrate(crate::move_cmd::MigrateArgs),
    /// Bring two stores in step (three-way, from the state of their last sync).
    Sync(crate::move_cmd::SyncArgs),
    /// Print a shell completion script.
    ///
    /// The script is the output with or without --json (there is nothing to put in JSON);
    /// a usage error, such as an unknown shell, is a JSON object on stderr with --json, as
    /// for every command. A reader that stops early (`| head`) is not an error.
    Completions(CompletionsArgs),
    /// Run a program with secrets in its environment (or in files), and exit with its code.
    #[command(long_about = crate::run_cmd::RUN_HELP, after_help = crate::run_cmd::RUN_AFTER)]
    Run(crate::run_cmd::RunArgs),
    /// Check that the secrets declared in tresor.toml are present and valid (--fix fills in
    /// missing ones).
    #[command(long_about = crate::manager_cmd::use_cmd::CHECK_HELP)]
    Check(crate::manager_cmd::use_cmd::CheckArgs),
    /// Resolve SEC/ and ENV/ references in a YAML, TOML or JSON file.
    #[command(long_about = crate::manager_cmd::use_cmd::RENDER_HELP)]
    Render(crate::manager_cmd::use_cmd::RenderArgs),
    /// Fill {{ SEC/name }} placeholders in a template (stdin to stdout).
    #[command(long_about = crate::manager_cmd::use_cmd::INJECT_HELP)]
    Inject(crate::manager_cmd::use_cmd::InjectArgs),
    /// Print the declared secrets as shell assignments (eval, direnv, fish, .env, JSON).
    #[command(long_about = crate::manager_cmd::use_cmd::ENV_HELP)]
    Env(crate::manager_cmd::use_cmd::EnvArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Report every problem in the config with its file, line and column: unknown keys,
    /// kinds and options, duplicate names, bad priorities, profiles naming missing stores,
    /// ENV/ and SEC/ references that do not resolve. Exits with 2 on any problem.
    Check,
    /// Print which config file is in effect, how it was found, whether it is trusted, and
    /// the profile.
    Path,
    /// Approve a project config (./tresor.toml) so tresor uses it.
    #[command(long_about = crate::trust_cmd::TRUST_HELP)]
    Trust(crate::trust_cmd::TrustArgs),
    /// Withdraw the approval of a project config: tresor stops using it.
    Untrust(crate::trust_cmd::UntrustArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn argv(line: &[&str]) -> Vec<std::ffi::OsString> {
        std::iter::once("tresor")
            .chain(line.iter().copied())
            .map(Into::into)
            .collect()
    }

    /// The narrow parse of `get` either declines or agrees with the full
    /// parser, field for field.
    #[test]
    fn narrow_get_parse_agrees_with_the_full_parser() {
        let lines: &[&[&str]] = &[
            &["get", "a/b"],
            &["get", "a/b", "--version", "3"],
            &["get", "a/b", "--label", "previous"],
            &["get", "a/b", "--version", "3", "--label", "current"],
            &["get", "a/b", "-o", "out.bin"],
            &["get", "a/b", "--out=out.bin", "--json", "-q"],
            &["--vault", "v.db", "--key-file", "k", "get", "x"],
            &["get", "x", "--vault", "v.db", "--key-file=k"],
            &["--json", "--offline", "--max-age", "5m", "get", "x"],
            &[
                "--store",
                "team",
                "--profile",
                "prod",
                "--config",
                "c.toml",
                "get",
                "x",
            ],
            &["--vault", "get", "get", "get"],
            &["get", "help"],
            &["get", "--", "-dash"],
            &["get"],
            &["get", "a", "b"],
            &["get", "a", "--bogus"],
            &["get", "a", "--version"],
            &["get", "--help"],
            &["get", "-h"],
            &["help", "get"],
            &["--version", "get", "x"],
            &["-V", "get", "x"],
            &["set", "get"],
            &["ls", "get"],
            &["history", "get"],
            &["keyslot", "list", "get"],
            &["get", "a", "--version", "notanumber"],
            &["get", "a", "--quiet", "--quiet"],
        ];
        let mut narrow_hits = 0;
        for line in lines {
            let args = argv(line);
            let full = Cli::try_parse_from(args.clone());
            match Cli::parse_get(&args) {
                None => {}
                Some(narrow) => {
                    narrow_hits += 1;
                    let full = full.unwrap_or_else(|e| {
                        panic!("{line:?}: narrow parse accepted what the full parser refuses: {e}")
                    });
                    assert_eq!(format!("{narrow:?}"), format!("{full:?}"), "{line:?}");
                }
            }
            // And the public entry point always answers as the full parser does.
            match (
                Cli::parse_args_from(args.clone()),
                Cli::try_parse_from(args),
            ) {
                (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{line:?}"),
                (Err(a), Err(b)) => {
                    assert_eq!(a.kind(), b.kind(), "{line:?}");
                    assert_eq!(a.to_string(), b.to_string(), "{line:?}");
                }
                (a, b) => panic!("{line:?}: {a:?} vs {b:?}"),
            }
        }
        for line in lines {
            let args = argv(line);
            if let Some(plain) = Cli::parse_plain_get(&args) {
                let full = Cli::try_parse_from(args).unwrap_or_else(|e| {
                    panic!("{line:?}: the plain parse accepted what clap refuses: {e}")
                });
                assert_eq!(format!("{plain:?}"), format!("{full:?}"), "{line:?}");
            }
        }
        assert!(
            Cli::parse_plain_get(&argv(&["--vault", "v.db", "get", "a/b", "--version", "3"]))
                .is_some()
        );
        // The fast path is taken for the plain forms.
        assert!(
            narrow_hits >= 10,
            "only {narrow_hits} lines took the narrow parse"
        );
        assert!(Cli::parse_get(&argv(&["get", "a/b"])).is_some());
        assert!(Cli::parse_get(&argv(&["get", "--help"])).is_none());
        assert!(Cli::parse_get(&argv(&["--version"])).is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        /// Any arrangement of these arguments: the plain parse of `get`
        /// declines, or agrees with clap.
        #[test]
        fn plain_get_parse_agrees_with_clap(
            line in proptest::collection::vec(proptest::sample::select(vec![
                "get", "get", "get", "a/b", "x", "--vault", "v.db", "--key-file", "k",
                "--config", "c.toml", "--profile", "p", "--store", "s", "--max-age", "5m",
                "--offline", "--json", "--quiet", "-q", "--version", "3", "+3", "007",
                "--label", "previous", "--out", "-o", "o.bin", "--", "-x", "", "help",
                "--help", "-V", "ls", "--vault=v2", "-oz", "18446744073709551616",
            ]), 0..9)
        ) {
            let args = argv(&line);
            if let Some(plain) = Cli::parse_plain_get(&args) {
                let full = Cli::try_parse_from(args);
                proptest::prop_assert!(full.is_ok(), "{:?}: clap refuses: {:?}", line, full.err());
                proptest::prop_assert_eq!(format!("{plain:?}"), format!("{:?}", full.unwrap()));
            }
        }
    }

    /// The plain parse of `run` takes the plain forms, and what it takes
    /// parses exactly as clap parses it.
    #[test]
    fn plain_run_parse_agrees_with_clap() {
        let taken: &[&[&str]] = &[
            &["run", "--", "true"],
            &["run", "true"],
            &["--config", "c.toml", "run", "--", "true"],
            &[
                "run",
                "--env",
                "A=db/pass",
                "--file",
                "F=tls/key",
                "--",
                "sh",
                "-c",
                "x",
            ],
            &[
                "run", "--prefix", "app/", "--prefix", "db/", "--redact", "--", "cat",
            ],
            &[
                "--vault",
                "v.db",
                "run",
                "--no-declared",
                "--json",
                "-q",
                "--",
                "env",
            ],
            &["run", "--", "prog", "--", "--env", "-x", ""],
            &["run", "prog", "--vault", "w.db", "--help"],
            &[
                "run",
                "--store",
                "s",
                "--offline",
                "--max-age",
                "5m",
                "--",
                "x",
            ],
            &["run", "run", "--", "x"],
        ];
        for line in taken {
            let args = argv(line);
            let plain = Cli::parse_plain_run(&args)
                .unwrap_or_else(|| panic!("{line:?}: the plain parse declined"));
            let full = Cli::try_parse_from(args).unwrap();
            assert_eq!(format!("{plain:?}"), format!("{full:?}"), "{line:?}");
        }
        let declined: &[&[&str]] = &[
            &["run"],
            &["run", "--"],
            &["run", "--", "--", "x"],
            &["run", "--", "-x"],
            &["run", "-x"],
            &["run", "--env=A=b", "--", "x"],
            &["run", "--env", "--", "x"],
            &["run", "--redact", "--redact", "--", "x"],
            &["run", "--help"],
            &["--help", "run", "--", "x"],
            &["help", "run"],
            &["run", "--version", "--", "x"],
            &["get", "run", "--", "x"],
            &["--vault", "a", "--vault", "b", "run", "x"],
        ];
        for line in declined {
            assert!(
                Cli::parse_plain_run(&argv(line)).is_none(),
                "{line:?}: the plain parse took it"
            );
        }
        // A command's words need not be UTF-8.
        let mut args = argv(&["run", "--", "printf"]);
        args.push(std::os::unix::ffi::OsStringExt::from_vec(vec![0xff, b'%']));
        let plain = Cli::parse_plain_run(&args).unwrap();
        let full = Cli::try_parse_from(args).unwrap();
        assert_eq!(format!("{plain:?}"), format!("{full:?}"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        /// Any arrangement of these arguments: the plain parse of `run`
        /// declines, or agrees with clap.
        #[test]
        fn plain_run_parse_agrees_with_clap_on_any_line(
            line in proptest::collection::vec(proptest::sample::select(vec![
                "run", "run", "run", "--", "--", "true", "sh", "-c", "x", "A=b", "--env",
                "--file", "--prefix", "--no-declared", "--redact", "--vault", "v.db",
                "--key-file", "k", "--config", "--profile", "p", "--store", "--max-age",
                "--offline", "--json", "--quiet", "-q", "--version", "-V", "--help", "-h",
                "help", "", "--env=A=b", "-x", "get", "ls",
            ]), 0..10)
        ) {
            let args = argv(&line);
            if let Some(plain) = Cli::parse_plain_run(&args) {
                let full = Cli::try_parse_from(args);
                proptest::prop_assert!(full.is_ok(), "{:?}: clap refuses: {:?}", line, full.err());
                proptest::prop_assert_eq!(format!("{plain:?}"), format!("{:?}", full.unwrap()));
            }
        }
    }

    /// Both commands are well formed (clap's own consistency checks).
    #[test]
    fn commands_are_consistent() {
        Cli::command().debug_assert();
        GetOnly::command().debug_assert();
    }
}
