use super::store::*;
use super::*;

fn name(s: &str) -> SecretName {
    SecretName::new(s).unwrap()
}

#[test]
fn names_map_one_to_one() {
    for (tresor, kv) in [
        ("db/password", "db-password"),
        ("openai/api_key", "openai-api03key"),
        ("AWS/key", "0a0w0s-key"),
        ("a0/b-c.d_e", "a00-b01c02d03e"),
        ("x9", "x9"),
    ] {
        assert_eq!(key_vault_name(&name(tresor)).unwrap(), kv, "{tresor}");
        assert_eq!(secret_name(kv), Some(name(tresor)), "{kv}");
    }
    // Upper and lower case stay apart although Key Vault ignores case.
    assert_ne!(
        key_vault_name(&name("Foo")).unwrap().to_ascii_lowercase(),
        key_vault_name(&name("foo")).unwrap().to_ascii_lowercase()
    );
    for foreign in [
        "Db-password",
        "db--password",
        "-db",
        "db-",
        "a0",
        "a04",
        "a0-",
        "",
        "a_b",
        "02",
    ] {
        assert_eq!(secret_name(foreign), None, "{foreign:?}");
    }
    let long = name(&"A".repeat(64));
    assert_eq!(key_vault_name(&long), Err(128));
    assert!(key_vault_name(&name(&"a".repeat(127))).is_ok());
}

#[test]
fn every_name_round_trips() {
    // All two-character names over the alphabet, and some longer mixes.
    let alphabet: Vec<char> = ('a'..='z')
        .chain('A'..='Z')
        .chain('0'..='9')
        .chain(['.', '_', '-', '/'])
        .collect();
    let mut seen = std::collections::HashSet::new();
    for &a in &alphabet {
        for &b in &alphabet {
            for text in [format!("{a}{b}"), format!("x{a}/{b}y"), format!("{a}")] {
                let Ok(n) = SecretName::new(text) else {
                    continue;
                };
                let kv = key_vault_name(&n).unwrap();
                assert!(
                    kv.bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
                    "{kv}"
                );
                assert_eq!(secret_name(&kv).as_ref(), Some(&n), "{kv}");
                if let Some(other) = seen.replace(kv.clone()) {
                    assert_eq!(secret_name(&other), Some(n), "two names map to {kv}");
                }
            }
        }
    }
}

proptest::proptest! {
    /// Any valid name: Key Vault's alphabet, lower case, and back again;
    /// distinct names never share a Key Vault name, even ignoring case.
    #[test]
    fn the_mapping_is_a_bijection(
        a in "[A-Za-z0-9._-]{1,12}(/[A-Za-z0-9._-]{1,12}){0,3}",
        b in "[A-Za-z0-9._-]{1,12}(/[A-Za-z0-9._-]{1,12}){0,3}",
    ) {
        let (Ok(a), Ok(b)) = (SecretName::new(a), SecretName::new(b)) else {
            return Ok(()); // "." and ".." segments
        };
        // Too long for Key Vault: refused with the length it would have.
        let (ka, kb) = match (key_vault_name(&a), key_vault_name(&b)) {
            (Ok(ka), Ok(kb)) => (ka, kb),
            (Err(n), _) | (_, Err(n)) => {
                proptest::prop_assert!(n > MAX_KEY_VAULT_NAME);
                return Ok(());
            }
        };
        proptest::prop_assert!(ka.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'));
        proptest::prop_assert_eq!(secret_name(&ka), Some(a.clone()));
        proptest::prop_assert_eq!(a == b, ka.eq_ignore_ascii_case(&kb));
    }

    /// Any Key Vault name decodes to at most one tresor name, which maps back to it.
    #[test]
    fn decoding_is_canonical(kv in "[0-9a-zA-Z-]{1,40}") {
        if let Some(name) = secret_name(&kv) {
            proptest::prop_assert_eq!(key_vault_name(&name).unwrap(), kv);
        }
    }
}

fn version(id: &str, created: i64, tag: Option<u64>, enabled: bool) -> KvVersion {
    KvVersion {
        id: id.to_string(),
        created,
        updated: created,
        enabled,
        number_tag: tag,
        tags: HashMap::new(),
    }
}

#[test]
fn versions_number_by_creation_then_tag_then_id() {
    let v = Versions::from_properties(vec![
        version("ff", 2000, Some(2), true),
        version("00", 2000, Some(3), true),
        version("aa", 1000, Some(1), true),
        version("bb", 3000, None, false),
    ]);
    let ids: Vec<&str> = v.0.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["aa", "ff", "00", "bb"]);
    assert_eq!(
        (v.latest(), v.current(), v.previous()),
        (4, Some(3), Some(2))
    );
    let v = Versions::from_properties(vec![
        version("cc", 5, None, true),
        version("bb", 5, None, true),
    ]);
    assert_eq!(v.0[0].id, "bb");
    let v = Versions::from_properties(vec![version("a", 1, Some(1), false)]);
    assert_eq!((v.current(), v.previous()), (None, None));
}

