//! Reading fwknopd's access.conf: what each directive becomes, which
//! stanzas are refused and with which line and reason, and that an imported
//! stanza's keys decode the real client's packets.

mod common;

use std::net::IpAddr;

use common::{fixture, HMAC, KEY};
use spa_fwknop::access_conf::{parse, NoteKind, SourceNet, Sources};
use spa_fwknop::{decode, AccessPort, HmacDigest};
use spa_proto::knock::Transport;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

fn tcp(port: u16) -> AccessPort {
    AccessPort {
        transport: Transport::Tcp,
        port,
    }
}

fn udp(port: u16) -> AccessPort {
    AccessPort {
        transport: Transport::Udp,
        port,
    }
}

#[test]
fn a_full_stanza_carries_every_directive() {
    let text = format!(
        "# site access\n\
         SOURCE              10.0.0.0/8, 192.168.1.7\n\
         OPEN_PORTS          tcp/22, udp/53, tcp/443\n\
         RESTRICT_PORTS      tcp/443\n\
         KEY_BASE64          {KEY}\n\
         HMAC_KEY_BASE64     {HMAC}\n\
         HMAC_DIGEST_TYPE    sha256\n\
         FW_ACCESS_TIMEOUT   60\n\
         MAX_FW_TIMEOUT      600\n\
         REQUIRE_SOURCE_ADDRESS Y\n\
         REQUIRE_USERNAME    alice\n\
         ACCESS_EXPIRE       12/31/2027\n"
    );
    let conf = parse(&text);
    assert_eq!(conf.stanzas.len(), 1, "{:?}", conf.notes);
    let stanza = &conf.stanzas[0];
    assert_eq!(stanza.line, 2);
    assert_eq!(
        stanza.sources,
        Sources::Nets(vec![
            SourceNet {
                addr: ip("10.0.0.0"),
                prefix: 8
            },
            SourceNet {
                addr: ip("192.168.1.7"),
                prefix: 32
            }
        ])
    );
    assert!(stanza.sources.allows(ip("10.200.3.4")));
    assert!(stanza.sources.allows(ip("192.168.1.7")));
    assert!(!stanza.sources.allows(ip("192.168.1.8")));
    assert!(!stanza.sources.allows(ip("::1")));
    assert_eq!(stanza.open_ports, vec![tcp(22), udp(53)]);
    assert_eq!(stanza.access_timeout_secs, 60);
    assert_eq!(stanza.max_timeout_secs, 600);
    assert!(stanza.require_source_address);
    assert_eq!(stanza.require_username.as_deref(), Some("alice"));
    // 2027-12-31T00:00:00Z
    assert_eq!(stanza.expires_at, Some(1_830_211_200));
    assert_eq!(stanza.keys.hmac_digest(), HmacDigest::Sha256);
    let lines: Vec<usize> = conf.notes.iter().map(|n| n.line).collect();
    assert_eq!(lines, vec![12, 4], "{:?}", conf.notes);
    assert!(conf.notes.iter().all(|n| n.kind == NoteKind::Carried));

    // The imported keys read the real client's packet.
    let f = fixture("access");
    let request = decode(f.packet.as_bytes(), &stanza.keys, f.timestamp).expect("decodes");
    assert_eq!(request.access, vec![tcp(22)]);
}

#[test]
fn a_stanza_without_hmac_is_refused_at_its_source_line() {
    let text = format!("SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 {KEY}\n");
    let conf = parse(&text);
    assert!(conf.stanzas.is_empty());
    assert_eq!(conf.notes.len(), 1);
    assert_eq!(conf.notes[0].line, 1);
    assert_eq!(conf.notes[0].kind, NoteKind::StanzaRefused);
    assert!(conf.notes[0].message.contains("HMAC"), "{:?}", conf.notes);
}

