//! `spad import-fwknop FILE` as a user runs it: the config on stdout,
//! every warning on stderr, and the exit status.

use std::path::Path;
use std::process::{Command, Output};

const KEY: &str = "wHCG6pRmYWN2ipv7Ebp+D8q1lEZ8mXVLsuFXA/Fp6oY=";
const HMAC: &str =
    "Mzo0rAOxwEHxqy0d5FzwqKpxtmRqg0cx3nAwzHp5Zc1LVn5YjzFuuNQuH3GYhEx3aqQ/SZ3GECHRT+f4jhsN6w==";

fn run(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spad"))
        .arg("import-fwknop")
        .arg(file)
        .output()
        .expect("run spad")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn prints_the_config_and_names_what_does_not_carry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("access.conf");
    std::fs::write(
        &file,
        format!(
            "SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\n\
             SOURCE ANY\nOPEN_PORTS tcp/80\nKEY_BASE64 {KEY}\n"
        ),
    )
    .expect("write");
    let out = run(&file);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("[doors.fwknop-tcp-22]\nopen = [\"tcp/22\"]\nfwknop = true\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("access_conf = \"{}\"", file.display())),
        "{stdout}"
    );
    assert!(!stdout.contains("tcp/80"), "{stdout}");
    assert!(!stdout.contains(&KEY[..12]) && !stderr.contains(&KEY[..12]));
    assert!(
        stderr.contains(&format!(
            "{}:5: stanza refused: no HMAC_KEY_BASE64",
            file.display()
        )),
        "{stderr}"
    );
}

#[test]
fn fails_when_nothing_carries_or_the_file_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("access.conf");
    std::fs::write(
        &file,
        "SOURCE ANY\nKEY_BASE64 __CHANGEME__\nHMAC_KEY_BASE64 __CHANGEME__\n",
    )
    .expect("write");
    let out = run(&file);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no stanza of"),
        "{}",
        text(&out.stderr)
    );

    let missing = run(&dir.path().join("nope.conf"));
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("nope.conf: cannot read"));
}
