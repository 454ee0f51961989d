//! In-process benchmark of the manager, each figure side by side with its
//! baseline in one run (alternating rounds, medians). Run by
//! `scripts/bench-manager`; by hand:
//!
//! 1. `get` through the manager (one vault store) against `Vault::get` on
//!    the very same open vault, 1000 secrets, read audit on (the default).
//! 2. With `TRESOR_TEST_BAO_ADDR` / `TRESOR_TEST_BAO_TOKEN` set (scripts/services):
//!    OpenBao `get` and `put` through the manager (store without cache)
//!    against a plain keep-alive ureq agent sending the same KV v2 requests to
//!    the same dev server.
//!
//! Method: many short pairs (A then B, the order alternating), each timing
//! the same number of operations; the figure is the median of the per-pair
//! time ratios, which cancels the load drift of a shared machine. Medians of
//! the per-operation times are printed too.
//!
//! ```text
//! cargo run --release -p tresor --example bench_manager -- [PAIRS] [OPS_PER_SIDE]
//! ```
//!
//! Output: one JSON object per line.

use std::time::Instant;

use tresor::stores::StoreOptions;
use tresor::stores::openbao::OpenBao;
use tresor::{
    CreateOptions, Credential, PutOptions, SecretName, SecretValue, Selector, StoreSettings,
    Tresor, Vault,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let pairs: usize = args.next().map_or(Ok(201), |s| s.parse())?;
    let ops: usize = args.next().map_or(Ok(200), |s| s.parse())?;
    local_vault(pairs, ops)?;
    if let (Ok(addr), Ok(token)) = (
        std::env::var("TRESOR_TEST_BAO_ADDR"),
        std::env::var("TRESOR_TEST_BAO_TOKEN"),
    ) {
        // Network round trips cost ~100x a vault read: fewer per side.
        openbao(&addr, &token, pairs, (ops / 20).max(5))?;
    } else {
        eprintln!("bench_manager: TRESOR_TEST_BAO_ADDR unset, OpenBao figures skipped");
    }
    Ok(())
}

/// Seconds per operation of `ops` calls of `f`.
fn time<S>(state: &mut S, ops: usize, f: &mut impl FnMut(&mut S, usize)) -> f64 {
    let start = Instant::now();
    for i in 0..ops {
        f(state, i);
    }
    start.elapsed().as_secs_f64() / ops as f64
}

