//! fwknopd's access.conf (`spa_fwknop::access_conf::parse`): any text gives
//! stanzas and located notes, never a panic; each stanza is one spa can run
//! (a SOURCE line, OPEN_PORTS left, timeouts within fwknopd's bound); and the
//! fixtures' client packet judged against the fuzzed stanzas from a few
//! senders keeps the grant invariants of `spa_fuzz::fwknop_gate::judge`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spa_fuzz::fwknop_gate::{client_keys, judge, source, NOW_SECS};
use spa_fwknop::access_conf::{parse, MAX_FW_TIMEOUT_SECS};
use spa_fwknop::seal::{message, seal};
use std::sync::OnceLock;

/// A client packet for user root opening tcp/22 for 192.0.2.7, sealed with
/// the fixtures' keys (which the seeds' stanzas carry).
fn packet() -> &'static str {
    static PACKET: OnceLock<String> = OnceLock::new();
    PACKET.get_or_init(|| {
        let fields = format!("1234567890123456:cm9vdA:{NOW_SECS}:3.0.0:1:MTkyLjAuMi43LHRjcC8yMg");
        seal(
            message(&fields).as_bytes(),
            &client_keys().0,
            &client_keys().1,
            [9; 8],
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let conf = parse(text);
    let lines: Vec<&str> = text.lines().collect();
    for note in &conf.notes {
        assert!(note.line >= 1 && note.line <= lines.len(), "{note:?}");
        assert!(!note.message.is_empty());
    }
    let mut previous = 0;
    for stanza in &conf.stanzas {
        assert!(stanza.line > previous, "stanzas out of order");
        previous = stanza.line;
        let source_line = lines[stanza.line - 1].trim_start();
        assert!(
            source_line.starts_with("SOURCE"),
            "stanza at {source_line:?}"
        );
        assert!(!stanza.open_ports.is_empty(), "a stanza that opens nothing");
        assert!((1..=MAX_FW_TIMEOUT_SECS).contains(&stanza.max_timeout_secs));
        assert!((1..=MAX_FW_TIMEOUT_SECS).contains(&stanza.access_timeout_secs));
    }
    for sender in [0, 1, 3] {
        let _ = judge(
            packet().as_bytes(),
            &conf.stanzas,
            None,
            source(sender),
            NOW_SECS,
        );
    }
});
