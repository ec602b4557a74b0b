//! A fault-injecting HTTP proxy on loopback, between the pages (Chromium) and the real
//! worker, following a seeded random plan (issue 13).
//!
//! Built on hyper's own connection API rather than axum: a proxy needs no routing, and
//! it must control the connection itself — answer nothing and close it after the worker
//! answered (the write committed, the answer lost), which a router's handlers cannot
//! express. Only `POST /v1/collect` is faulted; everything else (the tracker's `t.js`
//! and wasm) passes through untouched, and the static files are served from the
//! proxy's copy while the worker is down (Cloudflare serves a worker's static assets
//! without running the worker).
//!
//! The plan decides each collect request's fault from the seed and the request's
//! number alone ([`Plan::fault`]), so a run with the same seed meets the same sequence
//! of faults. Which events met which faults is kept in a [`Ledger`] (the proxy reads
//! each batch's event ids), so a run can say, per fault kind, how many of the events
//! that met it were stored once, twice or never.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to one collect request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// Passed on as it is.
    None,
    /// Never reaches the worker: the connection is closed, nothing answered.
    Drop,
    /// Passed on after 0.2–4 s.
    Delay,
    /// Passed on after 21–25 s: longer than the tracker waits for an answer, so the
    /// tracker may send the same events again while this one is still on its way.
    Stall,
    /// Answered `500` by the proxy; the worker never sees it.
    Error500,
    /// Answered `503` with `Retry-After`; the worker never sees it.
    Error503,
    /// Answered `429` with `Retry-After`; the worker never sees it.
    Error429,
    /// Passed on; the worker's answer is read whole (the write committed) and then the
    /// connection is closed with nothing sent back.
    CutAfter,
    /// Passed on twice at the same moment; the client gets the first answer.
    Duplicate,
    /// The worker was down (stopped by the run) when the request came or while it was
    /// on its way: answered `502`, as a gateway would.
    WorkerDown,
}

impl Fault {
    /// Every kind, in table order.
    pub const ALL: [Fault; 10] = [
        Fault::None,
        Fault::Drop,
        Fault::Delay,
        Fault::Stall,
        Fault::Error500,
        Fault::Error503,
        Fault::Error429,
        Fault::CutAfter,
        Fault::Duplicate,
        Fault::WorkerDown,
    ];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Drop => "dropped request",
            Fault::Delay => "delayed 0.2-4 s",
            Fault::Stall => "stalled 21-25 s",
            Fault::Error500 => "500 from the proxy",
            Fault::Error503 => "503 + Retry-After",
            Fault::Error429 => "429 + Retry-After",
            Fault::CutAfter => "cut after the worker answered",
            Fault::Duplicate => "sent twice at once",
            Fault::WorkerDown => "worker down",
        }
    }
}

/// A seeded fault plan: weights of each planned fault (worker downtime is not planned
/// per request: the run stops and starts the worker itself).
#[derive(Clone, Debug)]
pub struct Plan {
    /// The seed: the same seed gives the same fault for the n-th collect request.
    pub seed: u64,
    /// Relative weights.
    pub weights: Vec<(Fault, u32)>,
}

impl Plan {
    /// The default mix: a third of the requests pass untouched, the rest meet one fault
    /// each (stalls rarer: they hold a request for 20 s).
    pub fn new(seed: u64) -> Plan {
        Plan {
            seed,
            weights: vec![
                (Fault::None, 34),
                (Fault::Drop, 9),
                (Fault::Delay, 12),
                (Fault::Stall, 2),
                (Fault::Error500, 7),
                (Fault::Error503, 6),
                (Fault::Error429, 6),
                (Fault::CutAfter, 12),
                (Fault::Duplicate, 12),
            ],
        }
    }

