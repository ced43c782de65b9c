//! Measures how long spad's firewall takes to open nftables doors, per
//! engine: netlink batches (from inside the namespace and from outside it,
//! with the socket opened in the namespace), `nft -f -` spawned in the
//! namespace, and `ip netns exec NS nft -f -` from outside it. Single opens (p50/p99) and
//! batches of 1,000 opens (per element). Needs root; works in a network
//! namespace of its own, deleted at the end.
//!
//! ```text
//! cargo run --release -p spad --example nft_bench [-- SINGLE_OPENS BATCH_SIZE]
//! ```
//!
//! Started without `--inside`, it creates the namespace, measures both
//! engines from outside, then re-runs itself inside the namespace
//! (`--inside NS`) to measure them there.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use spad::firewall::{BackendKind, DoorSpec, Firewall, FirewallSettings, NftEngine};

const DEFAULT_SINGLE_OPENS: usize = 300;
const DEFAULT_BATCH_SIZE: usize = 1000;
const BATCHES: usize = 5;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (inside, rest) = match args.first().map(String::as_str) {
        Some("--inside") => (true, &args[1..]),
        _ => (false, &args[..]),
    };
    let number = |at: usize, default: usize| -> Result<usize> {
        rest.get(at)
            .map(|text| {
                text.parse()
                    .with_context(|| format!("{text:?} is not a count"))
            })
            .unwrap_or(Ok(default))
    };
    let singles = number(0, DEFAULT_SINGLE_OPENS)?;
    let batch = number(1, DEFAULT_BATCH_SIZE)?.clamp(1, 60_000);
    if inside {
        for engine in [NftEngine::Netlink, NftEngine::Process] {
            measure(engine, None, singles, batch)?;
        }
        rss_after_many_netlink_runs()?;
        return Ok(());
    }

    if !nix::unistd::geteuid().is_root() {
        bail!("nft_bench creates a network namespace and needs root");
    }
    let ns = Netns::create(&format!("spa-nftbench-{}", std::process::id()))?;
    measure(NftEngine::Netlink, Some(&ns.0), singles, batch)?;
    measure(NftEngine::Process, Some(&ns.0), singles.min(100), batch)?;
    let me = std::env::current_exe().context("where am I")?;
    let status = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(me)
        .arg("--inside")
        .args(rest)
        .status()
        .context("ip netns exec")?;
    if !status.success() {
        bail!("the measurement inside the namespace failed: {status}");
    }
    Ok(())
}

/// A network namespace of our own, deleted on drop.
struct Netns(String);

impl Netns {
    fn create(name: &str) -> Result<Netns> {
        run(&["ip", "netns", "add", name])?;
        Ok(Netns(name.to_owned()))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(argv: &[&str]) -> Result<String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .with_context(|| format!("cannot start {argv:?}"))?;
    if !out.status.success() {
        bail!("{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `n`th test address: 10.x.y.z, distinct for n < 2^24.
fn address(base: u8, n: usize) -> IpAddr {
    let n = n as u32;
    IpAddr::V4(Ipv4Addr::new(
        base,
        (n >> 16) as u8,
        (n >> 8) as u8,
        n as u8,
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn measure(engine: NftEngine, netns: Option<&str>, singles: usize, batch: usize) -> Result<()> {
    let settings = FirewallSettings {
        table: "spadbench".into(),
        netns: netns.map(str::to_owned),
        ..FirewallSettings::default()
    };
    let door = DoorSpec {
        name: "ssh".into(),
        ports: vec!["tcp/22".parse()?],
        backend: BackendKind::Nftables,
    };
    let mut fw = Firewall::setup_with_nft_engine(settings, &[door], Some(engine))?;
    let label = match (engine, netns) {
        (NftEngine::Netlink, None) => "netlink in the namespace".to_owned(),
        (NftEngine::Netlink, Some(_)) => "netlink, socket opened in NS".to_owned(),
        (NftEngine::Process, None) => "`nft -f -` in the namespace".to_owned(),
        (NftEngine::Process, Some(_)) => "`ip netns exec NS nft -f -`".to_owned(),
    };

    let mut times = Vec::with_capacity(singles);
    for n in 0..singles {
        let started = Instant::now();
        fw.open("ssh", address(10, n), 600)?;
        times.push(started.elapsed());
    }
    times.sort_unstable();

    let mut per_element = Vec::with_capacity(BATCHES);
    for round in 0..BATCHES {
        let opens: Vec<(&str, IpAddr, u32)> = (0..batch)
            .map(|n| ("ssh", address(11 + round as u8, n), 600))
            .collect();
        let started = Instant::now();
        let results = fw.open_many(&opens);
        let took = started.elapsed();
        if let Some(Err(err)) = results.into_iter().find(Result::is_err) {
            return Err(err.into());
        }
        per_element.push(took / batch as u32);
    }
    per_element.sort_unstable();

    // Single opens again, now that the set holds many elements.
    let mut times_full = Vec::with_capacity(singles);
    for n in 0..singles {
        let started = Instant::now();
        fw.open("ssh", address(10, n), 300)?;
        times_full.push(started.elapsed());
    }
    times_full.sort_unstable();

    let in_set = elements_in_set(netns)?;
    let expected = singles + BATCHES * batch;
    if in_set != expected {
        bail!("{label}: {in_set} elements in the set, expected {expected}");
    }
    let batch_median = percentile(&per_element, 0.5);
    println!(
        "{label:30} single open: p50 {:7.3} ms  p99 {:7.3} ms  ({singles} opens; with {expected} \
         elements in the set: p50 {:7.3} ms  p99 {:7.3} ms)\n{:30} batch of {batch}: {:7.4} \
         ms/element = {:6.0} opens/s (median of {BATCHES} batches)",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(percentile(&times_full, 0.5)),
        ms(percentile(&times_full, 0.99)),
        "",
        ms(batch_median),
        1.0 / batch_median.as_secs_f64().max(1e-12),
    );
    fw.teardown()?;
    Ok(())
}

/// How many elements `nft list set` shows in the door's v4 set.
fn elements_in_set(netns: Option<&str>) -> Result<usize> {
    let mut argv = Vec::new();
    if let Some(ns) = netns {
        argv.extend(["ip", "netns", "exec", ns]);
    }
    argv.extend(["nft", "list", "set", "inet", "spadbench", "ssh_v4"]);
    Ok(run(&argv)?.matches(" expires ").count())
}

/// Resident memory before and after many netlink opens, to see that the
/// long-lived socket and its buffers do not grow.
fn rss_after_many_netlink_runs() -> Result<()> {
    let settings = FirewallSettings {
        table: "spadbench".into(),
        ..FirewallSettings::default()
    };
    let door = DoorSpec {
        name: "ssh".into(),
        ports: vec!["tcp/22".parse()?],
        backend: BackendKind::Nftables,
    };
    let mut fw = Firewall::setup_with_nft_engine(settings, &[door], Some(NftEngine::Netlink))?;
    let runs = 20_000;
    for n in 0..1000 {
        fw.open("ssh", address(10, n % 500), 600)?;
    }
    let before = rss_kib()?;
    for n in 0..runs {
        fw.open("ssh", address(10, n % 500), 600)?;
    }
    let after = rss_kib()?;
    println!(
        "in-process memory: RSS {before} KiB -> {after} KiB after {runs} more opens \
         (set of 500 elements)"
    );
    fw.teardown()?;
    Ok(())
}

fn rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")
}
