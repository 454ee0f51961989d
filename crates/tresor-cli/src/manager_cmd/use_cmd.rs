//! Handing secrets to programs: `check` (declared secrets present and
//! valid), `render` (references in YAML, TOML, JSON), `inject` (`{{ … }}`
//! placeholders in any text) and `env` (declared secrets for `eval`).
//! The logic is the library's ([`tresor::declared`], [`tresor::refs`]); this
//! module reads arguments and files, prompts and prints.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use clap::{Args, ValueEnum};
use serde_json::json;
use zeroize::Zeroizing;

use tresor::config::Config;
use tresor::declared::{Fetched, Origin};
use tresor::fs::Existing;
use tresor::refs::{Format, Resolver};
use tresor::{Error, PutOptions, Result, SecretValue, Tresor};

use super::{EXIT, open};
use crate::commands::Ctx;
use crate::{input, output};

/// The largest document or template read (a config, not a data set).
const MAX_INPUT: u64 = 64 * 1024 * 1024;

pub const CHECK_HELP: &str = "\
Checks that every secret declared in [secrets] of tresor.toml (and the
profile's [profiles.NAME.secrets]) is in some store, and that its value passes
its rule (rule = \"…\", or the rules and presets for its name). Prints a table
of names and states, never values; --json prints the same as JSON.

Exit codes: 0 when every required secret is present and valid, 1 when one is
not (optional ones are reported but do not fail).

--fix fills in what is missing: a secret with generate = { length, charset }
is generated; any other is asked for on the terminal (twice, hidden). Without
a terminal, a missing secret with nothing to generate fails with its name.

Example tresor.toml:
  [secrets]
  OPENAI_API_KEY = { name = \"openai/api_key\", rule = \"openai\" }
  SESSION_KEY = { name = \"app/session\", generate = { length = 48 } }
  LOG_LEVEL = { name = \"app/log_level\", required = false, default = \"info\" }";

pub const RENDER_HELP: &str = "\
Resolves every reference in a YAML, TOML or JSON file and writes the same
format, keys in the same order (TOML keeps its comments and layout). A string
value that is exactly a reference is replaced:

  SEC/name             the secret's current value (first store that has it)
  SEC/name#3           version 3
  SEC/name@previous    the version a label points at (current, previous, pending)
  SEC/store:name       only that store of the config
  ENV/VAR              the environment variable
  \\SEC/… , \\ENV/…      the text itself, without the backslash

A missing secret or unset variable fails, naming the file, the key path and
the reference, and nothing is written. With -o the file is created mode 0600
(replacing a regular file; links and other special files are refused),
written only once everything resolved; without -o the document goes to stdout.

Examples:
  tresor render config.yaml -o /run/app/config.yaml
  tresor render settings.tmpl --format toml > settings.toml
  cat config.json | tresor render - --format json";

pub const INJECT_HELP: &str = "\
Replaces {{ SEC/name }} and {{ ENV/VAR }} placeholders (the same references as
`tresor render`) in any text: a template on stdin (or -i FILE) is written to
stdout (or -o FILE, created mode 0600). Other {{ … }} are left as they are;
{{ \\SEC/name }} gives the placeholder itself. A placeholder that does not
resolve fails, naming the line, column and reference, and nothing is written.

Examples:
  tresor inject < nginx.conf.tmpl > nginx.conf
  tresor inject -i app.ini.tmpl -o app.ini";

pub const ENV_HELP: &str = "\
Prints the declared secrets ([secrets] in tresor.toml, for the profile in use)
as assignments for a shell or tool to read, quoted for it:

  sh      export VAR='value'          eval \"$(tresor env)\"   (bash, zsh, dash; direnv .envrc)
  fish    set -gx VAR 'value'         tresor env --format fish | source
  dotenv  VAR=\"value\"                 tresor env --format dotenv > .env   (escapes \\n, \\\", \\$, \\\\)
  json    {\"VAR\": \"value\"}

Secrets without a value in any store take their default; optional ones
without either are left out; a required one missing fails (exit 1) before
anything is printed. as_file secrets are left out (`tresor run` delivers
them as files). The output holds plaintext: a warning says so when stdout is
a terminal. Prefer `tresor run`, which keeps secrets out of your shell.";

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Generate missing secrets that declare generate = {…}, and ask on the terminal for the
    /// other missing ones.
    #[arg(long)]
    pub fix: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The document to render (`-` for stdin, with --format).
    pub file: PathBuf,
    /// Write here (created mode 0600) instead of stdout.
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    pub out: Option<PathBuf>,
    /// The document's format [default: from the file's extension].
    #[arg(long, value_enum)]
    pub format: Option<DocFormat>,
}

#[derive(Debug, Args)]
pub struct InjectArgs {
    /// Read the template from this file instead of stdin.
    #[arg(short = 'i', long = "in", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Write here (created mode 0600) instead of stdout.
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// How to print the assignments.
    #[arg(long, value_enum, default_value_t = EnvFormat::Sh)]
    pub format: EnvFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DocFormat {
    Yaml,
    Toml,
    Json,
}

impl From<DocFormat> for Format {
    fn from(f: DocFormat) -> Self {
        match f {
            DocFormat::Yaml => Format::Yaml,
            DocFormat::Toml => Format::Toml,
            DocFormat::Json => Format::Json,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EnvFormat {
    /// POSIX shells: export VAR='value'.
    Sh,
    /// fish: set -gx VAR 'value'.
    Fish,
    /// .env files: VAR="value" with backslash escapes.
    Dotenv,
    /// One JSON object.
    Json,
}

/// The config, which must exist and declare secrets (`check`, `env`).
fn declaring_config(ctx: &Ctx, command: &str) -> Result<Config> {
    Config::discover_and_load(ctx.config.as_deref())?.ok_or_else(|| {
        Error::Validation(format!(
            "tresor {command} reads the secrets declared in [secrets] of a config, and there is \
             none (./tresor.toml, --config or TRESOR_CONFIG)"
        ))
    })
}

// ---- check ----

/// One row of `check`.
struct Row {
    var: String,
    name: String,
    required: bool,
    state: &'static str,
    store: Option<String>,
    rule: Option<String>,
    /// What failed, in words without the value.
    problem: Option<String>,
}

impl Row {
    fn fails(&self) -> bool {
        self.required && !matches!(self.state, "ok" | "default" | "fixed")
    }
}

pub fn check(ctx: &Ctx, a: CheckArgs) -> Result<()> {
    let config = declaring_config(ctx, "check")?;
    let profile = config.profile_name(ctx.profile.as_deref());
    let mut t = open(ctx, Some(config))?;
    let declared = t.declared().to_vec();
    let mut fetched = t.fetch_declared(&declared);
    // A credential that does not open the vault, or a vault that fails its
    // integrity check, is the answer for every secret: that error, with its
    // own exit code (3 or 4), not a table of per-secret failures.
    if let Some(at) = fetched.iter().position(|f| {
        f.error.as_ref().is_some_and(|e| {
            matches!(
                crate::exit::code(e),
                crate::exit::ExitCode::Locked | crate::exit::ExitCode::Integrity
            )
        })
    }) && let Some(e) = fetched.swap_remove(at).error
    {
        return Err(e);
    }
    let mut rows: Vec<Row> = fetched.iter().map(|f| row(&t, f)).collect();
    if a.fix {
        fix(ctx, &mut t, &fetched, &mut rows)?;
    }
    let failing = rows.iter().filter(|r| r.fails()).count();
    if ctx.json {
        let secrets: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "var": r.var, "name": r.name, "required": r.required, "state": r.state,
                    "store": r.store, "rule": r.rule, "problem": r.problem,
                })
            })
            .collect();
        output::json(&json!({
            "profile": profile,
            "ok": failing == 0,
            "failing": failing,
            "secrets": secrets,
        }));
    } else if rows.is_empty() {
        ctx.status("no secrets are declared ([secrets] in tresor.toml)");
    } else {
        print_table(&rows);
    }
    if failing > 0 {
        EXIT.store(crate::exit::ExitCode::NotFound as u8, Ordering::Relaxed);
        // stderr names the failing secrets (names only), in text and JSON.
        let names: Vec<String> = rows
            .iter()
            .filter(|r| r.fails())
            .map(|r| format!("{} ('{}')", r.var, r.name))
            .collect();
        let message = format!(
            "{failing} required secret{} missing or invalid: {}",
            if failing == 1 { " is" } else { "s are" },
            names.join(", ")
        );
        let hint = (!a.fix).then_some("tresor check --fix generates or asks for missing ones");
        if ctx.json {
            let mut error = json!({
                "kind": "not_found", "type": "declared_failing", "message": message,
                "exit_code": crate::exit::ExitCode::NotFound as u8,
            });
            if let Some(h) = hint {
                error["hint"] = json!(h);
            }
            eprintln!("{}", json!({ "error": error }));
        } else {
            eprintln!("tresor: {message}");
            if let Some(h) = hint {
                eprintln!("hint: {h}");
            }
        }
    }
    Ok(())
}

fn row(t: &Tresor, f: &Fetched) -> Row {
    let d = &f.declared;
    let mut r = Row {
        var: d.var.clone(),
        name: d.name.to_string(),
        required: d.required,
        state: "ok",
        store: None,
        rule: d.rule.clone(),
        problem: None,
    };
    match (&f.origin, &f.value) {
        (Origin::Store(s), Some(v)) => {
            r.store = Some(s.clone());
            let verdict = match &d.rule {
                Some(rule) => t.validate_rule(rule, v),
                None => t.validate(&d.name, v),
            };
            if let Err(e) = verdict {
                r.state = "invalid";
                r.problem = Some(e.to_string());
            }
        }
        (Origin::Default, _) => r.state = "default",
        (Origin::Failed, _) => {
            r.state = "error";
            r.problem = f.error.as_ref().map(ToString::to_string);
        }
        _ => r.state = "missing",
    }
    r
}

fn print_table(rows: &[Row]) {
    let width = |f: &dyn Fn(&Row) -> usize, title: &str| {
        rows.iter().map(f).max().unwrap_or(0).max(title.len())
    };
    let wv = width(&|r| r.var.len(), "VARIABLE");
    let wn = width(&|r| r.name.len(), "SECRET");
    output::line(&format!("{:wv$}  {:wn$}  STATE", "VARIABLE", "SECRET"));
    for r in rows {
        let mut state = r.state.to_string();
        if let Some(s) = &r.store {
            state.push_str(&format!(" (store {s})"));
        }
        if !r.required {
            state.push_str(", optional");
        }
        if let Some(p) = &r.problem {
            state.push_str(&format!(": {p}"));
        }
        output::line(&format!("{:wv$}  {:wn$}  {state}", r.var, r.name));
    }
}

fn fix(ctx: &Ctx, t: &mut Tresor, fetched: &[Fetched], rows: &mut [Row]) -> Result<()> {
    let terminal = input::can_prompt();
    let mut unfixable = Vec::new();
    for (f, r) in fetched.iter().zip(rows.iter_mut()) {
        if r.state != "missing" {
            continue;
        }
        let d = &f.declared;
        let (value, how) = if let Some(g) = d.generate {
            (
                tresor::generate::generate(g.length, g.charset)?,
                "generated",
            )
        } else if terminal {
            let what = d
                .description
                .as_deref()
                .map_or_else(String::new, |s| format!(" ({s})"));
            let optional = if d.required {
                ""
            } else {
                ", optional: empty to skip"
            };
            let first = input::prompt(&format!(
                "Value for {} [{}]{what}{optional}: ",
                d.var, d.name
            ))?;
            if first.is_empty() && !d.required {
                continue;
            }
            let second = input::prompt("Again: ")?;
            if *first != *second || first.is_empty() {
                return Err(Error::Validation(format!(
                    "{}: the two entries differ or are empty; nothing was stored for it",
                    d.var
                )));
            }
            (SecretValue::from(first.to_string()), "entered")
        } else {
            // An optional secret may stay missing.
            if d.required {
                unfixable.push(format!("{} ('{}')", d.var, d.name));
            }
            continue;
        };
        let verdict = match &d.rule {
            Some(rule) => t.validate_rule(rule, &value),
            None => Ok(()),
        };
        verdict?;
        let options = PutOptions {
            reason: Some(format!("tresor check --fix ({how})")),
            ..PutOptions::default()
        };
        let written = t.set(&d.name, &value, &options)?;
        ctx.status(&format!(
            "{}: {how} and stored as '{}' version {} in store '{}'",
            d.var, d.name, written.version, written.store
        ));
        r.state = "fixed";
        r.store = Some(written.store);
    }
    if !unfixable.is_empty() {
        return Err(Error::Validation(format!(
            "cannot fix {}: missing, nothing to generate (no generate = {{…}} in the \
             declaration), and no terminal to ask on; store them with `tresor set`",
            unfixable.join(", ")
        )));
    }
    Ok(())
}

// ---- render and inject ----

/// Reads a document or template: a file (size-capped, UTF-8) or stdin.
fn read_text(path: Option<&Path>) -> Result<Zeroizing<String>> {
    let (reader, what): (Box<dyn Read>, String) = match path {
        Some(p) => (
            Box::new(std::fs::File::open(p).map_err(|e| io_error(p, e))?),
            p.display().to_string(),
        ),
        None => (Box::new(std::io::stdin().lock()), "stdin".to_string()),
    };
    let mut bytes = Zeroizing::new(Vec::new());
    reader
        .take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path.unwrap_or(Path::new("stdin")), e))?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(Error::TooLarge {
            what: what.clone(),
            limit: MAX_INPUT,
        });
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_string())),
        Err(e) => Err(Error::Malformed {
            what,
            problem: format!("not UTF-8 text (byte {})", e.valid_up_to()),
        }),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        store: "file".into(),
        path: path.to_path_buf(),
        source,
    }
}

