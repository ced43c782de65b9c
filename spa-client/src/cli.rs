//! The command line: every option, its checks, and the worked examples that
//! `--help` shows. Parsing only; what the commands do lives in `app`.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use spa_proto::knock::{KnockStep, KnockSyntaxError, KnockSyntaxErrorKind};
use spa_proto::{DoorName, ServerId};

use crate::route::Family;
use crate::target::HostSpec;

const EXAMPLES: &str = "\
Examples:
  Open door ssh on gw.example.net for this machine's address, then wait for port 22:
    spa-client open ssh gw.example.net --wait 22

  Open door web for 90 seconds, for the address the gateway sees (behind NAT):
    spa-client --key ~/.spa/laptop.key open web gw.example.net --observed --seconds 90

  Pick one of several gateways in the key file, over IPv6:
    spa-client -6 open ssh gw2.example.net --server-id gw2.example.net

  Classic knock, like knockd's `knock`: SYN to 7001, a datagram to 7002, SYN to 7003:
    spa-client knock gw.example.net 7001 7002:udp 7003 -d 100

  Knock this key's current rotating sequence for door ssh (HOST may come from the key file):
    spa-client knock --door ssh gw.example.net

  With a [[host]] profile named gw1 in ~/.spa/config.toml (see: spa-client config gw1):
    spa-client gw1
    spa-client open web gw1 --seconds 300

  From ssh (~/.ssh/config): ProxyCommand spa-client ssh-proxy %h %p

Exit codes: 0 sent (or the door answered), 1 failed to send, 2 usage or key-file error,
3 --wait saw no answer.";

/// spa-client: open a door on an spa gateway with one encrypted UDP packet,
/// or knock a port sequence.
#[derive(Debug, Parser)]
#[command(name = "spa-client", version, after_help = EXAMPLES)]
pub struct Cli {
    /// The client key file (default: the profile's key, else ~/.spa/key). Must be mode 0600.
    #[arg(long, global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Use IPv4 only when HOST has addresses of both families.
    #[arg(short = '4', global = true, conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Use IPv6 only when HOST has addresses of both families.
    #[arg(short = '6', global = true)]
    pub ipv6: bool,

