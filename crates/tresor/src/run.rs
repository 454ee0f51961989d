//! Running a program with secrets (`tresor run`).
//!
//! A [`Plan`] says which secret goes to which environment variable, and
//! whether as its value or as the path of a file holding it. [`Plan::fetch`]
//! reads every value through the manager before anything starts: a missing
//! required secret fails there, naming the variable and the secret, and no
//! program runs. [`launch`] then starts the program and waits for it:
//!
//! - **Environment.** The program inherits this process's environment, with
//!   each planned variable set (replacing an inherited one of that name).
//!   The values never appear in any process's arguments.
//! - **Files.** A value delivered as a file ([`Delivery::File`]) is written
//!   to a 0600 file in a private 0700 folder
//!   (`tresor-run-PID-RANDOM`), made on a memory-backed filesystem where
//!   one exists: `$XDG_RUNTIME_DIR` when it is one, else `/dev/shm`, else
//!   the temporary folder (and [`Launched::folder_in_memory`] says so).
//!   The variable holds the file's path. The folder is removed when the
//!   program exits, also when this process is told to stop by a signal
//!   (the signal is passed on and the folder removed once the program
//!   ends); one left by a process killed outright (SIGKILL) is removed by
//!   the next [`launch`] ([`remove_leftover_folders`]).
//! - **Signals.** SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and
//!   SIGWINCH sent to this process are passed on to the program, and do
//!   not end this process: it ends when the program does. The program stays
//!   in this process's process group, so a terminal's own signals (Ctrl-C,
//!   Ctrl-\, a resize, a hang-up, Ctrl-Z and `fg`) reach both directly;
//!   those (the kernel's, `si_code == SI_KERNEL`) are not passed on a
//!   second time. Signals this process ignored when it started (`nohup`)
//!   stay ignored, for the program too.
//! - **Exit.** [`Exit::code`] is the program's exit code, or 128+N when
//!   signal N ended it, as shells report it.
//! - **Redaction.** With [`Options::redact`], the program's stdout and
//!   stderr are pipes through [`crate::redact`]: each delivered value, and
//!   its encoded forms, comes out as `[redacted:NAME]`.
//!
//! The program also inherits this process's core-dump limit: the `tresor`
//! command turns core dumps off before it reads a secret, and a program
//! holding the same secrets keeps them off.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use tresor_core::{Error, Result, SecretName, SecretValue, Selector};

use crate::Tresor;

mod child;
mod folder;
mod names;
mod pump;
#[cfg(test)]
mod tests;

pub use folder::{FOLDER_PREFIX, remove_leftover_folders};
pub use names::{check_variable, variable_for};

/// How a value reaches the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The variable holds the value.
    Env,
    /// The variable holds the path of a 0600 file holding the value.
    File,
}

/// One secret for the program.
#[derive(Clone, Debug)]
pub struct Item {
    /// The environment variable.
    pub variable: String,
    /// The secret.
    pub name: SecretName,
    /// As the value or as a file.
    pub delivery: Delivery,
    /// Whether a missing secret stops the run (otherwise the variable is
    /// left as inherited, or set to `default`).
    pub required: bool,
    /// A value that is not secret, used when no store has the secret
    /// (declared secrets' `default`).
    pub default: Option<String>,
}

/// Which secrets go to which variables. Variables are unique: a second
/// item for a variable already planned is an error.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    items: Vec<Item>,
}

