//! fwknopd's access.conf, read as server/access.c `parse_access_file()`
//! reads it: `VAR value` lines (the value ends at `;` or the line's end; a
//! `:` after VAR is dropped), `#`/`;`/blank lines skipped, each `SOURCE`
//! line starting a stanza. Every directive is carried into a [`Stanza`] or
//! reported in a [`Note`] with its line and why; a stanza that spa cannot
//! run at least as strictly as fwknopd (GPG, no HMAC, NAT, command cycles,
//! no OPEN_PORTS…) is refused whole. Pure: text in, stanzas and notes out.

use std::fmt;
use std::net::IpAddr;

use spa_proto::knock::Transport;
use zeroize::Zeroizing;

use crate::fields::AccessPort;
use crate::keys::{decode_b64, FwknopKeys, HmacDigest};

/// fwknopd.conf's FW_ACCESS_TIMEOUT default, used when a stanza sets none.
pub const FWKNOPD_DEFAULT_ACCESS_TIMEOUT_SECS: u32 = 30;
/// fwknopd's MAX_FW_TIMEOUT default (fwknopd_common.h `DEF_MAX_FW_TIMEOUT`).
pub const FWKNOPD_DEFAULT_MAX_TIMEOUT_SECS: u32 = 300;
/// fwknopd's bound on FW_ACCESS_TIMEOUT and MAX_FW_TIMEOUT (`RCHK_MAX_FW_TIMEOUT`).
pub const MAX_FW_TIMEOUT_SECS: u32 = 2 << 22;
/// The placeholder fwknop ships in access.conf instead of a key.
const CHANGEME: &str = "__CHANGEME__";

/// An address or network a stanza accepts packets from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl SourceNet {
    /// True when `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for SourceNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Which sources a stanza accepts (`SOURCE ANY` or a list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sources {
    Any,
    Nets(Vec<SourceNet>),
}

impl Sources {
    /// True when a packet from `ip` may use this stanza.
    pub fn allows(&self, ip: IpAddr) -> bool {
        match self {
            Sources::Any => true,
            Sources::Nets(nets) => nets.iter().any(|n| n.contains(ip)),
        }
    }
}

/// One access stanza spa can run, with everything it carried.
#[derive(Debug, Clone)]
pub struct Stanza {
    /// Line of its `SOURCE`.
    pub line: usize,
    pub sources: Sources,
    /// OPEN_PORTS minus RESTRICT_PORTS: the only ports a packet may open.
    pub open_ports: Vec<AccessPort>,
    pub keys: FwknopKeys,
    /// FW_ACCESS_TIMEOUT, or fwknopd's default when unset.
    pub access_timeout_secs: u32,
    /// MAX_FW_TIMEOUT, or fwknopd's default 300: the cap on any open time,
    /// a client's `-f` timeout included.
    pub max_timeout_secs: u32,
    /// REQUIRE_SOURCE_ADDRESS: a packet naming 0.0.0.0 is refused.
    pub require_source_address: bool,
    /// REQUIRE_USERNAME: the packet's user must be this.
    pub require_username: Option<String>,
    /// ACCESS_EXPIRE / ACCESS_EXPIRE_EPOCH, Unix seconds.
    pub expires_at: Option<u64>,
}

/// What happened to a line that did not simply carry over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub line: usize,
    pub kind: NoteKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// The whole stanza (starting at the note's line) is refused.
    StanzaRefused,
    /// This directive is not carried; the stanza still is.
    NotCarried,
    /// Carried, with a difference the user should know.
    Carried,
}

/// The result of reading an access.conf.
#[derive(Debug, Clone)]
pub struct AccessConf {
    pub stanzas: Vec<Stanza>,
    /// In file order; render each as `FILE:LINE: message`.
    pub notes: Vec<Note>,
}

/// Reads an access.conf's text.
pub fn parse(text: &str) -> AccessConf {
    let mut reader = Reader::default();
    for (index, raw) in text.lines().enumerate() {
        reader.line(index + 1, raw);
    }
    reader.finish_stanza();
    AccessConf {
        stanzas: reader.stanzas,
        notes: reader.notes,
    }
}

