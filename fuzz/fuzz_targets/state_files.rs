//! spad's own state files and the one-time sequence file: the replay log
//! (`ReplayCache::from_log`), the open-doors state (`OpenDoors::parse_state`) and
//! knockd's one-time sequence file (`knock::parse_one_time_file`, and marking a
//! sequence used with `comment_out_one_time`). Each reads back what it writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spa_proto::knock::{comment_out_one_time, parse_one_time_file};
use spa_proto::replay::ReplayCache;
use spa_proto::OpenDoors;

const CAP: usize = 4;
const SKEW_MS: u64 = 30_000;

fuzz_target!(|data: &[u8]| {
    // Replay log: binary.
    if let Ok(cache) = ReplayCache::from_log(data, CAP, SKEW_MS) {
        let now = cache.high_water_ms();
        let log = cache.to_log(now);
        let again = ReplayCache::from_log(&log, CAP, SKEW_MS)
            .unwrap_or_else(|e| panic!("written replay log does not read back: {e}"));
        assert_eq!(again.high_water_ms(), now);
        assert_eq!(again.refuse_until_ms(), cache.refuse_until_ms());
        assert_eq!(again.live_len(now), cache.live_len(now));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Open doors state.
    match OpenDoors::parse_state(text) {
        Ok(doors) => {
            let mut table = OpenDoors::new();
            let overdue = table.restore(doors.clone(), 0);
            assert!(overdue.iter().all(|d| d.until_ms == 0));
            let again = OpenDoors::parse_state(&table.to_state())
                .unwrap_or_else(|e| panic!("written doors state does not read back: {e}"));
            assert_eq!(again.len(), table.len());
            assert!(table.len() <= doors.len());
        }
        Err(e) => assert!(e.line >= 1 && e.line <= text.lines().count(), "{e}"),
    }
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
