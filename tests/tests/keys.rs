//! Keys and the audit log against the real worker: keys listed (prefix, scope, created,
//! last used — written at most once an hour), revoked and rotated with the old key refused
//! from the very next request, every management action in the audit log (admin and per
//! site), and keys made before scopes existed still working after migration 0011.

use closeloop_e2e::openapi::conforms;
use closeloop_e2e::worker::{wrangler, wrangler_env, Worker};
use closeloop_e2e::{free_port, root, temp_dir};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn report(w: &Worker, site: &str, key: &str) -> closeloop_e2e::http::Answer {
    w.call(
        "GET",
        &format!("/v1/sites/{site}/reports/sources"),
        Some(key),
        None,
    )
    .expect("report")
}

fn deal(w: &Worker, site: &str, key: &str, id: &str) -> closeloop_e2e::http::Answer {
    w.call(
        "POST",
        &format!("/v1/sites/{site}/conversions"),
        Some(key),
        Some(
            &json!({"deal_id": id, "email": "keys@example.com", "revenue": 10,
                     "currency": "USD", "closed_at": "2026-03-05T00:00:00Z"}),
        ),
    )
    .expect("deal")
}

fn keys_of(w: &Worker, site: &str) -> Vec<Value> {
    let a = w
        .admin("GET", &format!("/v1/admin/sites/{site}/keys"), None)
        .expect("keys");
    assert_eq!(a.status, 200, "{}", a.text);
    conforms(&a, "KeyList");
    a.json["keys"].as_array().cloned().unwrap_or_default()
}

fn key_with_prefix<'a>(keys: &'a [Value], key: &str) -> &'a Value {
    keys.iter()
        .find(|k| k["prefix"].as_str() == Some(&key[..12]))
        .unwrap_or_else(|| panic!("no key with prefix {}: {keys:?}", &key[..12]))
}

