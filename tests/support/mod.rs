//! What every test tier needs: where the plugins are, a host in one line,
//! the pid of the worker that serves a call, and a run of the `snakepen`
//! binary as text.
#![allow(dead_code)]

pub mod log;
pub mod served;

use snakepen::{CallError, Host, Request, Runtime};
use std::path::PathBuf;
use std::process::Command;

/// `target/plugins`, where `just plugins` puts every component.
pub fn plugins_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins")
}

/// A bundled adapter's component file, such as `mock`.
pub fn plugin(name: &str) -> PathBuf {
    let path = plugins_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `just plugins` (or `just test`)",
        path.display()
    );
    path
}

/// A test fixture component from plugins/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    plugin(&format!("fixtures/{name}"))
}

/// A host running the mock adapter with `config`.
pub async fn mock(config: serde_json::Value) -> Host {
    Host::builder()
        .adapter(plugin("mock"))
        .config(config)
        .build()
        .await
        .expect("the mock accepts this configuration")
}

/// A host running the mock with `config` on a shared runtime.
pub async fn mock_on(runtime: &Runtime, config: serde_json::Value) -> Host {
    Host::builder()
        .runtime(runtime)
        .adapter(plugin("mock"))
        .config(config)
        .build()
        .await
        .expect("the mock accepts this configuration")
}

/// A test Python module from tests/python, such as `handlers`.
pub fn python_module(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python");
    let dir = dir.canonicalize().expect("tests/python exists");
    dir.join(format!("{name}.py")).display().to_string()
}

/// A host running the python-bridge adapter on `size` workers of the test
/// module `module`, with `tune` applied to the pool's settings. Not yet ready.
pub async fn python_host(
    module: &str,
    size: usize,
    tune: impl FnOnce(&mut snakepen::PoolSettings),
) -> Host {
    let mut pool = snakepen::PoolConfig::new(python_module(module));
    pool.size = size;
    tune(&mut pool.settings);
    bridge(pool).await
}

/// A host running the python-bridge adapter on `pool`. Not yet ready.
pub async fn bridge(pool: snakepen::PoolConfig) -> Host {
    bridge_with(serde_json::json!({}), pool)
        .await
        .expect("the python-bridge host builds")
}

/// A host running the python-bridge adapter with `config` (its policy:
/// per-command timeouts and retries) on `pool`, or why it did not build.
/// Not yet ready.
pub async fn bridge_with(
    config: serde_json::Value,
    pool: snakepen::PoolConfig,
) -> Result<Host, snakepen::Error> {
    Host::builder()
        .adapter(plugin("python-bridge"))
        .config(config)
        .pool(pool)
        .build()
        .await
}

/// The pid of the worker that serves a `pid` call (the test modules
/// `handlers` and `inputs` define one), as the worker itself reports it.
pub async fn pid_of(host: &Host) -> u32 {
    let answer = within(30, host.call(Request::new("pid", Vec::new())))
        .await
        .expect("the worker answers `pid`");
    answer.json().unwrap().as_u64().unwrap() as u32
}

/// The pid of the worker that serves a `pid` call in `session`, as the
/// pool reports it, or the call's error.
pub async fn pid_in(host: &Host, session: &str) -> Result<u32, CallError> {
    within(
        30,
        host.call(Request::new("pid", Vec::new()).session(session)),
    )
    .await
    .map(|r| r.worker_pid.expect("a worker served the call"))
}

/// A ready host of `size` workers serving tests/python/handlers.py.
pub async fn handlers(size: usize) -> Host {
    let host = python_host("handlers", size, |_| {}).await;
    within(60, host.ready()).await.expect("the workers start");
    host
}

/// Awaits `future`, failing the test if it hangs for `seconds`: a bound on
/// hangs only, never a performance assertion.
pub async fn within<F: std::future::Future>(seconds: u64, future: F) -> F::Output {
    tokio::time::timeout(std::time::Duration::from_secs(seconds), future)
        .await
        .unwrap_or_else(|_| panic!("did not finish within {seconds} s"))
}

/// Whether the main thread of `pid` is in the `clock_nanosleep` system call
/// (libc's `sleep`; a Python handler in `time.sleep` or one that holds the
/// GIL in C waits there).
pub fn sleeping_in_c(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/syscall"))
        .is_ok_and(|s| s.split_whitespace().next() == Some(&libc::SYS_clock_nanosleep.to_string()))
}

/// Whether a process is still running (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Sends SIGKILL to a process.
pub fn kill9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -9 {pid} failed");
}

/// Waits until the pool's status satisfies `ok` (checked at every change).
pub async fn status_until(
    host: &Host,
    ok: impl Fn(&snakepen::PoolStatus) -> bool,
) -> snakepen::PoolStatus {
    let pool = host.pool().expect("the host has a pool");
    within(30, async {
        loop {
            let mut changes = pool.subscribe();
            let status = pool.status();
            if ok(&status) {
                return status;
            }
            let _ = changes.changed().await;
        }
    })
    .await
}

