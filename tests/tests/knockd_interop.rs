//! Interop with the real knockd package (root only): spad's classic doors
//! against Debian's `knock` client, `spa-client knock` against the real
//! `knockd`, and a knockd.conf imported by `spad import-knockd` behaving
//! under spad as it did under knockd. Judged by real TCP connects from the
//! client namespace to a listener behind the door.
//!
//! Widened for knockd conformance (issue 13): Debian's default knockd.conf
//! imported and run by spad, IPv6 knocks getting the IPv6 commands, UDP
//! steps, TCP flag rules judged with hand-made segments, and a `Target`
//! door. Command doors are judged by what their commands write.
//!
//! Each test builds its own two namespaces with the harness's [`Netns`]
//! (`spa-kd-<pid>-<n>-server` and `-client`), joined by a [`VethPair`]
//! (10.79.1.1 / 10.79.1.2, fd79:1::1 / fd79:1::2), and deletes them (with
//! knockd, spad and the listener inside) when it ends, even on failure.
//! Namespaces left behind by a killed run are swept at the next start.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use spa_e2e::bins::{helper_bin, workspace_bin};
use spa_e2e::child::NsChild;
use spa_e2e::netns::{Netns, VethPair};
use spa_e2e::spad::Spad;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const SERVER: &str = "10.79.1.1";
const CLIENT: &str = "10.79.1.2";
const SERVER6: &str = "fd79:1::1";
const CLIENT6: &str = "fd79:1::2";
/// An address on the link that is not the server's: traffic to it passes
/// by the server (the client sends it to the server's MAC address).
const ELSEWHERE: &str = "10.79.1.50";
/// This suite's namespace prefix.
const NETNS_PREFIX: &str = "spa-kd-";
/// The port behind the door.
const DOOR_PORT: u16 = 2222;
/// How long a door stays open (knockd's cmd_timeout, spad's default_secs).
const OPEN_SECS: u64 = 3;
const KNOCKD: &str = "/usr/sbin/knockd";
const KNOCK: &str = "/usr/bin/knock";

/// The knockd.conf of test (b), imported for test (c): knockd inserts an
/// ACCEPT in front of the DROP rule the test installs, and deletes it again
/// `cmd_timeout` seconds later.
const KNOCKD_CONF: &str = "\
[options]
\tInterface = eth0

[open2222]
\tsequence      = 7000,8000,9000
\tseq_timeout   = 5
\ttcpflags      = syn
\tstart_command = /usr/sbin/iptables -I INPUT 1 -s %IP% -p tcp --dport 2222 -j ACCEPT
\tcmd_timeout   = 3
\tstop_command  = /usr/sbin/iptables -D INPUT -s %IP% -p tcp --dport 2222 -j ACCEPT
";

/// A server and a client namespace, a listener on [`DOOR_PORT`] in the
/// server, and a scratch directory. Fields drop in order: processes first.
#[derive(Debug)]
struct Net {
    _listener: NsChild,
    server: Netns,
    client: Netns,
    dir: tempfile::TempDir,
}

impl Net {
    fn new() -> TestResult<Net> {
        let dir = tempfile::Builder::new().prefix("spa-knock-").tempdir()?;
        let server = Netns::with_prefix(NETNS_PREFIX, "server")?;
        let client = Netns::with_prefix(NETNS_PREFIX, "client")?;
        VethPair::new(
            &server,
            "eth0",
            &[&format!("{SERVER}/24"), &format!("{SERVER6}/64")],
            &client,
            "eth0",
            &[&format!("{CLIENT}/24"), &format!("{CLIENT6}/64")],
        )?;
        let mut listener = server.spawn(
            "e2e-listen",
            helper_bin("e2e-listen")?,
            [DOOR_PORT.to_string()],
        )?;
        listener.wait_for_line("the listener", Duration::from_secs(5), |l| {
            l.starts_with("listening")
        })?;
        Ok(Net {
            _listener: listener,
            server,
            client,
            dir,
        })
    }

