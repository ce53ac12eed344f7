#!/usr/bin/env bash
# Builds every plugin of this workspace for wasm32-wasip2 and copies each
# component to target/plugins/<name>.wasm (fixtures to target/plugins/fixtures/).
#
# Route A: a rustup toolchain with the wasm32-wasip2 target.
# Route B: Debian's rustc-web/cargo-web with the standard library's source
#          (-Zbuild-std), installed here with apt when missing and possible.
# See ../shared/GUEST_TOOLCHAIN.md for why both exist.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
manifest="$root/plugins/Cargo.toml"
target_dir="$root/target/wasm"
out="$root/target/plugins"
profile=release

debian_packages=(rustc-web cargo-web rust-web-src rust-web-llvm lld-19 wasi-libc)

say() { printf 'plugins: %s\n' "$*" >&2; }

missing_debian_packages() {
    local pkg
    for pkg in "${debian_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$pkg"
    done
}

install_debian_route() {
    local missing
    missing=$(missing_debian_packages | tr '\n' ' ')
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        say "no wasm32-wasip2 toolchain was found. Install one of:"
        say "  rustup target add wasm32-wasip2"
        say "  sudo apt-get install -y ${debian_packages[*]}   (Debian 12 or newer)"
        exit 1
    fi
    say "installing Debian's wasm toolchain: $missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# `build.sh --test PACKAGE`: runs that package's unit tests natively (its
# logic, not its imports), with the same toolchain as the build.
if [ "${1:-}" = "--test" ]; then
    package=${2:?build.sh --test PACKAGE}
    if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
        cargo test --manifest-path "$manifest" --target-dir "$target_dir" -p "$package"
    else
        install_debian_route
        RUSTC=/usr/bin/rustc /usr/bin/cargo test --manifest-path "$manifest" --target-dir "$target_dir" -p "$package"
    fi
    exit 0
fi

if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    say "building with rustup's wasm32-wasip2 target"
    cargo build --profile "$profile" --target wasm32-wasip2 \
        --manifest-path "$manifest" --target-dir "$target_dir" "$@"
else
    install_debian_route
    say "building with Debian's rustc-web and -Zbuild-std"
    PATH="/usr/lib/llvm-19/bin:$PATH" \
    RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="-L /usr/lib/wasm32-wasi" \
        /usr/bin/cargo build --profile "$profile" -Zbuild-std=std,panic_abort --target wasm32-wasip2 \
        --manifest-path "$manifest" --target-dir "$target_dir" "$@"
fi

# Each cdylib of the workspace becomes target/plugins/<package>.wasm; packages
# under plugins/fixtures/ (test fixtures, some hostile) go to a folder of their own.
mkdir -p "$out/fixtures"
(cd "$root/plugins" && cargo metadata --no-deps --format-version 1 --manifest-path "$manifest") |
python3 -c '
import json, sys
meta = json.load(sys.stdin)
for pkg in meta["packages"]:
    if any("cdylib" in t["crate_types"] for t in pkg["targets"]):
        sub = "fixtures/" if "/fixtures/" in pkg["manifest_path"] else ""
        print(pkg["name"].replace("-", "_"), sub + pkg["name"])
' | while read -r artifact dest; do
    src="$target_dir/wasm32-wasip2/$profile/$artifact.wasm"
    [ -f "$src" ] || { say "expected $src after the build, but it is not there"; exit 1; }
    cmp -s "$src" "$out/$dest.wasm" 2>/dev/null || cp "$src" "$out/$dest.wasm"
    printf '%8d  %s\n' "$(stat -c %s "$out/$dest.wasm")" "target/plugins/$dest.wasm"
done

# An adapter written in Python (componentize-py), a fixture of the
# any-language contract and a subject of the benchmarks.
bash "$root/plugins/python-adapter/build.sh"