#[test]
fn tags_are_checked_against_key_vault_limits() {
    let many: Metadata = (0..15).map(|i| (format!("k{i}"), "v".into())).collect();
    assert!(
        check_tags("s", &many)
            .unwrap_err()
            .to_string()
            .contains("14")
    );
    let long = Metadata::from([("k".to_string(), "v".repeat(257))]);
    let e = check_tags("s", &long).unwrap_err().to_string();
    assert!(e.contains("'k'") && !e.contains("vvvv"), "{e}");
    let reserved = Metadata::from([(VERSION_TAG.to_string(), "1".into())]);
    assert!(check_tags("s", &reserved).is_err());
    assert!(check_tags("s", &Metadata::from([("owner".into(), "ops".into())])).is_ok());
}

#[test]
fn options_are_checked() {
    let cred = || AzureCredential::DeveloperTools;
    let e =
        AzureKeyVault::connect(AzureOptions::new("http://v.vault.azure.net", cred())).unwrap_err();
    assert_eq!(e.kind(), "invalid_option", "{e}");
    let store =
        AzureKeyVault::connect(AzureOptions::new("https://v.vault.azure.net/", cred())).unwrap();
    assert_eq!(store.vault_url(), "https://v.vault.azure.net");

    let opts = StoreOptions::new("az")
        .with("vault_url", "https://v.vault.azure.net")
        .with("credential", "client-secret")
        .with("client_secret", "hunter2-secret");
    let e = AzureKeyVault::from_options(&opts).unwrap_err().to_string();
    assert!(e.contains("tenant_id") && !e.contains("hunter2"), "{e}");
    let opts = StoreOptions::new("az")
        .with("vault_url", "https://v.vault.azure.net")
        .with("credential", "magic");
    assert!(
        AzureKeyVault::from_options(&opts)
            .unwrap_err()
            .to_string()
            .contains("credential")
    );
    let opts = StoreOptions::new("az")
        .with("vault_url", "https://v.vault.azure.net")
        .with("credential", "managed-identity")
        .with("client_secret", "hunter2-secret");
    let e = AzureKeyVault::from_options(&opts).unwrap_err().to_string();
    assert!(e.contains("client_secret") && !e.contains("hunter2"), "{e}");
    let opts = StoreOptions::new("az")
        .with("vault_url", "https://v.vault.azure.net")
        .with("retries", "11");
    assert!(AzureKeyVault::from_options(&opts).is_err());
    let opts = StoreOptions::new("az")
        .with("vault_url", "https://v.vault.azure.net")
        .with("client_id", "00000000-0000-0000-0000-000000000002")
        .with("credential", "managed-identity")
        .with("timeout", "2s")
        .with("retries", "0");
    let store = AzureKeyVault::from_options(&opts).unwrap();
    assert_eq!(store.timeout, Duration::from_secs(2));
    let typo = StoreOptions::new("az")
        .with("vault_url", "https://v.vault.azure.net")
        .with("vault_uri", "x");
    assert!(
        AzureKeyVault::from_options(&typo)
            .unwrap_err()
            .to_string()
            .contains("vault_uri")
    );
    let shown = format!(
        "{:?}",
        AzureCredential::ClientSecret {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: SecretString::from("hunter2".to_string()),
        }
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}
