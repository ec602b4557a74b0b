//! The tenancy matrix: every operation the OpenAPI document secures with a key or the admin
//! token, driven from the document's own paths (an endpoint added to the document cannot
//! escape it; `edge/src/api/mod.rs` checks the router's table equals the document), crossed
//! with every wrong credential — none, another scheme, a token that is no key, another
//! site's key of the right scope, this site's keys of the other scopes, a revoked key of
//! the right scope, a well-formed key nobody has — against the real worker. Each answer is
//! a 401 or 403 JSON error with its code, and nothing of the site changed.

use closeloop_e2e::http::{self, Answer};
use closeloop_e2e::openapi::{conforms, document};
use closeloop_e2e::receiver::{Receiver, Reply};
use closeloop_e2e::worker::{Site, Worker};
use serde_json::{json, Value};

/// A site with every key scope, and one revoked key of each.
struct Keys {
    site: Site,
    manage: String,
    revoked: [(String, String); 3],
}

impl Keys {
    fn of(&self, scope: &str) -> &str {
        match scope {
            "read" => &self.site.read_key,
            "write" => &self.site.write_key,
            _ => &self.manage,
        }
    }
    fn revoked(&self, scope: &str) -> &str {
        self.revoked
            .iter()
            .find(|(s, _)| s == scope)
            .map(|(_, k)| k.as_str())
            .unwrap_or_default()
    }
}

fn site_with_keys(w: &Worker, origin: &str) -> Keys {
    let (site, manage) = w.create_managed_site(&[origin]).expect("site");
    let revoke = |scope: &str| -> (String, String) {
        let a = w
            .admin(
                "POST",
                &format!("/v1/admin/sites/{}/keys", site.id),
                Some(&json!({ "scope": scope })),
            )
            .expect("key");
        assert_eq!(a.status, 201, "{}", a.text);
        let id = a.json["id"].as_str().unwrap_or_default();
        let r = w
            .admin(
                "DELETE",
                &format!("/v1/admin/sites/{}/keys/{id}", site.id),
                None,
            )
            .expect("revoke");
        assert_eq!(r.status, 200, "{}", r.text);
        (
            scope.to_string(),
            a.json["key"].as_str().unwrap_or_default().to_string(),
        )
    };
    let revoked = [revoke("read"), revoke("write"), revoke("manage")];
    Keys {
        site,
        manage,
        revoked,
    }
}

/// Everything stored about a site, as JSON text.
fn snapshot(w: &Worker, site: &str) -> String {
    let mut out = Vec::new();
    for table in [
        "events",
        "sessions",
        "visitors",
        "leads",
        "lead_visitors",
        "conversions",
        "spend",
        "webhooks",
        "webhook_outbox",
        "keys",
        "audit_log",
        "tombstones",
        "session_queue",
    ] {
        let rows = w
            .query(&format!(
                "SELECT * FROM {table} WHERE site_id = '{site}' ORDER BY 1, 2"
            ))
            .expect("rows");
        out.push(json!({ table: rows }));
    }
    out.push(json!(w
        .query(&format!("SELECT * FROM sites WHERE id = '{site}'"))
        .expect("site")));
    out.push(json!(w.count("SELECT count(*) FROM sites").expect("sites")));
    serde_json::to_string(&out).unwrap_or_default()
}

/// A body the operation would act on if it were let through.
fn body_for(operation: &str, receiver: &str) -> Option<Value> {
    let t = 1_772_359_200_000_i64;
    Some(match operation {
        "importEvents" => json!({"visitor_id": "tenancy-intruder", "events": [
            {"id": "tenancy-ev-x", "type": "pageview", "created_at": t, "url": "https://tenancy.example/"}]}),
        "createConversion" => json!({"deal_id": "tenancy-deal", "email": "lead@example.com",
            "revenue": 10, "currency": "USD", "closed_at": "2026-03-05T00:00:00Z"}),
        "createSpend" => json!({"amount": "10.00", "currency": "USD", "start": "2026-03-01",
            "end": "2026-03-02", "channel": "Email"}),
        "createWebhook" => json!({ "url": receiver }),
        "rotateWebhookSecret" => json!({"previous_secret_ttl": 0}),
        "createSite" => json!({"id": format!("tenancy-intruder-{}", std::process::id())}),
        "createKey" => json!({"scope": "manage"}),
        "setOrigins" => json!({"allowed_origins": ["https://evil.example"]}),
        "setPrivacy" => json!({"geo": ["coordinates"]}),
        "importConversions" | "importSpend" | "deliverWebhooks" | "runCron" | "flushSessions" => {
            json!({})
        }
        _ => return None,
    })
}

