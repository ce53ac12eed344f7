//! The cost of one call through `Host::call`: with the mock adapter (a
//! fresh isolated instance, `configure`, `call`, and the drop of the
//! instance), and replayed from the committed cassette beside the same
//! requests run live on Python through the python-bridge adapter.
//!
//! Run with `just bench` (builds the plugins first).

use criterion::{Criterion, criterion_group, criterion_main};
use snakepen::cassette::CassetteFile;
use snakepen::{Affinity, Cassette, Host, PoolConfig, Request, Runtime};
use std::path::PathBuf;

fn mock_call(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::new().unwrap();
    let build = |config: serde_json::Value| {
        tokio
            .block_on(
                Host::builder()
                    .runtime(&runtime)
                    .adapter("mock")
                    .config(config)
                    .build(),
            )
            .expect("the mock adapter is built: run `just plugins`")
    };
    let plain = build(serde_json::json!({}));
    let canned = build(serde_json::json!({
        "responses": (0..50).map(|i| serde_json::json!({
            "command": format!("cmd{i}"), "payload": {"n": i}, "response": {"value": i}
        })).collect::<Vec<_>>(),
        "failures": [{ "command": "never-called", "error": { "kind": "timeout" } }],
    }));
    let request = Request::new("ping", br#"{"x": 1}"#.to_vec());

    let mut group = c.benchmark_group("mock");
    group.bench_function("call, empty config", |b| {
        b.to_async(&tokio).iter(|| plain.call(request.clone()))
    });
    group.bench_function("call, 50 canned responses", |b| {
        b.to_async(&tokio).iter(|| canned.call(request.clone()))
    });
    group.finish();
}

/// Every request of tests/cassettes/demo.jsonl (28 calls of the demo
/// handlers, sessions included), then one small request alone, replayed and live.
fn replay_against_live(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::new().unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cassette = root.join("tests/cassettes/demo.jsonl");
    let requests: Vec<Request> = CassetteFile::read(&cassette)
        .expect("the committed cassette reads")
        .interactions
        .into_iter()
        .map(|i| i.request)
        .collect();
    let small = Request::json(
        "word_stats",
        &serde_json::json!({"text": "the cat and the hat", "top": 2}),
    );

    // Every recording replays again and again.
    let replay = tokio
        .block_on(
            Host::builder()
                .runtime(&runtime)
                .cassette(Cassette::replay(&cassette).allow_repeats(true))
                .build(),
        )
        .expect("the replayer is built: run `just plugins`");
    let mut pool = PoolConfig::new(root.join("examples/handlers.py").display().to_string());
    pool.size = 2;
    pool.settings.affinity = Affinity::Strict;
    let live = tokio
        .block_on(async {
            let host = Host::builder()
                .runtime(&runtime)
                .adapter("python-bridge")
                .pool(pool)
                .build()
                .await?;
            host.ready().await?;
            Ok::<_, snakepen::Error>(host)
        })
        .expect("the python-bridge host starts");

    let mut group = c.benchmark_group("cassette");
    for (name, host) in [("replay", &replay), ("live python", &live)] {
        let mut next = 0;
        group.bench_function(format!("{name}, the demo cassette's requests"), |b| {
            b.to_async(&tokio).iter(|| {
                next = (next + 1) % requests.len();
                host.call(requests[next].clone())
            })
        });
        group.bench_function(format!("{name}, one small request"), |b| {
            b.to_async(&tokio).iter(|| host.call(small.clone()))
        });
    }
    group.finish();
    tokio.block_on(live.close()).unwrap();
}

criterion_group!(benches, mock_call, replay_against_live);
criterion_main!(benches);
