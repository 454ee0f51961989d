//! Who may own a file tresor trusts, and what others may do with it: one
//! rule for every reader of files that decide where secrets go or what
//! unlocks a vault (configs, the trust list, the PKCS#11 module list and
//! modules, key files). Each caller checks the metadata of the file it has
//! open (`fstat`), never a path it opens again afterwards.

use std::fmt;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// Who may own the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owners {
    /// Only the current (effective) user: key material, the user's lists.
    Me,
    /// The current user or root: configs, modules the user listed.
    MeOrRoot,
    /// Only root: system folders and libraries.
    Root,
}

/// What group and others must not be able to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Write (mode bits 0o022): the file decides, others may read it.
    ToWriters,
    /// Read, write or execute (0o077): the file is a secret.
    ToAll,
}

/// Why a file must not be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Distrust {
    /// Someone else owns it: they chose its content.
    Owner {
        /// The file's owner.
        uid: u32,
        /// The current (effective) user.
        me: u32,
        /// Who would have been accepted.
        owners: Owners,
    },
    /// Group or others may change (or read) it.
    Mode {
        /// The file's permission bits.
        mode: u32,
        /// What was required.
        closed: Closed,
    },
}

impl fmt::Display for Distrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Distrust::Owner { uid, me, owners } => match owners {
                Owners::Me => write!(f, "is owned by uid {uid}, not by you (uid {me})"),
                Owners::MeOrRoot => {
                    write!(f, "is owned by uid {uid}, not by you (uid {me}) or root")
                }
                Owners::Root => write!(f, "is owned by uid {uid}, not root"),
            },
            Distrust::Mode { mode, closed } => match closed {
                Closed::ToWriters => write!(f, "is writable by group or others (mode {mode:04o})"),
                Closed::ToAll => write!(f, "is open to group or others (mode {mode:04o})"),
            },
        }
    }
}

/// The current effective user id.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The current real user id (who started the process; [`current_uid`] is
/// whose rights it has).
pub fn real_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Checks `meta` (of a file the caller has open) against the rule: owned by
/// one of `owners`, and closed to group and others as `closed` says.
pub fn check(meta: &Metadata, owners: Owners, closed: Closed) -> Result<(), Distrust> {
    check_parts(meta.uid(), meta.mode(), owners, closed)
}

fn check_parts(uid: u32, mode: u32, owners: Owners, closed: Closed) -> Result<(), Distrust> {
    let me = current_uid();
    let owner_ok = match owners {
        Owners::Me => uid == me,
        Owners::MeOrRoot => uid == me || uid == 0,
        Owners::Root => uid == 0,
    };
    if !owner_ok {
        return Err(Distrust::Owner { uid, me, owners });
    }
    let forbidden = match closed {
        Closed::ToWriters => 0o022,
        Closed::ToAll => 0o077,
    };
    if mode & forbidden != 0 {
        return Err(Distrust::Mode {
            mode: mode & 0o7777,
            closed,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_and_modes() {
        let me = current_uid();
        let other = me.wrapping_add(4242);
        assert!(check_parts(me, 0o100600, Owners::Me, Closed::ToAll).is_ok());
        assert!(check_parts(me, 0o100644, Owners::Me, Closed::ToWriters).is_ok());
        let e = check_parts(me, 0o100640, Owners::Me, Closed::ToAll).unwrap_err();
        assert_eq!(e.to_string(), "is open to group or others (mode 0640)");
        let e = check_parts(me, 0o100664, Owners::MeOrRoot, Closed::ToWriters).unwrap_err();
        assert_eq!(e.to_string(), "is writable by group or others (mode 0664)");
        let e = check_parts(other, 0o100600, Owners::Me, Closed::ToAll).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("is owned by uid {other}, not by you (uid {me})")
        );
        assert!(check_parts(0, 0o100644, Owners::MeOrRoot, Closed::ToWriters).is_ok());
        assert!(check_parts(0, 0o040755, Owners::Root, Closed::ToWriters).is_ok());
        let e = check_parts(0, 0o041777, Owners::Root, Closed::ToWriters).unwrap_err();
        assert_eq!(e.to_string(), "is writable by group or others (mode 1777)");
        if me != 0 {
            let e = check_parts(me, 0o100755, Owners::Root, Closed::ToWriters).unwrap_err();
            assert_eq!(e.to_string(), format!("is owned by uid {me}, not root"));
        }
    }
}
