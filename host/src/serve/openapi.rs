//! `GET /openapi.json`: an OpenAPI 3.1 document of the whole API. Its
//! endpoints, bodies and errors are generated from the Rust types (utoipa);
//! to them the document adds, for every pool, a schema per handler, from
//! what its workers described (the payload schema derived from the
//! handler's annotations): `/v1/call` takes a call of one of the default
//! pool's handlers, and `/v1/pools/NAME/call` one of pool NAME's.

use super::api::{
    BatchAnswer, BatchBody, CallBody, ErrorAnswer, ErrorKind, ErrorObject, FunctionsAnswer, Order,
    Outcome,
};
use super::app::App;
use crate::{Handler, HandlerKind, Parameter, ParameterKind};
use serde_json::{Value, json};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "snakepen serve",
        description = "Python handlers behind a pool of long-lived workers. A call runs one handler with a JSON payload; a stream answers as Server-Sent Events; a batch runs many. Every error is `{\"error\": {\"kind\", \"message\", \"detail\"}}` with the status its kind maps to."
    ),
    paths(
        super::endpoints::call,
        super::endpoints::call_in,
        super::endpoints::stream,
        super::endpoints::stream_in,
        super::endpoints::batch,
        super::endpoints::batch_in,
        super::endpoints::functions,
        super::endpoints::functions_in,
        super::endpoints::status,
        super::endpoints::healthz,
        super::endpoints::readyz,
        super::endpoints::metrics,
        document,
    ),
    components(schemas(
        CallBody,
        BatchBody,
        Order,
        Outcome,
        BatchAnswer,
        ErrorAnswer,
        ErrorObject,
        ErrorKind,
        FunctionsAnswer,
        Handler,
        HandlerKind,
        Parameter,
        ParameterKind
    )),
    tags(
        (name = "calls", description = "Running handlers"),
        (name = "service", description = "The server itself")
    )
)]
struct ApiDoc;

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object))
)]
pub(super) async fn document(
    axum::extract::State(app): axum::extract::State<std::sync::Arc<App>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    axum::Json(build(&app)).into_response()
}

/// The document: the generated part, then each pool's handlers.
fn build(app: &App) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    doc["info"]["version"] = env!("CARGO_PKG_VERSION").into();
    for (at, served) in app.pools.iter().enumerate() {
        let handlers = served
            .host
            .pool()
            .map(|pool| pool.handlers())
            .unwrap_or_default();
        let mut calls = Vec::new();
        for handler in handlers.iter() {
            let base = format!("{}.{}", served.name, handler.name);
            let schemas = &mut doc["components"]["schemas"];
            schemas[format!("{base}.payload")] = payload_schema(handler);
            schemas[format!("{base}.call")] = json!({
                "title": format!("{} (pool {})", handler.name, served.name),
                "description": handler.doc,
                "allOf": [
                    {"$ref": "#/components/schemas/CallBody"},
                    {"type": "object",
                     "properties": {
                         "command": {"const": handler.name},
                         "payload": {"$ref": format!("#/components/schemas/{base}.payload")},
                     }},
                ],
            });
            if handler.parameters.iter().any(|p| p.required) {
                // No payload calls it with no arguments, which it refuses.
                schemas[format!("{base}.call")]["allOf"][1]["required"] = json!(["payload"]);
            }
            calls.push(json!({"$ref": format!("#/components/schemas/{base}.call")}));
        }
        if calls.is_empty() {
            continue; // no handlers known (yet): the generic call body stands
        }
        let name = &served.name;
        // The built-ins, on every pool.
        calls.push(json!({"allOf": [
            {"$ref": "#/components/schemas/CallBody"},
            {"type": "object", "properties": {"command": {"enum": ["ping", "info"]}}},
        ]}));
        let body = json!({"anyOf": calls});
        let paths = &mut doc["paths"];
        for verb in ["call", "stream"] {
            let templated = paths[format!("/v1/pools/{{pool}}/{verb}")].clone();
            let mut concrete = strip_pool_parameter(templated);
            set_request_schema(&mut concrete, body.clone());
            concrete["post"]["operationId"] = format!("{verb}_in_{name}").into();
            concrete["post"]["summary"] = format!("A {verb} of pool {name}'s handlers").into();
            paths[format!("/v1/pools/{name}/{verb}")] = concrete;
            if at == 0 {
                // The default pool's handlers, where no pool is named (a
                // body's `pool` sends it to another pool's).
                let mut open = body.clone();
                open["anyOf"]
                    .as_array_mut()
                    .expect("an array")
                    .push(json!({"allOf": [
                        {"$ref": "#/components/schemas/CallBody"},
                        {"required": ["pool"]},
                    ]}));
                set_request_schema(&mut paths[format!("/v1/{verb}")], open);
            }
        }
    }
    doc
}

/// A handler's payload schema, with its docstring as its description.
fn payload_schema(handler: &Handler) -> Value {
    let mut schema = match &handler.schema {
        Value::Object(map) => Value::Object(map.clone()),
        // `false`: no payload binds to the signature.
        Value::Bool(false) => return Value::Bool(false),
        _ => json!({}),
    };
    if let Some(doc) = &handler.doc
        && schema.get("description").is_none()
    {
        schema["description"] = doc.clone().into();
    }
    schema
}

fn set_request_schema(path: &mut Value, schema: Value) {
    path["post"]["requestBody"]["content"]["application/json"]["schema"] = schema;
}

/// A templated path item as a concrete one: without its `pool` parameter.
fn strip_pool_parameter(mut item: Value) -> Value {
    if let Some(parameters) = item["post"]["parameters"].as_array_mut() {
        parameters.retain(|p| p["name"] != "pool");
        if parameters.is_empty() {
            item["post"]
                .as_object_mut()
                .expect("an operation")
                .remove("parameters");
        }
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CallError;

    /// The document's kinds are the contract's, and the API's own.
    #[test]
    fn every_error_kind_is_in_the_document() {
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let listed: Vec<&str> = document["components"]["schemas"]["ErrorKind"]["enum"]
            .as_array()
            .expect("ErrorKind is an enum")
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        let s = || String::new();
        let calls = [
            CallError::Timeout(s()),
            CallError::PoolExhausted {
                busy: 0,
                starting: 0,
                dead: 0,
                waited_ms: 0,
            },
            CallError::WorkerCrashed {
                pid: 0,
                exit_status: s(),
                stderr_tail: s(),
            },
            CallError::PythonException {
                type_name: s(),
                message: s(),
                traceback: s(),
            },
            CallError::BadRequest(s()),
            CallError::NoSuchCommand(s()),
            CallError::SessionWorkerGone(s()),
            CallError::Unavailable(s()),
            CallError::AdapterFault(s()),
        ];
        let api = [
            "unauthorized",
            "forbidden",
            "unsupported-media-type",
            "no-such-pool",
            "cassette-miss",
        ];
        let mut written: Vec<&str> = calls.iter().map(CallError::kind).chain(api).collect();
        written.sort_unstable();
        let mut listed_sorted = listed.clone();
        listed_sorted.sort_unstable();
        assert_eq!(listed_sorted, written);
    }
}
