//! Serves a directory of static pages (the demo site) on its own origin,
//! `http://127.0.0.1:PORT`, so that the tracker runs cross-origin as on a real site.
//!
//! The demo pages include the tracker exactly as a site owner would, with the demo's
//! worker address (`http://127.0.0.1:8787`) and site id (`demo`); the server rewrites
//! those two strings in HTML so that tests can point the same pages at their own worker
//! and site.

use crate::Result;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The worker address the demo pages are written for.
pub const DEMO_EDGE: &str = "http://127.0.0.1:8787";
/// The site id the demo pages are written for.
pub const DEMO_SITE: &str = "demo";

/// A running static server. Stops when dropped.
pub struct StaticSite {
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl StaticSite {
    /// Serves `dir` on a free port of 127.0.0.1 (or `port` when given), rewriting the
    /// demo's worker address and site id in HTML to `edge` and `site`.
    pub fn start(dir: &Path, port: Option<u16>, edge: &str, site: &str) -> Result<StaticSite> {
        let port = match port {
            Some(p) => p,
            None => crate::free_port()?,
        };
        let server = Arc::new(
            tiny_http::Server::http(("127.0.0.1", port))
                .map_err(|e| format!("static server on {port}: {e}"))?,
        );
        let dir = dir.to_path_buf();
        let edge = edge.to_string();
        let site_attr = format!("data-site=\"{site}\"");
        let s = Arc::clone(&server);
        let thread = std::thread::spawn(move || {
            for req in s.incoming_requests() {
                let (status, body, ctype) = serve(&dir, req.url(), &edge, &site_attr);
                let header =
                    tiny_http::Header::from_bytes("Content-Type", ctype).unwrap_or_else(|_| {
                        tiny_http::Header::from_bytes("X-Empty", "1").expect("static header")
                    });
                let no_store = tiny_http::Header::from_bytes("Cache-Control", "no-store")
                    .expect("static header");
                let resp = tiny_http::Response::from_data(body)
                    .with_status_code(status)
                    .with_header(header)
                    .with_header(no_store);
                let _ = req.respond(resp);
            }
        });
        Ok(StaticSite {
            origin: format!("http://127.0.0.1:{port}"),
            server,
            thread: Some(thread),
        })
    }

    /// The full URL of a path on this site.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// Serves until the process ends (for `cargo xtask demo`).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StaticSite {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(dir: &Path, url: &str, edge: &str, site_attr: &str) -> (u16, Vec<u8>, &'static str) {
    let path = url.split(['?', '#']).next().unwrap_or("/");
    let Some(file) = resolve(dir, path) else {
        return (404, b"not found".to_vec(), "text/plain");
    };
    let Ok(bytes) = std::fs::read(&file) else {
        return (404, b"not found".to_vec(), "text/plain");
    };
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
    let ctype = match ext {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css",
        "js" => "text/javascript",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => "application/octet-stream",
    };
    if ext == "html" {
        let text = String::from_utf8_lossy(&bytes)
            .replace(DEMO_EDGE, edge)
            .replace(&format!("data-site=\"{DEMO_SITE}\""), site_attr);
        return (200, text.into_bytes(), ctype);
    }
    (200, bytes, ctype)
}

/// Maps a URL path to a file under `dir`: `/` → `index.html`, `/pricing` →
/// `pricing.html` or `pricing/index.html`; never outside `dir`.
fn resolve(dir: &Path, path: &str) -> Option<PathBuf> {
    let rel = path.trim_start_matches('/');
    if rel
        .split('/')
        .any(|seg| seg == ".." || seg.starts_with('.'))
    {
        return None;
    }
    let base = dir.join(rel);
    let candidates = [
        base.clone(),
        base.join("index.html"),
        dir.join(format!("{}.html", rel.trim_end_matches('/'))),
    ];
    candidates.into_iter().find(|p| p.is_file())
}