/// Paired measurement of a baseline `a` and a candidate `b` on shared
/// state: (median seconds per op of a, of b, median of the ratios b/a).
fn paired<S>(
    state: &mut S,
    pairs: usize,
    ops: usize,
    mut a: impl FnMut(&mut S, usize),
    mut b: impl FnMut(&mut S, usize),
) -> (f64, f64, f64) {
    // Warm both paths.
    time(state, ops, &mut a);
    time(state, ops, &mut b);
    let (mut ta, mut tb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for p in 0..pairs {
        let (x, y) = if p % 2 == 0 {
            let x = time(state, ops, &mut a);
            (x, time(state, ops, &mut b))
        } else {
            let y = time(state, ops, &mut b);
            (time(state, ops, &mut a), y)
        };
        ta.push(x);
        tb.push(y);
        ratios.push(y / x);
    }
    (median(ta), median(tb), median(ratios))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn local_vault(pairs: usize, ops: usize) -> Result<(), Box<dyn std::error::Error>> {
    const N: usize = 1000;
    let dir = tempfile::tempdir()?;
    let key = Credential::key_material(tresor::new_key_file_text().as_bytes())
        .map_err(|e| format!("key: {e}"))?;
    let mut vault = Vault::create(&dir.path().join("v.db"), &key, &CreateOptions::default())?.vault;
    let names: Vec<SecretName> = (0..N)
        .map(|i| SecretName::new(format!("service{:03}/key{i:05}", i % 97)))
        .collect::<Result<_, _>>()?;
    for n in &names {
        vault.put(
            n,
            &SecretValue::copy_from(b"a-value-of-32-bytes-for-the-test"),
            &PutOptions::default(),
        )?;
    }
    let mut tresor = Tresor::builder().vault("local", vault, 50).build()?;
    let mut k = 0usize;
    let (direct, managed, ratio) = paired(
        &mut tresor,
        pairs,
        ops,
        |t, _| {
            k = (k + 7) % N;
            let v = t.local_vault().expect("open");
            v.get(&names[k], Selector::default()).expect("get");
        },
        |t, i| {
            t.get(&names[(i * 13) % N], Selector::default())
                .expect("get");
        },
    );
    println!(
        "{{\"bench\":\"get, local vault, in-process\",\"secrets\":{N},\"read_audit\":true,\"direct_vault_get_us\":{:.2},\"manager_get_us\":{:.2},\"time_ratio_manager_over_direct\":{ratio:.3},\"pairs\":{pairs},\"ops_per_side\":{ops}}}",
        direct * 1e6,
        managed * 1e6
    );
    Ok(())
}

struct Bao {
    tresor: Tresor,
    agent: ureq::Agent,
}

fn openbao(
    addr: &str,
    token: &str,
    pairs: usize,
    ops: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let options = StoreOptions::new("team")
        .with("address", addr)
        .with("token", token);
    let bao = OpenBao::from_options(&options)?;
    let tresor = Tresor::builder()
        .store_with(
            "team",
            bao,
            StoreSettings {
                remote: true,
                ..StoreSettings::new(10)
            },
        )
        // No local vault is touched: the store keeps no offline copies.
        .vault_path("/nonexistent/unused.db")
        .build()?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut state = Bao { tresor, agent };
    let name = SecretName::new("bench/manager/get")?;
    let value = SecretValue::copy_from(b"a-value-of-32-bytes-for-the-test");
    state.tresor.set(&name, &value, &PutOptions::default())?;
    let url = format!("{addr}/v1/secret/data/{name}");
    let raw_get = |s: &mut Bao, _| {
        let mut resp = s
            .agent
            .get(&url)
            .header("X-Vault-Token", token)
            .call()
            .expect("raw get");
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.body_mut().read_json().expect("json");
        assert!(body["data"]["data"]["value"].is_string());
    };
    let ours_get = |s: &mut Bao, _| {
        s.tresor.get(&name, Selector::default()).expect("get");
    };
    let (raw, ours, ratio) = paired(&mut state, pairs, ops, raw_get, ours_get);
    report("get", raw, ours, ratio, pairs, ops);

    // Both sides write the same body, each to its own entry.
    let put_url = format!("{addr}/v1/secret/data/bench/manager/put-raw");
    let raw_put = |s: &mut Bao, _| {
        let mut resp = s
            .agent
            .post(&put_url)
            .header("X-Vault-Token", token)
            .send_json(serde_json::json!({"data": {"value": "a-value-of-32-bytes-for-the-test"}}))
            .expect("raw put");
        assert_eq!(resp.status(), 200);
        // Read the reply (its version) as a client would: an unread body
        // also keeps the connection from being reused.
        let body: serde_json::Value = resp.body_mut().read_json().expect("json");
        assert!(body["data"]["version"].is_u64());
    };
    let put_name = SecretName::new("bench/manager/put-tresor")?;
    let ours_put = |s: &mut Bao, _| {
        s.tresor
            .set(&put_name, &value, &PutOptions::default())
            .expect("put");
    };
    let (raw, ours, ratio) = paired(&mut state, pairs, ops, raw_put, ours_put);
    report("put", raw, ours, ratio, pairs, ops);

    for n in [
        "bench/manager/get",
        "bench/manager/put-tresor",
        "bench/manager/put-raw",
    ] {
        let _ = state
            .agent
            .delete(format!("{addr}/v1/secret/metadata/{n}"))
            .header("X-Vault-Token", token)
            .call();
    }
    Ok(())
}

fn report(op: &str, raw: f64, ours: f64, ratio: f64, pairs: usize, ops: usize) {
    println!(
        "{{\"bench\":\"openbao {op}, in-process\",\"raw_ureq_keepalive_us\":{:.1},\"tresor_manager_us\":{:.1},\"overhead_percent\":{:.1},\"pairs\":{pairs},\"ops_per_side\":{ops}}}",
        raw * 1e6,
        ours * 1e6,
        (ratio - 1.0) * 100.0
    );
}
