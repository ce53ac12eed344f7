# Every task a person runs. `just --list` shows them.
set shell := ["bash", "-euo", "pipefail", "-c"]

# Show the tasks.
default:
    @just --list

# Build every WASM plugin into target/plugins/ (installs the wasm toolchain if it must).
plugins:
    bash plugins/build.sh

# A new adapter in plugins/NAME from the template: tested, built, and called once
# through the host (`snakepen call --adapter NAME hello`). See docs/authoring-adapters.md.
new-adapter NAME: plugins
    bash plugins/new-adapter.sh {{NAME}}

# The main job: a realistic workload on 4 Python workers (examples/handlers.py), then its summary.
demo: plugins
    cargo build --release --quiet -p snakepen --bin snakepen
    python3 examples/make_requests.py target/demo/requests.jsonl
    target/release/snakepen run --module examples/handlers.py --pool-size 4 --affinity strict target/demo/requests.jsonl

# The adapter without Python: a workload through the mock adapter.
demo-mock: plugins
    cargo run --release --quiet -p snakepen --example demo

# Records the committed cassette tests/cassettes/demo.jsonl again, from real Python
# (examples/handlers.py); the fast tier replays it without Python.
record-cassette: plugins
    cargo build --release --quiet -p snakepen --bin snakepen
    python3 examples/make_requests.py --small target/demo/small.jsonl
    target/release/snakepen run --module examples/handlers.py --pool-size 2 --affinity strict --concurrency 1 \
        --cassette tests/cassettes/demo.jsonl --record-mode all --match-session target/demo/small.jsonl
    target/release/snakepen replay tests/cassettes/demo.jsonl

# Two interpreters for the worker's JSON, made with pip when missing: target/orjson-venv
# (with orjson) and target/plain-venv (the standard library alone). The integration
# tier checks they answer alike; the bench measures both.
json-venvs:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! target/orjson-venv/bin/python -c "import orjson" 2>/dev/null; then
        python3 -m venv target/orjson-venv
        target/orjson-venv/bin/python -m pip install --quiet --disable-pip-version-check orjson==3.13.0
    fi
    if [ ! -x target/plain-venv/bin/python ]; then
        python3 -m venv --without-pip target/plain-venv
    fi

# DSPy for examples/dspy and its test: target/dspy-venv, made with pip when missing.
dspy-venv:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! target/dspy-venv/bin/python -c "import dspy" 2>/dev/null; then
        python3 -m venv target/dspy-venv
        target/dspy-venv/bin/python -m pip install --quiet --disable-pip-version-check dspy==3.4.1
    fi

# The Python client (clients/python), its tests' tools and an OpenAPI validator:
# target/client-venv, made with pip when missing; the client is installed again each time.
client-venv:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! target/client-venv/bin/python -c "import httpx, pytest, anyio, openapi_spec_validator, hatchling" 2>/dev/null; then
        python3 -m venv target/client-venv
        target/client-venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python_client/requirements.txt
    fi
    target/client-venv/bin/python -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps --force-reinstall ./clients/python

# Ray for the Ray tier and the Ray bench: target/ray-venv, made with pip when missing
# (Ray needs Python 3.10 or newer).
ray-venv:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! target/ray-venv/bin/python -c "import ray" 2>/dev/null; then
        python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "the Ray tier needs Python 3.10 or newer for ray; python3 is " + sys.version.split()[0])'
        python3 -m venv target/ray-venv
        target/ray-venv/bin/python -m pip install --quiet --disable-pip-version-check ray==2.60.0
    fi

# A DSPy program (examples/dspy/handlers.py, offline on DSPy's DummyLM) served by
# `snakepen serve`, its answers streamed with curl as Server-Sent Events.
demo-dspy: plugins dspy-venv
    cargo build --release --quiet -p snakepen --bin snakepen
    bash examples/dspy/demo.sh

# Every test of every tier.
test: plugins json-venvs dspy-venv client-venv ray-venv
    cargo test --workspace --all-targets

# The fast tier alone: no Python, seconds (the library's unit tests, the pool's
# rules against a fake transport among them, then tests/fast).
test-fast: plugins
    cargo test -p snakepen --lib --test fast

# The integration tier alone: real Python workers.
test-integration: plugins json-venvs dspy-venv client-venv
    cargo test -p snakepen --test integration

# The chaos tier alone: crash storms, dropped callers, slow starts, kill -9 of the host.
test-chaos: plugins
    cargo test -p snakepen --test chaos

# The Ray tier alone: the pool's workers as actors of a local Ray cluster (a head and
# a second node on this machine) that the tier starts and stops itself.
test-ray: plugins ray-venv
    cargo test -p snakepen --test ray

# Benchmarks, in release mode: the mock call and a replayed call beside a live one
# (criterion), the sandbox (an endless loop stopped, the cost of epoch checks), then
# the pool beside a plain-Python peer, written to bench/RESULTS.md, and `snakepen serve`
# beside uvicorn + Starlette under wrk (installed, with the peer's venv, by the bench),
# with CPU per call, written to bench/SERVE.md.
bench: plugins json-venvs ray-venv
    cargo bench -p snakepen --bench call
    cargo bench -p snakepen --bench sandbox
    cargo bench -p snakepen --bench pool
    cargo bench -p snakepen --bench serve
    cargo bench -p snakepen --bench ray

# The HTTP API on the demo handlers (snakepen.example.toml), on 127.0.0.1:8787,
# until Ctrl-C; call it with `bash examples/curl.sh` or `python3 examples/client.py`.
serve: plugins
    cargo build --release --quiet -p snakepen --bin snakepen
    target/release/snakepen serve --config snakepen.example.toml

# Formatting and lints, as CI would want them.
check:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