/// Refuses an output path before any work: one that is the input itself
/// (the template would be replaced by plaintext), or one the private-file
/// writer refuses (links, devices, folders).
fn check_out(out: &Path, input: Option<&Path>) -> Result<()> {
    if let Some(input) = input
        && let (Ok(a), Ok(b)) = (std::fs::canonicalize(input), std::fs::canonicalize(out))
        && a == b
    {
        return Err(Error::Validation(format!(
            "{} is both the input and the output: the template would be replaced by its \
             secrets; write to another file",
            out.display()
        )));
    }
    tresor::fs::check_target(out, Existing::Replace)
}

fn emit(ctx: &Ctx, out: Option<&Path>, text: &str) -> Result<()> {
    match out {
        Some(path) => {
            tresor::fs::write_private(path, text.as_bytes())?;
            ctx.status(&format!("wrote {} (mode 0600)", path.display()));
            Ok(())
        }
        None => output::write_stdout(text.as_bytes(), false),
    }
}

pub fn render(ctx: &Ctx, a: RenderArgs) -> Result<()> {
    let stdin = a.file.as_os_str() == "-";
    let input = (!stdin).then_some(a.file.as_path());
    let format = match (a.format, input.and_then(Format::from_path)) {
        (Some(f), _) => Format::from(f),
        (None, Some(f)) => f,
        (None, None) => {
            return Err(Error::Validation(format!(
                "cannot tell the format of {}: give --format yaml, toml or json",
                if stdin {
                    "stdin".to_string()
                } else {
                    a.file.display().to_string()
                }
            )));
        }
    };
    if let Some(out) = &a.out {
        check_out(out, input)?;
    }
    let text = read_text(input)?;
    let config = Config::discover_and_load(ctx.config.as_deref())?;
    let mut t = open(ctx, config)?;
    let rendered = Resolver::new(&mut t).render(&text, format, input)?;
    emit(ctx, a.out.as_deref(), &rendered)
}

