//! First-party storage: `localStorage` with an in-memory fallback, and the
//! visitor-id cookie mirror.
//!
//! When storage is blocked (Safari private mode, quota full, cookies disabled) or
//! consent is not given, every write goes to memory: the tracker keeps working for
//! the page's lifetime and never throws. A value in memory shadows the stored one,
//! so a failed write (quota) never leaves a stale value visible.

use crate::js;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use wasm_bindgen::JsValue;

/// Visitor id (localStorage and cookie).
pub const VID: &str = "_cl_vid";
/// Prefix of the unsent events: one key per event, `_cl_e.<event id>` = the wire
/// event as JSON. One key each (not one array) so that tabs never overwrite each
/// other's events: appending and acknowledging are single `setItem`/`removeItem`
/// calls, with no read-modify-write of a shared value.
pub const EVENT: &str = "_cl_e.";
/// Events dropped from the bounded queue and not yet reported to the edge.
pub const DROPPED: &str = "_cl_d";
/// The per-site send lock shared by tabs: `"<tab id> <expiry ms>"`.
pub const LOCK: &str = "_cl_l";
/// The profile: touches, page counts, lead flag, last pageview (JSON object).
pub const PROFILE: &str = "_cl_p";
/// Consent granted by `closeloop.consent(true)` (`"1"`).
pub const CONSENT: &str = "_cl_c";
/// The prefix of every key the tracker writes (cleared when consent is revoked).
pub const PREFIX: &str = "_cl_";

/// Cookie lifetime: two years, in seconds.
const COOKIE_MAX_AGE: u64 = 2 * 365 * 24 * 60 * 60;

/// Key-value storage that never throws.
pub struct Store {
    ls: Option<JsValue>,
    mem: Vec<(String, String)>,
    /// Whether writes may reach first-party storage (consent).
    pub persist: bool,
}

impl Store {
    /// Opens `localStorage` if the browser lets the page read it (the getter throws
    /// when storage is blocked); otherwise the store lives in memory only. No test
    /// write: a write that fails later (quota, Safari's old private mode) goes to
    /// memory by itself (see [`Store::set`]), and the test would cost the start path
    /// two storage calls.
    pub fn open(persist: bool) -> Store {
        let ls = Some(js::get(&js::global(), "localStorage")).filter(JsValue::is_object);
        Store {
            ls,
            mem: Vec::new(),
            persist,
        }
    }

    /// Reads `k`: memory first (it holds writes that storage refused), then storage.
    pub fn get(&self, k: &str) -> Option<String> {
        if let Some((_, v)) = self.mem.iter().find(|(key, _)| key == k) {
            return Some(v.clone());
        }
        self.ls
            .as_ref()
            .and_then(|s| js::call(s, "getItem", &[JsValue::from_str(k)]).as_string())
    }

    /// Writes `k`: to storage when allowed and possible, else to memory.
    pub fn set(&mut self, k: &str, v: &str) {
        if self.persist {
            if let Some(s) = &self.ls {
                let args = [JsValue::from_str(k), JsValue::from_str(v)];
                if js::try_call(s, "setItem", &args).is_ok() {
                    if !self.mem.is_empty() {
                        self.mem.retain(|(key, _)| key != k);
                    }
                    return;
                }
            }
        }
        match self.mem.iter_mut().find(|(key, _)| key == k) {
            Some(entry) => entry.1 = v.to_string(),
            None => self.mem.push((k.to_string(), v.to_string())),
        }
    }

    /// Removes `k` from memory and storage.
    pub fn remove(&mut self, k: &str) {
        self.mem.retain(|(key, _)| key != k);
        if let Some(s) = &self.ls {
            js::call(s, "removeItem", &[JsValue::from_str(k)]);
        }
    }

    /// Every key starting with `prefix`, in storage and in memory.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .mem
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        if let Some(s) = &self.ls {
            let n = js::get_num(s, "length") as u32;
            for i in 0..n {
                if let Some(k) = js::call(s, "key", &[JsValue::from(i)]).as_string() {
                    if k.starts_with(prefix) && !out.contains(&k) {
                        out.push(k);
                    }
                }
            }
        }
        out
    }

    /// Copies what is held in memory to storage (after consent is given).
    pub fn flush_memory(&mut self) {
        let held = core::mem::take(&mut self.mem);
        for (k, v) in held {
            self.set(&k, &v);
        }
    }

    /// Forgets everything the tracker stored (consent revoked); memory too.
    pub fn clear(&mut self) {
        for k in self.keys(PREFIX) {
            self.remove(&k);
        }
        write_cookie("", 0);
    }
}

fn document() -> JsValue {
    js::get(&js::global(), "document")
}

/// The visitor id from the first-party cookie, if any.
pub fn read_cookie() -> Option<String> {
    let all = js::get_str(&document(), "cookie");
    js::parts(&all, b';').find_map(|c| {
        let (k, v) = js::split_once(c.trim_ascii(), b'=')?;
        (k == VID && !v.is_empty()).then(|| v.to_string())
    })
}

/// Writes the visitor-id cookie (two years, `SameSite=Lax`, `Secure` on https);
/// `max_age` 0 deletes it.
pub fn write_cookie(value: &str, max_age: u64) {
    let mut c = String::with_capacity(96);
    c.push_str(VID);
    c.push('=');
    c.push_str(value);
    c.push_str("; path=/; max-age=");
    c.push_str(&js::num_str(max_age as f64));
    c.push_str("; SameSite=Lax");
    let proto = js::get_str(&js::get(&js::global(), "location"), "protocol");
    if proto == "https:" {
        c.push_str("; Secure");
    }
    js::set_str(&document(), "cookie", &c);
}

/// Mirrors the visitor id into the cookie for two years.
pub fn mirror_cookie(vid: &str) {
    write_cookie(vid, COOKIE_MAX_AGE);
}
