//! `snakepen serve` beside the stack a Python user would pick instead:
//! uvicorn + Starlette (httptools, uvloop, 2 worker processes) on the same
//! handler module (bench/handlers.py, through bench/peer_http.py), in the
//! same run, driven by wrk from outside both servers, at concurrency 1, 16
//! and 64. Each row has calls/s, p50 and p99 (wrk's), and CPU time per
//! call read from the processes' own counters (`/proc/PID/stat`): the
//! server process and its workers apart. Writes `bench/SERVE.md` with the
//! machine, date and commit.
//!
//! It sets up what it uses: wrk (from Debian's packages, when missing and
//! this runs as root) and a venv under `target/bench-venv` holding the
//! peer's packages (pip). Run with `just bench`; `SNAKEPEN_BENCH_SECONDS`
//! sets the seconds each row is measured (default 8).
//!
//! Under `cargo test` (no `--bench`) it is a smoke run: it starts `snakepen
//! serve` alone, sends a few calls over a plain TCP connection, reads the
//! CPU counters, and writes nothing (neither wrk nor the peer is needed).

#[path = "common/mod.rs"]
mod common;

use common::root;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The request every row sends: `echo` of about a hundred bytes.
const BODY: &str = r#"{"command": "echo", "payload": ["a payload of about a hundred bytes, as a small RPC carries: ids, a few words, flags"]}"#;

/// The peer's packages, pinned so that runs compare.
const PEER_PACKAGES: [&str; 4] = [
    "uvicorn==0.55.0",
    "starlette==1.10.0",
    "httptools==0.9.0",
    "uvloop==0.23.0",
];

const CONCURRENCY: [usize; 3] = [1, 16, 64];

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    if !measuring {
        smoke();
        return;
    }
    let seconds: u64 = std::env::var("SNAKEPEN_BENCH_SECONDS")
        .ok()
        .map(|s| s.parse().expect("SNAKEPEN_BENCH_SECONDS is a number"))
        .unwrap_or(8);
    let wrk = wrk_program();
    let venv = peer_venv();
    let script = root().join("target/bench-post.lua");
    std::fs::write(&script, wrk_script()).expect("target/ is writable");
    let python = common::python();
    let mock = Server::snakepen(
        "snakepen serve, mock adapter (no Python)",
        &["--adapter", "mock"],
    );
    let bridge = Server::snakepen(
        "snakepen serve, python-bridge, 2 workers",
        &[
            "--module",
            "bench/handlers.py",
            "--pool-size",
            "2",
            "--python",
            &python,
        ],
    );
    let peer = Server::uvicorn(&venv);
    // All three serve at once (the two not measured sit idle), and each
    // concurrency is measured on all three back to back: this machine's
    // speed drifts over minutes, and the ratios compare like with like.
    let mut rows = Vec::new();
    for c in CONCURRENCY {
        for server in [&mock, &bridge, &peer] {
            rows.push(server.measure(&wrk, &script, c, seconds));
        }
    }
    // The mock streams nothing unless configured to: Python's generator only.
    let (p50, p99) = sse_first_chunk(bridge.port, 200);
    // The table: each server's rows together, in the order above.
    let order = [mock.label, bridge.label, peer.label];
    drop((mock, bridge, peer));
    rows.sort_by_key(|row| (order.iter().position(|l| *l == row.label), row.concurrency));
    let mut table = table(&rows, seconds);
    writeln!(
        table,
        "\n`POST /v1/stream` of a generator that yields at once (python-bridge, 2 workers), one request at a time on a new connection, from the request sent to its first `event: chunk` read (200 requests): p50 {:.3} ms, p99 {:.3} ms.",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    )
    .unwrap();
    print!("{table}");
    let results = root().join("bench/SERVE.md");
    std::fs::write(&results, table).expect("bench/SERVE.md is writable");
    eprintln!("bench: wrote {}", results.display());
}

/// Time from sending `POST /v1/stream` (on a connection opened before) to
/// reading its first chunk event: (p50, p99) of `n` requests.
fn sse_first_chunk(port: u16, n: usize) -> (Duration, Duration) {
    let body = r#"{"command": "count_up", "payload": [1]}"#;
    let request = format!(
        "POST /v1/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", port)).expect("the server listens");
        stream.set_nodelay(true).unwrap();
        let started = Instant::now();
        stream.write_all(request.as_bytes()).unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let got = stream.read(&mut buf).expect("the server answers");
            assert!(
                got > 0,
                "the stream ended before a chunk: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..got]);
            if seen.windows(12).any(|w| w == b"event: chunk") {
                break;
            }
        }
        times.push(started.elapsed());
    }
    times.sort();
    (times[n / 2], times[n * 99 / 100])
}

