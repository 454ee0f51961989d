//! The kernel user keyring side of unlock sessions (Linux keyutils): see
//! the [parent module](super) for the two keys, their permissions and
//! timeouts.

use super::*;
use linux_keyutils::{KeyError, KeyPermissions, KeyRing, KeyRingIdentifier};

/// Possessor: everything; this uid: view, read, write, search, setattr;
/// group and others: nothing.
const PERMS: u32 = 0x3f2f_0000;

fn key_desc(vault_id: &[u8; 16]) -> String {
    format!("tresor:session:{}", hex(vault_id))
}

fn info_desc(vault_id: &[u8; 16]) -> String {
    format!("tresor:session-info:{}", hex(vault_id))
}

/// The user keyring; `create` makes it for a user who has none yet
/// (no login through pam_keyinit, say).
fn user(create: bool) -> std::result::Result<KeyRing, KeyError> {
    KeyRing::from_special_id(KeyRingIdentifier::User, create)
}

pub(super) fn store(
    vault_id: &[u8; 16],
    master: &MasterKey,
    info: &SessionInfo,
) -> std::result::Result<(), String> {
    let fail = |what: &str, e: KeyError| format!("{what}: {e}");
    let stage = KeyRing::from_special_id(KeyRingIdentifier::Process, true)
        .map_err(|e| fail("process keyring", e))?;
    let user = user(true).map_err(|e| fail("user keyring", e))?;
    let secs = kernel_timeout(info.idle_deadline(), now_ms());
    let json = serde_json::to_vec(info).map_err(|e| e.to_string())?;
    let secret = record(vault_id, master);
    // The description first: a crash before the key is linked leaves
    // only it, which opens nothing and expires.
    for (desc, payload) in [
        (info_desc(vault_id), &json[..]),
        (key_desc(vault_id), &secret[..]),
    ] {
        let key = stage.add_key(&desc, payload).map_err(|e| fail("add", e))?;
        let linked = key
            .set_perms(KeyPermissions::from_u32(PERMS))
            .and_then(|()| key.set_timeout(secs))
            .and_then(|()| user.link_key(key));
        let _ = stage.unlink_key(key);
        if let Err(e) = linked {
            let _ = key.revoke();
            revoke(vault_id);
            return Err(fail("link into the user keyring", e));
        }
    }
    Ok(())
}

/// The session, extended when `touch`.
pub(super) fn find(vault_id: &[u8; 16], touch: bool) -> Option<Session> {
    let user = user(false).ok()?;
    let key = user.search(&key_desc(vault_id)).ok()?;
    let info_key = user.search(&info_desc(vault_id)).ok();
    let mut buf = Zeroizing::new([0u8; RECORD_LEN + 1]);
    let n = key.read(&mut *buf).ok()?;
    let Some(master) = parse_record(&buf[..n.min(buf.len())], vault_id) else {
        let _ = key.revoke();
        return None;
    };
    let mut info_buf = vec![0u8; MAX_INFO];
    let info: Option<SessionInfo> = info_key
        .and_then(|k| k.read(&mut info_buf).ok())
        .and_then(|n| serde_json::from_slice(&info_buf[..n.min(MAX_INFO)]).ok());
    let Some(mut info) = info.filter(|i| i.vault_id == hex(vault_id)) else {
        // A key without its description: end it rather than guess.
        revoke(vault_id);
        return None;
    };
    let now = now_ms();
    if info.expired_at(now) {
        revoke(vault_id);
        return None;
    }
    if touch {
        info.last_used = now;
        let secs = kernel_timeout(info.idle_deadline(), now);
        if key.set_timeout(secs).is_err() {
            // Revoked or expired between the read and now.
            return None;
        }
        if let (Some(k), Ok(json)) = (info_key, serde_json::to_vec(&info)) {
            // Updating a key clears its timeout: set it again.
            let _ = k.update(&json).and_then(|()| k.set_timeout(secs));
        }
    }
    Some(Session { master, info })
}

/// Revokes the session's keys; whether there was one.
pub(super) fn revoke(vault_id: &[u8; 16]) -> bool {
    let Ok(user) = user(false) else { return false };
    let mut found = false;
    for desc in [key_desc(vault_id), info_desc(vault_id)] {
        // Another process may be replacing it: repeat until none is left.
        for _ in 0..8 {
            match user.search(&desc) {
                Ok(k) => {
                    found |= desc.starts_with("tresor:session:");
                    let _ = k.revoke();
                    let _ = user.unlink_key(k);
                }
                Err(_) => break,
            }
        }
    }
    found
}
