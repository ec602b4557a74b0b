//! Nine weeks of realistic traffic for the demo and its screenshots, sent through the public
//! API as a site owner's backfill would be: visits from every GA4 channel (search, ads,
//! email, social, partners, direct) through `events:import`, demo-form leads, deals moving
//! to `opportunity` and won through `POST /conversions`, and weekly spend per channel,
//! source and campaign through `POST /spend` (some of it recorded per channel only, as
//! marketers often do). Deterministic: the same seed gives the same people and numbers,
//! placed on the nine weeks that end yesterday (UTC), so the dashboard's last 30 days and
//! the 30 before them (its comparison) hold data.

use crate::http::Answer;
use crate::worker::{Site, Worker};
use crate::Result;
use serde_json::{json, Value};

const DAY: i64 = 86_400_000;
/// Weeks of history.
const WEEKS: i64 = 9;

/// What was sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seeded {
    /// Visitors (batches).
    pub visitors: usize,
    /// Events.
    pub events: usize,
    /// Leads (demo-form submits).
    pub leads: usize,
    /// Won deals.
    pub customers: usize,
    /// Spend records.
    pub spend: usize,
}

/// The lead whose journey the demo shows: two devices, four sessions from four channels,
/// the demo form, an opportunity and a won deal.
pub const SHOWCASE: &str = "maria.lopez@northwind.example";

/// The showcase lead's two visitors, their events starting at `t0`.
fn showcase(origin: &str, t0: i64) -> Vec<Value> {
    let h = 3_600_000;
    let m = 60_000;
    let ev = |id: &str, at: i64, kind: &str, path: &str, query: &str, referrer: &str| {
        json!({"id": format!("demo-showcase-{id}"), "type": kind, "created_at": at,
               "url": format!("{origin}{path}{query}"), "referrer": referrer, "title": "Closeloop demo"})
    };
    let form = |mut e: Value, id: &str| {
        e["form"] = json!({"id": id, "fields": ["email", "name", "company"],
            "values": {"email": SHOWCASE, "name": "Maria Lopez", "company": "Northwind"}});
        e
    };
    let laptop = vec![
        ev(
            "l1",
            t0,
            "pageview",
            "/",
            "?utm_source=newsletter&utm_medium=email&utm_campaign=monthly-digest",
            "",
        ),
        ev(
            "l2",
            t0 + 3 * m,
            "pageview",
            "/articles/closed-loop-basics.html",
            "",
            "",
        ),
        ev(
            "l3",
            t0 + 8 * 24 * h,
            "pageview",
            "/pricing",
            "?gclid=showcase1&utm_source=google&utm_medium=cpc&utm_campaign=generic-attribution",
            "https://www.google.com/",
        ),
        ev(
            "l4",
            t0 + 8 * 24 * h + 2 * m,
            "pageview",
            "/landing/demo.html",
            "",
            "",
        ),
        form(
            ev(
                "l5",
                t0 + 8 * 24 * h + 4 * m,
                "form_submit",
                "/landing/demo.html",
                "",
                "",
            ),
            "demo-request",
        ),
        ev("l6", t0 + 12 * 24 * h, "pageview", "/pricing", "", ""),
    ];
    let phone = vec![
        ev(
            "p1",
            t0 + 3 * 24 * h,
            "pageview",
            "/articles/attribution-models.html",
            "",
            "https://www.linkedin.com/",
        ),
        ev(
            "p2",
            t0 + 3 * 24 * h + 4 * m,
            "pageview",
            "/pricing",
            "",
            "",
        ),
        ev(
            "p3",
            t0 + 13 * 24 * h,
            "pageview",
            "/articles/content-that-converts.html",
            "",
            "https://t.co/",
        ),
        form(
            ev(
                "p4",
                t0 + 13 * 24 * h + 3 * m,
                "form_submit",
                "/articles/content-that-converts.html",
                "",
                "",
            ),
            "newsletter",
        ),
    ];
    vec![
        json!({"visitor_id": "demo-showcase-maria-laptop", "events": laptop,
               "context": {"country": "ES", "user_agent": UA_MAC, "device_type": "desktop"}}),
        json!({"visitor_id": "demo-showcase-maria-phone", "events": phone,
               "context": {"country": "ES", "user_agent": UA_PHONE, "device_type": "mobile"}}),
    ]
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<'a, T>(&mut self, list: &'a [T]) -> &'a T {
        &list[self.below(list.len() as u64) as usize]
    }
}

