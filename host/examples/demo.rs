//! `just demo`: two hosts side by side in one process, each with its own
//! mock adapter configuration, under concurrent load; then what a user sees
//! when a configuration is wrong.
//!
//! (Once the Python pool lands, this becomes a workload on real Python workers.)

use serde_json::json;
use snakepen::{CallError, Host, Request, Runtime};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const CALLS: usize = 2_000;
const CONCURRENCY: usize = 64;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::new()?;
    let sentiment = Host::builder()
        .runtime(&runtime)
        .adapter("mock")
        .config(json!({
            "latency_ms": 2,
            "responses": [
                { "command": "classify", "payload": { "text": "I love it" }, "response": { "label": "positive", "score": 0.97 } },
                { "command": "classify", "response": { "label": "neutral", "score": 0.51 } },
            ],
            "failures": [{ "command": "classify", "rate": 0.05, "seed": 7,
                           "error": { "kind": "python-exception", "type": "RuntimeError", "message": "CUDA out of memory" } }],
        }))
        .build()
        .await?;
    let search = Host::builder()
        .runtime(&runtime)
        .adapter("mock")
        .config(json!({ "failures": [{ "every": 100, "error": { "kind": "worker-crashed", "pid": 4242 } }] }))
        .build()
        .await?;
    println!(
        "two hosts on one engine, adapter `{}` each, with their own configuration",
        sentiment.adapter_name()
    );

    let started = Instant::now();
    let (a, b) = tokio::join!(
        load(&sentiment, |i| Request::json(
            "classify",
            &json!({ "text": if i % 3 == 0 { "I love it" } else { "meh" } })
        )),
        load(&search, |i| Request::json(
            "search",
            &json!({ "query": format!("q{i}") })
        )
        .session(format!("user-{}", i % 8))),
    );
    let elapsed = started.elapsed();
    report(
        "sentiment (2 ms latency, 5 % seeded failures)",
        &a,
        &sentiment,
    );
    report("search (every 100th call crashes)", &b, &search);
    println!("{} calls in {:.0?} across both hosts", 2 * CALLS, elapsed);

    println!("\na configuration with a typo is refused before any call:");
    let typo = Host::builder()
        .runtime(&runtime)
        .adapter("mock")
        .config(json!({ "latency": 5 }))
        .build()
        .await;
    println!(
        "  {}",
        typo.err().map(|e| e.to_string()).unwrap_or_default()
    );
    Ok(())
}

struct Outcomes {
    by_kind: BTreeMap<&'static str, usize>,
    latencies: Vec<Duration>,
}

/// Runs CALLS requests through `host`, CONCURRENCY at a time.
async fn load(host: &Host, request: impl Fn(usize) -> Request) -> Outcomes {
    let mut outcomes = Outcomes {
        by_kind: BTreeMap::new(),
        latencies: Vec::with_capacity(CALLS),
    };
    let mut in_flight = tokio::task::JoinSet::new();
    for i in 0..CALLS {
        if in_flight.len() == CONCURRENCY {
            record(&mut outcomes, in_flight.join_next().await);
        }
        let (host, request) = (host.clone(), request(i));
        in_flight.spawn(async move {
            let started = Instant::now();
            let result = host.call(request).await;
            (result.map(|_| ()), started.elapsed())
        });
    }
    while let Some(done) = in_flight.join_next().await {
        record(&mut outcomes, Some(done));
    }
    outcomes
}

type Done = Result<(Result<(), CallError>, Duration), tokio::task::JoinError>;

fn record(outcomes: &mut Outcomes, done: Option<Done>) {
    let Some(Ok((result, latency))) = done else {
        return;
    };
    let kind = match result {
        Ok(()) => "ok",
        Err(e) => e.kind(),
    };
    *outcomes.by_kind.entry(kind).or_default() += 1;
    outcomes.latencies.push(latency);
}

fn report(name: &str, outcomes: &Outcomes, host: &Host) {
    let mut latencies = outcomes.latencies.clone();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!("\n{name}");
    println!("  outcomes: {:?}", outcomes.by_kind);
    println!("  latency:  p50 {:.2?}  p99 {:.2?}", at(0.5), at(0.99));
    println!("  counters read back from the host: {:?}", host.counters());
}
