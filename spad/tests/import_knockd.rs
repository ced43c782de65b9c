//! `spad import-knockd` on real knockd.conf files (tests/knockd/): Debian's
//! default file and one using every knockd directive become the expected spad
//! doors, with the expected warnings; malformed files are refused with
//! FILE:LINE(:COLUMN).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use spad::config::DoorKind;
use spad::firewall::BackendKind;
use spad::import_knockd::{import, Import, ImportError, ImportProblem};
use toml::{Table, Value};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/knockd")
        .join(name)
}

/// Imports a fixture, as `spad import-knockd /etc/knockd.conf` would name it.
fn import_fixture(name: &str) -> Result<(Import, Table), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(fixture(name))?;
    let imported = import(Path::new("/etc/knockd.conf"), &text)?;
    let table: Table = toml::from_str(&imported.toml)?;
    Ok((imported, table))
}

fn import_error(name: &str) -> Result<ImportError, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(fixture(name))?;
    match import(Path::new(&format!("/etc/{name}")), &text) {
        Ok(i) => Err(format!("{name} was accepted:\n{}", i.toml).into()),
        Err(e) => Ok(e),
    }
}

fn door<'a>(table: &'a Table, name: &str) -> &'a Table {
    table["doors"][name]
        .as_table()
        .unwrap_or_else(|| panic!("no [doors.{name}] in {table:#?}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn has_warning(import: &Import, needles: &[&str]) -> bool {
    import
        .warnings
        .iter()
        .any(|w| needles.iter().all(|n| w.contains(n)))
}

#[test]
fn debians_default_knockd_conf_becomes_three_command_doors() -> TestResult {
    let (imported, t) = import_fixture("debian-default.conf")?;
    assert_eq!(t["server_id"].as_str(), Some("knockd-import"));
    assert_eq!(t["port"].as_integer(), Some(62210));
    // No Interface: spad listens everywhere (the key is absent, not empty).
    assert!(t.get("interfaces").is_none());
    let doors = t["doors"].as_table().unwrap();
    let names: Vec<&str> = doors.keys().map(String::as_str).collect();
    assert_eq!(names, ["closessh", "openhttps", "openssh"]);

    let open = door(&t, "openssh");
    assert_eq!(
        strings(&open["sequence"]),
        ["7000:tcp", "8000:tcp", "9000:tcp"]
    );
    assert_eq!(open["seq_timeout_secs"].as_integer(), Some(5));
    assert_eq!(open["tcpflags"].as_str(), Some("syn"));
    assert_eq!(open["backend"].as_str(), Some("command"));
    assert_eq!(
        open["open_command"].as_str(),
        Some("/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT")
    );
    assert!(open.get("close_command").is_none());
    assert_eq!(open["default_secs"].as_integer(), Some(1));
    assert_eq!(open["max_secs"].as_integer(), Some(1));
    assert_eq!(open["command_timeout_secs"].as_integer(), Some(10));

    let close = door(&t, "closessh");
    assert_eq!(
        strings(&close["sequence"]),
        ["9000:tcp", "8000:tcp", "7000:tcp"]
    );
    assert_eq!(
        close["open_command"].as_str(),
        Some("/sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT")
    );
    let https = door(&t, "openhttps");
    assert_eq!(
        strings(&https["sequence"]),
        ["12345:tcp", "54321:tcp", "24680:tcp", "13579:tcp"]
    );
    assert_eq!(
        https["open_command"].as_str(),
        Some("/usr/local/sbin/knock_add -i -c INPUT -p tcp -d 443 -f %IP%")
    );

    // Comments say where each door came from and that the file needs review.
    assert!(imported
        .toml
        .starts_with("# spad configuration imported from /etc/knockd.conf"));
    assert!(imported.toml.contains("REVIEW IT"));
    assert!(imported
        .toml
        .contains("# From knockd section [openSSH] (line 4).\n[doors.openssh]\n"));
    assert!(imported
        .toml
        .contains("# From knockd section [openHTTPS] (line 16).\n[doors.openhttps]\n"));

    let w = &imported;
    assert!(has_warning(
        w,
        &["/etc/knockd.conf:2:", "UseSyslog", "dropped"]
    ));
    assert!(has_warning(w, &[":4:", "[openSSH]", "\"openssh\""]));
    assert!(has_warning(w, &[":10:", "[closeSSH]", "\"closessh\""]));
    assert!(has_warning(w, &[":16:", "[openHTTPS]", "\"openhttps\""]));
    assert!(has_warning(w, &["no Interface", "eth0"]));
    assert!(has_warning(w, &["server_id", "knockd-import"]));
    assert_eq!(w.warnings.len(), 6, "{:#?}", w.warnings);
    Ok(())
}

#[test]
fn every_knockd_directive_is_carried_over_or_warned_about() -> TestResult {
    let (imported, t) = import_fixture("every-directive.conf")?;
    assert_eq!(strings(&t["interfaces"]), ["enp3s0"]);
    let names: Vec<&str> = t["doors"]
        .as_table()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["openssh", "openssh-2", "web-admin-https"]);

    // start/stop commands with cmd_timeout: the door is open for cmd_timeout.
    let ssh = door(&t, "openssh");
    assert_eq!(
        strings(&ssh["sequence"]),
        ["7000:tcp", "8000:tcp", "9000:udp"]
    );
    assert_eq!(ssh["seq_timeout_secs"].as_integer(), Some(5));
    assert_eq!(ssh["tcpflags"].as_str(), Some("syn,!ack"));
    assert_eq!(ssh["backend"].as_str(), Some("command"));
    assert_eq!(
        ssh["open_command"].as_str(),
        Some("/usr/sbin/iptables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT")
    );
    assert_eq!(
        ssh["close_command"].as_str(),
        Some("/usr/sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT")
    );
    assert_eq!(ssh["default_secs"].as_integer(), Some(30));
    assert_eq!(ssh["max_secs"].as_integer(), Some(30));
    assert_eq!(ssh["command_timeout_secs"].as_integer(), Some(10));
    assert!(ssh.get("one_time_sequences").is_none());
    // Target, start_command_6 and stop_command_6 carry over.
    assert_eq!(strings(&ssh["target"]), ["192.0.2.10"]);
    assert_eq!(
        ssh["open_command_6"].as_str(),
        Some("/usr/sbin/ip6tables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT")
    );
    assert_eq!(
        ssh["close_command_6"].as_str(),
        Some("/usr/sbin/ip6tables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT")
    );

    // one_time_sequences, the Timeout and Command aliases, shell syntax, braces.
    let otp = door(&t, "openssh-2");
    assert_eq!(
        otp["one_time_sequences"].as_str(),
        Some("/etc/knockd/ssh.seq")
    );
    assert!(otp.get("sequence").is_none());
    assert_eq!(otp["seq_timeout_secs"].as_integer(), Some(12));
    assert!(otp.get("tcpflags").is_none());
    assert_eq!(
        otp["open_command"].as_str(),
        Some(
            "/bin/sh -c '/usr/sbin/nft add element inet filter ssh4 {{ %IP% }} && logger \"knock from %IP%\"'"
        )
    );
    assert_eq!(otp["default_secs"].as_integer(), Some(1));

    // No seq_timeout: knockd's 25 s written out; cmd_timeout without
    // stop_command means nothing to wait for.
    let web = door(&t, "web-admin-https");
    assert_eq!(
        strings(&web["sequence"]),
        ["2222:udp", "3333:tcp", "4444:udp"]
    );
    assert_eq!(web["seq_timeout_secs"].as_integer(), Some(25));
    assert_eq!(
        web["open_command"].as_str(),
        Some("/usr/sbin/nft add element inet filter web4 {{ %IP% timeout 60s }}")
    );
    assert!(web.get("close_command").is_none());
    assert_eq!(web["default_secs"].as_integer(), Some(1));
    assert_eq!(web["max_secs"].as_integer(), Some(1));
    // Two TCPFlags lines add up, as in knockd.
    assert_eq!(web["tcpflags"].as_str(), Some("syn,urg,!ack"));

    let w = &imported;
    for needles in [
        &[":3:", "UseSyslog"][..],
        &[":4:", "LogFile = /var/log/knockd.log", "dropped"],
        &[":5:", "PidFile = /run/knockd.pid", "dropped"],
        &[":8:", "[openSSH]", "\"openssh\""],
        &[":19:", "[OpenSSH]", "\"openssh-2\""],
        &[":22:", "shell syntax", "'&'", "/bin/sh -c"],
        &[":24:", "[Web Admin (HTTPS)!]", "\"web-admin-https\""],
        &[":29:", "adds to the rule of line 28", "syn,urg,!ack"],
        &["server_id", "knockd-import"],
    ] {
        assert!(
            has_warning(w, needles),
            "no warning with {needles:?} in {:#?}",
            w.warnings
        );
    }
    assert_eq!(w.warnings.len(), 9, "{:#?}", w.warnings);
    // Every warning is also listed in the file's header comment.
    for warning in &w.warnings {
        assert!(
            imported.toml.contains(&format!("#   - {warning}\n")),
            "{warning}"
        );
    }
    assert!(imported
        .toml
        .contains("# knockd listened on Interface = enp3s0 (line 6).\n"));
    Ok(())
}

