//! The docs cannot drift from the binary.
//!
//! Two checks over `README.md` and every `docs/*.md`:
//!
//! - **Transcripts.** A fenced block marked `console` is run: each `$ `
//!   line is a command (a trailing `\` continues it on the next line), the
//!   lines under it are what it prints (stdout and stderr together, in the
//!   order written), and an optional last line `? N` is its exit code
//!   (0 when absent). In the expected lines, a line `...` stands for any
//!   number of lines and `[..]` for any text within a line. All blocks of
//!   one file run in order in one sandbox: a fresh home, data, config and
//!   runtime folder, no credential in the environment, `tresor` first on
//!   `PATH`; `export` and `cd` carry over from one command to the next.
//! - **Illustrations.** In `sh` blocks, each `tresor …` command (up to a
//!   `#` comment, a pipe, `&&` or `;`) must name a real command, and each
//!   `--flag` in it must be one that command or the top level accepts, as
//!   its `--help` lists them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tresor");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// README.md and docs/*.md, sorted.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![
        root().join("README.md"),
        root().join("ARCHITECTURE.md"),
        root().join("SECURITY.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// A fenced block: its info string, the line number of its first line
/// (1-based) and its lines.
struct Block {
    info: String,
    line: usize,
    lines: Vec<String>,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("```") {
            match current.take() {
                Some(b) => out.push(b),
                None => {
                    current = Some(Block {
                        info: rest.trim().to_string(),
                        line: i + 2,
                        lines: Vec::new(),
                    })
                }
            }
        } else if let Some(b) = current.as_mut() {
            b.lines.push(line.to_string());
        }
    }
    assert!(current.is_none(), "an unclosed code block");
    out
}

/// One command of a transcript and what it must print.
struct Step {
    line: usize,
    command: String,
    expected: Vec<String>,
    code: i32,
}

fn steps(block: &Block) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut lines = block.lines.iter().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        if let Some(cmd) = line.strip_prefix("$ ") {
            let mut command = cmd.to_string();
            while command.ends_with('\\') {
                command.pop();
                let (_, next) = lines.next().expect("a `\\` on the last line");
                command.push('\n');
                command.push_str(next);
            }
            steps.push(Step {
                line: block.line + i,
                command,
                expected: Vec::new(),
                code: 0,
            });
            continue;
        }
        let step = steps.last_mut().unwrap_or_else(|| {
            panic!(
                "line {}: output before the first `$ ` command",
                block.line + i
            )
        });
        if let Some(code) = line.strip_prefix("? ") {
            step.code = code.trim().parse().expect("`? N` takes a number");
        } else {
            step.expected.push(line.trim_end().to_string());
        }
    }
    steps
}

/// Does `actual` match the pattern line `expected` (`[..]`: any text)?
fn line_matches(expected: &str, actual: &str) -> bool {
    let parts: Vec<&str> = expected.split("[..]").collect();
    if parts.len() == 1 {
        return expected == actual;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !actual.starts_with(first) || actual.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &actual[first.len()..];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Do the actual lines match the expected ones (`...`: any lines)?
fn lines_match(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e == "..." => {
            (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..]))
        }
        Some((e, rest)) => {
            !actual.is_empty() && line_matches(e, actual[0]) && lines_match(rest, &actual[1..])
        }
    }
}

/// A sandbox for one file's transcripts.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "work", "run"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("run"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::fs::write(dir.path().join("env"), "").unwrap();
        std::fs::write(
            dir.path().join("cwd"),
            dir.path().join("work").to_str().unwrap(),
        )
        .unwrap();
        Sandbox { dir }
    }

    fn run(&self, command: &str) -> (i32, String) {
        let s = self.dir.path();
        let bin_dir = Path::new(BIN).parent().unwrap();
        let script = format!(
            "cd \"$(cat '{s}/cwd')\" && . '{s}/env'\n{{\n{command}\n}} 2>&1\nrc=$?\nexport -p > '{s}/env'\npwd > '{s}/cwd'\nexit $rc\n",
            s = s.display()
        );
        let home = s.join("home");
        let out = Command::new("bash")
            .arg("-c")
            .arg(script)
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir.display()),
            )
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_RUNTIME_DIR", s.join("run"))
            .env("LANG", "C.UTF-8")
            .env("TERM", "dumb")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.stderr.is_empty(),
            "the harness itself failed: {:?}",
            out
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

fn check_transcripts(file: &Path) -> usize {
    let text = std::fs::read_to_string(file).unwrap();
    let mut sandbox = None;
    let mut count = 0;
    for block in blocks(&text).iter().filter(|b| b.info == "console") {
        let sandbox = sandbox.get_or_insert_with(Sandbox::new);
        for step in steps(block) {
            let (code, output) = sandbox.run(&step.command);
            let actual: Vec<&str> = output.lines().map(str::trim_end).collect();
            assert!(
                code == step.code && lines_match(&step.expected, &actual),
                "{}:{}: `{}`\nexpected (exit {}):\n{}\nactual (exit {code}):\n{output}",
                file.display(),
                step.line,
                step.command,
                step.code,
                step.expected.join("\n"),
            );
            count += 1;
        }
    }
    count
}

