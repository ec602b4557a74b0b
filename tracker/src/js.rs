//! Tiny, non-throwing helpers over `Reflect` and the browser's `JSON`.
//!
//! Every helper swallows JavaScript exceptions and returns `undefined`, `""` or
//! `None` instead: the tracker must never throw into the site's page. Going
//! through `Reflect` for the odd property (cookies, `keepalive`, `randomUUID`,
//! `globalPrivacyControl`) costs one shared import instead of a binding each.

use alloc::string::String;
use js_sys::{Array, Function, Object, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};

/// `o[k]`, or `undefined` when `o` is not an object or the getter throws.
pub fn get(o: &JsValue, k: &str) -> JsValue {
    if !o.is_object() && !o.is_function() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(o, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

/// `o[k]` as a string (`""` when absent or not a string).
pub fn get_str(o: &JsValue, k: &str) -> String {
    get(o, k).as_string().unwrap_or_default()
}

/// `o[k]` as a number (`0` when absent or not a number).
pub fn get_num(o: &JsValue, k: &str) -> f64 {
    get(o, k).as_f64().unwrap_or(0.0)
}

/// `o[k] = v`, ignoring failures.
pub fn set(o: &JsValue, k: &str, v: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(k), v);
}

/// `o[k] = "v"`.
pub fn set_str(o: &JsValue, k: &str, v: &str) {
    set(o, k, &JsValue::from_str(v));
}

/// `o[m](...args)`, or `undefined` when `o[m]` is not a function or it throws.
pub fn call(o: &JsValue, m: &str, args: &[JsValue]) -> JsValue {
    try_call(o, m, args).unwrap_or(JsValue::UNDEFINED)
}

/// `o[m](...args)`, with the exception it threw as `Err` (for calls whose failure
/// matters, such as `localStorage.setItem` over quota).
pub fn try_call(o: &JsValue, m: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let f: Function = get(o, m).dyn_into()?;
    // A plain loop: `collect()` into an `Array` links (and, on the start path,
    // lazily compiles) three more functions.
    let a = Array::new();
    for x in args {
        a.push(x);
    }
    Reflect::apply(&f, o, &a)
}

/// `o.getAttribute(name)`, when present and not empty.
pub fn attr(o: &JsValue, name: &str) -> Option<String> {
    call(o, "getAttribute", &[JsValue::from_str(name)])
        .as_string()
        .filter(|s| !s.is_empty())
}

/// `o.hasAttribute(name)`.
pub fn has_attr(o: &JsValue, name: &str) -> bool {
    call(o, "hasAttribute", &[JsValue::from_str(name)]).is_truthy()
}

/// A new empty object `{}`.
pub fn obj() -> JsValue {
    Object::new().into()
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// `globalThis` (every browser since 2020). `js_sys::global()` probes four
    /// names (`globalThis`, `self`, `window`, `global`): four imports for one object.
    #[wasm_bindgen(thread_local_v2, js_name = globalThis)]
    static GLOBAL_THIS: JsValue;
}

/// The global object (`window`).
pub fn global() -> JsValue {
    GLOBAL_THIS.with(JsValue::clone)
}

/// `JSON.parse(s)`, or `undefined` when `s` is not JSON.
pub fn parse(s: &str) -> JsValue {
    JSON::parse(s).unwrap_or(JsValue::UNDEFINED)
}

/// `JSON.stringify(v)`, or `""` when it throws.
pub fn stringify(v: &JsValue) -> String {
    JSON::stringify(v)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_default()
}

/// `JSON.parse(s)` as an array, or a new empty array.
pub fn parse_array(s: Option<String>) -> Array {
    s.map(|s| parse(&s))
        .and_then(|v| v.dyn_into::<Array>().ok())
        .unwrap_or_default()
}

/// `JSON.parse(s)` as an object, or a new empty object.
pub fn parse_object(s: Option<String>) -> JsValue {
    match s.map(|s| parse(&s)) {
        Some(v) if v.is_object() => v,
        _ => obj(),
    }
}

/// `Date.now()`.
pub fn now() -> f64 {
    js_sys::Date::now()
}

/// A random id: `crypto.randomUUID()` where the page is a secure context, else 32
/// hex digits from `Math.random` (the edge only needs ids unique per visitor).
pub fn random_id() -> String {
    let id = call(&get(&global(), "crypto"), "randomUUID", &[]);
    if let Some(id) = id.as_string() {
        return id;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(32);
    for _ in 0..32 {
        let n = (js_sys::Math::random() * 16.0) as usize & 15;
        s.push(char::from(HEX[n]));
    }
    s
}

/// Truncates `s` to at most `max` bytes, on a character boundary.
pub fn truncate(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    // `get` cannot panic (no formatting code linked for a slicing error).
    s.get(..end).map(String::from).unwrap_or_default()
}

/// Whether `hay` contains `needle` (a byte scan: `str::contains` links a
/// two-way searcher of several kilobytes).
pub fn has(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    !n.is_empty()
        && h.len() >= n.len()
        && (0..=h.len() - n.len()).any(|i| h.get(i..i + n.len()) == Some(n))
}

/// The part of `s` after the first `sep`, if any (`split_once` with a `&str`
/// pattern links the two-way searcher too).
pub fn after<'a>(s: &'a str, sep: &str) -> Option<&'a str> {
    let (h, n) = (s.as_bytes(), sep.as_bytes());
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    let i = (0..=h.len() - n.len()).find(|&i| h.get(i..i + n.len()) == Some(n))?;
    s.get(i + n.len()..)
}

