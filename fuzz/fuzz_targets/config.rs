//! spad's config file (`Config::parse`): any text is either a config whose derived
//! views (door policies, knock ports, door specs, capture filter) can be built, or
//! an error that names the file and, when it has one, a line and column inside it.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use spad::capture::filter::{compile_filter, FilterSpec};
use spad::config::Config;

fuzz_target!(|data: &[u8]| {
    // spad reads the file with read_to_string: non-UTF-8 is refused before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/spad/spad.toml");
    match Config::parse(path, text) {
        Ok(config) => {
            assert!((1_000..=300_000).contains(&config.skew_ms));
            assert!(config.port != 0 && config.replay_cap != 0);
            let _ = config.policies();
            let _ = config.door_specs();
            let (tcp, udp) = config.knock_ports();
            let _ = compile_filter(&FilterSpec {
                spa_udp_port: Some(config.port),
                knock_tcp_ports: tcp,
                knock_udp_ports: udp,
                knock_tcp_any_flags: true,
            });
            for door in &config.doors {
                assert!(config.door(&door.name).is_some());
            }
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(shown.starts_with("/etc/spad/spad.toml"), "{shown}");
            if let Some((line, col)) = e.place {
                assert!(line >= 1 && col >= 1, "{shown}");
                assert!(
                    line <= text.lines().count().max(1) + 1,
                    "line {line} past the end: {shown}"
                );
            }
        }
    }
});
