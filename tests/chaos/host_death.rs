//! `kill -9` of the `snakepen` process leaves no Python worker behind.

use crate::support::{alive, python_module, sleeping_in_c, snakepen_command, until_dead, within};
use std::process::{Child, Stdio};

/// The pids of the live processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    .is_some_and(|ppid| ppid == parent.to_string())
            })
        })
        .filter(|&pid| alive(pid))
        .collect()
}

/// Looks every few milliseconds (no event crosses the process boundary)
/// until `look` finds something, for up to 60 s.
async fn until_found<T>(look: impl Fn() -> Option<T>) -> T {
    within(60, async {
        loop {
            if let Some(found) = look() {
                return found;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Starts `snakepen call` on `size` workers of the test handlers (forked
/// from a fork server unless `fork_server` is false) running `command`.
fn calling_host(size: usize, fork_server: bool, command: &str, payload: &str) -> Child {
    let mut host = snakepen_command();
    host.args(["call", "--module", &python_module("handlers")])
        .args(["--pool-size", &size.to_string()]);
    if !fork_server {
        host.arg("--no-fork-server");
    }
    host.args([command, payload])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The Python processes under `host`: its workers, and its fork server when
/// `fork_server` (the workers are then the server's children), once all
/// `size` workers are up.
async fn python_under(host: &Child, size: usize, fork_server: bool) -> Vec<u32> {
    let expected = size + usize::from(fork_server);
    let host_pid = host.id();
    until_found(|| {
        let python: Vec<u32> = descendants_of(host_pid)
            .into_iter()
            .filter(|&pid| is_worker_program(pid))
            .collect();
        (python.len() >= expected).then_some(python)
    })
    .await
}

/// Whether `pid` runs snakepen's worker program (as a worker or a fork
/// server) in a Python interpreter, not some passing helper such as a pyenv
/// shim: the pool runs the interpreter as named, so a shim script that
/// will exec Python has the worker's arguments too, but not its executable.
fn is_worker_program(pid: u32) -> bool {
    let python = std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
        exe.file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("python"))
    });
    python
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| cmdline.split(|&b| b == 0).any(|arg| arg == b"--module"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_host_leaves_no_python_worker_alive() {
    for fork_server in [true, false] {
        let mut host = calling_host(3, fork_server, "sleep", r#"{"ms": 60000}"#);
        let python = python_under(&host, 3, fork_server).await;
        host.kill().unwrap(); // SIGKILL
        host.wait().unwrap();
        // A generous bound: the kernel kills them when the host's end of
        // their lifeline closes, within milliseconds.
        tokio::time::timeout(std::time::Duration::from_secs(2), until_dead(&python))
            .await
            .unwrap_or_else(|_| {
                panic!("fork server {fork_server}: {python:?} outlived their host by 2 s")
            });
    }
}

/// A worker stuck in C code that holds the GIL runs no Python at all, so no
/// Python thread can notice its host is gone: the kernel's lifeline still
/// kills it, forked or started, along with its fork server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_holding_the_gil_dies_with_its_host() {
    for fork_server in [true, false] {
        let mut host = calling_host(2, fork_server, "hold_gil", r#"{"seconds": 120}"#);
        let python = python_under(&host, 2, fork_server).await;
        // The call is in C by now or will be shortly; either way the process
        // must go. Wait until some worker is asleep in the kernel with the GIL.
        until_found(|| python.iter().find(|&&pid| sleeping_in_c(pid)).copied()).await;
        host.kill().unwrap();
        host.wait().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(2), until_dead(&python))
            .await
            .unwrap_or_else(|_| {
                panic!("fork server {fork_server}: {python:?} outlived their host by 2 s")
            });
        let left = members_of(&python);
        assert!(left.is_empty(), "processes {left:?} left in their groups");
    }
}

/// `kill -9` of a recording host: the cassette it was re-recording is left
/// exactly as it was (the recording goes to a temporary file that only a
/// clean shutdown renames over it), and it still replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_recording_host_leaves_its_cassette_whole() {
    let dir = tempfile::tempdir().unwrap();
    let cassette = dir.path().join("calls.jsonl");
    let requests = dir.path().join("requests.jsonl");
    // One session: its calls run one after another, in file order.
    let mut lines = String::new();
    for n in 0..5 {
        lines.push_str(&format!(
            "{{\"command\": \"echo\", \"session\": \"s\", \"payload\": {{\"n\": {n}}}}}\n"
        ));
    }
    lines.push_str("{\"command\": \"sleep\", \"session\": \"s\", \"payload\": {\"ms\": 60000}}\n");
    std::fs::write(&requests, lines).unwrap();
    let record = |mode: &str| {
        snakepen_command()
            .args([
                "run",
                "--module",
                &python_module("handlers"),
                "--concurrency",
                "1",
            ])
            .args([
                "--cassette",
                cassette.to_str().unwrap(),
                "--record-mode",
                mode,
            ])
            .arg(&requests)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };

    // A first recording of the fast calls alone (the sleep is cut short by a deadline).
    std::fs::write(
        &requests,
        std::fs::read_to_string(&requests)
            .unwrap()
            .replace("60000}}", "60000}, \"deadline_ms\": 1}"),
    )
    .unwrap();
    let status = crate::support::wait_within(&mut record("all"), 120);
    assert!(
        status.code().is_some(),
        "the first recording ran to its end"
    );
    let before = std::fs::read(&cassette).expect("the first recording was saved");

    // Record again, and kill the host while the sleep is in flight: the five
    // fast calls are in the temporary file by then.
    std::fs::write(
        &requests,
        std::fs::read_to_string(&requests)
            .unwrap()
            .replace(", \"deadline_ms\": 1", ""),
    )
    .unwrap();
    let mut host = record("all");
    let temp = until_found(|| {
        std::fs::read_dir(dir.path()).unwrap().find_map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name()?.to_str()?.to_string();
            let lines = std::fs::read_to_string(&path).ok()?.lines().count();
            (name.ends_with(".recording") && lines == 6).then_some(path)
        })
    })
    .await;
    host.kill().unwrap();
    host.wait().unwrap();
    assert_eq!(
        std::fs::read(&cassette).unwrap(),
        before,
        "the cassette is untouched"
    );
    snakepen::cassette::CassetteFile::read(&cassette).expect("and whole");
    assert!(
        temp.exists(),
        "the interrupted recording is kept for whoever wants it"
    );
    let host = snakepen::Host::replaying(&cassette).await.unwrap();
    host.call(snakepen::Request::json(
        "echo",
        &serde_json::json!({"n": 3}),
    ))
    .await
    .expect("it replays");
}

/// The process group of `pid` (field 5 of /proc/pid/stat), if it runs.
fn group_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Every live process whose process group is one of `groups`.
fn members_of(groups: &[u32]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| alive(pid) && group_of(pid).is_some_and(|g| groups.contains(&g)))
        .collect()
}

/// Twenty times: a host serving a steady load on 4 workers is `kill -9`ed;
/// no Python process is left, by pid and by process group. Every other
/// round the workers are forked from a fork server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_loaded_host_twenty_times_leaves_no_python_process() {
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("load.jsonl");
    let load: String = (0..20_000)
        .map(|n| {
            format!(
                "{{\"command\": \"sleep\", \"payload\": {{\"ms\": {}}}}}\n",
                n % 7
            )
        })
        .collect();
    std::fs::write(&requests, load).unwrap();
    for round in 0..20 {
        let fork_server = round % 2 == 0;
        let mut command = snakepen_command();
        command
            .args(["run", "--module", &python_module("handlers")])
            .args(["--pool-size", "4"]);
        if !fork_server {
            command.arg("--no-fork-server");
        }
        let mut host = command
            .arg(&requests)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let python = python_under(&host, 4, fork_server).await;
        // Let the load run a moment, differently each round.
        tokio::time::sleep(std::time::Duration::from_millis(10 + 7 * round)).await;
        host.kill().unwrap();
        host.wait().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), until_dead(&python))
            .await
            .unwrap_or_else(|_| panic!("round {round}: {python:?} outlived their host"));
        // Each worker leads its own process group: nothing it started is left
        // either, once the pool's reaper has swept (it kills, then looks again).
        let swept = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while !members_of(&python).is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await;
        let left = members_of(&python);
        assert!(
            swept.is_ok(),
            "round {round}: processes {left:?} left in the workers' groups"
        );
    }
}

/// Every live descendant of `root` (children, their children, …).
fn descendants_of(root: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for child in children_of(parent) {
            found.push(child);
            frontier.push(child);
        }
    }
    found
}
