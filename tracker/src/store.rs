//! First-party storage: `localStorage` with an in-memory fallback, and the
//! visitor-id cookie mirror.
//!
//! When storage is blocked (Safari private mode, cookies disabled) or consent is
//! not given, writes go to memory (the loader's object [`MEM`], for the page's
//! lifetime): the tracker keeps working and never throws. A value in memory shadows
//! the stored one, so a failed write never leaves a stale value visible. What to do
//! when storage is *full* is the caller's decision ([`Store::set`] says whether the
//! write reached storage; see `send::put`, which evicts acknowledged data first).
//!
//! Keys (all under `_cl_`, see [`crate::keys`]): `_cl_vid` visitor id, `_cl_e.<id>`
//! one unsent event each (one key per event, not one array, so that tabs never
//! overwrite each other's events: appending and acknowledging are single
//! `setItem`/`removeItem` calls with no read-modify-write of a shared value),
//! `_cl_d` dropped events not yet reported, `_cl_r` consecutive refused batches,
//! `_cl_l` the send lock, `_cl_p` the profile, `_cl_c` the consent answer.

use crate::js::{self, s, GLOBAL, MEM, NO, UNDEFINED, V};
use crate::keys::N;

/// The cookie's attributes: two years, the whole site, `SameSite=Lax`.
const COOKIE_ATTRS: &str = "; path=/; max-age=63072000; SameSite=Lax";
/// The attributes that delete it.
const COOKIE_DELETE: &str = "; path=/; max-age=0; SameSite=Lax";

fn storage() -> V {
    GLOBAL.get(N::LocalStorage)
}

/// Key-value storage that never throws.
pub struct Store {
    /// Whether writes may reach first-party storage (consent).
    pub persist: bool,
}

impl Store {
    /// Reads `k`: memory first (it holds what storage refused), then storage; a
    /// string, or `null`/`undefined` when absent.
    pub fn get(&self, k: impl Into<V>) -> V {
        let k = k.into();
        let m = MEM.get(k);
        if m.is_str() {
            return m;
        }
        storage().call(N::GetItem, k, NO)
    }

    /// Writes `k`: to storage when allowed and possible (then `true`), else to
    /// memory (`false`).
    pub fn set(&mut self, k: impl Into<V>, v: impl Into<V>) -> bool {
        let (k, v) = (k.into(), v.into());
        if self.persist && storage().call(N::SetItem, k, v).ok().is_some() {
            MEM.set(k, UNDEFINED);
            return true;
        }
        MEM.set(k, v);
        false
    }

    /// Whether storage itself (not memory) holds `k`.
    pub fn stored(&self, k: impl Into<V>) -> bool {
        storage().call(N::GetItem, k, NO).is_str()
    }

    /// Removes `k` from memory and storage.
    pub fn remove(&self, k: impl Into<V>) {
        let k = k.into();
        MEM.set(k, UNDEFINED);
        storage().call(N::RemoveItem, k, NO);
    }

    /// Every key starting with `prefix`, in memory and in storage, once each (an
    /// array).
    pub fn keys(&self, prefix: N) -> V {
        let out = js::arr();
        for (i, src) in [MEM, storage()].into_iter().enumerate() {
            let ks = js::keys(src);
            for j in 0..ks.len() {
                let k = ks.at(j);
                // Memory: only keys holding a value; storage: only keys memory
                // does not shadow (listed already).
                if k.call(N::StartsWith, prefix, NO).truthy() && MEM.get(k).is_str() == (i == 0) {
                    out.push(k);
                }
            }
        }
        out
    }

    /// Copies what is held in memory to storage (after consent is given): only
    /// the keys memory holds a value for (the others are storage's own).
    pub fn flush_memory(&mut self) {
        let ks = js::keys(MEM);
        for i in 0..ks.len() {
            let k = ks.at(i);
            let v = MEM.get(k);
            if v.is_str() {
                self.set(k, v);
            }
        }
    }

    /// Forgets everything the tracker stored, memory and cookie included.
    pub fn clear(&mut self) {
        let ks = self.keys(N::KeyPrefix);
        for i in 0..ks.len() {
            self.remove(ks.at(i));
        }
        write_cookie(s(""), COOKIE_DELETE);
    }
}

fn document() -> V {
    GLOBAL.get(N::Document)
}

/// The visitor id from the first-party cookie (`_cl_vid`), if any.
pub fn read_cookie() -> Option<V> {
    let mut buf = [0u8; 8192];
    let all = js::read(document().get(N::Cookie), &mut buf)?;
    js::parts(all, b';').find_map(|c| {
        let (k, v) = js::split_once(c.trim_ascii(), b'=')?;
        (k == "_cl_vid" && !v.is_empty()).then(|| s(v))
    })
}

/// Writes the visitor-id cookie `_cl_vid` (`Secure` on https).
fn write_cookie(value: V, attrs: &str) {
    let mut c = V::from(N::KeyVid).cat(s("="), value).cat(s(attrs), NO);
    if GLOBAL.get(N::Location).get(N::Protocol).is(N::Https) {
        c = c.cat(s("; Secure"), NO);
    }
    document().set(N::Cookie, c);
}

/// Mirrors the visitor id into the cookie for two years.
pub fn mirror_cookie(vid: V) {
    write_cookie(vid, COOKIE_ATTRS);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_lasts_two_years_or_is_deleted() {
        assert!(COOKIE_ATTRS.contains(&format!("max-age={}", 2 * 365 * 24 * 60 * 60)));
        assert!(COOKIE_DELETE.contains("max-age=0;"));
        assert_eq!(crate::keys::name(N::KeyVid), "_cl_vid");
    }
}