#[test]
fn transcripts_in_the_docs_match_the_binary() {
    let mut total = 0;
    let mut per_file = BTreeMap::new();
    for file in doc_files() {
        let n = check_transcripts(&file);
        per_file.insert(file.file_name().unwrap().to_string_lossy().into_owned(), n);
        total += n;
    }
    // The task guides each carry a transcript; a refactor that drops them
    // (or a parser that stops finding them) must not pass silently.
    for guide in [
        "README.md",
        "getting-started.md",
        "unlocking.md",
        "keys-and-files.md",
    ] {
        assert!(
            per_file.get(guide).copied().unwrap_or(0) > 0,
            "{guide} has no console transcript: {per_file:?}"
        );
    }
    assert!(
        total >= 30,
        "only {total} transcript commands ran: {per_file:?}"
    );
}

/// The flags `tresor <path> --help` lists, and whether its usage line is
/// `tresor <path>` (so the path names a real command).
struct Help {
    usage_is_path: bool,
    flags: BTreeSet<String>,
    valued: BTreeSet<String>,
}

fn help(path: &[&str]) -> Help {
    let out = Command::new(BIN)
        .args(path)
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let usage = format!("Usage: tresor {}", path.join(" "));
    let usage_is_path = out.status.success()
        && text.lines().any(|l| {
            let l = l.trim_end();
            l == usage.trim_end() || l.starts_with(&format!("{} ", usage.trim_end()))
        });
    let mut flags = BTreeSet::new();
    let mut valued = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim_start();
        if !line.starts_with('-') {
            continue;
        }
        for word in line.split([',', ' ']) {
            if let Some(flag) = word.strip_prefix("--") {
                let flag = flag.split(['=', '[', '<']).next().unwrap();
                if !flag.is_empty() {
                    flags.insert(format!("--{flag}"));
                    if line.contains(&format!("--{flag} <")) {
                        valued.insert(format!("--{flag}"));
                    }
                }
            } else if word.len() == 2 && word.starts_with('-') {
                flags.insert(word.to_string());
                if line.contains(&format!("{word} <")) {
                    valued.insert(word.to_string());
                }
            }
        }
    }
    Help {
        usage_is_path,
        flags,
        valued,
    }
}

/// The `tresor …` invocations of a shell line.
fn invocations(line: &str) -> Vec<Vec<String>> {
    let code = match line.find(" #") {
        Some(at) => &line[..at],
        None => line,
    };
    let code = code.strip_prefix("$ ").unwrap_or(code);
    code.split(['|', ';', '&', '(', ')'])
        .map(str::trim)
        .filter_map(|seg| {
            // Environment assignments may precede the command.
            let words: Vec<&str> = seg.split_whitespace().collect();
            let start = words
                .iter()
                .position(|w| !w.contains('=') || w.starts_with('-'))?;
            (words.get(start) == Some(&"tresor"))
                .then(|| words[start + 1..].iter().map(|w| w.to_string()).collect())
        })
        .collect()
}

