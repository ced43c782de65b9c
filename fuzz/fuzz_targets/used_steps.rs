//! The used rotating-steps log (`knock-used.log`, read by `UsedStepLog::open`,
//! whose line parser is private to spad/src/knocks.rs): any file content opens,
//! keeps only well-formed recent entries, and the file it rewrites opens again to
//! the same entries. A file that is not UTF-8 is refused with an error naming it.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use spa_fuzz::gateway::BASE_NOW_MS;
use spa_proto::knock::step_of;
use spad::knocks::UsedStepLog;

fn state_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // tmpfs when there is one: the log is fsynced on every open.
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("spa-fz-used-steps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = state_dir();
    let file = dir.join("knock-used.log");
    std::fs::write(&file, data).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let now = BASE_NOW_MS;
    let (log, used) = match UsedStepLog::open(dir, now) {
        Ok(opened) => opened,
        // Not text at all (a corrupt disk, not a torn append): refused, naming the file.
        Err(e) if std::str::from_utf8(data).is_err() => {
            assert!(e.to_string().contains("knock-used.log"), "{e}");
            return;
        }
        Err(e) => panic!("open: {e}"),
    };
    drop(log);
    let oldest = step_of(now).saturating_sub(2);
    assert!(
        used.iter().all(|(_, _, step)| *step >= oldest),
        "an expired step was kept"
    );
    let (_, again) = UsedStepLog::open(dir, now).unwrap_or_else(|e| panic!("reopen: {e}"));
    assert_eq!(again, used, "the rewritten log reads differently");
});