pub fn inject(ctx: &Ctx, a: InjectArgs) -> Result<()> {
    if let Some(out) = &a.out {
        check_out(out, a.input.as_deref())?;
    }
    let text = read_text(a.input.as_deref())?;
    let config = Config::discover_and_load(ctx.config.as_deref())?;
    let mut t = open(ctx, config)?;
    let rendered = Resolver::new(&mut t).inject(&text, a.input.as_deref())?;
    emit(ctx, a.out.as_deref(), &rendered)
}

// ---- env ----

pub fn env(ctx: &Ctx, a: EnvArgs) -> Result<()> {
    let config = declaring_config(ctx, "env")?;
    let mut t = open(ctx, Some(config))?;
    let declared = t.declared().to_vec();
    let mut fetched = t.fetch_declared(&declared);
    tresor::declared::require(&mut fetched)?;
    let mut pairs: Vec<(&str, &SecretValue)> = Vec::new();
    for f in &fetched {
        if f.declared.as_file {
            output::note(&format!(
                "warning: {} is declared as_file and is left out: `tresor run` delivers it as a file",
                f.declared.var
            ));
            continue;
        }
        if let Some(v) = &f.value {
            pairs.push((&f.declared.var, v));
        }
    }
    let text = format_env(a.format, &pairs)?;
    if std::io::stdout().is_terminal() {
        eprintln!(
            "tresor: warning: this output holds secrets in plaintext; read it with \
             eval \"$(tresor env)\" rather than printing it (or use tresor run)"
        );
    }
    output::write_stdout(text.as_bytes(), false)
}

