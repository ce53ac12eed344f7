//! The `snakepen` command line: run one call or a file of calls through an
//! adapter, or inspect an adapter component. Every flag is defined and
//! documented here.

mod advice;
mod progress;
mod replay;
mod run;
mod serve;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use snakepen::{
    Adapter, AdapterConfig, Affinity, Cassette, Host, PoolConfig, RecordMode, Request, Runtime,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "snakepen",
    version,
    about = "Run Python workers behind sandboxed WebAssembly adapters",
    after_help = "Exit status: 0 on success, 1 when the call returned an error or a replayed answer differs from its recording, 2 on bad usage, 3 when the adapter could not be loaded or configured or its Python workers could not start."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Look up short adapter names in DIR before the default places (repeatable).
    /// The defaults: $SNAKEPEN_PLUGIN_DIR, then target/plugins beside this executable or above the current directory.
    #[arg(long, global = true, value_name = "DIR")]
    plugin_dir: Vec<PathBuf>,

    /// Compile adapters on every start instead of using the compiled-adapter cache.
    #[arg(long, global = true)]
    no_cache: bool,

    /// What to log to stderr, as a tracing filter such as `info` or `snakepen=debug`.
    #[arg(
        long,
        global = true,
        env = "SNAKEPEN_LOG",
        default_value = "warn",
        value_name = "FILTER"
    )]
    log: String,

    /// How log lines look: `human` (the default) or `json` (one JSON object per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Send one request through an adapter and print the response payload as JSON on stdout.
    Call(CallArgs),
    /// Run a file of requests (JSON lines) concurrently and print a summary.
    Run(run::RunArgs),
    /// Show which contract version and world a component implements, and what it imports.
    Inspect(InspectArgs),
    /// Replay every request of a cassette through the replayer and report any answer that differs.
    Replay(replay::ReplayArgs),
    /// Serve the host over HTTP until SIGTERM or SIGINT (then drain and stop).
    Serve(serve::ServeArgs),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file: its keys, its values, its adapter and its module, starting nothing.
    Check(serve::ConfigCheckArgs),
}

/// What a host runs: its adapter and, when given a module, its Python workers.
#[derive(Args)]
struct HostArgs {
    /// The adapter: a short name found in the plugin directories (such as `mock`) or a path to a .wasm component.
    /// Default: `python-bridge` when --module is given.
    #[arg(long, short)]
    adapter: Option<String>,

    /// The adapter's configuration: a TOML file (*.toml) or a JSON file.
    #[arg(long, value_name = "FILE")]
    adapter_config: Option<PathBuf>,

    /// The Python module the workers serve: a file (handlers.py) or a dotted name (app.handlers).
    #[arg(long, short, value_name = "MODULE")]
    module: Option<String>,

    /// How many Python workers to run.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pool_size: usize,

    /// The Python interpreter for the workers.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "python3",
        env = "SNAKEPEN_PYTHON"
    )]
    python: PathBuf,

    /// How calls of one session find their worker: `hint` prefers the session's worker, `strict` requires it.
    #[arg(long, value_enum, default_value_t = AffinityArg::Hint)]
    affinity: AffinityArg,

    /// How long a session stays bound to its worker after its last call, in milliseconds.
    #[arg(long, value_name = "MS")]
    session_ttl_ms: Option<u64>,

    /// A module to import before the handlers (with the fork server, once for every worker), such as numpy. Repeatable.
    #[arg(long, value_name = "MODULE")]
    preload: Vec<String>,

    /// Start an interpreter for each worker instead of forking workers from one process that imported the module once (for modules that start threads or open connections at import).
    #[arg(long)]
    no_fork_server: bool,

    /// Serve this name of the module as a command too. By default the commands are the functions defined in the module (or the names in its __all__); an imported function is never one unless named here. Repeatable.
    #[arg(long, value_name = "NAME")]
    expose: Vec<String>,

    /// A directory to put first on the workers' sys.path (repeatable). A dotted --module is also looked up in the current directory.
    #[arg(long, value_name = "DIR")]
    python_path: Vec<PathBuf>,

    #[command(flatten)]
    cassette: CassetteArgs,
}

