//! The AWS Secrets Manager store against a real moto server (feature
//! `service-tests`; scripts/test runs it under `scripts/services exec`).
//!
//! Every test works under a name prefix of its own on the one moto server
//! from TRESOR_TEST_AWS_ENDPOINT (credentials and region from the AWS_*
//! variables scripts/services exports). The tests fail, never skip, when the
//! endpoint is missing.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::primitives::Blob;
use tresor_core::{
    DeleteMode, Label, Metadata, PutOptions, SecretName, SecretValue, Selector, Store,
};
use tresor_stores::StoreOptions;
use tresor_stores::aws::{Aws, AwsOptions};
use tresor_stores::conformance::{Fixture, seed_by_put};

fn endpoint() -> String {
    std::env::var("TRESOR_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "TRESOR_TEST_AWS_ENDPOINT is not set: run these tests under scripts/services exec \
             (cargo test -p tresor-stores --features service-tests --test aws)"
        )
    })
}

/// A prefix no other test (or earlier run on the same server) uses.
fn fresh_prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}-{}/",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

fn store_under(prefix: &str) -> Aws {
    Aws::connect(AwsOptions {
        name: "aws-test".to_string(),
        endpoint: Some(endpoint()),
        prefix: prefix.to_string(),
        ..AwsOptions::default()
    })
    .unwrap()
}

struct AwsFixture {
    prefix: Option<String>,
}

impl Fixture for AwsFixture {
    fn store(&mut self, seed: &[(SecretName, SecretValue)]) -> Box<dyn Store> {
        let prefix = fresh_prefix();
        let mut store = store_under(&prefix);
        seed_by_put(&mut store, seed);
        self.prefix = Some(prefix);
        Box::new(store)
    }

    fn second_handle(&mut self) -> Option<Box<dyn Store>> {
        Some(Box::new(store_under(self.prefix.as_ref()?)))
    }
}

mod conformance {
    tresor_stores::conformance_tests!(super::AwsFixture { prefix: None });
}

fn name(s: &str) -> SecretName {
    SecretName::new(s).unwrap()
}

fn value(b: &[u8]) -> SecretValue {
    SecretValue::copy_from(b)
}
