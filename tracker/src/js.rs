//! The tracker's one door to JavaScript: a value table and a dozen generic
//! imports, defined by the loader (`tracker/js/loader.js`, "the value table").
//!
//! A JavaScript value is a [`V`]: its index in the loader's table `H`. Indexes 0–5
//! are fixed ([`UNDEFINED`], [`NULL`], [`GLOBAL`], [`CFG`], [`MEM`], [`ST`]); then come the
//! names of [`crate::keys`] (the loader reads them from the wasm's custom section
//! `n`), so `V::from(N::Href)` *is* the string `"href"`. Values made during a call
//! into the wasm live until that call returns: the loader then cuts the table back
//! to where it was. A `V` is therefore a plain number, never released one by one
//! and never kept across calls (the tracker's state between calls is Rust data
//! without heap, the fixed entries — strings live in [`ST`] —, and first-party
//! storage).
//!
//! The tracker allocates nothing: no `alloc`, no allocator. Where a rule needs a
//! string's bytes (globs, identity fields, hosts, cookies), [`read`] copies it into
//! a buffer on the stack, cut to whole characters; everything else (building
//! strings, comparing, JSON) is done on JavaScript strings through the imports.
//! (Any `alloc` collection links `handle_alloc_error`, whose default handler
//! formats a message: `core::fmt` in every visitor's download.)
//!
//! Every import swallows JavaScript exceptions: a property read that throws gives
//! `undefined`, a method call that throws gives [`NO`] (see [`V::call`]). Nothing
//! the tracker does can throw into the site's page.
//!
//! This replaces wasm-bindgen and js-sys (issue 17): their generated glue, one shim
//! per imported function, a reference-counted heap of JS objects released value by
//! value, and a string literal passed and decoded at every property access cost
//! ~5 KB of the download; this module and the loader's table ~1 KB.

use crate::keys::N;

/// A JavaScript value: its index in the loader's table (see the module doc).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct V(pub u32);

/// `undefined` (also what a read that threw gives).
pub const UNDEFINED: V = V(0);
/// `null`.
pub const NULL: V = V(1);
/// The global object (`window`).
pub const GLOBAL: V = V(2);
/// The loader's settings object (see `tracker/js/loader.js`, `cfg`).
pub const CFG: V = V(3);
/// An object for the page's lifetime: the store's memory (see [`crate::store`]).
pub const MEM: V = V(4);
/// An object for the page's lifetime: the tracker's strings between calls (visitor
/// and tab id, the page's URL, referrer and keys, the ids in flight, ...).
pub const ST: V = V(5);
/// No argument, or: the call threw.
pub const NO: V = V(u32::MAX);
/// Where the names begin in the table.
const NAMES: u32 = 6;

impl From<N> for V {
    fn from(n: N) -> V {
        V(n as u32 + NAMES)
    }
}

/// The imports (module `c`), defined by the loader.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod ffi {
    #[link(wasm_import_module = "c")]
    extern "C" {
        /// `o[k]` (`undefined` if it throws).
        pub fn g(o: u32, k: u32) -> u32;
        /// `o[k] = v` (nothing if it throws).
        pub fn s(o: u32, k: u32, v: u32);
        /// `o[m](a, b)` with only the arguments that are not [`super::NO`];
        /// [`super::NO`] if it throws.
        pub fn c(o: u32, m: u32, a: u32, b: u32) -> u32;
        /// `a === b`.
        pub fn e(a: u32, b: u32) -> u32;
        /// What `v` is: 1 truthy, 2 an object or function, 4 an array, 8 a string.
        pub fn t(v: u32) -> u32;
        /// `v` if it is a number, else NaN.
        pub fn n(v: u32) -> f64;
        /// The number `x`.
        pub fn f(x: f64) -> u32;
        /// The string of the UTF-8 bytes at `p`, `n` long.
        pub fn d(p: *const u8, n: usize) -> u32;
        /// `v` encoded as UTF-8, cut to whole characters within `max` bytes, and held
        /// for [`w`]: its length, or -1 when `v` is not a string.
        pub fn l(v: u32, max: u32) -> i32;
        /// Writes the bytes [`l`] encoded to `p`.
        pub fn w(p: *mut u8);
        /// A new `{}`, or `[]` when `array` is 1.
        pub fn o(array: u32) -> u32;
        /// `JSON.stringify(v)`, or with `parse` 1 `JSON.parse(v)` (`undefined` if it
        /// throws).
        pub fn j(v: u32, parse: u32) -> u32;
        /// Sorts the array `a` by its items' number `k`, smallest first (stable).
        pub fn q(a: u32, k: u32);
        /// `Date.now()`.
        pub fn now() -> f64;
        /// `Math.random()`.
        pub fn r() -> f64;
        /// A new random id (`crypto.randomUUID()`, else 32 random hex digits); with
        /// `log` 1 also pushed to the page's `window.__closeloop_log` array, if any.
        pub fn i(log: u32) -> u32;
        /// Calls the tracker's `tick` (op 1) after `ms`.
        pub fn k(ms: f64);
        /// POSTs `body` to `url` (see the loader's `post`), then calls `ack` (op 2)
        /// with the answer's text or `fail` (op 3) with its status (0: no answer
        /// within `timeout` ms, or a network error).
        pub fn p(url: u32, body: u32, timeout: f64);
    }
}

