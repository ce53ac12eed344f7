//! A real `snakepen serve` process on a free loopback port, and a real HTTP
//! client for it.

use super::{snakepen_command, within};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use tokio::sync::mpsc;

/// A running `snakepen serve`; killed when dropped.
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    lines: mpsc::UnboundedReceiver<String>,
    /// Where its stderr (the log) goes.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Starts `snakepen serve --listen 127.0.0.1:0 ARGS…` and waits until it
    /// listens (and, when it runs a pool, until its workers are ready).
    pub async fn start(args: &[&str]) -> Served {
        Served::start_with_env(args, &[]).await
    }

    /// [`Served::start`] with environment variables.
    pub async fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Served {
        Served::launch(Launch {
            args,
            env,
            ..Launch::default()
        })
        .await
    }

    /// Starts `snakepen serve` as `launch` says and waits as [`Served::start`] does.
    pub async fn launch(launch: Launch<'_>) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        let mut command = snakepen_command();
        command
            .args(["serve", "--listen", launch.listen.unwrap_or("127.0.0.1:0")])
            .args(launch.args)
            // The tests' own environment must not set a token behind their back.
            .env_remove("SNAKEPEN_TOKEN")
            .envs(launch.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(limit) = launch.max_open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe, and nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().expect("snakepen serve starts");
        let args = launch.args;
        let stdout = child.stdout.take().unwrap();
        let (tx, mut lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let pool = args.contains(&"--module");
        let url = within(60, async {
            let mut url = None;
            while let Some(line) = lines.recv().await {
                if let Some(address) = line.strip_prefix("snakepen serve: listening on ") {
                    url = Some(address.to_string());
                    if !pool {
                        break;
                    }
                }
                if line.starts_with("snakepen serve: ready") {
                    break;
                }
            }
            url
        })
        .await;
        let Some(url) = url else {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("snakepen serve did not start; its stderr:\n{log}");
        };
        Served {
            child,
            url,
            lines,
            log,
            _dir: dir,
        }
    }

    /// `host:port`, for a raw TCP connection.
    pub fn address(&self) -> String {
        let address = self.url.trim_start_matches("http://");
        address.replace("0.0.0.0", "127.0.0.1")
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// POSTs `body` to `/v1/call`: the status and the JSON answer.
    pub async fn call(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        post(&client(), &self.at("/v1/call"), &body).await
    }

    /// GETs `path`: the status and the text.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = client().get(self.at(path)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// `GET /v1/status`, as JSON.
    pub async fn status(&self) -> serde_json::Value {
        let (_, text) = self.get("/v1/status").await;
        serde_json::from_str(&text).unwrap()
    }

    /// Asks for `/v1/status` until `ok` holds (up to 30 s): the server is
    /// another process, so there is no event to await.
    pub async fn status_until(&self, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        within(30, async {
            loop {
                let status = self.status().await;
                if ok(&status) {
                    return status;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }

    /// Waits (up to 60 s) for the process to exit; its status and the rest of its stdout.
    pub async fn exit(&mut self) -> (ExitStatus, Vec<String>) {
        let mut rest = Vec::new();
        within(60, async {
            while let Some(line) = self.lines.recv().await {
                rest.push(line);
            }
        })
        .await;
        (super::wait_within(&mut self.child, 60), rest)
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start a [`Served`]: its arguments, environment, listen address
/// (default `127.0.0.1:0`) and descriptor limit (`RLIMIT_NOFILE`).
#[derive(Default)]
pub struct Launch<'a> {
    pub args: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
    pub listen: Option<&'a str>,
    pub max_open_files: Option<u64>,
}

/// A new HTTP client (its own connections).
pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// [`post`] from a new client, in a task of its own.
pub fn spawn_post(
    url: &str,
    body: serde_json::Value,
) -> tokio::task::JoinHandle<(u16, serde_json::Value)> {
    let url = url.to_string();
    tokio::spawn(async move { post(&client(), &url, &body).await })
}

/// POSTs `body` as JSON to `url`: the status and the JSON answer.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = client.post(url).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {text}"));
    (status, value)
}

/// Runs `snakepen ARGS…`, which must refuse to start: its exit status and
/// stderr. A server that starts instead is killed after 30 s (a bound
/// against a hang) and fails the test.
pub fn refused_to_start(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = snakepen_command()
        .args(args)
        .env_remove("SNAKEPEN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("snakepen runs");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("snakepen {args:?} started instead of refusing to");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (
        status.code(),
        std::fs::read_to_string(&log).unwrap_or_default(),
    )
}