/// A server under measurement, stopped when dropped.
struct Server {
    label: &'static str,
    child: Child,
    port: u16,
    /// Whether its handlers run in worker processes of its own (snakepen)
    /// rather than in the server's processes (uvicorn).
    has_workers: bool,
}

impl Server {
    /// `snakepen serve` with `args`, on a port of its choosing, once ready.
    fn snakepen(label: &'static str, args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_snakepen"))
            .current_dir(root())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("snakepen runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("snakepen serve says where it listens")
                .unwrap();
            if let Some(address) = line.split("listening on http://").nth(1) {
                break address.rsplit(':').next().unwrap().trim().parse().unwrap();
            }
        };
        // The rest of its output is not read: drain it so it never blocks.
        std::thread::spawn(move || lines.for_each(drop));
        let server = Server {
            label,
            child,
            port,
            has_workers: true,
        };
        server.until_answering("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        server
    }

    /// uvicorn with 2 workers serving bench/peer_http.py, once it answers.
    fn uvicorn(venv: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(venv.join("bin/uvicorn"))
            .current_dir(root().join("bench"))
            .args(["peer_http:app", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--workers", "2", "--loop", "uvloop", "--http", "httptools"])
            .args(["--log-level", "warning", "--no-access-log"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("uvicorn runs");
        let server = Server {
            label: "uvicorn + Starlette, 2 workers",
            child,
            port,
            has_workers: false,
        };
        server.until_answering(&post(port));
        server
    }

    /// Sends `request` until a 200 comes back (a minute at most).
    fn until_answering(&self, request: &str) {
        let give_up = Instant::now() + Duration::from_secs(60);
        while Instant::now() < give_up {
            if exchange(self.port, request).is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not answer within a minute", self.label);
    }

    /// wrk at `concurrency` for `seconds` (after a warm-up), with the CPU
    /// the server and its workers spent meanwhile.
    fn measure(&self, wrk: &Path, script: &Path, concurrency: usize, seconds: u64) -> Row {
        eprintln!("bench: {}, concurrency {concurrency}", self.label);
        run_wrk(wrk, script, self.port, concurrency, 2);
        let pid = self.child.id();
        let workers = descendants(pid);
        let (host_before, workers_before) = (cpu(&[pid]), cpu(&workers));
        let load = run_wrk(wrk, script, self.port, concurrency, seconds);
        let (host_after, workers_after) = (cpu(&[pid]), cpu(&workers));
        let per_call = |d: Duration| d / load.calls.max(1) as u32;
        let host = per_call(host_after - host_before);
        let others = per_call(workers_after - workers_before);
        // uvicorn's handlers run in the processes that serve HTTP: all of
        // them are its server; snakepen's run in workers, counted apart.
        let (server, workers) = if self.has_workers {
            (host, Some(others))
        } else {
            (host + others, None)
        };
        Row {
            label: self.label,
            concurrency,
            load,
            server,
            workers,
            total: host + others,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM: both servers stop their workers on it.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

struct Row {
    label: &'static str,
    concurrency: usize,
    load: Load,
    /// CPU per call of the server's own process (uvicorn's: its master and
    /// its workers, which run the handlers).
    server: Duration,
    /// CPU per call of its worker processes, when it has any.
    workers: Option<Duration>,
    total: Duration,
}

/// What wrk measured.
struct Load {
    calls: u64,
    rate: f64,
    p50: String,
    p99: String,
}

fn run_wrk(wrk: &Path, script: &Path, port: u16, concurrency: usize, seconds: u64) -> Load {
    let output = Command::new(wrk)
        .args(["-t1", "--latency"])
        .arg(format!("-c{concurrency}"))
        .arg(format!("-d{seconds}s"))
        .arg("-s")
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}/v1/call"))
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed: {text}");
    assert!(
        !text.contains("Non-2xx"),
        "some calls were not answered with 200:\n{text}"
    );
    let field = |line_start: &str, index: usize| -> String {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.split_whitespace().nth(index))
            .unwrap_or_else(|| panic!("no `{line_start}` in wrk's output:\n{text}"))
            .to_string()
    };
    Load {
        calls: field_in(&text, "requests in", 0),
        rate: field("Requests/sec:", 1).parse().unwrap(),
        p50: field("50%", 1),
        p99: field("99%", 1),
    }
}

/// The number `index` words into the line that contains `needle`.
fn field_in(text: &str, needle: &str, index: usize) -> u64 {
    text.lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split_whitespace().nth(index))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{needle}` in wrk's output:\n{text}"))
}

fn wrk_script() -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{BODY}'\n"
    )
}

fn post(port: u16) -> String {
    format!(
        "POST /v1/call HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    )
}

/// One request on a connection of its own: the response's head and body.
fn exchange(port: u16, request: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    let mut buffer = [0; 4096];
    // Read until the body's end: the head, then Content-Length bytes.
    loop {
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|n| body.len() >= n) {
                break;
            }
        }
    }
    Some(String::from_utf8_lossy(&response).into_owned())
}

/// The CPU time (user and system) the processes `pids` spent so far.
fn cpu(pids: &[u32]) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks: u64 = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let fields: Vec<u64> = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            // utime and stime: fields 14 and 15 of stat(5), 12 and 13 after the name.
            Some(fields.get(11)? + fields.get(12)?)
        })
        .sum();
    Duration::from_micros(ticks * 1_000_000 / ticks_per_second)
}

/// Every process below `pid` (children, their children, …).
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((p, ppid))
        })
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// wrk: on PATH, or installed from Debian's packages when this runs as root.
fn wrk_program() -> PathBuf {
    let found = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("wrk"))
                .find(|p| p.is_file())
        })
    };
    if let Some(wrk) = found() {
        return wrk;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("bench: installing wrk (apt-get install wrk)");
        let installed = Command::new("apt-get")
            .args(["install", "-y", "-qq", "wrk"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
            || (Command::new("apt-get")
                .args(["update", "-qq"])
                .status()
                .is_ok_and(|s| s.success())
                && Command::new("apt-get")
                    .args(["install", "-y", "-qq", "wrk"])
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .status()
                    .is_ok_and(|s| s.success()));
        if installed && let Some(wrk) = found() {
            return wrk;
        }
    }
    panic!("the HTTP bench needs wrk, the load generator: sudo apt-get install wrk");
}

/// `target/bench-venv` with the peer's packages, made when missing.
fn peer_venv() -> PathBuf {
    let venv = root().join("target/bench-venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        eprintln!("bench: creating {}", venv.display());
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            made,
            "python3 cannot make a venv: sudo apt-get install python3-venv"
        );
    }
    let ready = Command::new(&python)
        .args(["-c", "import uvicorn, starlette, httptools, uvloop"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        eprintln!(
            "bench: installing the peer's packages: {}",
            PEER_PACKAGES.join(" ")
        );
        let installed = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PEER_PACKAGES)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed,
            "pip could not install the peer: {} -m pip install {}",
            python.display(),
            PEER_PACKAGES.join(" ")
        );
    }
    venv
}

/// Under `cargo test`: the server starts, answers, and its counters read.
fn smoke() {
    let server = Server::snakepen("snakepen serve, mock adapter", &["--adapter", "mock"]);
    let before = cpu(&[server.child.id()]);
    for _ in 0..20 {
        let response = exchange(server.port, &post(server.port)).expect("it answers");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    assert!(cpu(&[server.child.id()]) >= before);
    eprintln!("bench: a smoke run (cargo test): bench/SERVE.md left as it is");
}

fn table(rows: &[Row], seconds: u64) -> String {
    let mut t = String::new();
    writeln!(t, "# snakepen serve beside uvicorn + Starlette\n").unwrap();
    writeln!(
        t,
        "Written by `just bench` (host/benches/serve.rs); do not edit by hand.\n"
    )
    .unwrap();
    t.push_str(&common::provenance());
    writeln!(t, "- seconds per row: {seconds} (after 2 s of warm-up)\n").unwrap();
    writeln!(t, "Every row: `POST /v1/call` of `echo` with a 100-byte payload, from wrk (one thread, `-c` connections) outside both servers, on the same 2 cores. snakepen: `snakepen serve` (release build); its handlers run in Python worker processes (python-bridge) or nowhere (the mock adapter). Peer: uvicorn with 2 worker processes, httptools and uvloop, serving bench/peer_http.py, which calls the same bench/handlers.py in-process. CPU per call is read from `/proc/PID/stat` (user + system) of the server process and of every process below it, divided by the calls wrk counted; for uvicorn, whose handlers run in the processes that serve HTTP, the server column is all of its processes.\n").unwrap();
    writeln!(t, "| server | concurrency | calls/s | p50 | p99 | CPU/call: server process | CPU/call: workers | CPU/call: total | calls/s vs uvicorn |").unwrap();
    writeln!(t, "|---|---|---|---|---|---|---|---|---|").unwrap();
    let us = |d: Duration| format!("{:.1} µs", d.as_secs_f64() * 1e6);
    for row in rows {
        let peer = rows
            .iter()
            .find(|r| r.workers.is_none() && r.concurrency == row.concurrency);
        let ratio = peer.map_or(String::new(), |p| {
            format!("{:.2}×", row.load.rate / p.load.rate)
        });
        writeln!(
            t,
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            row.label,
            row.concurrency,
            row.load.rate,
            row.load.p50,
            row.load.p99,
            us(row.server),
            row.workers.map_or("(in-process)".into(), us),
            us(row.total),
            ratio
        )
        .unwrap();
    }
    t
}
