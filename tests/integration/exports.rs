//! Which names of a handler module are commands: the functions defined in
//! it, the names in its `__all__` when it has one, and the names the pool
//! exposes on purpose. An imported function is never a command by accident.

use crate::support::{bridge, python_module, within};
use snakepen::{CallError, Host, PoolConfig, Request};

async fn ready(pool: PoolConfig) -> Host {
    let host = bridge(pool).await;
    within(60, host.ready()).await.expect("the workers start");
    host
}

async fn call(host: &Host, command: &str, payload: &str) -> Result<serde_json::Value, CallError> {
    let response = within(
        30,
        host.call(Request::new(command, payload.as_bytes().to_vec())),
    )
    .await?;
    Ok(response.json().expect("the answer is JSON"))
}

#[tokio::test]
async fn an_imported_function_is_not_a_command() {
    let host = ready(PoolConfig::new(python_module("exports"))).await;
    for (command, payload) in [
        ("system", r#"["echo owned"]"#),
        ("check_output", r#"[["cat", "/etc/hostname"]]"#),
        ("imported_dumps", "[1]"),
        ("_private", ""),
    ] {
        match call(&host, command, payload).await {
            Err(CallError::NoSuchCommand(message)) => {
                assert!(message.contains("it has: defined"), "{message}")
            }
            other => panic!("`{command}` must not be served, got {other:?}"),
        }
    }
    assert_eq!(call(&host, "defined", "[7]").await.unwrap(), 7);
    host.close().await.unwrap();
}

#[tokio::test]
async fn a_module_with_all_serves_exactly_what_it_lists() {
    let host = ready(PoolConfig::new(python_module("exports_all"))).await;
    assert_eq!(call(&host, "listed", "").await.unwrap(), "listed");
    assert!(call(&host, "getpid", "").await.unwrap().is_u64());
    assert!(matches!(
        call(&host, "unlisted", "").await,
        Err(CallError::NoSuchCommand(_))
    ));
    host.close().await.unwrap();
}

#[tokio::test]
async fn expose_serves_a_name_on_purpose_and_a_missing_one_fails_the_start() {
    for fork_server in [true, false] {
        let mut pool = PoolConfig::new(python_module("exports"));
        pool.expose.push("imported_dumps".into());
        pool.settings.fork_server = fork_server;
        let host = ready(pool).await;
        assert_eq!(call(&host, "imported_dumps", "[[1]]").await.unwrap(), "[1]");
        assert!(matches!(
            call(&host, "system", r#"["true"]"#).await,
            Err(CallError::NoSuchCommand(_))
        ));
        host.close().await.unwrap();
    }

    let mut pool = PoolConfig::new(python_module("exports"));
    pool.expose.push("nowhere".into());
    let host = bridge(pool).await;
    let err = within(60, host.ready()).await.unwrap_err().to_string();
    assert!(
        err.contains("expose names 'nowhere'") && err.contains("it has: defined"),
        "{err}"
    );
}
