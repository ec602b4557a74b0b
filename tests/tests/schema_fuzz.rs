//! What the schema-driven fuzz of the worker (schemathesis over `docs/openapi.json`,
//! `cargo xtask test` / `cargo xtask fuzz`) found, pinned as regression tests against
//! the real worker: each test is named after the finding, and its expected answers come
//! from the document and RFC 9110, not from the worker.

use closeloop_e2e::http::{self, Answer};
use closeloop_e2e::root;
use closeloop_e2e::worker::{Site, Worker};
use serde_json::{json, Value};

fn openapi() -> Value {
    let text = std::fs::read_to_string(root().join("docs/openapi.json")).expect("openapi");
    serde_json::from_str(&text).expect("openapi JSON")
}

fn new_site() -> (&'static Worker, Site) {
    let w = Worker::shared().expect("worker");
    let site = w
        .create_site(&["https://fuzz-found.example"])
        .expect("site");
    (w, site)
}

fn request(w: &Worker, method: &str, path: &str, key: Option<&str>, body: Option<&str>) -> Answer {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut h = vec![("Content-Type", "application/json")];
    if let Some(a) = auth.as_deref() {
        h.push(("Authorization", a));
    }
    http::request(method, &w.url(path), &h, body).expect("request")
}

/// Found: a 405 carried no `Allow` header (RFC 9110 §15.5.6 requires one). Scenario:
/// every path of the document, asked with `TRACE` (which no path takes). Expected: 405
/// `method_not_allowed` in the JSON error shape, with `Allow` listing exactly the
/// methods the document gives that path (`OPTIONS` included where documented).
#[test]
fn a_405_says_which_methods_the_path_takes() {
    let (w, site) = new_site();
    let doc = openapi();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 15, "the document lists the surface");
    for (template, ops) in paths {
        let path = template
            .replace("{site}", &site.id)
            .replace("{lead}", "nobody%40example.com");
        let mut documented: Vec<String> = ops
            .as_object()
            .expect("operations")
            .keys()
            .filter(|m| ["get", "post", "put", "delete", "patch", "options"].contains(&m.as_str()))
            .map(|m| m.to_ascii_uppercase())
            .collect();
        documented.sort();
        let key = if template.starts_with("/v1/admin/") {
            &w.admin_token
        } else {
            &site.write_key
        };
        let a = request(w, "TRACE", &path, Some(key), None);
        assert_eq!(
            (a.status, a.error_code()),
            (405, Some("method_not_allowed")),
            "TRACE {template}: {}",
            a.text
        );
        let mut allow: Vec<String> = a
            .header("allow")
            .unwrap_or_else(|| panic!("TRACE {template}: no Allow header"))
            .split(',')
            .map(|m| m.trim().to_string())
            .collect();
        allow.sort();
        assert_eq!(allow, documented, "Allow of {template}");
    }
}

/// Found: `GET .../leads?limit=0` answered 200 (taken as 1) although the document says
/// `limit` is 1–500. Expected: 400 `invalid_parameter` for 0 and 501, 200 for 1 and 500.
#[test]
fn a_lead_list_limit_outside_the_documented_range_is_a_400() {
    let (w, site) = new_site();
    let list = |q: &str| {
        request(
            w,
            "GET",
            &format!("/v1/sites/{}/leads?{q}", site.id),
            Some(&site.read_key),
            None,
        )
    };
    for q in ["limit=0", "limit=501", "limit=-1", "limit=ten"] {
        let a = list(q);
        assert_eq!(
            (a.status, a.error_code()),
            (400, Some("invalid_parameter")),
            "{q}: {}",
            a.text
        );
    }
    for q in ["limit=1", "limit=500"] {
        let a = list(q);
        assert_eq!(a.status, 200, "{q}: {}", a.text);
        assert_eq!(a.json["leads"], json!([]));
    }
}

/// Found: `POST /v1/admin/sites` with `"currency": null` (and `name`,
/// `max_events_per_visitor_day` null) was accepted while the document said `string`;
/// `events:import` took `"site_id": null`. The worker treats a JSON `null` in an
/// optional field as absent, everywhere; the document now says so (`["string",
/// "null"]`). Expected: the site is created with the defaults (currency USD, name = id,
/// quota 5000), and the document types those fields as nullable.
#[test]
fn null_in_an_optional_field_counts_as_absent_as_the_document_says() {
    let w = Worker::shared().expect("worker");
    let id = format!("null-fields-{}", closeloop_e2e::now_ms() % 1_000_000_000);
    let auth = format!("Bearer {}", w.admin_token);
    let a = http::post_json(
        &w.url("/v1/admin/sites"),
        &json!({"id": id, "name": null, "currency": null, "max_events_per_visitor_day": null}),
        &[("Authorization", &auth)],
    )
    .expect("create");
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json["site"]["currency"], "USD");
    assert_eq!(a.json["site"]["name"], id.as_str());
    assert_eq!(a.json["site"]["max_events_per_visitor_day"], 5000);
    let doc = openapi();
    let new_site = &doc["components"]["schemas"]["NewSite"]["properties"];
    for field in ["name", "currency", "max_events_per_visitor_day"] {
        let types = new_site[field]["type"].as_array().expect("a type list");
        assert!(types.contains(&json!("null")), "NewSite.{field}");
    }
    let import = &doc["components"]["schemas"]["ImportBatch"];
    assert!(import["properties"]["site_id"]["type"]
        .as_array()
        .is_some_and(|t| t.contains(&json!("null"))));
    assert_eq!(import["required"], json!(["visitor_id", "events"]));
}
