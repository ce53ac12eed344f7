//! A local Ray cluster for the tier, and what the tests ask of it.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The interpreter with `ray` the tier runs (its venv is made by `just ray-venv`).
pub fn ray_python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ray-venv/bin/python");
    assert!(
        python.exists(),
        "the Ray tier needs {}: run `just ray-venv` (it makes the venv with pip; Ray needs Python 3.10 or newer), or `just test-ray`",
        python.display()
    );
    python
}

/// A pool of `size` workers of the test module `module`, as actors of
/// the cluster at `address`.
pub fn ray_pool(module: &str, size: usize, address: &str) -> snakepen::PoolConfig {
    let mut pool = snakepen::PoolConfig::new(crate::support::python_module(module));
    pool.size = size;
    pool.python = ray_python();
    pool.ray = Some(snakepen::RayConfig::new(address));
    pool
}

/// A head and a second node on this machine; shut down when dropped, or
/// when the test process ends (its stdin closes).
pub struct LocalCluster {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: BufReader<ChildStdout>,
    pub address: String,
    pub head: String,
    pub worker: String,
}

impl LocalCluster {
    pub fn start() -> LocalCluster {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/ray/cluster.py");
        let mut child = Command::new(ray_python())
            .arg(script)
            .env("RAY_USAGE_STATS_ENABLED", "0")
            // A lost node is noticed in about a second, not half a minute.
            .env("RAY_health_check_initial_delay_ms", "0")
            .env("RAY_health_check_period_ms", "300")
            .env("RAY_health_check_timeout_ms", "300")
            .env("RAY_health_check_failure_threshold", "3")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the cluster script runs");
        let watchdog = crate::support::Watchdog::arm(child.id(), 180);
        let stdin = child.stdin.take();
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        lines.read_line(&mut first).unwrap();
        watchdog.disarm("the local Ray cluster's start");
        let started: serde_json::Value = serde_json::from_str(&first)
            .unwrap_or_else(|e| panic!("the cluster did not start ({e}): {first:?}"));
        LocalCluster {
            child,
            stdin,
            lines,
            address: started["address"].as_str().unwrap().to_string(),
            head: started["head"].as_str().unwrap().to_string(),
            worker: started["worker"].as_str().unwrap().to_string(),
        }
    }

    fn ask(&mut self, command: &str) -> serde_json::Value {
        let stdin = self.stdin.as_mut().expect("the cluster runs");
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.lines.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{command}: {e}: {line:?}"))
    }

    /// Kills the second node's processes at once.
    pub fn kill_worker_node(&mut self) {
        self.ask("kill-worker-node");
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let watchdog = crate::support::Watchdog::arm(self.child.id(), 120);
        let _ = self.child.wait();
        watchdog.disarm("the local Ray cluster's shutdown");
    }
}

/// The cluster the tier's tests share (started by the first that asks;
/// it stops when the test process ends and its stdin closes).
pub fn shared() -> String {
    static SHARED: OnceLock<Mutex<LocalCluster>> = OnceLock::new();
    let cluster = SHARED.get_or_init(|| Mutex::new(LocalCluster::start()));
    cluster
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .address
        .clone()
}

/// How many actors of snakepen's (its `Relay` class) the cluster at
/// `address` holds alive, from Ray's own state (GCS).
pub fn live_relays(address: &str) -> usize {
    let script = "import sys, ray\n\
                  ray.init(address=sys.argv[1], log_to_driver=False, logging_level='ERROR')\n\
                  alive = [a for a in ray._private.state.actors().values()\n\
                           if a['State'] == 'ALIVE' and 'Relay' in a['ActorClassName']]\n\
                  print(len(alive))";
    let ran = crate::support::run(Command::new(ray_python()).args(["-c", script, address]));
    assert!(ran.success(), "{ran:?}");
    ran.stdout.trim().parse().expect("a count")
}
