//! The shipped fail2ban filter (conf/fail2ban/filter.d/spad.conf) against
//! lines in the audit format of docs/operating.md, with Debian's
//! `fail2ban-regex`: unauthenticated refusals match and yield the source
//! address (IPv4 and IPv6); a key holder's refusals and other lines do not.

use std::path::Path;
use std::process::Command;

const FILTER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../conf/fail2ban/filter.d/spad.conf"
);

const LOG: &str = "\
Dec  1 11:40:00 gw1 spad[812]: refused src=198.51.100.7 reason=hint count=57
Dec  1 11:41:00 gw1 spad[812]: refused src=198.51.100.7 reason=length count=3
Dec  1 11:41:00 gw1 spad[812]: refused src=2001:db8::42 reason=aead count=1
Dec  1 11:41:30 gw1 spad[812]: refused src=203.0.113.9 reason=window count=1
Dec  1 11:41:31 gw1 spad[812]: not opened user=alice src=203.0.113.9 reason=clock: alice's clock is about 2 min 10 s behind
Dec  1 11:41:31 gw1 spad[812]: door opened door=ssh addr=203.0.113.9 user=alice seconds=30
Dec  1 11:41:32 gw1 sshd[900]: refused src=198.51.100.8 reason=hint count=1
Dec  1 11:42:00 gw1 spad[812]: refused src=198.51.100.7 reason=hint count=2 extra
";

#[test]
#[ignore = "needs fail2ban-regex (tests/setup.sh installs it)"]
fn the_filter_bans_junk_sources_and_not_key_holders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("spad.log");
    std::fs::write(&log, LOG).expect("log");
    // As installed: filter.d/ beside fail2ban's own common.conf.
    let filter_d = dir.path().join("filter.d");
    std::fs::create_dir(&filter_d).expect("filter.d");
    std::fs::copy(FILTER, filter_d.join("spad.conf")).expect("copying the shipped filter");
    let common = Path::new("/etc/fail2ban/filter.d/common.conf");
    assert!(
        common.is_file(),
        "{} is missing: apt-get install fail2ban (tests/setup.sh does it)",
        common.display()
    );
    std::fs::copy(common, filter_d.join("common.conf")).expect("copying common.conf");
    let out = Command::new("fail2ban-regex")
        .args(["--print-all-matched", "--print-all-missed"])
        .arg(&log)
        .arg(filter_d.join("spad.conf"))
        .output()
        .expect(
            "fail2ban-regex must be installed (apt-get install fail2ban; tests/setup.sh does it)",
        );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Lines: 8 lines, 0 ignored, 3 matched, 5 missed"),
        "{text}"
    );
    let matched = text
        .split("Matched line(s):")
        .nth(1)
        .and_then(|s| s.split("Missed line(s):").next())
        .unwrap_or_default();
    for line in [
        "refused src=198.51.100.7 reason=hint count=57",
        "refused src=198.51.100.7 reason=length count=3",
        "refused src=2001:db8::42 reason=aead count=1",
    ] {
        assert!(matched.contains(line), "{line} not matched:\n{text}");
    }
    for line in [
        "reason=window",
        "reason=clock",
        "door opened",
        "sshd[900]",
        "count=2 extra",
    ] {
        assert!(!matched.contains(line), "{line} matched:\n{text}");
    }
}