    /// Whether the client reaches the listener behind the door.
    fn client_connects(&self) -> TestResult<bool> {
        let out = self.client.output(
            helper_bin("e2e-connect")?,
            [SERVER, &DOOR_PORT.to_string(), "500"],
        )?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(format!("e2e-connect failed: {out:?}").into()),
        }
    }

    /// The DROP rule knockd's ACCEPT is inserted in front of.
    fn install_drop_rule(&self) -> TestResult {
        self.server.run(
            "iptables",
            [
                "-A",
                "INPUT",
                "-p",
                "tcp",
                "--dport",
                &DOOR_PORT.to_string(),
                "-j",
                "DROP",
            ],
        )?;
        Ok(())
    }

    /// Knocks 7000 8000 9000 (TCP) with the real knock client.
    fn real_knock(&self, ports: &[&str]) -> TestResult {
        let out = self.client.output(
            KNOCK,
            std::iter::once("-v")
                .chain([SERVER])
                .chain(ports.iter().copied()),
        )?;
        if !out.status.success() {
            return Err(format!("knock failed: {out:?}").into());
        }
        Ok(())
    }

    /// Starts spad on `config` (written to the scratch dir) and waits for "spad ready".
    fn start_spad(&self, config: &str) -> TestResult<Spad> {
        let path = self.dir.path().join("spad.toml");
        std::fs::write(&path, config)?;
        Ok(Spad::start(&self.server, &path)?)
    }

    fn keys_dir(&self) -> TestResult<PathBuf> {
        let dir = self.dir.path().join("keys.d");
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

/// Polls `check` every 100 ms until it is true; fails after `timeout`.
fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> TestResult<bool>,
) -> TestResult {
    let deadline = Instant::now() + timeout;
    loop {
        if check()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The door is shut, opens within 2 s of the knock, and shuts again after
/// about [`OPEN_SECS`] (not before 1 s of it has passed).
fn assert_door_cycle(net: &Net, knock: impl FnOnce() -> TestResult) -> TestResult {
    assert!(
        !net.client_connects()?,
        "port {DOOR_PORT} is open before any knock"
    );
    knock()?;
    let knocked = Instant::now();
    wait_until("the door to open", Duration::from_secs(2), || {
        net.client_connects()
    })?;
    wait_until(
        "the door to close again",
        Duration::from_secs(OPEN_SECS + 4),
        || Ok(!net.client_connects()?),
    )?;
    let open_for = knocked.elapsed();
    assert!(
        open_for >= Duration::from_secs(1),
        "the door closed after only {open_for:?}"
    );
    Ok(())
}

/// (a) Debian's `knock` client opens a classic door of spad (nftables backend).
#[test]
#[ignore = "needs root"]
fn the_real_knock_client_opens_a_classic_spad_door() -> TestResult {
    let net = Net::new()?;
    let config = format!(
        "server_id = \"gw1\"\n\
         keys_dir = {keys:?}\n\
         state_dir = {state:?}\n\
         interfaces = [\"eth0\"]\n\
         port = 62210\n\
         backend = \"nftables\"\n\
         \n\
         [doors.knock2222]\n\
         open = [\"tcp/{DOOR_PORT}\"]\n\
         sequence = [\"7000:tcp\", \"8000:tcp\", \"9000:udp\"]\n\
         seq_timeout_secs = 5\n\
         tcpflags = \"syn\"\n\
         default_secs = {OPEN_SECS}\n\
         max_secs = {OPEN_SECS}\n",
        keys = net.keys_dir()?,
        state = net.state_dir(),
    );
    let spad = net.start_spad(&config)?;
    // A wrong sequence opens nothing.
    net.real_knock(&["7000", "9000:udp", "8000"])?;
    std::thread::sleep(Duration::from_millis(500));
    assert!(!net.client_connects()?, "a wrong sequence opened the door");
    assert_door_cycle(&net, || net.real_knock(&["7000", "8000", "9000:udp"]))?;
    assert!(
        spad.log()
            .iter()
            .any(|l| l.contains("knock2222") && l.contains(CLIENT)),
        "spad logged no door opening for {CLIENT}: {:#?}",
        spad.log()
    );
    Ok(())
}

/// (b) `spa-client knock` opens a door of the real knockd.
#[test]
#[ignore = "needs root"]
fn spa_client_knock_opens_a_real_knockd_door() -> TestResult {
    let net = Net::new()?;
    net.install_drop_rule()?;
    let conf = net.dir.path().join("knockd.conf");
    std::fs::write(&conf, KNOCKD_CONF)?;
    let mut knockd = net.server.spawn(
        "knockd",
        KNOCKD,
        [
            OsStr::new("-c"),
            conf.as_os_str(),
            OsStr::new("-i"),
            OsStr::new("eth0"),
            OsStr::new("-v"),
            OsStr::new("-D"),
        ],
    )?;
    knockd.wait_for_line("knockd to listen", Duration::from_secs(5), |l| {
        l.contains("listening on eth0")
    })?;
    let spa_client = workspace_bin("spa-client")?;
    assert_door_cycle(&net, || {
        let out = net
            .client
            .output(&spa_client, ["knock", SERVER, "7000", "8000", "9000"])?;
        if !out.status.success() {
            return Err(format!("spa-client knock failed: {out:?}").into());
        }
        Ok(())
    })?;
    let lines = knockd.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("{CLIENT}: open2222: OPEN SESAME"))),
        "knockd did not see the knock: {lines:#?}"
    );
    Ok(())
}

