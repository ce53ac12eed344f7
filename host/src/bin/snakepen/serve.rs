//! `snakepen serve` and `snakepen config check`.

use crate::Failure;
use crate::host_flags::HostFlags;
use crate::overlay::Overlay;
use clap::Args;
use snakepen::serve::{ServeSettings, Server, ServiceConfig, Token};
use snakepen::{AdapterConfig, Runtime, RuntimeBuilder};
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    host: HostFlags,

    /// The address to listen on (default 127.0.0.1:8787; localhost:PORT means 127.0.0.1:PORT; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,

    /// A file holding the bearer token every request but /healthz and /readyz must carry
    /// (readable by its owner only). Overrides SNAKEPEN_TOKEN, which overrides server.token_file.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,

    /// Serve an address other machines can reach without a token (something else guards it).
    #[arg(long)]
    insecure_no_auth: bool,

    /// Development: when the module (or a .py file beside it) changes, start workers on the new code and retire the old ones after their calls; a module that does not import leaves the old workers serving.
    #[arg(long)]
    reload: bool,

    /// An origin (such as http://localhost:3000) whose web pages may call the server. Repeatable.
    #[arg(long, value_name = "ORIGIN")]
    allowed_origin: Vec<String>,

    /// A host name, besides the listen address and localhost, that requests may name in Host. Repeatable.
    #[arg(long, value_name = "NAME")]
    allowed_host: Vec<String>,

    /// How long a request's headers may take to arrive once begun, in milliseconds (default 10000).
    #[arg(long, value_name = "MS")]
    header_timeout_ms: Option<u64>,

    /// How long a connection may sit without a request before it is closed, in milliseconds (default 60000).
    #[arg(long, value_name = "MS")]
    idle_timeout_ms: Option<u64>,

    /// The most connections open at once (default 512); more get 503.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,

    /// Keep tracebacks, stderr, exit details, paths and function lists out of error bodies (logged with a request id).
    #[arg(long)]
    hide_internals: bool,

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
    /// The host these arguments describe.
    pub(crate) fn host(&self) -> &HostFlags {
        &self.host
    }

    /// The file (or an empty one) with the flags laid over it.
    fn config(&self) -> Result<ServiceConfig, Failure> {
        let mut o = self.host.overlay()?;
        if let Some(listen) = &self.listen {
            snakepen::serve::parse_listen(listen).map_err(|e| {
                Failure::Usage(format!(
                    "--listen {listen:?} is not an address ({e}); write it as 127.0.0.1:8787 or localhost:8787"
                ))
            })?;
            o.set("server", "listen", "--listen", listen.as_str());
        }
        if let Some(file) = &self.token_file {
            let file = o.absolute(file);
            o.set("server", "token_file", "--token-file", file);
        }
        if self.insecure_no_auth {
            o.set("server", "insecure_no_auth", "--insecure-no-auth", true);
        }
        let list = |items: &[String]| {
            toml::Value::Array(items.iter().map(|i| i.as_str().into()).collect())
        };
        if !self.allowed_origin.is_empty() {
            o.set(
                "server",
                "allowed_origins",
                "--allowed-origin",
                list(&self.allowed_origin),
            );
        }
        if !self.allowed_host.is_empty() {
            o.set(
                "server",
                "allowed_hosts",
                "--allowed-host",
                list(&self.allowed_host),
            );
        }
        let numbers = [
            (
                "header_timeout_ms",
                "--header-timeout-ms",
                self.header_timeout_ms,
            ),
            ("idle_timeout_ms", "--idle-timeout-ms", self.idle_timeout_ms),
            (
                "max_connections",
                "--max-connections",
                self.max_connections.map(|n| n as u64),
            ),
            (
                "max_body_bytes",
                "--max-body-bytes",
                self.max_body_bytes.map(|n| n as u64),
            ),
            ("body_timeout_ms", "--body-timeout-ms", self.body_timeout_ms),
            ("drain_grace_ms", "--drain-grace-ms", self.drain_grace_ms),
        ];
        for (key, flag, value) in numbers {
            if let Some(value) = value {
                o.set("server", key, flag, Overlay::number(value));
            }
        }
        if self.hide_internals {
            o.set("server", "hide_internals", "--hide-internals", true);
        }
        o.parse()
    }

    /// The server's settings: the file's and the flags', with the token
    /// from (first found) --token-file, SNAKEPEN_TOKEN, server.token_file.
    fn settings(&self, config: &ServiceConfig) -> Result<ServeSettings, Failure> {
        let mut settings = config.serve_settings()?;
        if self.token_file.is_none() {
            apply_environment_token(&mut settings)?;
        }
        settings.reload = self.reload;
        Ok(settings)
    }
}

/// Takes the token from SNAKEPEN_TOKEN when it is set.
fn apply_environment_token(settings: &mut ServeSettings) -> Result<(), Failure> {
    if let Some(value) = std::env::var_os("SNAKEPEN_TOKEN") {
        let value = value.into_string().map_err(|_| {
            Failure::Usage(
                "SNAKEPEN_TOKEN is not valid UTF-8; use a token of plain characters".into(),
            )
        })?;
        settings.token =
            Some(Token::new(&value, "SNAKEPEN_TOKEN").map_err(|e| Failure::Usage(e.to_string()))?);
    }
    Ok(())
}

/// Refuses to serve other machines without a token, naming the ways out.
fn check_exposure(settings: &ServeSettings) -> Result<(), Failure> {
    settings.check_exposure().map_err(|e| {
        Failure::Usage(format!(
            "{e}. Give a token with --token-file FILE, SNAKEPEN_TOKEN or server.token_file; listen on 127.0.0.1 or localhost; or, if something else guards the port, pass --insecure-no-auth (server.insecure_no_auth = true)"
        ))
    })
}

pub(crate) async fn serve(
    base: RuntimeBuilder,
    plugin_dirs: &[PathBuf],
    args: ServeArgs,
) -> Result<(), Failure> {
    let config = args.config()?;
    if config.adapter_name().is_none() && !config.has_cassette() {
        return Err(Failure::Usage(
            "say what to serve: --module FILE (Python handlers), --adapter NAME (such as mock), or a configuration file with [pool] or [adapter]".into(),
        ));
    }
    let settings = args.settings(&config)?;
    check_exposure(&settings)?;
    let hosts = crate::host_flags::start_pools(&config, base, plugin_dirs).await?;
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
    let mut workers = None;
    for (_, host) in &hosts {
        if let Some(pool) = host.pool() {
            crate::progress::wait_ready(pool).await?;
            *workers.get_or_insert(0) += pool.status().size;
        }
    }
    if let Some(workers) = workers {
        println!("snakepen serve: ready ({workers} workers)");
    }
    let server = Server::with_pools(hosts, settings);
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
    // As serve would run it: SNAKEPEN_TOKEN, when set, is the token.
    let mut settings = config.serve_settings()?;
    apply_environment_token(&mut settings)?;
    check_exposure(&settings)?;
    let mut summary = vec![format!("listens on {}", settings.listen)];
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
    let pools = config.pools()?;
    let several = pools.len() > 1;
    for named in pools {
        let pool = named.config;
        let name = if several {
            format!("pool {}: ", named.name)
        } else {
            String::new()
        };
        summary.push(format!(
            "{name}{} workers of {} (affinity {}, fork server {})",
            pool.size,
            pool.module,
            pool.settings.affinity,
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
