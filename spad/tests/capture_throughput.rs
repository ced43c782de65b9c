//! Rough capture throughput on `lo` (root only): 100k 100-byte datagrams sent as fast
//! as one thread can, counted by a capture thread; once through the receive ring, once
//! with one `recvfrom` per datagram (the fallback), one after the other. Prints the numbers, including the
//! capture thread's CPU time (per datagram, and as a share of one core while the flood
//! lasts); asserts only that every datagram is accounted for (delivered or dropped).
//! Meaningful numbers need `--release`:
//! `cargo test --release -p spad --test capture_throughput -- --include-ignored --nocapture`
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use spad::capture::{Capture, FilterSpec};

const PORT: u16 = 62291;
const COUNT: u64 = 100_000;
const DATA: u8 = b'D';
const END: &[u8] = b"END";

/// CPU time (ns) the calling thread has spent running, from its `schedstat`.
fn own_cpu_ns() -> u64 {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    schedstat
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// What the capture thread reports when it sees END.
struct Counted {
    data: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    cpu_ns: u64,
}

#[test]
#[ignore = "needs root"]
fn capture_keeps_up_with_a_loopback_flood_or_counts_the_drops() {
    let spec = FilterSpec::spa_only(PORT);
    let ring = Capture::open(Some("lo"), &spec).unwrap();
    assert!(ring.uses_ring());
    flood("ring", ring);
    flood(
        "recvfrom",
        Capture::open_with_recvfrom(Some("lo"), &spec).unwrap(),
    );
}

fn flood(name: &str, mut capture: Capture) {
    let handle = capture.handle();
    let target = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), PORT);
    // A socket on the port that never reads: no ICMP port-unreachable per datagram.
    let _sink = UdpSocket::bind(target).unwrap();

    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        let cpu_start = own_cpu_ns();
        let (mut data, mut first, mut last) = (0u64, None, None);
        loop {
            let packet = capture.next().unwrap();
            if packet.payload == END {
                let cpu_ns = own_cpu_ns() - cpu_start;
                done.send(Counted {
                    data,
                    first,
                    last,
                    cpu_ns,
                })
                .unwrap();
                return;
            }
            if packet.payload.first() == Some(&DATA) {
                data += 1;
                let now = Instant::now();
                first.get_or_insert(now);
                last = Some(now);
            }
        }
    });
    thread::sleep(Duration::from_millis(50)); // let it block in `next`

    let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let payload = [DATA; 100];
    let started = Instant::now();
    let mut sent = 0u64;
    for _ in 0..COUNT {
        if sender.send_to(&payload, target).is_ok() {
            sent += 1;
        }
    }
    let send_time = started.elapsed();

    // The END marker may itself be dropped on a full buffer: repeat until seen.
    let mut ends = 0u64;
    let counted = loop {
        sender.send_to(END, target).unwrap();
        ends += 1;
        if let Ok(result) = finished.recv_timeout(Duration::from_millis(200)) {
            break result;
        }
        assert!(ends < 100, "the capture thread never saw END");
    };
    let stats = handle.stats().unwrap();
    let captured = counted.data;

    let capture_secs = match (counted.first, counted.last) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
        _ => 0.0,
    };
    println!(
        "{name}: sent {sent} datagrams in {:.3} s ({:.0}/s); captured {captured} ({:.0}/s over {:.3} s); \
         kernel: received {} dropped {}; skipped {}",
        send_time.as_secs_f64(),
        sent as f64 / send_time.as_secs_f64(),
        captured as f64 / capture_secs.max(1e-9),
        capture_secs,
        stats.received,
        stats.dropped,
        stats.skipped,
    );
    println!(
        "{name}: capture thread CPU: {:.1} ms in all, {:.2} us per captured datagram, \
         {:.0} % of a core over the {:.3} s of sending",
        counted.cpu_ns as f64 / 1e6,
        counted.cpu_ns as f64 / 1e3 / (captured.max(1) as f64),
        counted.cpu_ns as f64 / 1e9 / send_time.as_secs_f64() * 100.0,
        send_time.as_secs_f64(),
    );

    assert!(captured > 0);
    assert!(captured <= sent);
    // Every data datagram was delivered or dropped for lack of buffer (the drop count
    // may also include END markers).
    assert!(
        captured + stats.dropped >= sent && captured + stats.dropped <= sent + ends,
        "captured {captured} + dropped {} vs sent {sent} (+{ends} END)",
        stats.dropped
    );
}
