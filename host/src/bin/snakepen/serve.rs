//! `snakepen serve` and `snakepen config check`.

use crate::{AffinityArg, Failure};
use clap::Args;
use snakepen::serve::{ServeSettings, Server, ServiceConfig, Token};
use snakepen::{Adapter, AdapterConfig, Affinity, Runtime};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The configuration file (TOML; see snakepen.example.toml). Flags override it.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,

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

    /// How long a session stays bound to its worker after its last call, in milliseconds.
    #[arg(long, value_name = "MS")]
    session_ttl_ms: Option<u64>,

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

    /// Serve this name of the module as a command too (by default only the functions defined in the module, or the names in its __all__). Repeatable.
    #[arg(long, value_name = "NAME")]
    expose: Vec<String>,

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
        let has_pool = doc.contains_key("pool") || self.module.is_some();
        // The keys a flag set, with the flag: an error about one names the flag.
        let mut flags: Vec<(String, &str)> = Vec::new();
        let mut set = |section: &str, key: &str, value: toml::Value| {
            flags.push((format!("{section}.{key}"), flag_of(section, key)));
            let table = doc
                .entry(section)
                .or_insert_with(|| toml::Value::Table(Default::default()));
            if let Some(table) = table.as_table_mut() {
                table.insert(key.into(), value);
            }
        };
        let absolute = |p: &Path| cwd.join(p).display().to_string();
        if let Some(listen) = &self.listen {
            snakepen::serve::parse_listen(listen).map_err(|e| {
                Failure::Usage(format!(
                    "--listen {listen:?} is not an address ({e}); write it as 127.0.0.1:8787 or localhost:8787"
                ))
            })?;
            set("server", "listen", listen.clone().into());
        }
        if let Some(file) = &self.token_file {
            set("server", "token_file", absolute(file).into());
        }
        if self.insecure_no_auth {
            set("server", "insecure_no_auth", true.into());
        }
        let list =
            |items: &[String]| toml::Value::Array(items.iter().map(|i| i.clone().into()).collect());
        if !self.allowed_origin.is_empty() {
            set("server", "allowed_origins", list(&self.allowed_origin));
        }
        if !self.allowed_host.is_empty() {
            set("server", "allowed_hosts", list(&self.allowed_host));
        }
        if let Some(ms) = self.header_timeout_ms {
            set("server", "header_timeout_ms", (ms as i64).into());
        }
        if let Some(ms) = self.idle_timeout_ms {
            set("server", "idle_timeout_ms", (ms as i64).into());
        }
        if let Some(n) = self.max_connections {
            set("server", "max_connections", (n as i64).into());
        }
        if self.hide_internals {
            set("server", "hide_internals", true.into());
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
            let module = if snakepen::pool::is_module_file(module) {
                absolute(Path::new(module))
            } else {
                // `--module app.handlers` names a package where the user stands.
                let here = toml::Value::Array(vec![cwd.display().to_string().into()]);
                set("pool", "python_path", here);
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
            set("pool", "preload", list(&self.preload));
        }
        if self.no_fork_server {
            set("pool", "fork_server", false.into());
        }
        if !self.expose.is_empty() {
            set("pool", "expose", list(&self.expose));
        }
        if let Some(ms) = self.session_ttl_ms {
            if !has_pool {
                return Err(Failure::Usage(
                    "--session-ttl-ms is a setting of the pool: give the handlers with --module (or [pool] in the configuration file)".into(),
                ));
            }
            set("pool", "session_ttl_ms", (ms as i64).into());
        }
        let text = if doc == before {
            text
        } else {
            toml::to_string(&doc).expect("a TOML table serializes")
        };
        ServiceConfig::parse(&path, &text).map_err(|e| {
            // A flag's value is the flag's to fix, not a line of a file the user never wrote.
            match flags
                .iter()
                .find(|(key, _)| e.message.contains(&format!("`{key}`")))
            {
                Some((key, flag)) => {
                    Failure::Usage(e.message.replace(&format!("`{key}`"), &format!("`{flag}`")))
                }
                None => Failure::Usage(format!("{e} (with the command line's flags applied)")),
            }
        })
    }

    /// The server's settings: the file's and the flags', with the token
    /// from (first found) --token-file, SNAKEPEN_TOKEN, server.token_file.
    fn settings(&self, config: &ServiceConfig) -> Result<ServeSettings, Failure> {
        let mut settings = config.serve_settings()?;
        if self.token_file.is_none() {
            apply_environment_token(&mut settings)?;
        }
        Ok(settings)
    }
}

/// The flag that sets `section.key`.
fn flag_of(section: &str, key: &str) -> &'static str {
    match (section, key) {
        ("server", "listen") => "--listen",
        ("server", "token_file") => "--token-file",
        ("server", "max_body_bytes") => "--max-body-bytes",
        ("server", "body_timeout_ms") => "--body-timeout-ms",
        ("server", "drain_grace_ms") => "--drain-grace-ms",
        ("server", "header_timeout_ms") => "--header-timeout-ms",
        ("server", "idle_timeout_ms") => "--idle-timeout-ms",
        ("server", "max_connections") => "--max-connections",
        ("server", "insecure_no_auth") => "--insecure-no-auth",
        ("server", "allowed_origins") => "--allowed-origin",
        ("server", "allowed_hosts") => "--allowed-host",
        ("server", "hide_internals") => "--hide-internals",
        ("pool", "python") => "--python",
        ("pool", "affinity") => "--affinity",
        ("pool", "preload") => "--preload",
        ("pool", "expose") => "--expose",
        ("pool", "fork_server") => "--no-fork-server",
        ("pool", "module") => "--module",
        ("pool", "size") => "--pool-size",
        ("pool", "session_ttl_ms") => "--session-ttl-ms",
        ("adapter", "name") => "--adapter",
        ("adapter", "config_file") => "--adapter-config",
        _ => "a flag",
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
    let settings = args.settings(&config)?;
    check_exposure(&settings)?;
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
