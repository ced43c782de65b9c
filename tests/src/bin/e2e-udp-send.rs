//! e2e-udp-send FILE HOST PORT: sends the bytes of FILE as exactly one UDP
//! datagram to HOST:PORT (used to replay saved packets and send junk).

use std::net::{IpAddr, SocketAddr, UdpSocket};

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, host, port] = args.as_slice() else {
        bail!("usage: e2e-udp-send FILE HOST PORT");
    };
    let bytes = std::fs::read(file).with_context(|| format!("reading {file}"))?;
    let host: IpAddr = host
        .parse()
        .with_context(|| format!("HOST {host:?} is not an IP address"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("PORT {port:?} is not a number 1-65535"))?;
    let local: SocketAddr = if host.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()?;
    let socket = UdpSocket::bind(local).context("binding a UDP socket")?;
    let sent = socket
        .send_to(&bytes, (host, port))
        .with_context(|| format!("sending to {host}:{port}"))?;
    if sent != bytes.len() {
        bail!("sent {sent} of {} bytes", bytes.len());
    }
    Ok(())
}
