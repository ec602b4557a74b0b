//! Helpers of the tracker's browser tests in `tracker_hardening.rs`: pages with the
//! tag as a site owner writes it, a site of its own per test, what D1 stored, and
//! what the browser sent (the DevTools protocol's network events).

#![allow(dead_code)]

use base64::Engine;
use chromiumoxide::cdp::browser_protocol::network::{EnableParams, EventRequestWillBeSent};
use closeloop_e2e::browser::{blocking, eval_until, Browser};
use closeloop_e2e::site::{StaticSite, DEMO_EDGE, DEMO_SITE};
use closeloop_e2e::worker::{Site, Worker};
use closeloop_e2e::{free_port, temp_dir, wait_for};
use futures::StreamExt;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// True once the loader has started the wasm tracker.
pub const READY: &str =
    "typeof window.closeloop === 'object' && window.closeloop.profile() != null";
/// The tracker's keys in localStorage, as a JSON string.
pub const STORED_KEYS: &str =
    "JSON.stringify(Object.keys(localStorage).filter(k => k.startsWith('_cl_')).sort())";

/// A page with the tag as a site owner writes it (`extra_attrs` after `data-site`),
/// `head` before the tag and `body` as given.
pub fn page(title: &str, head: &str, extra_attrs: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>{head}\
         <script async src=\"{DEMO_EDGE}/t.js\" data-site=\"{DEMO_SITE}\"{extra_attrs}></script>\
         </head><body>{body}</body></html>"
    )
}

/// A site of its own on a worker, its pages served on a fresh origin it allows.
pub struct Setup<'w> {
    pub worker: &'w Worker,
    pub site: Site,
    pub web: StaticSite,
}

pub fn setup(pages: &[(&str, String)]) -> Setup<'static> {
    let worker = Worker::shared().expect("worker");
    let port = free_port().expect("port");
    let origin = format!("http://127.0.0.1:{port}");
    let site = worker.create_site(&[&origin]).expect("site");
    let dir = temp_dir("tracker-pages").expect("pages dir");
    for (path, html) in pages {
        std::fs::write(dir.join(path), html).expect("write page");
    }
    let web = StaticSite::start(&dir, Some(port), &worker.base, &site.id).expect("static site");
    Setup { worker, site, web }
}

impl Setup<'_> {
    /// The site's stored events (`columns`), oldest first by device time.
    pub fn events(&self, columns: &str, filter: &str) -> Vec<Value> {
        let sql = format!(
            "SELECT {columns} FROM events WHERE site_id = '{}' {filter} \
             ORDER BY created_at, event_id",
            self.site.id
        );
        self.worker.query(&sql).unwrap_or_default()
    }

    pub fn count(&self, filter: &str) -> usize {
        self.events("event_id", filter).len()
    }

    /// Waits until at least `n` events match `filter` (at most `secs`), then
    /// returns how many do.
    pub fn wait_count(&self, n: usize, filter: &str, what: &str, secs: u64) -> usize {
        blocking(|| {
            wait_for(what, Duration::from_secs(secs), || {
                let c = self.count(filter);
                (c >= n).then_some(c)
            })
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e}: {} stored\nworker log:\n{}",
                self.count(filter),
                self.worker.log_tail()
            )
        })
    }
}

/// One request the page made to `/v1/collect`, as DevTools saw it leave.
#[derive(Clone, Debug)]
pub struct Sent {
    pub url: String,
    /// `Fetch` for the tracker's fetch, `Ping` for `sendBeacon`.
    pub kind: String,
    pub body: String,
}

/// Every request of a page to `/v1/collect`, recorded as it is sent.
#[derive(Clone, Default)]
pub struct Network(Arc<Mutex<Vec<Sent>>>);

impl Network {
    pub fn sent(&self) -> Vec<Sent> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The batches sent with `fetch`, as JSON.
    pub fn batches(&self) -> Vec<Value> {
        self.sent()
            .iter()
            .filter(|s| s.kind == "Fetch")
            .map(|s| serde_json::from_str(&s.body).unwrap_or(Value::Null))
            .collect()
    }
}

/// A blank page whose requests to `/v1/collect` are recorded from now on.
pub async fn watched_page(browser: &Browser) -> (chromiumoxide::Page, Network) {
    let p = browser
        .inner
        .new_page("about:blank")
        .await
        .expect("blank page");
    p.execute(EnableParams::default())
        .await
        .expect("network domain");
    let mut events = p
        .event_listener::<EventRequestWillBeSent>()
        .await
        .expect("network events");
    let net = Network::default();
    let log = net.0.clone();
    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            if !e.request.url.contains("/v1/collect") || e.request.method != "POST" {
                continue;
            }
            let body: Vec<u8> = e
                .request
                .post_data_entries
                .iter()
                .flatten()
                .filter_map(|d| d.bytes.as_ref())
                .flat_map(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(AsRef::<str>::as_ref(b))
                        .unwrap_or_default()
                })
                .collect();
            let kind = e
                .r#type
                .as_ref()
                .map(|t| format!("{t:?}"))
                .unwrap_or_default();
            if let Ok(mut v) = log.lock() {
                v.push(Sent {
                    url: e.request.url.clone(),
                    kind,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
            }
        }
    });
    (p, net)
}

/// Goes to `url` and waits until the tracker is ready.
pub async fn goto(p: &chromiumoxide::Page, url: &str) {
    p.goto(url).await.expect("navigate");
    eval_until(p, READY, Duration::from_secs(30))
        .await
        .expect("tracker ready");
}

/// Opens `url` in a new tab and waits until the tracker is ready.
pub async fn open(browser: &Browser, url: &str) -> chromiumoxide::Page {
    let p = browser.inner.new_page(url).await.expect("open page");
    let _ = p.wait_for_navigation().await;
    eval_until(&p, READY, Duration::from_secs(30))
        .await
        .expect("tracker ready");
    p
}

pub async fn eval(p: &chromiumoxide::Page, js: &str) -> Value {
    p.evaluate(js)
        .await
        .map(|r| r.into_value::<Value>().unwrap_or(Value::Null))
        .unwrap_or(Value::Null)
}

pub async fn eval_str(p: &chromiumoxide::Page, js: &str) -> String {
    eval(p, js).await.as_str().unwrap_or_default().to_string()
}

pub fn sleep(ms: u64) -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_millis(ms))
}
