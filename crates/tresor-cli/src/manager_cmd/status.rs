//! `tresor stores` and `tresor doctor`: each store, what it can do, where it
//! sends which credentials, and whether it answers.

#[allow(unused_imports)]
use super::*;

pub(super) fn manager_for_status(ctx: &Ctx) -> Result<Tresor> {
    let config = Config::discover_and_load(ctx.config.as_deref())?;
    open(ctx, config)
}

pub(super) fn stores(ctx: &Ctx) -> Result<()> {
    let mut t = manager_for_status(ctx)?;
    let rows = t.status();
    if ctx.json {
        output::json(&rows);
        return Ok(());
    }
    output::line(&format!(
        "{:<16} {:<9} {:>8}  {:<9} {:<8} {:<5} {:<9} DETAIL",
        "NAME", "KIND", "PRIORITY", "READ-ONLY", "REQUIRED", "CACHE", "AVAILABLE"
    ));
    let yes = |b: bool| if b { "yes" } else { "no" };
    for r in rows {
        output::line(&format!(
            "{:<16} {:<9} {:>8}  {:<9} {:<8} {:<5} {:<9} {}",
            r.name,
            r.kind.map_or("-", |k| k.as_str()),
            r.settings.priority,
            yes(r.settings.read_only),
            yes(r.settings.required),
            yes(r.settings.cache),
            yes(r.available),
            r.detail
        ));
        output::line(&format!(
            "    {}",
            credentials_line(&r.credentials, r.sends_to.as_deref())
        ));
    }
    Ok(())
}

/// `credentials: token from SEC/bao/token; sends to http://…`.
pub(super) fn credentials_line(credentials: &[CredentialSource], sends_to: Option<&str>) -> String {
    let creds: Vec<String> = credentials.iter().map(ToString::to_string).collect();
    format!(
        "credentials: {}{}",
        if creds.is_empty() {
            "not known (a store given in code)".to_string()
        } else {
            creds.join("; ")
        },
        sends_to
            .map(|d| format!("; sends to {d}"))
            .unwrap_or_default()
    )
}

pub(super) fn doctor(ctx: &Ctx) -> Result<()> {
    let mut t = manager_for_status(ctx)?;
    let start = std::time::Instant::now();
    let checks = t.doctor();
    drop(t);
    let unhealthy_required: Vec<&str> = checks
        .iter()
        .filter(|c| c.required && !c.healthy)
        .map(|c| c.name.as_str())
        .collect();
    let ok = unhealthy_required.is_empty();
    if ctx.json {
        output::json(&json!({
            "ok": ok,
            "stores": checks,
            "elapsed_ms": start.elapsed().as_millis() as u64,
        }));
    } else {
        let yes = |b: bool| if b { "yes" } else { "no" };
        for c in &checks {
            output::line(&format!(
                "{:<16} {:<9} {}  reachable={} authenticated={} probe={} {:>8.1} ms{}",
                c.name,
                c.kind.map_or("-", |k| k.as_str()),
                if c.healthy {
                    "ok       "
                } else if c.required {
                    "FAILED   "
                } else {
                    "unhealthy"
                },
                yes(c.reachable),
                yes(c.authenticated),
                c.probe,
                c.latency_ms,
                if c.required { "  (required)" } else { "" },
            ));
            output::line(&format!("    {}", c.detail));
            output::line(&format!(
                "    {}",
                credentials_line(&c.credentials, c.sends_to.as_deref())
            ));
            if !c.probe_detail.is_empty() {
                output::line(&format!("    probe: {}", c.probe_detail));
            }
            if c.cleaned_up == Some(false) {
                output::line(
                    "    WARNING: the scratch secret under .tresor/doctor/ could not be removed",
                );
            }
            if let Some(n) = c.cached_copies {
                output::line(&format!("    offline copies in the local vault: {n}"));
            }
        }
    }
    if !ok {
        let message = format!(
            "required store{} unhealthy: {}",
            if unhealthy_required.len() == 1 {
                ""
            } else {
                "s"
            },
            unhealthy_required.join(", ")
        );
        if ctx.json {
            output::json_failure(
                "unavailable",
                "unhealthy",
                &message,
                crate::exit::ExitCode::Unavailable,
            );
        } else {
            eprintln!("tresor: error: {message}");
        }
        EXIT.store(crate::exit::ExitCode::Unavailable as u8, Ordering::Relaxed);
    }
    Ok(())
}
