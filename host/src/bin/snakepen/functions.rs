//! `snakepen inspect --module`: a module's handlers as its workers would
//! describe them (the same description `GET /v1/functions` serves),
//! printed without starting a pool or a server.

use crate::Failure;
use snakepen::pool::{ModuleDescription, describe_module};
use snakepen::{Handler, ParameterKind, PoolConfig};
use std::path::{Path, PathBuf};

/// What `inspect --module` was given.
pub(crate) struct ModuleArgs<'a> {
    pub module: &'a str,
    pub python: Option<PathBuf>,
    pub python_path: &'a [PathBuf],
    pub expose: &'a [String],
    pub json: bool,
}

pub(crate) async fn inspect_module(args: ModuleArgs<'_>) -> Result<(), Failure> {
    let here = std::env::current_dir().map_err(anyhow::Error::from)?;
    let absolute = |p: &Path| here.join(p);
    let dotted = !snakepen::pool::is_module_file(args.module);
    let module = if dotted {
        args.module.to_string()
    } else {
        absolute(Path::new(args.module)).display().to_string()
    };
    let mut config = PoolConfig::new(module);
    if let Some(python) = args.python {
        config.python = python;
    }
    config
        .python_path
        .extend(args.python_path.iter().map(|p| absolute(p)));
    if dotted {
        // As for `call` and `serve`: a dotted name is looked up where the user stands.
        config.python_path.push(here.clone());
    }
    config.expose.extend(args.expose.iter().cloned());
    let description = describe_module(&config).await?;
    if args.json {
        let text = serde_json::to_string_pretty(&description).expect("JSON values serialize");
        println!("{text}");
    } else {
        print!("{}", render(&description));
    }
    Ok(())
}

/// The description as a person reads it: one signature per handler, its
/// kind and its docstring.
fn render(description: &ModuleDescription) -> String {
    let mut out = format!(
        "module:  {}{}\npython:  {}\n",
        description.module,
        description
            .file
            .as_deref()
            .map(|f| format!(" ({f})"))
            .unwrap_or_default(),
        description.python
    );
    if description.handlers.is_empty() {
        out.push_str("handlers: none (a handler is a function defined in the module, or listed in its __all__)\n");
    }
    for handler in &description.handlers {
        out.push_str(&format!("\n{}\n", signature(handler)));
        let kind = serde_json::to_value(handler.kind).expect("a kind serializes");
        out.push_str(&format!("  kind: {}\n", kind.as_str().unwrap_or_default()));
        if let Some(doc) = &handler.doc {
            for line in doc.lines() {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    for name in &description.shadowed {
        out.push_str(&format!(
            "\nnote: `{name}` is hidden by snakepen's built-in of that name\n"
        ));
    }
    out
}

/// `name(a: int, b=2, *, c) -> str`, as Python would write it.
fn signature(handler: &Handler) -> String {
    let mut parts = Vec::new();
    let mut keyword_marker_needed = true;
    for (i, p) in handler.parameters.iter().enumerate() {
        let mut text = match p.kind {
            ParameterKind::VarPositional => {
                keyword_marker_needed = false;
                format!("*{}", p.name)
            }
            ParameterKind::VarKeyword => format!("**{}", p.name),
            ParameterKind::KeywordOnly if keyword_marker_needed => {
                keyword_marker_needed = false;
                parts.push("*".to_string());
                p.name.clone()
            }
            _ => p.name.clone(),
        };
        if let Some(annotation) = &p.annotation {
            text.push_str(&format!(": {annotation}"));
        }
        let default = p
            .default
            .as_ref()
            .map(|d| d.to_string())
            .or_else(|| p.default_repr.clone());
        if let Some(default) = default {
            text.push_str(&if p.annotation.is_some() {
                format!(" = {default}")
            } else {
                format!("={default}")
            });
        }
        parts.push(text);
        let last_positional_only = p.kind == ParameterKind::PositionalOnly
            && handler
                .parameters
                .get(i + 1)
                .is_none_or(|n| n.kind != ParameterKind::PositionalOnly);
        if last_positional_only {
            parts.push("/".to_string());
        }
    }
    let returns = handler
        .returns
        .as_deref()
        .map(|r| format!(" -> {r}"))
        .unwrap_or_default();
    let prefix = match handler.kind {
        snakepen::HandlerKind::Async | snakepen::HandlerKind::AsyncGenerator => "async def ",
        _ => "def ",
    };
    format!("{prefix}{}({}){returns}", handler.name, parts.join(", "))
}