#[test]
fn a_port_out_of_range_names_file_line_and_column() -> TestResult {
    let e = import_error("bad-port.conf")?;
    assert_eq!(
        e.to_string(),
        "/etc/bad-port.conf:5:21: sequence: \"70000\" is not a port number from 1 to 65535"
    );
    assert_eq!((e.line, e.column), (5, Some(21)));
    Ok(())
}

#[test]
fn a_timeout_with_a_unit_names_file_and_line() -> TestResult {
    let e = import_error("bad-timeout.conf")?;
    assert_eq!(
        e.to_string(),
        "/etc/bad-timeout.conf:3:16: seq_timeout must be a whole number of seconds, got \"5s\""
    );
    Ok(())
}

#[test]
fn a_door_without_a_sequence_is_refused_at_its_section() -> TestResult {
    let e = import_error("no-sequence.conf")?;
    assert_eq!(e.line, 4);
    assert_eq!(e.problem, ImportProblem::NoSequence("openSSH".to_owned()));
    assert!(e
        .to_string()
        .starts_with("/etc/no-sequence.conf:4: section [openSSH] has no sequence"));
    Ok(())
}

#[test]
fn other_malformed_lines_are_refused_with_their_line() {
    let cases: &[(&str, usize, &str)] = &[
        ("sequence = 1,2,3\n", 1, "comes before any [section]"),
        (
            "[x]\nsequence = 1\ncommand\n",
            3,
            "expected `Directive = value`",
        ),
        ("[]\n", 1, "empty section name"),
        (
            "[x]\nsequence = 1:sctp\ncommand = /bin/true\n",
            2,
            "unknown transport \"sctp\"",
        ),
        (
            "[x]\nsequence = 1\ntcpflags = syn,fyn\n",
            3,
            "unknown TCP flag \"fyn\"",
        ),
        (
            "[x]\nsequence = 1\ntcpflags = syn,!syn\n",
            3,
            "both required and excluded",
        ),
        (
            "[x]\nsequence = 1\nseq_timeout = 0\n",
            3,
            "at least 1 second",
        ),
        ("[x]\nsequence = \n", 2, "the sequence is empty"),
        // What knockd itself refuses ("syntax error", "unrecognized flag").
        (
            "UseSyslog\n[x]\nsequence = 1\n",
            1,
            "comes before any [section]",
        ),
        (
            "[options]\nUseSyslog = yes\n",
            2,
            "unknown directive `UseSyslog`",
        ),
        (
            "[options]\nVerbosity = 3\n",
            2,
            "unknown directive `Verbosity` in [options]",
        ),
        (
            "[x]\nsequence = 1\nfrobnicate = yes\n",
            3,
            "unknown directive `frobnicate` in door section [x]",
        ),
        ("[options]\nsequence = 1\n", 2, "belongs in a door section"),
        (
            "[x]\nsequence = 1\nInterface = eth0\n",
            3,
            "belongs in [options]",
        ),
        (
            "[x]\nsequence = 1\ntcpflags = syn, ack\n",
            3,
            "knockd refuses the flag \" ack\"",
        ),
        (
            "[x]\nsequence = 1\ntcpflags = syn,\n",
            3,
            "knockd refuses the flag \"\"",
        ),
        // What knockd would misread.
        (
            "[x]\nsequence = 7000 8000\n",
            2,
            "knockd reads only the first one (7000)",
        ),
        ("[x]\nsequence = 7000,,8000\n", 2, "port 0"),
        (
            "[x]\nsequence = 1\ntarget = gw.example\n",
            3,
            "is not an IP address",
        ),
        (
            "[x]\nsequence = 1\ntarget = 2001:DB8::1\n",
            3,
            "write 2001:db8::1",
        ),
        (
            "[x]\none_time_sequences = /f\nsequence = 1\n",
            3,
            "sequence after one_time_sequences",
        ),
    ];
    for (text, line, message) in cases {
        match import(Path::new("k.conf"), text) {
            Ok(i) => panic!("{text:?} was accepted:\n{}", i.toml),
            Err(e) => {
                let shown = e.to_string();
                assert!(
                    shown.starts_with(&format!("k.conf:{line}")),
                    "{text:?}: {shown}"
                );
                assert!(shown.contains(message), "{text:?}: {shown}");
            }
        }
    }
    let long: Vec<String> = (1..=33).map(|p| p.to_string()).collect();
    let e = import(
        Path::new("k.conf"),
        &format!("[x]\nsequence = {}\n", long.join(",")),
    );
    assert_eq!(
        e.err().map(|e| e.problem),
        Some(ImportProblem::TooManyPorts(33))
    );
    let e = import(
        Path::new("k.conf"),
        &format!(
            "[x]\nsequence = 1\ncommand = /bin/echo {}\n",
            "x".repeat(5000)
        ),
    );
    assert!(matches!(
        e.err().map(|e| (e.line, e.problem)),
        Some((3, ImportProblem::LineTooLong(_)))
    ));
}

