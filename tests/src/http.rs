//! A few HTTP calls with ureq, answering `(status, JSON body)` whatever the status.

use crate::Result;
use serde_json::Value;

/// An HTTP answer: status, headers we care about, body parsed as JSON (or `Null`).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body as JSON, `Value::Null` if empty or not JSON.
    pub json: Value,
    /// The raw body.
    pub text: String,
    /// Response headers, names lowercased.
    pub headers: Vec<(String, String)>,
}

impl Answer {
    /// The first header with this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `error.code` of a JSON error body.
    pub fn error_code(&self) -> Option<&str> {
        self.json.pointer("/error/code").and_then(Value::as_str)
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into()
}

/// Sends a request. `headers` are (name, value) pairs; `body` is sent as is.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Answer> {
    let agent = agent();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = match body {
        Some(b) => agent.run(req.body(b.to_string()).map_err(|e| e.to_string())?),
        None => agent.run(req.body(()).map_err(|e| e.to_string())?),
    }
    .map_err(|e| format!("{method} {url}: {e}"))?;
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let text = res
        .into_body()
        .read_to_string()
        .map_err(|e| format!("{method} {url}: reading body: {e}"))?;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Answer {
        status,
        json,
        text,
        headers,
    })
}

/// GET with optional bearer key.
pub fn get(url: &str, key: Option<&str>) -> Result<Answer> {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![];
    if let Some(a) = auth.as_deref() {
        headers.push(("Authorization", a));
    }
    request("GET", url, &headers, None)
}

/// POST a JSON value with extra headers.
pub fn post_json(url: &str, body: &Value, headers: &[(&str, &str)]) -> Result<Answer> {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    request("POST", url, &h, Some(&body.to_string()))
}