/// Directives of a stanza as read, before they are checked together.
#[derive(Default)]
struct Draft {
    line: usize,
    source: String,
    open_ports: Option<(usize, String)>,
    restrict_ports: Option<(usize, String)>,
    key: Option<(usize, Zeroizing<Vec<u8>>)>,
    hmac_key: Option<(usize, Zeroizing<Vec<u8>>)>,
    hmac_digest: Option<(usize, String)>,
    access_timeout: Option<(usize, String)>,
    max_timeout: Option<(usize, String)>,
    require_source_address: bool,
    require_username: Option<String>,
    expires_at: Option<u64>,
    /// The first reason the whole stanza is refused.
    refused: Option<(usize, String)>,
}

#[derive(Default)]
struct Reader {
    current: Option<Draft>,
    stanzas: Vec<Stanza>,
    notes: Vec<Note>,
}

impl Reader {
    fn note(&mut self, line: usize, kind: NoteKind, message: impl Into<String>) {
        self.notes.push(Note {
            line,
            kind,
            message: message.into(),
        });
    }

    fn refuse(&mut self, line: usize, why: impl Into<String>) {
        if let Some(draft) = self.current.as_mut() {
            if draft.refused.is_none() {
                draft.refused = Some((line, why.into()));
            }
        }
    }