/// A value fetched for the program.
pub struct Fetched {
    /// The environment variable.
    pub variable: String,
    /// The secret's name (shown by redaction).
    pub name: SecretName,
    /// As the value or as a file.
    pub delivery: Delivery,
    /// The value.
    pub value: SecretValue,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("variable", &self.variable)
            .field("name", &self.name)
            .field("delivery", &self.delivery)
            .field("value", &self.value)
            .finish()
    }
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// The planned items, in order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// Adds `item`; a variable planned twice, or a name that cannot be an
    /// environment variable, is an error.
    pub fn add(&mut self, item: Item) -> Result<()> {
        check_variable(&item.variable)?;
        if let Some(other) = self.items.iter().find(|i| i.variable == item.variable) {
            return Err(Error::Validation(format!(
                "{} is given twice: for '{}' and for '{}'",
                item.variable, other.name, item.name
            )));
        }
        self.items.push(item);
        Ok(())
    }

    /// Adds every secret under `prefix` (as `tresor ls` lists them, through
    /// all stores), each in the variable [`variable_for`] derives from the
    /// rest of its name, delivered as `delivery`. Two names that give the
    /// same variable, or a variable already planned, are an error. Returns
    /// how many were added.
    pub fn add_prefix(
        &mut self,
        tresor: &mut Tresor,
        prefix: &str,
        delivery: Delivery,
    ) -> Result<usize> {
        let prefix = names::normalize_prefix(prefix);
        let listing = tresor.list(&prefix)?;
        let mut added = 0;
        for entry in listing.entries {
            let variable = variable_for(&prefix, &entry.info.name)?;
            self.add(Item {
                variable,
                name: entry.info.name,
                delivery,
                required: true,
                default: None,
            })?;
            added += 1;
        }
        Ok(added)
    }

    /// Adds the declared secrets (`[secrets]` of `tresor.toml`, see
    /// [`Tresor::declared`]) whose variable is not planned yet: a variable
    /// given explicitly wins over its declaration. Returns how many were
    /// added.
    pub fn add_declared(&mut self, declared: &[crate::declared::Declared]) -> Result<usize> {
        let mut added = 0;
        for d in declared {
            if self.items.iter().any(|i| i.variable == d.var) {
                continue;
            }
            self.add(Item {
                variable: d.var.clone(),
                name: d.name.clone(),
                delivery: if d.as_file {
                    Delivery::File
                } else {
                    Delivery::Env
                },
                required: d.required,
                default: d.default.clone(),
            })?;
            added += 1;
        }
        Ok(added)
    }

    /// Reads every planned value through the manager before anything
    /// starts (with several remote stores, each is asked for all names at
    /// once: [`Tresor::get_many`]), in plan order. Required secrets that no
    /// store has fail together, naming each variable and secret; a missing
    /// optional one takes its default, or is left out.
    pub fn fetch(&self, tresor: &mut Tresor) -> Result<Vec<Fetched>> {
        let requests: Vec<_> = self
            .items
            .iter()
            .map(|i| (i.name.clone(), Selector::default()))
            .collect();
        let answers = tresor.get_many(&requests);
        let mut out = Vec::with_capacity(self.items.len());
        let mut missing = Vec::new();
        let mut store = String::new();
        for (item, answer) in self.items.iter().zip(answers) {
            let value = match answer {
                Ok(found) => found.secret.value,
                Err(Error::NotFound { store: s, .. }) | Err(Error::Deleted { store: s, .. }) => {
                    match &item.default {
                        Some(text) => SecretValue::copy_from(text.as_bytes()),
                        None if item.required => {
                            missing.push(format!("'{}' (for {})", item.name, item.variable));
                            store = s;
                            continue;
                        }
                        None => continue,
                    }
                }
                Err(e) => return Err(e),
            };
            out.push(Fetched {
                variable: item.variable.clone(),
                name: item.name.clone(),
                delivery: item.delivery,
                value,
            });
        }
        if !missing.is_empty() {
            return Err(Error::NotFound {
                store,
                what: missing.join(", "),
            });
        }
        Ok(out)
    }
}

/// How [`launch`] runs the program.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Pass stdout and stderr through [`crate::redact`].
    pub redact: bool,
}

/// How the program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(u8),
    /// Signal N ended it.
    Signal(i32),
}

impl Exit {
    /// The exit code a shell reports: the code, or 128+N for signal N.
    pub fn code(self) -> u8 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(n) => u8::try_from(128 + n).unwrap_or(255),
        }
    }
}