#[test]
fn ipv6_only_commands_carry_over_and_knockds_empty_commands_run_nothing() -> TestResult {
    let imported = import(
        Path::new("k.conf"),
        "[v6only]\nsequence = 1,2\nstart_command_6 = /bin/echo open6 %IP%\n\
         stop_command_6 = /bin/echo close6 %IP%\ncmd_timeout = 7\n\
         [same]\nsequence = 3,4\ncommand = /bin/echo %IP%\ncommand_6 = /bin/echo %IP%\n",
    )?;
    let t: Table = toml::from_str(&imported.toml)?;
    let v6 = door(&t, "v6only");
    // knockd ran nothing for IPv4 knockers there.
    assert_eq!(v6["open_command"].as_str(), Some("/bin/true"));
    assert_eq!(v6["open_command_6"].as_str(), Some("/bin/echo open6 %IP%"));
    assert!(v6.get("close_command").is_none());
    assert_eq!(
        v6["close_command_6"].as_str(),
        Some("/bin/echo close6 %IP%")
    );
    assert_eq!(v6["default_secs"].as_integer(), Some(7));
    assert!(has_warning(
        &imported,
        &["k.conf:1:", "start_command is empty or missing"]
    ));
    // The same command for both families is written once.
    let same = door(&t, "same");
    assert!(same.get("open_command_6").is_none());
    assert!(t.get("keys_dir").is_none(), "{}", imported.toml);
    Ok(())
}