/// (c) The same knockd.conf, imported by `spad import-knockd` and run by spad
/// instead of knockd, is opened by the real knock client the same way.
#[test]
#[ignore = "needs root"]
fn an_imported_knockd_conf_behaves_the_same_under_spad() -> TestResult {
    let net = Net::new()?;
    net.install_drop_rule()?;
    let conf = net.dir.path().join("knockd.conf");
    std::fs::write(&conf, KNOCKD_CONF)?;
    let out = Command::new(workspace_bin("spad")?)
        .arg("import-knockd")
        .arg(&conf)
        .output()?;
    if !out.status.success() {
        return Err(format!("spad import-knockd failed: {out:?}").into());
    }
    let imported = String::from_utf8(out.stdout)?;
    let mut config: toml::Table = toml::from_str(&imported)
        .map_err(|e| format!("the import is not TOML: {e}\n{imported}"))?;
    let door = config
        .get("doors")
        .and_then(|d| d.get("open2222"))
        .ok_or_else(|| format!("no [doors.open2222] in the import:\n{imported}"))?;
    assert_eq!(
        door.get("default_secs").and_then(toml::Value::as_integer),
        Some(3)
    );
    assert_eq!(
        config
            .get("interfaces")
            .and_then(|i| i.as_array())
            .map(|a| a.len()),
        Some(1)
    );
    // Only the paths change: this test's scratch dirs instead of /etc and /var.
    let keys = net.keys_dir()?;
    config.insert(
        "keys_dir".into(),
        keys.to_string_lossy().into_owned().into(),
    );
    config.insert(
        "state_dir".into(),
        net.state_dir().to_string_lossy().into_owned().into(),
    );
    let spad = net.start_spad(&toml::to_string(&config)?)?;
    assert_door_cycle(&net, || net.real_knock(&["7000", "8000", "9000"]))?;
    assert!(
        spad.log()
            .iter()
            .any(|l| l.contains("open2222") && l.contains(CLIENT)),
        "spad logged no door opening for {CLIENT}: {:#?}",
        spad.log()
    );
    Ok(())
}

/// A file the imported commands append to (`echo WHAT %IP% >> FILE`), read
/// back to see which command ran for which address.
struct CommandLog(PathBuf);

impl CommandLog {
    fn new(net: &Net) -> CommandLog {
        CommandLog(net.dir.path().join("commands.log"))
    }

    fn path(&self) -> String {
        self.0.display().to_string()
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.0)
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Waits until `line` is in the log.
    fn wait_for(&self, line: &str) -> TestResult {
        wait_until(
            &format!("{line:?} in the command log"),
            Duration::from_secs(3),
            || Ok(self.lines().iter().any(|l| l == line)),
        )
        .map_err(|e| format!("{e}; the log holds {:?}", self.lines()).into())
    }

