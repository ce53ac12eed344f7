//! `kill -9` of the `snakepen` process leaves no Python worker behind.

use crate::support::{alive, plugins_dir, python_module, until_dead, within};
use std::process::{Command, Stdio};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_host_leaves_no_python_worker_alive() {
    let module = python_module("handlers");
    let mut host = Command::new(env!("CARGO_BIN_EXE_snakepen"))
        .args(["--plugin-dir", plugins_dir().to_str().unwrap()])
        .args([
            "call",
            "--module",
            &module,
            "--pool-size",
            "3",
            "sleep",
            r#"{"ms": 60000}"#,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let host_pid = host.id();
    // Its workers are its children: wait until all three are up.
    let workers = until_found(|| Some(children_of(host_pid)).filter(|c| c.len() == 3)).await;
    host.kill().unwrap(); // SIGKILL
    host.wait().unwrap();
    // A generous bound: the workers die within milliseconds (parent-death signal).
    tokio::time::timeout(std::time::Duration::from_secs(2), until_dead(&workers))
        .await
        .unwrap_or_else(|_| panic!("workers {workers:?} outlived their host by 2 s"));
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
        Command::new(env!("CARGO_BIN_EXE_snakepen"))
            .args(["--plugin-dir", plugins_dir().to_str().unwrap()])
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
    let status = record("all").wait().unwrap();
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
/// no Python process is left, by pid and by process group.
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
        let mut host = Command::new(env!("CARGO_BIN_EXE_snakepen"))
            .args(["--plugin-dir", plugins_dir().to_str().unwrap()])
            .args([
                "run",
                "--module",
                &python_module("handlers"),
                "--pool-size",
                "4",
            ])
            .arg(&requests)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let host_pid = host.id();
        let workers = until_found(|| Some(children_of(host_pid)).filter(|c| c.len() == 4)).await;
        // Let the load run a moment, differently each round.
        tokio::time::sleep(std::time::Duration::from_millis(10 + 7 * round)).await;
        host.kill().unwrap();
        host.wait().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), until_dead(&workers))
            .await
            .unwrap_or_else(|_| panic!("round {round}: workers {workers:?} outlived their host"));
        // Each worker leads its own process group: nothing it started is left either.
        let left = members_of(&workers);
        assert!(
            left.is_empty(),
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

/// With a fork server, the workers are the server's children, not the
/// host's: `kill -9` of the host still leaves no Python process, the
/// server by its parent-death signal and the workers by their socket's hang-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_host_with_a_fork_server_leaves_no_python_process() {
    let mut host = Command::new(env!("CARGO_BIN_EXE_snakepen"))
        .args(["--plugin-dir", plugins_dir().to_str().unwrap()])
        .args([
            "call",
            "--module",
            &python_module("handlers"),
            "--pool-size",
            "3",
            "--fork-server",
        ])
        .args(["sleep", r#"{"ms": 60000}"#])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let host_pid = host.id();
    // The fork server and its three workers.
    let python = until_found(|| Some(descendants_of(host_pid)).filter(|all| all.len() >= 4)).await;
    host.kill().unwrap();
    host.wait().unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), until_dead(&python))
        .await
        .unwrap_or_else(|_| panic!("{python:?} outlived their host"));
    let left = members_of(&python);
    assert!(left.is_empty(), "processes {left:?} left in their groups");
}
