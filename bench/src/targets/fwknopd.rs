//! fwknopd under test: Debian's fwknop-server 2.6.10 with its compiled-in
//! default configuration except the interface (`PCAP_INTF`), and one access
//! stanza (Rijndael + HMAC keys, `REQUIRE_SOURCE_ADDRESS Y`, the door's time
//! as `FW_ACCESS_TIMEOUT`). Its firewall is iptables (iptables-nft here), its
//! default. The server namespace gets what an fwknopd admin adds by hand: a
//! DROP for tcp/2222 after fwknopd's jump (fwknopd inserts its jump at the top
//! of INPUT), and a silent drop of UDP to its port so floods draw no ICMP.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{owned, start_logged, Kind, Running};
use crate::error::{io, Result};
use crate::lab::{Lab, FWKNOP_PORT, SERVER_IF, SERVICE_PORT};
use crate::packets::FwknopKeys;

/// The nftables table holding the harness's "no ICMP for the SPA port" rule.
pub const QUIET_TABLE: &str = "benchquiet";

/// Writes `text` to `path`, mode 0600 (fwknopd and spad refuse keys others can read).
pub(crate) fn write_private(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(io(format!("writing {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io(format!("chmod 600 {}", path.display())))
}

/// Installs the quiet-drop table for UDP `ports` in the server namespace.
pub(crate) fn quiet_udp(lab: &Lab, ports: &[u16]) -> Result<Vec<String>> {
    let list = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let script = format!(
        "add table inet {QUIET_TABLE}\nadd chain inet {QUIET_TABLE} input {{ type filter hook input priority 0; policy accept; }}\nadd rule inet {QUIET_TABLE} input udp dport {{ {list} }} drop\n"
    );
    let file = lab.path("quiet.nft");
    std::fs::write(&file, script).map_err(io("writing quiet.nft"))?;
    lab.server.run("nft", ["-f".as_ref(), file.as_os_str()])?;
    Ok(owned(&["nft", "delete", "table", "inet", QUIET_TABLE]))
}

/// fwknopd's one access stanza: any source, the packet must name its own
/// address, Rijndael + HMAC keys, doors open `door_secs`.
pub(crate) fn access_stanza(keys: &FwknopKeys, door_secs: u32) -> String {
    format!(
        "SOURCE ANY\nREQUIRE_SOURCE_ADDRESS Y\nKEY_BASE64 {}\nHMAC_KEY_BASE64 {}\nFW_ACCESS_TIMEOUT {door_secs}\n",
        keys.rijndael_b64, keys.hmac_b64
    )
}

/// Starts fwknopd with access for `door_secs` seconds per knock.
pub fn start(lab: &Lab, keys: &FwknopKeys, door_secs: u32) -> Result<Running> {
    let dir = lab.path("fwknopd");
    let run_dir = dir.join("run");
    std::fs::create_dir_all(&run_dir).map_err(io("creating fwknopd's run dir"))?;
    let conf = dir.join("fwknopd.conf");
    let access = dir.join("access.conf");
    let digest = dir.join("digest.cache");
    let _ = std::fs::remove_file(&digest);
    write_private(&conf, &format!("PCAP_INTF {SERVER_IF}\n"))?;
    write_private(&access, &access_stanza(keys, door_secs))?;
    let port = SERVICE_PORT.to_string();
    let drop_rule = ["-p", "tcp", "--dport", port.as_str(), "-j", "DROP"];
    let mut cleanup = vec![quiet_udp(lab, &[FWKNOP_PORT])?];
    lab.server
        .run("iptables", ["-A", "INPUT"].iter().chain(drop_rule.iter()))?;
    cleanup.push(
        ["iptables", "-D", "INPUT"]
            .iter()
            .chain(drop_rule.iter())
            .map(|s| (*s).to_owned())
            .collect(),
    );
    let mut cmd = lab.server.command("fwknopd");
    cmd.arg("-f")
        .arg("-c")
        .arg(&conf)
        .arg("-a")
        .arg(&access)
        .arg("-d")
        .arg(&digest)
        .arg("-p")
        .arg(dir.join("fwknopd.pid"))
        .arg("-r")
        .arg(&run_dir)
        .args(["-i", SERVER_IF]);
    start_logged(
        Kind::Fwknopd,
        &lab.server,
        cmd,
        &dir.join("fwknopd.log"),
        "Starting fwknopd main event loop",
        cleanup,
    )
}
