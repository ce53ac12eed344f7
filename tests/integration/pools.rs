//! Several pools in one server (`[pools.NAME]`): a request names its pool
//! in its body or its path, one that names none goes to the default, and
//! status, functions and metrics are per pool.

use crate::support::served::{Served, client, post};
use crate::support::{python_module, within};
use serde_json::{Value, json};

async fn two_pools() -> (Served, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("snakepen.toml");
    std::fs::write(
        &config,
        format!(
            "[pools.main]\nmodule = {:?}\nsize = 2\ndefault = true\n\n[pools.other]\nmodule = {:?}\nsize = 1\nmax_concurrency = 4\n",
            python_module("handlers"),
            python_module("other")
        ),
    )
    .unwrap();
    let server = Served::start(&["--config", config.to_str().unwrap()]).await;
    within(60, async {
        while server.get("/readyz").await.0 != 200 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    (server, dir)
}

#[tokio::test]
async fn a_request_reaches_the_pool_it_names_and_the_default_otherwise() {
    let (server, _dir) = two_pools().await;
    let client = client();
    // No pool named: the default, whose module has `add`.
    let (status, body) = server
        .call(json!({"command": "add", "payload": [2, 3]}))
        .await;
    assert_eq!((status, &body["payload"]), (200, &json!(5)), "{body}");
    // Named in the body, and in the path.
    let (status, body) = server
        .call(json!({"command": "whoami", "pool": "other"}))
        .await;
    assert_eq!((status, &body["payload"]), (200, &json!("other")), "{body}");
    let (status, body) = post(
        &client,
        &server.at("/v1/pools/other/call"),
        &json!({"command": "whoami"}),
    )
    .await;
    assert_eq!((status, &body["payload"]), (200, &json!("other")), "{body}");
    // Each pool has its own commands.
    let (status, body) = server.call(json!({"command": "whoami"})).await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (404, Some("no-such-command"))
    );
    // A batch may mix them.
    let (status, body) = post(
        &client,
        &server.at("/v1/batch"),
        &json!({"requests": [
            {"command": "add", "payload": [1, 1]},
            {"command": "whoami", "pool": "other"},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["payload"], 2);
    assert_eq!(body["results"][1]["payload"], "other");
}

#[tokio::test]
async fn an_unknown_pool_is_named_with_the_ones_there_are() {
    let (server, _dir) = two_pools().await;
    let (status, body) = server
        .call(json!({"command": "add", "pool": "nope", "payload": [1, 2]}))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["kind"], "no-such-pool");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("main, other"), "{message}");
    let (status, _) = server.get("/v1/pools/nope/functions").await;
    assert_eq!(status, 404);
    // A path and a body that disagree.
    let (status, body) = post(
        &client(),
        &server.at("/v1/pools/main/call"),
        &json!({"command": "add", "pool": "other"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (400, Some("bad-request"))
    );
}

#[tokio::test]
async fn status_functions_and_metrics_are_per_pool() {
    let (server, _dir) = two_pools().await;
    let status = server.status().await;
    let pools = status["pools"].as_array().unwrap();
    let names: Vec<&str> = pools.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["main", "other"]);
    assert_eq!(pools[0]["pool"]["status"]["size"], 2);
    assert_eq!(pools[1]["pool"]["status"]["size"], 1);
    assert_eq!(status["name"], "main", "the default's status at the top");

    let (_, text) = server.get("/v1/pools/other/functions").await;
    let functions: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(functions["pool"], "other");
    assert_eq!(functions["functions"][0]["name"], "whoami");

    server
        .call(json!({"command": "whoami", "pool": "other"}))
        .await;
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains(r#"snakepen_calls_total{pool="other",command="whoami",outcome="ok"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"snakepen_workers{pool="main",state="idle"} 2"#),
        "{metrics}"
    );
}
