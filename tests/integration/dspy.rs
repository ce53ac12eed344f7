//! examples/dspy on DSPy itself (target/dspy-venv, made by `just dspy-venv`):
//! a program per session, its answer streamed with `dspy.streamify`,
//! offline on DSPy's DummyLM.

use crate::support::{bridge, within};
use snakepen::{Affinity, Request, StreamItem};
use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dspy_program_streams_its_steps_then_its_answer_and_keeps_its_session() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("target/dspy-venv/bin/python");
    let has_dspy = std::process::Command::new(&python)
        .args(["-c", "import dspy"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_dspy,
        "{} has no dspy: run `just dspy-venv` (or `just test`)",
        python.display()
    );
    let mut pool =
        snakepen::PoolConfig::new(root.join("examples/dspy/handlers.py").display().to_string());
    pool.python = python;
    pool.settings.affinity = Affinity::Strict;
    let host = bridge(pool).await;
    within(120, host.ready())
        .await
        .expect("the worker imports dspy");

    for n in 1..=2 {
        let request = Request::json(
            "ask",
            &serde_json::json!({"question": "Why?", "session": "s1"}),
        )
        .session("s1");
        let mut stream = host.call_stream(request);
        let mut chunks = Vec::new();
        loop {
            match within(60, stream.next()).await.expect("an item") {
                Ok(StreamItem::Chunk(chunk)) => {
                    chunks.push(serde_json::from_slice::<serde_json::Value>(&chunk).unwrap())
                }
                Ok(StreamItem::End(_)) => break,
                Err(error) => panic!("{error}"),
            }
        }
        let (last, steps) = chunks.split_last().expect("chunks came");
        assert!(
            !steps.is_empty() && steps.iter().all(|s| s["message"].is_string()),
            "{chunks:?}"
        );
        assert_eq!(
            last["answer"],
            format!("Answer {n} of this session, to 'Why?'."),
            "{chunks:?}"
        );
    }
    // A plain call gets the stream collected; another session starts afresh.
    let request = Request::json(
        "ask",
        &serde_json::json!({"question": "Hi?", "session": "s2"}),
    )
    .session("s2");
    let answer = within(60, host.call(request))
        .await
        .unwrap()
        .json()
        .unwrap();
    let chunks = answer["chunks"].as_array().unwrap();
    assert_eq!(
        chunks.last().unwrap()["answer"],
        "Answer 1 of this session, to 'Hi?'."
    );
}
