//! The standard test network and its chores. Three namespaces:
//!
//! ```text
//!   laptop (10.77.1.2, fd77:1::2) ──veth── server (10.77.1.1, fd77:1::1; spad, listeners)
//!   other  (10.77.2.2, fd77:2::2) ──veth──        (10.77.2.1, fd77:2::1)
//! ```
//!
//! The server listens on TCP 22 (door `ssh`), 8443 (door `admin`) and 8080
//! (no door, always reachable). "laptop" knocks with `spa-client`; "other" is
//! a second address that must stay shut out. Keys come from `spa-keygen`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use tempfile::TempDir;

use crate::bins::workspace_bin;
use crate::child::NsChild;
use crate::error::{io, Result};
use crate::netns::{run_checked, Netns, VethPair};
use crate::probe::{connect_ok, start_listener};
use crate::spad::{Backend, DoorConfig, Spad, SpadConfig};

/// The gateway's server id in every lab.
pub const SERVER_ID: &str = "gw1";
/// spad's UDP port.
pub const SPA_PORT: u16 = 62210;
/// The port behind door `ssh`.
pub const SSH_PORT: u16 = 22;
/// The port behind door `admin`.
pub const ADMIN_PORT: u16 = 8443;
/// A port behind no door: always reachable (proves the network itself works).
pub const PLAIN_PORT: u16 = 8080;
/// The server's address facing the laptop.
pub const SERVER_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
/// The laptop's address.
pub const LAPTOP_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);
/// The server's address facing the other host.
pub const SERVER_V4_OTHER: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 1);
/// The other host's address.
pub const OTHER_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 2);
/// The server's IPv6 address facing the laptop.
pub const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 1, 0, 0, 0, 0, 0, 1);
/// The laptop's IPv6 address.
pub const LAPTOP_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 1, 0, 0, 0, 0, 0, 2);
/// The server's IPv6 address facing the other host.
pub const SERVER_V6_OTHER: Ipv6Addr = Ipv6Addr::new(0xfd77, 2, 0, 0, 0, 0, 0, 1);
/// The other host's IPv6 address.
pub const OTHER_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 2, 0, 0, 0, 0, 0, 2);
/// How long a connect attempt may take before it counts as "shut".
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(600);

/// The command backend's own nftables ruleset in the server namespace (the
/// templates add and delete elements of its sets; spad adds no drop rules
/// for command doors).
pub const COMMAND_BACKEND_RULESET: &str = "\
table inet e2e {
    set ssh4 { type ipv4_addr; }
    set admin4 { type ipv4_addr; }
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport 22 ip saddr @ssh4 accept
        tcp dport 22 drop
        tcp dport 8443 ip saddr @admin4 accept
        tcp dport 8443 drop
    }
}
";

/// A three-namespace network with listeners, a keys dir and a state dir.
#[derive(Debug)]
pub struct Lab {
    /// Scratch space: keys, state, configs, captures.
    pub dir: TempDir,
    /// The gateway.
    pub server: Netns,
    /// The user's machine.
    pub laptop: Netns,
    /// Another machine that never knocks.
    pub other: Netns,
    _listener: NsChild,
}

impl Lab {
    /// Builds the network and starts the listeners.
    pub fn new() -> Result<Lab> {
        let dir = tempfile::Builder::new()
            .prefix("spa-e2e-")
            .tempdir()
            .map_err(io("creating a temp dir"))?;
        let server = Netns::new("server")?;
        let laptop = Netns::new("laptop")?;
        let other = Netns::new("other")?;
        VethPair::new(
            &server,
            "to-laptop",
            &["10.77.1.1/24", "fd77:1::1/64"],
            &laptop,
            "eth0",
            &["10.77.1.2/24", "fd77:1::2/64"],
        )?;
        VethPair::new(
            &server,
            "to-other",
            &["10.77.2.1/24", "fd77:2::1/64"],
            &other,
            "eth0",
            &["10.77.2.2/24", "fd77:2::2/64"],
        )?;
        let listener = start_listener(&server, &[SSH_PORT, ADMIN_PORT, PLAIN_PORT])?;
        for sub in ["keys.d", "state", "other-keys.d"] {
            std::fs::create_dir(dir.path().join(sub)).map_err(io(format!("creating {sub}")))?;
        }
        Ok(Lab {
            dir,
            server,
            laptop,
            other,
            _listener: listener,
        })
    }

