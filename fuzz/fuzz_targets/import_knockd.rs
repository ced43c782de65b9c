//! `spad import-knockd`: any knockd.conf text is either refused with a located
//! message, or turned into a spad config that spad itself accepts
//! (`Config::parse`, what `spad --check` runs).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use spad::config::Config;
use spad::import_knockd::import;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match import(Path::new("/etc/knockd.conf"), text) {
        Ok(imported) => {
            if let Err(e) = Config::parse(Path::new("/etc/spad.toml"), &imported.toml) {
                // A one-time sequence file the config names but this machine lacks:
                // spad --check says so, as it should; not an import bug.
                if e.message.contains("cannot read") {
                    return;
                }
                panic!("import-knockd wrote a config spad refuses: {e}\n--- input\n{text}\n--- output\n{}", imported.toml);
            }
            for w in &imported.warnings {
                assert!(w.starts_with("/etc/knockd.conf"), "{w}");
            }
        }
        Err(e) => {
            assert!(
                e.line >= 1 && e.line <= text.lines().count().max(1) + 1,
                "{e}"
            );
            assert!(!e.problem.to_string().is_empty());
        }
    }
});