#[test]
fn sections_without_a_command_are_left_out_with_a_warning() -> TestResult {
    let imported = import(
        Path::new("k.conf"),
        "[logonly]\nsequence = 1,2,3\n[real]\nsequence = 4,5\ncommand = /bin/true %IP%\n",
    )?;
    let t: Table = toml::from_str(&imported.toml)?;
    let names: Vec<&str> = t["doors"]
        .as_table()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["real"]);
    assert!(has_warning(
        &imported,
        &["k.conf:1:", "[logonly] runs no command", "not imported"]
    ));
    Ok(())
}

#[test]
fn windows_line_ends_and_a_byte_order_mark_change_nothing() -> TestResult {
    let text = std::fs::read_to_string(fixture("debian-default.conf"))?;
    let dos = format!("\u{feff}{}", text.replace('\n', "\r\n"));
    let path = Path::new("/etc/knockd.conf");
    assert_eq!(import(path, &dos)?, import(path, &text)?);
    Ok(())
}

/// The generated config is one spad itself accepts, door for door.
#[test]
fn spads_own_config_parser_accepts_every_import() -> TestResult {
    // spad reads one-time sequence files when it loads the config (knockd
    // does too): give the fixture's file a stand-in.
    let scratch = tempfile::tempdir()?;
    let seq_file = scratch.path().join("ssh.seq");
    std::fs::write(&seq_file, " 1111,2222:udp,3333\n 4444,5555,6666\n")?;
    for name in ["debian-default.conf", "every-directive.conf"] {
        let (imported, _) = import_fixture(name)?;
        let toml = imported.toml.replace(
            "\"/etc/knockd/ssh.seq\"",
            &format!("{:?}", seq_file.display().to_string()),
        );
        let config = spad::config::Config::parse(Path::new("/etc/spad.toml"), &toml)
            .map_err(|e| format!("{name}: spad refuses the import: {e}\n{toml}"))?;
        assert_eq!(config.server_id.as_str(), "knockd-import");
        assert_eq!(config.doors.len(), 3, "{name}");
        // Knock doors only: spad starts without a keys directory.
        assert!(!config.needs_keys(), "{name}");
        for door in &config.doors {
            assert!(
                matches!(door.kind, DoorKind::Classic { .. }),
                "{name}: door {} is not a classic door: {:?}",
                door.name,
                door.kind
            );
            assert!(matches!(door.spec.backend, BackendKind::Command(_)));
        }
        if name == "every-directive.conf" {
            let otp = config.doors.iter().find(|d| d.name.as_str() == "openssh-2");
            let Some(BackendKind::Command(templates)) = otp.map(|d| &d.spec.backend) else {
                return Err("no command door openssh-2".into());
            };
            // The shell wrapper survives spad's own word splitting.
            // Target and the IPv6 commands reach spad's own config.
            let ssh = config.doors.iter().find(|d| d.name.as_str() == "openssh");
            let Some(DoorKind::Classic { door, .. }) = ssh.map(|d| &d.kind) else {
                return Err("no classic door openssh".into());
            };
            assert_eq!(door.target, ["192.0.2.10".parse::<std::net::IpAddr>()?]);
            let Some(BackendKind::Command(ssh_commands)) = ssh.map(|d| &d.spec.backend) else {
                return Err("no command door openssh".into());
            };
            assert_eq!(
                ssh_commands
                    .open6
                    .as_ref()
                    .and_then(|a| a.first())
                    .map(String::as_str),
                Some("/usr/sbin/ip6tables")
            );
            assert!(ssh_commands.close6.is_some());
            assert_eq!(templates.open.len(), 3, "{:?}", templates.open);
            assert_eq!(templates.open[..2], ["/bin/sh", "-c"]);
            assert_eq!(
                templates.open[2],
                "/usr/sbin/nft add element inet filter ssh4 {{ %IP% }} && logger \"knock from %IP%\""
            );
        }
    }
    Ok(())
}