    /// Read only this profile file instead of ~/.spa/config.toml and /etc/spa/client.toml.
    #[arg(short = 'F', long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Say more about what is sent and how.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The address family asked for with `-4` / `-6`.
    pub fn family(&self) -> Family {
        match (self.ipv4, self.ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send one SPA packet that asks the gateway to open DOOR for an address.
    Open(OpenArgs),
    /// Knock ports: a classic sequence (HOST PORT...) or, with --door, the
    /// key's current rotating sequence for that door.
    Knock(KnockArgs),
    /// For ssh's ProxyCommand: open the door for HOST, wait for PORT, then
    /// relay stdin/stdout to it (or, with --fdpass, hand ssh the socket).
    SshProxy(SshProxyArgs),
    /// Self-enrolment: make your secret here and a request for the gateway's
    /// admin, sealed to the gateway's enrolment key.
    Enroll(EnrollArgs),
    /// Print the key as a provisioning URI (and --qr code) for another device.
    /// It carries your secret.
    ExportKey(ExportKeyArgs),
    /// Save a key from a provisioning URI (`-` reads it from stdin).
    ImportKey(ImportKeyArgs),
    /// Show the settings for HOST after profiles, flags and the key file, and where each came from.
    Config(ConfigArgs),
    /// `spa-client HOST [open options]`: open the default door of HOST's profile.
    #[command(external_subcommand)]
    Alias(Vec<OsString>),
}

/// `spa-client ssh-proxy`.
#[derive(Debug, Args)]
#[command(after_help = "\
In ~/.ssh/config:
  Host gw1
      ProxyCommand spa-client ssh-proxy %h %p

or, to let ssh use the connected socket itself:
  Host gw1
      ProxyCommand spa-client ssh-proxy --fdpass %h %p
      ProxyUseFdpass yes")]
pub struct SshProxyArgs {
    /// The gateway (ssh's %h): a profile alias, a name or an address.
    pub host: HostSpec,

    /// The TCP port to connect to once the door is open (ssh's %p).
    #[arg(value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// The door to open (default: the profile's door).
    #[arg(long)]
    pub door: Option<DoorName>,

    /// Which gateway of the key file.
    #[arg(long, value_name = "ID")]
    pub server_id: Option<ServerId>,

    /// The gateway's SPA port (default: the profile's, the key file's, else 62210).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub spa_port: Option<u16>,

    /// How long the door should stay open, 1-65535 (default: the door's default).
    #[arg(long, short = 's', value_parser = clap::value_parser!(u16).range(1..))]
    pub seconds: Option<u16>,

    /// Ask for the address the gateway sees (kind 0).
    #[arg(long)]
    pub observed: bool,

    /// Send one packet per address family.
    #[arg(long, conflicts_with_all = ["ipv4", "ipv6"])]
    pub both: bool,

    /// How long to wait for PORT to answer, in seconds (default 10).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub wait_timeout: Option<u64>,

    /// Hand ssh the connected socket over stdout (for ProxyUseFdpass yes) instead of relaying.
    #[arg(long)]
    pub fdpass: bool,
}

/// `spa-client enroll`.
#[derive(Debug, Args)]
#[command(after_help = "\
Example (the admin gave you the line spa-keygen enrol-key printed):
  spa-client enroll --user alice --host gw1.example.net \\
      --gateway-key 'spa-enrol-key-1:gw1.example.net:3q2+7w...='
Then send alice-gw1.example.net.spa-request to the admin and read them the fingerprint.")]
pub struct EnrollArgs {
    /// The gateway's enrolment public key: spa-enrol-key-1:SERVER_ID:BASE64.
    #[arg(long, value_name = "KEY")]
    pub gateway_key: spa_keys::EnrolmentPublicKey,

    /// Your user name on the gateway (needed when the key file is new).
    #[arg(long)]
    pub user: Option<String>,

    /// The gateway's host name or address, stored in the key file.
    #[arg(long)]
    pub host: Option<String>,

    /// The gateway's SPA port, stored in the key file.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// Where to write the request [default: ./USER-SERVER_ID.spa-request].
    #[arg(long, value_name = "FILE")]
    pub request: Option<PathBuf>,
}

/// `spa-client export-key`.
#[derive(Debug, Args)]
pub struct ExportKeyArgs {
    /// Also draw the URI as a QR code in the terminal.
    #[arg(long)]
    pub qr: bool,
    /// Draw the QR code for a light terminal background (default: dark).
    #[arg(long, requires = "qr")]
    pub light_background: bool,
}

/// `spa-client import-key`.
#[derive(Debug, Args)]
pub struct ImportKeyArgs {
    /// The spa://key/1?... URI, or `-` to read it from stdin (keeps it out of
    /// your shell history).
    pub uri: String,
    /// Replace an existing key file.
    #[arg(long)]
    pub force: bool,
}

/// `spa-client config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The host or profile alias to show settings for.
    pub host: Option<HostSpec>,
}

/// `spa-client open`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct OpenArgs {
    /// The door to open: 1-32 of a-z, 0-9, '_', '-', starting with a letter or digit.
    pub door: DoorName,

    /// The gateway: NAME, IPv4, IPv6, HOST:PORT, [IPv6]:PORT or fe80::1%IFACE
    /// (default: the key file's host).
    pub host: Option<HostSpec>,

    /// The gateway's SPA port (default: HOST:PORT, else the key file's, else 62210).
    #[arg(long, short = 'p', value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// Which gateway of the key file (needed when it holds several).
    #[arg(long, value_name = "ID")]
    pub server_id: Option<ServerId>,

    /// Name this address instead of the local address of the route to HOST.
    #[arg(long, value_name = "IP", conflicts_with = "observed")]
    pub source: Option<IpAddr>,

    /// Ask for the address the gateway sees (kind 0; the gateway must allow it).
    #[arg(long)]
    pub observed: bool,

    /// How long the door should stay open, 1-65535 (default: the door's default).
    #[arg(long, short = 's', value_parser = clap::value_parser!(u16).range(1..))]
    pub seconds: Option<u16>,

    /// After sending, wait until a TCP connection to HOST:PORT succeeds.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub wait: Option<u16>,

    /// How long --wait tries, in seconds (default 10).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub wait_timeout: Option<u64>,

    /// Also write the exact 100 bytes sent to FILE (mode 0600: it opens the door again).
    #[arg(long, value_name = "FILE")]
    pub save_packet: Option<PathBuf>,