/// Waits (up to 30 s) until none of `pids` runs. A process that is not our
/// child gives no event to await, so this looks every few milliseconds.
pub async fn until_dead(pids: &[u32]) {
    within(30, async {
        while pids.iter().any(|&pid| alive(pid)) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Starts `request` on `host` in a task of its own; await the handle for the result.
pub fn spawn_call(
    host: &Host,
    request: snakepen::Request,
) -> tokio::task::JoinHandle<Result<snakepen::Response, snakepen::CallError>> {
    let host = host.clone();
    tokio::spawn(async move { host.call(request).await })
}

/// A program that ran to its end: its exit code (`None` when a signal
/// ended it) and its output as text.
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl From<std::process::Output> for Ran {
    fn from(output: std::process::Output) -> Ran {
        Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs `command` to its end, its output captured. A program still
/// running after 120 s (a hang, never a measure of speed) is killed and
/// fails the test.
pub fn run(command: &mut Command) -> Ran {
    run_within(command, 120)
}

/// [`run`] with a bound of `seconds` on a hang.
pub fn run_within(command: &mut Command, seconds: u64) -> Ran {
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} does not run: {e}"));
    let watchdog = Watchdog::arm(child.id(), seconds);
    let output = child.wait_with_output().expect("its output is read");
    watchdog.disarm(&format!("{command:?}"));
    output.into()
}

/// Waits for `child` to exit; one still running after `seconds` (a hang)
/// is killed and fails the test.
pub fn wait_within(child: &mut std::process::Child, seconds: u64) -> std::process::ExitStatus {
    let watchdog = Watchdog::arm(child.id(), seconds);
    let status = child.wait().expect("the child is waited for");
    watchdog.disarm(&format!("process {}", child.id()));
    status
}

/// Kills a process that outlives its bound (SIGKILL from a thread that
/// waits for the bound or for [`Watchdog::disarm`], whichever comes first).
pub struct Watchdog {
    disarm: std::sync::mpsc::Sender<()>,
    fired: std::thread::JoinHandle<bool>,
    seconds: u64,
}

impl Watchdog {
    pub fn arm(pid: u32, seconds: u64) -> Watchdog {
        let (disarm, disarmed) = std::sync::mpsc::channel::<()>();
        let fired = std::thread::spawn(move || {
            let bound = std::time::Duration::from_secs(seconds);
            match disarmed.recv_timeout(bound) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    // SAFETY: kill has no memory effects; the pid is a child
                    // not yet waited for, so it cannot have been reused.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                    true
                }
                _ => false,
            }
        });
        Watchdog {
            disarm,
            fired,
            seconds,
        }
    }

    /// Stops the watch; panics, naming `what`, when it had to kill.
    pub fn disarm(self, what: &str) {
        let _ = self.disarm.send(());
        if self.fired.join().expect("the watchdog thread ends") {
            panic!(
                "{what} was still running after {} s and was killed",
                self.seconds
            );
        }
    }
}

/// The `snakepen` binary with the test plugins directory, to be given its
/// arguments (and, where a test needs them, limits or a directory).
pub fn snakepen_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_snakepen"));
    command.args(["--plugin-dir", plugins_dir().to_str().unwrap()]);
    command
}

/// Runs the `snakepen` binary with the test plugins directory and `args`.
pub fn snakepen(args: &[&str]) -> Ran {
    run(snakepen_command().args(args))
}

/// `tests/cassettes/<name>`, the committed cassettes.
pub fn committed_cassette(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/cassettes/{name}"))
}

/// A cassette that reads no environment variable (so `CI` or
/// `SNAKEPEN_RECORD_MODE` of the machine running the tests change nothing).
pub fn cassette(path: &std::path::Path, mode: snakepen::RecordMode) -> snakepen::Cassette {
    snakepen::Cassette::new(path)
        .mode(mode)
        .environment(std::iter::empty::<(String, String)>())
}

/// A host that records (or replays) `cassette` in front of the mock adapter
/// with `config`: cassettes without Python.
pub async fn mock_cassette(
    cassette: snakepen::Cassette,
    config: serde_json::Value,
) -> Result<Host, snakepen::Error> {
    Host::builder()
        .adapter(plugin("mock"))
        .config(config)
        .cassette(cassette)
        .build()
        .await
}

/// Runs `command` to its end and returns its peak resident memory in bytes
/// (the kernel's own count, `ru_maxrss`), measured from a small Python
/// parent: a process started straight from this test binary would count
/// the test binary's own resident memory in its peak, since the kernel
/// keeps the larger of the two across the `exec`.
pub fn peak_rss(command: &Command) -> u64 {
    let measure = "import resource, subprocess, sys\n\
                   done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n\
                   assert done.returncode == 0, f'the command failed: {done.returncode}'\n\
                   print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)";
    let output = run(Command::new("python3")
        .args(["-c", measure])
        .arg(command.get_program())
        .args(command.get_args()));
    assert!(output.success(), "{}", output.stderr);
    let kib: u64 = output.stdout.trim().parse().expect("a number of KiB");
    kib * 1024
}
