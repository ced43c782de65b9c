//! Interop with the real knockd package (root only): spad's classic doors
//! against Debian's `knock` client, `spa-client knock` against the real
//! `knockd`, and a knockd.conf imported by `spad import-knockd` behaving
//! under spad as it did under knockd. Judged by real TCP connects from the
//! client namespace to a listener behind the door.
//!
//! Each test builds its own two namespaces with the harness's [`Netns`]
//! (`spa-e2e-<pid>-<n>-server` and `-client`), joined by a [`VethPair`]
//! (10.79.1.1 / 10.79.1.2), and deletes them (with knockd, spad and the
//! listener inside) when it ends, even on failure. Namespaces left behind by
//! a killed run are swept at the next start.

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
        let server = Netns::new("server")?;
        let client = Netns::new("client")?;
        VethPair::new(
            &server,
            "eth0",
            &[&format!("{SERVER}/24")],
            &client,
            "eth0",
            &[&format!("{CLIENT}/24")],
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
