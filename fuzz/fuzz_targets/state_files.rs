//! spad's own state and the one-time sequence file: the journal's records
//! (`journal::decode_file`, rebuilt into the replay cache and the open doors) and
//! knockd's one-time sequence file (`knock::parse_one_time_file`, and marking a
//! sequence used with `comment_out_one_time`). Each reads back what it writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spa_proto::gateway::JournalState;
use spa_proto::journal::{decode_file, encode_file};
use spa_proto::knock::{comment_out_one_time, parse_one_time_file};
use spa_proto::replay::{ReplayCache, Restored};

const CAP: usize = 4;
const SKEW_MS: u64 = 30_000;
const NOW_MS: u64 = 1_764_000_000_000;

fuzz_target!(|data: &[u8]| {
    // The journal's records: whatever the bytes, what is read is a whole,
    // self-checking prefix that re-encodes to exactly those bytes, and the
    // state built from it never trusts a clock beyond now + skew.
    if let Ok(decoded) = decode_file(data) {
        assert!(decoded.good_len <= data.len());
        assert_eq!(encode_file(&decoded.records), &data[..decoded.good_len]);
        let (cache, how) = ReplayCache::from_records(&decoded.records, CAP, SKEW_MS, NOW_MS);
        if how == Restored::Readable {
            assert!(cache.high_water_ms() <= NOW_MS + SKEW_MS);
        } else {
            assert_eq!(cache.refuse_until_ms(), NOW_MS + SKEW_MS, "history unknown");
        }
        let state = JournalState::from_records(&decoded.records);
        assert!(state.open.len() <= decoded.records.len());
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // One-time sequences.
    if let Ok(list) = parse_one_time_file(text) {
        if let Some(first) = list.first() {
            let edited = comment_out_one_time(text, first)
                .unwrap_or_else(|| panic!("a parsed sequence cannot be marked used"));
            let rest = parse_one_time_file(&edited)
                .unwrap_or_else(|e| panic!("marking a sequence used broke the file: {e}"));
            assert_eq!(
                &rest[..],
                &list[1..],
                "marking used removed another sequence"
            );
        }
    }
});