/// Recording and replaying calls.
#[derive(Args)]
struct CassetteArgs {
    /// Record the calls to, or replay them from, this cassette (a JSON Lines file).
    #[arg(long, value_name = "FILE")]
    cassette: Option<PathBuf>,

    /// When to record: `once` (the default: record if the cassette does not exist, else replay),
    /// `new_episodes`, `none` (replay only; the default when CI is set) or `all`.
    /// The environment variable SNAKEPEN_RECORD_MODE overrides it.
    #[arg(long, value_enum, value_name = "MODE", requires = "cassette")]
    record_mode: Option<ModeArg>,

    /// A payload field whose value must never be written to the cassette (a name, or a JSON pointer such as /auth/token). Repeatable.
    #[arg(long, value_name = "FIELD", requires = "cassette")]
    filter: Vec<String>,

    /// A payload field left out of matching, such as a timestamp (a name or a JSON pointer). Repeatable.
    #[arg(long, value_name = "FIELD", requires = "cassette")]
    ignore: Vec<String>,

    /// Match the session id as well as the command and payload.
    #[arg(long, requires = "cassette")]
    match_session: bool,

    /// Replay a request's last recording again once all of its recordings were played.
    #[arg(long, requires = "cassette")]
    allow_repeats: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Once,
    #[value(name = "new_episodes", alias = "new-episodes")]
    NewEpisodes,
    None,
    All,
}

