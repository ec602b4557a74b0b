//! `cargo xtask site create|list|keys|origins`: manages sites through the worker's admin
//! endpoints (`/v1/admin/...`), on the local demo worker by default or on a deployed one
//! with `--edge URL` and `CLOSELOOP_ADMIN_TOKEN`.

use crate::util::{root, Result};
use closeloop_e2e::http;
use serde_json::{json, Value};

const HELP: &str = "usage: cargo xtask site <command> [--edge URL]

  create ID --origin ORIGIN [--origin ORIGIN ...] [--currency USD]
                         create a site; prints its read and write keys (shown once)
  list                   list the sites
  keys ID                make a new read and write key for a site
  origins ID ORIGIN ...  replace a site's allowed origins
  reclassify ID          classify a site's stored events and sessions again with the
                         lists this worker has (after `cargo xtask refresh-lists` and a
                         deploy); reports follow

The admin token comes from CLOSELOOP_ADMIN_TOKEN, or from the demo's
.wrangler/demo-state/demo-keys.json; --edge defaults to http://127.0.0.1:8787.";

pub fn run(args: &[String]) -> Result {
    let mut edge = "http://127.0.0.1:8787".to_string();
    let mut origins = vec![];
    let mut currency = "USD".to_string();
    let mut words = vec![];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--edge" => edge = it.next().cloned().ok_or("--edge needs a URL")?,
            "--origin" => origins.push(it.next().cloned().ok_or("--origin needs a value")?),
            "--currency" => currency = it.next().cloned().ok_or("--currency needs a code")?,
            _ => words.push(a.clone()),
        }
    }
    let token = admin_token()?;
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str())];
    let answer = match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["create", id] => http::post_json(
            &format!("{edge}/v1/admin/sites"),
            &json!({"id": id, "name": id, "allowed_origins": origins, "currency": currency}),
            &headers,
        )?,
        ["list"] => http::request("GET", &format!("{edge}/v1/admin/sites"), &headers, None)?,
        ["keys", id] => http::post_json(
            &format!("{edge}/v1/admin/sites/{id}/keys"),
            &json!({}),
            &headers,
        )?,
        ["reclassify", id] => return reclassify(&edge, id, &headers),
        ["origins", id, rest @ ..] => http::request(
            "PUT",
            &format!("{edge}/v1/admin/sites/{id}/origins"),
            &[headers[0], ("Content-Type", "application/json")],
            Some(&json!({"allowed_origins": rest}).to_string()),
        )?,
        _ => return Err(HELP.to_string()),
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&answer.json).unwrap_or(answer.text.clone())
    );
    if answer.status >= 400 {
        return Err(format!("the worker answered {}", answer.status));
    }
    Ok(())
}

/// Calls `POST /v1/admin/sites/{id}/reclassify` step by step until it is done, then
/// flushes the re-queued sessions; one line per phase.
fn reclassify(edge: &str, id: &str, headers: &[(&str, &str)]) -> Result {
    let mut cursor: Option<String> = None;
    let (mut agents, mut changed, mut events, mut visitors) = (0, 0, 0, 0);
    loop {
        let url = match &cursor {
            Some(c) => format!(
                "{edge}/v1/admin/sites/{id}/reclassify?cursor={}",
                c.replace('%', "%25")
                    .replace(':', "%3A")
                    .replace('+', "%2B")
            ),
            None => format!("{edge}/v1/admin/sites/{id}/reclassify"),
        };
        let a = http::request("POST", &url, headers, Some(""))?;
        if a.status >= 400 {
            return Err(format!("the worker answered {}: {}", a.status, a.text));
        }
        agents += a.json["agents"].as_i64().unwrap_or(0);
        changed += a.json["agents_changed"].as_i64().unwrap_or(0);
        events += a.json["events_updated"].as_i64().unwrap_or(0);
        visitors += a.json["visitors_queued"].as_i64().unwrap_or(0);
        if a.json["done"].as_bool() == Some(true) {
            break;
        }
        cursor = a.json["cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            return Err(format!("no cursor in {}", a.text));
        }
    }
    println!("re-classified {agents} user agents ({changed} changed), {events} events updated, {visitors} visitors queued");
    loop {
        let a = http::request(
            "POST",
            &format!("{edge}/v1/admin/sessions:flush?site={id}"),
            headers,
            Some(""),
        )?;
        if a.status >= 400 {
            return Err(format!("the worker answered {}: {}", a.status, a.text));
        }
        if a.json["more"].as_bool() != Some(true) {
            break;
        }
    }
    println!("sessions rebuilt: reports now follow the lists");
    Ok(())
}

fn admin_token() -> Result<String> {
    if let Ok(t) = std::env::var("CLOSELOOP_ADMIN_TOKEN") {
        return Ok(t);
    }
    let path = root().join(".wrangler/demo-state/demo-keys.json");
    let v: Value = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("set CLOSELOOP_ADMIN_TOKEN (or start `cargo xtask demo` once)")?;
    v["admin_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no admin_token in demo-keys.json".into())
}
