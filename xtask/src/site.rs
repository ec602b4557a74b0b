//! `cargo xtask site create|list|keys|origins|privacy|settings|identity-secret|audit`:
//! manages sites through the
//! worker's admin endpoints (`/v1/admin/...`), on the local demo worker by default or on a
//! deployed one with `--edge URL` and `CLOSELOOP_ADMIN_TOKEN`.

use crate::util::{root, Result};
use closeloop_e2e::http;
use serde_json::{json, Value};

const HELP: &str = "usage: cargo xtask site <command> [--edge URL]

  create ID --origin ORIGIN [--origin ORIGIN ...] [--currency USD] [--shards N]
                         create a site; prints its read, write and manage keys (shown once);
                         with --shards N (1 to 64) its events live in N per-site shards
                         (Durable Objects) instead of D1 (see README, 'A site in shards')
  shards ID              each shard's counts (events, sessions, archive, rows read/written)
  list                   list the sites
  keys ID                list a site's keys (id, scope, prefix, created, last used, status)
  keys add ID --scope read|write|manage
                         make a key (shown once)
  keys revoke ID KEY_ID  revoke a key (refused from the next request on)
  keys rotate ID KEY_ID  a new key of the same scope (shown once); the old one is revoked
  origins ID ORIGIN ...  replace a site's allowed origins
  privacy ID [--query-key KEY ...] [--geo postal_code|coordinates|timezone|network|colo ...]
                         replace what is kept of a visitor (query keys of stored URLs
                         besides UTM tags and click ids; geo fields besides country,
                         region, city)
  audit [ID]             the audit log (of one site, or of all)
  settings ID [--extra-host HOST ...] [--max-events-per-day N]
              [--max-events-per-visitor-day N] [--bad-rows-kept N]
                         change a site's beacon settings (absent ones unchanged)
  identity-secret ID [--off]
                         turn identity verification on with a new secret (shown
                         once), or off
  reclassify ID          classify a site's stored events and sessions again with the
                         lists this worker has (after `cargo xtask refresh-lists` and a
                         deploy); reports follow

Scopes: read (reports, leads), write (events:import, conversions, spend), manage
(erasure, tombstones, webhooks, the site's audit log); they do not nest.

The admin token comes from CLOSELOOP_ADMIN_TOKEN, or from the demo's
.wrangler/demo-state/demo-keys.json; --edge defaults to http://127.0.0.1:8787.";

pub fn run(args: &[String]) -> Result {
    let mut edge = "http://127.0.0.1:8787".to_string();
    let mut origins = vec![];
    let mut currency = "USD".to_string();
    let mut scope = None;
    let mut query_keys = vec![];
    let mut geo = vec![];
    let mut settings = serde_json::Map::new();
    let mut extra_hosts: Vec<String> = vec![];
    let mut off = false;
    let mut words = vec![];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--edge" => edge = it.next().cloned().ok_or("--edge needs a URL")?,
            "--origin" => origins.push(it.next().cloned().ok_or("--origin needs a value")?),
            "--currency" => currency = it.next().cloned().ok_or("--currency needs a code")?,
            "--scope" => scope = Some(it.next().cloned().ok_or("--scope needs a scope")?),
            "--query-key" => query_keys.push(it.next().cloned().ok_or("--query-key needs a key")?),
            "--geo" => geo.push(it.next().cloned().ok_or("--geo needs a field")?),
            "--extra-host" => {
                extra_hosts.push(it.next().cloned().ok_or("--extra-host needs a host")?)
            }
            "--off" => off = true,
            flag @ ("--max-events-per-day"
            | "--max-events-per-visitor-day"
            | "--bad-rows-kept"
            | "--shards") => {
                let n: i64 = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or(format!("{flag} needs a number"))?;
                settings.insert(flag.trim_start_matches("--").replace('-', "_"), json!(n));
            }
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
        ["create", id] => {
            let mut body =
                json!({"id": id, "name": id, "allowed_origins": origins, "currency": currency});
            if let Some(n) = settings.get("shards") {
                body["shards"] = n.clone();
            }
            http::post_json(&format!("{edge}/v1/admin/sites"), &body, &headers)?
        }
        ["shards", id] => http::request(
            "GET",
            &format!("{edge}/v1/admin/sites/{id}/shards"),
            &headers,
            None,
        )?,
        ["list"] => http::request("GET", &format!("{edge}/v1/admin/sites"), &headers, None)?,
        ["keys", "add", id] => http::post_json(
            &format!("{edge}/v1/admin/sites/{id}/keys"),
            &json!({ "scope": scope.ok_or("keys add needs --scope read|write|manage")? }),
            &headers,
        )?,
        ["keys", "revoke", id, key] => http::request(
            "DELETE",
            &format!("{edge}/v1/admin/sites/{id}/keys/{key}"),
            &headers,
            None,
        )?,
        ["keys", "rotate", id, key] => http::post_json(
            &format!("{edge}/v1/admin/sites/{id}/keys/{key}:rotate"),
            &json!({}),
            &headers,
        )?,
        ["keys", id] => http::request(
            "GET",
            &format!("{edge}/v1/admin/sites/{id}/keys"),
            &headers,
            None,
        )?,
        ["privacy", id] => http::request(
            "PUT",
            &format!("{edge}/v1/admin/sites/{id}/privacy"),
            &[headers[0], ("Content-Type", "application/json")],
            Some(&json!({ "query_keys": query_keys, "geo": geo }).to_string()),
        )?,
        ["audit"] => http::request("GET", &format!("{edge}/v1/admin/audit"), &headers, None)?,
        ["audit", id] => http::request(
            "GET",
            &format!("{edge}/v1/admin/audit?site={id}"),
            &headers,
            None,
        )?,
        ["reclassify", id] => return reclassify(&edge, id, &headers),
        ["origins", id, rest @ ..] => http::request(
            "PUT",
            &format!("{edge}/v1/admin/sites/{id}/origins"),
            &[headers[0], ("Content-Type", "application/json")],
            Some(&json!({"allowed_origins": rest}).to_string()),
        )?,
        ["settings", id] => {
            if !extra_hosts.is_empty() {
                settings.insert("extra_hosts".into(), json!(extra_hosts));
            }
            http::request(
                "PATCH",
                &format!("{edge}/v1/admin/sites/{id}"),
                &[headers[0], ("Content-Type", "application/json")],
                Some(&Value::Object(settings).to_string()),
            )?
        }
        ["identity-secret", id] => http::request(
            if off { "DELETE" } else { "POST" },
            &format!("{edge}/v1/admin/sites/{id}/identity_secret"),
            &headers,
            None,
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
