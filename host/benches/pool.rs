//! The pool, measured beside a plain-Python peer (`bench/peer.py`,
//! `concurrent.futures.ProcessPoolExecutor`) in the same run, on the same
//! handlers (`bench/handlers.py`) and payloads. Prints a table with the
//! ratios and writes it to `bench/RESULTS.md` with the machine, date and commit.
//!
//! Run with `just bench`. `SNAKEPEN_BENCH_CALLS` sets the calls per row (default 2000).
//! Under `cargo test` (no `--bench` argument) it runs each row with a few
//! calls as a smoke test, and writes nothing.

#[path = "common/mod.rs"]
mod common;

use common::root;
use snakepen::{Host, PoolConfig, Request, Runtime};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

const PAYLOADS: [(&str, usize); 3] = [("100B", 100), ("10KB", 10_000), ("1MB", 1_000_000)];

fn main() {
    let (measuring, calls) = common::calls_per_row(2000, 20);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ours = tokio.block_on(measure(calls));
    eprintln!("bench: running the plain-Python peer");
    let peer = peer(calls);
    let table = table(&ours, &peer, calls);
    print!("{table}");
    if !measuring {
        eprintln!("bench: a smoke run (cargo test): bench/RESULTS.md left as it is");
        return;
    }
    let results = root().join("bench/RESULTS.md");
    std::fs::write(&results, table).expect("bench/RESULTS.md is writable");
    eprintln!("bench: wrote {}", results.display());
}

struct Ours {
    /// Workers, time until ready started one by one, and forked from a fork server.
    ready: Vec<(usize, Duration, Duration)>,
    round_trip: Vec<(&'static str, Duration, Duration)>,
    pool_round_trip: (Duration, Duration),
    throughput: Vec<(usize, f64)>,
    /// Calls that need no Python: the mock, and the replayer on the demo cassette.
    floor: Vec<(&'static str, Duration, Duration)>,
    /// One-shot `snakepen call` processes, and a bare interpreter start beside them.
    one_shot: Vec<(&'static str, Duration)>,
    /// I/O-bound calls on 2 workers of 100 calls each: wall time, and the
    /// workers' memory (RSS, PSS summed).
    io_bound: IoBound,
    streams: Streams,
}

/// I/O-bound calls: how many, how many at a time, the wall time of all of
/// them, and the workers' memory (RSS, PSS summed) once they ran.
struct IoBound {
    calls: usize,
    concurrency: usize,
    elapsed: Duration,
    rss: u64,
    pss: u64,
    /// This process's resident memory before and after (the host's adapter instances).
    host_rss: (u64, u64),
}

/// Streamed calls through `Host::call_stream`: time to the first chunk of a
/// generator that yields at once (p50, p99), and chunks per second of one
/// that yields small values as fast as it can.
struct Streams {
    first_chunk: (Duration, Duration),
    chunks_per_second: f64,
    chunks: usize,
}

async fn measure(calls: usize) -> Ours {
    let runtime = Runtime::new().unwrap();
    let module = root().join("bench/handlers.py").display().to_string();
    // A venv of the interpreter the peer runs, without orjson, so that JSON
    // is the standard library's whatever the machine's interpreter has; a
    // pyenv shim in front of an interpreter would cost ~170 ms per pool,
    // which is pyenv's time, not the pool's.
    let python = common::venv_python("plain-venv");
    let host_on = |size: usize, fork_server: bool, python: String| {
        let runtime = runtime.clone();
        let module = module.clone();
        async move {
            let mut pool = PoolConfig::new(module);
            pool.size = size;
            pool.python = python.into();
            pool.settings.fork_server = fork_server;
            Host::builder()
                .runtime(&runtime)
                .adapter("python-bridge")
                .pool(pool)
                .build()
                .await
                .expect("run `just plugins` first")
        }
    };
    let forking_host = |size: usize, fork_server: bool| host_on(size, fork_server, python.clone());
    // Every other row runs the default pool, which forks its workers.
    let host = |size: usize| forking_host(size, true);
    // Warm the compiled-adapter cache so that the ready rows time the workers only.
    host(1).await.ready().await.unwrap();

    let mut ready = Vec::new();
    for n in [1, 4, 8] {
        eprintln!("bench: time until {n} workers are ready");
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let h = forking_host(n, false).await;
            h.ready().await.unwrap();
            times.push(started.elapsed());
            h.close().await.unwrap();
        }
        let plain = median(&mut times);
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let h = forking_host(n, true).await;
            h.ready().await.unwrap();
            times.push(started.elapsed());
            h.close().await.unwrap();
        }
        ready.push((n, plain, median(&mut times)));
    }

    let h = host(1).await;
    h.ready().await.unwrap();
    let mut round_trip = Vec::new();
    for (name, size) in PAYLOADS {
        eprintln!("bench: sequential round trips, {name}");
        let payload = serde_json::to_vec(&serde_json::json!(["x".repeat(size)])).unwrap();
        let n = if size < 1_000_000 {
            calls
        } else {
            (calls / 20).max(50)
        };
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            h.call(Request::new("echo", payload.clone())).await.unwrap();
            times.push(started.elapsed());
        }
        times.sort();
        round_trip.push((name, times[n / 2], times[n * 99 / 100]));
    }
    eprintln!("bench: sequential round trips, 1MB of bytes (a bytes handler)");
    let n = (calls / 20).max(50);
    let bytes = vec![b'x'; 1_000_000];
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        h.call(Request::new("echo_bytes", bytes.clone()))
            .await
            .unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    round_trip.push(("1MB bytes", times[n / 2], times[n * 99 / 100]));
    eprintln!("bench: sequential round trips, 1MB of JSON written by orjson");
    let with_orjson = host_on(1, true, common::venv_python("orjson-venv")).await;
    with_orjson.ready().await.unwrap();
    let payload = serde_json::to_vec(&serde_json::json!(["x".repeat(1_000_000)])).unwrap();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        with_orjson
            .call(Request::new("echo", payload.clone()))
            .await
            .unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    round_trip.push(("1MB, orjson", times[n / 2], times[n * 99 / 100]));
    with_orjson.close().await.unwrap();
    // The same 100 B call straight into the pool, without the adapter: its share of the cost.
    let pool = h.pool().unwrap();
    let payload = serde_json::to_vec(&serde_json::json!(["x".repeat(100)])).unwrap();
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(30);
        pool.call("echo", None, payload.clone(), deadline)
            .await
            .unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    let pool_round_trip = (times[calls / 2], times[calls * 99 / 100]);
    h.close().await.unwrap();

