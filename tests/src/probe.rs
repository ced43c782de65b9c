//! What a user of the network does, run inside a namespace through this
//! crate's helper bins: try a TCP connect, send one UDP datagram, or serve a
//! TCP port that greets with "hello".

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::bins::helper_bin;
use crate::child::NsChild;
use crate::error::{io, E2eError, Result};
use crate::netns::Netns;

/// Whether a TCP connect from `ns` to `addr:port` succeeds within `timeout`
/// and the peer greets with "hello" (the listener of [`start_listener`]).
pub fn connect_ok(ns: &Netns, addr: IpAddr, port: u16, timeout: Duration) -> Result<bool> {
    let out = ns.output(
        helper_bin("e2e-connect")?,
        [
            addr.to_string(),
            port.to_string(),
            timeout.as_millis().to_string(),
        ],
    )?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(E2eError::CommandFailed {
            command: format!("e2e-connect {addr} {port} in {}", ns.name()),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
    }
}

/// Sends `bytes` as one UDP datagram from `ns` to `dst` (via a file in `scratch`).
pub fn udp_send(ns: &Netns, bytes: &[u8], dst: SocketAddr, scratch: &Path) -> Result<()> {
    let file = tempfile::NamedTempFile::new_in(scratch).map_err(io("creating a datagram file"))?;
    std::fs::write(file.path(), bytes).map_err(io(format!("writing {}", file.path().display())))?;
    send_file(ns, file.path(), dst)
}

/// Sends the contents of `file` as one UDP datagram from `ns` to `dst`.
pub fn send_file(ns: &Netns, file: &Path, dst: SocketAddr) -> Result<()> {
    ns.run(
        helper_bin("e2e-udp-send")?,
        [
            file.as_os_str().to_owned(),
            dst.ip().to_string().into(),
            dst.port().to_string().into(),
        ],
    )?;
    Ok(())
}

/// Starts a TCP listener in `ns` on every address for each of `ports`; each
/// accepted connection gets "hello\n". Returns once all ports listen.
pub fn start_listener(ns: &Netns, ports: &[u16]) -> Result<NsChild> {
    let mut child = ns.spawn(
        &format!("e2e-listen in {}", ns.name()),
        helper_bin("e2e-listen")?,
        ports.iter().map(|p| p.to_string()),
    )?;
    child.wait_for_line("the listener to be ready", Duration::from_secs(5), |l| {
        l.starts_with("listening")
    })?;
    Ok(child)
}