/// Scenario: a new site has three keys (read, write, manage), listed with their first 12
/// characters, active, never used. A report with the read key sets its "last used"; a second
/// report leaves the stored time as it was (no write per request). The read key is revoked:
/// the next report with it is 403 `key_revoked`; revoking it again changes nothing. The write
/// key is rotated: the old key's next deal is 403 `key_revoked`, the new one (clw_, same scope)
/// stores it; rotating the revoked key is 409, revoking an unknown id 404. A manage key is
/// added; a key of scope `admin` is 400. The audit log (admin, and the site's own with the
/// manage key) lists key.created, key.rotated, key.revoked, site.created — newest first, by
/// `admin`, with no key in it; the site's log has no other site's entry.
#[test]
fn keys_are_listed_revoked_and_rotated_and_every_change_is_audited() {
    let w = Worker::shared().expect("worker");
    let (site, manage) = w
        .create_managed_site(&["https://keys.example"])
        .expect("site");
    let other = w
        .create_site(&["https://keys-other.example"])
        .expect("site");
    let keys = keys_of(w, &site.id);
    assert_eq!(keys.len(), 3, "{keys:?}");
    for (key, scope) in [
        (&site.read_key, "read"),
        (&site.write_key, "write"),
        (&manage, "manage"),
    ] {
        let k = key_with_prefix(&keys, key);
        assert_eq!(k["scope"], scope);
        assert_eq!(k["status"], "active");
        assert_eq!(k["last_used_at"], Value::Null);
        assert!(k["id"].as_str().is_some_and(|i| i.starts_with("key_")));
    }
    let read_id = key_with_prefix(&keys, &site.read_key)["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let write_id = key_with_prefix(&keys, &site.write_key)["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // last used: written once, not on every request
    assert_eq!(report(w, &site.id, &site.read_key).status, 200);
    let stored = |id: &str| {
        w.query(&format!(
            "SELECT last_used_at FROM keys WHERE site_id = '{}' AND id = '{id}'",
            site.id
        ))
        .expect("key")[0]["last_used_at"]
            .clone()
    };
    let first = stored(&read_id);
    assert!(first.is_i64(), "{first}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(report(w, &site.id, &site.read_key).status, 200);
    assert_eq!(
        stored(&read_id),
        first,
        "a second use within the hour writes nothing"
    );
    assert!(key_with_prefix(&keys_of(w, &site.id), &site.read_key)["last_used_at"].is_string());

    // revoke: refused from the next request on
    let r = w
        .admin(
            "DELETE",
            &format!("/v1/admin/sites/{}/keys/{read_id}", site.id),
            None,
        )
        .expect("revoke");
    assert_eq!(r.status, 200, "{}", r.text);
    conforms(&r, "RevokedKey");
    assert_eq!(r.json["key"]["status"], "revoked");
    let a = report(w, &site.id, &site.read_key);
    assert_eq!(
        (a.status, a.error_code()),
        (403, Some("key_revoked")),
        "{}",
        a.text
    );
    let again = w
        .admin(
            "DELETE",
            &format!("/v1/admin/sites/{}/keys/{read_id}", site.id),
            None,
        )
        .expect("revoke again");
    assert_eq!(again.status, 200, "{}", again.text);

    // rotate: the old key refused at once, the new one works
    let rot = w
        .admin(
            "POST",
            &format!("/v1/admin/sites/{}/keys/{write_id}:rotate", site.id),
            None,
        )
        .expect("rotate");
    assert_eq!(rot.status, 201, "{}", rot.text);
    conforms(&rot, "CreatedKey");
    assert_eq!(
        (rot.json["scope"].as_str(), rot.json["replaces"].as_str()),
        (Some("write"), Some(write_id.as_str()))
    );
    let new_write = rot.json["key"].as_str().unwrap_or_default().to_string();
    assert!(new_write.starts_with("clw_"), "{new_write}");
    let old = deal(w, &site.id, &site.write_key, "keys-deal-1");
    assert_eq!(
        (old.status, old.error_code()),
        (403, Some("key_revoked")),
        "{}",
        old.text
    );
    assert_eq!(deal(w, &site.id, &new_write, "keys-deal-1").status, 201);
    let twice = w
        .admin(
            "POST",
            &format!("/v1/admin/sites/{}/keys/{write_id}:rotate", site.id),
            None,
        )
        .expect("rotate again");
    assert_eq!(
        (twice.status, twice.error_code()),
        (409, Some("key_revoked"))
    );
    let unknown = w
        .admin(
            "DELETE",
            &format!("/v1/admin/sites/{}/keys/key_0000000000000000", site.id),
            None,
        )
        .expect("unknown");
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (404, Some("unknown_key"))
    );
    let listed = keys_of(w, &site.id);
    let old_write = key_with_prefix(&listed, &site.write_key);
    assert_eq!(old_write["status"], "revoked");
    assert_eq!(old_write["replaced_by"], rot.json["id"]);

    // a manage key added; no such scope as admin
    let added = w
        .admin(
            "POST",
            &format!("/v1/admin/sites/{}/keys", site.id),
            Some(&json!({"scope": "manage"})),
        )
        .expect("add");
    assert_eq!(added.status, 201, "{}", added.text);
    assert!(added.json["key"]
        .as_str()
        .is_some_and(|k| k.starts_with("clm_")));
    let bad = w
        .admin(
            "POST",
            &format!("/v1/admin/sites/{}/keys", site.id),
            Some(&json!({"scope": "admin"})),
        )
        .expect("bad scope");
    assert_eq!((bad.status, bad.error_code()), (400, Some("invalid_scope")));
    let big = w
        .admin(
            "POST",
            &format!("/v1/admin/sites/{}/keys", site.id),
            Some(&json!({"scope": "read", "pad": "x".repeat(70_000)})),
        )
        .expect("big");
    assert_eq!(
        (big.status, big.error_code()),
        (413, Some("body_too_large"))
    );

    // the audit log
    let log = w
        .admin("GET", &format!("/v1/admin/audit?site={}", site.id), None)
        .expect("audit");
    assert_eq!(log.status, 200, "{}", log.text);
    conforms(&log, "AuditLog");
    let actions: Vec<(&str, &str, &str)> = log.json["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default(),
                e["actor"].as_str().unwrap_or_default(),
                e["target"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let added_id = added.json["id"].as_str().unwrap_or_default();
    assert_eq!(
        actions,
        vec![
            ("key.created", "admin", added_id),
            ("key.rotated", "admin", write_id.as_str()),
            ("key.revoked", "admin", read_id.as_str()),
            ("site.created", "admin", ""),
        ]
    );
    for secret in [&site.read_key, &site.write_key, &manage, &new_write] {
        assert!(
            !log.text.contains(secret.as_str()),
            "a key in the audit log"
        );
    }
    // the site's own log, with its manage key; not with the read key
    let own = w
        .call(
            "GET",
            &format!("/v1/sites/{}/audit", site.id),
            Some(&manage),
            None,
        )
        .expect("site audit");
    assert_eq!(own.status, 200, "{}", own.text);
    assert_eq!(own.json["entries"], log.json["entries"]);
    let other_log = w
        .admin("GET", &format!("/v1/admin/audit?site={}", other.id), None)
        .expect("other");
    assert_eq!(other_log.json["entries"].as_array().map(Vec::len), Some(1));
    let page = w
        .call(
            "GET",
            &format!("/v1/sites/{}/audit?limit=2", site.id),
            Some(&manage),
            None,
        )
        .expect("page");
    assert_eq!(page.json["entries"].as_array().map(Vec::len), Some(2));
    let before = page.json["next_before"].as_i64().expect("cursor");
    let rest = w
        .call(
            "GET",
            &format!("/v1/sites/{}/audit?before={before}", site.id),
            Some(&manage),
            None,
        )
        .expect("rest");
    assert_eq!(rest.json["entries"].as_array().map(Vec::len), Some(2));
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn wrangler_ok(args: &[&str], config: &std::path::Path, persist: &std::path::Path) {
    let out = wrangler_env(&mut std::process::Command::new(wrangler()))
        .args(args)
        .arg("--local")
        .arg("--persist-to")
        .arg(persist)
        .arg("--config")
        .arg(config)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("wrangler");
    assert!(
        out.status.success(),
        "wrangler {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Scenario: a database at migration 0008 (before scopes) holds site `legacy` with a read
/// key and a write key stored as the old code stored them (SHA-256 only). Migration 0011 is
/// applied and the worker starts on it. Expected: both keys keep working for their scope
/// (a report 200, a deal 201), the write key may not erase (403 `insufficient_scope`), the
/// keys are listed with ids `key_` + the first 16 hex digits of their hash and no prefix,
/// and a manage key added by the admin erases.
#[test]
fn keys_made_before_scopes_keep_working() {
    // a wrangler config whose migrations stop at 0008, on the same local database id
    let cfg = temp_dir("legacy-config").expect("dir");
    let migrations = cfg.join("migrations");
    std::fs::create_dir_all(&migrations).expect("dir");
    for e in std::fs::read_dir(root().join("edge/migrations")).expect("migrations") {
        let p = e.expect("entry").path();
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.as_str() < "0009" {
            std::fs::copy(&p, migrations.join(&name)).expect("copy");
        }
    }
    let config = cfg.join("wrangler.toml");
    std::fs::write(
        &config,
        "name = \"legacy\"\ncompatibility_date = \"2026-04-20\"\n\n[[d1_databases]]\n\
         binding = \"DB\"\ndatabase_name = \"closeloop\"\n\
         database_id = \"00000000-0000-0000-0000-000000000000\"\nmigrations_dir = \"migrations\"\n",
    )
    .expect("config");
    let persist = temp_dir("legacy-state").expect("dir");
    wrangler_ok(&["d1", "migrations", "apply", "DB"], &config, &persist);
    let read = format!("clr_{}", "1a".repeat(24));
    let write = format!("clw_{}", "2b".repeat(24));
    let sql = format!(
        "INSERT INTO sites (id, name, allowed_origins, created_at) VALUES \
         ('legacy', 'legacy', '[\"https://legacy.example\"]', 1700000000000); \
         INSERT INTO keys (hash, site_id, kind, created_at) VALUES \
         ('{}', 'legacy', 'read', 1700000000000), ('{}', 'legacy', 'write', 1700000000000);",
        sha256_hex(&read),
        sha256_hex(&write)
    );
    wrangler_ok(
        &["d1", "execute", "DB", "--command", &sql],
        &config,
        &persist,
    );

    let token = "legacy-admin-token";
    let w = Worker::start_at(&persist, free_port().expect("port"), token).expect("worker");
    let r = report(&w, "legacy", &read);
    assert_eq!(r.status, 200, "{}", r.text);
    let d = deal(&w, "legacy", &write, "legacy-deal");
    assert_eq!(d.status, 201, "{}", d.text);
    let erase = w
        .call(
            "DELETE",
            "/v1/sites/legacy/leads/keys%40example.com",
            Some(&write),
            None,
        )
        .expect("erase");
    assert_eq!(
        (erase.status, erase.error_code()),
        (403, Some("insufficient_scope"))
    );
    let keys = keys_of(&w, "legacy");
    let mut ids: Vec<(String, Value)> = keys
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap_or_default().to_string(),
                k["prefix"].clone(),
            )
        })
        .collect();
    ids.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = vec![
        (format!("key_{}", &sha256_hex(&read)[..16]), Value::Null),
        (format!("key_{}", &sha256_hex(&write)[..16]), Value::Null),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(ids, want);
    let added = w
        .admin(
            "POST",
            "/v1/admin/sites/legacy/keys",
            Some(&json!({"scope": "manage"})),
        )
        .expect("manage key");
    assert_eq!(added.status, 201, "{}", added.text);
    let manage = added.json["key"].as_str().unwrap_or_default();
    let erase = w
        .call(
            "DELETE",
            "/v1/sites/legacy/leads/keys%40example.com",
            Some(manage),
            None,
        )
        .expect("erase");
    assert_eq!(erase.status, 200, "{}", erase.text);
    drop(w);
    let _ = std::fs::remove_dir_all(&persist);
    let _ = std::fs::remove_dir_all(&cfg);
}