impl CassetteArgs {
    fn cassette(&self) -> Option<Cassette> {
        let path = self.cassette.as_ref()?;
        let mut cassette = Cassette::new(path);
        if let Some(mode) = self.record_mode {
            cassette = cassette.mode(match mode {
                ModeArg::Once => RecordMode::Once,
                ModeArg::NewEpisodes => RecordMode::NewEpisodes,
                ModeArg::None => RecordMode::None,
                ModeArg::All => RecordMode::All,
            });
        }
        for field in &self.filter {
            cassette = cassette.filter(field);
        }
        for field in &self.ignore {
            cassette = cassette.ignore(field);
        }
        if self.match_session {
            cassette = cassette.match_session(true);
        }
        if self.allow_repeats {
            cassette = cassette.allow_repeats(true);
        }
        Some(cassette)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum AffinityArg {
    Hint,
    Strict,
}

impl HostArgs {
    /// Builds the host and waits for its workers, showing their progress on stderr.
    async fn build(&self, runtime: &Runtime, plugin_dirs: &[PathBuf]) -> Result<Host, Failure> {
        let cassette = self.cassette.cassette();
        let adapter = match (&self.adapter, &self.module) {
            (Some(adapter), _) => Some(adapter.clone()),
            (None, Some(_)) => Some("python-bridge".to_string()),
            // A cassette alone replays (or says what it needs to record).
            (None, None) if cassette.is_some() => None,
            (None, None) => {
                return Err(Failure::Usage(
                    "say which adapter to run with --adapter NAME (such as mock), or give Python handlers with --module FILE".into(),
                ));
            }
        };
        let mut builder = Host::builder().runtime(runtime);
        if let Some(adapter) = adapter {
            builder = builder.adapter(Adapter::parse(&adapter));
        }
        if let Some(cassette) = cassette {
            builder = builder.cassette(cassette);
        }
        for dir in plugin_dirs {
            builder = builder.plugin_dir(dir);
        }
        if let Some(file) = &self.adapter_config {
            builder = builder.config(AdapterConfig::file(file));
        }
        if let Some(module) = &self.module {
            let mut pool = PoolConfig::new(module.clone())
                .size(self.pool_size)
                .python(&self.python);
            pool.settings.affinity = match self.affinity {
                AffinityArg::Hint => Affinity::Hint,
                AffinityArg::Strict => Affinity::Strict,
            };
            if let Some(ms) = self.session_ttl_ms {
                pool.settings.session_ttl = Duration::from_millis(ms);
            }
            pool.settings.fork_server = !self.no_fork_server;
            pool.preload.extend(self.preload.iter().cloned());
            pool.expose.extend(self.expose.iter().cloned());
            pool.python_path.extend(self.python_path.iter().cloned());
            if !snakepen::pool::is_module_file(module)
                && let Ok(cwd) = std::env::current_dir()
            {
                // `--module app.handlers` names a package where the user stands.
                pool.python_path.push(cwd);
            }
            builder = builder.pool(pool);
        }
        let host = builder.build().await?;
        if let (Some(path), Some(mode)) = (&self.cassette.cassette, host.record_mode()) {
            let doing = if host.recorded_adapter().is_some() {
                "recording"
            } else {
                "replaying"
            };
            eprintln!("{doing} cassette {} (mode {mode})", path.display());
        }
        if let Some(pool) = host.pool() {
            progress::wait_ready(pool).await?;
        }
        Ok(host)
    }
}

/// Shuts the host down and, for a recording host, saves its cassette and says so.
async fn close(host: &Host) -> Result<(), Failure> {
    let saved = host.close().await?;
    if saved > 0 {
        eprintln!("saved {saved} new interactions to the cassette");
    }
    Ok(())
}

#[derive(Args)]
struct CallArgs {
    #[command(flatten)]
    host: HostArgs,

    /// Run the call in this session (calls of one session prefer one worker).
    #[arg(long)]
    session: Option<String>,

    /// Give up after this many milliseconds (default: 30 000).
    #[arg(long, value_name = "MS")]
    deadline_ms: Option<u64>,

    /// Print the whole response (payload and worker pid) instead of the payload alone.
    #[arg(long)]
    full: bool,

    /// The command to run, such as `ping`.
    command: String,

    /// The arguments as one JSON document, such as '{"x": 1}'. Omitted: no payload.
    payload: Option<String>,
}

#[derive(Args)]
struct InspectArgs {
    /// The component: a short name found in the plugin directories or a path to a .wasm file.
    adapter: String,

    /// Print the description as JSON.
    #[arg(long)]
    json: bool,
}

/// Errors that are the user's to fix, with the exit status they map to.
enum Failure {
    Call(snakepen::CallError),
    /// Replayed answers that differ from the recorded ones (already reported).
    Differs(String),
    Usage(String),
    Setup(anyhow::Error),
}

impl From<snakepen::Error> for Failure {
    fn from(e: snakepen::Error) -> Self {
        // snakepen's messages already include their cause.
        Failure::Setup(anyhow::anyhow!(advice::explained(&e)))
    }
}

impl From<snakepen::serve::ConfigError> for Failure {
    fn from(e: snakepen::serve::ConfigError) -> Self {
        // It names the file, the line and the key: the user's to fix.
        Failure::Usage(e.to_string())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Setup(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        // Colours for a person at a terminal; plain text for a log file or a pipe.
        LogFormat::Human => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().init(),
    }
    let tokio = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(tokio) => tokio,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match tokio.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Call(e)) => {
            // The kind first, for scripts; the message without saying it twice.
            let message = e.to_string();
            let spoken = format!("{}: ", e.kind().replace('-', " "));
            let message = message.strip_prefix(&spoken).unwrap_or(&message);
            eprintln!("error: {}: {message}", e.kind());
            ExitCode::from(1)
        }
        Err(Failure::Differs(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Setup(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let runtime = if cli.no_cache {
        Runtime::builder().no_cache().build()?
    } else {
        Runtime::new()?
    };
    match cli.command {
        Command::Call(args) => call(&runtime, &cli.plugin_dir, args).await,
        Command::Run(args) => run::run(&runtime, &cli.plugin_dir, args).await,
        Command::Inspect(args) => inspect(&runtime, &cli.plugin_dir, args),
        Command::Replay(args) => replay::replay(&runtime, &cli.plugin_dir, args).await,
        Command::Serve(args) => serve::serve(&runtime, &cli.plugin_dir, args).await,
        Command::Config(ConfigCommand::Check(args)) => {
            serve::check(&runtime, &cli.plugin_dir, args)
        }
    }
}

async fn call(runtime: &Runtime, plugin_dirs: &[PathBuf], args: CallArgs) -> Result<(), Failure> {
    let payload = match &args.payload {
        Some(text) => {
            let value: serde_json::Value = serde_json::from_str(text)
                .with_context(|| format!("PAYLOAD {text:?} is not valid JSON; quote it for the shell, as in '{{\"x\": 1}}'"))?;
            serde_json::to_vec(&value).expect("a JSON value always serializes")
        }
        None => Vec::new(),
    };
    let host = args.host.build(runtime, plugin_dirs).await?;

    let mut request = Request::new(args.command, payload);
    request.session = args.session;
    request.deadline = args.deadline_ms.map(Duration::from_millis);
    let result = host.call(request).await;
    close(&host).await?;
    let response = result.map_err(Failure::Call)?;

    let payload: serde_json::Value = match response.json() {
        Ok(value) => value,
        Err(_) => {
            serde_json::Value::String(String::from_utf8_lossy(&response.payload).into_owned())
        }
    };
    let shown = if args.full {
        serde_json::json!({ "payload": payload, "worker_pid": response.worker_pid })
    } else {
        payload
    };
    println!("{shown}");
    Ok(())
}

fn indent(text: &str) -> String {
    text.trim_end()
        .lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn inspect(runtime: &Runtime, plugin_dirs: &[PathBuf], args: InspectArgs) -> Result<(), Failure> {
    let mut dirs = plugin_dirs.to_vec();
    dirs.extend(snakepen::adapter::default_plugin_dirs());
    let path = Adapter::parse(&args.adapter).resolve(&dirs)?;
    let inspection = snakepen::adapter::inspect(runtime, &path)?;
    let info = &inspection.info;
    let contract = info
        .contract
        .as_ref()
        .map(|v| format!("snakepen:adapter@{v}"));
    let verdict = inspection.refusal.as_ref().map(|e| e.to_string());
    if args.json {
        let shown = serde_json::json!({
            "path": path,
            "contract": contract,
            "world": info.world,
            "exports": info.exports,
            "imports": info.imports,
            "host_contract": format!("snakepen:adapter@{}", snakepen::CONTRACT_VERSION),
            "host_runs": snakepen::adapter::supported_range(),
            "size_bytes": inspection.size_bytes,
            "compiled_bytes": inspection.compiled_bytes,
            "config_schema": inspection.config_schema.as_deref().map(|s| serde_json::from_str::<serde_json::Value>(s).unwrap_or_else(|_| s.into())),
            "limits": runtime.default_limits(),
            "refused": verdict,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&shown).expect("JSON values serialize")
        );
    } else {
        println!("component: {}", path.display());
        println!(
            "contract:  {}",
            contract
                .as_deref()
                .unwrap_or("none (not a snakepen adapter)")
        );
        println!("world:     {}", info.world.as_deref().unwrap_or("none"));
        println!("exports:");
        info.exports.iter().for_each(|e| println!("  {e}"));
        println!("imports:");
        info.imports.iter().for_each(|i| println!("  {i}"));
        println!("size:      {}", inspection.sizes());
        match &inspection.config_schema {
            Some(schema) => println!("configuration schema:\n{}", indent(schema)),
            None => println!("configuration schema: none declared"),
        }
        println!(
            "host runs: snakepen:adapter {}",
            snakepen::adapter::supported_range()
        );
        println!("sandbox (a host's defaults):");
        runtime
            .default_limits()
            .describe()
            .iter()
            .for_each(|line| println!("  {line}"));
    }
    match verdict {
        None => Ok(()),
        Some(reason) => Err(Failure::Setup(anyhow::anyhow!(reason))),
    }
}
