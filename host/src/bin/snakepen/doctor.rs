//! `snakepen doctor`: checks what a first run needs, and for each problem
//! prints the one command that fixes it. Exits 1 when something is missing.

use crate::Failure;
use clap::Args;
use snakepen::serve::ServiceConfig;
use snakepen::{Adapter, PoolConfig};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Args)]
pub(crate) struct DoctorArgs {
    /// Check what this configuration file needs too (its pools' interpreters, Ray, its adapter, its limits).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// The interpreter to check when no configuration names one (default python3).
    #[arg(long, value_name = "PATH", env = "SNAKEPEN_PYTHON")]
    python: Option<PathBuf>,
}

/// One check's verdict.
enum Verdict {
    Ok(String),
    /// Worth knowing, not in the way.
    Note(String),
    /// In the way: what is wrong, and the command that fixes it.
    Problem {
        what: String,
        fix: String,
    },
}

struct Check {
    name: &'static str,
    verdict: Verdict,
}

pub(crate) fn doctor(plugin_dirs: &[PathBuf], args: DoctorArgs) -> Result<(), Failure> {
    let config = match &args.config {
        Some(file) => Some(ServiceConfig::load(file)?),
        None => None,
    };
    let pools: Vec<PoolConfig> = match &config {
        Some(config) => config.pools()?.into_iter().map(|p| p.config).collect(),
        None => Vec::new(),
    };
    let mut interpreters: Vec<PathBuf> = pools.iter().map(|p| p.python.clone()).collect();
    if interpreters.is_empty() {
        interpreters.push(args.python.clone().unwrap_or_else(|| "python3".into()));
    }
    interpreters.sort();
    interpreters.dedup();
    let mut checks = Vec::new();
    for python in &interpreters {
        checks.push(python_check(python));
    }
    let mut dirs = plugin_dirs.to_vec();
    if let Some(config) = &config {
        dirs.extend(config.plugin_dirs());
    }
    dirs.extend(snakepen::adapter::default_plugin_dirs());
    let plugins = plugins_check(&dirs, config.as_ref());
    let plugins_missing = matches!(plugins.verdict, Verdict::Problem { .. });
    checks.push(plugins);
    checks.push(toolchain_check(plugins_missing));
    checks.push(cache_check());
    checks.push(descriptors_check(&pools, config.as_ref()));
    for pool in pools.iter().filter(|p| p.ray.is_some()) {
        checks.push(ray_check(&pool.python));
    }
    let mut problems = 0;
    for check in &checks {
        match &check.verdict {
            Verdict::Ok(what) => println!("ok       {:<10} {what}", check.name),
            Verdict::Note(what) => println!("note     {:<10} {what}", check.name),
            Verdict::Problem { what, fix } => {
                problems += 1;
                println!("PROBLEM  {:<10} {what}\n         fix: {fix}", check.name);
            }
        }
    }
    if problems > 0 {
        return Err(Failure::Failed(format!(
            "{problems} problem{} found; run the fix above, then `snakepen doctor` again",
            if problems == 1 { "" } else { "s" }
        )));
    }
    println!("everything a first run needs is here");
    Ok(())
}

/// Runs `python` with `code`; its stdout, or why it could not.
fn python_says(python: &Path, code: &str) -> Result<String, String> {
    match Command::new(python).args(["-I", "-c", code]).output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).trim().into()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("it failed")
            .to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn python_check(python: &Path) -> Check {
    let code = "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable)";
    let verdict = match python_says(python, code) {
        Ok(text) => {
            let mut lines = text.lines();
            let version = lines.next().unwrap_or_default().to_string();
            let executable = lines.next().unwrap_or_default();
            let numbers: Vec<u32> = version.split('.').filter_map(|n| n.parse().ok()).collect();
            if numbers.as_slice() >= [3, 9].as_slice() {
                Verdict::Ok(format!("{} is Python {version} ({executable})", python.display()))
            } else {
                Verdict::Problem {
                    what: format!("{} is Python {version}; workers need 3.9 or newer", python.display()),
                    fix: "apt-get install python3 (3.9+), then pass its path with --python PATH or pool.python".into(),
                }
            }
        }
        Err(why) => Verdict::Problem {
            what: format!("cannot run {} ({why})", python.display()),
            fix: "apt-get install python3, or pass an interpreter's path with --python PATH (or SNAKEPEN_PYTHON)".into(),
        },
    };
    Check {
        name: "python",
        verdict,
    }
}

