//! Starting the program (`posix_spawnp`, with an environment this module
//! builds and wipes), passing signals on to it, and waiting for it.

use std::collections::HashSet;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};

use zeroize::Zeroizing;

use tresor_core::{Error, Result, SecretValue};

use super::Exit;
use crate::redact::Redactor;

/// The signals passed on to the program.
pub(super) const FORWARDED: [libc::c_int; 7] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];
/// Those that mean "stop": before the program starts, they cancel it.
const STOPPING: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// The running program's PID (0: none yet).
static CHILD: AtomicI32 = AtomicI32::new(0);
/// Signals to pass on, one bit each.
static PENDING: AtomicU64 = AtomicU64::new(0);
/// Every handled signal received, one bit each.
static SEEN: AtomicU64 = AtomicU64::new(0);
/// One launch at a time per process: the statics above are its state.
static ACTIVE: Mutex<()> = Mutex::new(());

/// The handlers, installed for one launch; the previous ones come back on
/// drop.
pub(super) struct Signals {
    old: Vec<(libc::c_int, libc::sigaction)>,
    _active: MutexGuard<'static, ()>,
}

impl Signals {
    pub fn install() -> Self {
        let active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
        CHILD.store(0, SeqCst);
        PENDING.store(0, SeqCst);
        SEEN.store(0, SeqCst);
        let mut old = Vec::new();
        for sig in FORWARDED {
            // SAFETY: sigaction with zeroed structs we own and a handler
            // that only uses async-signal-safe calls.
            unsafe {
                let mut previous: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut previous) != 0
                    || previous.sa_sigaction == libc::SIG_IGN
                {
                    // Ignored when we started (nohup): it stays ignored,
                    // for the program too.
                    continue;
                }
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal
                    as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                    as usize;
                libc::sigemptyset(&mut action.sa_mask);
                action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                if libc::sigaction(sig, &action, std::ptr::null_mut()) == 0 {
                    old.push((sig, previous));
                }
            }
        }
        Self {
            old,
            _active: active,
        }
    }

    /// A stopping signal that arrived before the program started.
    pub fn stop_requested(&self) -> Option<i32> {
        let seen = SEEN.load(SeqCst);
        STOPPING.into_iter().find(|s| seen & (1 << s) != 0)
    }

    /// The signals the program starts with at their default action: those
    /// handled here, and SIGPIPE (which the `tresor` command ignores).
    fn defaults(&self) -> libc::sigset_t {
        // SAFETY: sigset operations on a set we own.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            for (sig, _) in &self.old {
                libc::sigaddset(&mut set, *sig);
            }
            set
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        CHILD.store(0, SeqCst);
        for (sig, previous) in &self.old {
            // SAFETY: restoring the action saved in `install`.
            unsafe { libc::sigaction(*sig, previous, std::ptr::null_mut()) };
        }
    }
}

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: errno is thread-local; it is saved and restored around kill.
    let errno = unsafe { *libc::__errno_location() };
    let bit = 1u64 << sig;
    SEEN.fetch_or(bit, SeqCst);
    let child = CHILD.load(SeqCst);
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo.
    let (code, from) = unsafe { ((*info).si_code, (*info).si_pid()) };
    // The program's own signal to us, or the terminal's (it went to the
    // whole foreground process group, the program included): not again.
    if !(child > 0 && (from == child || code == libc::SI_KERNEL)) {
        PENDING.fetch_or(bit, SeqCst);
        forward();
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Passes the pending signals on once the program runs. Called by the
/// handler and right after the program starts: whichever sees both the PID
/// and a pending bit sends it, once.
fn forward() {
    let child = CHILD.load(SeqCst);
    if child <= 0 {
        return;
    }
    let bits = PENDING.swap(0, SeqCst);
    for sig in 1..64 {
        if bits & (1 << sig) != 0 {
            // SAFETY: kill is async-signal-safe.
            unsafe { libc::kill(child, sig) };
        }
    }
}

/// `KEY=VALUE\0` strings and the null-terminated array pointing at them.
struct Environ {
    entries: Vec<Zeroizing<Vec<u8>>>,
}

impl Environ {
    fn build(ours: &[(String, SecretValue)]) -> Result<Self> {
        let names: HashSet<&str> = ours.iter().map(|(k, _)| k.as_str()).collect();
        let mut entries = Vec::with_capacity(ours.len() + 64);
        for (k, v) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| names.contains(k)) {
                continue;
            }
            let mut e = Zeroizing::new(Vec::with_capacity(k.len() + v.len() + 2));
            e.extend_from_slice(k.as_bytes());
            e.push(b'=');
            e.extend_from_slice(v.as_bytes());
            e.push(0);
            entries.push(e);
        }
        for (k, v) in ours {
            let value = v.expose_secret();
            if value.contains(&0) {
                return Err(Error::Validation(format!(
                    "the value for {k} holds a NUL byte, which an environment variable cannot \
                     hold; deliver it as a file"
                )));
            }
            let mut e = Zeroizing::new(Vec::with_capacity(k.len() + value.len() + 2));
            e.extend_from_slice(k.as_bytes());
            e.push(b'=');
            e.extend_from_slice(value);
            e.push(0);
            entries.push(e);
        }
        Ok(Self { entries })
    }

    fn pointers(&self) -> Vec<*mut libc::c_char> {
        self.entries
            .iter()
            .map(|e| e.as_ptr() as *mut libc::c_char)
            .chain([std::ptr::null_mut()])
            .collect()
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array; the descriptors become owned.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors, owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn run_error(path: &OsStr, source: std::io::Error) -> Error {
    Error::Io {
        store: "run".into(),
        path: path.into(),
        source,
    }
}

/// Starts the program and waits for it (see the module docs of `run`).
pub(super) fn spawn_and_wait(
    program: &OsStr,
    args: &[OsString],
    env: &[(String, SecretValue)],
    redactor: Option<&Redactor>,
    signals: &Signals,
) -> Result<Exit> {
    let nul = |what: &OsStr| {
        Error::Validation(format!(
            "the command line holds a NUL byte: {}",
            what.to_string_lossy()
        ))
    };
    let argv: Vec<CString> = std::iter::once(program)
        .chain(args.iter().map(OsString::as_os_str))
        .map(|a| CString::new(a.as_bytes()).map_err(|_| nul(a)))
        .collect::<Result<_>>()?;
    let mut argv_p: Vec<*mut libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr() as *mut libc::c_char)
        .chain([std::ptr::null_mut()])
        .collect();
    let environ = Environ::build(env)?;
    let mut envp = environ.pointers();
    let pipes = match redactor {
        Some(_) => {
            let out = pipe().map_err(|e| run_error(program, e))?;
            let err = pipe().map_err(|e| run_error(program, e))?;
            Some((out, err))
        }
        None => None,
    };
    let mut pid: libc::pid_t = 0;
    // SAFETY: the attribute and file-action objects are initialised before
    // use and destroyed after; every pointer passed stays valid for the
    // call (argv, envp and the strings they point at live until the end of
    // this function).
    let rc = unsafe {
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        libc::posix_spawnattr_init(&mut attr);
        libc::posix_spawn_file_actions_init(&mut actions);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::posix_spawnattr_setsigmask(&mut attr, &empty);
        let defaults = signals.defaults();
        libc::posix_spawnattr_setsigdefault(&mut attr, &defaults);
        libc::posix_spawnattr_setflags(
            &mut attr,
            (libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF) as libc::c_short,
        );
        if let Some((out, err)) = &pipes {
            use std::os::fd::AsRawFd;
            libc::posix_spawn_file_actions_adddup2(&mut actions, out.1.as_raw_fd(), 1);
            libc::posix_spawn_file_actions_adddup2(&mut actions, err.1.as_raw_fd(), 2);
        }
        let rc = libc::posix_spawnp(
            &mut pid,
            argv[0].as_ptr(),
            &actions,
            &attr,
            argv_p.as_mut_ptr(),
            envp.as_mut_ptr(),
        );
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        rc
    };
    // The values are wiped now: the program has its own copy.
    envp.clear();
    drop(environ);
    // Our copies of the write ends go, so the reads end with the program.
    let readers = pipes.map(|(out, err)| (out.0, err.0));
    if rc != 0 {
        let e = std::io::Error::from_raw_os_error(rc);
        return Err(if rc == libc::ENOENT {
            Error::NotFound {
                store: "PATH".into(),
                what: format!("command '{}'", program.to_string_lossy()),
            }
        } else {
            run_error(program, e)
        });
    }
    CHILD.store(pid, SeqCst);
    forward();
    let status = std::thread::scope(|scope| {
        let pump = match (redactor, readers) {
            (Some(r), Some((out, err))) => {
                Some(scope.spawn(move || super::pump::pump(r, out, err)))
            }
            _ => None,
        };
        let status = wait(pid);
        if let Some(p) = pump {
            let _ = p.join();
        }
        status
    });
    let status = status.map_err(|e| run_error(program, e))?;
    Ok(if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(u8::try_from(libc::WEXITSTATUS(status) & 0xff).unwrap_or(255))
    })
}

/// waitpid(2) until the program has ended (a stopped program is waited
/// through, as a shell's job).
fn wait(pid: libc::pid_t) -> std::io::Result<libc::c_int> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our own child, into a local.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
