//! The lab the firewall tests run in: network namespaces of their own
//! (deleted when the guard drops, also when a test fails), veth pairs
//! between a server and two clients, and TCP/UDP probes made from inside a
//! namespace. The host's own firewall is never touched. Needs root.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs::File;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

/// How long a probe waits before calling a port closed. Everything is local,
/// so an open port answers within microseconds.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(600);

/// Runs a command; its stdout, or a panic naming the command and stderr.
pub fn run(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails the test with a clear message unless it runs as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the firewall tests create network namespaces and need root (CI runs them as root)"
    );
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `spa-fw-<pid>-<n>-<role>` with loopback up.
    pub fn new(role: &str) -> Netns {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("spa-fw-{}-{n}-{role}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace; its stdout.
    pub fn exec(&self, argv: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", self.name.as_str()];
        full.extend_from_slice(argv);
        run(&full)
    }

    /// Runs `f` on a thread that has entered this namespace: sockets it
    /// creates live there.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                    setns(&file, CloneFlags::CLONE_NEWNET).expect("setns into the test namespace");
                    f()
                })
                .join()
                .expect("namespace thread panicked")
        })
    }

    /// A listener on every address of this namespace (v4 and v6).
    pub fn listen_tcp(&self, port: u16) -> TcpListener {
        self.enter(|| TcpListener::bind(("::", port)).expect("bind the test listener"))
    }

    /// True when a TCP connection to `ip:port` from this namespace completes.
    pub fn can_connect(&self, ip: IpAddr, port: u16) -> bool {
        self.enter(|| TcpStream::connect_timeout(&SocketAddr::new(ip, port), PROBE_TIMEOUT).is_ok())
    }

    /// Sends a UDP datagram to a port nobody listens on; true when the
    /// kernel answered with ICMP port-unreachable (the socket sees
    /// "connection refused").
    pub fn udp_refused(&self, ip: IpAddr, port: u16) -> bool {
        self.enter(|| {
            let socket = UdpSocket::bind(("0.0.0.0", 0)).expect("bind a UDP socket");
            socket.connect((ip, port)).expect("connect the UDP socket");
            socket
                .set_read_timeout(Some(PROBE_TIMEOUT))
                .expect("set a read timeout");
            let mut buf = [0u8; 16];
            for _ in 0..2 {
                let _ = socket.send(b"spa-probe");
                if let Err(e) = socket.recv(&mut buf) {
                    if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        return true;
                    }
                }
            }
            false
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A server namespace with two clients on separate veth links:
/// A = 192.0.2.2 / 2001:db8:a::2 talks to the server at 192.0.2.1 /
/// 2001:db8:a::1; B = 198.51.100.2 talks to it at 198.51.100.1.
#[derive(Debug)]
pub struct Lab {
    pub server: Netns,
    pub client_a: Netns,
    pub client_b: Netns,
}

pub const SERVER_FOR_A: &str = "192.0.2.1";
pub const SERVER_FOR_A_V6: &str = "2001:db8:a::1";
pub const CLIENT_A: &str = "192.0.2.2";
pub const CLIENT_A_V6: &str = "2001:db8:a::2";
pub const SERVER_FOR_B: &str = "198.51.100.1";
pub const CLIENT_B: &str = "198.51.100.2";

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

impl Lab {
    pub fn new() -> Lab {
        require_root();
        let lab = Lab {
            server: Netns::new("s"),
            client_a: Netns::new("a"),
            client_b: Netns::new("b"),
        };
        let s = &lab.server;
        for (client, link) in [(&lab.client_a, "to-a"), (&lab.client_b, "to-b")] {
            s.exec(&[
                "ip",
                "link",
                "add",
                link,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &client.name,
            ]);
            s.exec(&["ip", "link", "set", link, "up"]);
            client.exec(&["ip", "link", "set", "eth0", "up"]);
        }
        s.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", "to-a"]);
        s.exec(&[
            "ip",
            "addr",
            "add",
            "2001:db8:a::1/64",
            "dev",
            "to-a",
            "nodad",
        ]);
        s.exec(&["ip", "addr", "add", "198.51.100.1/24", "dev", "to-b"]);
        lab.client_a
            .exec(&["ip", "addr", "add", "192.0.2.2/24", "dev", "eth0"]);
        lab.client_a.exec(&[
            "ip",
            "addr",
            "add",
            "2001:db8:a::2/64",
            "dev",
            "eth0",
            "nodad",
        ]);
        lab.client_b
            .exec(&["ip", "addr", "add", "198.51.100.2/24", "dev", "eth0"]);
        lab
    }

    /// Can client A reach the server's `port` over IPv4?
    pub fn a_connects(&self, port: u16) -> bool {
        self.client_a.can_connect(ip(SERVER_FOR_A), port)
    }

    /// Can client A reach the server's `port` over IPv6?
    pub fn a_connects_v6(&self, port: u16) -> bool {
        self.client_a.can_connect(ip(SERVER_FOR_A_V6), port)
    }

    /// Can client B reach the server's `port`?
    pub fn b_connects(&self, port: u16) -> bool {
        self.client_b.can_connect(ip(SERVER_FOR_B), port)
    }
}
