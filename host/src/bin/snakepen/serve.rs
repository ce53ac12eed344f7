//! `snakepen serve` and `snakepen config check`.

use crate::{AffinityArg, Failure};
use clap::Args;
use snakepen::serve::{Server, ServiceConfig};
use snakepen::{Adapter, AdapterConfig, Affinity, Runtime};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The configuration file (TOML; see snakepen.example.toml). Flags override it.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,

    /// The address to listen on (default 127.0.0.1:8787; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,

    /// The adapter: a short name (such as mock) or a path to a .wasm component.
    /// Default: python-bridge when there is a module.
    #[arg(long, short)]
    adapter: Option<String>,

    /// The adapter's configuration: a TOML file (*.toml) or a JSON file.
    #[arg(long, value_name = "FILE")]
    adapter_config: Option<PathBuf>,

    /// The Python module the workers serve: a file (handlers.py) or a dotted name.
    #[arg(long, short, value_name = "MODULE")]
    module: Option<String>,

    /// How many Python workers to run.
    #[arg(long, value_name = "N")]
    pool_size: Option<usize>,

    /// The Python interpreter for the workers.
    #[arg(long, value_name = "PATH", env = "SNAKEPEN_PYTHON")]
    python: Option<PathBuf>,

    /// How calls of one session find their worker.
    #[arg(long, value_enum)]
    affinity: Option<AffinityArg>,

    /// A module to import before the handlers (with the fork server, once for every worker). Repeatable.
    #[arg(long, value_name = "MODULE")]
    preload: Vec<String>,

    /// Start an interpreter for each worker instead of forking them from a fork server.
    #[arg(long)]
    no_fork_server: bool,

    /// The largest request body accepted, in bytes (larger gets 413).
    #[arg(long, value_name = "BYTES")]
    max_body_bytes: Option<usize>,

    /// How long a client may take to send its request body, in milliseconds (slower gets 408).
    #[arg(long, value_name = "MS")]
    body_timeout_ms: Option<u64>,

    /// How long calls in flight may take to finish after SIGTERM or SIGINT, in milliseconds.
    #[arg(long, value_name = "MS")]
    drain_grace_ms: Option<u64>,
}

impl ServeArgs {
    /// The file (or an empty one) with the flags laid over it.
    fn config(&self) -> Result<ServiceConfig, Failure> {
        let cwd = std::env::current_dir().unwrap_or_default();
        let (path, text) = match &self.config {
            Some(file) => {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    Failure::Usage(format!(
                        "cannot read the configuration file {} ({e}); check the path given to --config",
                        file.display()
                    ))
                })?;
                // The file as written first, so that its errors name its own lines.
                ServiceConfig::parse(file, &text)?;
                (file.clone(), text)
            }
            None => (cwd.join("(command line)"), String::new()),
        };
        let mut doc: toml::Table = toml::from_str(&text).unwrap_or_default();
        let before = doc.clone();
        let mut set = |section: &str, key: &str, value: toml::Value| {
            let table = doc
                .entry(section)
                .or_insert_with(|| toml::Value::Table(Default::default()));
            if let Some(table) = table.as_table_mut() {
                table.insert(key.into(), value);
            }
        };
        let absolute = |p: &Path| cwd.join(p).display().to_string();
        if let Some(listen) = &self.listen {
            set("server", "listen", listen.clone().into());
        }
        if let Some(bytes) = self.max_body_bytes {
            set("server", "max_body_bytes", (bytes as i64).into());
        }
        if let Some(ms) = self.body_timeout_ms {
            set("server", "body_timeout_ms", (ms as i64).into());
        }
        if let Some(ms) = self.drain_grace_ms {
            set("server", "drain_grace_ms", (ms as i64).into());
        }
        if let Some(adapter) = &self.adapter {
            let name = match Adapter::parse(adapter) {
                Adapter::Path(path) => absolute(&path),
                Adapter::Named(name) => name,
            };
            set("adapter", "name", name.into());
        }
        if let Some(file) = &self.adapter_config {
            set("adapter", "config_file", absolute(file).into());
        }
        if let Some(module) = &self.module {
            let module = if module.ends_with(".py") || module.contains('/') {
                absolute(Path::new(module))
            } else {
                module.clone()
            };
            set("pool", "module", module.into());
        }
        if let Some(size) = self.pool_size {
            set("pool", "size", (size as i64).into());
        }
        if let Some(python) = &self.python {
            set("pool", "python", python.display().to_string().into());
        }
        if let Some(affinity) = self.affinity {
            let name = match affinity {
                AffinityArg::Hint => "hint",
                AffinityArg::Strict => "strict",
            };
            set("pool", "affinity", name.into());
        }
        if !self.preload.is_empty() {
            let list: Vec<toml::Value> = self.preload.iter().map(|m| m.clone().into()).collect();
            set("pool", "preload", toml::Value::Array(list));
        }
        if self.no_fork_server {
            set("pool", "fork_server", false.into());
        }
        let text = if doc == before {
            text
        } else {
            toml::to_string(&doc).expect("a TOML table serializes")
        };
        ServiceConfig::parse(&path, &text)
            .map_err(|e| Failure::Usage(format!("{e} (with the command line's flags applied)")))
    }
}