    fn line(&mut self, n: usize, raw: &str) {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            return;
        }
        let (var, rest) = trimmed
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((trimmed, ""));
        let var = var.strip_suffix(':').unwrap_or(var);
        let value = rest.trim_start().split(';').next().unwrap_or("").trim_end();
        if value.is_empty() {
            self.note(
                n,
                NoteKind::StanzaRefused,
                format!("{var} has no value (fwknopd refuses the whole file)"),
            );
            self.refuse(n, format!("{var} without a value"));
            return;
        }
        if var == "SOURCE" {
            self.finish_stanza();
            self.current = Some(Draft {
                line: n,
                source: value.to_owned(),
                ..Draft::default()
            });
            return;
        }
        if var.starts_with("%include") {
            self.note(
                n,
                NoteKind::NotCarried,
                format!("{var} {value} not followed: import the included file on its own"),
            );
            return;
        }
        if self.current.is_none() {
            self.note(
                n,
                NoteKind::NotCarried,
                format!("{var} before any SOURCE line (fwknopd refuses the file)"),
            );
            return;
        }
        self.directive(n, var, value);
    }

    fn directive(&mut self, n: usize, var: &str, value: &str) {
        let Some(draft) = self.current.as_mut() else {
            return;
        };
        let yes = value
            .as_bytes()
            .first()
            .is_some_and(|b| b.eq_ignore_ascii_case(&b'y'));
        match var {
            "OPEN_PORTS" => draft.open_ports = Some((n, value.to_owned())),
            "RESTRICT_PORTS" => draft.restrict_ports = Some((n, value.to_owned())),
            "KEY" | "KEY_BASE64" | "HMAC_KEY" | "HMAC_KEY_BASE64" => {
                if value.eq_ignore_ascii_case(CHANGEME) {
                    self.refuse(n, format!("{var} is still {CHANGEME}"));
                    return;
                }
                let bytes = if var.ends_with("_BASE64") {
                    match decode_b64(value, "key") {
                        Ok(bytes) => bytes,
                        Err(_) => {
                            self.refuse(n, format!("{var} is not base64"));
                            return;
                        }
                    }
                } else {
                    Zeroizing::new(value.as_bytes().to_vec())
                };
                if var.starts_with("HMAC") {
                    draft.hmac_key = Some((n, bytes));
                } else {
                    draft.key = Some((n, bytes));
                }
            }
            "HMAC_DIGEST_TYPE" => draft.hmac_digest = Some((n, value.to_owned())),
            "FW_ACCESS_TIMEOUT" => draft.access_timeout = Some((n, value.to_owned())),
            "MAX_FW_TIMEOUT" => draft.max_timeout = Some((n, value.to_owned())),
            "REQUIRE_SOURCE_ADDRESS" | "REQUIRE_SOURCE" => draft.require_source_address = yes,
            "REQUIRE_USERNAME" => draft.require_username = Some(value.to_owned()),
            "ACCESS_EXPIRE" => match parse_us_date(value) {
                Some(epoch) => {
                    draft.expires_at = Some(epoch);
                    self.note(
                        n,
                        NoteKind::Carried,
                        format!("ACCESS_EXPIRE {value} carried as midnight UTC (fwknopd used local time)"),
                    );
                }
                None => self.refuse(n, format!("ACCESS_EXPIRE {value} is not MM/DD/YYYY")),
            },
            "ACCESS_EXPIRE_EPOCH" => match value.parse::<u64>() {
                Ok(epoch) => draft.expires_at = Some(epoch),
                Err(_) => self.refuse(n, format!("ACCESS_EXPIRE_EPOCH {value} is not a number")),
            },
            "ENCRYPTION_MODE" => {
                if !value.eq_ignore_ascii_case("CBC") {
                    self.refuse(
                        n,
                        format!("ENCRYPTION_MODE {value}: spa decodes fwknop's default CBC mode only"),
                    );
                }
            }
            "DESTINATION" => {
                if !value.eq_ignore_ascii_case("ANY") {
                    self.refuse(
                        n,
                        format!("DESTINATION {value}: spa cannot limit which local address a packet is sent to"),
                    );
                }
            }
            // FORCE_NAT takes `IP PORT` and FORCE_SNAT an address; the rest are Y/N.
            "FORCE_NAT" | "FORCE_SNAT" | "FORCE_MASQUERADE" | "FORWARD_ALL" | "DISABLE_DNAT" => {
                if yes || var == "FORCE_NAT" || var == "FORCE_SNAT" {
                    self.refuse(n, format!("{var}: spa does not do NAT or forwarding"));
                } else {
                    self.note(n, NoteKind::NotCarried, format!("{var} {value} not needed (spa does no NAT)"));
                }
            }
            "CMD_CYCLE_OPEN" | "CMD_CYCLE_CLOSE" | "CMD_CYCLE_TIMER" => self.refuse(
                n,
                format!("{var}: a stanza that runs its own commands instead of firewall rules does not carry"),
            ),
            "ENABLE_CMD_EXEC" | "ENABLE_CMD_SUDO_EXEC" => {
                let message = if yes {
                    format!("{var}: command messages are always refused by spa; the stanza's access carries")
                } else {
                    format!("{var} {value}: spa never runs commands")
                };
                self.note(n, NoteKind::NotCarried, message);
            }
            "CMD_EXEC_USER" | "CMD_EXEC_GROUP" | "CMD_SUDO_EXEC_USER" | "CMD_SUDO_EXEC_GROUP" => {
                self.note(n, NoteKind::NotCarried, format!("{var}: spa never runs commands"));
            }
            gpg if gpg.starts_with("GPG_") => {
                self.refuse(n, format!("{var}: GPG stanzas are not supported (use KEY_BASE64 + HMAC_KEY_BASE64)"));
            }
            _ => self.note(n, NoteKind::NotCarried, format!("unknown directive {var} ignored")),
        }
    }

    /// Checks the stanza being read as a whole and keeps or refuses it.
    fn finish_stanza(&mut self) {
        let Some(draft) = self.current.take() else {
            return;
        };
        let line = draft.line;
        match build(draft) {
            Ok((stanza, notes)) => {
                self.stanzas.push(stanza);
                for (n, message) in notes {
                    self.note(n, NoteKind::Carried, message);
                }
            }
            Err((n, why)) => {
                let message = if n == line {
                    format!("stanza refused: {why}")
                } else {
                    format!("stanza refused (line {n}): {why}")
                };
                self.note(line, NoteKind::StanzaRefused, message);
            }
        }
    }
}

type Refused = (usize, String);