fn plugins_check(dirs: &[PathBuf], config: Option<&ServiceConfig>) -> Check {
    let mut wanted: Vec<String> = ["python-bridge", "mock", "recorder", "replayer"]
        .map(String::from)
        .to_vec();
    if let Some(name) = config.and_then(ServiceConfig::adapter_name)
        && !wanted.contains(&name)
    {
        wanted.push(name);
    }
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in &wanted {
        match Adapter::parse(name).resolve(dirs) {
            Ok(path) => found.push(path),
            Err(_) => missing.push(name.clone()),
        }
    }
    let verdict = if missing.is_empty() {
        let folder = found
            .first()
            .and_then(|p| p.parent())
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        Verdict::Ok(format!("{} adapters built, in {folder}", found.len()))
    } else {
        Verdict::Problem {
            what: format!(
                "no {} in the plugin directories ({})",
                missing.join(", "),
                dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
            fix: "just plugins (in snakepen's checkout), or --plugin-dir DIR naming a folder that has them".into(),
        }
    };
    Check {
        name: "plugins",
        verdict,
    }
}

/// The wasm toolchain that builds the plugins from source: rustup's
/// wasm32-wasip2 target, or Debian's packages (../shared/GUEST_TOOLCHAIN.md).
fn toolchain_check(plugins_missing: bool) -> Check {
    let rustup = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == "wasm32-wasip2")
        });
    let debian = [
        "rustc-web",
        "cargo-web",
        "rust-web-src",
        "lld-19",
        "wasi-libc",
    ]
    .iter()
    .all(|pkg| {
        Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", pkg])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
    });
    let verdict = match (rustup, debian, plugins_missing) {
        (true, _, _) => Verdict::Ok("rustup's wasm32-wasip2 target".into()),
        (_, true, _) => Verdict::Ok("Debian's rustc-web route (-Zbuild-std)".into()),
        (false, false, false) => Verdict::Note(
            "no wasm toolchain, but the plugins are built; `just plugins` installs one to rebuild them".into(),
        ),
        (false, false, true) => Verdict::Problem {
            what: "no wasm32-wasip2 toolchain to build the plugins with".into(),
            fix: "rustup target add wasm32-wasip2   (or just plugins, which installs Debian's route)".into(),
        },
    };
    Check {
        name: "toolchain",
        verdict,
    }
}

/// The compiled-adapter cache: present (or makeable) and writable.
fn cache_check() -> Check {
    let Some(dir) = dirs::cache_dir().map(|d| d.join("snakepen").join("compiled")) else {
        return Check {
            name: "cache",
            verdict: Verdict::Note("no cache folder for this user (no $HOME or $XDG_CACHE_HOME): adapters compile at every start".into()),
        };
    };
    let probe = dir.join(".doctor-probe");
    let writable = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&probe, b""))
        .and_then(|()| std::fs::remove_file(&probe));
    let verdict = match writable {
        Ok(()) => Verdict::Ok(format!("compiled adapters are kept in {}", dir.display())),
        Err(e) => Verdict::Problem {
            what: format!(
                "cannot write to {} ({e}): adapters would compile at every start",
                dir.display()
            ),
            fix: format!(
                "mkdir -p {0} && chmod u+rwx {0}   (or run with --no-cache)",
                dir.display()
            ),
        },
    };
    Check {
        name: "cache",
        verdict,
    }
}

/// The descriptor limit against what the pools and the server would hold.
fn descriptors_check(pools: &[PoolConfig], config: Option<&ServiceConfig>) -> Check {
    let workers: u64 = pools.iter().map(|p| p.size as u64).sum();
    let connections = config
        .and_then(|c| c.serve_settings().ok())
        .map_or(512, |s| s.max_connections as u64);
    let needed = workers * snakepen::pool::DESCRIPTORS_PER_WORKER + connections + 64;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given and nothing else.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let verdict = if !read {
        Verdict::Note("the descriptor limit could not be read".into())
    } else if limit.rlim_cur >= needed {
        Verdict::Ok(format!(
            "{} file descriptors allowed; {workers} workers and {connections} connections need about {needed}",
            limit.rlim_cur
        ))
    } else {
        Verdict::Problem {
            what: format!(
                "{} file descriptors allowed; {workers} workers and {connections} connections need about {needed}",
                limit.rlim_cur
            ),
            fix: format!("ulimit -n {needed}   (in the shell that starts snakepen)"),
        }
    };
    Check {
        name: "fds",
        verdict,
    }
}

fn ray_check(python: &Path) -> Check {
    let verdict = match python_says(python, "import ray; print(ray.__version__)") {
        Ok(version) => Verdict::Ok(format!("{} has ray {version}", python.display())),
        Err(why) => Verdict::Problem {
            what: format!(
                "{} cannot import ray ({why}), and a pool runs on Ray",
                python.display()
            ),
            fix: format!(
                "{} -m pip install ray   (Python 3.10 or newer)",
                python.display()
            ),
        },
    };
    Check {
        name: "ray",
        verdict,
    }
}
