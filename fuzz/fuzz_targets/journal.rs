//! spad's journal file (`spad::journal::Journal::open`, the one durable log of
//! replay entries, used steps, one-time marks and open doors): any file content
//! opens; what it returns is exactly the records of the whole, self-checking
//! prefix; the file is cut back to that prefix (so a reopen reads it whole);
//! a file that is not a journal at all is moved aside.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use spa_proto::journal::{decode_file, encode_file};
use spad::journal::{Journal, JournalStart, FILE_NAME};

fn state_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // tmpfs when there is one: the journal is fsynced on every open.
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("spa-fz-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o700);
        std::fs::set_permissions(&dir, mode).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = state_dir();
    let file = dir.join(FILE_NAME);
    let _ = std::fs::remove_file(dir.join("journal.bad"));
    std::fs::write(&file, data).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let (journal, records, start) = Journal::open(dir).unwrap_or_else(|e| panic!("open: {e}"));
    drop(journal);
    let on_disk = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    match decode_file(data) {
        Err(_) => {
            assert!(matches!(start, JournalStart::Unreadable(_)), "{start:?}");
            assert!(records.is_empty());
        }
        Ok(decoded) => {
            assert_eq!(records, decoded.records);
            assert_eq!(
                on_disk,
                &data[..decoded.good_len],
                "not cut back to the whole prefix"
            );
            assert_eq!(
                encode_file(&records),
                on_disk,
                "records do not re-encode to the file"
            );
            let (_j, again, start) = Journal::open(dir).unwrap_or_else(|e| panic!("reopen: {e}"));
            assert_eq!(start, JournalStart::Read);
            assert_eq!(again, records);
        }
    }
});
