#!/usr/bin/env bash
# Installs what the test suite drives, on Debian, as root: the firewalls,
# knockd and fwknop (interop tests), tcpdump, fail2ban (its fail2ban-regex
# checks the shipped filter), OpenSSH (the ssh ProxyCommand tests), systemd (systemd-analyze checks the unit) and
# cargo-deb (the .deb test). Called by tests/run-all.sh and so by .ci/run;
# does nothing when everything is already there.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# cargo-deb, pinned: the .deb test relies on its asset and profile handling.
CARGO_DEB_VERSION=3.8.0

need_apt=0
for tool in nft iptables knockd fwknopd fwknop tcpdump ip fail2ban-regex systemd-analyze unshare dpkg-deb ssh sshd; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        need_apt=1
    fi
done
if [[ ! -f /etc/fail2ban/filter.d/common.conf ]]; then
    need_apt=1
fi
if [[ $need_apt == 1 ]]; then
    echo "setup: installing the system tools the tests drive (apt-get)"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        nftables iptables knockd fwknop-server fwknop-client tcpdump iproute2 \
        fail2ban systemd util-linux dpkg openssh-server openssh-client >/dev/null
fi

if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    echo "setup: installing cargo-deb $CARGO_DEB_VERSION from crates.io (a few minutes, once)"
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
fi