/// The assignments in `format`, quoted so that the shell or tool reads back
/// exactly each value.
pub fn format_env(format: EnvFormat, pairs: &[(&str, &SecretValue)]) -> Result<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::new());
    if format == EnvFormat::Json {
        let mut map = serde_json::Map::new();
        for (var, value) in pairs {
            map.insert(var.to_string(), text_of(var, value)?.to_string().into());
        }
        let mut value = serde_json::Value::Object(map);
        out.push_str(&serde_json::to_string(&value).unwrap_or_default());
        out.push('\n');
        wipe(&mut value);
        return Ok(out);
    }
    for (var, value) in pairs {
        let text = text_of(var, value)?;
        if text.contains('\0') {
            return Err(Error::Validation(format!(
                "{var}: the value holds a NUL byte, which no environment variable can carry"
            )));
        }
        match format {
            EnvFormat::Sh => {
                out.push_str(&format!("export {var}="));
                push_single_quoted_sh(&mut out, text);
            }
            EnvFormat::Fish => {
                out.push_str(&format!("set -gx {var} "));
                push_single_quoted_fish(&mut out, text);
            }
            EnvFormat::Dotenv => {
                out.push_str(var);
                out.push('=');
                push_dotenv(&mut out, text);
            }
            EnvFormat::Json => unreachable!("handled above"),
        }
        out.push('\n');
    }
    Ok(out)
}

