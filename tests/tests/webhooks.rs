//! Webhooks against the real worker: SSRF targets refused at registration and at delivery,
//! redirects never followed, a timeout per delivery, one site's slow receiver never delaying
//! another's, every announcement made exactly once (across erasures, concurrent runs and a
//! slow receiver), the cron run inside D1's statements per invocation under a backlog, and
//! webhooks listed, deleted and their secrets rotated.
//!
//! Tests that run deliveries over every site (the cron) share one dedicated worker and take
//! turns on it, so that no other test's site takes part in their runs.

use closeloop_e2e::http::Answer;
use closeloop_e2e::openapi::conforms;
use closeloop_e2e::receiver::{Hit, Receiver, Reply};
use closeloop_e2e::worker::{Site, Worker, LOOPBACK_SWITCH};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

const T: i64 = 1_772_359_200_000; // 2026-03-01T10:00:00Z

/// The dedicated worker of the tests that run deliveries over every site, one at a time.
fn all_sites_worker() -> MutexGuard<'static, Worker> {
    static W: OnceLock<Mutex<Worker>> = OnceLock::new();
    W.get_or_init(|| Mutex::new(Worker::start().expect("worker")))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

struct Managed {
    site: Site,
    manage: String,
}

fn managed(w: &Worker, origin: &str) -> Managed {
    let (site, manage) = w.create_managed_site(&[origin]).expect("site");
    Managed { site, manage }
}

impl Managed {
    fn call(&self, w: &Worker, method: &str, path: &str, body: Option<&Value>) -> Answer {
        w.call(
            method,
            &format!("/v1/sites/{}/{path}", self.site.id),
            Some(&self.manage),
            body,
        )
        .expect("request")
    }

    fn register(&self, w: &Worker, url: &str) -> String {
        let a = self.call(w, "POST", "webhooks", Some(&json!({ "url": url })));
        assert_eq!(a.status, 201, "{}", a.text);
        conforms(&a, "Webhook");
        a.json["id"].as_str().unwrap_or_default().to_string()
    }

    fn deliver(&self, w: &Worker) -> Value {
        let a = self.call(w, "POST", "webhooks:deliver", Some(&json!({})));
        assert_eq!(a.status, 200, "{}", a.text);
        conforms(&a, "WebhookRun");
        a.json
    }

    /// Leads through events:import: one visitor per email, each an `identify`.
    fn leads(&self, w: &Worker, emails: &[&str]) {
        let batches: Vec<Value> = emails
            .iter()
            .map(|e| {
                let tag: String = e
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect();
                json!({"visitor_id": format!("visitor-{tag}"), "events": [{"id": format!("event-{tag}"),
                  "type": "identify", "created_at": T, "url": "https://hooks-site.example/",
                  "email": e}]})
            })
            .collect();
        let a = w
            .call(
                "POST",
                &format!("/v1/sites/{}/events:import", self.site.id),
                Some(&self.site.write_key),
                Some(&Value::Array(batches)),
            )
            .expect("import");
        assert_eq!(
            a.json["accepted"].as_u64(),
            Some(emails.len() as u64),
            "{}",
            a.text
        );
    }
}

