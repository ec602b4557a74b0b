//! Where the edge may send a request on a site's behalf (webhook deliveries): only `https`
//! to a public host name. Checked when a webhook is registered **and** again before every
//! delivery (so a URL stored before a rule existed, or written into D1 by hand, is refused
//! too).
//!
//! Refused ([`check_target`]):
//! - any scheme but `https`; URLs with user info (`https://user:pw@host/`);
//! - every IP literal, in any spelling: the WHATWG URL parser (the `url` crate, as in
//!   browsers) reads `http://2130706433/`, `http://0x7f.1/`, `http://0177.0.0.1/` and
//!   `http://127.1/` as 127.0.0.1, and `[::ffff:127.0.0.1]` as an IPv6 literal, so one check
//!   on the parsed host covers them. Public addresses are refused as well: a receiver has a
//!   name (and a certificate for it);
//! - `localhost` and its subdomains, single-label names (`intranet`, `metadata`: resolved
//!   through search domains), and the special-use or private suffixes
//!   [`LOCAL_SUFFIXES`] (`.local`, `.internal`, `.home.arpa`, `.localdomain`, `.lan`,
//!   `.arpa`, ...).
//!
//! [`classify_ip`] names the range of an address — loopback, private (RFC 1918, IPv6
//! unique local), link-local (169.254/16 with cloud metadata at 169.254.169.254, fe80::/10),
//! CGNAT (100.64/10), unspecified, multicast, reserved and documentation ranges, and the
//! IPv4 address inside IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible, NAT64
//! (`64:ff9b::/96`) and 6to4 (`2002::/16`) IPv6 addresses — for the error message and for
//! the one exception below.
//!
//! # The local-test switch
//! With `allow_loopback` (the worker's `WEBHOOKS_ALLOW_LOOPBACK` variable set to
//! [`LOOPBACK_SWITCH_VALUE`], which only the end-to-end tests pass to `wrangler dev`), a
//! loopback target (`127.0.0.0/8`, `::1`, `localhost`) is accepted over `http` or `https`,
//! so the tests can reach their receiver on 127.0.0.1. Nothing else is opened by it:
//! private, link-local and CGNAT ranges stay refused.
//!
//! # DNS
//! A Worker cannot resolve names, so a public name whose DNS answers a private address
//! (or changes its answer between registration and delivery: DNS rebinding) cannot be
//! caught here. What bounds it: the worker's `fetch` leaves from Cloudflare's network to
//! the public internet, which has no route into the site's private network (no Tunnel or
//! VPC binding is configured); redirects are never followed, so a public receiver cannot
//! bounce a delivery elsewhere; and every delivery is signed, so a receiver that is not
//! the site's own learns nothing it could replay.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The value `WEBHOOKS_ALLOW_LOOPBACK` must have to turn the local-test switch on (any
/// other value, `true` or `1` included, leaves it off: it cannot be set by accident).
pub const LOOPBACK_SWITCH_VALUE: &str = "local-tests-only";

/// Name suffixes that never name a public receiver.
pub const LOCAL_SUFFIXES: [&str; 12] = [
    "localhost",
    "local",
    "internal",
    "localdomain",
    "lan",
    "home",
    "corp",
    "intranet",
    "private",
    "home.arpa",
    "arpa",
    "onion",
];

/// The range an IP address falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpRange {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, fc00::/7.
    Private,
    /// 169.254/16 (cloud metadata lives at 169.254.169.254), fe80::/10.
    LinkLocal,
    /// 100.64/10 (carrier-grade NAT, RFC 6598).
    Cgnat,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// 224/4, ff00::/8, 255.255.255.255.
    Multicast,
    /// Documentation, benchmarking, 240/4 and the other special-purpose ranges.
    Reserved,
    /// Anything else.
    Public,
}

