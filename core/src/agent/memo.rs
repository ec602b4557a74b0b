//! The key and map of a memo of parsed user agents: the edge keeps one per isolate
//! (`edge/src/enrich.rs`), and the enrichment CPU bench (`examples/enrich_cpu`) measures
//! the same one.

/// The memo's key of a user agent and its hints: FxHash's word-at-a-time mixing
/// (rustc's hasher), several times faster than SipHash on a 150-byte user agent. Not
/// collision-resistant, and it need not be: an entry is checked against the request,
/// so a collision is only a miss.
pub fn key(user_agent: &str, hints: &[Option<String>; 6]) -> u64 {
    fn mix(h: u64, word: u64) -> u64 {
        (h.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
    }
    fn bytes(mut h: u64, b: &[u8]) -> u64 {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            h = mix(
                h,
                u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
            );
        }
        for &x in chunks.remainder() {
            h = mix(h, u64::from(x));
        }
        mix(h, b.len() as u64)
    }
    let mut h = bytes(0, user_agent.as_bytes());
    for hint in hints {
        h = match hint {
            Some(v) => bytes(mix(h, 1), v.as_bytes()),
            None => mix(h, 0),
        };
    }
    h
}

/// A map keyed by [`key`]'s already mixed value: the key is its own hash.
#[derive(Default)]
pub struct KeyIsHash(u64);

impl std::hash::Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A memo: parsed answers by [`key`], hashed by nothing more.
pub type Memo<V> = std::collections::HashMap<u64, V, std::hash::BuildHasherDefault<KeyIsHash>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_user_agent_and_by_each_hint() {
        let none: [Option<String>; 6] = Default::default();
        let mut mobile = none.clone();
        mobile[0] = Some("?1".into());
        let mut empty = none.clone();
        empty[0] = Some(String::new());
        let ua = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.0.0";
        assert_eq!(key(ua, &none), key(ua, &none));
        assert_ne!(
            key(ua, &none),
            key("Mozilla/5.0 (X11; Linux x86_64) Chrome/121.0.0.0", &none)
        );
        assert_ne!(key(ua, &none), key(ua, &mobile));
        // a hint sent empty is not a hint left out
        assert_ne!(key(ua, &none), key(ua, &empty));
    }

    #[test]
    fn the_map_uses_the_key_as_its_hash() {
        let mut m: Memo<&str> = Memo::default();
        m.insert(7, "seven");
        m.insert(u64::MAX, "max");
        assert_eq!(
            (m.get(&7), m.get(&u64::MAX), m.get(&8)),
            (Some(&"seven"), Some(&"max"), None)
        );
    }
}
