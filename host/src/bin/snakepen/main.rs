//! The `snakepen` command line: run one call or a file of calls through an
//! adapter, or inspect an adapter component. Every flag is defined and
//! documented here.

mod advice;
mod doctor;
mod functions;
mod host_flags;
mod overlay;
mod payload;
mod progress;
mod replay;
mod run;
mod serve;

use clap::{Args, Parser, Subcommand, ValueEnum};
use host_flags::HostFlags;
use snakepen::{Adapter, Host, Request, Runtime, RuntimeBuilder};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// mimalloc rather than glibc's malloc: the HTTP path allocates dozens of
/// small blocks per call, and this halves what they cost. (The library
/// leaves the choice to the program that embeds it.)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

    /// Threads that serve calls (HTTP, the adapters, the pool's I/O). Default: the cores the pool's
    /// Python workers leave free, at least 1 (with no pool, every core).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
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
    /// Check what a first run needs (Python, the plugins, the wasm toolchain, the adapter cache, the descriptor limit, Ray) and print the command that fixes each problem.
    Doctor(doctor::DoctorArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file: its keys, its values, its adapter and its module, starting nothing.
    Check(serve::ConfigCheckArgs),
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
    host: HostFlags,

    /// Run the call in this session (calls of one session prefer one worker).
    #[arg(long)]
    session: Option<String>,

    /// Give up after this many milliseconds (default: 30 000).
    #[arg(long, value_name = "MS")]
    deadline_ms: Option<u64>,

    /// Print the whole response (payload and worker pid) instead of the payload alone.
    #[arg(long)]
    full: bool,

    /// Stream the answer: print each chunk a streaming handler yields as one JSON line as it comes, then its result. Ctrl-C stops the handler (its generator is closed) before the command exits.
    #[arg(long)]
    stream: bool,

    /// The command to run, such as `ping`.
    command: String,

    /// The arguments as one JSON document, such as '{"x": 1}'. Omitted: no payload.
    payload: Option<String>,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["adapter", "module"])))]
struct InspectArgs {
    /// The component: a short name found in the plugin directories or a path to a .wasm file.
    adapter: Option<String>,

    /// Describe this Python module's handlers instead (parameters, docstrings, payload schemas), importing it once as a worker would; nothing is served.
    #[arg(long, value_name = "FILE.py|NAME", conflicts_with = "adapter")]
    module: Option<String>,

    /// The interpreter that imports the module (default: python3).
    #[arg(long, value_name = "PATH", env = "SNAKEPEN_PYTHON")]
    python: Option<PathBuf>,

    /// A directory put on the module's sys.path. Repeatable.
    #[arg(long, value_name = "DIR", requires = "module")]
    python_path: Vec<PathBuf>,

    /// Serve this name of the module as a command too. Repeatable.
    #[arg(long, value_name = "NAME", requires = "module")]
    expose: Vec<String>,

    /// Print the description as JSON.
    #[arg(long)]
    json: bool,
}