impl IpRange {
    /// A word for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            IpRange::Loopback => "loopback",
            IpRange::Private => "private",
            IpRange::LinkLocal => "link-local",
            IpRange::Cgnat => "carrier-grade NAT",
            IpRange::Unspecified => "unspecified",
            IpRange::Multicast => "multicast",
            IpRange::Reserved => "reserved",
            IpRange::Public => "public",
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> IpRange {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (127, _, _) => IpRange::Loopback,
        (10, _, _) | (192, 168, _) => IpRange::Private,
        (172, 16..=31, _) => IpRange::Private,
        (169, 254, _) => IpRange::LinkLocal,
        (100, 64..=127, _) => IpRange::Cgnat,
        (0, _, _) => IpRange::Unspecified,
        (224..=239, _, _) => IpRange::Multicast,
        (255, 255, 255) if ip == Ipv4Addr::BROADCAST => IpRange::Multicast,
        (240..=255, _, _) => IpRange::Reserved,
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => IpRange::Reserved,
        (198, 18..=19, _) => IpRange::Reserved,
        (192, 88, 99) => IpRange::Reserved,
        _ => IpRange::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> IpRange {
    if ip.is_loopback() {
        return IpRange::Loopback;
    }
    if ip.is_unspecified() {
        return IpRange::Unspecified;
    }
    let seg = ip.segments();
    let embedded = |hi: usize| {
        let s = &seg[hi..hi + 2];
        Ipv4Addr::new((s[0] >> 8) as u8, s[0] as u8, (s[1] >> 8) as u8, s[1] as u8)
    };
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated)
    if seg[..5] == [0; 5] && (seg[5] == 0xffff || seg[5] == 0) {
        return classify_v4(embedded(6));
    }
    // NAT64 64:ff9b::/96 and 64:ff9b:1::/48
    if seg[0] == 0x64 && seg[1] == 0xff9b {
        return classify_v4(embedded(6));
    }
    // 6to4 2002:a.b.c.d::/48
    if seg[0] == 0x2002 {
        return classify_v4(embedded(1));
    }
    match seg[0] {
        0xfc00..=0xfdff => IpRange::Private,
        0xfe80..=0xfebf => IpRange::LinkLocal,
        // deprecated site-local fec0::/10
        0xfec0..=0xfeff => IpRange::Private,
        0xff00..=0xffff => IpRange::Multicast,
        0x2001 if seg[1] == 0x0db8 => IpRange::Reserved,
        // 100::/64 discard-only
        0x0100 if seg[1..4] == [0, 0, 0] => IpRange::Reserved,
        _ => IpRange::Public,
    }
}

/// The range of an address (IPv4 inside IPv6 forms is classified as IPv4).
pub fn classify_ip(ip: IpAddr) -> IpRange {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Why a target URL is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// A stable code: `invalid_url`, `not_https`, `ip_literal`, `local_host`,
    /// `credentials_in_url`.
    pub code: &'static str,
    /// What to do about it.
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// Whether a (lower-case, no trailing dot) host name names the local machine or a
/// private network.
fn is_local_name(host: &str) -> bool {
    !host.contains('.')
        || LOCAL_SUFFIXES
            .iter()
            .any(|s| host == *s || host.ends_with(&format!(".{s}")))
}

/// Checks a webhook target and returns it parsed. See the module docs for the rules.
///
/// ```
/// use closeloop_core::netguard::check_target;
/// assert!(check_target("https://hooks.example.com/closeloop", false).is_ok());
/// assert_eq!(check_target("https://169.254.169.254/latest", false).unwrap_err().code, "ip_literal");
/// assert_eq!(check_target("http://0x7f.1:9/x", false).unwrap_err().code, "not_https");
/// assert!(check_target("http://127.0.0.1:9/x", true).is_ok());
/// ```
pub fn check_target(raw: &str, allow_loopback: bool) -> Result<url::Url, Refusal> {
    let url = url::Url::parse(raw.trim())
        .map_err(|e| refuse("invalid_url", format!("not an absolute URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse(
            "credentials_in_url",
            "the URL must not carry user info; authenticate with the signature",
        ));
    }
    let host = url
        .host()
        .ok_or_else(|| refuse("invalid_url", "the URL has no host"))?;
    let loopback = match &host {
        url::Host::Ipv4(ip) => classify_ip(IpAddr::V4(*ip)) == IpRange::Loopback,
        url::Host::Ipv6(ip) => classify_ip(IpAddr::V6(*ip)) == IpRange::Loopback,
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
    };
    if allow_loopback && loopback && matches!(url.scheme(), "http" | "https") {
        return Ok(url);
    }
    if url.scheme() != "https" {
        return Err(refuse(
            "not_https",
            format!("the URL must use https, not `{}`", url.scheme()),
        ));
    }
    match host {
        url::Host::Ipv4(ip) => Err(ip_refusal(IpAddr::V4(ip))),
        url::Host::Ipv6(ip) => Err(ip_refusal(IpAddr::V6(ip))),
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d.is_empty() || is_local_name(&d) {
                Err(refuse(
                    "local_host",
                    format!("`{d}` is not a public host name"),
                ))
            } else {
                Ok(url)
            }
        }
    }
}

fn ip_refusal(ip: IpAddr) -> Refusal {
    refuse(
        "ip_literal",
        format!(
            "the URL names an IP address ({ip}, {}); use the receiver's public host name",
            classify_ip(ip).as_str()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(u: &str) -> &'static str {
        match check_target(u, false) {
            Ok(_) => "ok",
            Err(r) => r.code,
        }
    }

    #[test]
    fn public_https_names_pass() {
        for u in [
            "https://hooks.example.com/x",
            "https://crm.example.co.uk:8443/hooks?k=v",
            "https://xn--bcher-kva.example/",
            "https://Hooks.Example.COM./x",
        ] {
            assert_eq!(code(u), "ok", "{u}");
        }
    }

    #[test]
    fn the_issue_s_urls_are_refused() {
        assert_eq!(code("http://127.0.0.1:9/x"), "not_https");
        assert_eq!(code("https://10.0.0.1/"), "ip_literal");
        assert_eq!(code("https://169.254.169.254/latest"), "ip_literal");
        assert_eq!(code("https://[::1]/"), "ip_literal");
        assert_eq!(code("https://localhost/"), "local_host");
    }

    #[test]
    fn every_ip_spelling_is_a_literal() {
        for u in [
            "https://2130706433/",
            "https://0x7f000001/",
            "https://0x7f.1/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://017700000001/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://[0:0:0:0:0:ffff:a9fe:a9fe]/",
            "https://[64:ff9b::a00:1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://100.64.0.1/",
            "https://8.8.8.8/",
            "https://0.0.0.0/",
        ] {
            assert_eq!(code(u), "ip_literal", "{u}");
        }
    }

    #[test]
    fn local_names_are_refused() {
        for u in [
            "https://localhost./x",
            "https://api.localhost/",
            "https://LOCALHOST/",
            "https://printer.local/",
            "https://metadata.google.internal/",
            "https://intranet/",
            "https://nas.home.arpa/",
            "https://1.0.0.127.in-addr.arpa/",
        ] {
            assert_eq!(code(u), "local_host", "{u}");
        }
        assert_eq!(
            code("https://user:pw@hooks.example.com/"),
            "credentials_in_url"
        );
        assert_eq!(code("ftp://hooks.example.com/"), "not_https");
        assert_eq!(code("not a url"), "invalid_url");
        assert_eq!(code("https:///nohost"), "local_host");
    }

    #[test]
    fn ranges() {
        let r = |s: &str| classify_ip(s.parse().expect("ip"));
        assert_eq!(r("127.5.4.3"), IpRange::Loopback);
        assert_eq!(r("172.31.255.255"), IpRange::Private);
        assert_eq!(r("172.32.0.1"), IpRange::Public);
        assert_eq!(r("100.127.255.255"), IpRange::Cgnat);
        assert_eq!(r("100.128.0.1"), IpRange::Public);
        assert_eq!(r("169.254.169.254"), IpRange::LinkLocal);
        assert_eq!(r("::ffff:10.1.2.3"), IpRange::Private);
        assert_eq!(r("::ffff:169.254.169.254"), IpRange::LinkLocal);
        assert_eq!(r("2002:7f00:1::"), IpRange::Loopback);
        assert_eq!(r("64:ff9b::7f00:1"), IpRange::Loopback);
        assert_eq!(r("fc12::1"), IpRange::Private);
        assert_eq!(r("ff02::1"), IpRange::Multicast);
        assert_eq!(r("2001:db8::1"), IpRange::Reserved);
        assert_eq!(r("2606:4700::1111"), IpRange::Public);
        assert_eq!(r("::"), IpRange::Unspecified);
        assert_eq!(r("::1"), IpRange::Loopback);
    }

    #[test]
    fn the_switch_opens_loopback_only() {
        for u in [
            "http://127.0.0.1:9/x",
            "http://[::1]:9/x",
            "http://localhost:9/x",
            "https://127.0.0.2/",
        ] {
            assert!(check_target(u, true).is_ok(), "{u}");
        }
        for u in [
            "http://10.0.0.1/",
            "https://169.254.169.254/",
            "http://100.64.0.1/",
            "http://[fd00::1]/",
            "http://hooks.example.com/",
        ] {
            assert!(check_target(u, true).is_err(), "{u}");
        }
    }
}
