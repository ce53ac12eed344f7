//! `snakepen run`: a file of requests, run concurrently, then a summary.

use crate::Failure;
use crate::host_flags::HostFlags;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use snakepen::{Request, RuntimeBuilder};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    host: HostFlags,

    /// How many requests are in flight at once (default: 4 per worker).
    #[arg(long, short = 'c', value_name = "N")]
    concurrency: Option<usize>,

    /// Give up on each request after this many milliseconds (default: 30 000, or the line's own).
    #[arg(long, value_name = "MS")]
    deadline_ms: Option<u64>,

    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,

    /// Exit with status 1 when any request failed.
    #[arg(long)]
    fail_on_error: bool,

    /// The requests, one JSON object per line: {"command": "f", "payload": {...}, "session": "s", "deadline_ms": 500}.
    /// `-` reads standard input.
    file: PathBuf,
}

/// One line of the requests file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    command: String,
    #[serde(default)]
    payload: Option<serde_json::Value>,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    deadline_ms: Option<u64>,
}

struct Outcome {
    latency: Duration,
    error: Option<&'static str>,
    worker: Option<u32>,
}

pub(crate) async fn run(
    base: RuntimeBuilder,
    plugin_dirs: &[PathBuf],
    args: RunArgs,
) -> Result<(), Failure> {
    let requests = read_requests(&args)?;
    let host = args.host.build(base, plugin_dirs).await?;
    let workers = host.status().map_or(1, |s| s.size);
    let concurrency = args.concurrency.unwrap_or(4 * workers).max(1);

    let bar = ProgressBar::new(requests.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} calls {per_sec} [{elapsed}]")
            .expect("the template is valid"),
    );
    let started = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    // Requests start in file order, up to the concurrency limit, and those
    // of one session one after another (with --concurrency 1, the whole file
    // runs in order).
    let mut last_of_session: HashMap<String, tokio::sync::oneshot::Receiver<()>> = HashMap::new();
    for request in requests {
        let permit = Arc::clone(&limit)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let before = request
            .session
            .clone()
            .and_then(|session| last_of_session.insert(session, finished));
        let host = host.clone();
        let bar = bar.clone();
        tasks.spawn(async move {
            if let Some(before) = before {
                let _ = before.await; // the session's previous call ended (its sender dropped)
            }
            let began = Instant::now();
            let result = host.call(request).await;
            drop((permit, done));
            bar.inc(1);
            Outcome {
                latency: began.elapsed(),
                error: result.as_ref().err().map(|e| e.kind()),
                worker: result.ok().and_then(|r| r.worker_pid),
            }
        });
    }
    let mut outcomes = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        outcomes.push(outcome.expect("a request task does not panic"));
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let status = host.status();
    crate::close(&host).await?;

    let summary = Summary::of(&outcomes, elapsed, concurrency, status);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("the summary serializes")
        );
    } else {
        print!("{summary}");
    }
    if args.fail_on_error && summary.errors > 0 {
        return Err(Failure::Failed(format!(
            "{} of {} requests failed",
            summary.errors, summary.requests
        )));
    }
    Ok(())
}

fn read_requests(args: &RunArgs) -> Result<Vec<Request>, Failure> {
    let name = args.file.display().to_string();
    let reader: Box<dyn BufRead> = if name == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(&args.file)
            .map_err(|e| Failure::Usage(format!("cannot read the requests file {name}: {e}")))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut requests = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Failure::Usage(format!("cannot read {name}: {e}")))?;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line).map_err(|e| {
            Failure::Usage(format!(
                "{name}:{}: {e}. Each line is a JSON object such as {{\"command\": \"f\", \"payload\": {{\"x\": 1}}}}",
                number + 1
            ))
        })?;
        let mut request = match &parsed.payload {
            Some(payload) => Request::json(parsed.command, payload),
            None => Request::new(parsed.command, Vec::new()),
        };
        request.session = parsed.session;
        request.deadline = parsed
            .deadline_ms
            .or(args.deadline_ms)
            .map(Duration::from_millis);
        requests.push(request);
    }
    if requests.is_empty() {
        return Err(Failure::Usage(format!("{name} holds no requests")));
    }
    Ok(requests)
}

#[derive(serde::Serialize)]
struct Summary {
    requests: usize,
    ok: usize,
    errors: usize,
    errors_by_kind: BTreeMap<&'static str, usize>,
    seconds: f64,
    calls_per_second: f64,
    concurrency: usize,
    latency_ms: Latency,
    calls_per_worker: BTreeMap<u32, usize>,
    pool: Option<snakepen::PoolStatus>,
}

#[derive(serde::Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Summary {
    fn of(
        outcomes: &[Outcome],
        elapsed: Duration,
        concurrency: usize,
        pool: Option<snakepen::PoolStatus>,
    ) -> Summary {
        let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
        latencies.sort();
        let at = |q: f64| {
            let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
            latencies[i].as_secs_f64() * 1e3
        };
        let mut errors_by_kind = BTreeMap::new();
        let mut calls_per_worker = BTreeMap::new();
        for outcome in outcomes {
            if let Some(kind) = outcome.error {
                *errors_by_kind.entry(kind).or_default() += 1;
            }
            if let Some(pid) = outcome.worker {
                *calls_per_worker.entry(pid).or_default() += 1;
            }
        }
        let errors = errors_by_kind.values().sum();
        Summary {
            requests: outcomes.len(),
            ok: outcomes.len() - errors,
            errors,
            errors_by_kind,
            seconds: elapsed.as_secs_f64(),
            calls_per_second: outcomes.len() as f64 / elapsed.as_secs_f64().max(1e-9),
            concurrency,
            latency_ms: Latency {
                p50: at(0.50),
                p90: at(0.90),
                p99: at(0.99),
                max: at(1.0),
            },
            calls_per_worker,
            pool,
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "requests   {} in {:.2} s ({:.0} calls/s) at concurrency {}",
            self.requests, self.seconds, self.calls_per_second, self.concurrency
        )?;
        writeln!(f, "ok         {}", self.ok)?;
        let kinds: Vec<String> = self
            .errors_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        if kinds.is_empty() {
            writeln!(f, "errors     0")?;
        } else {
            writeln!(f, "errors     {} ({})", self.errors, kinds.join(", "))?;
        }
        let l = &self.latency_ms;
        writeln!(
            f,
            "latency    p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            l.p50, l.p90, l.p99, l.max
        )?;
        if !self.calls_per_worker.is_empty() {
            let per: Vec<String> = self
                .calls_per_worker
                .iter()
                .map(|(pid, n)| format!("pid {pid}: {n}"))
                .collect();
            writeln!(f, "per worker {}", per.join(", "))?;
        }
        if let Some(pool) = &self.pool {
            writeln!(f, "pool       {pool}")?;
        }
        Ok(())
    }
}

impl RunArgs {
    /// The host these arguments describe.
    pub(crate) fn host(&self) -> &HostFlags {
        &self.host
    }
}