    /// The keys dir spad reads.
    pub fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys.d")
    }

    /// A keys dir spad never reads (for keys it must not know).
    pub fn foreign_keys_dir(&self) -> PathBuf {
        self.dir.path().join("other-keys.d")
    }

    /// spad's state dir.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The config path used by [`Lab::start_spad`].
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("spad.toml")
    }

    /// The standard config: doors `ssh` (tcp/22) and `admin` (tcp/8443), 2 s default, 4 s max.
    pub fn config(&self, backend: Backend, skew_secs: u32) -> SpadConfig {
        let door = |name: &str, port: u16| {
            let (open_command, close_command) = if backend == Backend::Command {
                (
                    Some(format!(
                        "/usr/sbin/nft add element inet e2e {name}4 {{ %IP% }}"
                    )),
                    Some(format!(
                        "/usr/sbin/nft delete element inet e2e {name}4 {{ %IP% }}"
                    )),
                )
            } else {
                (None, None)
            };
            DoorConfig {
                name: name.to_owned(),
                open: vec![format!("tcp/{port}")],
                default_secs: 2,
                max_secs: 4,
                open_command,
                close_command,
            }
        };
        SpadConfig {
            server_id: SERVER_ID.to_owned(),
            keys_dir: self.keys_dir(),
            state_dir: self.state_dir(),
            port: SPA_PORT,
            skew_secs,
            backend,
            nft_table: "spad".to_owned(),
            doors: vec![door("ssh", SSH_PORT), door("admin", ADMIN_PORT)],
        }
    }

    /// Installs what the backend needs besides spad (the command backend's own ruleset).
    pub fn prepare_backend(&self, backend: Backend) -> Result<()> {
        if backend == Backend::Command {
            let rules = self.dir.path().join("e2e.nft");
            std::fs::write(&rules, COMMAND_BACKEND_RULESET)
                .map_err(io("writing the e2e ruleset"))?;
            self.server.run("nft", ["-f".as_ref(), rules.as_os_str()])?;
        }
        Ok(())
    }

    /// Writes `config`, starts spad on a fresh state dir and waits out the
    /// fresh-start rule (PROTOCOL §3 step 9: a server without a replay cache
    /// drops packets stamped before its start + skew).
    pub fn start_spad(&self, config: &SpadConfig) -> Result<Spad> {
        self.prepare_backend(config.backend)?;
        config.write(&self.config_path())?;
        let spad = Spad::start(&self.server, &self.config_path())?;
        std::thread::sleep(Duration::from_millis(
            u64::from(config.skew_secs) * 1000 + 300,
        ));
        Ok(spad)
    }

    /// Starts spad again on the existing config and state (after a crash).
    pub fn restart_spad(&self) -> Result<Spad> {
        Spad::start(&self.server, &self.config_path())
    }

    /// `spa-keygen issue` for `user` into spad's keys dir; returns the client key file.
    pub fn issue_key(&self, user: &str, doors: &[&str]) -> Result<PathBuf> {
        self.issue_key_into(user, doors, &self.keys_dir())
    }

    /// `spa-keygen issue` into `keys_dir`; returns the client key file.
    pub fn issue_key_into(&self, user: &str, doors: &[&str], keys_dir: &Path) -> Result<PathBuf> {
        let out = self.dir.path().join(format!("{user}.key"));
        run_checked(
            std::process::Command::new(workspace_bin("spa-keygen")?)
                .args([
                    "issue",
                    "--user",
                    user,
                    "--server-id",
                    SERVER_ID,
                    "--doors",
                    &doors.join(","),
                ])
                .arg("--keys-dir")
                .arg(keys_dir)
                .arg("--out")
                .arg(&out),
        )?;
        Ok(out)
    }

    /// `spa-keygen revoke` for `user` in spad's keys dir.
    pub fn revoke_key(&self, user: &str) -> Result<()> {
        run_checked(
            std::process::Command::new(workspace_bin("spa-keygen")?)
                .args(["revoke", "--user", user, "--keys-dir"])
                .arg(self.keys_dir()),
        )?;
        Ok(())
    }

    /// Runs `spa-client --key KEY open DOOR HOST --port 62210 EXTRA...` on the laptop.
    pub fn knock(&self, key: &Path, door: &str, host: IpAddr, extra: &[&str]) -> Result<Output> {
        let mut cmd = self.laptop.command(workspace_bin("spa-client")?);
        cmd.arg("--key").arg(key).args([
            "open",
            door,
            &host.to_string(),
            "--port",
            &SPA_PORT.to_string(),
        ]);
        cmd.args(extra);
        cmd.output().map_err(io(format!("running {cmd:?}")))
    }

    /// Whether the laptop can connect to the server (IPv4) on `port`.
    pub fn laptop_connects(&self, port: u16) -> Result<bool> {
        connect_ok(&self.laptop, SERVER_V4.into(), port, CONNECT_TIMEOUT)
    }

    /// Whether the other host can connect to the server (IPv4) on `port`.
    pub fn other_connects(&self, port: u16) -> Result<bool> {
        connect_ok(&self.other, SERVER_V4_OTHER.into(), port, CONNECT_TIMEOUT)
    }

    /// The server's SPA socket address facing the laptop.
    pub fn spa_addr(&self) -> SocketAddr {
        SocketAddr::new(SERVER_V4.into(), SPA_PORT)
    }
}
