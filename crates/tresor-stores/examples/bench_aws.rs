//! get/put latency through the `aws` store against the same SDK client
//! calling Secrets Manager directly, side by side on one server.
//!
//! ```sh
//! scripts/services exec -- cargo run --release -p tresor-stores --features aws \
//!     --example bench_aws [ROUNDS]
//! ```
//!
//! Each round runs, in alternating order, one raw `GetSecretValue`, one
//! store `get`, one raw `PutSecretValue` and one store `put` on two secrets
//! of the same size; medians and the store/raw ratios are printed. A store
//! `put` is two calls (`DescribeSecret` for the next version number, then
//! `PutSecretValue`), so its ratio is about 2 by design.

use std::time::{Duration, Instant};

use tresor_core::{PutOptions, SecretName, SecretValue, Selector, Store};
use tresor_stores::aws::{Aws, AwsOptions};

fn main() {
    let endpoint = std::env::var("TRESOR_TEST_AWS_ENDPOINT")
        .expect("TRESOR_TEST_AWS_ENDPOINT: run under scripts/services exec");
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let prefix = format!("bench-{}/", std::process::id());
    let mut store = Aws::connect(AwsOptions {
        endpoint: Some(endpoint),
        prefix: prefix.clone(),
        ..AwsOptions::default()
    })
    .expect("connect");
    let client = store.client().clone();
    let through = SecretName::new("bench/through").unwrap();
    let raw_id = format!("{prefix}bench/raw");
    let value = "v".repeat(64);
    store
        .put(
            &through,
            &SecretValue::copy_from(value.as_bytes()),
            &PutOptions::default(),
        )
        .expect("seed");
    store
        .block_on(
            client
                .create_secret()
                .name(&raw_id)
                .secret_string(&value)
                .send(),
        )
        .expect("seed raw");

    let (mut raw_get, mut store_get, mut raw_put, mut store_put) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds + 10 {
        let keep = round >= 10;
        let raw_first = round % 2 == 0;
        for turn in 0..2 {
            if (turn == 0) == raw_first {
                let t0 = Instant::now();
                let out = store
                    .block_on(client.get_secret_value().secret_id(&raw_id).send())
                    .expect("raw get");
                assert_eq!(out.secret_string().map(str::len), Some(64));
                let t1 = Instant::now();
                store
                    .block_on(
                        client
                            .put_secret_value()
                            .secret_id(&raw_id)
                            .secret_string(&value)
                            .send(),
                    )
                    .expect("raw put");
                if keep {
                    raw_get.push(t1 - t0);
                    raw_put.push(t1.elapsed());
                }
            } else {
                let t0 = Instant::now();
                let got = store.get(&through, Selector::default()).expect("get");
                assert_eq!(got.value.len(), 64);
                let t1 = Instant::now();
                store
                    .put(
                        &through,
                        &SecretValue::copy_from(value.as_bytes()),
                        &PutOptions::default(),
                    )
                    .expect("put");
                if keep {
                    store_get.push(t1 - t0);
                    store_put.push(t1.elapsed());
                }
            }
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (rg, sg) = (median(&mut raw_get), median(&mut store_get));
    let (rp, sp) = (median(&mut raw_put), median(&mut store_put));
    println!("rounds: {rounds} (after 10 warm-up rounds), medians against moto");
    println!(
        "get: raw SDK {rg:?}, tresor aws store {sg:?}, ratio {:.2}",
        sg.as_secs_f64() / rg.as_secs_f64()
    );
    println!(
        "put: raw SDK {rp:?}, tresor aws store {sp:?}, ratio {:.2}",
        sp.as_secs_f64() / rp.as_secs_f64()
    );
    for id in [raw_id, format!("{prefix}bench/through")] {
        let _ = store.block_on(
            client
                .delete_secret()
                .secret_id(id)
                .force_delete_without_recovery(true)
                .send(),
        );
    }
}
