//! spa-flood: the harness's bounded sender on its own (root, raw socket).
//! Sends junk, replays of one packet, or valid spa/1 packets from many
//! source addresses, at a rate, for a time. Run it only inside a network
//! namespace you made (e.g. `ip netns exec spa-bench-… spa-flood …`).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, ValueEnum};
use spa_bench::flood::{self, FloodSpec, JunkAlphabet, Payloads};
use spa_bench::packets::SpaSealer;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    /// Random datagrams of --len bytes.
    Junk,
    /// The payload in --packet, again and again.
    Replay,
    /// One valid spa/1 packet per source address (--key, --server-id, --door).
    Valid,
}

/// A bounded UDP flood from a raw socket: junk, replays, or valid packets from many sources.
#[derive(Debug, Parser)]
#[command(
    after_help = "Examples (inside your own namespace):\n  spa-flood junk --to 10.211.0.1:62210 --from 10.211.1.1 --rate 100000 --seconds 5\n  spa-flood replay --packet pkt.bin --to 10.211.0.1:62210 --from 10.211.1.1 --rate 10000 --seconds 5\n  spa-flood valid --key bench.key --server-id gw1 --door ssh --to 10.211.0.1:62210 --sources 198.18.0.1 --count 10000 --rate 2500"
)]
struct Cli {
    /// What to send.
    mode: Mode,
    /// Destination IPv4 address and port.
    #[arg(long)]
    to: SocketAddrV4,
    /// Source address (junk, replay).
    #[arg(long)]
    from: Option<Ipv4Addr>,
    /// Datagrams per second; omit for as fast as possible.
    #[arg(long)]
    rate: Option<u64>,
    /// Stop after this many seconds (at most 120).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Stop after this many datagrams (valid: the number of source addresses).
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Junk payload length.
    #[arg(long, default_value_t = 100)]
    len: usize,
    /// Junk as base64 characters (like fwknop packets) instead of random bytes.
    #[arg(long)]
    base64: bool,
    /// The packet file to replay.
    #[arg(long)]
    packet: Option<PathBuf>,
    /// valid: the client key file.
    #[arg(long)]
    key: Option<PathBuf>,
    /// valid: the gateway's server id.
    #[arg(long)]
    server_id: Option<String>,
    /// valid: the door.
    #[arg(long, default_value = "ssh")]
    door: String,
    /// valid: the first source address (then +1 per packet).
    #[arg(long)]
    sources: Option<Ipv4Addr>,
    /// valid: seconds to ask for (0 = the door's default).
    #[arg(long, default_value_t = 0)]
    open_secs: u16,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let payloads = match cli.mode {
        Mode::Junk => Payloads::Junk {
            len: cli.len,
            alphabet: if cli.base64 {
                JunkAlphabet::Base64
            } else {
                JunkAlphabet::Bytes
            },
            src: cli.from.context("junk needs --from")?,
        },
        Mode::Replay => {
            let path = cli.packet.as_ref().context("replay needs --packet FILE")?;
            Payloads::Replay {
                payload: std::fs::read(path)
                    .with_context(|| format!("reading {}", path.display()))?,
                src: cli.from.context("replay needs --from")?,
            }
        }
        Mode::Valid => {
            let key = cli.key.as_ref().context("valid needs --key FILE")?;
            let server_id = cli
                .server_id
                .as_deref()
                .context("valid needs --server-id")?;
            let first = cli.sources.context("valid needs --sources FIRST_ADDRESS")?;
            if cli.count > 1_000_000 {
                bail!("valid: at most 1000000 sources");
            }
            let sealer = SpaSealer::from_key_file(key, server_id, &cli.door)?;
            let now = spa_bench::scenarios::wall_ms();
            (0..cli.count)
                .map(|i| {
                    let src = Ipv4Addr::from(u32::from(first).wrapping_add(i as u32));
                    Ok((src, sealer.packet(src, now, cli.open_secs)?.to_vec()))
                })
                .collect::<anyhow::Result<Vec<_>>>()
                .map(Payloads::PerSource)?
        }
    };
    let spec = FloodSpec {
        dst: cli.to,
        payloads,
        rate_pps: cli.rate,
        duration: Duration::from_secs(cli.seconds),
        max_packets: cli.count,
    };
    let report = flood::run(&spec, &AtomicBool::new(false))?;
    println!(
        "sent {} datagrams in {:.2} s ({:.0}/s), {} send calls refused and retried",
        report.sent,
        report.elapsed.as_secs_f64(),
        report.rate(),
        report.send_errors
    );
    Ok(())
}