/// (weight, query string, referrer) of an arrival; `{id}` becomes a click id.
const ARRIVALS: &[(u64, &str, &str)] = &[
    (22, "", "https://www.google.com/"),
    (5, "", "https://www.bing.com/"),
    (3, "", "https://duckduckgo.com/"),
    (
        9,
        "?gclid={id}&utm_source=google&utm_medium=cpc&utm_campaign=brand",
        "https://www.google.com/",
    ),
    (
        8,
        "?gclid={id}&utm_source=google&utm_medium=cpc&utm_campaign=generic-attribution",
        "https://www.google.com/",
    ),
    (
        8,
        "?utm_source=newsletter&utm_medium=email&utm_campaign=monthly-digest",
        "",
    ),
    (
        3,
        "?utm_source=newsletter&utm_medium=email&utm_campaign=product-launch",
        "",
    ),
    (7, "", "https://www.linkedin.com/"),
    (3, "", "https://t.co/"),
    (
        6,
        "?fbclid={id}&utm_source=facebook&utm_medium=paid_social&utm_campaign=retargeting",
        "https://m.facebook.com/",
    ),
    (
        4,
        "?utm_source=linkedin&utm_medium=paid_social&utm_campaign=abm-q4",
        "https://www.linkedin.com/",
    ),
    (4, "", "https://partner.example.org/tools"),
    (2, "", "https://www.g2.com/products/closeloop"),
    (17, "", ""),
];

const LANDINGS: &[&str] = &[
    "/",
    "/",
    "/pricing",
    "/articles/attribution-models.html",
    "/articles/closed-loop-basics.html",
    "/articles/content-that-converts.html",
    "/landing/demo.html",
];
const PAGES: &[&str] = &[
    "/",
    "/pricing",
    "/articles/",
    "/articles/attribution-models.html",
    "/articles/closed-loop-basics.html",
    "/articles/content-that-converts.html",
    "/landing/demo.html",
    "/pricing",
];

/// (country, weight)
const COUNTRIES: &[(&str, u64)] = &[
    ("US", 38),
    ("GB", 14),
    ("DE", 12),
    ("FR", 8),
    ("NL", 6),
    ("CA", 7),
    ("AU", 5),
    ("IN", 6),
    ("SE", 4),
];

const UA_DESKTOP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const UA_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15";
const UA_PHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
const UA_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
const UA_BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

const FIRST: &[&str] = &[
    "ann", "bob", "cara", "dan", "eve", "finn", "gia", "hugo", "ines", "jon", "kim", "lea", "max",
    "nora", "omar", "pia", "raj", "sara", "tom", "uma", "vic", "wen", "yara", "zoe",
];
const COMPANIES: &[&str] = &[
    "acme.io",
    "globex.com",
    "initech.co",
    "umbrella.dev",
    "hooli.com",
    "stark.industries",
    "wayne.co",
    "tyrell.ai",
    "soylent.net",
    "cyberdyne.io",
];