/// Native builds (the unit tests of the pure rules) have no page: the imports are
/// never called there.
#[cfg(not(target_arch = "wasm32"))]
#[allow(unsafe_code, clippy::missing_safety_doc)]
mod ffi {
    const NONE: &str = "the tracker talks to a page only when compiled to wasm32";
    pub unsafe fn g(_: u32, _: u32) -> u32 {
        unreachable!("{NONE}")
    }
    pub unsafe fn s(_: u32, _: u32, _: u32) {
        unreachable!("{NONE}")
    }
    pub unsafe fn c(_: u32, _: u32, _: u32, _: u32) -> u32 {
        unreachable!("{NONE}")
    }
    pub unsafe fn e(_: u32, _: u32) -> u32 {
        unreachable!("{NONE}")
    }
    pub unsafe fn t(_: u32) -> u32 {
        unreachable!("{NONE}")
    }
    pub unsafe fn n(_: u32) -> f64 {
        unreachable!("{NONE}")
    }
    pub unsafe fn f(_: f64) -> u32 {
        unreachable!("{NONE}")
    }
    pub unsafe fn d(_: *const u8, _: usize) -> u32 {
        unreachable!("{NONE}")
    }
    pub unsafe fn l(_: u32, _: u32) -> i32 {
        unreachable!("{NONE}")
    }
    pub unsafe fn w(_: *mut u8) {
        unreachable!("{NONE}")
    }
    pub unsafe fn o(_: u32) -> u32 {
        unreachable!("{NONE}")
    }
    pub unsafe fn j(_: u32, _: u32) -> u32 {
        unreachable!("{NONE}")
    }
    pub unsafe fn q(_: u32, _: u32) {
        unreachable!("{NONE}")
    }
    pub unsafe fn now() -> f64 {
        unreachable!("{NONE}")
    }
    pub unsafe fn r() -> f64 {
        unreachable!("{NONE}")
    }
    pub unsafe fn i(_: u32) -> u32 {
        unreachable!("{NONE}")
    }
    pub unsafe fn k(_: f64) {
        unreachable!("{NONE}")
    }
    pub unsafe fn p(_: u32, _: u32, _: f64) {
        unreachable!("{NONE}")
    }
}

// SAFETY (every `unsafe` block below): the imports take and return numbers only and
// touch no Rust memory, except `d`, which reads the `n` bytes of a live `&str`, and
// `w`, which writes exactly the length `l` just returned into a buffer of that
// length.
#[allow(unsafe_code)]
impl V {
    /// `self[k]`.
    pub fn get(self, k: impl Into<V>) -> V {
        V(unsafe { ffi::g(self.0, k.into().0) })
    }

    /// `self[k] = v`.
    pub fn set(self, k: impl Into<V>, v: impl Into<V>) {
        unsafe { ffi::s(self.0, k.into().0, v.into().0) }
    }

