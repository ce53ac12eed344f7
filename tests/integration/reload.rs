//! `snakepen serve --reload`: an edit of the module under load serves the
//! new code with no failed call; an edit that does not import keeps the
//! old code serving, shows the failure in `/v1/status`, and the next good
//! save recovers.

use crate::support::served::{Served, client, post};
use crate::support::within;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

fn module(version: u32) -> String {
    format!(
        "import time\n\n\ndef version():\n    return {version}\n\n\ndef slow(ms):\n    time.sleep(ms / 1000)\n    return {version}\n"
    )
}

/// Waits until the server watches the module's folder (an edit before
/// that would go unseen).
async fn until_watching(server: &Served) {
    server
        .status_until(|s| !s["reload"]["watching"].is_null())
        .await;
}

/// Asks `version` until it answers `want` (the server reloads on its own time).
async fn until_version(server: &Served, want: u32) {
    within(60, async {
        loop {
            let (status, body) = server.call(json!({"command": "version"})).await;
            if status == 200 && body["payload"] == want {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_under_load_is_served_with_no_failed_call() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.py");
    std::fs::write(&file, module(1)).unwrap();
    let server = Arc::new(
        Served::start(&[
            "--module",
            file.to_str().unwrap(),
            "--pool-size",
            "2",
            "--reload",
        ])
        .await,
    );
    // Four callers without pause, some of their calls long enough to be
    // running when the reload comes.
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for n in 0..4 {
        let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
        let (answered, failed) = (Arc::clone(&answered), Arc::clone(&failed));
        load.push(tokio::spawn(async move {
            let client = client();
            let mut failures: Vec<Value> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"command": "slow", "payload": [if n % 2 == 0 { 1 } else { 30 }]});
                let (status, answer) = post(&client, &server.at("/v1/call"), &body).await;
                if status == 200 {
                    answered.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    failures.push(answer);
                }
            }
            failures
        }));
    }
    until_watching(&server).await;
    within(30, async {
        while answered.load(Ordering::Relaxed) < 50 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    std::fs::write(&file, module(2)).unwrap();
    until_version(&server, 2).await;
    let before = answered.load(Ordering::Relaxed);
    within(30, async {
        while answered.load(Ordering::Relaxed) < before + 50 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for caller in load {
        failures.extend(caller.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "calls failed across the reload: {failures:?}"
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    let status = server.status().await;
    assert_eq!(status["reload"]["reloads"], 1, "{status}");
    assert_eq!(status["pool"]["status"]["restarts"], 0, "{status}");
    assert!(
        status["pool"]["status"]["recycles"].as_u64().unwrap() >= 2,
        "{status}"
    );
    // Every worker serves the new code now.
    for _ in 0..10 {
        let (_, body) = server
            .call(json!({"command": "slow", "payload": [1]}))
            .await;
        assert_eq!(body["payload"], 2, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_edit_keeps_the_old_code_serving_until_a_good_save() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.py");
    std::fs::write(&file, module(1)).unwrap();
    let server = Served::start(&[
        "--module",
        file.to_str().unwrap(),
        "--pool-size",
        "1",
        "--reload",
    ])
    .await;
    until_watching(&server).await;
    std::fs::write(&file, "def version(:\n    return 2\n").unwrap();
    let status = server
        .status_until(|s| !s["reload"]["failed"].is_null())
        .await;
    let error = status["reload"]["failed"]["error"].as_str().unwrap();
    assert!(error.contains("SyntaxError"), "{error}");
    assert!(error.contains("app.py"), "{error}");
    let (code, body) = server.call(json!({"command": "version"})).await;
    assert_eq!(
        (code, &body["payload"]),
        (200, &json!(1)),
        "the old code serves: {body}"
    );
    assert!(
        server.log_text().contains("reload failed"),
        "the failure is logged:\n{}",
        server.log_text()
    );
    // The next good save recovers.
    std::fs::write(&file, module(3)).unwrap();
    until_version(&server, 3).await;
    let status = server
        .status_until(|s| s["reload"]["failed"].is_null())
        .await;
    assert_eq!(status["reload"]["reloads"], 1, "{status}");
}
