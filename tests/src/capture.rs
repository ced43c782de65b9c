//! A packet capture in the server's namespace of everything its host SENDS
//! (tcpdump on all interfaces, outgoing direction only, ARP and IPv6
//! neighbour discovery left out), to prove spad's host never answers a
//! knock: no UDP, no ICMP, nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::child::NsChild;
use crate::error::Result;
use crate::netns::{run_checked, Netns};

/// The capture filter: all IP traffic except IPv6 link housekeeping: packets
/// to multicast or from link-local addresses, and neighbour/router discovery.
pub const SENT_FILTER: &str =
    "not arp and not (ip6 and (ip6[24] == 0xff or ip6[8] == 0xfe or (ip6[6] == 58 and ip6[40] >= 133 and ip6[40] <= 137)))";

/// A running tcpdump writing what the namespace's host sends to a pcap file.
#[derive(Debug)]
pub struct PacketCapture {
    child: NsChild,
    file: PathBuf,
}

impl PacketCapture {
    /// Starts capturing into `file`; returns once tcpdump is listening.
    pub fn start(ns: &Netns, file: &Path) -> Result<PacketCapture> {
        let mut child = ns.spawn(
            &format!("tcpdump in {}", ns.name()),
            "tcpdump",
            [
                "-i".as_ref(),
                "any".as_ref(),
                "-Q".as_ref(),
                "out".as_ref(),
                "-U".as_ref(),
                "--immediate-mode".as_ref(),
                "-nn".as_ref(),
                "-Z".as_ref(),
                "root".as_ref(),
                "-w".as_ref(),
                file.as_os_str(),
                SENT_FILTER.as_ref(),
            ],
        )?;
        child.wait_for_line("tcpdump to listen", Duration::from_secs(10), |l| {
            l.contains("listening on")
        })?;
        Ok(PacketCapture {
            child,
            file: file.to_path_buf(),
        })
    }

    /// Stops the capture; one line per packet sent (tcpdump's `-nn` text).
    pub fn stop(mut self) -> Result<Vec<String>> {
        // Let packets already in flight reach the capture before stopping it.
        std::thread::sleep(Duration::from_millis(300));
        self.child.signal(Signal::SIGINT)?;
        self.child.wait_exit(Duration::from_secs(5))?;
        let text = run_checked(Command::new("tcpdump").args(["-nn", "-r"]).arg(&self.file))?;
        Ok(text.lines().map(str::to_owned).collect())
    }
}
