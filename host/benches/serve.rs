//! `snakepen serve` against `Host::call` on the same host and workload:
//! calls per second and latency percentiles, at concurrency 1 and 16, with
//! the mock adapter (the HTTP layer's own cost, no Python) and with
//! python-bridge on 2 workers. The HTTP side is a real server on loopback
//! and a real client (reqwest, one connection per concurrent caller).
//! Writes `bench/SERVE.md` with the machine, date and commit.
//!
//! Run with `just bench`. `SNAKEPEN_BENCH_CALLS` sets the calls per row
//! (default 4000). Under `cargo test` it runs a few calls as a smoke test and
//! writes nothing.

#[path = "common/mod.rs"]
mod common;

use common::root;
use snakepen::serve::{ServeSettings, Server};
use snakepen::{Host, PoolConfig, Request};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const PAYLOAD: &str =
    r#"["a payload of about a hundred bytes, as a small RPC carries: ids, a few words, flags"]"#;

struct Row {
    adapter: &'static str,
    concurrency: usize,
    direct: Measure,
    http: Measure,
}

struct Measure {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

fn main() {
    let (measuring, calls) = common::calls_per_row(4000, 40);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = tokio.block_on(measure(calls));
    let table = table(&rows, calls);
    print!("{table}");
    if !measuring {
        eprintln!("bench: a smoke run (cargo test): bench/SERVE.md left as it is");
        return;
    }
    let results = root().join("bench/SERVE.md");
    std::fs::write(&results, table).expect("bench/SERVE.md is writable");
    eprintln!("bench: wrote {}", results.display());
}

async fn measure(calls: usize) -> Vec<Row> {
    let mock = Host::builder().adapter("mock").build().await.unwrap();
    let mut pool = PoolConfig::new(root().join("bench/handlers.py").display().to_string());
    pool.size = 2;
    pool.python = common::python().into();
    let python = Host::builder()
        .adapter("python-bridge")
        .pool(pool)
        .build()
        .await
        .expect("run `just plugins` first");
    python.ready().await.unwrap();
    let mut rows = Vec::new();
    for (adapter, command, host) in [
        ("mock", "echo", mock),
        ("python-bridge, 2 workers", "echo", python),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/call", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = Server::new(host.clone(), ServeSettings::default());
        let serving = tokio::spawn(server.run(listener, async {
            let _ = stopped.await;
        }));
        let body: serde_json::Value = serde_json::json!({
            "command": command,
            "payload": serde_json::from_str::<serde_json::Value>(PAYLOAD).unwrap(),
        });
        for concurrency in [1, 16] {
            eprintln!("bench: {adapter}, concurrency {concurrency}");
            let direct = {
                let host = host.clone();
                run(calls, concurrency, move |_| {
                    let host = host.clone();
                    async move {
                        host.call(Request::new(command, PAYLOAD)).await.unwrap();
                    }
                })
                .await
            };
            let clients: Vec<reqwest::Client> =
                (0..concurrency).map(|_| reqwest::Client::new()).collect();
            let clients = Arc::new(clients);
            let http = {
                let url = url.clone();
                let body = Arc::new(body.clone());
                run(calls, concurrency, move |caller| {
                    let (clients, url, body) = (clients.clone(), url.clone(), body.clone());
                    async move {
                        let response = clients[caller]
                            .post(&url)
                            .json(&*body)
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(response.status(), 200);
                        response.bytes().await.unwrap();
                    }
                })
                .await
            };
            rows.push(Row {
                adapter,
                concurrency,
                direct,
                http,
            });
        }
        let _ = stop.send(());
        serving.await.unwrap().unwrap();
    }
    rows
}

/// Runs `total` calls from `concurrency` callers (caller `i` runs `call(i)`):
/// the rate and the latency percentiles.
async fn run<F, Fut>(total: usize, concurrency: usize, call: F) -> Measure
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    // Warm up: connections open, instances pooled.
    for caller in 0..concurrency {
        call(caller).await;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let callers: Vec<_> = (0..concurrency)
        .map(|caller| {
            let (next, call) = (next.clone(), call.clone());
            tokio::spawn(async move {
                let mut times = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let t = Instant::now();
                    call(caller).await;
                    times.push(t.elapsed());
                }
                times
            })
        })
        .collect();
    let mut times = Vec::with_capacity(total);
    for caller in callers {
        times.extend(caller.await.unwrap());
    }
    let elapsed = started.elapsed();
    times.sort();
    Measure {
        rate: total as f64 / elapsed.as_secs_f64(),
        p50: times[times.len() / 2],
        p99: times[times.len() * 99 / 100],
    }
}

fn table(rows: &[Row], calls: usize) -> String {
    let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
    let mut t = String::new();
    writeln!(t, "# snakepen serve: HTTP against Host::call\n").unwrap();
    writeln!(
        t,
        "Written by `just bench` (host/benches/serve.rs); do not edit by hand.\n"
    )
    .unwrap();
    writeln!(
        t,
        "{}- calls per row: {calls}, payload {} bytes\n",
        common::provenance(),
        PAYLOAD.len()
    )
    .unwrap();
    writeln!(t, "direct: `Host::call` in the same process. HTTP: `POST /v1/call` to `snakepen serve`'s router on loopback, from reqwest (one connection per caller), client and server in one process on the same cores.\n").unwrap();
    writeln!(t, "| adapter | concurrency | direct calls/s | HTTP calls/s | direct p50 / p99 | HTTP p50 / p99 |\n|---|---|---|---|---|---|").unwrap();
    for row in rows {
        writeln!(
            t,
            "| {} | {} | {:.0} | {:.0} ({:.0} %) | {} / {} | {} / {} |",
            row.adapter,
            row.concurrency,
            row.direct.rate,
            row.http.rate,
            100.0 * row.http.rate / row.direct.rate,
            ms(row.direct.p50),
            ms(row.direct.p99),
            ms(row.http.p50),
            ms(row.http.p99)
        )
        .unwrap();
    }
    t
}