#[test]
fn commands_shown_in_the_docs_exist_with_their_flags() {
    let top = help(&[]);
    let mut cache: BTreeMap<Vec<String>, Help> = BTreeMap::new();
    let mut checked = 0;
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        // `console` blocks are run for real by the transcript test.
        for block in blocks(&text).iter().filter(|b| b.info == "sh") {
            for (i, line) in block.lines.iter().enumerate() {
                for args in invocations(line) {
                    // Skip global options (and their values) before the command.
                    let mut rest = args.as_slice();
                    while let Some(first) = rest.first() {
                        if !first.starts_with('-') {
                            break;
                        }
                        let skip = if top.valued.contains(first.as_str()) {
                            2
                        } else {
                            1
                        };
                        rest = &rest[skip.min(rest.len())..];
                    }
                    let words: Vec<&str> = rest
                        .iter()
                        .take_while(|w| !w.starts_with('-'))
                        .map(String::as_str)
                        .collect();
                    if words.is_empty() {
                        continue;
                    }
                    // The longest run of leading words that is a command.
                    let mut path: Option<Vec<String>> = None;
                    for n in (1..=words.len().min(3)).rev() {
                        let key: Vec<String> = words[..n].iter().map(|w| w.to_string()).collect();
                        let h = cache
                            .entry(key.clone())
                            .or_insert_with(|| help(&words[..n]));
                        if h.usage_is_path {
                            path = Some(key);
                            break;
                        }
                    }
                    let path = path.unwrap_or_else(|| {
                        panic!(
                            "{}:{}: `tresor {}` is not a tresor command",
                            file.display(),
                            block.line + i,
                            words.join(" ")
                        )
                    });
                    let h = &cache[&path];
                    for flag in args.iter().filter(|a| a.starts_with('-') && a.len() > 1) {
                        let flag = flag.split('=').next().unwrap();
                        if flag == "--" {
                            break;
                        }
                        assert!(
                            h.flags.contains(flag) || top.flags.contains(flag),
                            "{}:{}: `tresor {}` has no flag {flag}",
                            file.display(),
                            block.line + i,
                            path.join(" ")
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 50, "only {checked} commands were checked");
}

#[test]
fn the_matcher_matches_what_it_should_and_nothing_else() {
    assert!(line_matches(
        "created vault [..] (unlocks with [..])",
        "created vault /a/b (unlocks with key file /k)"
    ));
    assert!(!line_matches("created vault [..]x", "created vault /a/b"));
    assert!(!line_matches("v1", "v12"));
    let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(lines_match(&e(&["a", "...", "d"]), &["a", "b", "c", "d"]));
    assert!(lines_match(&e(&["a", "...", "d"]), &["a", "d"]));
    assert!(!lines_match(&e(&["a", "...", "d"]), &["a", "b"]));
    assert!(!lines_match(&e(&["a"]), &["a", "b"]));
    assert_eq!(
        invocations("echo -n x | tresor set a/b --reason 'r' # c --no"),
        vec![vec![
            "set".to_string(),
            "a/b".into(),
            "--reason".into(),
            "'r'".into()
        ]]
    );
    assert_eq!(
        invocations("TRESOR_KEY_FILE=/k app.sh"),
        Vec::<Vec<String>>::new()
    );
}

/// The README's first command, after its `cargo install` part, run twice
/// in one sandbox: the second run must succeed too (a reader runs it again).
#[test]
fn the_readme_quick_start_can_run_twice() {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let first = blocks(&text)
        .into_iter()
        .find(|b| b.info == "sh")
        .expect("README has a sh block");
    let line = first
        .lines
        .iter()
        .find(|l| l.starts_with("cargo install"))
        .expect("the first command installs with cargo");
    let (_, after_install) = line
        .split_once(" && ")
        .expect("the install is followed by `&& …`");
    let sandbox = Sandbox::new();
    for run in 1..=2 {
        let (code, output) = sandbox.run(after_install);
        assert_eq!(code, 0, "run {run} of the quick start failed:\n{output}");
        assert!(
            output.lines().any(|l| l.starts_with("sk-demo")),
            "run {run} did not print the demo value back:\n{output}"
        );
    }
}

/// Every relative link of the docs points at a file that exists, and a
/// `#fragment` at a heading of that file.
#[test]
fn links_between_the_docs_resolve() {
    fn anchor(heading: &str) -> String {
        heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect()
    }
    let mut checked = 0;
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let end = rest.find(')').unwrap();
            let target = &rest[..end];
            if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target, None),
            };
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            assert!(
                resolved.exists(),
                "{}: link to {target}: no such file",
                file.display()
            );
            if let Some(fragment) = fragment {
                let body = std::fs::read_to_string(&resolved).unwrap();
                let found = body
                    .lines()
                    .filter_map(|l| l.strip_prefix('#'))
                    .map(|l| anchor(l.trim_start_matches('#')))
                    .any(|a| a == fragment);
                assert!(
                    found,
                    "{}: link to {target}: no such heading",
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} links were checked");
}

/// SECURITY.md backs its claims with tests: every test file it names
/// exists, and every test function it names is defined in the code.
#[test]
fn the_tests_security_md_points_at_exist() {
    let text = std::fs::read_to_string(root().join("SECURITY.md")).unwrap();
    let spans: Vec<&str> = text.split('`').skip(1).step_by(2).collect();
    let mut sources = String::new();
    let mut stack = vec![root().join("crates")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let (mut files, mut functions) = (0, 0);
    let mut folder = PathBuf::new();
    for span in spans {
        for part in span.split(", ") {
            if part.ends_with(".rs") {
                // A bare file name continues the folder of the last full path.
                let path = if part.contains('/') {
                    let p = root().join(part);
                    folder = p.parent().unwrap().to_path_buf();
                    p
                } else {
                    folder.join(part)
                };
                assert!(
                    path.exists(),
                    "SECURITY.md names {part}, which does not exist"
                );
                files += 1;
            } else if part.matches('_').count() >= 3
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                assert!(
                    sources.contains(&format!("fn {part}(")),
                    "SECURITY.md names the test {part}, which no crate defines"
                );
                functions += 1;
            }
        }
    }
    assert!(
        files >= 10 && functions >= 5,
        "{files} files, {functions} tests named"
    );
}