fn emails_of(hits: &[Hit]) -> Vec<String> {
    let mut v: Vec<String> = hits
        .iter()
        .filter_map(|h| h.body["lead"]["email"].as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

fn outbox(w: &Worker, site: &str) -> Vec<Value> {
    w.query(&format!(
        "SELECT id, attempts, delivered_at, failed_at, last_error, next_at FROM webhook_outbox \
         WHERE site_id = '{site}' ORDER BY id"
    ))
    .expect("outbox")
}

/// Scenario: with the test workers' loopback switch on, a site registers each target the
/// issue lists and their cousins but loopback ones (those are refused once the switch is
/// off: next test) — private, link-local, CGNAT, unique-local and public addresses
/// (IPv4-mapped IPv6 too), `.internal`, `.local`, single-label names, user info, plain http
/// to a public name or to a private address, ftp. Expected: each is 400 `invalid_url` and
/// the site has no webhook; then `https://hooks.example.com/closeloop` and the loopback
/// receiver (the switch) are taken.
#[test]
fn ssrf_targets_are_refused_at_registration() {
    let w = Worker::shared().expect("worker");
    let m = managed(w, "https://ssrf.example");
    for url in [
        "http://10.0.0.1/x",
        "https://10.0.0.1/",
        "https://169.254.169.254/latest",
        "http://169.254.169.254/latest/meta-data/",
        "https://[::ffff:a9fe:a9fe]/",
        "https://100.64.1.1/",
        "https://192.168.1.10:8443/",
        "https://172.16.0.1/",
        "https://[fe80::1]/",
        "https://[fd12:3456::1]/",
        "https://8.8.8.8/",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://printer.local/",
        "https://intranet/",
        "https://user:pw@hooks.example.com/",
        "http://crm.example.com/x",
        "ftp://hooks.example.com/",
        "not a url",
    ] {
        let a = m.call(w, "POST", "webhooks", Some(&json!({ "url": url })));
        assert_eq!(
            (a.status, a.error_code()),
            (400, Some("invalid_url")),
            "{url}: {}",
            a.text
        );
        conforms(&a, "Error");
    }
    let list = m.call(w, "GET", "webhooks", None);
    assert_eq!(list.json["webhooks"], json!([]), "{}", list.text);
    m.register(w, "https://hooks.example.com/closeloop");
    let receiver = Receiver::start(|_| Reply::Ok).expect("receiver");
    m.register(w, &receiver.url("/hook"));
    let list = m.call(w, "GET", "webhooks", None);
    conforms(&list, "WebhookList");
    assert_eq!(list.json["webhooks"].as_array().map(Vec::len), Some(2));
}

/// Scenario: a worker with the loopback switch registers a receiver on 127.0.0.1 and a lead
/// arrives; the worker then restarts without the switch (as production runs): the stored
/// target is now one the rules refuse. A delivery run refuses it at delivery: `refused` 1,
/// nothing reaches the receiver, the delivery is given up with the reason. Registering
/// loopback targets in every spelling (`[::1]`, `localhost` and its subdomains, 2130706433,
/// 0x7f.0.0.1, 0177.0.0.1, 127.1, `[::ffff:127.0.0.1]`, http to 127.0.0.1) is 400
/// `invalid_url` too. (The switch back on afterwards, for the next tests.)
#[test]
fn a_stored_target_the_rules_refuse_is_refused_at_delivery() {
    let mut w = all_sites_worker();
    let receiver = Receiver::start(|_| Reply::Ok).expect("receiver");
    let m = managed(&w, "https://hooks-site.example");
    m.register(&w, &receiver.url("/hook"));
    m.leads(&w, &["refused@example.com"]);
    w.set_vars(&[]);
    w.restart().expect("restart without the switch");
    let run = m.deliver(&w);
    let mut accepted = Vec::new();
    for url in [
        "https://[::1]/",
        "https://localhost/",
        "https://LocalHost./x",
        "https://api.localhost/",
        "https://2130706433/",
        "https://0x7f.0.0.1/",
        "https://0177.0.0.1/",
        "https://127.1/",
        "https://[::ffff:127.0.0.1]/",
        "http://127.0.0.1:9/x",
        receiver.url("/hook").as_str(),
    ] {
        let a = m.call(&w, "POST", "webhooks", Some(&json!({ "url": url })));
        if (a.status, a.error_code()) != (400, Some("invalid_url")) {
            accepted.push(format!("{url}: {}", a.text));
        }
    }
    w.set_vars(&[LOOPBACK_SWITCH]);
    w.restart().expect("restart with the switch");
    assert!(accepted.is_empty(), "{}", accepted.join("\n"));
    assert_eq!(
        (run["refused"].as_u64(), run["delivered"].as_u64()),
        (Some(1), Some(0)),
        "{run}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(receiver.hits().is_empty(), "{:?}", receiver.hits());
    let rows = outbox(&w, &m.site.id);
    assert_eq!(rows.len(), 1);
    assert!(rows[0]["failed_at"].is_i64(), "{rows:?}");
    assert!(
        rows[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("target refused")),
        "{rows:?}"
    );
}

/// Scenario: the receiver answers the delivery with `302 Location: <receiver>/target`.
/// Expected: the attempt fails (`failed` 1, its error names the 302), and `/target` is never
/// requested.
#[test]
fn redirects_are_not_followed() {
    let w = Worker::shared().expect("worker");
    let target = Receiver::start(|_| Reply::Ok).expect("target");
    let to = target.url("/target");
    let receiver = Receiver::start(move |_| Reply::Redirect(to.clone())).expect("receiver");
    let m = managed(w, "https://hooks-site.example");
    m.register(w, &receiver.url("/redirect"));
    m.leads(w, &["redirect@example.com"]);
    let run = m.deliver(w);
    assert_eq!(
        (run["failed"].as_u64(), run["delivered"].as_u64()),
        (Some(1), Some(0)),
        "{run}"
    );
    assert_eq!(receiver.wait_for(1, Duration::from_secs(5)).len(), 1);
    std::thread::sleep(Duration::from_millis(500));
    assert!(target.hits().is_empty(), "the redirect was followed");
    let rows = outbox(w, &m.site.id);
    assert!(
        rows[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("302")),
        "{rows:?}"
    );
    assert!(rows[0]["delivered_at"].is_null() && rows[0]["failed_at"].is_null());
}

fn hmac_hex(secret: &str, t: &str, body: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    m.update(format!("{t}.{body}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// `t` and the `v1` signatures of a `Closeloop-Signature` header.
fn signatures(header: &str) -> (String, Vec<String>) {
    let mut t = String::new();
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.to_string(),
            Some(("v1", v)) => v1.push(v.to_string()),
            _ => {}
        }
    }
    (t, v1)
}

/// Scenario: a site registers webhooks W1 (`/one`) and W2 (`/two`); the list shows both,
/// without secrets. W1's secret is rotated (the previous one keeps signing for 24 h): a lead's
/// delivery to W1 carries two `v1` signatures, by the new and the previous secret, and W2's
/// one, by its own. W2 is deleted: the list has W1 only, a second lead reaches only W1, and
/// deleting W2 again is 404. W1 rotated with `previous_secret_ttl: 0` signs with the new
/// secret only. The audit log records both creations, both rotations and the deletion, by
/// the manage key.
#[test]
fn webhooks_are_listed_deleted_and_rotated() {
    let w = Worker::shared().expect("worker");
    let receiver = Receiver::start(|_| Reply::Ok).expect("receiver");
    let m = managed(w, "https://hooks-site.example");
    let create = |path: &str| {
        let a = m.call(
            w,
            "POST",
            "webhooks",
            Some(&json!({"url": receiver.url(path)})),
        );
        assert_eq!(a.status, 201, "{}", a.text);
        (
            a.json["id"].as_str().unwrap_or_default().to_string(),
            a.json["secret"].as_str().unwrap_or_default().to_string(),
        )
    };
    let (w1, s1) = create("/one");
    let (w2, s2) = create("/two");
    let list = m.call(w, "GET", "webhooks", None);
    conforms(&list, "WebhookList");
    assert_eq!(list.json["webhooks"].as_array().map(Vec::len), Some(2));
    assert!(!list.text.contains(&s1) && !list.text.contains(&s2) && !list.text.contains("whsec_"));

    let rot = m.call(w, "POST", &format!("webhooks/{w1}:rotate"), None);
    assert_eq!(rot.status, 200, "{}", rot.text);
    conforms(&rot, "WebhookRotated");
    let s1_new = rot.json["secret"].as_str().unwrap_or_default().to_string();
    assert!(rot.json["previous_secret_until"].is_string());
    m.leads(w, &["rotate1@example.com"]);
    assert_eq!(m.deliver(w)["delivered"], 2);
    let hits = receiver.wait_for(2, Duration::from_secs(5));
    let one = hits
        .iter()
        .find(|h| h.path == "/one")
        .expect("W1's delivery");
    let (t, v1) = signatures(&one.signature);
    assert_eq!(
        v1,
        vec![hmac_hex(&s1_new, &t, &one.raw), hmac_hex(&s1, &t, &one.raw)]
    );
    let two = hits
        .iter()
        .find(|h| h.path == "/two")
        .expect("W2's delivery");
    let (t, v1) = signatures(&two.signature);
    assert_eq!(v1, vec![hmac_hex(&s2, &t, &two.raw)]);

    let del = m.call(w, "DELETE", &format!("webhooks/{w2}"), None);
    assert_eq!(del.status, 200, "{}", del.text);
    conforms(&del, "WebhookDeleted");
    let list = m.call(w, "GET", "webhooks", None);
    assert_eq!(list.json["webhooks"][0]["id"], json!(w1));
    assert_eq!(list.json["webhooks"].as_array().map(Vec::len), Some(1));
    let again = m.call(w, "DELETE", &format!("webhooks/{w2}"), None);
    assert_eq!(
        (again.status, again.error_code()),
        (404, Some("unknown_webhook"))
    );

    let rot = m.call(
        w,
        "POST",
        &format!("webhooks/{w1}:rotate"),
        Some(&json!({"previous_secret_ttl": 0})),
    );
    assert_eq!(
        rot.json["previous_secret_until"],
        Value::Null,
        "{}",
        rot.text
    );
    let s1_newer = rot.json["secret"].as_str().unwrap_or_default().to_string();
    let bad = m.call(
        w,
        "POST",
        &format!("webhooks/{w1}:rotate"),
        Some(&json!({"previous_secret_ttl": -1})),
    );
    assert_eq!(
        (bad.status, bad.error_code()),
        (400, Some("invalid_parameter"))
    );
    m.leads(w, &["rotate2@example.com"]);
    assert_eq!(m.deliver(w)["delivered"], 1);
    let hits = receiver.wait_for(3, Duration::from_secs(5));
    assert_eq!(hits.len(), 3, "{hits:?}");
    let last = &hits[2];
    assert_eq!(last.path, "/one");
    let (t, v1) = signatures(&last.signature);
    assert_eq!(v1, vec![hmac_hex(&s1_newer, &t, &last.raw)]);

    let audit = m.call(w, "GET", "audit", None);
    let actor = format!(
        "key:key_{}",
        &hex::encode(Sha256::digest(m.manage.as_bytes()))[..16]
    );
    let got: Vec<(String, String, String)> = audit.json["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| {
            e["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("webhook."))
        })
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_string(),
                e["actor"].as_str().unwrap_or_default().to_string(),
                e["target"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let want = |a: &str, id: &str| (a.to_string(), actor.clone(), id.to_string());
    assert_eq!(
        got,
        vec![
            want("webhook.secret_rotated", &w1),
            want("webhook.deleted", &w2),
            want("webhook.secret_rotated", &w1),
            want("webhook.created", &w2),
            want("webhook.created", &w1),
        ]
    );
    assert!(!audit.text.contains("whsec_"));
}

/// Scenario (the rowid case): leads A and B are announced; B — the newest lead row — is
/// erased; lead C arrives (in the old outbox C took B's rowid and was never announced).
/// Expected: the receiver got A, B and C, each exactly once, each with its own delivery id.
#[test]
fn announcements_are_made_once_across_erasures() {
    let w = all_sites_worker();
    let receiver = Receiver::start(|_| Reply::Ok).expect("receiver");
    let m = managed(&w, "https://hooks-site.example");
    m.register(&w, &receiver.url("/hook"));
    m.leads(&w, &["a@example.com", "b@example.com"]);
    assert_eq!(m.deliver(&w)["delivered"], 2);
    let erased = m.call(&w, "DELETE", "leads/b%40example.com", None);
    assert_eq!(erased.status, 200, "{}", erased.text);
    m.leads(&w, &["c@example.com"]);
    assert_eq!(m.deliver(&w)["delivered"], 1);
    assert_eq!(m.deliver(&w)["delivered"], 0);
    let hits = receiver.wait_for(3, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let hits_after = receiver.hits();
    assert_eq!(hits.len(), hits_after.len());
    assert_eq!(
        emails_of(&hits_after),
        vec!["a@example.com", "b@example.com", "c@example.com"]
    );
    let ids: BTreeSet<&str> = hits_after.iter().map(|h| h.delivery.as_str()).collect();
    assert_eq!(ids.len(), 3);
}

/// Scenario: ten leads wait for a receiver that takes 300 ms per answer; six runs start at
/// once — two `webhooks:deliver`, two `POST /v1/admin/cron:run` and two cron triggers
/// (`/__scheduled`). Expected: the receiver gets exactly ten requests, one per lead, each
/// delivery id once.
#[test]
fn concurrent_runs_send_each_delivery_once() {
    let w = all_sites_worker();
    let receiver = Receiver::start(|_| Reply::After(Duration::from_millis(300))).expect("receiver");
    let m = managed(&w, "https://hooks-site.example");
    m.register(&w, &receiver.url("/hook"));
    let emails: Vec<String> = (0..10).map(|i| format!("crowd{i}@example.com")).collect();
    m.leads(&w, &emails.iter().map(String::as_str).collect::<Vec<_>>());
    std::thread::scope(|s| {
        let w = &*w;
        let m = &m;
        let mut jobs = Vec::new();
        for i in 0..6 {
            jobs.push(s.spawn(move || match i % 3 {
                0 => {
                    m.call(w, "POST", "webhooks:deliver", Some(&json!({})));
                }
                1 => {
                    w.admin("POST", "/v1/admin/cron:run", Some(&json!({})))
                        .expect("cron");
                }
                _ => {
                    w.scheduled().expect("scheduled");
                }
            }));
        }
        for j in jobs {
            j.join().expect("run");
        }
    });
    // whatever a run left (released, or beyond its share) goes in one more run
    m.deliver(&w);
    let hits = receiver.wait_for(10, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(700));
    let hits = if receiver.hits().len() > hits.len() {
        receiver.hits()
    } else {
        hits
    };
    let mut per_id: BTreeMap<&str, usize> = BTreeMap::new();
    for h in &hits {
        *per_id.entry(h.delivery.as_str()).or_default() += 1;
    }
    assert!(per_id.values().all(|n| *n == 1), "{per_id:?}");
    let mut want = emails.clone();
    want.sort();
    assert_eq!(emails_of(&hits), want);
}

/// Scenario: site S's receiver answers after 15 s, site F's at once; S's lead arrives
/// first. One cron run (`POST /v1/admin/cron:run`) starts. Expected: F's receiver has its
/// delivery within 4 s of the start; the run ends within 14 s with S's attempt failed ("no
/// answer within 10 s"), to be retried with the same delivery id; F's is delivered once.
#[test]
fn a_slow_receiver_times_out_and_delays_no_other_site() {
    let w = all_sites_worker();
    let slow = Receiver::start(|_| Reply::After(Duration::from_secs(15))).expect("slow");
    let fast = Receiver::start(|_| Reply::Ok).expect("fast");
    let s = managed(&w, "https://slow-site.example");
    let f = managed(&w, "https://fast-site.example");
    s.register(&w, &slow.url("/slow"));
    f.register(&w, &fast.url("/fast"));
    s.leads(&w, &["slow@example.com"]);
    f.leads(&w, &["fast@example.com"]);
    let start = Instant::now();
    let run = std::thread::scope(|scope| {
        let w = &*w;
        let job = scope.spawn(move || w.admin("POST", "/v1/admin/cron:run", Some(&json!({}))));
        let fast_hits = fast.wait_for(1, Duration::from_secs(20));
        let fast_after = fast_hits.first().map(|h| h.at.duration_since(start));
        (job.join().expect("run").expect("cron"), fast_after)
    });
    let (answer, fast_after) = run;
    let took = start.elapsed();
    assert_eq!(answer.status, 200, "{}", answer.text);
    conforms(&answer, "CronRun");
    let fast_after = fast_after.expect("F's delivery");
    assert!(
        fast_after < Duration::from_secs(4),
        "F waited {fast_after:?}"
    );
    assert!(took < Duration::from_secs(14), "the run took {took:?}");
    assert_eq!(slow.hits().len(), 1);
    let rows = outbox(&w, &s.site.id);
    assert_eq!(rows[0]["attempts"], 1);
    assert!(rows[0]["delivered_at"].is_null());
    assert!(
        rows[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no answer within 10 s")),
        "{rows:?}"
    );
    let f_rows = outbox(&w, &f.site.id);
    assert!(f_rows[0]["delivered_at"].is_i64(), "{f_rows:?}");
    assert_eq!(fast.hits().len(), 1);
}

/// Scenario: a backlog — three sites, 100 new visitors each (one `identify` each: 300
/// visitors queued for sessionisation, 300 leads to announce to each site's receiver).
/// `POST /v1/admin/cron:run` is called until nothing is left (and, after the first run,
/// the cron trigger itself once). Expected: every run reports at most 900 D1 statements
/// (of the 1000 an invocation may run) and does some of the work; in the end every event has a session, the queue is
/// empty, and each receiver got its 100 leads exactly once.
#[test]
fn the_cron_stays_inside_the_query_budget_with_a_backlog() {
    let w = all_sites_worker();
    let mut sites = Vec::new();
    let mut receivers = Vec::new();
    for i in 0..3 {
        let r = Receiver::start(|_| Reply::Ok).expect("receiver");
        let m = managed(&w, &format!("https://backlog{i}.example"));
        m.register(&w, &r.url("/hook"));
        let emails: Vec<String> = (0..100).map(|n| format!("b{i}-{n}@example.com")).collect();
        m.leads(&w, &emails.iter().map(String::as_str).collect::<Vec<_>>());
        sites.push(m);
        receivers.push(r);
    }
    let ids: Vec<String> = sites.iter().map(|m| format!("'{}'", m.site.id)).collect();
    let ids = ids.join(", ");
    let queued = || {
        w.count(&format!(
            "SELECT count(*) FROM session_queue WHERE site_id IN ({ids})"
        ))
        .expect("queue")
    };
    let pending = || {
        w.count(&format!(
            "SELECT count(*) FROM webhook_outbox WHERE site_id IN ({ids}) AND delivered_at IS NULL"
        ))
        .expect("outbox")
    };
    assert_eq!((queued(), pending()), (300, 300));
    let mut runs = 0;
    loop {
        if runs == 1 {
            // the cron trigger itself, as Cloudflare runs it (the same work)
            assert_eq!(w.scheduled().expect("scheduled"), 200);
        }
        let (q, p) = (queued(), pending());
        if q == 0 && p == 0 {
            break;
        }
        runs += 1;
        assert!(
            runs <= 30,
            "not drained after 30 runs: {q} queued, {p} pending"
        );
        let a = w
            .admin("POST", "/v1/admin/cron:run", Some(&json!({})))
            .expect("cron");
        assert_eq!(a.status, 200, "{}", a.text);
        conforms(&a, "CronRun");
        let used = a.json["d1_statements"].as_u64().unwrap_or(u64::MAX);
        assert!(used <= 900, "a run used {used} statements: {}", a.text);
        let worked = a.json["sessions"]["visitors"].as_u64().unwrap_or(0)
            + a.json["webhooks"]["delivered"].as_u64().unwrap_or(0);
        assert!(worked > 0, "a run did nothing: {}", a.text);
    }
    assert!(
        runs >= 2,
        "one run cannot take the whole backlog within its share"
    );
    let unsessioned = w
        .count(&format!(
            "SELECT count(*) FROM events WHERE site_id IN ({ids}) AND session_id IS NULL"
        ))
        .expect("events");
    assert_eq!(unsessioned, 0);
    for r in &receivers {
        let hits = r.wait_for(100, Duration::from_secs(5));
        let ids: BTreeSet<&str> = hits.iter().map(|h| h.delivery.as_str()).collect();
        assert_eq!((hits.len(), ids.len()), (100, 100));
    }
}
