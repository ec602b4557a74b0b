//! Benchmarks: crediting a 50-touch journey under every model, and fitting the data-driven
//! Markov model over 10 000 journeys (10 channel groups, and 200 campaign keys).

use std::hint::black_box;

use closeloop_core::attribution::{credit, Conversion, MarkovModel, Model, Params, TouchRef};
use criterion::{criterion_group, criterion_main, Criterion};

const DAY: i64 = 86_400_000;
const CHANNELS: [&str; 10] = [
    "Organic Search",
    "Paid Search",
    "Email",
    "Direct",
    "Referral",
    "Organic Social",
    "Paid Social",
    "Display",
    "Affiliates",
    "Organic Video",
];

/// A deterministic pseudo-random sequence (xorshift), so runs compare.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn journey_50() -> Vec<TouchRef<'static>> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..50)
        .map(|i| {
            let ch = CHANNELS[(xorshift(&mut s) % CHANNELS.len() as u64) as usize];
            TouchRef {
                at: i * DAY,
                channel: ch,
                direct: ch == "Direct",
            }
        })
        .collect()
}

fn journeys(n: usize) -> Vec<(Vec<&'static str>, bool)> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            let len = 1 + (xorshift(&mut s) % 6) as usize;
            let path = (0..len)
                .map(|_| CHANNELS[(xorshift(&mut s) % CHANNELS.len() as u64) as usize])
                .collect();
            (path, xorshift(&mut s) % 10 < 3)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let touches = journey_50();
    let conv = Conversion::customer(49 * DAY + 1, Some(20 * DAY), Some(35 * DAY));
    let params = Params::default();
    let data = journeys(10_000);
    let markov = MarkovModel::fit(data.iter().map(|(p, conv)| (p.iter().copied(), *conv)));

    let mut group = c.benchmark_group("credit_50_touches");
    for model in Model::ALL {
        group.bench_function(model.as_str(), |b| {
            b.iter(|| {
                credit(
                    black_box(model),
                    black_box(&touches),
                    &conv,
                    &params,
                    Some(&markov),
                )
            })
        });
    }
    group.finish();

    // keyed by campaign instead of channel group: 200 distinct keys
    let keys: Vec<String> = (0..200).map(|i| format!("campaign-{i}")).collect();
    let mut s = 0x1234_5678_9abc_def1u64;
    let many: Vec<(Vec<&str>, bool)> = (0..10_000)
        .map(|_| {
            let len = 1 + (xorshift(&mut s) % 6) as usize;
            let path = (0..len)
                .map(|_| keys[(xorshift(&mut s) % keys.len() as u64) as usize].as_str())
                .collect();
            (path, xorshift(&mut s) % 10 < 3)
        })
        .collect();
    c.bench_function("markov_fit_10k_journeys_200_keys", |b| {
        b.iter(|| {
            MarkovModel::fit(
                black_box(&many)
                    .iter()
                    .map(|(p, cv)| (p.iter().copied(), *cv)),
            )
        })
    });

    c.bench_function("markov_fit_10k_journeys", |b| {
        b.iter(|| {
            MarkovModel::fit(
                black_box(&data)
                    .iter()
                    .map(|(p, cv)| (p.iter().copied(), *cv)),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
