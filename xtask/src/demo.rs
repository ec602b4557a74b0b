//! `cargo xtask demo`: installs what is missing, builds, migrates the local D1, starts
//! the worker under `wrangler dev` (local mode) on 127.0.0.1:8787, creates the demo site
//! with its keys and nine weeks of realistic history (`closeloop_e2e::demo_data`: visits from
//! every channel, leads, deals and spend, sent through the public API), and serves the demo
//! site on a second origin, 127.0.0.1:8080, so that the tracker runs cross-origin as it
//! does on a real site.
//!
//! `cargo xtask demo --screenshots` instead starts a worker of its own on free ports with
//! throw-away state (so it never clashes with a running demo), seeds the same history,
//! and saves every dashboard view at 1366 and 390 px into `docs/` (headless Chromium),
//! then stops.

use crate::util::{note, root, say, Result};
use closeloop_e2e::site::{StaticSite, DEMO_SITE};
use closeloop_e2e::worker::{Site, Worker};
use serde_json::Value;

/// The demo worker's port (the demo pages' tag points at it).
pub const EDGE_PORT: u16 = 8787;
/// The demo site's port.
pub const SITE_PORT: u16 = 8080;

pub fn run(args: &[String]) -> Result {
    if args.iter().any(|a| a == "--screenshots") {
        return screenshots();
    }
    if let Some(a) = args.first() {
        return Err(format!(
            "unknown option {a} (cargo xtask demo [--screenshots])"
        ));
    }
    crate::build()?;
    let state = root().join(".wrangler").join("demo-state");
    std::fs::create_dir_all(&state).map_err(|e| e.to_string())?;
    say("Applying the D1 migrations and starting the worker (wrangler dev, local mode)");
    let keys_file = state.join("demo-keys.json");
    let admin_token = read_json(&keys_file)
        .and_then(|v| v["admin_token"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("demo-admin-{}", closeloop_e2e::now_ms()));
    let worker = Worker::start_at(&state, EDGE_PORT, &admin_token)?;
    note(format!("worker ready on {}", worker.base));

    let site_origin = format!("http://127.0.0.1:{SITE_PORT}");
    let keys = match read_json(&keys_file).filter(|v| v["read_key"].is_string()) {
        Some(v) => v,
        None => {
            say("Creating the demo site with nine weeks of history");
            let (site, manage_key) = create_demo_site(&worker, &site_origin)?;
            let v = serde_json::json!({
                "admin_token": admin_token, "site": site.id,
                "read_key": site.read_key, "write_key": site.write_key,
                "manage_key": manage_key,
            });
            std::fs::write(
                &keys_file,
                serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            v
        }
    };
    let demo = StaticSite::start(
        &root().join("demo-site"),
        Some(SITE_PORT),
        &worker.base,
        DEMO_SITE,
    )?;
    let read_key = keys["read_key"].as_str().unwrap_or_default();
    println!();
    println!("Closeloop demo is running (Ctrl-C stops it).");
    println!();
    println!("  Demo site (a visitor from an email campaign):");
    println!(
        "    {}/?utm_source=newsletter&utm_medium=email&utm_campaign=launch",
        demo.origin
    );
    println!("  Worker:     {}", worker.base);
    println!(
        "  Dashboard:  {}/dashboard/ (site `{DEMO_SITE}`, read key below)",
        worker.base
    );
    println!("  Keys:       {} (read: {read_key})", keys_file.display());
    println!("  (headless and automated browsers are counted as bots: their visits stay out of the reports)");
    println!();
    println!("  Ask the API which sources brought visitors:");
    println!(
        "    curl -H 'Authorization: Bearer {read_key}' '{}/v1/sites/{DEMO_SITE}/reports/sources?group_by=campaign'",
        worker.base
    );
    println!();
    demo.join();
    drop(worker);
    Ok(())
}

/// Creates the `demo` site for `origin` (and its `localhost` twin) and sends it nine weeks
/// of history; returns it with its manage key.
fn create_demo_site(worker: &Worker, origin: &str) -> Result<(Site, String)> {
    let (site, manage_key) = worker.create_managed_site_with_id(
        DEMO_SITE,
        &[origin, &origin.replace("127.0.0.1", "localhost")],
    )?;
    let seeded = closeloop_e2e::demo_data::seed(worker, &site, origin, closeloop_e2e::now_ms())?;
    note(format!(
        "seeded: {} visitors, {} events, {} leads, {} won deals, {} spend records",
        seeded.visitors, seeded.events, seeded.leads, seeded.customers, seeded.spend
    ));
    Ok((site, manage_key))
}

/// `--screenshots`: a worker of its own (free ports, fresh state), the seeded demo site,
/// every view at both widths into `docs/`.
fn screenshots() -> Result {
    crate::build()?;
    crate::install::chromium()?;
    say("Starting a worker of its own (free ports, throw-away state)");
    let worker = Worker::start()?;
    note(format!("worker ready on {}", worker.base));
    say("Seeding the demo site with nine weeks of history");
    let (site, _) = create_demo_site(&worker, &format!("http://127.0.0.1:{SITE_PORT}"))?;
    // the journey shown: the showcase lead (two devices, four channels, a won deal)
    let lead = closeloop_e2e::demo_data::SHOWCASE;
    say("Saving every view at 1366 and 390 px (headless Chromium)");
    let docs = root().join("docs");
    let files =
        closeloop_e2e::dashboard::screenshots(&worker.base, &site.id, &site.read_key, lead, &docs)?;
    for f in &files {
        note(f.strip_prefix(root()).unwrap_or(f).display());
    }
    drop(worker);
    Ok(())
}

fn read_json(path: &std::path::Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}