    /// The fault of the `n`-th collect request (0-based), and a number in 0..1000 for
    /// its parameters (how long a delay lasts). The first requests meet each planned
    /// fault but stalls once, in an order the seed rotates, so that even a short run
    /// meets every one (a quick run once met no 503 by chance); the rest are drawn by
    /// weight.
    pub fn fault(&self, n: u64) -> (Fault, u64) {
        let mut rng = SplitMix64(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let total: u64 = self.weights.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut pick = rng.next_u64() % total.max(1);
        let param = rng.next_u64() % 1000;
        let cover: Vec<Fault> = self
            .weights
            .iter()
            .filter(|(f, w)| *w > 0 && !matches!(f, Fault::None | Fault::Stall))
            .map(|(f, _)| *f)
            .collect();
        let len = cover.len() as u64;
        if n < len {
            return (cover[((n + self.seed % len) % len) as usize], param);
        }
        for (f, w) in &self.weights {
            let w = u64::from(*w);
            if pick < w {
                return (*f, param);
            }
            pick -= w;
        }
        (Fault::None, param)
    }
}

/// SplitMix64: a tiny, fixed pseudo-random generator (the plan must not change when a
/// dependency's generator does).
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True with probability `p` percent.
    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// What the proxy saw: per event id, the faults its requests met; per fault, how many
/// collect requests met it.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// Event id → the faults of every request that carried it.
    pub events: HashMap<String, BTreeSet<Fault>>,
    /// Collect requests per fault.
    pub requests: BTreeMap<Fault, u64>,
    /// Collect requests whose body was not a batch the proxy could read.
    pub unreadable: u64,
    /// Event id → each answer the worker gave about it: status, the worker's life
    /// (0 before the first stop, 1 after the first restart, ...), and when (ms into
    /// the run); whether the client heard it or not.
    pub answers: HashMap<String, Vec<(String, u64, u64)>>,
}

struct Inner {
    upstream: SocketAddr,
    plan: Plan,
    /// Faults are applied only while this is on (the run's final drain turns it off).
    faulting: AtomicBool,
    /// The run stopped the worker: every request now counts as meeting its downtime.
    down: AtomicBool,
    seq: AtomicU64,
    /// How many times the worker was stopped (its current life).
    epoch: AtomicU64,
    started: std::time::Instant,
    ledger: Mutex<Ledger>,
    /// The last good answer to each static GET (`t.js`, the wasm): served when the worker
    /// is down, as Cloudflare serves a worker's static assets without running it.
    assets: Mutex<HashMap<String, Response<Full<Bytes>>>>,
}

/// The running proxy. Stops when dropped.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

/// The error that makes hyper close a connection without answering.
#[derive(Debug)]
struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection cut by the fault plan")
    }
}

impl std::error::Error for Cut {}

type Answer = Result<Response<Full<Bytes>>, Cut>;

