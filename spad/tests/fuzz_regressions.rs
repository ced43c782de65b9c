//! Inputs the fuzz targets (fuzz/, docs/fuzzing.md) found breaking an invariant,
//! kept here so the normal suite guards the fix.

use std::path::Path;

use spad::config::Config;
use spad::import_knockd::{import, ImportProblem};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// fuzz target import_knockd: a command with an unclosed quote was imported as is,
/// and spad then refused the config it had written. Now the import is refused,
/// at the quote (knockd's /bin/sh refuses such a command too).
#[test]
fn import_refuses_a_command_whose_quote_is_never_closed() {
    let text = "[web]\n\tsequence = 2222:udp,3333\n\tcommand  = /usr/sbin/nft add element inet filter we'b4 { %IP% }\n";
    let err = import(Path::new("/etc/knockd.conf"), text).err();
    let Some(err) = err else {
        panic!("an unclosed quote was imported");
    };
    assert_eq!((err.line, err.column), (3, Some(53)), "{err}");
    assert!(matches!(
        &err.problem,
        ImportProblem::BadValue { directive, .. } if directive == "command"
    ));
    let shown = err.to_string();
    assert!(
        shown.starts_with("/etc/knockd.conf:3:53: command: the ' quote is never closed"),
        "{shown}"
    );
}

/// The same for stop_command, and a quote closed inside the other kind of quote
/// is fine.
#[test]
fn import_checks_stop_commands_and_accepts_nested_quotes() -> TestResult {
    let bad =
        "[web]\nsequence = 1,2,3\nstart_command = /bin/true\nstop_command = /bin/echo \"it's\n";
    let err = import(Path::new("/etc/knockd.conf"), bad).err();
    assert_eq!(err.map(|e| (e.line, e.column)), Some((4, Some(26))));
    let good = "[web]\nsequence = 1,2,3\nstart_command = /bin/echo \"it's\" %IP%\n";
    let imported = import(Path::new("/etc/knockd.conf"), good)?;
    Config::parse(Path::new("/etc/spad.toml"), &imported.toml)
        .map_err(|e| format!("spad refuses the import: {e}\n{}", imported.toml))?;
    Ok(())
}

/// A command ending in a lone backslash (which /bin/sh runs, keeping it) is run
/// through /bin/sh -c, so spad's own splitter accepts the imported config.
#[test]
fn import_wraps_a_trailing_backslash_in_a_shell() -> TestResult {
    let text = "[web]\nsequence = 1,2,3\nstart_command = /bin/echo %IP% \\\n";
    let imported = import(Path::new("/etc/knockd.conf"), text)?;
    let config = Config::parse(Path::new("/etc/spad.toml"), &imported.toml)
        .map_err(|e| format!("spad refuses the import: {e}\n{}", imported.toml))?;
    assert_eq!(config.doors.len(), 1);
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.contains("a trailing backslash")),
        "{:?}",
        imported.warnings
    );
    Ok(())
}
