//! The same packets, the same access.conf: real fwknopd (2.6.10, test mode:
//! it decides but touches no firewall, listening on a loopback UDP port)
//! against spa-fwknop's `admit`. Packets are built by the real client
//! (`fwknop -T -B`) and sent to 127.0.0.1 only. Ignored by default: needs
//! Debian's fwknop-client and fwknop-server;
//! `cargo test -p spa-fwknop --test fwknopd_interop -- --ignored`.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use spa_fwknop::access_conf::parse;
use spa_fwknop::{admit, Denial, DEFAULT_MAX_AGE_SECS};

const KEY: &str = "wHCG6pRmYWN2ipv7Ebp+D8q1lEZ8mXVLsuFXA/Fp6oY=";
const HMAC: &str =
    "Mzo0rAOxwEHxqy0d5FzwqKpxtmRqg0cx3nAwzHp5Zc1LVn5YjzFuuNQuH3GYhEx3aqQ/SZ3GECHRT+f4jhsN6w==";
const OTHER_HMAC: &str =
    "gq7IX8qXRGPnJlDCsuVWG5i2BO2yl0FqRkL/6G+KN8Z5SY49ovk1t+SN6n/UqZgXdGkHoLaZGFc6zjWDH+/0eA==";
/// fwknopd's words for "would have opened" in test mode.
const GRANTED: &str = "--test mode enabled, skipping firewall manipulation";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// fwknopd in the foreground, killed (by its own handle) on drop.
struct Fwknopd {
    child: Child,
    log: PathBuf,
    port: u16,
    seen: usize,
}