    /// `self[m](a, b)`, leaving out arguments that are [`NO`]; [`NO`] when it threw
    /// (or `self[m]` is no function), see [`V::ok`].
    pub fn call(self, m: N, a: impl Into<V>, b: impl Into<V>) -> V {
        V(unsafe { ffi::c(self.0, V::from(m).0, a.into().0, b.into().0) })
    }

    /// `None` for [`NO`] (a call that threw).
    pub fn ok(self) -> Option<V> {
        (self != NO).then_some(self)
    }

    /// `self === o`.
    pub fn is(self, o: impl Into<V>) -> bool {
        unsafe { ffi::e(self.0, o.into().0) != 0 }
    }

    fn kind(self) -> u32 {
        unsafe { ffi::t(self.0) }
    }

    /// Whether the value is truthy.
    pub fn truthy(self) -> bool {
        self.kind() & 1 != 0
    }

    /// Whether it is an object or a function (not `null`).
    pub fn is_object(self) -> bool {
        self.kind() & 2 != 0
    }

    /// Whether it is an array.
    pub fn is_array(self) -> bool {
        self.kind() & 4 != 0
    }

    /// Whether it is a string.
    pub fn is_str(self) -> bool {
        self.kind() & 8 != 0
    }

    /// The number, if it is one (NaN is none).
    pub fn num(self) -> Option<f64> {
        let x = unsafe { ffi::n(self.0) };
        (!x.is_nan()).then_some(x)
    }

    /// The length of the string in UTF-8 bytes (0 when it is none).
    pub fn utf8_len(self) -> usize {
        usize::try_from(unsafe { ffi::l(self.0, i32::MAX as u32) }).unwrap_or(0)
    }

    /// `self.length` as a count (0 when absent).
    pub fn len(self) -> u32 {
        self.get(N::Length).num().unwrap_or(0.0) as u32
    }

    /// Whether `self.length` is 0 (or absent).
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// `self[i]`.
    pub fn at(self, i: u32) -> V {
        self.get(num(f64::from(i)))
    }

    /// `self.push(v)` (an array).
    pub fn push(self, v: impl Into<V>) {
        self.call(N::Push, v, NO);
    }

    /// `self.includes(v)` (an array).
    pub fn has(self, v: impl Into<V>) -> bool {
        self.call(N::Includes, v, NO).truthy()
    }

    /// `self.concat(a, b)` (a string; `b` may be [`NO`]).
    pub fn cat(self, a: impl Into<V>, b: impl Into<V>) -> V {
        self.call(N::Concat, a, b)
    }
}

/// Reads the string `v` into `buf`, cut to the whole characters that fit: the text,
/// or `None` when `v` is no string.
pub fn read(v: V, buf: &mut [u8]) -> Option<&str> {
    read_as(v, buf, false)
}

/// [`read`], with ASCII letters lowercased.
pub fn read_lower(v: V, buf: &mut [u8]) -> &str {
    read_as(v, buf, true).unwrap_or("")
}

#[allow(unsafe_code)]
fn read_as(v: V, buf: &mut [u8], lower: bool) -> Option<&str> {
    let n = usize::try_from(unsafe { ffi::l(v.0, buf.len() as u32) }).ok()?;
    let b = buf.get_mut(..n)?;
    // SAFETY: `w` writes exactly the `n` bytes `l` encoded; `TextEncoder` writes
    // valid UTF-8 (lone surrogates become U+FFFD), `l` cuts between characters and
    // ASCII lowercasing keeps UTF-8 valid, so checking it again (which would link
    // a validator) is not needed.
    unsafe {
        ffi::w(b.as_mut_ptr());
        if lower {
            b.make_ascii_lowercase();
        }
        Some(core::str::from_utf8_unchecked(b))
    }
}

/// The string `v` cut to `max` bytes (at most [`crate::keys::MAX_URL_LEN`]) on a
/// character boundary, as a new string; `undefined` when `v` is no string.
pub fn trunc(v: V, max: usize) -> V {
    let mut buf = [0u8; crate::keys::MAX_URL_LEN];
    let b = buf.get_mut(..max).unwrap_or_default();
    read(v, b).map_or(UNDEFINED, s)
}

/// Sorts the array `a` by its items' number `k`, smallest first (stable).
#[allow(unsafe_code)]
pub fn sort(a: V, k: N) {
    unsafe { ffi::q(a.0, V::from(k).0) }
}