/// POSTs with the write key; a 503 (wrangler restarting the worker mid-request, which it
/// does once soon after it starts) is tried again, up to three times.
fn post(worker: &Worker, site: &Site, path: &str, body: &Value) -> Result<Answer> {
    let mut tries = 0;
    loop {
        let a = crate::scenario::post(worker, site, path, "application/json", &body.to_string())?;
        tries += 1;
        if a.status != 503 || tries == 3 {
            return Ok(a);
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

/// Whether a conversion was stored (201), or had been by a first try (200, unchanged).
fn stored(a: &Answer) -> bool {
    a.status == 201 || a.status == 200
}

/// Sends nine weeks of traffic, leads, deals and spend for `origin` (the site's own pages)
/// to `site`, ending yesterday relative to `now_ms`.
pub fn seed(worker: &Worker, site: &Site, origin: &str, now_ms: i64) -> Result<Seeded> {
    let mut r = Rng(0xC105_E100);
    let today = now_ms.div_euclid(DAY) * DAY;
    let start = today - WEEKS * 7 * DAY;
    let total_weight: u64 = ARRIVALS.iter().map(|a| a.0).sum();
    let country_weight: u64 = COUNTRIES.iter().map(|c| c.1).sum();
    let mut out = Seeded::default();
    let mut batches: Vec<Value> = Vec::new();
    let mut leads: Vec<(String, i64)> = Vec::new();
    let mut n_event = 0u64;
    let visitors = 1_100;
    for v in 0..visitors {
        let bot = v % 45 == 7;
        let (ua, device) = match r.below(10) {
            0..=4 => (UA_DESKTOP, "desktop"),
            5 | 6 => (UA_MAC, "desktop"),
            7 | 8 => (UA_PHONE, "mobile"),
            _ => (UA_ANDROID, "mobile"),
        };
        let mut w = r.below(country_weight);
        let mut country = "US";
        for (c, cw) in COUNTRIES {
            if w < *cw {
                country = c;
                break;
            }
            w -= cw;
        }
        // traffic grows a little week on week
        let day = {
            let u = r.unit().sqrt();
            ((u * (WEEKS * 7 - 1) as f64) as i64).clamp(0, WEEKS * 7 - 1)
        };
        let mut t =
            start + day * DAY + (6 + r.below(15) as i64) * 3_600_000 + r.below(3_600) as i64 * 1000;
        let n_sessions = match r.below(10) {
            0..=5 => 1,
            6..=8 => 2,
            _ => 3,
        };
        let will_lead = !bot && r.unit() < 0.075;
        let mut events: Vec<Value> = Vec::new();
        let mut form_at = None;
        for k in 0..n_sessions {
            if k > 0 {
                t += (1 + r.below(6) as i64) * DAY + r.below(20_000) as i64 * 1000;
            }
            if t >= today - 60_000 {
                break;
            }
            let mut w = r.below(total_weight);
            let mut arrival = ARRIVALS[ARRIVALS.len() - 1];
            for a in ARRIVALS {
                if w < a.0 {
                    arrival = *a;
                    break;
                }
                w -= a.0;
            }
            // a popular checklist that search brings many readers to, and almost no lead
            // (the dashboard flags it as a poorly performing page)
            let landing = if will_lead && k + 1 == n_sessions && r.below(3) == 0 {
                "/landing/demo.html"
            } else if !will_lead && !arrival.2.is_empty() && arrival.1.is_empty() && r.below(4) < 3
            {
                "/articles/seo-checklist.html"
            } else {
                *r.pick(LANDINGS)
            };
            let query = arrival.1.replace("{id}", &format!("{:x}", r.next() >> 16));
            let mut prev = format!("{origin}{landing}{query}");
            n_event += 1;
            events.push(json!({"id": format!("demo-{v:04}-{n_event:06}"), "type": "pageview", "created_at": t,
                "url": prev, "referrer": arrival.2, "title": "Closeloop demo"}));
            let views = 1 + r.below(if bot { 6 } else { 4 });
            let checklist = landing == "/articles/seo-checklist.html";
            let views = if checklist { views.max(2) } else { views };
            for i in 1..views {
                t += (20 + r.below(160) as i64) * 1000;
                // checklist readers come back to it (its printable version)
                let page = if checklist && i == 1 {
                    landing
                } else {
                    *r.pick(PAGES)
                };
                let url = format!("{origin}{page}");
                n_event += 1;
                events.push(json!({"id": format!("demo-{v:04}-{n_event:06}"), "type": "pageview", "created_at": t,
                    "url": url, "referrer": prev, "title": "Closeloop demo"}));
                prev = url;
            }
            if will_lead && k + 1 == n_sessions {
                t += (30 + r.below(120) as i64) * 1000;
                let url = format!("{origin}/landing/demo.html");
                n_event += 1;
                events.push(json!({"id": format!("demo-{v:04}-{n_event:06}"), "type": "pageview", "created_at": t,
                    "url": url, "referrer": prev, "title": "Book a demo"}));
                t += (40 + r.below(100) as i64) * 1000;
                let name = *r.pick(FIRST);
                let email = format!("{name}.{v}@{}", r.pick(COMPANIES));
                n_event += 1;
                events.push(json!({"id": format!("demo-{v:04}-{n_event:06}"), "type": "form_submit", "created_at": t,
                    "url": url, "referrer": prev,
                    "form": {"id": "demo-request", "fields": ["email", "name", "company"],
                             "values": {"email": email, "name": format!("{}{}", name[..1].to_uppercase(), &name[1..])}}}));
                form_at = Some((email, t));
            }
            t += 45 * 60_000;
        }
        if events.is_empty() {
            continue;
        }
        if let Some(l) = form_at {
            leads.push(l);
        }
        out.events += events.len();
        batches.push(json!({"visitor_id": format!("demo-visitor-{v:04}-{:08x}", r.next() as u32), "events": events,
            "context": {"country": country, "user_agent": if bot { UA_BOT } else { ua }, "device_type": if bot { "bot" } else { device }, "is_bot": bot}}));
    }
    // the showcase lead: 25 days before today, 09:00 UTC
    let t0 = today - 25 * DAY + 9 * 3_600_000;
    for b in showcase(origin, t0) {
        out.events += b["events"].as_array().map_or(0, Vec::len);
        batches.push(b);
    }
    out.visitors = batches.len();
    for chunk in batches.chunks(200) {
        let a = post(worker, site, "events:import", &Value::Array(chunk.to_vec()))?;
        if a.status != 200 {
            return Err(format!("events:import: {} {}", a.status, a.text));
        }
    }
    out.leads = leads.len();
    // deals: about half of the leads reach an opportunity, two thirds of those are won
    for (i, (email, at)) in leads.iter().enumerate() {
        if r.below(100) >= 55 {
            continue;
        }
        let opened = at + (2 + r.below(6) as i64) * DAY;
        if opened >= today {
            continue;
        }
        let revenue = [1_200, 2_400, 4_900, 9_600, 14_400][r.below(5) as usize];
        let deal = format!("DEMO-{i:04}");
        let a = post(
            worker,
            site,
            "conversions",
            &json!({"deal_id": deal, "email": email, "stage": "opportunity",
            "revenue": format!("{revenue}.00"), "currency": "USD", "closed_at": iso(opened)}),
        )?;
        if !stored(&a) {
            return Err(format!("conversion: {} {}", a.status, a.text));
        }
        let won = opened + (3 + r.below(12) as i64) * DAY;
        if r.below(3) < 2 && won < today {
            let a = post(
                worker,
                site,
                "conversions",
                &json!({"deal_id": deal, "email": email,
                "revenue": format!("{revenue}.00"), "currency": "USD", "closed_at": iso(won)}),
            )?;
            if !stored(&a) {
                return Err(format!("conversion: {} {}", a.status, a.text));
            }
            out.customers += 1;
        }
    }
    for (deal, stage, at) in [
        ("DEMO-SHOWCASE", Some("opportunity"), t0 + 10 * DAY),
        ("DEMO-SHOWCASE", None, t0 + 16 * DAY),
    ] {
        let mut body = json!({"deal_id": deal, "email": SHOWCASE, "revenue": "14400.00", "currency": "USD", "closed_at": iso(at)});
        if let Some(s) = stage {
            body["stage"] = json!(s);
        }
        let a = post(worker, site, "conversions", &body)?;
        if !stored(&a) {
            return Err(format!("conversion: {} {}", a.status, a.text));
        }
    }
    out.leads += 1;
    out.customers += 1;
    // weekly spend: Google Ads per campaign, Meta and LinkedIn per campaign, the newsletter
    // tool per source, and display spend recorded per channel only
    let spend: &[(&str, Option<&str>, Option<&str>, i64)] = &[
        ("Paid Search", Some("google"), Some("brand"), 350),
        (
            "Paid Search",
            Some("google"),
            Some("generic-attribution"),
            900,
        ),
        ("Paid Social", Some("facebook"), Some("retargeting"), 420),
        ("Paid Social", Some("linkedin"), Some("abm-q4"), 600),
        ("Email", Some("newsletter"), None, 80),
        ("Display", None, None, 250),
    ];
    for week in 0..WEEKS {
        let first = start + week * 7 * DAY;
        for (channel, source, campaign, amount) in spend {
            let mut body = json!({"amount": format!("{amount}.00"), "currency": "USD",
                "start": &iso(first)[..10], "end": &iso(first + 6 * DAY)[..10], "channel": channel});
            if let Some(s) = source {
                body["source"] = json!(s);
            }
            if let Some(c) = campaign {
                body["campaign"] = json!(c);
            }
            let a = post(worker, site, "spend", &body)?;
            if a.status != 201 {
                return Err(format!("spend {body}: {} {}", a.status, a.text));
            }
            out.spend += 1;
        }
    }
    Ok(out)
}

/// ms since the epoch as RFC 3339 (UTC, seconds).
fn iso(ms: i64) -> String {
    closeloop_core::time::format_rfc3339(ms)
}
