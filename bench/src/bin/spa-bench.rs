//! spa-bench: runs the benchmark scenarios against spad, fwknopd, spad
//! serving fwknop packets, and knockd in network namespaces and prints one
//! table (root only).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;
use spa_bench::scenarios::{Bench, Settings};
use spa_bench::targets::Kind;

/// Benchmarks spad side by side with fwknopd and knockd: knock latency, floods,
/// grants and idle cost, between two network namespaces it creates and deletes.
#[derive(Debug, Parser)]
#[command(
    after_help = "Examples:\n  cargo build --release -p spad -p spa-keygen -p spa-bench\n  sudo target/release/spa-bench --write-doc docs/performance.md     # the full run (~15 min)\n  sudo target/release/spa-bench --smoke                              # a few seconds per daemon"
)]
struct Cli {
    /// Small and quick (CI): 5 knocks, one 1k/s flood, 50 grants, 1 s idle.
    #[arg(long)]
    smoke: bool,
    /// Only these daemons (spad, fwknopd, spad-fwknop, knockd), comma-separated;
    /// spad-fwknop is spad serving fwknop's clients, knocked with fwknopd's packets.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Knocks for the latency scenario.
    #[arg(long)]
    knocks: Option<usize>,
    /// Flood rates, comma-separated datagrams/s; `max` = as fast as the sender can.
    #[arg(long, value_delimiter = ',')]
    rates: Vec<String>,
    /// Legitimate knocks per flood rate.
    #[arg(long)]
    tries: Option<usize>,
    /// Addresses for spad's grant scenario.
    #[arg(long)]
    grants: Option<usize>,
    /// Addresses for fwknopd's and spad-fwknop's grant scenario.
    #[arg(long)]
    fwknop_grants: Option<usize>,
    /// Rate the grant packets are sent at (datagrams/s).
    #[arg(long)]
    grant_rate: Option<u64>,
    /// Seconds each granted door stays open.
    #[arg(long)]
    grant_secs: Option<u16>,
    /// Seconds to watch the idle daemon.
    #[arg(long)]
    idle_secs: Option<u64>,
    /// How spad reads captured packets: `ring` or `recvfrom` (its `capture_ring`
    /// setting); default: spad's own default.
    #[arg(long, value_parser = ["ring", "recvfrom"])]
    spad_capture: Option<String>,
    /// Where `spad` and `spa-keygen` are (default: next to this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Also write the table into this Markdown file's generated block.
    #[arg(long)]
    write_doc: Option<PathBuf>,
}

fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let mut s = if cli.smoke {
        Settings::smoke()
    } else {
        Settings::full()
    };
    if !cli.only.is_empty() {
        s.targets = cli
            .only
            .iter()
            .map(|n| {
                Kind::from_name(n).with_context(|| {
                    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                    format!("--only: unknown daemon {n:?} ({})", names.join(", "))
                })
            })
            .collect::<anyhow::Result<_>>()?;
    }
    if !cli.rates.is_empty() {
        s.flood_rates = cli
            .rates
            .iter()
            .map(|r| match r.as_str() {
                "max" => Ok(None),
                n => n
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Some)
                    .with_context(|| format!("--rates: {n:?} is not a positive number or `max`")),
            })
            .collect::<anyhow::Result<_>>()?;
    }
    s.spad_capture_ring = cli.spad_capture.as_deref().map(|c| c == "ring");
    s.knocks = cli.knocks.unwrap_or(s.knocks);
    s.flood_tries = cli.tries.unwrap_or(s.flood_tries);
    s.grants = cli.grants.unwrap_or(s.grants);
    s.fwknop_grants = cli.fwknop_grants.unwrap_or(s.fwknop_grants);
    s.grant_rate = cli.grant_rate.unwrap_or(s.grant_rate);
    s.grant_secs = cli.grant_secs.unwrap_or(s.grant_secs);
    s.idle = cli.idle_secs.map_or(s.idle, Duration::from_secs);
    Ok(s)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !nix::unistd::geteuid().is_root() {
        bail!("spa-bench needs root: it creates network namespaces and firewall rules (run it with sudo)");
    }
    let settings = settings(&cli)?;
    // Ctrl-C or SIGTERM: the Drop guards will not run, so delete the namespaces
    // (and with them the daemons and floods inside) here, then exit.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .context("registering signal handlers")?;
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            eprintln!("spa-bench: signal {sig}: deleting the namespaces and stopping");
            spa_bench::netns::delete_own_namespaces();
            std::process::exit(130);
        }
    });
    let bin_dir = match &cli.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .context("finding this binary")?
            .parent()
            .map(PathBuf::from)
            .context("finding this binary's directory")?,
    };
    let bench = Bench::new(settings.clone(), &bin_dir).context("setting up the namespaces")?;
    let reports = bench.run_all(&|step| eprintln!("spa-bench: {step}"));
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let block = spa_bench::report::block(&reports, &settings, &command);
    println!("{block}");
    if let Some(path) = &cli.write_doc {
        spa_bench::report::write_doc(path, &block)?;
        eprintln!("spa-bench: wrote the table into {}", path.display());
    }
    Ok(())
}
