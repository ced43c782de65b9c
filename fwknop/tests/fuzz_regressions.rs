//! Inputs the fuzz targets (fuzz/, docs/fuzzing.md) found, kept as tests.

mod common;

use common::{HMAC, KEY};
use spa_fwknop::access_conf::{parse, NoteKind};

/// `fwknop_access_conf`: an ACCESS_EXPIRE year too large for Unix seconds
/// overflowed the date arithmetic (a panic with overflow checks, a wrapped
/// expiry without). It is now no date: the stanza is refused, naming it.
#[test]
fn an_access_expire_year_beyond_unix_seconds_refuses_the_stanza() {
    for year in ["4061796129000", "292277026596", "9223372036854775807"] {
        let text = format!(
            "SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\nACCESS_EXPIRE 12/31/{year}\n"
        );
        let conf = parse(&text);
        assert!(conf.stanzas.is_empty(), "year {year}: {:?}", conf.stanzas);
        assert!(
            conf.notes.iter().any(|n| n.kind == NoteKind::StanzaRefused
                && n.message
                    .contains(&format!("ACCESS_EXPIRE 12/31/{year} is not MM/DD/YYYY"))),
            "year {year}: {:?}",
            conf.notes
        );
    }
    // A far but representable year still carries.
    let text = format!(
        "SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\nACCESS_EXPIRE 01/01/2100\n"
    );
    let conf = parse(&text);
    assert_eq!(conf.stanzas.len(), 1, "{:?}", conf.notes);
    assert_eq!(conf.stanzas[0].expires_at, Some(4_102_444_800));
}
