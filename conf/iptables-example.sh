#!/bin/sh
# spad's iptables backend with an INPUT chain that drops by policy.
#
# spad creates and owns a chain SPAD (the `table` setting in uppercase) in
# iptables and ip6tables, and inserts `-j SPAD` at the top of INPUT when it
# starts. For a door `ssh` on tcp/22 the chain reads:
#
#   -A SPAD -s 192.0.2.2/32 -p tcp --dport 22 -m comment --comment spad:ssh -j ACCEPT   # one per open address
#   -A SPAD -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
#   -A SPAD -p tcp --dport 22 -j DROP
#   -A SPAD -p udp --dport 62210 -j DROP    # only with stealth = true
#
# Unlike nftables chains, an ACCEPT inside SPAD is final for INPUT, so your
# own rules need nothing for the doors' ports. The SPA port needs no accept
# either: spad reads packets with a packet socket, which sees them before
# the firewall.
#
# Careful: `iptables-restore` without --noflush (e.g. netfilter-persistent
# reload) wipes the jump and spad's chain. Reload spad afterwards (SIGHUP):
# it recreates its chain and the jump.
set -eu

for ipt in iptables ip6tables; do
    $ipt -w -A INPUT -i lo -j ACCEPT
    $ipt -w -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    $ipt -w -A INPUT -m conntrack --ctstate INVALID -j DROP
done
iptables -w -A INPUT -p icmp -j ACCEPT
ip6tables -w -A INPUT -p ipv6-icmp -j ACCEPT
for ipt in iptables ip6tables; do
    $ipt -w -P INPUT DROP
done
