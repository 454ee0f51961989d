//! Issue 8, "a project-local tresor.toml is trusted blindly": a
//! `tresor.toml` that came with a folder is used only once the user
//! approved it (`tresor config trust`), config files others can change are
//! refused, plain http:// goes only to this machine unless the config says
//! `insecure_http = true`, the environment's OpenBao token goes only where a
//! config asks for it, and `stores` / `doctor` show where credentials come
//! from and go. Each attack runs against a local TCP listener standing in
//! for the attacker's server, which records every request it gets.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// The attacker's server: answers every request with a KV v2 "not found"
/// and keeps each request's head (request line and headers).
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        // Detached: it ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => head.push_str(&line),
                    }
                }
                log.lock().unwrap().push(head);
                let body = "{\"errors\":[]}";
                let _ = write!(
                    stream,
                    "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Writes `rel` with mode 0644 whatever the umask.
fn write_config(t: &Tresor, rel: &str, text: &str) -> std::path::PathBuf {
    let p = t.write(rel, text.as_bytes());
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    p
}

/// The hostile project config of the issue: an OpenBao store at the
/// attacker's address, given the user's own OpenBao token from the vault.
fn hostile(port: u16) -> String {
    format!(
        "[[stores]]\nname = \"team\"\nkind = \"openbao\"\naddress = \"http://127.0.0.1:{port}\"\n\
         token = \"SEC/bao/token\"\nconnect_timeout = \"2s\"\ntimeout = \"2s\"\n"
    )
}

/// Entries of the audit log (reads are audited: `audit_reads=true`).
fn audit_len(t: &Tresor) -> usize {
    t.run(&["audit", "log", "--json"]).ok().json_lines().len()
}

#[test]
fn an_unapproved_project_config_is_refused_before_anything_is_unlocked_or_contacted() {
    let server = Server::start();
    let t = Tresor::with_key();
    t.run_in(&["set", "bao/token"], b"tok-canary-5b1e").ok();
    t.run(&["settings", "audit_reads=true"]).ok();
    let config = write_config(&t, "tresor.toml", &hostile(server.port));
    let shown = std::fs::canonicalize(&config)
        .unwrap()
        .display()
        .to_string();
    let before = audit_len(&t);

    // The attack: a plain `tresor get` in the folder. Refused, exit 2,
    // naming the file and the command that approves it.
    for args in [
        vec!["get", "some/name"],
        vec!["set", "some/name"],
        vec!["ls"],
        vec!["stores"],
        vec!["doctor"],
        vec!["get", "some/name", "--json"],
    ] {
        let out = t.run_in(&args, b"value-canary");
        out.code(2);
        let err = out.err();
        assert!(
            err.contains(&shown) && err.contains(&format!("tresor config trust {shown}")),
            "{args:?}: {err}"
        );
        assert!(err.contains("not trusted"), "{err}");
    }
    // Nothing reached the server, and the vault was not read (with every
    // read audited, the log did not grow).
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    assert_eq!(audit_len(&t), before);
    // `config check` shows what the file would do, resolving nothing.
    let check = t.run(&["config", "check"]);
    check
        .code(2)
        .err_has(&["not trusted", "tresor config trust"]);
    assert!(
        check.out().contains("token from SEC/bao/token")
            && check
                .out()
                .contains(&format!("sends to http://127.0.0.1:{}", server.port)),
        "{}",
        check.out()
    );
    let path = t.run(&["config", "path", "--json"]).ok().json();
    assert_eq!(
        (path["how"].as_str(), path["trusted"].as_bool()),
        (Some("project"), Some(false))
    );
    assert!(server.requests().is_empty());
    assert_eq!(audit_len(&t), before);

    // Approved: now it is used, and the token goes where the file says.
    let trusted = t.run(&["config", "trust", "--json"]).ok().json();
    assert_eq!(trusted["path"], shown.as_str());
    assert_eq!(
        trusted["stores"][0]["credentials"][0]["from"],
        "SEC/bao/token"
    );
    let listed = t.run(&["config", "trust", "--list", "--json"]).ok().json();
    assert_eq!(
        (listed[0]["path"].as_str(), listed[0]["state"].as_str()),
        (Some(shown.as_str()), Some("ok"))
    );
    t.run(&["get", "some/name"]).code(1);
    let requests = server.requests();
    assert!(
        requests.iter().any(|r| r
            .to_ascii_lowercase()
            .contains("x-vault-token: tok-canary-5b1e")),
        "{requests:?}"
    );
    let seen = requests.len();

    // Edited after approval: refused again, and says it changed.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("# one more line\n");
    write_config(&t, "tresor.toml", &text);
    t.run(&["get", "some/name"])
        .code(2)
        .err_has(&["changed since you approved it", "tresor config trust"]);
    assert_eq!(
        t.run(&["config", "trust", "--list", "--json"]).ok().json()[0]["state"],
        "changed"
    );
    assert_eq!(server.requests().len(), seen);
    t.run(&["config", "trust", "tresor.toml"]).ok();
    t.run(&["get", "some/name"]).code(1);
    assert!(server.requests().len() > seen);
    let seen = server.requests().len();

    // Untrusted: refused again.
    let untrust = t.run(&["config", "untrust", "--json"]).ok().json();
    assert_eq!(untrust["removed"], true);
    t.run(&["get", "some/name"])
        .code(2)
        .err_has(&["not trusted"]);
    assert_eq!(server.requests().len(), seen);
    assert_eq!(
        t.run(&["config", "untrust", "--json"]).ok().json()["removed"],
        false
    );

    // --config and TRESOR_CONFIG are the user's own choice: no approval.
    t.run(&["get", "some/name", "--config", "tresor.toml"])
        .code(1);
    assert!(server.requests().len() > seen);
    let seen = server.requests().len();
    t.cmd(&["get", "some/name"])
        .env("TRESOR_CONFIG", &config)
        .run()
        .code(1);
    assert!(server.requests().len() > seen);

    // The trust list is the user's private file.
    let list = t.path("xdg/tresor/trusted-configs");
    let mode = std::fs::metadata(&list).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn the_user_config_needs_no_approval() {
    let t = Tresor::with_key();
    write_config(
        &t,
        "xdg-config/tresor/config.toml",
        "[[stores]]\nname = \"mine\"\nkind = \"vault\"\n",
    );
    let stores = t.run(&["stores", "--json"]).ok().json();
    assert_eq!(stores[0]["name"], "mine");
    assert_eq!(
        t.run(&["config", "path", "--json"]).ok().json()["how"],
        "user"
    );
}

#[test]
fn config_files_others_can_change_are_refused() {
    let t = Tresor::with_key();
    let text = "[[stores]]\nname = \"local\"\nkind = \"vault\"\n";
    let p = write_config(&t, "named.toml", text);
    let named = p.display().to_string();
    t.run(&["stores", "--config", &named]).ok();
    for mode in [0o664, 0o646, 0o666] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        t.run(&["get", "a", "--config", &named])
            .code(2)
            .err_has(&["writable by group or others", "chmod go-w"]);
        t.run(&["config", "trust", &named]).code(2);
    }
    // The user config and a project config too, approved or not.
    let user = write_config(&t, "xdg-config/tresor/config.toml", text);
    std::fs::set_permissions(&user, std::fs::Permissions::from_mode(0o620)).unwrap();
    t.run(&["ls"])
        .code(2)
        .err_has(&["config.toml", "writable by group or others"]);
    let project = write_config(&t, "tresor.toml", text);
    t.run(&["config", "trust"]).ok();
    t.run(&["ls"]).ok();
    std::fs::set_permissions(&project, std::fs::Permissions::from_mode(0o666)).unwrap();
    t.run(&["ls"])
        .code(2)
        .err_has(&["writable by group or others"]);
    std::fs::set_permissions(&project, std::fs::Permissions::from_mode(0o644)).unwrap();
    t.run(&["ls"]).ok();

    // Another user's file. Only root can make one here; root's own files
    // are accepted (root can change any file anyway).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        t.run(&["ls", "--config", &named])
            .code(2)
            .err_has(&["owned by uid 65534"]);
        std::os::unix::fs::chown(&project, Some(65534), None).unwrap();
        t.run(&["ls"]).code(2).err_has(&["owned by uid 65534"]);
    } else {
        eprintln!("not root: a file of another user cannot be made; checked as root in CI");
    }
}