#[test]
fn gpg_nat_command_cycle_and_non_cbc_stanzas_are_refused_with_the_line_why() {
    let good = format!("OPEN_PORTS tcp/22\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\n");
    let cases = [
        ("GPG_DECRYPT_ID 1234ABCD", "GPG"),
        ("FORCE_NAT 192.168.1.2 22", "NAT"),
        ("CMD_CYCLE_OPEN iptables -A INPUT", "commands"),
        ("ENCRYPTION_MODE legacy", "CBC"),
        ("DESTINATION 10.0.0.1", "local address"),
        ("HMAC_DIGEST_TYPE MD5", "not supported"),
        ("FW_ACCESS_TIMEOUT soon", "FW_ACCESS_TIMEOUT"),
    ];
    for (directive, why) in cases {
        let text = format!("SOURCE ANY\n{good}{directive}\n");
        let conf = parse(&text);
        assert!(conf.stanzas.is_empty(), "{directive} carried");
        let note = conf
            .notes
            .iter()
            .find(|n| n.kind == NoteKind::StanzaRefused)
            .expect("a refusal");
        assert_eq!(note.line, 1);
        assert!(
            note.message.contains("(line 5)"),
            "{directive}: {}",
            note.message
        );
        assert!(note.message.contains(why), "{directive}: {}", note.message);
    }
}

#[test]
fn fwknops_shipped_placeholder_stanza_is_refused() {
    let conf = parse("SOURCE              ANY\nKEY_BASE64          __CHANGEME__\nHMAC_KEY_BASE64     __CHANGEME__\n");
    assert!(conf.stanzas.is_empty());
    assert!(
        conf.notes[0].message.contains("__CHANGEME__"),
        "{:?}",
        conf.notes
    );
}

#[test]
fn a_stanza_without_open_ports_is_refused() {
    let conf = parse(&format!(
        "SOURCE ANY\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\n"
    ));
    assert!(conf.stanzas.is_empty());
    assert!(
        conf.notes[0].message.contains("OPEN_PORTS"),
        "{:?}",
        conf.notes
    );
}

#[test]
fn command_execution_and_includes_are_noted_and_the_access_still_carries() {
    let text = format!(
        "%include /etc/fwknop/more.conf\n\
         SOURCE ANY\n\
         OPEN_PORTS tcp/22\n\
         KEY_BASE64 {KEY}\n\
         HMAC_KEY_BASE64 {HMAC}\n\
         ENABLE_CMD_EXEC Y\n\
         CMD_EXEC_USER nobody\n\
         FROBNICATE yes\n"
    );
    let conf = parse(&text);
    assert_eq!(conf.stanzas.len(), 1);
    let noted: Vec<(usize, NoteKind)> = conf.notes.iter().map(|n| (n.line, n.kind)).collect();
    assert_eq!(
        noted,
        vec![
            (1, NoteKind::NotCarried),
            (6, NoteKind::NotCarried),
            (7, NoteKind::NotCarried),
            (8, NoteKind::NotCarried)
        ]
    );
    assert!(conf.notes[3]
        .message
        .contains("unknown directive FROBNICATE"));
}

#[test]
fn stanzas_are_independent_and_values_end_at_a_semicolon() {
    let text = format!(
        "SOURCE 10.1.0.0/255.255.0.0\nOPEN_PORTS tcp/22 ; a comment\nKEY_BASE64: {KEY}\nHMAC_KEY_BASE64 {HMAC}\n\
         SOURCE ANY\nOPEN_PORTS tcp/80\nKEY_BASE64 {KEY}\n\
         SOURCE 2001:db8::/32\nOPEN_PORTS udp/1194\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\n"
    );
    let conf = parse(&text);
    let lines: Vec<usize> = conf.stanzas.iter().map(|s| s.line).collect();
    assert_eq!(lines, vec![1, 8]);
    assert_eq!(conf.stanzas[0].open_ports, vec![tcp(22)]);
    // fwknopd's defaults when a stanza sets no timeouts.
    assert_eq!(conf.stanzas[0].access_timeout_secs, 30);
    assert_eq!(conf.stanzas[0].max_timeout_secs, 300);
    assert!(conf.stanzas[0].sources.allows(ip("10.1.255.1")));
    assert!(!conf.stanzas[0].sources.allows(ip("10.2.0.1")));
    assert!(conf.stanzas[1].sources.allows(ip("2001:db8::5")));
    assert_eq!(conf.notes.len(), 1);
    assert_eq!(conf.notes[0].line, 5);
}