fn wipe(value: &mut serde_json::Value) {
    if let serde_json::Value::Object(map) = value {
        for v in map.values_mut() {
            if let serde_json::Value::String(s) = v {
                zeroize::Zeroize::zeroize(s);
            }
        }
    }
}

fn text_of<'a>(var: &str, value: &'a SecretValue) -> Result<&'a str> {
    std::str::from_utf8(value.expose_secret()).map_err(|_| {
        Error::Validation(format!(
            "{var}: the value is not UTF-8 text; `tresor run` passes any bytes"
        ))
    })
}

/// `'…'`, each `'` written as `'\''`: nothing inside single quotes is
/// special to a POSIX shell.
fn push_single_quoted_sh(out: &mut String, text: &str) {
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
}

/// fish single quotes: only `\\` and `\'` are escapes inside them.
fn push_single_quoted_fish(out: &mut String, text: &str) {
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// `"…"` with `\\`, `\"`, `\$`, `` \` ``, `\n` and `\r` escaped: what
/// dotenv readers (direnv's dotenv, python-dotenv, docker compose) unescape
/// in double quotes, with no variable expanded.
fn push_dotenv(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("\\$"),
            '`' => out.push_str("\\`"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_and_fish_escape_what_their_readers_unescape() {
        let v = SecretValue::copy_from(b"a'b\"c$d`e\\f\ng");
        let pairs = [("X", &v)];
        assert_eq!(
            &*format_env(EnvFormat::Dotenv, &pairs).unwrap(),
            "X=\"a'b\\\"c\\$d\\`e\\\\f\\ng\"\n"
        );
        assert_eq!(
            &*format_env(EnvFormat::Fish, &pairs).unwrap(),
            "set -gx X 'a\\'b\"c$d`e\\\\f\ng'\n"
        );
        assert_eq!(
            &*format_env(EnvFormat::Sh, &pairs).unwrap(),
            "export X='a'\\''b\"c$d`e\\f\ng'\n"
        );
        let nul = SecretValue::copy_from(b"a\0b");
        assert!(format_env(EnvFormat::Sh, &[("X", &nul)]).is_err());
    }
}