    /// Checks, after the knocks had time to act, that `line` is not in it.
    fn never(&self, line: &str) -> TestResult {
        std::thread::sleep(Duration::from_millis(800));
        let lines = self.lines();
        if lines.iter().any(|l| l == line) {
            return Err(format!("{line:?} is in the command log: {lines:?}").into());
        }
        Ok(())
    }
}

/// `spad import-knockd FILE`, as a user would run it: the TOML it prints.
fn import_knockd(conf: &std::path::Path) -> TestResult<String> {
    let out = Command::new(workspace_bin("spad")?)
        .arg("import-knockd")
        .arg(conf)
        .output()?;
    if !out.status.success() {
        return Err(format!("spad import-knockd failed: {out:?}").into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

impl Net {
    /// Imports `knockd_conf` with `spad import-knockd` and starts spad on the
    /// result, changing only state_dir (and keys_dir, when `keys` is set) to
    /// this test's scratch directory.
    fn run_imported(&self, knockd_conf: &str, keys: bool) -> TestResult<Spad> {
        let conf = self.dir.path().join("knockd.conf");
        std::fs::write(&conf, knockd_conf)?;
        let imported = import_knockd(&conf)?;
        let mut config: toml::Table = toml::from_str(&imported)
            .map_err(|e| format!("the import is not TOML: {e}\n{imported}"))?;
        config.insert(
            "state_dir".into(),
            self.state_dir().to_string_lossy().into_owned().into(),
        );
        if keys {
            config.insert(
                "keys_dir".into(),
                self.keys_dir()?.to_string_lossy().into_owned().into(),
            );
        }
        self.start_spad(&toml::to_string(&config)?)
    }

    /// Sends one hand-made TCP segment with `flags` to each of `ports` of
    /// `dst`, from the client (a raw socket, through python3: the `knock`
    /// client only sends SYNs). Each segment has its own source port.
    fn raw_tcp(&self, dst: &str, flags: u8, first_src_port: u16, ports: &[u16]) -> TestResult {
        const SEND: &str = r#"
import socket, struct, sys, time
src, dst, flags, sport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def checksum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
for i, port in enumerate(int(p) for p in sys.argv[5:]):
    seg = struct.pack("!HHIIBBHHH", sport + i, port, 7919 * (i + 1), 1, 5 << 4, flags, 65535, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(seg))
    seg = seg[:16] + struct.pack("!H", checksum(pseudo + seg)) + seg[18:]
    sock.sendto(seg, (dst, 0))
    time.sleep(0.1)
"#;
        let mut args = vec![
            "-c".to_owned(),
            SEND.to_owned(),
            CLIENT.to_owned(),
            dst.to_owned(),
            flags.to_string(),
            first_src_port.to_string(),
        ];
        args.extend(ports.iter().map(u16::to_string));
        let out = self.client.output("python3", &args)?;
        if !out.status.success() {
            return Err(format!("sending raw TCP segments failed: {out:?}").into());
        }
        Ok(())
    }

    /// The real knock client, any options and ports.
    fn knock(&self, args: &[&str]) -> TestResult {
        let out = self.client.output(KNOCK, args)?;
        if !out.status.success() {
            return Err(format!("knock {args:?} failed: {out:?}").into());
        }
        Ok(())
    }

    /// Makes the client send traffic for [`ELSEWHERE`] to the server's MAC
    /// address, as it would to a router: the server sees packets that are
    /// not addressed to it.
    fn route_elsewhere_through_server(&self) -> TestResult {
        let mac = self.server.run("cat", ["/sys/class/net/eth0/address"])?;
        self.client.run(
            "ip",
            [
                "neigh",
                "replace",
                ELSEWHERE,
                "lladdr",
                mac.trim(),
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        )?;
        Ok(())
    }
}

/// (d) Debian's default knockd.conf, imported as it is, run by spad: the real
/// knock client opens ssh with 7000,8000,9000 (knockd's `iptables -A`) and
/// closes it with 9000,8000,7000 (`iptables -D`).
#[test]
#[ignore = "needs root"]
fn debians_default_knockd_conf_imported_runs_under_spad() -> TestResult {
    let net = Net::new()?;
    let mut ssh = net
        .server
        .spawn("e2e-listen 22", helper_bin("e2e-listen")?, ["22"])?;
    ssh.wait_for_line("the ssh listener", Duration::from_secs(5), |l| {
        l.starts_with("listening")
    })?;
    // Debian's commands append an ACCEPT: the policy drops everything else.
    net.server.run("iptables", ["-P", "INPUT", "DROP"])?;
    let conf = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../spad/tests/knockd/debian-default.conf"),
    )?;
    let spad = net.run_imported(&conf, true)?;
    let ssh_open = || -> TestResult<bool> {
        let out = net
            .client
            .output(helper_bin("e2e-connect")?, [SERVER, "22", "500"])?;
        Ok(out.status.code() == Some(0))
    };
    assert!(!ssh_open()?, "ssh is reachable before any knock");
    net.knock(&[SERVER, "7000", "8000", "9000"])?;
    wait_until("ssh to open", Duration::from_secs(3), ssh_open)?;
    net.knock(&[SERVER, "9000", "8000", "7000"])?;
    wait_until("ssh to close", Duration::from_secs(3), || Ok(!ssh_open()?)).map_err(|e| {
        format!(
            "{e}\nrules: {:?}\nspad: {:#?}",
            net.server.run("iptables", ["-S", "INPUT"]),
            spad.log()
        )
    })?;
    // A repeated first knock (a new connection) invalidates the attempt.
    net.knock(&[SERVER, "7000", "7000", "8000", "9000"])?;
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        !ssh_open()?,
        "7000,7000,8000,9000 opened ssh (knockd does not)"
    );
    Ok(())
}

/// (e) `spad import-knockd FILE > out.toml && spad --config out.toml` on a
/// machine that never had spa installed: no keys directory anywhere.
#[test]
#[ignore = "needs root"]
fn an_imported_config_runs_without_any_keys_directory() -> TestResult {
    let net = Net::new()?;
    let log = CommandLog::new(&net);
    let conf = format!(
        "[options]\n\tInterface = eth0\n[open]\n\tsequence = 7000,8000\n\
         \tcommand = echo open %IP% >> {}\n",
        log.path()
    );
    let _spad = net.run_imported(&conf, false)?;
    net.knock(&[SERVER, "7000", "8000"])?;
    log.wait_for(&format!("open {CLIENT}"))
}

/// (f) An IPv6 knocker gets start_command_6, an IPv4 one start_command; UDP
/// steps count over both.
#[test]
#[ignore = "needs root"]
fn ipv6_knocks_with_udp_steps_run_the_ipv6_command() -> TestResult {
    let net = Net::new()?;
    let log = CommandLog::new(&net);
    let path = log.path();
    let conf = format!(
        "[options]\n\tInterface = eth0\n[both]\n\tsequence = 7000:udp,8000,9000:udp\n\
         \tseq_timeout = 5\n\tstart_command = echo open4 %IP% >> {path}\n\
         \tstart_command_6 = echo open6 %IP% >> {path}\n"
    );
    let _spad = net.run_imported(&conf, true)?;
    net.knock(&["-6", SERVER6, "7000:udp", "8000", "9000:udp"])?;
    log.wait_for(&format!("open6 {CLIENT6}"))?;
    net.knock(&["-4", SERVER, "7000:udp", "8000", "9000:udp"])?;
    log.wait_for(&format!("open4 {CLIENT}"))?;
    let lines = log.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    Ok(())
}

/// (g) knockd's tcpflags rule: listed flags set, others free, `!flag` clear.
/// `syn` accepts a SYN+ACK; `fin,!ack` accepts a FIN and not a FIN+ACK;
/// packets failing a rule neither advance nor break an attempt.
#[test]
#[ignore = "needs root"]
fn tcp_flag_doors_follow_knockds_rule() -> TestResult {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const FIN: u8 = 0x01;
    let net = Net::new()?;
    let log = CommandLog::new(&net);
    let path = log.path();
    let conf = format!(
        "[options]\n\tInterface = eth0\n\
         [syn]\n\tsequence = 7100,7200\n\ttcpflags = syn\n\tcommand = echo syn %IP% >> {path}\n\
         [fin]\n\tsequence = 7300,7400\n\ttcpflags = fin,!ack\n\tcommand = echo fin %IP% >> {path}\n"
    );
    let _spad = net.run_imported(&conf, true)?;
    // ACK alone is not a knock for either door.
    net.raw_tcp(SERVER, ACK, 41_000, &[7100, 7200, 7300, 7400])?;
    log.never(&format!("syn {CLIENT}"))?;
    net.raw_tcp(SERVER, FIN | ACK, 41_100, &[7300, 7400])?;
    log.never(&format!("fin {CLIENT}"))?;
    // SYN+ACK satisfies `syn`.
    net.raw_tcp(SERVER, SYN | ACK, 41_200, &[7100, 7200])?;
    log.wait_for(&format!("syn {CLIENT}"))?;
    net.raw_tcp(SERVER, FIN, 41_300, &[7300, 7400])?;
    log.wait_for(&format!("fin {CLIENT}"))
}

/// (g2) A `syn` door alone (no other door needing every TCP packet): the
/// kernel filter must still pass its SYN+ACK knocks.
#[test]
#[ignore = "needs root"]
fn a_syn_door_alone_accepts_syn_ack_knocks() -> TestResult {
    const SYN_ACK: u8 = 0x12;
    let net = Net::new()?;
    let log = CommandLog::new(&net);
    let path = log.path();
    let conf = format!(
        "[options]\n\tInterface = eth0\n\
         [syn]\n\tsequence = 7100,7200\n\ttcpflags = syn\n\tcommand = echo syn %IP% >> {path}\n"
    );
    let _spad = net.run_imported(&conf, true)?;
    net.raw_tcp(SERVER, SYN_ACK, 42_000, &[7100, 7200])?;
    log.wait_for(&format!("syn {CLIENT}"))
}

/// (h) A door with knockd's `Target` counts only knocks sent to the target
/// address (here one the server does not own: it sees them pass by), not
/// knocks sent to the server itself.
#[test]
#[ignore = "needs root"]
fn a_target_door_counts_knocks_to_its_target_only() -> TestResult {
    let net = Net::new()?;
    net.route_elsewhere_through_server()?;
    let log = CommandLog::new(&net);
    let path = log.path();
    let conf = format!(
        "[options]\n\tInterface = eth0\n\
         [routed]\n\tsequence = 7500,7600\n\tTarget = {ELSEWHERE}\n\
         \tcommand = echo routed %IP% >> {path}\n"
    );
    let _spad = net.run_imported(&conf, true)?;
    net.knock(&[SERVER, "7500", "7600"])?;
    log.never(&format!("routed {CLIENT}"))?;
    net.knock(&[ELSEWHERE, "7500", "7600"])?;
    log.wait_for(&format!("routed {CLIENT}"))
}

/// (i) Knocks that only pass by (sent to an address that is not the
/// server's) open no door without a `Target`: knockd ignores them too.
#[test]
#[ignore = "needs root"]
fn knocks_passing_by_open_no_door() -> TestResult {
    let net = Net::new()?;
    net.route_elsewhere_through_server()?;
    let log = CommandLog::new(&net);
    let path = log.path();
    let conf = format!(
        "[options]\n\tInterface = eth0\n\
         [local]\n\tsequence = 7700,7800\n\tcommand = echo local %IP% >> {path}\n"
    );
    let _spad = net.run_imported(&conf, true)?;
    net.knock(&[ELSEWHERE, "7700", "7800"])?;
    log.never(&format!("local {CLIENT}"))?;
    net.knock(&[SERVER, "7700", "7800"])?;
    log.wait_for(&format!("local {CLIENT}"))
}
