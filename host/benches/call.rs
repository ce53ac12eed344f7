//! The cost of one call through `Host::call` with the mock adapter: a fresh
//! isolated instance, `configure`, `call`, and the drop of the instance.
//!
//! Run with `just bench` (builds the plugins first).

use criterion::{Criterion, criterion_group, criterion_main};
use snakepen::{Host, Request, Runtime};

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

criterion_group!(benches, mock_call);
criterion_main!(benches);