fn send(w: &Worker, method: &str, path: &str, auth: Option<&str>, body: Option<&Value>) -> Answer {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = auth {
        headers.push(("Authorization", a));
    }
    let text = body.map(Value::to_string);
    http::request(method, &w.url(path), &headers, text.as_deref()).expect("request")
}

/// Scenario: site V (with a webhook, a lead `lead@example.com`, an erased lead whose
/// tombstone is `tomb@example.com`, and a revoked key of each scope) and site O. For every
/// secured operation of the OpenAPI document, with V's path parameters filled in and a body
/// it would act on: no `Authorization` (401 `missing_key`), a `Basic` header (401
/// `missing_key`), `Bearer not-a-key` (403 `malformed_key`), a well-formed key nobody has
/// (403 `forbidden`), O's key of the operation's scope (403 `forbidden`), V's keys of the
/// two other scopes (403 `insufficient_scope`), V's revoked key of the scope (403
/// `key_revoked`); admin operations: none (401), a wrong token and each of V's keys (403
/// `forbidden`). Every answer follows the `Error` schema; V's rows are the same before and
/// after; every secured operation of the document was tried.
#[test]
fn every_secured_endpoint_refuses_every_wrong_credential() {
    let w = Worker::shared().expect("worker");
    let receiver = Receiver::start(|_| Reply::Ok).expect("receiver");
    let v = site_with_keys(w, "https://tenancy.example");
    let o = site_with_keys(w, "https://other-tenant.example");
    let t = 1_772_359_200_000_i64;
    // V's data: a lead, an erased lead (its tombstone), then a webhook
    let import = json!([
        {"visitor_id": "tenancy-v1", "events": [{"id": "tenancy-ev-1", "type": "identify",
          "created_at": t, "url": "https://tenancy.example/", "email": "lead@example.com"}]},
        {"visitor_id": "tenancy-v2", "events": [{"id": "tenancy-ev-2", "type": "identify",
          "created_at": t, "url": "https://tenancy.example/", "email": "tomb@example.com"}]}]);
    let a = w
        .call(
            "POST",
            &format!("/v1/sites/{}/events:import", v.site.id),
            Some(&v.site.write_key),
            Some(&import),
        )
        .expect("import");
    assert_eq!(a.json["accepted"], 2, "{}", a.text);
    let a = w
        .call(
            "DELETE",
            &format!("/v1/sites/{}/leads/tomb%40example.com", v.site.id),
            Some(&v.manage),
            None,
        )
        .expect("erase");
    assert_eq!(a.status, 200, "{}", a.text);
    let hook = w
        .call(
            "POST",
            &format!("/v1/sites/{}/webhooks", v.site.id),
            Some(&v.manage),
            Some(&json!({"url": receiver.url("/hook")})),
        )
        .expect("webhook");
    assert_eq!(hook.status, 201, "{}", hook.text);
    let webhook = hook.json["id"].as_str().unwrap_or_default().to_string();
    let keys = w
        .admin("GET", &format!("/v1/admin/sites/{}/keys", v.site.id), None)
        .expect("keys");
    let key_id = keys.json["keys"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    w.flush_sessions(Some(&v.site.id)).expect("flush");
    let before = snapshot(w, &v.site.id);

    let unknown = format!("Bearer clr_{}", "9".repeat(48));
    let mut tried = Vec::new();
    let mut failures = Vec::new();
    let doc = document();
    for (template, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            let Some(scheme) = op["security"][0]
                .as_object()
                .and_then(|s| s.keys().next().cloned())
            else {
                continue;
            };
            let operation = op["operationId"].as_str().unwrap_or(template);
            let path = template
                .replace("{site}", &v.site.id)
                .replace("{lead}", "lead%40example.com")
                .replace("{email}", "tomb%40example.com")
                .replace("{webhook}", &webhook)
                .replace("{key_id}", &key_id);
            let method = method.to_uppercase();
            let body = body_for(operation, &receiver.url("/intruder"));
            let mut cases: Vec<(String, Option<String>, u16, &str)> = vec![
                ("no key".into(), None, 401, "missing_key"),
                (
                    "Basic".into(),
                    Some("Basic dXNlcjpwdw==".into()),
                    401,
                    "missing_key",
                ),
            ];
            if scheme == "adminToken" {
                cases.push((
                    "wrong token".into(),
                    Some("Bearer nope".into()),
                    403,
                    "forbidden",
                ));
                for scope in ["read", "write", "manage"] {
                    cases.push((
                        format!("the site's {scope} key"),
                        Some(format!("Bearer {}", v.of(scope))),
                        403,
                        "forbidden",
                    ));
                }
            } else {
                let scope = match scheme.as_str() {
                    "readKey" => "read",
                    "writeKey" => "write",
                    "manageKey" => "manage",
                    other => panic!("{method} {template}: unknown scheme {other}"),
                };
                cases.push((
                    "not a key".into(),
                    Some("Bearer not-a-key".into()),
                    403,
                    "malformed_key",
                ));
                cases.push((
                    "nobody's key".into(),
                    Some(unknown.clone()),
                    403,
                    "forbidden",
                ));
                cases.push((
                    format!("the other site's {scope} key"),
                    Some(format!("Bearer {}", o.of(scope))),
                    403,
                    "forbidden",
                ));
                for other in ["read", "write", "manage"] {
                    if other != scope {
                        cases.push((
                            format!("the site's {other} key"),
                            Some(format!("Bearer {}", v.of(other))),
                            403,
                            "insufficient_scope",
                        ));
                    }
                }
                cases.push((
                    format!("a revoked {scope} key"),
                    Some(format!("Bearer {}", v.revoked(scope))),
                    403,
                    "key_revoked",
                ));
            }
            for (what, auth, status, code) in cases {
                let a = send(w, &method, &path, auth.as_deref(), body.as_ref());
                if a.status != status || a.error_code() != Some(code) {
                    failures.push(format!(
                        "{method} {template} with {what}: {} {}",
                        a.status, a.text
                    ));
                    continue;
                }
                conforms(&a, "Error");
            }
            tried.push(format!("{method} {template}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // nothing of V changed, nothing reached the receiver from an intruder
    assert_eq!(snapshot(w, &v.site.id), before);
    assert!(
        receiver.hits().iter().all(|h| h.path != "/intruder"),
        "{:?}",
        receiver.hits()
    );
    // every secured operation of the document was tried (the site API has 18, the admin
    // API 11 today; new ones join automatically)
    let site_ops = tried.iter().filter(|t| t.contains("/v1/sites/")).count();
    let admin_ops = tried.iter().filter(|t| t.contains("/v1/admin/")).count();
    assert!(site_ops >= 18 && admin_ops >= 11, "{tried:?}");
}

/// Scenario: a report of a site that does not exist, asked with another site's read key:
/// 403 `forbidden` (a key never learns whether another site exists).
#[test]
fn an_unknown_site_answers_like_a_foreign_one() {
    let w = Worker::shared().expect("worker");
    let site = w
        .create_site(&["https://tenancy-unknown.example"])
        .expect("site");
    let a = w
        .call(
            "GET",
            "/v1/sites/no-such-site-anywhere/reports/sources",
            Some(&site.read_key),
            None,
        )
        .expect("report");
    assert_eq!(
        (a.status, a.error_code()),
        (403, Some("forbidden")),
        "{}",
        a.text
    );
}
