//! Replays a written scenario (`tests/scenarios/*.json`, see its README) through the real
//! worker: its visitors' events through `events:import` (times as recorded, geo and user
//! agent as given fields), its deals through `POST /conversions` and
//! `POST /conversions:import` (CSV), its spend through `POST /spend` and
//! `POST /spend:import`, into a new site of its own.

use crate::http::{self, Answer};
use crate::worker::{Site, Worker};
use crate::{root, Result};
use serde_json::{json, Value};

/// Reads `tests/scenarios/{name}`.
pub fn read(name: &str) -> Result<Value> {
    let path = root().join("tests").join("scenarios").join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// POSTs `body` to `/v1/sites/{site}/{path}` with the site's write key.
pub fn post(
    worker: &Worker,
    site: &Site,
    path: &str,
    content_type: &str,
    body: &str,
) -> Result<Answer> {
    let auth = format!("Bearer {}", site.write_key);
    http::request(
        "POST",
        &worker.url(&format!("/v1/sites/{}/{path}", site.id)),
        &[("Content-Type", content_type), ("Authorization", &auth)],
        Some(body),
    )
}

/// Replays scenario `sc` into a new site allowed on its origin; returns the site.
pub fn replay(worker: &Worker, sc: &Value) -> Result<Site> {
    let origin = sc["site"]["origin"].as_str().ok_or("site.origin")?;
    let site = worker.create_site(&[origin])?;
    let batches: Vec<Value> = sc["visitors"]
        .as_array()
        .ok_or("visitors")?
        .iter()
        .map(|v| json!({"visitor_id": v["visitor_id"], "events": v["events"], "context": v["context"]}))
        .collect();
    let total: usize = batches
        .iter()
        .map(|b| b["events"].as_array().map_or(0, Vec::len))
        .sum();
    let a = post(
        worker,
        &site,
        "events:import",
        "application/json",
        &Value::Array(batches).to_string(),
    )?;
    if a.status != 200 || a.json["accepted"] != json!(total) {
        return Err(format!("events:import: {} {}", a.status, a.text));
    }
    for c in sc["conversions_api"].as_array().into_iter().flatten() {
        let a = post(
            worker,
            &site,
            "conversions",
            "application/json",
            &c.to_string(),
        )?;
        if a.status != 201 {
            return Err(format!("conversion {c}: {} {}", a.status, a.text));
        }
    }
    if let Some(csv) = sc["conversions_csv"].as_str() {
        let a = post(worker, &site, "conversions:import", "text/csv", csv)?;
        if a.status != 200 {
            return Err(format!("conversions:import: {} {}", a.status, a.text));
        }
    }
    for s in sc["spend_api"].as_array().into_iter().flatten() {
        let a = post(worker, &site, "spend", "application/json", &s.to_string())?;
        if a.status != 201 {
            return Err(format!("spend {s}: {} {}", a.status, a.text));
        }
    }
    if let Some(csv) = sc["spend_csv"].as_str() {
        let a = post(worker, &site, "spend:import", "text/csv", csv)?;
        if a.status != 200 {
            return Err(format!("spend:import: {} {}", a.status, a.text));
        }
    }
    Ok(site)
}
