//! `tresor run`: parses the deliveries, fetches through the manager, and
//! hands the rest to `tresor::run` (spawning, signals, files, redaction).

use std::ffi::OsString;

use clap::Args;
use serde_json::json;

use tresor::config::Config;
use tresor::run::{Delivery, Item, Options, Plan};
use tresor::{Error, Result, SecretName};

use crate::commands::Ctx;

pub(crate) const RUN_HELP: &str = "\
Run a program with secrets in its environment (or in files), and exit with its code.

The program gets the secrets declared in tresor.toml ([secrets], or [profiles.P.secrets] with \
--profile; as_file ones as files), unless --no-declared, and those named by --env, --file and \
--prefix (which win over a declaration of the same variable). Every value is read before the \
program starts (remote stores asked at once); a missing required secret stops the run (exit 1, \
naming each variable and secret) and the program never starts; a missing optional one takes its \
default, or is left out. The program inherits the rest of \
the environment, stdin and the terminal. Values never appear in any command line.

--file VAR=NAME writes the value to a 0600 file in a private 0700 folder on a memory-backed \
filesystem ($XDG_RUNTIME_DIR, else /dev/shm; else the temporary folder, with a warning) and \
sets VAR to its path. The folder is removed when the program exits, also when tresor is \
stopped by a signal; a folder left by a killed tresor is removed by the next `tresor run`.

--prefix P gives the program every secret under P (as `tresor ls P` lists them), each in a \
variable named after the rest of its name: upper-cased, with '/', '-' and '.' turned into \
'_' (openai/api_key under --prefix openai/ is API_KEY). Two names giving one variable are an \
error (exit 2).

tresor passes SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH on to the \
program and waits for it; it exits with the program's exit code, or 128+N when signal N \
ended it. The program stays in tresor's process group, so Ctrl-C, Ctrl-Z and job control \
work as if it ran alone.

--redact passes the program's stdout and stderr through a filter that replaces each value \
given to it, and its base64, base64url, hex, URL-encoded and JSON-escaped forms, with \
[redacted:NAME] (values under 4 bytes are left, with a warning). Output is passed on as it \
comes; only a tail that could start a value is held back, for at most 2 ms.";

pub(crate) const RUN_AFTER: &str = "\
Examples:
  tresor run -- ./server                      # the secrets tresor.toml declares
  tresor run --env DATABASE_URL=db/url -- ./server --port 8080
  tresor run --prefix openai/ --redact -- python train.py
  tresor run --file TLS_KEY=tls/key -- nginx -g 'daemon off;'

Exit codes: the program's own; 128+N when signal N ended it. Before the program starts:
  1  a secret (or the command) was not found
  2  usage (bad VAR=NAME, a variable given twice)
  3  locked, or wrong password or key
  6  store unavailable";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Set VAR to the value of secret NAME (repeatable).
    #[arg(long = "env", value_name = "VAR=NAME")]
    pub env: Vec<String>,
    /// Write secret NAME to a private 0600 file and set VAR to its path (repeatable).
    #[arg(long = "file", value_name = "VAR=NAME")]
    pub file: Vec<String>,
    /// Every secret under P, in variables named after the rest of the name (repeatable).
    #[arg(long, value_name = "P")]
    pub prefix: Vec<String>,
    /// Leave out the secrets declared in tresor.toml ([secrets], or the profile's).
    #[arg(long)]
    pub no_declared: bool,
    /// Replace the values (and their encoded forms) in the program's stdout and stderr.
    #[arg(long)]
    pub redact: bool,
    /// The program and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}

/// `VAR=NAME`.
fn pair(text: &str, flag: &str) -> Result<(String, SecretName)> {
    let (var, name) = text.split_once('=').ok_or_else(|| {
        Error::Validation(format!(
            "{flag} takes VAR=NAME (a variable and a secret's name), not {text:?}"
        ))
    })?;
    Ok((var.to_string(), SecretName::new(name)?))
}

/// Runs the program; the exit code for tresor.
pub fn run(ctx: &Ctx, a: RunArgs) -> Result<u8> {
    // Options after the command's own words go to the command; a first word
    // that looks like an option is a mistyped tresor option, not a program.
    if let Some(first) = a.command.first().and_then(|c| c.to_str())
        && first.starts_with('-')
        && first != "-"
    {
        return Err(Error::Validation(format!(
            "unknown option '{first}' for tresor run; the command goes after `--` \
             (tresor run [OPTIONS] -- COMMAND [ARGS]…)"
        )));
    }
    if ctx.store.is_some() {
        return Err(Error::Validation(
            "--store does not apply to run: secrets are read through every store of the \
             config, in priority order"
                .into(),
        ));
    }
    let mut plan = Plan::new();
    for (list, flag, delivery) in [
        (&a.env, "--env", Delivery::Env),
        (&a.file, "--file", Delivery::File),
    ] {
        for text in list {
            let (variable, name) = pair(text, flag)?;
            plan.add(Item {
                variable,
                name,
                delivery,
                required: true,
                default: None,
            })?;
        }
    }
    let config = Config::discover_and_load(ctx.config.as_deref())?;
    let mut tresor = crate::manager_cmd::open(ctx, config)?;
    for prefix in &a.prefix {
        plan.add_prefix(&mut tresor, prefix, Delivery::Env)?;
    }
    if !a.no_declared {
        let declared = tresor.declared().to_vec();
        plan.add_declared(&declared)?;
    }
    let values = plan.fetch(&mut tresor)?;
    // The vault is closed before the program starts.
    drop(tresor);
    let json = ctx.json;
    let mut warn = |text: &str| {
        if json {
            eprintln!("{}", json!({ "warning": text }));
        } else {
            eprintln!("tresor: warning: {text}");
        }
    };
    let (program, args) = a.command.split_first().expect("clap requires the command");
    let options = Options { redact: a.redact };
    let launched = tresor::run::launch(program, args, values, &options, &mut warn)?;
    Ok(launched.exit.code())
}
