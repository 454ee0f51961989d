//! In-process benchmark of the manager, each figure side by side with its
//! baseline in one run (alternating rounds, medians). Run by
//! `scripts/bench-manager`; by hand:
//!
//! ```text
//! cargo run --release -p tresor --example bench_manager -- [SECONDS_PER_ROUND] [ROUNDS]
//! ```
//!
//! 1. `get` through the manager (one vault store) against `Vault::get` on
//!    the very same open vault, 1000 secrets, read audit on (the default).
//! 2. With `TRESOR_TEST_BAO_ADDR` / `TRESOR_TEST_BAO_TOKEN` set (scripts/services):
//!    OpenBao `get` and `put` through the manager (store without cache)
//!    against a plain keep-alive ureq agent sending the same KV v2 requests to
//!    the same dev server.
//!
//! Output: one JSON object per line.

use std::time::{Duration, Instant};

use tresor::stores::StoreOptions;
use tresor::stores::openbao::OpenBao;
use tresor::{
    CreateOptions, Credential, PutOptions, SecretName, SecretValue, Selector, StoreSettings, Tresor,
    Vault,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().map_or(Ok(1.0), |s| s.parse())?;
    let rounds: usize = args.next().map_or(Ok(7), |s| s.parse())?;
    let round = Duration::from_secs_f64(secs);
    local_vault(round, rounds)?;
    if let (Ok(addr), Ok(token)) = (
        std::env::var("TRESOR_TEST_BAO_ADDR"),
        std::env::var("TRESOR_TEST_BAO_TOKEN"),
    ) {
        openbao(&addr, &token, round, rounds)?;
    } else {
        eprintln!("bench_manager: TRESOR_TEST_BAO_ADDR unset, OpenBao figures skipped");
    }
    Ok(())
}

/// Runs `f` repeatedly for about `round`; returns operations per second.
fn rate(round: Duration, mut f: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < round {
        for _ in 0..16 {
            f(n);
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn local_vault(round: Duration, rounds: usize) -> Result<(), Box<dyn std::error::Error>> {
    const N: usize = 1000;
    let dir = tempfile::tempdir()?;
    let key = Credential::key_material(tresor::new_key_file_text().as_bytes())
        .map_err(|e| format!("key: {e}"))?;
    let mut vault = Vault::create(&dir.path().join("v.db"), &key, &CreateOptions::default())?.vault;
    let names: Vec<SecretName> = (0..N)
        .map(|i| SecretName::new(format!("service{:03}/key{i:05}", i % 97)))
        .collect::<Result<_, _>>()?;
    for n in &names {
        vault.put(n, &SecretValue::copy_from(b"a-value-of-32-bytes-for-the-test"), &PutOptions::default())?;
    }
    let mut tresor = Tresor::builder().vault("local", vault, 50).build()?;
    let (mut direct, mut managed) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        // Alternate which goes first, so drift hits both alike.
        let d = |t: &mut Tresor| {
            let v = t.local_vault().expect("open");
            rate(round, |i| {
                v.get(&names[i % N], Selector::default()).expect("get");
            })
        };
        let m = |t: &mut Tresor| {
            rate(round, |i| {
                t.get(&names[i % N], Selector::default()).expect("get");
            })
        };
        if r % 2 == 0 {
            direct.push(d(&mut tresor));
            managed.push(m(&mut tresor));
        } else {
            managed.push(m(&mut tresor));
            direct.push(d(&mut tresor));
        }
    }
    let (d, m) = (median(direct), median(managed));
    println!(
        "{{\"bench\":\"get local vault, in-process\",\"secrets\":{N},\"direct_vault_get_per_s\":{d:.0},\"manager_get_per_s\":{m:.0},\"time_ratio_manager_over_direct\":{:.3}}}",
        d / m
    );
    Ok(())
}

fn openbao(addr: &str, token: &str, round: Duration, rounds: usize) -> Result<(), Box<dyn std::error::Error>> {
    let options = StoreOptions::new("team")
        .with("address", addr)
        .with("token", token);
    let bao = OpenBao::from_options(&options)?;
    let mut tresor = Tresor::builder()
        .store_with("team", bao, StoreSettings { remote: true, ..StoreSettings::new(10) })
        // No local vault is touched: the store has no cache.
        .vault_path("/nonexistent/unused.db")
        .build()?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let name = SecretName::new("bench/manager/get")?;
    let value = SecretValue::copy_from(b"a-value-of-32-bytes-for-the-test");
    tresor.set(&name, &value, &PutOptions::default())?;
    let url = format!("{addr}/v1/secret/data/{name}");
    let raw_get = |agent: &ureq::Agent| {
        let mut resp = agent
            .get(&url)
            .header("X-Vault-Token", token)
            .call()
            .expect("raw get");
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.body_mut().read_json().expect("json");
        assert!(body["data"]["data"]["value"].is_string());
    };
    let put_url = format!("{addr}/v1/secret/data/bench/manager/put-raw");
    let raw_put = |agent: &ureq::Agent| {
        let resp = agent
            .post(&put_url)
            .header("X-Vault-Token", token)
            .send_json(serde_json::json!({"data": {"value": "a-value-of-32-bytes-for-the-test"}}))
            .expect("raw put");
        assert_eq!(resp.status(), 200);
    };
    let put_name = SecretName::new("bench/manager/put-tresor")?;
    let (mut rg, mut tg, mut rp, mut tp) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        let mut pair = |first_raw: bool| {
            let raw = || rate(round, |_| raw_get(&agent));
            let mut ours = || {
                rate(round, |_| {
                    tresor.get(&name, Selector::default()).expect("get");
                })
            };
            if first_raw {
                rg.push(raw());
                tg.push(ours());
            } else {
                tg.push(ours());
                rg.push(raw());
            }
        };
        pair(r % 2 == 0);
        let raw = |rp: &mut Vec<f64>| rp.push(rate(round, |_| raw_put(&agent)));
        let mut ours = |tp: &mut Vec<f64>| {
            tp.push(rate(round, |_| {
                tresor.set(&put_name, &value, &PutOptions::default()).expect("put");
            }))
        };
        if r % 2 == 0 {
            raw(&mut rp);
            ours(&mut tp);
        } else {
            ours(&mut tp);
            raw(&mut rp);
        }
    }
    for (op, raw, ours) in [("get", rg, tg), ("put", rp, tp)] {
        let (raw, ours) = (median(raw), median(ours));
        println!(
            "{{\"bench\":\"openbao {op}, in-process\",\"raw_ureq_keepalive_us\":{:.1},\"tresor_manager_us\":{:.1},\"overhead_percent\":{:.1}}}",
            1e6 / raw,
            1e6 / ours,
            (raw / ours - 1.0) * 100.0
        );
    }
    // Clean up the benchmark's entries.
    for n in ["bench/manager/get", "bench/manager/put-tresor", "bench/manager/put-raw"] {
        let _ = agent
            .delete(format!("{addr}/v1/secret/metadata/{n}"))
            .header("X-Vault-Token", token)
            .call();
    }
    Ok(())
}