/// The parts of `s` between separators, as `str::split` gives them: `sep` is one
/// ASCII byte, or any ASCII whitespace when `sep` is `b' '` (empty parts kept,
/// as `split` does). `str::split` with a `char` links the pattern searcher and
/// `memchr`, and `split_whitespace` a UTF-8 decoder: kilobytes in the download.
pub fn parts(s: &str, sep: u8) -> Parts<'_> {
    Parts { rest: Some(s), sep }
}

/// The iterator of [`parts`].
pub struct Parts<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> Iterator for Parts<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        let sep = self.sep;
        match s
            .bytes()
            .position(|b| b == sep || (sep == b' ' && b.is_ascii_whitespace()))
        {
            Some(i) => {
                // `i` is an ASCII byte's index: both slices are on boundaries.
                self.rest = s.get(i + 1..);
                s.get(..i)
            }
            None => {
                self.rest = None;
                Some(s)
            }
        }
    }
}

/// `s.split_once(sep)` for an ASCII `sep` (see [`parts`]).
pub fn split_once(s: &str, sep: u8) -> Option<(&str, &str)> {
    let mut p = parts(s, sep);
    let first = p.next()?;
    Some((first, p.rest?))
}

/// The decimal digits of `n` through JS (`String(n)`): Rust's integer formatting
/// and parsing cost kilobytes in the download.
pub fn num_str(n: f64) -> String {
    stringify(&JsValue::from_f64(n))
}

/// A decimal number from `s` through `JSON.parse` (`None` when it is not one).
pub fn str_num(s: &str) -> Option<f64> {
    parse(s).as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_whole_characters() {
        assert_eq!(truncate("abcdef".into(), 4), "abcd");
        // "é" is two bytes: cutting at 2 would split it
        assert_eq!(truncate("aé".into(), 2), "a");
        assert_eq!(truncate("short".into(), 512), "short");
    }

    #[test]
    fn parts_split_like_str_split() {
        let got: alloc::vec::Vec<&str> = parts("a,,b,", b',').collect();
        assert_eq!(got, ["a", "", "b", ""]);
        let got: alloc::vec::Vec<&str> = parts("x", b',').collect();
        assert_eq!(got, ["x"]);
        // whitespace: any ASCII space, tab or newline
        let got: alloc::vec::Vec<&str> = parts("a b\tc", b' ').collect();
        assert_eq!(got, ["a", "b", "c"]);
        assert_eq!(split_once("k=v=w", b'='), Some(("k", "v=w")));
        assert_eq!(split_once("kv", b'='), None);
        assert_eq!(split_once("é=ü", b'='), Some(("é", "ü")));
    }

    #[test]
    fn byte_search_helpers() {
        assert!(has("work_email", "email"));
        assert!(!has("mail", "email"));
        assert!(!has("x", ""));
        assert_eq!(after("https://a.com/x", "://"), Some("a.com/x"));
        assert_eq!(after("a.com", "://"), None);
        assert_eq!(after("://", "://"), Some(""));
    }
}