    /// Send one packet per address family (IPv4 and IPv6) when HOST has both,
    /// each naming this machine's address of that family.
    #[arg(long, conflicts_with_all = ["source", "save_packet", "ipv4", "ipv6"])]
    pub both: bool,
}

/// `spa-client knock`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct KnockArgs {
    /// Knock the key's current rotating sequence for this door instead of PORTs.
    #[arg(long, conflicts_with = "ports")]
    pub door: Option<DoorName>,

    /// Which gateway of the key file (with --door, when it holds several).
    #[arg(long, value_name = "ID", requires = "door")]
    pub server_id: Option<ServerId>,

    /// The host to knock: a name, an IPv4 or an IPv6 address (with --door, default: the key file's host).
    pub host: Option<HostSpec>,

    /// The sequence: PORT, PORT:tcp or PORT:udp (tcp is the default).
    #[arg(value_name = "PORT[:tcp|:udp]", value_parser = parse_knock_step)]
    pub ports: Vec<KnockStep>,

    /// Delay between knocks, in milliseconds.
    #[arg(short = 'd', long = "delay", value_name = "MS", default_value_t = 0)]
    pub delay_ms: u64,
}

/// A knock step on the command line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("knock {arg:?} is not PORT, PORT:tcp or PORT:udp: {kind}")]
pub struct KnockArgError {
    /// The argument as given.
    pub arg: String,
    /// What is wrong with it.
    pub kind: KnockSyntaxErrorKind,
}

/// Parses one `PORT[:tcp|:udp]` argument with spa-proto's knock syntax.
fn parse_knock_step(arg: &str) -> Result<KnockStep, KnockArgError> {
    arg.parse().map_err(|e: KnockSyntaxError| KnockArgError {
        arg: arg.to_owned(),
        kind: e.kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_door_names_are_refused_with_the_rule() {
        let err = Cli::try_parse_from(["spa-client", "open", "SSH", "h"])
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(
            matches!(&err, Err(m) if m.contains("must start with a-z or 0-9")),
            "{err:?}"
        );
    }

    #[test]
    fn seconds_zero_is_refused() {
        assert!(Cli::try_parse_from(["spa-client", "open", "ssh", "h", "--seconds", "0"]).is_err());
        assert!(
            Cli::try_parse_from(["spa-client", "open", "ssh", "h", "--seconds", "65535"]).is_ok()
        );
    }

    #[test]
    fn door_and_ports_do_not_mix() {
        assert!(
            Cli::try_parse_from(["spa-client", "knock", "--door", "ssh", "h", "7001"]).is_err()
        );
    }

    fn knock_ports(args: &[&str]) -> Result<Vec<KnockStep>, String> {
        let argv = ["spa-client", "knock", "h"].iter().chain(args);
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            Command::Knock(k) => Ok(k.ports),
            other => Err(format!("not a knock: {other:?}")),
        }
    }

    #[test]
    fn knock_steps_parse_with_tcp_as_default() {
        assert_eq!(
            knock_ports(&["7001", "7001:tcp", "7002:udp"]),
            Ok(vec![
                KnockStep::tcp(7001),
                KnockStep::tcp(7001),
                KnockStep::udp(7002)
            ])
        );
    }

    #[test]
    fn bad_knock_steps_say_what_is_wrong() {
        for bad in [
            "0",
            "65536",
            "7001:sctp",
            "x",
            "",
            ":udp",
            "+7",
            "-1",
            "7001,7002",
        ] {
            // Straight to the parser: clap itself takes "-1" for an option.
            let err = parse_knock_step(bad).map_err(|e| e.to_string());
            assert!(
                matches!(&err, Err(m) if m.starts_with(&format!("knock {bad:?} is not PORT, PORT:tcp or PORT:udp: "))),
                "{bad:?}: {err:?}"
            );
        }
        let err = knock_ports(&["7001:sctp"]);
        assert!(
            matches!(&err, Err(m) if m.contains("unknown transport \"sctp\": expected tcp or udp")),
            "{err:?}"
        );
        let err = knock_ports(&["65536"]);
        assert!(
            matches!(&err, Err(m) if m.contains("\"65536\" is not a port number from 1 to 65535")),
            "{err:?}"
        );
    }
}