/// Errors that are the user's to fix, with the exit status they map to.
enum Failure {
    Call(snakepen::CallError),
    /// Calls that failed, or replayed answers that differ from the recorded
    /// ones (already reported): exit status 1.
    Failed(String),
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
    let threads = cli
        .threads
        .map_or_else(|| default_threads(&cli), usize::from);
    let tokio = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
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
        Err(Failure::Failed(e)) => {
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

/// The cores the pool's workers leave free, at least one. A call's work on
/// this side is small: on a machine the workers fill, a thread more costs
/// more in wake-ups between threads than it brings (measured in
/// bench/SERVE.md: on 2 cores with 2 workers, one thread spent 36 µs of CPU
/// per HTTP call where two spent 56 µs, and served 20 % more calls).
fn default_threads(cli: &Cli) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let host = match &cli.command {
        Command::Call(args) => &args.host,
        Command::Run(args) => args.host(),
        Command::Serve(args) => args.host(),
        _ => return cores,
    };
    // A configuration with a mistake is reported once the command runs.
    let workers = host.pool_size().unwrap_or(0);
    cores.saturating_sub(workers).max(1)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    // The runtime's settings; a command that builds a host from flags and a
    // file raises its limits to theirs before building it.
    let base = if cli.no_cache {
        Runtime::builder().no_cache()
    } else {
        Runtime::builder()
    };
    let dirs = &cli.plugin_dir;
    match cli.command {
        Command::Call(args) => call(base, dirs, args).await,
        Command::Run(args) => run::run(base, dirs, args).await,
        Command::Inspect(args) => match &args.module {
            Some(module) => {
                functions::inspect_module(functions::ModuleArgs {
                    module,
                    python: args.python.clone(),
                    python_path: &args.python_path,
                    expose: &args.expose,
                    json: args.json,
                })
                .await
            }
            None => inspect(&base.build()?, dirs, args),
        },
        Command::Replay(args) => replay::replay(&base.build()?, dirs, args).await,
        Command::Serve(args) => serve::serve(base, dirs, args).await,
        Command::Config(ConfigCommand::Check(args)) => serve::check(&base.build()?, dirs, args),
        Command::Doctor(args) => doctor::doctor(dirs, args),
    }
}

async fn call(
    base: RuntimeBuilder,
    plugin_dirs: &[PathBuf],
    args: CallArgs,
) -> Result<(), Failure> {
    let payload = match &args.payload {
        Some(text) => payload::payload_of(text)?,
        None => Vec::new(),
    };
    let host = args.host.build(base, plugin_dirs).await?;

    let mut request = Request::new(args.command, payload);
    request.session = args.session;
    request.deadline = args.deadline_ms.map(Duration::from_millis);
    let result = if args.stream {
        // One listener for the whole call: a Ctrl-C that lands between two
        // chunks is kept until it is read, where a `ctrl_c()` made afresh
        // in each wait would miss it and leave the command streaming on.
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::interrupt()) {
            Ok(mut interrupt) => streamed(&host, request, &mut interrupt)
                .await
                .map_err(Failure::Call),
            Err(error) => Err(Failure::Failed(format!(
                "cannot listen for Ctrl-C to stop the stream ({error}); run without --stream"
            ))),
        }
    } else {
        host.call(request).await.map(Some).map_err(Failure::Call)
    };
    close(&host).await?;
    let Some(response) = result? else {
        return Err(Failure::Failed("interrupted: the call was stopped".into()));
    };

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

/// Prints each chunk of a streamed call as one line as it comes; its end,
/// or `None` when Ctrl-C stopped it (the stream is dropped first, which
/// closes the handler's generator on its worker).
async fn streamed(
    host: &snakepen::Host,
    request: Request,
    interrupt: &mut tokio::signal::unix::Signal,
) -> Result<Option<snakepen::Response>, snakepen::CallError> {
    use tokio::io::AsyncWriteExt;
    let mut stream = host.call_stream(request);
    let mut out = tokio::io::stdout();
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            _ = interrupt.recv() => return Ok(None),
        };
        match item {
            Some(Ok(snakepen::StreamItem::Chunk(mut chunk))) => {
                chunk.push(b'\n');
                // A reader that stops reading must not keep Ctrl-C from working.
                let written = tokio::select! {
                    written = async {
                        out.write_all(&chunk).await?;
                        out.flush().await
                    } => written,
                    _ = interrupt.recv() => return Ok(None),
                };
                if written.is_err() {
                    return Ok(None); // stdout closed (`| head`): stop the call
                }
            }
            Some(Ok(snakepen::StreamItem::End(response))) => return Ok(Some(response)),
            Some(Err(error)) => return Err(error),
            None => return Ok(None),
        }
    }
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
    let adapter = args.adapter.as_deref().unwrap_or_default();
    let path = Adapter::parse(adapter).resolve(&dirs)?;
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
            "ignored_exports": info.ignored_exports(),
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
        let ignored = info.ignored_exports();
        for export in &info.exports {
            if info.contract.is_some() && ignored.contains(&export.as_str()) {
                println!("  {export}   (not part of the contract: the host ignores it)");
            } else {
                println!("  {export}");
            }
        }
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
