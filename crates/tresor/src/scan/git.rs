//! Scanning what git holds: the index (`--staged`, what the next commit
//! will contain) and the last commits' added lines (`--history N`),
//! through the `git` binary (already on every machine that has a
//! repository; a git library would add a large dependency tree for two
//! commands). Output is read as a stream: memory does not grow with the
//! size of the index or the history.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::*;

/// The pre-commit hook `tresor scan --install-hook` writes.
pub const HOOK: &str = "#!/bin/sh\n\
# Installed by `tresor scan --install-hook`: the commit is refused when the\n\
# staged files hold a stored secret's value (or an encoded form of it) or a\n\
# known token shape. `git commit --no-verify` skips this check.\n\
exec tresor scan --staged\n";

impl Scanner {
    /// Scans the files staged in the git index of the repository at `repo`
    /// (added, copied, modified or renamed ones), as they are in the index.
    pub fn scan_staged(&self, repo: &Path, options: &Options) -> Result<Report> {
        let raw = git(repo)
            .args([
                "diff",
                "--cached",
                "--raw",
                "-z",
                "--no-abbrev",
                "--no-renames",
                "--diff-filter=ACMR",
            ])
            .output()
            .map_err(unavailable)?;
        if !raw.status.success() {
            return Err(git_failed("diff --cached", &raw.stderr));
        }
        // `:oldmode newmode oldsha newsha STATUS\0path\0` per file.
        let mut staged: Vec<(String, String)> = Vec::new();
        let mut fields = raw.stdout.split(|&b| b == 0);
        while let Some(meta) = fields.next() {
            if meta.is_empty() {
                continue;
            }
            let Some(path) = fields.next() else { break };
            let meta = String::from_utf8_lossy(meta);
            let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
            // Submodules (mode 160000) and symbolic links hold no content to scan.
            if parts.len() >= 4 && parts[1].starts_with("100") {
                staged.push((
                    parts[3].to_string(),
                    String::from_utf8_lossy(path).into_owned(),
                ));
            }
        }
        let mut report = self.empty_report();
        if staged.is_empty() {
            return Ok(report);
        }
        let mut child = git(repo)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(unavailable)?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let ids: Vec<String> = staged.iter().map(|(id, _)| format!("{id}\n")).collect();
        let feeder = std::thread::spawn(move || {
            for id in ids {
                if stdin.write_all(id.as_bytes()).is_err() {
                    break;
                }
            }
        });
        let mut out = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut header = Vec::new();
        let mut buf = Vec::new();
        for (_, path) in &staged {
            header.clear();
            out.read_until(b'\n', &mut header)
                .map_err(io("git cat-file"))?;
            let text = String::from_utf8_lossy(&header);
            let size: u64 = text
                .trim_end()
                .rsplit(' ')
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Error::Unavailable {
                    store: "git".into(),
                    reason: format!("git cat-file answered {:?} for {path}", text.trim_end()),
                })?;
            if size > options.max_file_size {
                // Read past it without keeping it: memory stays flat.
                std::io::copy(&mut (&mut out).take(size + 1), &mut std::io::sink())
                    .map_err(io("git cat-file"))?;
                report.skipped_large += 1;
                continue;
            }
            buf.clear();
            (&mut out)
                .take(size + 1)
                .read_to_end(&mut buf)
                .map_err(io("git cat-file"))?;
            buf.truncate(size as usize);
            if memchr::memchr(0, &buf[..buf.len().min(BINARY_PROBE)]).is_some() {
                report.skipped_binary += 1;
            } else {
                report.files += 1;
                report.bytes += size;
                self.scan_bytes(path, &buf, 1, &mut report.findings);
            }
            zeroize::Zeroize::zeroize(buf.as_mut_slice());
        }
        drop(out);
        let _ = feeder.join();
        let _ = child.wait();
        report.sort();
        Ok(report)
    }

    /// Scans the lines the last `commits` commits (from `HEAD`) added, as
    /// `git log -p` shows them; findings are reported as
    /// `COMMIT:path:line:column` (the line in that commit's file).
    pub fn scan_history(&self, repo: &Path, commits: u64) -> Result<Report> {
        let mut child = git(repo)
            .args([
                "log",
                "-p",
                "--no-color",
                "--no-ext-diff",
                "--no-renames",
                "--unified=0",
                "--format=tresor-commit %h",
            ])
            .arg(format!("-n{commits}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(unavailable)?;
        let mut out = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut report = self.empty_report();
        let mut line = Vec::new();
        let (mut commit, mut path) = (String::new(), None::<String>);
        let (mut in_hunk, mut next_line) = (false, 1u64);
        loop {
            line.clear();
            if out.read_until(b'\n', &mut line).map_err(io("git log"))? == 0 {
                break;
            }
            if let Some(rest) = line.strip_prefix(b"tresor-commit ") {
                commit = String::from_utf8_lossy(rest).trim().to_string();
                (path, in_hunk) = (None, false);
            } else if line.starts_with(b"diff --git ") {
                (path, in_hunk) = (None, false);
            } else if !in_hunk && line.starts_with(b"+++ ") {
                let p = String::from_utf8_lossy(&line[4..]).trim_end().to_string();
                path = p.strip_prefix("b/").map(str::to_string);
                if path.is_some() {
                    report.files += 1;
                }
            } else if !in_hunk && line.starts_with(b"Binary files ") {
                report.skipped_binary += 1;
            } else if line.starts_with(b"@@ ") {
                in_hunk = true;
                next_line = hunk_start(&line).unwrap_or(1);
            } else if in_hunk && let Some(added) = line.strip_prefix(b"+") {
                if let Some(p) = &path {
                    report.bytes += added.len() as u64;
                    let shown = format!("{commit}:{p}");
                    self.scan_bytes(&shown, added, next_line, &mut report.findings);
                }
                next_line += 1;
            } else if in_hunk && line.starts_with(b" ") {
                next_line += 1;
            }
            zeroize::Zeroize::zeroize(line.as_mut_slice());
        }
        let status = child.wait().map_err(unavailable)?;
        if !status.success() {
            let mut err = Vec::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_end(&mut err);
            }
            return Err(git_failed("log", &err));
        }
        report.sort();
        Ok(report)
    }
}

