//! The whole decision for real fwknop client packets against imported
//! access.conf stanzas: which stanza decides, the address, ports, user,
//! expiry and open time, and every denial.

mod common;

use std::net::IpAddr;

use common::{fixture, HMAC, KEY, OTHER_KEY};
use spa_fwknop::access_conf::{parse, Stanza};
use spa_fwknop::{admit, AccessPort, Denial, Refusal, DEFAULT_MAX_AGE_SECS};
use spa_proto::knock::Transport;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

/// Stanzas from access.conf text; `{KEY}`/`{HMAC}` are the fixtures' keys.
fn stanzas(text: &str) -> Vec<Stanza> {
    let text = text.replace("{KEY}", KEY).replace("{HMAC}", HMAC);
    let conf = parse(&text);
    assert!(
        conf.notes.iter().all(|n| !n.message.contains("refused")),
        "{:?}",
        conf.notes
    );
    conf.stanzas
}

fn decide(name: &str, conf: &str, source: &str) -> Result<spa_fwknop::FwknopGrant, Denial> {
    let f = fixture(name);
    admit(
        f.packet.as_bytes(),
        &stanzas(conf),
        ip(source),
        f.timestamp,
        DEFAULT_MAX_AGE_SECS,
    )
}

const SSH: &str = "SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\n";

#[test]
fn grants_the_asked_port_to_the_named_source_for_the_stanza_time() {
    let grant = decide("access", SSH, "10.1.2.3").expect("granted");
    assert_eq!(grant.stanza_line, 1);
    assert_eq!(grant.addr, ip("10.1.2.3"));
    assert_eq!(
        grant.ports,
        vec![AccessPort {
            transport: Transport::Tcp,
            port: 22
        }]
    );
    assert_eq!(grant.open_secs, 30);
    assert_eq!(grant.username, "root");
    assert_eq!(
        grant.replay_key,
        spa_fwknop::replay_key(fixture("access").packet.as_bytes())
    );
}

#[test]
fn refuses_a_packet_naming_another_address_than_its_source() {
    assert_eq!(
        decide("access", SSH, "10.9.9.9"),
        Err(Denial::AddressNotSource {
            named: ip("10.1.2.3"),
            sender: ip("10.9.9.9")
        })
    );
}

#[test]
fn an_unnamed_address_means_the_source_unless_the_stanza_requires_one() {
    let grant = decide("unnamed", SSH, "10.7.7.7").expect("granted");
    assert_eq!(grant.addr, ip("10.7.7.7"));
    let strict = format!("{SSH}REQUIRE_SOURCE_ADDRESS Y\n");
    assert_eq!(
        decide("unnamed", &strict, "10.7.7.7"),
        Err(Denial::UnnamedAddress)
    );
}

#[test]
fn only_stanzas_whose_source_admits_the_sender_are_tried() {
    let conf =
        "SOURCE 192.168.0.0/16\nOPEN_PORTS tcp/22\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\n";
    assert_eq!(
        decide("access", conf, "10.1.2.3"),
        Err(Denial::NoStanzaForSource(ip("10.1.2.3")))
    );
}

#[test]
fn the_stanza_whose_keys_authenticate_decides() {
    // A first stanza with other keys does not stop the packet reaching its own.
    let conf = format!(
        "SOURCE ANY\nOPEN_PORTS tcp/80\nKEY_BASE64 {OTHER_KEY}\nHMAC_KEY_BASE64 c2Vjb25kIHN0YW56YSBobWFjIGtleQ\n\
         SOURCE 10.0.0.0/8\nOPEN_PORTS tcp/22\nKEY_BASE64 {{KEY}}\nHMAC_KEY_BASE64 {{HMAC}}\n"
    );
    let grant = decide("access", &conf, "10.1.2.3").expect("second stanza grants");
    assert_eq!(grant.stanza_line, 5);

    let f = fixture("other_hmac");
    assert_eq!(
        admit(
            f.packet.as_bytes(),
            &stanzas(&conf),
            ip("10.1.2.3"),
            f.timestamp,
            DEFAULT_MAX_AGE_SECS
        ),
        Err(Denial::NotAuthentic(Refusal::HmacMismatch))
    );
}

#[test]
fn every_asked_port_must_be_in_open_ports() {
    assert_eq!(
        decide("two_ports", SSH, "10.1.2.3"),
        Err(Denial::PortNotAllowed(AccessPort {
            transport: Transport::Udp,
            port: 53
        }))
    );
}

#[test]
fn client_timeouts_are_capped_by_max_fw_timeout_and_users_checked() {
    let conf = "SOURCE ANY\nOPEN_PORTS tcp/22, udp/53\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\nMAX_FW_TIMEOUT 40\n";
    let grant = decide("two_ports", conf, "10.1.2.3").expect("granted");
    assert_eq!(grant.open_secs, 40, "client asked 45");
    let roomy = conf.replace("MAX_FW_TIMEOUT 40", "MAX_FW_TIMEOUT 400");
    assert_eq!(
        decide("two_ports", &roomy, "10.1.2.3").map(|g| g.open_secs),
        Ok(45)
    );
    let bob_only = format!("{roomy}REQUIRE_USERNAME bob\n");
    assert_eq!(
        decide("two_ports", &bob_only, "10.1.2.3"),
        Err(Denial::WrongUser("alice".to_owned()))
    );
}

#[test]
fn nat_commands_and_expired_stanzas_open_nothing() {
    assert_eq!(decide("nat", SSH, "10.1.2.3"), Err(Denial::NatNotSupported));
    assert_eq!(
        decide("command", SSH, "10.1.2.3"),
        Err(Denial::Refused {
            stanza_line: 1,
            reason: Refusal::CommandMessage
        })
    );
    let f = fixture("access");
    let expired = format!("{SSH}ACCESS_EXPIRE_EPOCH {}\n", f.timestamp);
    assert_eq!(
        decide("access", &expired, "10.1.2.3"),
        Err(Denial::Expired(1))
    );
}

#[test]
fn an_old_packet_is_refused_by_the_stanza_it_authenticates_for() {
    let f = fixture("access");
    assert!(matches!(
        admit(
            f.packet.as_bytes(),
            &stanzas(SSH),
            ip("10.1.2.3"),
            f.timestamp + 121,
            DEFAULT_MAX_AGE_SECS
        ),
        Err(Denial::Refused {
            stanza_line: 1,
            reason: Refusal::TooOld { .. }
        })
    ));
}
