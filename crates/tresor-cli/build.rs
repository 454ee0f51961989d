//! Links the `tresor` binary (and the package's tests) with GCC's static
//! unwinder, `libgcc_eh.a`, instead of the shared `libgcc_s.so.1`, on
//! Linux with glibc.
//!
//! Why: rustc links every Linux GNU program against `libgcc_s.so.1` for
//! unwinding. Loading it costs each process four mappings and symbol
//! lookups, and its constructor probes the CPU with CPUID, which traps to
//! the hypervisor on virtual machines. Together that was ~0.13 ms of the
//! ~2 ms of a whole `tresor get` on the reference machine (docs/performance.md).
//! The static unwinder is the one `gcc -static-libgcc` uses.
//!
//! How: rustc passes `-lgcc_s`; a linker script named `libgcc_s.so` in a
//! search directory that comes first makes that name mean `libgcc_eh.a`.
//! The script is written only when the linker driver knows an absolute
//! `libgcc_eh.a`; otherwise (another toolchain, `TRESOR_DYNAMIC_LIBGCC=1`)
//! the link is the usual one, which is slower to start, never wrong.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=TRESOR_DYNAMIC_LIBGCC");
    println!("cargo::rerun-if-env-changed=RUSTC_LINKER");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let static_crt = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .unwrap_or_default()
        .split(',')
        .any(|f| f == "crt-static");
    if target_os != "linux" || target_env != "gnu" || static_crt {
        return;
    }
    if std::env::var_os("TRESOR_DYNAMIC_LIBGCC").is_some_and(|v| v == "1") {
        return;
    }
    let linker = std::env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".into());
    let Ok(out) = Command::new(&linker)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !path.is_absolute() || !path.is_file() {
        return;
    }
    let Some(path_text) = path.to_str().filter(|p| !p.contains('"')) else {
        return;
    };
    let dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("static-unwinder");
    std::fs::create_dir_all(&dir).expect("create the linker-script folder");
    std::fs::write(
        dir.join("libgcc_s.so"),
        format!(
            "/* tresor-cli/build.rs: the static unwinder instead of libgcc_s.so.1 */\nINPUT ( \"{path_text}\" )\n"
        ),
    )
    .expect("write the linker script");
    println!("cargo::rustc-link-search=native={}", dir.display());
}
