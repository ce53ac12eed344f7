//! What an adapter instance keeps between calls, as the contract states it
//! (wit/adapter.wit, `interface adapter`): a host runs its calls in the
//! instances it keeps, so memory may carry from one call to the next of the
//! same host, never to another host's; an instance that trapped, panicked,
//! overran its deadline, was refused memory or grew too much is never
//! reused; and the runtime's slots go where the calls are.

use crate::support::{fixture, within};
use snakepen::{CallError, Host, Request, Runtime};
use std::time::Duration;

async fn hostile(runtime: &Runtime) -> Host {
    Host::builder()
        .runtime(runtime)
        .adapter(fixture("hostile"))
        .build()
        .await
        .expect("the hostile adapter loads")
}

async fn run(host: &Host, command: &str, arg: &str) -> Result<String, CallError> {
    let request = Request::new(command, arg.as_bytes().to_vec()).deadline(Duration::from_secs(5));
    let response = within(30, host.call(request)).await?;
    Ok(String::from_utf8(response.payload).unwrap())
}

/// How many calls the instance that serves this one has served.
async fn remember(host: &Host) -> u64 {
    run(host, "remember", "").await.unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_hosts_instance_serves_its_calls_one_after_another_and_no_other_hosts() {
    let runtime = Runtime::new().unwrap();
    let (a, b) = (hostile(&runtime).await, hostile(&runtime).await);
    assert_eq!(remember(&a).await, 1);
    assert_eq!(remember(&a).await, 2, "the same instance served again");
    assert_eq!(remember(&b).await, 1, "another host never sees it");
    assert_eq!(remember(&a).await, 3);
}

#[tokio::test]
async fn a_trap_a_panic_or_an_overrun_never_leaves_its_instance_to_the_next_call() {
    let runtime = Runtime::new().unwrap();
    let host = hostile(&runtime).await;
    for (command, kind) in [
        ("trap", "adapter-fault"),
        ("panic", "adapter-fault"),
        ("spin", "timeout"),
        ("grow", "adapter-fault"),
    ] {
        assert_eq!(remember(&host).await, 1, "before `{command}`");
        assert_eq!(remember(&host).await, 2);
        let request = Request::new(command, Vec::new()).deadline(Duration::from_millis(200));
        let error = within(30, host.call(request)).await.unwrap_err();
        assert_eq!(error.kind(), kind, "`{command}`: {error}");
        assert_eq!(
            remember(&host).await,
            1,
            "after `{command}` a new instance serves"
        );
        // Start the next round on a new instance too.
        run(&host, "trap", "").await.unwrap_err();
    }
}

#[tokio::test]
async fn an_instance_that_grew_far_past_its_start_is_replaced_and_one_that_grew_a_little_is_not() {
    let runtime = Runtime::builder()
        .max_memory_bytes(256 << 20)
        .build()
        .unwrap();
    let host = Host::builder()
        .runtime(&runtime)
        .adapter(fixture("hostile"))
        .max_memory_bytes(256 << 20)
        .build()
        .await
        .unwrap();
    assert_eq!(remember(&host).await, 1);
    assert_eq!(run(&host, "grow", "4").await.unwrap(), "4");
    assert_eq!(remember(&host).await, 2, "4 MiB more is kept");
    assert_eq!(run(&host, "grow", "64").await.unwrap(), "64");
    assert_eq!(remember(&host).await, 1, "64 MiB more is given back");
}

#[tokio::test]
async fn a_call_takes_the_slot_an_idle_instance_of_another_host_holds() {
    let runtime = Runtime::builder().max_instances(1).build().unwrap();
    let (a, b) = (hostile(&runtime).await, hostile(&runtime).await);
    assert_eq!(remember(&a).await, 1);
    // `a` keeps its instance warm in the runtime's only slot; `b` gets it.
    assert_eq!(remember(&b).await, 1);
    assert_eq!(remember(&a).await, 1, "a's instance gave its slot up");
    assert_eq!(remember(&a).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_of_many_hosts_on_few_slots_all_finish() {
    let runtime = Runtime::builder().max_instances(2).build().unwrap();
    let mut hosts = Vec::new();
    for _ in 0..4 {
        hosts.push(hostile(&runtime).await);
    }
    let calls = hosts.iter().cycle().take(400).map(|host| {
        let host = host.clone();
        tokio::spawn(async move { remember(&host).await })
    });
    for answer in futures_util::future::join_all(calls).await {
        assert!(answer.unwrap() >= 1);
    }
}

#[tokio::test]
async fn every_call_of_a_reused_instance_has_its_share_of_stderr() {
    let runtime = Runtime::new().unwrap();
    let host = hostile(&runtime).await;
    // 6 KiB, then 12 KiB, and again: a reused instance must still take
    // a call's whole 16 KiB after what earlier calls wrote.
    for bytes in ["6144", "12288"].repeat(8) {
        assert_eq!(run(&host, "say", bytes).await.unwrap(), bytes);
    }
    let error = run(&host, "panic", "").await.unwrap_err();
    assert!(
        error.to_string().contains("panics on purpose"),
        "the panic message is there whole: {error}"
    );
}

#[tokio::test]
async fn an_instance_that_keeps_files_open_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("note.txt"), "hello").unwrap();
    let runtime = Runtime::new().unwrap();
    let host = Host::builder()
        .runtime(&runtime)
        .adapter(fixture("hostile"))
        .grant_dir(dir.path(), "/data", true)
        .build()
        .await
        .unwrap();
    assert_eq!(remember(&host).await, 1);
    assert_eq!(
        run(&host, "hoard-files", "/data/note.txt 1").await.unwrap(),
        "1"
    );
    assert_eq!(
        remember(&host).await,
        2,
        "one file more is within the margin"
    );
    assert_eq!(
        run(&host, "hoard-files", "/data/note.txt 32")
            .await
            .unwrap(),
        "32"
    );
    assert_eq!(
        remember(&host).await,
        1,
        "an instance holding 33 files of the host's is not reused"
    );
}
