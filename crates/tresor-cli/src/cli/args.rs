//! The arguments of each command (the command tree itself is in `mod.rs`).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Args)]
pub struct KdfArgs {
    /// Argon2id memory for a password slot, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub kdf_memory: u32,
    /// Argon2id passes for a password slot.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub kdf_passes: u32,
    /// Argon2id lanes for a password slot.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub kdf_lanes: u32,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Protect the vault with a password (prompt, or TRESOR_PASSWORD without a terminal).
    #[arg(long, conflicts_with_all = ["keychain", "no_keychain"])]
    pub password: bool,
    /// Keep the vault's key in the OS keychain (fails when none answers).
    #[arg(long, conflicts_with = "no_keychain")]
    pub keychain: bool,
    /// Do not pick the OS keychain even when one answers: a password (prompt or
    /// TRESOR_PASSWORD) or TRESOR_KEY / TRESOR_KEY_FILE instead.
    #[arg(long)]
    pub no_keychain: bool,
    /// Do not add a recovery-key slot.
    #[arg(long)]
    pub no_recovery: bool,
    /// Write the recovery key to this file instead of printing it: a new 0600
    /// file renamed into place, its folder synced. An existing FIFO, device
    /// or folder at FILE is refused before the vault is made.
    #[arg(long, value_name = "FILE")]
    pub recovery_key_out: Option<PathBuf>,
    /// Succeed without changing anything when a vault already exists at the
    /// path (for scripts and setup commands that may run twice). The
    /// existing vault is not opened or checked.
    #[arg(long)]
    pub if_missing: bool,
    #[command(flatten)]
    pub kdf: KdfArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Encoding {
    /// The file's bytes are the value.
    Raw,
    /// The file holds base64 text of the value.
    Base64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Charset {
    /// A-Z a-z 0-9
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

impl From<Charset> for tresor::generate::Charset {
    fn from(c: Charset) -> Self {
        match c {
            Charset::Alnum => Self::Alnum,
            Charset::Alpha => Self::Alpha,
            Charset::Digits => Self::Digits,
            Charset::Hex => Self::Hex,
            Charset::Base64url => Self::Base64url,
            Charset::Ascii => Self::Ascii,
        }
    }
}

#[derive(Debug, Args)]
pub struct ValueArgs {
    /// Read the value from FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "generate")]
    pub file: Option<PathBuf>,
    /// How --file is encoded.
    #[arg(long, value_enum, default_value_t = Encoding::Raw, requires = "file")]
    pub encoding: Encoding,
    /// Generate a random value of LEN characters instead of reading one.
    #[arg(long, value_name = "LEN")]
    pub generate: Option<usize>,
    /// Characters for --generate.
    #[arg(long, value_enum, default_value_t = Charset::Alnum, requires = "generate")]
    pub charset: Charset,
    /// Keep a trailing newline of a value read from stdin (one is dropped by default).
    #[arg(long)]
    pub keep_newline: bool,
    /// Store an empty value (an empty stdin, file or entry is refused without it).
    #[arg(long)]
    pub allow_empty: bool,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The secret's name, e.g. openai/api_key.
    pub name: String,
    #[command(flatten)]
    pub value: ValueArgs,
    /// Why the change is made (kept in the version and the audit log).
    #[arg(long)]
    pub reason: Option<String>,
    /// Fail with exit code 5 unless the current version is N (0: must not exist).
    #[arg(long, value_name = "N")]
    pub expect_version: Option<u64>,
    /// Metadata to merge, KEY=VALUE (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The secret's name.
    pub name: String,
    /// Read this version number.
    #[arg(long, conflicts_with = "label")]
    pub version: Option<u64>,
    /// Read the version this label points at: current, previous or pending.
    #[arg(long)]
    pub label: Option<String>,
    /// Write the value to FILE instead of stdout: a new 0600 file renamed
    /// over FILE, its folder synced. An existing FIFO, device or folder at
    /// FILE is refused (exit 2), and so is a symbolic link (neither followed
    /// nor replaced).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only names starting with PREFIX.
    #[arg(default_value = "")]
    pub prefix: String,
    /// List soft-deleted secrets instead.
    #[arg(long)]
    pub deleted: bool,
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// The secret's name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct ReasonedName {
    /// The secret's name.
    pub name: String,
    /// Why (kept in the audit log).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The secret's name.
    pub name: String,
    #[command(flatten)]
    pub value: ValueArgs,
    /// Stage the new version as pending; `promote` makes it current.
    #[arg(long)]
    pub stage: bool,
    /// Why (kept in the version and the audit log).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The secret's name.
    pub name: String,
    /// The version to make current.
    pub version: u64,
    /// Why (kept in the audit log).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// The secret's name.
    pub name: String,
    /// Destroy every version for good instead of hiding the secret.
    #[arg(long)]
    pub purge: bool,
}

#[derive(Debug, Args)]
pub struct MetaArgs {
    /// The secret's name.
    pub name: String,
    /// KEY=VALUE to set, KEY= to remove; none to show.
    pub changes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// The password slot to change [default: the one that unlocked, or the only one].
    #[arg(long)]
    pub slot: Option<u32>,
    #[command(flatten)]
    pub kdf: KdfArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeyslotCommand {
    /// Add a slot: --password (prompt, or TRESOR_NEW_PASSWORD), --key-file FILE
    /// (created if missing), --keychain (32 random bytes kept in the OS keychain) or
    /// --pkcs11 (32 random bytes wrapped by a PKCS#11 token's AES-256 key).
    /// Unlock with another credential: TRESOR_KEY_FILE, TRESOR_KEY, TRESOR_PASSWORD or
    /// the prompt.
    ///
    /// --pkcs11 --module PATH --token LABEL --key-label L: logs in to the token with
    /// its user PIN (TRESOR_PKCS11_PIN, else a prompt), uses the AES-256 key labelled
    /// L, or makes one (sensitive, not extractable, kept on the token) when the token
    /// has none, and has the token encrypt the slot's key. Unlocking then needs the
    /// token and its PIN; the key never leaves the token. A vault file cannot be
    /// trusted to name the module, so tresor loads only modules in root-owned system
    /// folders or listed in `[pkcs11] modules` of your own config
    /// ($XDG_CONFIG_HOME/tresor/config.toml): PATH is added there (the file made
    /// 0600 if missing) unless it is a system library.
    Add(KeyslotAddArgs),
    /// List slots: id, kind, label, creation date, and KDF costs, keychain backend or
    /// PKCS#11 token and key.
    #[command(visible_alias = "ls")]
    List,
    /// Remove a slot (never the last slot that is not a recovery slot); removing a
    /// keychain slot deletes its keychain entry too. A PKCS#11 slot's token key is
    /// kept: it may wrap other slots.
    #[command(visible_alias = "rm")]
    Remove(KeyslotRemoveArgs),
}

#[derive(Debug, Args)]
pub struct KeyslotAddArgs {
    /// Add a password slot.
    #[arg(long, conflicts_with_all = ["keychain", "pkcs11"])]
    pub password: bool,
    /// Add an OS-keychain slot: its key goes to the Secret Service when one answers on
    /// DBUS_SESSION_BUS_ADDRESS, else to the kernel keyutils (or see --backend).
    #[arg(long, conflicts_with = "pkcs11")]
    pub keychain: bool,
    /// With --keychain: the keychain to use.
    #[arg(long, requires = "keychain", value_parser = ["secret-service", "keyutils"])]
    pub backend: Option<String>,
    /// Add a PKCS#11 slot (needs --module, --token and --key-label; the PIN comes
    /// from TRESOR_PKCS11_PIN or a prompt, never from the command line).
    #[arg(long)]
    pub pkcs11: bool,
    /// With --pkcs11: the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so.
    #[arg(long, value_name = "PATH", requires = "pkcs11")]
    pub module: Option<PathBuf>,
    /// With --pkcs11: the token's label.
    #[arg(long, value_name = "LABEL", requires = "pkcs11")]
    pub token: Option<String>,
    /// With --pkcs11: the label of the token's AES-256 key (made if the token has none).
    #[arg(long, value_name = "L", requires = "pkcs11")]
    pub key_label: Option<String>,
    /// A label for the slot.
    #[arg(long)]
    pub label: Option<String>,
    #[command(flatten)]
    pub kdf: KdfArgs,
}

#[derive(Debug, Args)]
pub struct KeyslotRemoveArgs {
    /// The slot id (see `keyslot list`).
    pub id: u32,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print audit entries, oldest first (--json: one JSON object per line).
    Log(AuditLogArgs),
    /// Recompute the MAC chain: any edited, removed or reordered entry shows, and so does a
    /// chain cut back to an older head once it no longer records a version or data key the
    /// vault holds; --anchor also finds a vault file rolled back to an older copy.
    Verify(crate::audit_cmd::AuditVerifyArgs),
    /// Print the chain's head (after checking the chain) as one line to keep outside the
    /// vault; `audit verify --anchor` checks it later (--json: its parts).
    Anchor(crate::audit_cmd::AuditAnchorArgs),
}

#[derive(Debug, Args)]
pub struct AuditLogArgs {
    /// Only entries about this secret.
    #[arg(long)]
    pub name: Option<String>,
    /// Only the last N entries.
    #[arg(long, short = 'n')]
    pub limit: Option<usize>,
    /// Keep only changes and failed unlocks: leave out reads (get, ls, history) and every
    /// use of a named key (key encrypt/decrypt/rewrap/list, and for age keys key recipient,
    /// encrypt --key, decrypt --key).
    #[arg(long)]
    pub writes_only: bool,
}

#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// Rewrite every record under the new data key and destroy the old keys.
    #[arg(long)]
    pub reencrypt: bool,
    /// Replace the master key (implies --reencrypt).
    #[arg(long)]
    pub master: bool,
    /// With --master: remove key slots no given credential opens.
    #[arg(long, requires = "master")]
    pub drop_unavailable_slots: bool,
    /// With --master: when the recovery slot is dropped, make a new recovery key.
    #[arg(long, requires = "master")]
    pub new_recovery_key: bool,
}

#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// KEY=VALUE to change; none to show.
    pub changes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}
