#!/usr/bin/env bash
# Runs every test of the workspace; exits non-zero if anything fails.
# The end-to-end tests (package spa-e2e) need root: they build network
# namespaces and drive nftables/iptables inside them. On a fresh Debian
# machine it first installs what they drive (tests/setup.sh).
#
#   sudo bash tests/run-all.sh          # everything
#   SPA_RUN_DEMO=1 sudo bash tests/run-all.sh   # ... and the README demo too
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $EUID -ne 0 ]]; then
    echo "run-all: the end-to-end tests need root (network namespaces, firewall): sudo bash $0" >&2
    exit 1
fi

bash tests/setup.sh

echo "run-all: building the binaries the end-to-end tests run"
cargo build --workspace --bins

# Tests that need root (namespaces, the real firewall, packaging) are marked
# #[ignore = "needs root"] so a plain `cargo test` is green for anyone; here,
# as root, every one of them runs. `in_process_half` is not a test of its own:
# its outer test runs it inside a namespace.
echo "run-all: cargo test --workspace -- --include-ignored"
cargo test --workspace -- --include-ignored --skip in_process_half

echo "run-all: checking the tests left no network namespaces behind"
leftover=$(ip netns list | grep -E '^spa-(e2e|demo)-' || true)
if [[ -n "$leftover" ]]; then
    echo "run-all: namespaces left behind by the tests:" >&2
    echo "$leftover" >&2
    exit 1
fi

bash -n demo/demo.sh
if [[ "${SPA_RUN_DEMO:-0}" == 1 ]]; then
    echo "run-all: running the demo"
    bash demo/demo.sh
fi

echo "run-all: all tests passed"
