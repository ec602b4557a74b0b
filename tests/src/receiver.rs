//! A webhook receiver on 127.0.0.1 for the tests: it records every request it gets and
//! answers as the test says (by path): 200, another status, after a delay, or a redirect.
//! Each request is answered on its own thread, so a slow answer never holds the others.

use crate::Result;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the receiver answers a path.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 at once.
    Ok,
    /// This status at once.
    Status(u16),
    /// 200 after this long.
    After(Duration),
    /// 302 to this URL.
    Redirect(String),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The request path.
    pub path: String,
    /// `Closeloop-Delivery`.
    pub delivery: String,
    /// `Closeloop-Event`.
    pub event: String,
    /// `Closeloop-Signature`.
    pub signature: String,
    /// The raw body.
    pub raw: String,
    /// The body as JSON.
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
}

/// A running receiver. Stops when dropped.
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    server: Arc<tiny_http::Server>,
}

impl Receiver {
    /// Starts a receiver that answers each path with `reply(path)`.
    pub fn start(reply: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Result<Receiver> {
        let server =
            Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| format!("receiver: {e}"))?);
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .ok_or("receiver: no port")?;
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let reply = Arc::new(reply);
        let (s, h) = (Arc::clone(&server), Arc::clone(&hits));
        std::thread::spawn(move || {
            for mut req in s.incoming_requests() {
                let header = |req: &tiny_http::Request, name: &str| {
                    req.headers()
                        .iter()
                        .find(|x| x.field.as_str().as_str().eq_ignore_ascii_case(name))
                        .map(|x| x.value.as_str().to_string())
                        .unwrap_or_default()
                };
                let (delivery, event, signature) = (
                    header(&req, "Closeloop-Delivery"),
                    header(&req, "Closeloop-Event"),
                    header(&req, "Closeloop-Signature"),
                );
                let mut raw = String::new();
                let _ = std::io::Read::read_to_string(req.as_reader(), &mut raw);
                let hit = Hit {
                    path: req.url().to_string(),
                    delivery,
                    event,
                    signature,
                    body: serde_json::from_str(&raw).unwrap_or(Value::Null),
                    raw,
                    at: Instant::now(),
                };
                let answer = reply(&hit.path);
                if let Ok(mut list) = h.lock() {
                    list.push(hit);
                }
                std::thread::spawn(move || {
                    let resp = match answer {
                        Reply::Ok => tiny_http::Response::from_string("ok"),
                        Reply::Status(code) => {
                            tiny_http::Response::from_string("no").with_status_code(code)
                        }
                        Reply::After(d) => {
                            std::thread::sleep(d);
                            tiny_http::Response::from_string("late")
                        }
                        Reply::Redirect(to) => {
                            let location = tiny_http::Header::from_bytes("Location", to)
                                .expect("static header name");
                            tiny_http::Response::from_string("moved")
                                .with_status_code(302)
                                .with_header(location)
                        }
                    };
                    let _ = req.respond(resp);
                });
            }
        });
        Ok(Receiver {
            base: format!("http://127.0.0.1:{port}"),
            hits,
            server,
        })
    }

    /// The URL of a path on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every request so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Waits until at least `n` requests arrived (or `timeout` passed); returns them all.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Hit> {
        let start = Instant::now();
        loop {
            let hits = self.hits();
            if hits.len() >= n || start.elapsed() > timeout {
                return hits;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
    }
}