    let h = host(2).await;
    h.ready().await.unwrap();
    let mut throughput = Vec::new();
    for concurrency in [1, 16, 64] {
        eprintln!("bench: throughput, 2 workers, concurrency {concurrency}");
        let total = calls * 2;
        let started = Instant::now();
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let h = h.clone();
                let next = next.clone();
                tokio::spawn(async move {
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                        h.call(Request::new("nothing", Vec::new())).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        throughput.push((concurrency, total as f64 / started.elapsed().as_secs_f64()));
    }
    h.close().await.unwrap();

    let io_bound = io_bound(&module, &python, calls).await;
    let streams = streams(host(1).await, calls).await;

    eprintln!("bench: calls without Python workers (mock, replayer, a Python adapter)");
    let mock = Host::builder()
        .runtime(&runtime)
        .adapter("mock")
        .build()
        .await
        .unwrap();
    let cassette = root().join("tests/cassettes/demo.jsonl");
    let replayed: Vec<Request> = snakepen::cassette::CassetteFile::read(&cassette)
        .unwrap()
        .interactions
        .into_iter()
        .map(|i| i.request)
        .collect();
    let replayer = Host::builder()
        .runtime(&runtime)
        .cassette(snakepen::Cassette::replay(&cassette).allow_repeats(true))
        .build()
        .await
        .unwrap();
    // An adapter written in Python (componentize-py), beside the Rust mock.
    let python_adapter = Host::builder()
        .runtime(&runtime)
        .adapter(root().join("target/plugins/fixtures/python-adapter.wasm"))
        .build()
        .await
        .expect("the Python adapter is built: run `just plugins`");
    let mut floor = Vec::new();
    for (name, host, requests) in [
        (
            "mock call (100 B)",
            &mock,
            vec![Request::new("echo", payload.clone())],
        ),
        (
            "replayer call (the demo cassette's requests)",
            &replayer,
            replayed,
        ),
        (
            "componentize-py adapter call (echo 100 B)",
            &python_adapter,
            vec![Request::new("echo", payload.clone())],
        ),
    ] {
        let mut times = Vec::with_capacity(calls);
        for i in 0..calls {
            let started = Instant::now();
            // Recorded errors replay as errors: both count.
            let _ = host.call(requests[i % requests.len()].clone()).await;
            times.push(started.elapsed());
        }
        times.sort();
        floor.push((name, times[calls / 2], times[calls * 99 / 100]));
    }
    let one_shot = one_shot(&module, if calls > 100 { 15 } else { 2 });
    Ours {
        ready,
        round_trip,
        pool_round_trip,
        throughput,
        floor,
        one_shot,
        io_bound,
        streams,
    }
}

async fn streams(h: Host, calls: usize) -> Streams {
    use snakepen::StreamItem;
    eprintln!("bench: streamed calls (time to first chunk, chunks per second)");
    h.ready().await.unwrap();
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        let mut stream = h.call_stream(Request::new("count_up", "[1]"));
        match stream.next().await {
            Some(Ok(StreamItem::Chunk(_))) => times.push(started.elapsed()),
            other => panic!("expected a chunk, got {other:?}"),
        }
        while stream.next().await.is_some() {}
    }
    times.sort();
    let first_chunk = (times[calls / 2], times[calls * 99 / 100]);
    let chunks = if calls > 100 { 200_000 } else { 1_000 };
    let started = Instant::now();
    let mut stream = h.call_stream(Request::new("count_up", format!("[{chunks}]")));
    let mut seen = 0;
    while let Some(item) = stream.next().await {
        if let StreamItem::Chunk(_) = item.unwrap() {
            seen += 1;
        }
    }
    assert_eq!(seen, chunks);
    let chunks_per_second = chunks as f64 / started.elapsed().as_secs_f64();
    h.close().await.unwrap();
    Streams {
        first_chunk,
        chunks_per_second,
        chunks,
    }
}

/// Calls that wait on I/O (an awaited 50 ms timer), 200 at a time, on 2
/// workers that hold 100 calls each: the wall time of all of them, and
/// the workers' memory once they ran (RSS and PSS summed).
async fn io_bound(module: &str, python: &str, calls: usize) -> IoBound {
    let (total, concurrency) = if calls > 100 { (1000, 200) } else { (20, 4) };
    eprintln!("bench: {total} I/O-bound calls, {concurrency} at a time, 2 workers of 100");
    let mut pool = PoolConfig::new(module);
    pool.size = 2;
    pool.max_concurrency = 100;
    pool.python = python.into();
    // A host of its own runtime, which makes room for every call the pool
    // can hold (the shared one holds 64 adapter instances).
    let h = Host::builder()
        .adapter("python-bridge")
        .pool(pool)
        .build()
        .await
        .unwrap();
    h.ready().await.unwrap();
    let host_before = own_rss();
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move {
                for _ in 0..total / concurrency {
                    h.call(Request::new("wait_async", "[50]")).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let (mut rss, mut pss) = (0, 0);
    for pid in h.pool().unwrap().worker_pids() {
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
        for line in rollup.lines() {
            let kib = |l: &str| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024;
            if line.starts_with("Rss:") {
                rss += kib(line);
            } else if line.starts_with("Pss:") {
                pss += kib(line);
            }
        }
    }
    let host_rss = (host_before, own_rss());
    h.close().await.unwrap();
    IoBound {
        calls: total,
        concurrency,
        elapsed,
        rss,
        pss,
        host_rss,
    }
}

/// This process's resident memory, in bytes.
fn own_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Medians of `runs` one-shot `snakepen call` processes (start to exit) on
/// each interpreter, and of a bare `python -I -c pass` on it: the floor
/// that no pool started from nothing can go under.
fn one_shot(module: &str, runs: usize) -> Vec<(&'static str, Duration)> {
    eprintln!("bench: one-shot `snakepen call`");
    let median_of = |command: &mut std::process::Command| {
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let started = Instant::now();
                let status = command
                    .stdout(std::process::Stdio::null())
                    .status()
                    .unwrap();
                assert!(status.success(), "{command:?} failed");
                started.elapsed()
            })
            .collect();
        median(&mut times)
    };
    let mut rows = Vec::new();
    for (venv, call, bare) in [
        (
            "plain-venv",
            "one-shot `snakepen call` (standard-library JSON)",
            "bare `python -I -c pass`, the same interpreter",
        ),
        (
            "orjson-venv",
            "one-shot `snakepen call` (an interpreter with orjson, imported at start)",
            "bare `python -I -c pass`, the interpreter with orjson",
        ),
    ] {
        let python = common::venv_python(venv);
        let called = median_of(
            std::process::Command::new(env!("CARGO_BIN_EXE_snakepen"))
                .args(["call", "--python", &python, "--module", module])
                .args(["echo", r#"["x"]"#]),
        );
        let started = median_of(std::process::Command::new(&python).args(["-I", "-c", "pass"]));
        rows.push((call, called));
        rows.push((bare, started));
    }
    rows
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn peer(calls: usize) -> serde_json::Value {
    let output = std::process::Command::new("python3")
        .arg(root().join("bench/peer.py"))
        .args(["--calls", &calls.to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the peer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the peer prints JSON")
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn secs(v: &serde_json::Value) -> Duration {
    Duration::from_secs_f64(v.as_f64().unwrap())
}

/// How many times faster snakepen is (below 1: slower).
fn ratio(peer: Duration, ours: Duration) -> String {
    format!("{:.2}×", peer.as_secs_f64() / ours.as_secs_f64())
}

fn table(ours: &Ours, peer: &serde_json::Value, calls: usize) -> String {
    let mut t = String::new();
    writeln!(t, "# snakepen benchmark results\n").unwrap();
    writeln!(
        t,
        "Written by `just bench` (host/benches/pool.rs); do not edit by hand.\n"
    )
    .unwrap();
    writeln!(
        t,
        "{}- Python: {}\n- calls per row: {calls}\n",
        common::provenance(),
        peer["python"].as_str().unwrap_or("?")
    )
    .unwrap();
    writeln!(
        t,
        "snakepen: python-bridge adapter (WASM) → pool → worker, through `Host::call`."
    )
    .unwrap();
    writeln!(
        t,
        "peer: `concurrent.futures.ProcessPoolExecutor` on the same handlers (bench/peer.py)."
    )
    .unwrap();
    writeln!(
        t,
        "ratio: peer time / snakepen time (above 1: snakepen is faster).\n"
    )
    .unwrap();
    writeln!(
        t,
        "| measure | snakepen | peer | ratio |\n|---|---|---|---|"
    )
    .unwrap();
    for (n, d, forked) in &ours.ready {
        let p = secs(&peer["ready_s"][n.to_string()]);
        writeln!(
            t,
            "| time until {n} workers ready, no fork server (median of 5) | {} | {} | {} |",
            ms(*d),
            ms(p),
            ratio(p, *d)
        )
        .unwrap();
        writeln!(
            t,
            "| time until {n} workers ready, fork server (the default; median of 5) | {} | {} | {} |",
            ms(*forked),
            ms(p),
            ratio(p, *forked)
        )
        .unwrap();
    }
    for (name, p50, p99) in &ours.round_trip {
        // The peer pickles: orjson or not is the same call to it.
        let pv = &peer["round_trip_s"][name.trim_end_matches(", orjson")];
        let (pp50, pp99) = (secs(&pv[0]), secs(&pv[1]));
        writeln!(
            t,
            "| sequential round trip {name}, p50 | {} | {} | {} |",
            ms(*p50),
            ms(pp50),
            ratio(pp50, *p50)
        )
        .unwrap();
        writeln!(
            t,
            "| sequential round trip {name}, p99 | {} | {} | {} |",
            ms(*p99),
            ms(pp99),
            ratio(pp99, *p99)
        )
        .unwrap();
    }
    let (p50, p99) = ours.pool_round_trip;
    writeln!(
        t,
        "| same 100B call on `Pool::call` (no adapter), p50 / p99 | {} / {} | | |",
        ms(p50),
        ms(p99)
    )
    .unwrap();
    for (c, ours_rate) in &ours.throughput {
        let p = peer["throughput"][c.to_string()].as_f64().unwrap();
        writeln!(t, "| throughput, 2 workers, concurrency {c} | {ours_rate:.0} calls/s | {p:.0} calls/s | {:.2}× |", ours_rate / p).unwrap();
    }
    for (name, p50, p99) in &ours.floor {
        writeln!(
            t,
            "| {name}, no Python worker, p50 / p99 | {} / {} | | |",
            ms(*p50),
            ms(*p99)
        )
        .unwrap();
    }
    let IoBound {
        calls,
        concurrency,
        elapsed,
        rss,
        pss,
        host_rss,
    } = ours.io_bound;
    let mib = |b: u64| format!("{:.0} MiB", b as f64 / (1 << 20) as f64);
    let ideal = calls as f64 * 0.050 / concurrency as f64;
    writeln!(
        t,
        "| {calls} I/O-bound calls (each awaits 50 ms), {concurrency} at a time: wall time (ideal {ideal:.2} s) | {:.3} s, 2 workers × max_concurrency 100 ({:.2}× the ideal) | | |",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() / ideal
    )
    .unwrap();
    writeln!(
        t,
        "| the same: workers' memory, RSS / PSS summed | {} / {} | | |",
        mib(rss),
        mib(pss)
    )
    .unwrap();
    writeln!(
        t,
        "| the same: the host's memory (the bench's own RSS, before / after: each call waits in an adapter instance) | {} / {} | | |",
        mib(host_rss.0),
        mib(host_rss.1)
    )
    .unwrap();
    for peer_run in peer["io_bound"].as_array().into_iter().flatten() {
        let workers = peer_run["workers"].as_u64().unwrap();
        let seconds = peer_run["seconds"].as_f64().unwrap();
        let (prss, ppss) = (
            peer_run["rss"].as_u64().unwrap(),
            peer_run["pss"].as_u64().unwrap(),
        );
        writeln!(
            t,
            "| the same on `ProcessPoolExecutor({workers})` (a plain function that sleeps): wall time; memory RSS / PSS | {:.3} s; {} / {} | {seconds:.3} s; {} / {} | {:.2}× time; {:.1}× less RSS |",
            elapsed.as_secs_f64(),
            mib(rss),
            mib(pss),
            mib(prss),
            mib(ppss),
            seconds / elapsed.as_secs_f64(),
            prss as f64 / rss as f64
        )
        .unwrap();
    }
    let Streams {
        first_chunk,
        chunks_per_second,
        chunks,
    } = &ours.streams;
    writeln!(
        t,
        "| streamed call (`Host::call_stream`), time to the first chunk of a generator that yields at once, p50 / p99 | {} / {} | | |",
        ms(first_chunk.0),
        ms(first_chunk.1)
    )
    .unwrap();
    writeln!(
        t,
        "| streamed call, small chunks (ints) of one generator, {chunks} of them | {chunks_per_second:.0} chunks/s | | |"
    )
    .unwrap();
    for (name, median) in &ours.one_shot {
        writeln!(
            t,
            "| {name}, process start to exit (median) | {} | | |",
            ms(*median)
        )
        .unwrap();
    }
    writeln!(t, "\nRows of a size alone carry JSON written by the standard library (the workers run on target/plain-venv); \"1MB, orjson\" the same call on target/orjson-venv, whose interpreter has orjson; \"1MB bytes\" a handler that takes and returns bytes, with no JSON at all.").unwrap();
    writeln!(t, "\nThe peer's workers are forked from an interpreter that has already imported everything; snakepen (by default) forks its workers from one fresh, isolated interpreter (`python -I`) that imported the module once, or without the fork server starts each worker as such an interpreter. Every row but the ready times runs the default pool.").unwrap();
    t
}
