use closeloop_core::{agent, bots};
use std::time::Instant;
fn main() {
    let text = std::fs::read_to_string(std::env::args().nth(1).unwrap()).unwrap();
    let uas: Vec<&str> = text.lines().collect();
    agent::warm();
    for _ in 0..3 {
        let t = Instant::now();
        for u in &uas { std::hint::black_box(bots::check(u)); }
        let a = t.elapsed().as_nanos() as f64 / uas.len() as f64;
        let t = Instant::now();
        for u in &uas { std::hint::black_box(bots::in_app_browser(u)); }
        let b = t.elapsed().as_nanos() as f64 / uas.len() as f64;
        let t = Instant::now();
        for u in &uas { std::hint::black_box(agent::parse(u, &Default::default())); }
        let c = t.elapsed().as_nanos() as f64 / uas.len() as f64;
        let p = woothee::parser::Parser::new();
        let t = Instant::now();
        for u in &uas { std::hint::black_box(p.parse(u)); }
        let d = t.elapsed().as_nanos() as f64 / uas.len() as f64;
        println!("check {a:.0} in_app {b:.0} parse {c:.0} woothee {d:.0}");
    }
}
