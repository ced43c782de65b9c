//! The decoder against the real fwknop client run now: fresh keys from
//! `fwknop --key-gen`, packets built with `-T -B` and sent over loopback
//! (only 127.0.0.1). Needs Debian's fwknop-client on PATH, hence ignored by
//! default: `apt-get install fwknop-client`, then
//! `cargo test -p spa-fwknop --test real_client -- --ignored`.

use std::net::{IpAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use spa_fwknop::{decode, AccessPort, FwknopKeys, HmacDigest, Refusal};
use spa_proto::knock::Transport;

const NEEDS: &str = "needs fwknop-client (apt-get install fwknop-client)";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// `fwknop --key-gen`: (KEY_BASE64, HMAC_KEY_BASE64).
fn key_gen(digest: &str) -> (String, String) {
    let out = Command::new("fwknop")
        .args(["--no-rc-file", "--key-gen", "--hmac-digest-type", digest])
        .output()
        .expect("run fwknop --key-gen (is fwknop-client installed?)");
    assert!(out.status.success(), "fwknop --key-gen failed");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    (field("KEY_BASE64:"), field("HMAC_KEY_BASE64:"))
}

/// A packet built by the client and saved to a file, not sent. Giving the
/// client an HMAC key turns HMAC on; `None` builds a packet without one.
fn build(key: &str, hmac: Option<&str>, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("packet");
    let status = Command::new("fwknop")
        .args(["--no-rc-file", "-T", "-D", "127.0.0.1", "-B"])
        .arg(&file)
        .arg(format!("--key-base64-rijndael={key}"))
        .args(hmac.map(|h| format!("--key-base64-hmac={h}")))
        .args(extra)
        .output()
        .expect("run fwknop");
    assert!(status.status.success(), "fwknop failed: {status:?}");
    std::fs::read_to_string(&file)
        .expect("saved packet")
        .trim_end()
        .to_owned()
}

#[test]
#[ignore = "needs fwknop-client (apt-get install fwknop-client)"]
fn decodes_what_the_client_sends_over_loopback() {
    let (key, hmac) = key_gen("SHA256");
    let keys = FwknopKeys::from_base64(&key, &hmac, HmacDigest::Sha256).expect("key-gen keys");
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let port = socket.local_addr().expect("addr").port().to_string();
    let out = Command::new("fwknop")
        .args(["--no-rc-file", "-D", "127.0.0.1", "-p", &port, "-P", "udp"])
        .args(["-a", "127.0.0.1", "-A", "tcp/2222", "--use-hmac"])
        .arg(format!("--key-base64-rijndael={key}"))
        .arg(format!("--key-base64-hmac={hmac}"))
        .output()
        .expect(NEEDS);
    assert!(out.status.success(), "fwknop failed: {out:?}");
    let mut buf = [0u8; 2048];
    let (len, from) = socket.recv_from(&mut buf).expect("the client's datagram");
    assert!(from.ip().is_loopback());
    let request = decode(&buf[..len], &keys, now()).expect("decodes");
    assert_eq!(
        request.allow_addr,
        "127.0.0.1".parse::<IpAddr>().expect("ip")
    );
    assert_eq!(
        request.access,
        vec![AccessPort {
            transport: Transport::Tcp,
            port: 2222
        }]
    );
    assert!(now().abs_diff(request.timestamp) <= 5);
}

#[test]
#[ignore = "needs fwknop-client (apt-get install fwknop-client)"]
fn fresh_keys_and_packets_decode_and_every_bit_flip_is_refused() {
    for digest in [HmacDigest::Sha256, HmacDigest::Sha384, HmacDigest::Sha512] {
        let (key, hmac) = key_gen(digest.fwknop_name());
        let keys = FwknopKeys::from_base64(&key, &hmac, digest).expect("key-gen keys");
        let packet = build(
            &key,
            Some(&hmac),
            &[
                "--use-hmac",
                "--hmac-digest-type",
                digest.fwknop_name(),
                "-a",
                "10.20.30.40",
                "-A",
                "udp/1194",
            ],
        );
        let request = decode(packet.as_bytes(), &keys, now()).expect("decodes");
        assert_eq!(
            request.allow_addr,
            "10.20.30.40".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(request.access[0].port, 1194);
        let mut flipped = packet.clone().into_bytes();
        for i in 0..flipped.len() {
            for bit in 0..8 {
                flipped[i] ^= 1 << bit;
                assert!(
                    decode(&flipped, &keys, now()).is_err(),
                    "{digest:?}: flip of bit {bit} of byte {i} accepted"
                );
                flipped[i] ^= 1 << bit;
            }
        }
    }
}

#[test]
#[ignore = "needs fwknop-client (apt-get install fwknop-client)"]
fn wrong_keys_and_no_hmac_are_refused() {
    let (key, hmac) = key_gen("SHA256");
    let (other_key, other_hmac) = key_gen("SHA256");
    let keys = FwknopKeys::from_base64(&key, &hmac, HmacDigest::Sha256).expect("keys");
    let args = ["-a", "10.1.1.1", "-A", "tcp/22"];

    let no_hmac = build(&key, None, &args);
    assert_eq!(
        decode(no_hmac.as_bytes(), &keys, now()),
        Err(Refusal::HmacMismatch)
    );

    let mut with_hmac = vec!["--use-hmac"];
    with_hmac.extend_from_slice(&args);
    let foreign = build(&other_key, Some(&other_hmac), &with_hmac);
    assert_eq!(
        decode(foreign.as_bytes(), &keys, now()),
        Err(Refusal::HmacMismatch)
    );

    // Right HMAC key, wrong encryption key: authentic but undecryptable.
    let mixed = build(&other_key, Some(&hmac), &with_hmac);
    assert_eq!(
        decode(mixed.as_bytes(), &keys, now()),
        Err(Refusal::Undecryptable)
    );
}

#[test]
#[ignore = "needs fwknop-client (apt-get install fwknop-client)"]
fn passphrase_keys_from_access_conf_read_the_clients_packets() {
    // Older setups use KEY/HMAC_KEY passphrases instead of base64 keys.
    let conf = spa_fwknop::access_conf::parse(
        "SOURCE ANY\nOPEN_PORTS tcp/22\nKEY correct horse battery\nHMAC_KEY staple of the hmac\n",
    );
    assert_eq!(conf.stanzas.len(), 1, "{:?}", conf.notes);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("packet");
    let out = Command::new("fwknop")
        .args(["--no-rc-file", "-T", "-D", "127.0.0.1", "-B"])
        .arg(&file)
        .args([
            "--key-rijndael=correct horse battery",
            "--key-hmac=staple of the hmac",
        ])
        .args(["--use-hmac", "-a", "10.3.3.3", "-A", "tcp/22"])
        .output()
        .expect(NEEDS);
    assert!(out.status.success(), "fwknop failed: {out:?}");
    let packet = std::fs::read_to_string(&file).expect("saved packet");
    let grant = spa_fwknop::admit(
        packet.trim_end().as_bytes(),
        &conf.stanzas,
        "10.3.3.3".parse().expect("ip"),
        now(),
        spa_fwknop::DEFAULT_MAX_AGE_SECS,
    )
    .expect("granted");
    assert_eq!(grant.addr, "10.3.3.3".parse::<IpAddr>().expect("ip"));
    assert_eq!(grant.ports[0].port, 22);
}