/// What happened around the program, for the caller to report.
#[derive(Debug)]
pub struct Launched {
    /// How the program ended.
    pub exit: Exit,
    /// Where files were written, when any were.
    pub folder: Option<PathBuf>,
    /// Whether that folder is on a memory-backed filesystem.
    pub folder_in_memory: bool,
    /// Leftover folders of killed runs that were removed first.
    pub leftovers_removed: usize,
    /// Names whose values are too short to redact.
    pub not_redacted: Vec<String>,
}

/// A warning for the caller to show, before the program starts.
pub type Warn<'a> = &'a mut dyn FnMut(&str);

/// Runs `program` with `args` and the fetched values (see the module
/// docs), and waits for it. `warn` hears what the caller should say before
/// the program's own output (a folder not in memory, values too short to
/// redact). A program that cannot be started is an error (`NotFound` for a
/// command not on `PATH`); once it runs, how it ended is the [`Exit`].
pub fn launch(
    program: &OsStr,
    args: &[OsString],
    values: Vec<Fetched>,
    options: &Options,
    warn: Warn<'_>,
) -> Result<Launched> {
    for v in &values {
        check_variable(&v.variable)?;
    }
    let base = folder::base();
    let leftovers_removed = remove_leftover_folders(&base.path);
    let redactor = if options.redact {
        let r = crate::redact::Redactor::new(
            values
                .iter()
                .map(|v| (v.name.as_str(), v.value.expose_secret())),
        )?;
        for name in r.skipped() {
            warn(&format!(
                "the value of '{name}' is shorter than {} bytes: not redacted",
                crate::redact::MIN_LEN
            ));
        }
        Some(r)
    } else {
        None
    };
    let not_redacted = redactor
        .as_ref()
        .map(|r| r.skipped().to_vec())
        .unwrap_or_default();
    // From here on a terminating signal is held until the program runs,
    // then passed on to it.
    let signals = child::Signals::install();
    let mut folder = None;
    let mut env: Vec<(String, SecretValue)> = Vec::with_capacity(values.len());
    for v in values {
        match v.delivery {
            Delivery::Env => env.push((v.variable, v.value)),
            Delivery::File => {
                if folder.is_none() {
                    if !base.in_memory {
                        warn(&format!(
                            "no memory-backed folder ($XDG_RUNTIME_DIR, /dev/shm): secret files \
                             go to {}",
                            base.path.display()
                        ));
                    }
                    folder = Some(folder::Folder::create(&base.path)?);
                }
                let f = folder.as_mut().expect("made just above");
                let path = f.write(&v.variable, v.value.expose_secret())?;
                let path = SecretValue::from(path.into_os_string().into_encoded_bytes());
                env.push((v.variable, path));
            }
        }
    }
    let folder_path = folder.as_ref().map(|f| f.path().to_path_buf());
    if let Some(sig) = signals.stop_requested() {
        // Told to stop before the program started: it never runs.
        drop(folder);
        return Ok(Launched {
            exit: Exit::Signal(sig),
            folder: folder_path,
            folder_in_memory: base.in_memory,
            leftovers_removed,
            not_redacted,
        });
    }
    let exit = child::spawn_and_wait(program, args, &env, redactor.as_ref(), &signals)?;
    drop(env);
    drop(folder);
    drop(signals);
    Ok(Launched {
        exit,
        folder: folder_path,
        folder_in_memory: base.in_memory,
        leftovers_removed,
        not_redacted,
    })
}

/// The folder file deliveries would go to now, and whether it is
/// memory-backed.
pub fn files_base() -> (PathBuf, bool) {
    let b = folder::base();
    (b.path, b.in_memory)
}

/// Whether `path` is on a memory-backed filesystem (tmpfs, ramfs).
pub fn in_memory(path: &Path) -> bool {
    folder::memory_backed(path)
}
