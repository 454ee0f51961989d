//! `scripts/bench-import`: the `dtpy` store's get and set on a keystore the
//! framework made, timed in process, to set beside the framework's own
//! `LocalSecretStore` doing the same on the same file.
//!
//! Usage: `bench_dtpy DIR N` with `KEYSTORE_PASSWORD` set; DIR holds
//! `myapp.v3keystore`. Prints `{"get_s": …, "set_s": …, "n": N}`.

use std::time::Instant;

use tresor_core::{PutOptions, SecretName, SecretValue, Selector, Store};
use tresor_stores::dtpy::{Dtpy, DtpyOptions};
use zeroize::Zeroizing;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::Path::new(&args[1]);
    let n: usize = args[2].parse().expect("N");
    let password = std::env::var("KEYSTORE_PASSWORD").expect("KEYSTORE_PASSWORD");
    let mut store = Dtpy::open(DtpyOptions::new(
        dir.join("myapp.v3keystore"),
        Some(Zeroizing::new(password)),
    ))
    .expect("open");
    let names: Vec<SecretName> = store
        .list("")
        .expect("list")
        .into_iter()
        .map(|i| i.name)
        .collect();
    let t = Instant::now();
    for i in 0..n {
        let s = store
            .get(&names[i % names.len()], Selector::default())
            .expect("get");
        std::hint::black_box(s.value.len());
    }
    let get_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..n {
        let name = SecretName::new(format!("bench_set_{i}")).expect("name");
        store
            .put(
                &name,
                &SecretValue::copy_from(format!("value-{i}").as_bytes()),
                &PutOptions::default(),
            )
            .expect("put");
    }
    let set_s = t.elapsed().as_secs_f64();
    println!("{{\"get_s\": {get_s}, \"set_s\": {set_s}, \"n\": {n}}}");
}
