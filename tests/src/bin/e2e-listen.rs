//! e2e-listen PORT...: a TCP server for the end-to-end tests. Listens on
//! `[::]:PORT` (IPv4 and IPv6) for each port, writes "hello\n" to every
//! connection and closes it. Prints "listening on ..." once all ports listen.

use std::io::Write;
use std::net::TcpListener;

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let ports: Vec<u16> = std::env::args()
        .skip(1)
        .map(|p| {
            p.parse::<u16>()
                .with_context(|| format!("port {p:?} is not a number 1-65535"))
        })
        .collect::<anyhow::Result<_>>()?;
    if ports.is_empty() {
        bail!("usage: e2e-listen PORT...");
    }
    let mut threads = Vec::new();
    for port in &ports {
        let listener =
            TcpListener::bind(("::", *port)).with_context(|| format!("binding [::]:{port}"))?;
        threads.push(std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let _ = conn.write_all(b"hello\n");
            }
        }));
    }
    println!("listening on {ports:?}");
    std::io::stdout().flush()?;
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}