/// The string `x`.
#[allow(unsafe_code)]
pub fn s(x: &str) -> V {
    V(unsafe { ffi::d(x.as_ptr(), x.len()) })
}

/// The number `x`.
#[allow(unsafe_code)]
pub fn num(x: f64) -> V {
    V(unsafe { ffi::f(x) })
}

/// A new `{}`.
#[allow(unsafe_code)]
pub fn obj() -> V {
    V(unsafe { ffi::o(0) })
}

/// A new `[]`.
#[allow(unsafe_code)]
pub fn arr() -> V {
    V(unsafe { ffi::o(1) })
}

/// `JSON.stringify(v)` (a string value, `undefined` if it throws).
#[allow(unsafe_code)]
pub fn json(v: V) -> V {
    V(unsafe { ffi::j(v.0, 0) })
}

/// `JSON.parse(v)` (`undefined` if `v` is not JSON).
#[allow(unsafe_code)]
pub fn parse(v: V) -> V {
    V(unsafe { ffi::j(v.0, 1) })
}

/// `JSON.parse(v)` if that is an object, else a new `{}`.
pub fn parse_object(v: V) -> V {
    let o = parse(v);
    if o.is_object() {
        o
    } else {
        obj()
    }
}

/// `Object.keys(o)` (an array; `undefined` when `o` is no object).
pub fn keys(o: V) -> V {
    GLOBAL.get(N::Object).call(N::Keys, o, NO)
}

/// `Date.now()`.
#[allow(unsafe_code)]
pub fn now() -> f64 {
    unsafe { ffi::now() }
}

/// `Math.random()`.
#[allow(unsafe_code)]
pub fn random() -> f64 {
    unsafe { ffi::r() }
}

/// A new random id (see the import `i`); `log`: an event's id, also pushed to the
/// page's `window.__closeloop_log` array when the page defined one (a test hook).
#[allow(unsafe_code)]
pub fn id(log: bool) -> V {
    V(unsafe { ffi::i(u32::from(log)) })
}

/// Calls the tracker's `tick` after `ms`.
#[allow(unsafe_code)]
pub fn timer(ms: f64) {
    unsafe { ffi::k(ms) }
}

/// POSTs `body` to `url`; `ack` or `fail` follows (see the import `P`).
#[allow(unsafe_code)]
pub fn post(url: V, body: V, timeout: f64) {
    unsafe { ffi::p(url.0, body.0, timeout) }
}

/// `o.getAttribute(name)`.
pub fn attr(o: V, name: impl Into<V>) -> V {
    o.call(N::GetAttribute, name, NO)
}

/// A decimal number from the string `v` through `JSON.parse` (`None` when it is
/// not one).
pub fn str_num(v: V) -> Option<f64> {
    parse(v).num()
}

/// Whether `hay` contains `needle` (a byte scan: `str::contains` links a
/// two-way searcher of several kilobytes).
pub fn has(hay: &str, needle: &str) -> bool {
    find(hay, needle).is_some()
}

/// Where `needle` first occurs in `hay` (a byte scan, see [`has`]).
pub fn find(hay: &str, needle: &str) -> Option<usize> {
    find_bytes(hay.as_bytes(), needle.as_bytes())
}

/// [`find`] over bytes.
pub fn find_bytes(h: &[u8], n: &[u8]) -> Option<usize> {
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h.get(i..i + n.len()) == Some(n))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_split_like_str_split() {
        let got: Vec<&str> = parts("a,,b,", b',').collect();
        assert_eq!(got, ["a", "", "b", ""]);
        let got: Vec<&str> = parts("x", b',').collect();
        assert_eq!(got, ["x"]);
        // whitespace: any ASCII space, tab or newline
        let got: Vec<&str> = parts("a b\tc", b' ').collect();
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
        assert_eq!(find("https://a.com/x", "://"), Some(5));
        assert_eq!(find("a.com", "://"), None);
    }

    #[test]
    fn names_follow_the_fixed_values() {
        // the loader's table: undefined, null, window, cfg, memory, state, names
        assert_eq!(V::from(N::SiteId), V(6));
        assert_eq!(V::from(N::VisitorId), V(7));
    }
}
