//! The sandbox's cost and its promise, measured:
//! - how long an adapter stuck in an endless loop runs before its call ends,
//!   for a 100 ms deadline (median and max of 50 runs);
//! - what the epoch checks (the mechanism that stops it) add to a normal
//!   mock call: the same call on a runtime without epoch interruption.
//!
//! Run with `just bench`. Under `cargo test` (no `--bench` argument) it runs
//! a few of each, as a smoke test.

use snakepen::{Host, Request, Runtime, RuntimeBuilder};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (runs, calls) = if measuring { (50, 20_000) } else { (3, 200) };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let plugins = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins");

    let runtime = Runtime::new().unwrap();
    let hostile = tokio
        .block_on(
            Host::builder()
                .runtime(&runtime)
                .adapter(plugins.join("fixtures/hostile.wasm"))
                .build(),
        )
        .expect("the hostile fixture is built: run `just plugins`");
    let mut stops = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let result = tokio.block_on(
            hostile.call(Request::new("spin", Vec::new()).deadline(Duration::from_millis(100))),
        );
        stops.push(started.elapsed());
        assert!(result.is_err(), "an endless loop cannot answer");
    }
    stops.sort();
    println!(
        "endless loop, 100 ms deadline, {runs} runs: call ended after median {:.1} ms, max {:.1} ms",
        ms(stops[runs / 2]),
        ms(stops[runs - 1])
    );

    let mut medians = Vec::new();
    for epochs in [true, false] {
        let runtime = RuntimeBuilder::default()
            .epoch_interruption(epochs)
            .build()
            .unwrap();
        let mock = tokio
            .block_on(
                Host::builder()
                    .runtime(&runtime)
                    .adapter(plugins.join("mock.wasm"))
                    .build(),
            )
            .unwrap();
        let request = Request::new("ping", br#"{"x": 1}"#.to_vec());
        for _ in 0..calls / 10 {
            tokio.block_on(mock.call(request.clone())).unwrap(); // warm up
        }
        let mut times: Vec<Duration> = (0..calls)
            .map(|_| {
                let started = Instant::now();
                tokio.block_on(mock.call(request.clone())).unwrap();
                started.elapsed()
            })
            .collect();
        times.sort();
        let median = times[calls / 2];
        medians.push(median);
        println!(
            "mock call, epoch interruption {}: median {:.1} µs, p99 {:.1} µs ({calls} calls)",
            if epochs { "on " } else { "off" },
            us(median),
            us(times[calls * 99 / 100])
        );
    }
    println!(
        "epoch checks add {:.1} µs ({:+.1}%) to the median mock call",
        us(medians[0]) - us(medians[1]),
        (us(medians[0]) / us(medians[1]) - 1.0) * 100.0
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
