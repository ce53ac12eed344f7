//! The cassette file's format is its own (not the shape of the public
//! `CallError`): the committed cassette, recorded from real Python, still
//! reads and replays unchanged, its error entries field by field.

use crate::support::committed_cassette;
use snakepen::cassette::CassetteFile;
use snakepen::{CallError, Host, Request};

/// The `describe` call of the committed cassette that raised, as its line has it.
fn describe_with_no_values() -> Request {
    Request::new("describe", r#"{"values":[]}"#)
}

#[tokio::test]
async fn the_committed_cassette_replays_its_python_exception_field_by_field() {
    let host = Host::replaying(committed_cassette("demo.jsonl"))
        .await
        .unwrap();
    let err = host.call(describe_with_no_values()).await.unwrap_err();
    let CallError::PythonException {
        type_name,
        message,
        traceback,
    } = err
    else {
        panic!("expected the recorded python-exception, got {err:?}")
    };
    assert_eq!(type_name, "statistics.StatisticsError");
    assert_eq!(message, "fmean requires at least one data point");
    assert!(
        traceback.starts_with("Traceback (most recent call last):\n"),
        "{traceback}"
    );
    assert!(
        traceback.contains("line 64, in describe")
            && traceback
                .ends_with("statistics.StatisticsError: fmean requires at least one data point\n"),
        "{traceback}"
    );
}

#[tokio::test]
async fn the_committed_cassette_replays_its_no_such_command_as_recorded() {
    let host = Host::replaying(committed_cassette("demo.jsonl"))
        .await
        .unwrap();
    let err = host
        .call(Request::new(
            "word_stat",
            r#"{"text":"typo in the command"}"#,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CallError::NoSuchCommand(
            "handlers has no function 'word_stat'; it has: cart_add, cart_total, describe, fingerprint, primes, summarize, word_stats"
                .into()
        )
    );
}

#[test]
fn the_committed_cassette_reads_with_both_error_kinds_it_holds() {
    let file = CassetteFile::read(committed_cassette("demo.jsonl")).unwrap();
    let kinds: Vec<&str> = file
        .interactions
        .iter()
        .filter_map(|i| i.outcome.as_ref().err().map(CallError::kind))
        .collect();
    assert_eq!(kinds, ["python-exception", "no-such-command"]);
}