impl Fwknopd {
    fn start(dir: &Path, access_conf: &str) -> Fwknopd {
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free port")
            .port();
        let conf = dir.join("fwknopd.conf");
        let access = dir.join("access.conf");
        std::fs::write(
            &conf,
            format!("PCAP_INTF lo;\nENABLE_UDP_SERVER Y;\nUDPSERV_PORT {port};\n"),
        )
        .expect("write fwknopd.conf");
        std::fs::write(&access, access_conf).expect("write access.conf");
        for file in [&conf, &access] {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                .expect("chmod 600");
        }
        let log = dir.join("fwknopd.log");
        let child = Command::new("fwknopd")
            .args(["-f", "-t", "-U", "-i", "lo", "-v"])
            .arg("-c")
            .arg(&conf)
            .arg("-a")
            .arg(&access)
            .arg("-d")
            .arg(dir.join("digest.cache"))
            .arg("-p")
            .arg(dir.join("fwknopd.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("run fwknopd (apt-get install fwknop-server)");
        let mut daemon = Fwknopd {
            child,
            log,
            port,
            seen: 0,
        };
        daemon.wait_for("Kicking off UDP server");
        daemon
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Waits until the log (past what was already read) contains `marker`.
    fn wait_for(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.log_text();
            let fresh = &text[self.seen.min(text.len())..];
            if fresh.contains(marker) {
                return fresh.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "fwknopd never said {marker:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends one packet and returns fwknopd's verdict: (granted, its words).
    fn judge(&mut self, packet: &str) -> (bool, String) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
        socket
            .send_to(packet.as_bytes(), ("127.0.0.1", self.port))
            .expect("send to fwknopd on loopback");
        self.wait_for("Got UDP datagram");
        // The decision follows the datagram line: wait until the log has
        // been quiet for 300 ms.
        let mut text = self.log_text();
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let later = self.log_text();
            if later.len() == text.len() {
                break;
            }
            text = later;
        }
        let fresh = text[self.seen.min(text.len())..].to_owned();
        self.seen = text.len();
        (fresh.contains(GRANTED), fresh)
    }
}

impl Drop for Fwknopd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A packet from the real client, built and saved, not sent.
fn client_packet(hmac: Option<&str>, args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("packet");
    let out = Command::new("fwknop")
        .args(["--no-rc-file", "-T", "-D", "127.0.0.1", "-B"])
        .arg(&file)
        .arg(format!("--key-base64-rijndael={KEY}"))
        .args(hmac.map(|h| format!("--key-base64-hmac={h}")))
        .args(args)
        .output()
        .expect("run fwknop (apt-get install fwknop-client)");
    assert!(out.status.success(), "fwknop failed: {out:?}");
    std::fs::read_to_string(file)
        .expect("saved packet")
        .trim_end()
        .to_owned()
}

#[test]
#[ignore = "needs fwknop-server and fwknop-client (apt-get install fwknop-server fwknop-client)"]
fn fwknopd_and_spa_decide_the_same_packets_alike() {
    let access_conf = format!(
        "SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\nREQUIRE_SOURCE_ADDRESS Y\n"
    );
    let stanzas = parse(&access_conf).stanzas;
    assert_eq!(stanzas.len(), 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut fwknopd = Fwknopd::start(dir.path(), &access_conf);

    let hmac = Some(HMAC);
    let valid = client_packet(hmac, &["--use-hmac", "-a", "127.0.0.1", "-A", "tcp/22"]);
    let cases: Vec<(&str, String, bool)> = vec![
        ("valid", valid.clone(), true),
        (
            "port not in OPEN_PORTS",
            client_packet(hmac, &["--use-hmac", "-a", "127.0.0.1", "-A", "tcp/23"]),
            false,
        ),
        (
            "another HMAC key",
            client_packet(
                Some(OTHER_HMAC),
                &["--use-hmac", "-a", "127.0.0.1", "-A", "tcp/22"],
            ),
            false,
        ),
        (
            "no HMAC",
            client_packet(None, &["-a", "127.0.0.1", "-A", "tcp/22"]),
            false,
        ),
        (
            "ten minutes old",
            client_packet(
                hmac,
                &[
                    "--use-hmac",
                    "-a",
                    "127.0.0.1",
                    "-A",
                    "tcp/22",
                    "--time-offset-minus",
                    "10m",
                ],
            ),
            false,
        ),
        (
            "0.0.0.0 under REQUIRE_SOURCE_ADDRESS",
            client_packet(hmac, &["--use-hmac", "-s", "-A", "tcp/22"]),
            false,
        ),
        (
            "a command",
            client_packet(
                hmac,
                &["--use-hmac", "-a", "127.0.0.1", "--server-cmd", "true"],
            ),
            false,
        ),
        (
            "a bit flipped in the HMAC",
            {
                let mut p = valid.clone().into_bytes();
                let last = p.len() - 1;
                p[last] = if p[last] == b'A' { b'B' } else { b'A' };
                String::from_utf8(p).expect("ascii")
            },
            false,
        ),
    ];

    for (name, packet, expected) in cases {
        let (fwknopd_grants, words) = fwknopd.judge(&packet);
        let spa = admit(
            packet.as_bytes(),
            &stanzas,
            LOOPBACK,
            now(),
            DEFAULT_MAX_AGE_SECS,
        );
        assert_eq!(fwknopd_grants, expected, "{name}: fwknopd said:\n{words}");
        assert_eq!(spa.is_ok(), expected, "{name}: spa said {spa:?}");
    }

    // Replays: fwknopd keeps no replay cache in test mode, so only spa's
    // side shows here: the same packet gives the same replay-log key.
    let first = admit(
        valid.as_bytes(),
        &stanzas,
        LOOPBACK,
        now(),
        DEFAULT_MAX_AGE_SECS,
    );
    let again = admit(
        valid.as_bytes(),
        &stanzas,
        LOOPBACK,
        now(),
        DEFAULT_MAX_AGE_SECS,
    );
    assert_eq!(
        first.map(|g| g.replay_key),
        again.map(|g| g.replay_key),
        "a replay must hit the same log entry"
    );

    // The one deliberate difference: fwknopd opens any address a packet
    // names (REQUIRE_SOURCE_ADDRESS only forbids 0.0.0.0); spa opens only
    // for the sender.
    let elsewhere = client_packet(hmac, &["--use-hmac", "-a", "10.9.9.9", "-A", "tcp/22"]);
    let (fwknopd_grants, words) = fwknopd.judge(&elsewhere);
    assert!(fwknopd_grants, "fwknopd refused:\n{words}");
    assert_eq!(
        admit(
            elsewhere.as_bytes(),
            &stanzas,
            LOOPBACK,
            now(),
            DEFAULT_MAX_AGE_SECS
        ),
        Err(Denial::AddressNotSource {
            named: "10.9.9.9".parse().expect("ip"),
            sender: LOOPBACK
        })
    );
}
