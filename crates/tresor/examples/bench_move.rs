//! The figures of `migrate` and `sync` (scripts/bench-move runs this):
//!
//! ```text
//! bench_move populate VAULT KEY_FILE N PREFIX   # a vault with N secrets (made if missing)
//! bench_move raw-put ADDR TOKEN PREFIX N        # the keep-alive baseline: N KV v2 writes, one by one
//! bench_move sync N CHANGED                     # two vaults of N secrets, CHANGED of them changed
//! ```
//!
//! `raw-put` writes the same values `populate` makes, with one keep-alive
//! HTTP connection (ureq), each request waiting for the one before, as a
//! script or a simple client would. `sync` times the library's sync
//! in-process and, with `TRESOR_BIN` set, the `tresor sync` command on the
//! same two files. Output: one JSON object per line.

use std::path::Path;
use std::time::Instant;

use tresor::sync::{SyncOptions, sync};
use tresor::{CreateOptions, Credential, SecretName, SecretValue, Tresor, Vault};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["populate", vault, key, n, prefix] => {
            let mut v = open_or_create(Path::new(vault), Path::new(key))?;
            let t0 = Instant::now();
            fill(&mut v, prefix, n.parse()?, 0)?;
            println!(
                "{{\"bench\":\"populate\",\"secrets\":{n},\"seconds\":{:.3}}}",
                t0.elapsed().as_secs_f64()
            );
        }
        ["raw-put", addr, token, prefix, n] => raw_put(addr, token, prefix, n.parse()?)?,
        ["sync", n, changed] => sync_bench(n.parse()?, changed.parse()?)?,
        _ => {
            eprintln!("usage: see the doc comment of examples/bench_move.rs");
            std::process::exit(2);
        }
    }
    Ok(())
}

/// The value of secret `i` in round `round` (32 bytes).
fn value(i: usize, round: usize) -> SecretValue {
    SecretValue::from(format!("bench-value-r{round:03}-{i:017}"))
}

fn name(prefix: &str, i: usize) -> SecretName {
    SecretName::new(format!("{prefix}k{i:06}")).expect("a valid name")
}

fn open_or_create(path: &Path, key_file: &Path) -> Result<Vault, Box<dyn std::error::Error>> {
    if !key_file.exists() {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(key_file)?;
        f.write_all(tresor::new_key_file_text().as_bytes())?;
    }
    let key = Credential::key_material(&std::fs::read(key_file)?)
        .map_err(|e| format!("bad key file: {e}"))?;
    if path.exists() {
        let locked = tresor::LockedVault::open(path, &Default::default())?;
        return Ok(locked.unlock(&key)?);
    }
    Ok(Vault::create(path, &key, &CreateOptions::default())?.vault)
}

/// Writes secrets `0..n` (round `round`'s values), 10 000 per transaction.
fn fill(v: &mut Vault, prefix: &str, n: usize, round: usize) -> tresor::Result<()> {
    let items: Vec<(SecretName, SecretValue)> =
        (0..n).map(|i| (name(prefix, i), value(i, round))).collect();
    for chunk in items.chunks(10_000) {
        v.put_many(chunk, Some("bench"), |_| {})?;
    }
    Ok(())
}

fn raw_put(
    addr: &str,
    token: &str,
    prefix: &str,
    n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let t0 = Instant::now();
    for i in 0..n {
        let v = value(i, 0);
        let mut resp = agent
            .post(format!("{addr}/v1/secret/data/{}", name(prefix, i)))
            .header("X-Vault-Token", token)
            .send_json(serde_json::json!({"data": {"value": v.expose_text().unwrap()}}))?;
        if resp.status() != 200 {
            return Err(format!("raw put answered {}", resp.status()).into());
        }
        let _: serde_json::Value = resp.body_mut().read_json()?;
    }
    println!(
        "{{\"bench\":\"raw keep-alive put loop\",\"secrets\":{n},\"seconds\":{:.3}}}",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn sync_bench(n: usize, changed: usize) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("key");
    let (pa, pb) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let prefix = "bench/";
    let mut a = open_or_create(&pa, &key)?;
    fill(&mut a, prefix, n, 0)?;
    drop(a);
    drop(open_or_create(&pb, &key)?);
    let build = || -> Result<Tresor, Box<dyn std::error::Error>> {
        let a = open_or_create(&pa, &key)?;
        let b = open_or_create(&pb, &key)?;
        Ok(Tresor::builder()
            .vault("a", a, 10)
            .vault("b", b, 20)
            .build()?)
    };
    let options = SyncOptions::new("a", "b");

    let mut t = build()?;
    let t0 = Instant::now();
    let first = sync(&mut t, &options)?;
    let initial = t0.elapsed().as_secs_f64();
    assert_eq!(first.changes.len(), n);
    drop(t);

    // Round 1: `changed` names spread over the range change in a, timed in-process.
    let step = (n / changed.max(1)).max(1);
    let change = |round: usize| -> Result<(), Box<dyn std::error::Error>> {
        let mut a = open_or_create(&pa, &key)?;
        let items: Vec<(SecretName, SecretValue)> = (0..n)
            .step_by(step)
            .take(changed)
            .map(|i| (name(prefix, i), value(i, round)))
            .collect();
        a.put_many(&items, Some("bench change"), |_| {})?;
        Ok(())
    };
    change(1)?;
    let mut t = build()?;
    let t0 = Instant::now();
    let report = sync(&mut t, &options)?;
    let in_process = t0.elapsed().as_secs_f64();
    assert_eq!(report.changes.len(), changed, "{report:?}");
    assert_eq!(report.conflicts, 0);
    drop(t);

    // Round 2: the same through the command, a fresh process.
    let mut cli = None;
    if let Ok(bin) = std::env::var("TRESOR_BIN") {
        change(2)?;
        let config = dir.path().join("tresor.toml");
        std::fs::write(
            &config,
            format!(
                "[[stores]]\nname = \"a\"\nkind = \"vault\"\npriority = 10\n\n\
                 [[stores]]\nname = \"b\"\nkind = \"vault\"\npath = \"{}\"\npriority = 20\n",
                pb.display()
            ),
        )?;
        let t0 = Instant::now();
        let out = std::process::Command::new(bin)
            .args(["sync", "a", "b", "--json"])
            .env("TRESOR_CONFIG", &config)
            .env("TRESOR_VAULT", &pa)
            .env("TRESOR_KEY_FILE", &key)
            .env("XDG_CONFIG_HOME", dir.path().join("xdg"))
            .output()?;
        let secs = t0.elapsed().as_secs_f64();
        if !out.status.success() {
            return Err(format!(
                "tresor sync failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let r: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(r["changes"].as_array().map(Vec::len), Some(changed));
        cli = Some(secs);
    }
    println!(
        "{{\"bench\":\"sync two vaults\",\"secrets\":{n},\"changed\":{changed},\"names_read\":{},\"first_sync_seconds\":{initial:.3},\"sync_in_process_seconds\":{in_process:.3},\"tresor_sync_command_seconds\":{}}}",
        report.read,
        cli.map_or("null".to_string(), |s| format!("{s:.3}"))
    );
    Ok(())
}
