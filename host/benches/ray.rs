//! snakepen on Ray beside plain Ray, in the same run, on the same local
//! cluster (a head and a second node on this machine, started by
//! `tests/ray/cluster.py` and stopped at the end) and the same handler:
//! sequential round trips and throughput at concurrency 16 on 2 actors
//! (snakepen through `Host::call`, with its frames on their straight path
//! and relayed by its driver; the peer through
//! `ray.get(actor.echo.remote(x))` from a Python driver, `bench/peer_ray.py`),
//! the CPU each driver spends per call (from the processes' own counters),
//! and the time until 1, 4 and 8 actors are ready. Writes `bench/RAY.md`.
//! Under `cargo test` it runs a few calls and writes nothing.

mod common;

use common::root;
use serde_json::json;
use snakepen::{Host, PoolConfig, RayConfig, RayFrames, Request};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let (measuring, calls) = common::calls_per_row(1000, 20);
    let python = root().join("target/ray-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `just ray-venv` (`just bench` does)",
        python.display()
    );
    let python = python.display().to_string();
    let mut cluster = Command::new(&python)
        .arg(root().join("tests/ray/cluster.py"))
        .env("RAY_USAGE_STATS_ENABLED", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the cluster script runs");
    let mut first = String::new();
    std::io::BufReader::new(cluster.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let started: serde_json::Value = serde_json::from_str(&first).expect("the cluster started");
    let address = started["address"].as_str().unwrap().to_string();

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ours = tokio.block_on(measure(&python, &address, calls, measuring));
    eprintln!("bench: running the plain-Ray peer");
    let peer = Command::new(&python)
        .arg(root().join("bench/peer_ray.py"))
        .args(["--address", &address, "--calls", &calls.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .expect("the peer runs");
    assert!(peer.status.success(), "the peer failed");
    let peer: serde_json::Value =
        serde_json::from_slice(&peer.stdout).expect("the peer prints JSON");
    drop(cluster.stdin.take());
    let _ = cluster.wait();

    let table = table(&ours, &peer, calls);
    print!("{table}");
    if !measuring {
        eprintln!("bench: a smoke run (cargo test): bench/RAY.md left as it is");
        return;
    }
    let results = root().join("bench/RAY.md");
    std::fs::write(&results, table).expect("bench/RAY.md is writable");
    eprintln!("bench: wrote {}", results.display());
}

struct Ours {
    direct: Calls,
    driver: Calls,
    /// Actors, and the time until all were ready.
    ready: Vec<(usize, Duration)>,
}

/// One path's figures.
struct Calls {
    p50: Duration,
    p99: Duration,
    /// CPU seconds per call of the host and of its driver, sequential.
    sequential_cpu: (f64, f64),
    throughput: f64,
    throughput_cpu: (f64, f64),
}

fn pool(python: &str, address: &str, size: usize, frames: RayFrames) -> PoolConfig {
    let mut pool = PoolConfig::new(root().join("bench/handlers.py").display().to_string());
    pool.size = size;
    pool.python = python.into();
    let mut ray = RayConfig::new(address);
    ray.frames = frames;
    pool.ray = Some(ray);
    pool
}

async fn host(python: &str, address: &str, size: usize, frames: RayFrames) -> Host {
    let host = Host::builder()
        .adapter(root().join("target/plugins/python-bridge.wasm"))
        .pool(pool(python, address, size, frames))
        .build()
        .await
        .unwrap();
    host.ready().await.unwrap();
    host
}

/// User and system CPU seconds of process `pid`, from `/proc`.
fn cpu_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(11) + field(12)) / ticks
}

async fn measure(python: &str, address: &str, calls: usize, measuring: bool) -> Ours {
    let mut ready = Vec::new();
    let sizes: &[usize] = if measuring { &[1, 4, 8] } else { &[1] };
    for &size in sizes {
        let started = Instant::now();
        let h = host(python, address, size, RayFrames::Direct).await;
        ready.push((size, started.elapsed()));
        h.close().await.unwrap();
    }
    Ours {
        direct: measure_calls(python, address, calls, RayFrames::Direct).await,
        driver: measure_calls(python, address, calls, RayFrames::Driver).await,
        ready,
    }
}

async fn measure_calls(python: &str, address: &str, calls: usize, frames: RayFrames) -> Calls {
    eprintln!("bench: snakepen on Ray, frames {frames:?}");
    let h = host(python, address, 2, frames).await;
    let driver = h.pool().unwrap().ray_driver_pid().expect("a driver runs");
    let me = std::process::id();
    let request = || Request::json("echo", &json!({"data": {"text": "x".repeat(80)}}));
    for _ in 0..20 {
        h.call(request()).await.unwrap();
    }
    let (host_before, driver_before) = (cpu_of(me), cpu_of(driver));
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        h.call(request()).await.unwrap();
        times.push(started.elapsed());
    }
    let sequential_cpu = (
        (cpu_of(me) - host_before) / calls as f64,
        (cpu_of(driver) - driver_before) / calls as f64,
    );
    times.sort();

    let (host_before, driver_before) = (cpu_of(me), cpu_of(driver));
    let started = Instant::now();
    let remaining = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(calls));
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let (h, remaining) = (h.clone(), remaining.clone());
            let request = request();
            tokio::spawn(async move {
                while remaining
                    .fetch_update(
                        std::sync::atomic::Ordering::SeqCst,
                        std::sync::atomic::Ordering::SeqCst,
                        |n| n.checked_sub(1),
                    )
                    .is_ok()
                {
                    h.call(request.clone()).await.unwrap();
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    let elapsed = started.elapsed();
    let throughput_cpu = (
        (cpu_of(me) - host_before) / calls as f64,
        (cpu_of(driver) - driver_before) / calls as f64,
    );
    h.close().await.unwrap();
    Calls {
        p50: times[times.len() / 2],
        p99: times[times.len() * 99 / 100],
        sequential_cpu,
        throughput: calls as f64 / elapsed.as_secs_f64(),
        throughput_cpu,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn us(seconds: f64) -> String {
    format!("{:.0} µs", seconds * 1e6)
}

fn table(ours: &Ours, peer: &serde_json::Value, calls: usize) -> String {
    let secs = |key: &str| Duration::from_secs_f64(peer[key].as_f64().unwrap_or(0.0));
    let (peer_p50, peer_p99) = (secs("p50"), secs("p99"));
    let peer_throughput = peer["throughput"].as_f64().unwrap_or(0.0);
    let (direct, driver) = (&ours.direct, &ours.driver);
    let mut text = String::from("# snakepen on Ray beside plain Ray\n\n");
    text.push_str(&common::provenance());
    text.push_str(&format!(
        "- Ray {} on a local cluster of two nodes (this machine); {calls} calls per row; \
         handler `echo` of `bench/handlers.py`, a 100-byte payload; 2 actors\n\
         - snakepen's frames on their straight path (`frames = \"direct\"`, the default: \
         each actor's worker connected to the host) and relayed by its driver as Ray calls \
         (`frames = \"driver\"`)\n\n",
        peer["ray"].as_str().unwrap_or("?")
    ));
    text.push_str(
        "| measure | snakepen, direct | snakepen, through the driver | plain Ray actor call | direct against plain |\n|---|---|---|---|---|\n",
    );
    let added = direct.p50.as_secs_f64() - peer_p50.as_secs_f64();
    text.push_str(&format!(
        "| sequential round trip p50 | {} | {} | {} | {:+.3} ms |\n",
        ms(direct.p50),
        ms(driver.p50),
        ms(peer_p50),
        added * 1e3
    ));
    text.push_str(&format!(
        "| sequential round trip p99 | {} | {} | {} | |\n",
        ms(direct.p99),
        ms(driver.p99),
        ms(peer_p99)
    ));
    text.push_str(&format!(
        "| throughput, concurrency 16 | {:.0} calls/s | {:.0} calls/s | {:.0} calls/s | {:.2}× |\n",
        direct.throughput,
        driver.throughput,
        peer_throughput,
        direct.throughput / peer_throughput.max(1e-9)
    ));
    let cpu = |c: (f64, f64)| format!("host {} + driver {}", us(c.0), us(c.1));
    text.push_str(&format!(
        "| driver CPU per call, sequential | {} | {} | {} | |\n",
        cpu(direct.sequential_cpu),
        cpu(driver.sequential_cpu),
        us(peer["sequential_cpu"].as_f64().unwrap_or(0.0))
    ));
    text.push_str(&format!(
        "| driver CPU per call, concurrency 16 | {} | {} | {} | |\n",
        cpu(direct.throughput_cpu),
        cpu(driver.throughput_cpu),
        us(peer["throughput_cpu"].as_f64().unwrap_or(0.0))
    ));
    text.push_str("\n| actors | until all ready (driver start included) |\n|---|---|\n");
    for (size, elapsed) in &ours.ready {
        text.push_str(&format!("| {size} | {} |\n", ms(*elapsed)));
    }
    text.push_str(
        "\nTargets (issue 18): at most +0.2 ms per call over the plain Ray call, and \
         throughput at least the plain driver's. The CPU figures are the processes' own \
         counters: snakepen's host and its Python driver (the actors' CPU is not counted on \
         either side).\n",
    );
    text
}