/// Writes the pre-commit hook ([`HOOK`]) into the repository at `repo`
/// (its hooks folder as git says, `core.hooksPath` included). An identical
/// hook is left as it is (`Ok(false)`); a different one is never replaced
/// ([`Error::Exists`]). Returns the hook's path and whether it was written.
pub fn install_hook(repo: &Path) -> Result<(PathBuf, bool)> {
    let out = git(repo)
        .args(["rev-parse", "--git-path", "hooks"])
        .output()
        .map_err(unavailable)?;
    if !out.status.success() {
        return Err(git_failed("rev-parse", &out.stderr));
    }
    let hooks = repo.join(String::from_utf8_lossy(&out.stdout).trim());
    std::fs::create_dir_all(&hooks).map_err(|source| Error::Io {
        store: "git".into(),
        path: hooks.clone(),
        source,
    })?;
    let path = hooks.join("pre-commit");
    match std::fs::symlink_metadata(&path) {
        Ok(_) => {
            let same = std::fs::read(&path).is_ok_and(|b| b == HOOK.as_bytes());
            return if same {
                Ok((path, false))
            } else {
                Err(Error::Exists { path })
            };
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::Io {
                store: "git".into(),
                path,
                source,
            });
        }
    }
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(&path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Exists { path: path.clone() },
            _ => Error::Io {
                store: "git".into(),
                path: path.clone(),
                source,
            },
        })?;
    file.write_all(HOOK.as_bytes())
        .map_err(|source| Error::Io {
            store: "git".into(),
            path: path.clone(),
            source,
        })?;
    Ok((path, true))
}

fn git(repo: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(repo).stdin(Stdio::null());
    c
}

/// `@@ -a,b +c,d @@` → c.
fn hunk_start(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    let plus = text.split(' ').find(|w| w.starts_with('+'))?;
    plus[1..].split(',').next()?.parse().ok()
}

fn unavailable(e: std::io::Error) -> Error {
    Error::Unavailable {
        store: "git".into(),
        reason: format!("could not run git: {e}"),
    }
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::Unavailable {
        store: "git".into(),
        reason: format!("reading {what}: {e}"),
    }
}

fn git_failed(what: &str, stderr: &[u8]) -> Error {
    Error::Validation(format!(
        "git {what} failed: {}",
        String::from_utf8_lossy(stderr).trim()
    ))
}