#[test]
fn plain_http_to_another_machine_needs_insecure_http_and_warns_on_every_use() {
    let server = Server::start();
    let t = Tresor::with_key();
    // 0.0.0.0 reaches this machine on Linux but is not a loopback address:
    // it stands in for a server elsewhere.
    let store = |extra: &str| {
        format!(
            "[[stores]]\nname = \"far\"\nkind = \"openbao\"\naddress = \"http://0.0.0.0:{}\"\n\
             token = \"literal-token-canary\"\nconnect_timeout = \"2s\"\n{extra}",
            server.port
        )
    };
    let p = write_config(&t, "far.toml", &store(""))
        .display()
        .to_string();
    let out = t.run(&["get", "some/name", "--config", &p]);
    out.code(2)
        .err_has(&["far", "not this machine", "insecure_http = true"]);
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    let check = t.run(&["config", "check", "--config", &p]);
    assert!(
        check.code(2).out().contains("insecure_http = true"),
        "{}",
        check.out()
    );

    write_config(&t, "far.toml", &store("insecure_http = true\n"));
    for _ in 0..2 {
        let out = t.run(&["get", "some/name", "--config", &p]);
        out.code(1).err_has(&["warning", "far", "unencrypted"]);
        assert!(!out.err().contains("literal-token-canary"));
    }
    assert_eq!(server.requests().len(), 2);
    // Loopback needs no flag and prints no warning.
    let near = write_config(
        &t,
        "near.toml",
        &format!(
            "[[stores]]\nname = \"near\"\nkind = \"openbao\"\naddress = \"http://localhost:{}\"\n\
             token = \"t\"\n",
            server.port
        ),
    );
    let out = t.run(&["get", "some/name", "--config", &near.display().to_string()]);
    assert!(!out.code(1).err().contains("warning"), "{}", out.err());
}

