//! Firewall backends: nftables, iptables and command templates (to be written).