impl Proxy {
    /// Starts the proxy on a free port of 127.0.0.1 in front of `upstream`
    /// (`http://127.0.0.1:PORT`), on the current tokio runtime.
    pub async fn start(upstream: &str, plan: Plan) -> crate::Result<Proxy> {
        let addr: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .map_err(|e| format!("upstream {upstream}: {e}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("proxy listener: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let inner = Arc::new(Inner {
            upstream: addr,
            plan,
            faulting: AtomicBool::new(true),
            down: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            started: std::time::Instant::now(),
            ledger: Mutex::new(Ledger::default()),
            assets: Mutex::new(HashMap::new()),
        });
        let shared = Arc::clone(&inner);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let inner = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let inner = Arc::clone(&inner);
                        async move { handle(inner, req).await }
                    });
                    // An error here is a cut connection (ours or the client's).
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Proxy {
            base: format!("http://127.0.0.1:{port}"),
            inner,
            task,
        })
    }

    /// Turns the plan's faults on or off (off: everything passes).
    pub fn set_faulting(&self, on: bool) {
        self.inner.faulting.store(on, Ordering::SeqCst);
    }

    /// Tells the proxy the worker is down (or up again), for the ledger.
    pub fn set_down(&self, down: bool) {
        if down {
            self.inner.epoch.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.down.store(down, Ordering::SeqCst);
    }

    /// A copy of what the proxy saw so far.
    pub fn ledger(&self) -> Ledger {
        self.inner
            .ledger
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Milliseconds since the proxy started (the clock of [`Ledger::answers`]).
    pub fn elapsed_ms(&self) -> u64 {
        self.inner.started.elapsed().as_millis() as u64
    }

    /// Collect requests seen so far.
    pub fn collect_requests(&self) -> u64 {
        self.inner.seq.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The ids of a batch's events (`events[].id`), if the body is one.
fn event_ids(body: &[u8]) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let events = v.get("events")?.as_array()?;
    Some(
        events
            .iter()
            .filter_map(|e| e.get("id")?.as_str().map(str::to_string))
            .collect(),
    )
}

fn note(inner: &Inner, ids: &Option<Vec<String>>, fault: Fault) {
    if let Ok(mut l) = inner.ledger.lock() {
        *l.requests.entry(fault).or_default() += 1;
        match ids {
            Some(ids) => {
                for id in ids {
                    l.events.entry(id.clone()).or_default().insert(fault);
                }
            }
            None => l.unreadable += 1,
        }
    }
}

async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Answer {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(Cut),
    };
    let is_collect = parts.method == hyper::Method::POST && parts.uri.path() == "/v1/collect";
    if !is_collect {
        let asset = parts.method == hyper::Method::GET && !parts.uri.path().starts_with("/v1/");
        let key = parts.uri.path().to_string();
        return match forward(&inner, &parts, body).await {
            Ok(r) => {
                if asset && r.status() == StatusCode::OK {
                    if let Ok(mut a) = inner.assets.lock() {
                        a.insert(key, clone_response(&r));
                    }
                }
                Ok(r)
            }
            Err(_) => inner
                .assets
                .lock()
                .ok()
                .and_then(|a| a.get(&key).map(clone_response))
                .ok_or(Cut),
        };
    }
    let n = inner.seq.fetch_add(1, Ordering::SeqCst);
    let ids = event_ids(&body);
    let origin = parts
        .headers
        .get("origin")
        .and_then(|o| o.to_str().ok())
        .map(str::to_string);
    let (mut fault, param) = if inner.faulting.load(Ordering::SeqCst) {
        inner.plan.fault(n)
    } else {
        (Fault::None, 0)
    };
    if inner.down.load(Ordering::SeqCst) {
        fault = Fault::WorkerDown;
    }
    note(&inner, &ids, fault);
    let answer = match fault {
        Fault::None | Fault::WorkerDown => forward(&inner, &parts, body).await,
        Fault::Drop => return Err(Cut),
        Fault::Delay => {
            tokio::time::sleep(Duration::from_millis(200 + param * 38 / 10)).await;
            forward(&inner, &parts, body).await
        }
        Fault::Stall => {
            tokio::time::sleep(Duration::from_millis(21_000 + param * 4)).await;
            forward(&inner, &parts, body).await
        }
        Fault::Error500 => return Ok(error(500, None, origin.as_deref())),
        Fault::Error503 => return Ok(error(503, Some(1 + param % 3), origin.as_deref())),
        Fault::Error429 => return Ok(error(429, Some(1 + param % 5), origin.as_deref())),
        Fault::CutAfter => {
            // the worker answers (and commits); the client never hears it
            let _ = forward(&inner, &parts, body).await;
            return Err(Cut);
        }
        Fault::Duplicate => {
            let (a, b) = tokio::join!(
                forward(&inner, &parts, body.clone()),
                forward(&inner, &parts, body)
            );
            a.or(b)
        }
    };
    match answer {
        Ok(r) => Ok(r),
        Err(_) => {
            // the worker could not be reached, or went away mid-request
            if fault != Fault::WorkerDown {
                note(&inner, &ids, Fault::WorkerDown);
            }
            Ok(error(502, None, origin.as_deref()))
        }
    }
}

/// Keeps what the worker said about each event of a collect answer.
fn note_answer(inner: &Inner, body: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let Some(results) = v.get("results").and_then(|r| r.as_array()) else {
        return;
    };
    let epoch = inner.epoch.load(Ordering::SeqCst);
    let ms = inner.started.elapsed().as_millis() as u64;
    if let Ok(mut l) = inner.ledger.lock() {
        for r in results {
            if let (Some(id), Some(st)) = (
                r.get("id").and_then(|x| x.as_str()),
                r.get("status").and_then(|x| x.as_str()),
            ) {
                l.answers
                    .entry(id.to_string())
                    .or_default()
                    .push((st.to_string(), epoch, ms));
            }
        }
    }
}

/// An error answer made by the proxy, in the project's error shape, with CORS headers
/// so that the page can read its status.
fn error(status: u16, retry_after: Option<u64>, origin: Option<&str>) -> Response<Full<Bytes>> {
    let code = match status {
        429 => "rate_limited",
        502 => "bad_gateway",
        503 => "unavailable",
        _ => "internal",
    };
    let body =
        serde_json::json!({"error": {"code": code, "message": "injected by the fault proxy"}});
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(secs) = retry_after {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&secs.to_string()) {
            h.insert(hyper::header::RETRY_AFTER, v);
        }
    }
    if let Some(o) = origin.and_then(|o| hyper::header::HeaderValue::from_str(o).ok()) {
        h.insert(hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(
            hyper::header::VARY,
            hyper::header::HeaderValue::from_static("Origin"),
        );
    }
    resp
}

/// Sends the request to the worker on a connection of its own and reads the whole
/// answer.
async fn forward(
    inner: &Inner,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(inner.upstream)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut builder = Request::builder().method(parts.method.clone()).uri(path);
    for (k, v) in &parts.headers {
        if !is_hop_by_hop(k.as_str()) && k != hyper::header::HOST {
            builder = builder.header(k, v);
        }
    }
    let req = builder
        .header(hyper::header::HOST, inner.upstream.to_string())
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(60), sender.send_request(req))
        .await
        .map_err(|_| "the worker did not answer in 60 s".to_string())?
        .map_err(|e| e.to_string())?;
    let (rparts, rbody) = resp.into_parts();
    let bytes = rbody.collect().await.map_err(|e| e.to_string())?.to_bytes();
    if parts.uri.path() == "/v1/collect" && rparts.status == StatusCode::OK {
        note_answer(inner, &bytes);
    }
    let mut out = Response::new(Full::new(bytes));
    *out.status_mut() = rparts.status;
    for (k, v) in &rparts.headers {
        if !is_hop_by_hop(k.as_str()) && k != hyper::header::CONTENT_LENGTH {
            out.headers_mut().append(k, v.clone());
        }
    }
    Ok(out)
}

fn clone_response(r: &Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let mut out = Response::new(r.body().clone());
    *out.status_mut() = r.status();
    *out.headers_mut() = r.headers().clone();
    out
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-connection"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_a_function_of_the_seed_and_the_request_number() {
        let a = Plan::new(42);
        let b = Plan::new(42);
        let c = Plan::new(43);
        let seq = |p: &Plan| (0..200).map(|n| p.fault(n)).collect::<Vec<_>>();
        assert_eq!(seq(&a), seq(&b));
        assert_ne!(seq(&a), seq(&c));
        // every planned kind shows up in 2000 requests, none of them unplanned
        let kinds: BTreeSet<Fault> = (0..2000).map(|n| a.fault(n).0).collect();
        let planned: BTreeSet<Fault> = a.weights.iter().map(|(f, _)| *f).collect();
        assert_eq!(kinds, planned);
    }

    #[test]
    fn batch_ids_are_read_from_the_body() {
        let body = br#"{"site_id":"s","events":[{"id":"a"},{"id":"b"},{"x":1}]}"#;
        assert_eq!(event_ids(body), Some(vec!["a".into(), "b".into()]));
        assert_eq!(event_ids(b"not json"), None);
    }
}