#[test]
fn the_environments_openbao_token_goes_only_where_a_config_asks_for_it() {
    let server = Server::start();
    let t = Tresor::with_key();
    let base = format!(
        "[[stores]]\nname = \"team\"\nkind = \"openbao\"\naddress = \"http://127.0.0.1:{}\"\n",
        server.port
    );
    let p = write_config(&t, "team.toml", &base).display().to_string();
    for var in ["BAO_TOKEN", "VAULT_TOKEN"] {
        let out = t
            .cmd(&["get", "some/name", "--config", &p])
            .env(var, "env-token-canary")
            .run();
        out.code(2).err_has(&["token_from_env = true"]);
    }
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    write_config(&t, "team.toml", &format!("{base}token_from_env = true\n"));
    let stores = t
        .cmd(&["stores", "--json", "--config", &p])
        .env("BAO_TOKEN", "env-token-canary")
        .run();
    let row = &stores.ok().json()[0];
    assert_eq!(row["credentials"][0]["kind"], "ambient");
    assert!(
        row["credentials"][0]["from"]
            .as_str()
            .unwrap()
            .contains("BAO_TOKEN")
    );
    assert!(!stores.out().contains("env-token-canary"));
    t.cmd(&["get", "some/name", "--config", &p])
        .env("BAO_TOKEN", "env-token-canary")
        .run()
        .code(1);
    assert!(
        server.requests().iter().any(|r| r
            .to_ascii_lowercase()
            .contains("x-vault-token: env-token-canary")),
        "{:?}",
        server.requests()
    );
}

#[test]
fn stores_and_doctor_show_where_credentials_come_from_and_go() {
    let t = Tresor::with_key();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    t.run_in(&["set", "bao/token"], b"tok").ok();
    let p = write_config(
        &t,
        "all.toml",
        &format!(
            r#"[[stores]]
name = "sec"
kind = "openbao"
address = "http://127.0.0.1:{closed}"
token = "SEC/bao/token"
connect_timeout = "300ms"

[[stores]]
name = "lit"
kind = "openbao"
address = "http://127.0.0.1:{closed}"
token = "literal-canary-77"
connect_timeout = "300ms"

[[stores]]
name = "approle"
kind = "openbao"
address = "http://127.0.0.1:{closed}"
role_id = "ENV/ROLE"
secret_id = "ENV/SECRET_ID"
connect_timeout = "300ms"

[[stores]]
name = "cloud"
kind = "aws"
region = "eu-west-1"
endpoint = "http://127.0.0.1:{closed}"
connect_timeout = "300ms"
max_attempts = 1

[[stores]]
name = "local"
kind = "vault"
"#
        ),
    )
    .display()
    .to_string();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--config", &p]);
        t.cmd(&all).env("ROLE", "r").env("SECRET_ID", "s").run()
    };
    let stores = run(&["stores", "--json"]);
    let rows = stores.ok().json();
    let row = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()
            .clone()
    };
    let sec = row("sec");
    assert_eq!(
        (
            sec["credentials"][0]["option"].as_str(),
            sec["credentials"][0]["kind"].as_str(),
            sec["credentials"][0]["from"].as_str()
        ),
        (Some("token"), Some("secret"), Some("SEC/bao/token"))
    );
    assert_eq!(sec["sends_to"], format!("http://127.0.0.1:{closed}"));
    assert_eq!(row("lit")["credentials"][0]["kind"], "literal");
    let approle = row("approle");
    assert_eq!(approle["credentials"][1]["from"], "ENV/SECRET_ID");
    assert_eq!(row("cloud")["credentials"][0]["kind"], "ambient");
    assert_eq!(row("local")["credentials"][0]["kind"], "none");
    assert!(!stores.out().contains("literal-canary-77"));

    let text = run(&["stores"]).ok().out();
    for want in [
        "credentials: token from SEC/bao/token; sends to http://127.0.0.1:",
        "credentials: token from a literal in the config",
        "secret_id from ENV/SECRET_ID",
        "ambient: the AWS default chain",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(!text.contains("literal-canary-77"));
    let doctor = run(&["doctor", "--json"]);
    let d = doctor.ok().json();
    let sec = d["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "sec")
        .unwrap();
    assert_eq!(sec["credentials"][0]["from"], "SEC/bao/token");
    let doctor = run(&["doctor"]);
    assert!(
        doctor.ok().out().contains("token from SEC/bao/token"),
        "{}",
        doctor.out()
    );
    assert!(
        !doctor.out().contains("literal-canary-77") && !doctor.err().contains("literal-canary-77")
    );
}
