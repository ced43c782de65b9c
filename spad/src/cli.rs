//! spad's command line: every option and subcommand, and the text `--help`
//! shows. Parsing only; `main.rs` carries the commands out. dist/ builds the
//! man page and shell completions from the same definition.

use std::path::PathBuf;

use clap::Parser;

/// spad keeps doors (ssh, an admin page, …) closed to everyone and opens one,
/// for one address and for a while, when a valid SPA packet asks for it.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Examples:\n  spad --config /etc/spad.toml            run (as a systemd service: see conf/spad.service)\n  spad --check --config /etc/spad.toml    check the config and its keys, then exit\n\nSignals: SIGHUP reloads the config and keys, SIGTERM closes every open door and exits,\nSIGUSR1 logs the counters."
)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, short = 'c', default_value = crate::config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Check the configuration and the keys directory, print a summary, and exit.
    #[arg(long, conflicts_with = "init_state")]
    pub check: bool,
    /// First install only: create the state directory and an empty replay cache, so
    /// the first start does not refuse packets for `skew_secs`. Never run it after
    /// the state directory was lost: that wait is what stops old packets being replayed.
    #[arg(long)]
    pub init_state: bool,
    /// A command for the running daemon, or a conversion.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of running the daemon.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Show the open doors, the counters and the last reload of the running spad.
    ///
    /// Asks the daemon over its control socket (root, or a member of group spad).
    Status {
        /// Print the status as one JSON object (for scripts).
        #[arg(long, conflicts_with = "prometheus")]
        json: bool,
        /// Print the status in the Prometheus text format.
        #[arg(long)]
        prometheus: bool,
        /// The daemon's control socket (control_socket in the config).
        #[arg(long, value_name = "PATH", default_value = crate::control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Close an open door now: for one address, or every open door with --all.
    ///
    /// Example: spad close ssh 203.0.113.7
    Close {
        /// The door (as named in the config).
        #[arg(required_unless_present = "all", requires = "addr")]
        door: Option<String>,
        /// The address it is open for.
        #[arg(required_unless_present = "all")]
        addr: Option<std::net::IpAddr>,
        /// Close every open door.
        #[arg(long, conflicts_with_all = ["door", "addr"])]
        all: bool,
        /// The daemon's control socket (control_socket in the config).
        #[arg(long, value_name = "PATH", default_value = crate::control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Print a spad config equivalent to a knockd.conf (review it, then use it).
    ///
    /// Example: spad import-knockd /etc/knockd.conf > /etc/spad.toml
    ImportKnockd {
        /// The knockd configuration file.
        file: PathBuf,
    },
    /// Print the spad config that serves fwknop's clients from fwknopd's access.conf.
    ///
    /// The keys stay in the access file, which spad reads as fwknopd does; every
    /// directive that does not carry is listed on stderr with FILE:LINE.
    /// Example: spad import-fwknop /etc/fwknop/access.conf /etc/fwknop/fwknopd.conf >> /etc/spad.toml
    ImportFwknop {
        /// fwknopd's access.conf.
        file: PathBuf,
        /// fwknopd.conf, for its PCAP_FILTER port and MAX_SPA_PACKET_AGE.
        fwknopd_conf: Option<PathBuf>,
    },
}
