# Every task a person runs. `just --list` shows them.
set shell := ["bash", "-euo", "pipefail", "-c"]

# Show the tasks.
default:
    @just --list

# Build every WASM plugin into target/plugins/ (installs the wasm toolchain if it must).
plugins:
    bash plugins/build.sh

# The main job: a demo workload through the mock adapter.
demo: plugins
    cargo run --release --quiet -p snakepen --example demo

# Every test of every tier.
test: plugins
    cargo test --workspace --all-targets

# The fast tier alone: no Python, seconds.
test-fast: plugins
    cargo test -p snakepen --test fast

# Benchmarks: the cost of a call through Host::call.
bench: plugins
    cargo bench -p snakepen --bench call

# Formatting and lints, as CI would want them.
check:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