fn build(draft: Draft) -> Result<(Stanza, Vec<(usize, String)>), Refused> {
    let line = draft.line;
    if let Some(refused) = draft.refused {
        return Err(refused);
    }
    let mut notes = Vec::new();
    let sources = parse_sources(&draft.source).map_err(|why| (line, why))?;

    let (ports_line, ports_text) = draft.open_ports.ok_or((
        line,
        "no OPEN_PORTS: fwknopd would open any port a client asks for; spa needs the list"
            .to_owned(),
    ))?;
    let mut open_ports = parse_ports(&ports_text).map_err(|why| (ports_line, why))?;
    if let Some((restrict_line, restrict_text)) = draft.restrict_ports {
        let restricted = parse_ports(&restrict_text).map_err(|why| (restrict_line, why))?;
        open_ports.retain(|p| !restricted.contains(p));
        notes.push((
            restrict_line,
            "RESTRICT_PORTS removed from OPEN_PORTS".to_owned(),
        ));
        if open_ports.is_empty() {
            return Err((
                restrict_line,
                "RESTRICT_PORTS leaves no port open".to_owned(),
            ));
        }
    }

    let (_, key) = draft.key.ok_or((
        line,
        "no KEY or KEY_BASE64 (GPG-only stanzas are not supported)".to_owned(),
    ))?;
    let (_, hmac) = draft.hmac_key.ok_or((
        line,
        "no HMAC_KEY_BASE64: spa requires HMAC (clients send it with --use-hmac; fwknop --key-gen makes a key)"
            .to_owned(),
    ))?;
    let digest = match draft.hmac_digest {
        None => HmacDigest::Sha256,
        Some((n, name)) => HmacDigest::from_fwknop_name(&name).map_err(|e| (n, e.to_string()))?,
    };
    let keys = FwknopKeys::new(key, hmac, digest).map_err(|e| (line, e.to_string()))?;

    let access_timeout_secs = match draft.access_timeout {
        None => FWKNOPD_DEFAULT_ACCESS_TIMEOUT_SECS,
        Some((n, text)) => parse_timeout(&text).ok_or((
            n,
            format!("FW_ACCESS_TIMEOUT {text} is not 1..={MAX_FW_TIMEOUT_SECS} seconds"),
        ))?,
    };
    let max_timeout_secs = match draft.max_timeout {
        None => FWKNOPD_DEFAULT_MAX_TIMEOUT_SECS,
        Some((n, text)) => parse_timeout(&text).ok_or((
            n,
            format!("MAX_FW_TIMEOUT {text} is not 1..={MAX_FW_TIMEOUT_SECS} seconds"),
        ))?,
    };
    Ok((
        Stanza {
            line,
            sources,
            open_ports,
            keys,
            access_timeout_secs,
            max_timeout_secs,
            require_source_address: draft.require_source_address,
            require_username: draft.require_username,
            expires_at: draft.expires_at,
        },
        notes,
    ))
}

fn parse_timeout(text: &str) -> Option<u32> {
    text.parse::<u32>()
        .ok()
        .filter(|t| (1..=MAX_FW_TIMEOUT_SECS).contains(t))
}

/// `ANY`, or addresses and networks separated by commas.
fn parse_sources(text: &str) -> Result<Sources, String> {
    if text.trim().eq_ignore_ascii_case("ANY") {
        return Ok(Sources::Any);
    }
    let mut nets = Vec::new();
    for item in text.split(',').map(str::trim) {
        let (addr, prefix) = match item.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (item, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("SOURCE {item} is not an address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(bits) if bits <= max => bits,
                // fwknopd also takes dotted netmasks: a.b.c.d/255.255.255.0
                _ => netmask_bits(p).ok_or(format!("SOURCE {item} has a bad prefix"))?,
            },
        };
        nets.push(SourceNet { addr, prefix });
    }
    Ok(Sources::Nets(nets))
}

fn netmask_bits(mask: &str) -> Option<u8> {
    let mask: std::net::Ipv4Addr = mask.parse().ok()?;
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// `tcp/22, udp/53` (access.c `expand_acc_port_list`).
fn parse_ports(text: &str) -> Result<Vec<AccessPort>, String> {
    let mut ports = Vec::new();
    for item in text.split(',').map(str::trim) {
        let (proto, port) = item
            .split_once('/')
            .ok_or(format!("{item} is not proto/port"))?;
        let transport: Transport = proto
            .parse()
            .map_err(|_| format!("{item}: spa opens tcp or udp ports only"))?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or(format!("{item}: port must be 1-65535"))?;
        let entry = AccessPort { transport, port };
        if !ports.contains(&entry) {
            ports.push(entry);
        }
    }
    Ok(ports)
}

/// `MM/DD/YYYY` as midnight UTC, in Unix seconds.
fn parse_us_date(text: &str) -> Option<u64> {
    let mut parts = text.split('/');
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    let year: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some()
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || year < 1970
    {
        return None;
    }
    // Days from civil (H. Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    // A year too large for Unix seconds is no date (it overflowed before).
    let days = era.checked_mul(146_097)?.checked_add(doe - 719_468)?;
    u64::try_from(days.checked_mul(86_400)?).ok()
}
