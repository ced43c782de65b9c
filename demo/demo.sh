#!/usr/bin/env bash
# demo/demo.sh — spa in one minute, on one machine, as root.
#
# Builds spa, makes two network namespaces ("laptop" and "server") joined by a
# virtual cable, runs spad on the server in front of a port-22 listener, and
# shows: the port is shut; one spa-client packet opens it for the laptop only;
# after the door's time it is shut again. Everything it creates (namespaces,
# processes, files) is removed on exit, also on Ctrl-C. It touches neither the
# host's network configuration nor its firewall.
#
#   sudo bash demo/demo.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAPTOP=spa-demo-laptop
SERVER=spa-demo-server
SERVER_IP=10.77.1.1
LAPTOP_IP=10.77.1.2
DOOR_SECS=5
WORK=""
SPAD_PID=""
LISTEN_PID=""

# Sleeps that Ctrl-C interrupts at once (bash runs traps only between commands).
pause() { sleep "$1" & wait $!; }
say()  { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

cleanup() {
    trap - EXIT INT TERM
    [[ -n "$SPAD_PID" ]] && kill -TERM "$SPAD_PID" 2>/dev/null && wait "$SPAD_PID" 2>/dev/null || true
    [[ -n "$LISTEN_PID" ]] && kill "$LISTEN_PID" 2>/dev/null && wait "$LISTEN_PID" 2>/dev/null || true
    ip netns del "$LAPTOP" 2>/dev/null || true
    ip netns del "$SERVER" 2>/dev/null || true
    [[ -n "$WORK" ]] && rm -rf "$WORK"
    echo "demo: cleaned up (namespaces $LAPTOP and $SERVER removed)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $EUID -ne 0 ]]; then
    echo "demo: run me as root (network namespaces and firewalls need it): sudo bash $0" >&2
    exit 1
fi

say "Installing what the demo needs (nftables, iptables, iproute2) if missing"
need=()
command -v nft >/dev/null || need+=(nftables)
command -v iptables >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)
if ((${#need[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "demo: cargo not found: install a Rust toolchain (rustup.rs)" >&2; exit 1; }

say "Building spa (release)"
(cd "$REPO" && cargo build --release --workspace --bins --quiet)
BIN="$REPO/target/release"

# Leftovers of an interrupted run.
ip netns del "$LAPTOP" 2>/dev/null || true
ip netns del "$SERVER" 2>/dev/null || true
WORK="$(mktemp -d /tmp/spa-demo.XXXXXX)"

say "Two machines: '$LAPTOP' ($LAPTOP_IP) and '$SERVER' ($SERVER_IP), joined by a veth cable"
ip netns add "$LAPTOP"
ip netns add "$SERVER"
ip link add name eth0 netns "$LAPTOP" type veth peer name eth0 netns "$SERVER"
ip -n "$LAPTOP" addr add "$LAPTOP_IP/24" dev eth0
ip -n "$SERVER" addr add "$SERVER_IP/24" dev eth0
for ns in "$LAPTOP" "$SERVER"; do
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
done

say "The server runs a service on port 22 (it greets with 'hello')"
ip netns exec "$SERVER" "$BIN/e2e-listen" 22 >/dev/null &
LISTEN_PID=$!

say "The admin issues a key for alice: door 'ssh' on gateway 'gw1'"
mkdir -m 0700 "$WORK/keys.d" "$WORK/state"
show "$BIN/spa-keygen" issue --user alice --server-id gw1 --doors ssh \
    --keys-dir "$WORK/keys.d" --out "$WORK/alice.key"

cat >"$WORK/spad.toml" <<TOML
server_id = "gw1"
keys_dir = "$WORK/keys.d"
state_dir = "$WORK/state"
port = 62210
skew_secs = 30
stealth = true
backend = "nftables"

[doors.ssh]
open = ["tcp/22"]
default_secs = $DOOR_SECS
max_secs = 60
TOML
say "spad's config ($WORK/spad.toml):"
sed 's/^/    /' "$WORK/spad.toml"

say "First install only: create spad's state with an empty replay cache"
show "$BIN/spad" --init-state --config "$WORK/spad.toml"

say "Starting spad on the server (its log lines are shown in grey)"
ip netns exec "$SERVER" "$BIN/spad" --config "$WORK/spad.toml" \
    2> >(tee "$WORK/spad.log" | sed -u $'s/^/    \033[2mspad: /; s/$/\033[0m/' >&2) &
SPAD_PID=$!
for _ in $(seq 100); do
    grep -q "spad ready" "$WORK/spad.log" 2>/dev/null && break
    kill -0 "$SPAD_PID" 2>/dev/null || { echo "demo: spad exited; see its log above" >&2; exit 1; }
    sleep 0.1
done
grep -q "spad ready" "$WORK/spad.log" || { echo "demo: spad did not get ready in 10 s" >&2; exit 1; }

connect() {
    if ip netns exec "$LAPTOP" "$BIN/e2e-connect" "$SERVER_IP" 22 1000 >/dev/null; then
        echo "    laptop -> server:22  CONNECTED (the door is open)"
    else
        echo "    laptop -> server:22  no answer (the door is shut)"
    fi
}

say "Before knocking, the laptop cannot reach port 22:"
connect

say "alice knocks: one UDP packet to port 62210, then waits for port 22"
show ip netns exec "$LAPTOP" "$BIN/spa-client" --key "$WORK/alice.key" open ssh "$SERVER_IP" --wait 22 --wait-timeout 5
connect

say "spad's nftables set now holds alice's address, with a timeout (the kernel closes the door):"
ip netns exec "$SERVER" nft list table inet spad | grep -E "elements|timeout" | sed 's/^/    /' || true

say "Waiting ${DOOR_SECS} s for the door's time to run out..."
pause $((DOOR_SECS + 1))
connect

say "Done. spa: the port is shut to the world, and open for one packet's owner, for a while."
