//! Throughput of entry parsing + channel classification (goal: ≥ 2 million referrer URLs
//! per second on one core).
//!
//! Run: `cargo bench -p closeloop-core --bench channels`.

use closeloop_core::channel::classify;
use closeloop_core::entry::parse_entry;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

/// A mix of referrers as a marketing site sees them: search engines (with and without
/// country domains), social networks, video, shopping, unknown referrals, same-site,
/// android-app, missing scheme, empty.
const REFERRERS: &[&str] = &[
    "https://www.google.com/",
    "https://www.google.co.uk/search?q=closeloop",
    "https://www.bing.com/search?q=attribution",
    "https://duckduckgo.com/",
    "https://l.facebook.com/l.php?u=https%3A%2F%2Fexample.com",
    "https://t.co/abc123",
    "https://www.linkedin.com/feed/",
    "https://www.youtube.com/watch?v=x",
    "https://news.ycombinator.com/item?id=1",
    "https://blog.somewhere.io/post/42",
    "https://www.example.com/pricing",
    "android-app://com.google.android.googlequicksearchbox/",
    "google.com/search",
    "",
    "https://www.amazon.de/dp/B0000",
    "https://search.yahoo.com/search?p=x",
];

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Elements(REFERRERS.len() as u64));
    g.bench_function("parse_entry+classify (referrer only)", |b| {
        b.iter(|| {
            for r in REFERRERS {
                let e = parse_entry(
                    black_box("https://www.example.com/landing"),
                    Some(black_box(r)),
                    &["example.com"],
                );
                black_box(classify(&e));
            }
        })
    });
    g.bench_function("parse_entry+classify (tagged landing)", |b| {
        b.iter(|| {
            for r in REFERRERS {
                let e = parse_entry(
                    black_box("https://www.example.com/landing?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale"),
                    Some(black_box(r)),
                    &["example.com"],
                );
                black_box(classify(&e));
            }
        })
    });
    let entries: Vec<_> = REFERRERS
        .iter()
        .map(|r| parse_entry("https://www.example.com/landing", Some(r), &["example.com"]))
        .collect();
    g.bench_function("classify only (pre-parsed entries)", |b| {
        b.iter(|| {
            for e in &entries {
                black_box(classify(black_box(e)));
            }
        })
    });
    g.bench_function("parse_entry only", |b| {
        b.iter(|| {
            for r in REFERRERS {
                black_box(parse_entry(
                    black_box("https://www.example.com/landing"),
                    Some(black_box(r)),
                    &["example.com"],
                ));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