pub(crate) async fn serve(
    runtime: &Runtime,
    plugin_dirs: &[PathBuf],
    args: ServeArgs,
) -> Result<(), Failure> {
    let config = args.config()?;
    if config.adapter_name().is_none() && config.cassette.is_none() {
        return Err(Failure::Usage(
            "say what to serve: --module FILE (Python handlers), --adapter NAME (such as mock), or a configuration file with [pool] or [adapter]".into(),
        ));
    }
    let settings = config.serve_settings()?;
    let mut builder = config.host_builder()?.runtime(runtime);
    for dir in plugin_dirs {
        builder = builder.plugin_dir(dir);
    }
    let host = builder.build().await?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| {
            Failure::Setup(anyhow::anyhow!(
                "cannot listen on {} ({e}); pick another address with --listen or server.listen",
                settings.listen
            ))
        })?;
    let address = listener
        .local_addr()
        .map_err(|e| Failure::Setup(e.into()))?;
    // Tests and scripts read this line to find the port.
    println!("snakepen serve: listening on http://{address}");
    if let Some(pool) = host.pool() {
        crate::progress::wait_ready(pool).await?;
        println!("snakepen serve: ready ({} workers)", pool.status().size);
    }
    let server = Server::new(host, settings);
    server
        .run(listener, shutdown_signal())
        .await
        .map_err(|e| Failure::Setup(anyhow::anyhow!("the server stopped: {e}")))?;
    println!("snakepen serve: stopped");
    Ok(())
}

/// Resolves at the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM and SIGINT; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

#[derive(Args)]
pub(crate) struct ConfigCheckArgs {
    /// The configuration file to check.
    file: PathBuf,
}

/// Checks a configuration file: it parses, its values are valid, and its
/// adapter and module can be found (nothing is started).
pub(crate) fn check(
    runtime: &Runtime,
    plugin_dirs: &[PathBuf],
    args: ConfigCheckArgs,
) -> Result<(), Failure> {
    let config = ServiceConfig::load(&args.file)?;
    let mut summary = vec![format!("listens on {}", config.serve_settings()?.listen)];
    if let Some(adapter) = config.adapter() {
        let mut dirs = plugin_dirs.to_vec();
        dirs.extend(config.plugin_dirs());
        dirs.extend(snakepen::adapter::default_plugin_dirs());
        let path = adapter
            .resolve(&dirs)
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let inspection = snakepen::adapter::inspect(runtime, &path)?;
        if let Some(refusal) = inspection.refusal {
            return Err(Failure::Usage(format!(
                "{}: {refusal}",
                args.file.display()
            )));
        }
        let name = config.adapter_name().unwrap_or_default();
        summary.push(format!("adapter {name} ({})", path.display()));
    }
    if let Some(file) = config.adapter_config_file() {
        AdapterConfig::file(file)
            .check()
            .map_err(|e| Failure::Usage(e.to_string()))?;
    }
    if let Some(pool) = config.pool_config()? {
        let affinity = match pool.settings.affinity {
            Affinity::Hint => "hint",
            Affinity::Strict => "strict",
        };
        summary.push(format!(
            "{} workers of {} (affinity {affinity}, fork server {})",
            pool.size,
            pool.module,
            if pool.settings.fork_server {
                "on"
            } else {
                "off"
            }
        ));
    }
    if let Some(cassette) = config.cassette()? {
        summary.push(format!("cassette {}", cassette.path().display()));
    }
    println!("{}: valid; {}", args.file.display(), summary.join("; "));
    Ok(())
}
