//! End-to-end tests of the `spa-keygen` binary: what an administrator types,
//! what lands on disk (contents and modes), and what spad and spa-client then
//! load through the library.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use base64::Engine as _;
use predicates::prelude::*;
use spa_keys::{load_client_key, load_keys_dir, load_server_entry, KeyFileError};
use spa_proto::ServerId;

struct Site {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    gw1: PathBuf,
    gw2: PathBuf,
}

fn site() -> Site {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_owned();
    let gw1 = root.join("gw1-keys.d");
    let gw2 = root.join("gw2-keys.d");
    fs::create_dir(&gw1).expect("mkdir");
    fs::create_dir(&gw2).expect("mkdir");
    Site {
        _tmp: tmp,
        root,
        gw1,
        gw2,
    }
}

fn keygen(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spa-keygen"));
    cmd.current_dir(dir);
    cmd
}

fn id(s: &str) -> ServerId {
    s.parse().expect("valid server id")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .expect("file exists")
        .permissions()
        .mode()
        & 0o7777
}

fn issue(site: &Site, user: &str, doors: &str) -> assert_cmd::assert::Assert {
    keygen(&site.root)
        .args([
            "issue",
            "--user",
            user,
            "--server-id",
            "gw1.example.net",
            "--doors",
            doors,
        ])
        .arg("--keys-dir")
        .arg(&site.gw1)
        .assert()
}

/// The base64 secret line of a client key file.
fn secret_b64(key_file: &Path) -> String {
    let text = fs::read_to_string(key_file).expect("read key file");
    let line = text
        .lines()
        .find(|l| l.starts_with("secret = "))
        .expect("secret line");
    line.trim_start_matches("secret = ")
        .trim_matches('"')
        .to_string()
}

#[test]
fn issue_list_revoke_two_users() -> Result<(), KeyFileError> {
    let site = site();
    issue(&site, "alice", "ssh,admin")
        .success()
        .stdout(predicate::str::contains(format!(
            "wrote server entry for alice on gw1.example.net: {}",
            site.gw1.join("alice.toml").display()
        )))
        .stdout(predicate::str::contains(
            "wrote client key file for alice: alice.key (mode 0600)",
        ));
    keygen(&site.root)
        .args([
            "issue",
            "--user",
            "bob",
            "--server-id",
            "gw1.example.net",
            "--doors",
            "ssh",
        ])
        .args([
            "--expires",
            "2099-12-31",
            "--allow-observed",
            "--out",
            "keys-of-bob.key",
        ])
        .arg("--keys-dir")
        .arg(&site.gw1)
        .assert()
        .success();

    // Every file written is exactly 0600.
    for f in [
        site.root.join("alice.key"),
        site.root.join("keys-of-bob.key"),
        site.gw1.join("alice.toml"),
        site.gw1.join("bob.toml"),
    ] {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    // No secret is printed, and no server entry holds a secret.
    let alice_secret = secret_b64(&site.root.join("alice.key"));
    let bob_secret = secret_b64(&site.root.join("keys-of-bob.key"));
    assert_eq!(alice_secret.len(), 44);
    assert_ne!(alice_secret, bob_secret);
    for entry in ["alice.toml", "bob.toml"] {
        let text = fs::read_to_string(site.gw1.join(entry)).expect("read entry");
        assert!(
            !text.contains(&alice_secret) && !text.contains(&bob_secret),
            "{text}"
        );
    }

    let listed = keygen(&site.root)
        .arg("list")
        .arg("--keys-dir")
        .arg(&site.gw1)
        .assert()
        .success();
    let table = String::from_utf8_lossy(&listed.get_output().stdout).into_owned();
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "USER",
            "SERVER_ID",
            "DOORS",
            "EXPIRES",
            "OBSERVED",
            "STATUS"
        ],
        "{table}"
    );
    assert_eq!(
        lines[1],
        [
            "alice",
            "gw1.example.net",
            "ssh,admin",
            "never",
            "no",
            "active"
        ],
        "{table}"
    );
    assert_eq!(
        lines[2],
        [
            "bob",
            "gw1.example.net",
            "ssh",
            "2099-12-31",
            "yes",
            "active"
        ],
        "{table}"
    );
    assert_eq!(lines.len(), 3, "{table}");

    keygen(&site.root)
        .args(["revoke", "--user", "bob", "--keys-dir"])
        .arg(&site.gw1)
        .assert()
        .success()
        .stdout(predicate::str::contains("revoked bob on gw1.example.net"))
        .stdout(predicate::str::contains("SIGHUP"));
    assert_eq!(mode(&site.gw1.join("bob.toml")), 0o600);
    let listed = keygen(&site.root)
        .arg("list")
        .arg("--keys-dir")
        .arg(&site.gw1)
        .assert()
        .success();
    let table = String::from_utf8_lossy(&listed.get_output().stdout).into_owned();
    let bob_row = table
        .lines()
        .find(|l| l.starts_with("bob "))
        .expect("bob listed");
    assert!(bob_row.trim_end().ends_with("revoked"), "{table}");
    let alice_row = table
        .lines()
        .find(|l| l.starts_with("alice "))
        .expect("alice listed");
    assert!(alice_row.trim_end().ends_with("active"), "{table}");

    // What spad loads.
    let dir = load_keys_dir(&site.gw1, &id("gw1.example.net"))?;
    assert!(dir.skipped.is_empty(), "{:?}", dir.skipped);
    let entries: Vec<_> = dir.entries.iter().map(|e| e.to_key_entry()).collect();
    assert_eq!(entries.len(), 2);
    let alice = entries
        .iter()
        .find(|e| e.user == "alice")
        .expect("alice loaded");
    let bob = entries
        .iter()
        .find(|e| e.user == "bob")
        .expect("bob loaded");
    assert!(alice.enabled);
    assert!(!bob.enabled, "revoked entry must load disabled");
    assert!(bob.allow_observed);
    // 2099-12-31 ends at 2100-01-01T00:00:00Z.
    assert_eq!(bob.expires_at_ms, Some(4_102_444_800_000));
    let doors: Vec<&str> = alice.doors.iter().map(|d| d.as_str()).collect();
    assert_eq!(doors, ["admin", "ssh"]);
    // The stored key is K_srv of the client's secret, for gw1.
    let client = load_client_key(&site.root.join("alice.key"))?;
    assert_eq!(alice.key, client.secret.server_key(&id("gw1.example.net")));

    // Another gateway's keys dir sees alice's gw1 entry as skipped, not loaded.
    let other = load_keys_dir(&site.gw1, &id("gw9"))?;
    assert!(other.entries.is_empty());
    assert_eq!(other.skipped.len(), 2);

    // --delete removes the entry.
    keygen(&site.root)
        .args(["revoke", "--user", "bob", "--delete", "--keys-dir"])
        .arg(&site.gw1)
        .assert()
        .success();
    assert!(!site.gw1.join("bob.toml").exists());
    Ok(())
}

#[test]
fn overwrite_is_refused_without_force() -> Result<(), KeyFileError> {
    let site = site();
    issue(&site, "alice", "ssh").success();
    let before = secret_b64(&site.root.join("alice.key"));
    let entry_before = fs::read(site.gw1.join("alice.toml")).expect("read");
    issue(&site, "alice", "ssh")
        .failure()
        .stderr(predicate::str::contains("alice.key already exists"))
        .stderr(predicate::str::contains("--force"));
    assert_eq!(
        secret_b64(&site.root.join("alice.key")),
        before,
        "key file untouched"
    );
    assert_eq!(
        fs::read(site.gw1.join("alice.toml")).expect("read"),
        entry_before
    );

    // Only the entry exists (say, the key file was handed over and removed): still refused.
    fs::remove_file(site.root.join("alice.key")).expect("rm");
    issue(&site, "alice", "ssh")
        .failure()
        .stderr(predicate::str::contains("server entry"))
        .stderr(predicate::str::contains("alice.toml already exists"));
    assert!(
        !site.root.join("alice.key").exists(),
        "nothing written on refusal"
    );

    keygen(&site.root)
        .args([
            "issue",
            "--user",
            "alice",
            "--server-id",
            "gw1.example.net",
            "--doors",
            "ssh",
        ])
        .arg("--keys-dir")
        .arg(&site.gw1)
        .arg("--force")
        .assert()
        .success();
    let after = secret_b64(&site.root.join("alice.key"));
    assert_ne!(after, before, "--force issues a new secret");
    assert_eq!(mode(&site.root.join("alice.key")), 0o600);
    assert_eq!(mode(&site.gw1.join("alice.toml")), 0o600);
    let client = load_client_key(&site.root.join("alice.key"))?;
    let entry = load_server_entry(&site.gw1.join("alice.toml"))?;
    assert_eq!(entry.key, client.secret.server_key(&id("gw1.example.net")));
    Ok(())
}

#[test]
fn add_gateway_derives_a_different_key_for_gw2() -> Result<(), KeyFileError> {
    let site = site();
    keygen(&site.root)
        .args([
            "issue",
            "--user",
            "alice",
            "--server-id",
            "gw1",
            "--doors",
            "ssh,admin",
        ])
        .args([
            "--host",
            "gw1.example.net",
            "--port",
            "62210",
            "--knock",
            "admin:4:20000-40000",
        ])
        .arg("--keys-dir")
        .arg(&site.gw1)
        .assert()
        .success();
    let key_file = site.root.join("alice.key");
    let secret_before = secret_b64(&key_file);
    keygen(&site.root)
        .args([
            "add-gateway",
            "--key",
            "alice.key",
            "--server-id",
            "gw2",
            "--doors",
            "ssh",
        ])
        .args(["--host", "gw2.example.net"])
        .arg("--keys-dir")
        .arg(&site.gw2)
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "wrote server entry for alice on gw2: {}",
            site.gw2.join("alice.toml").display()
        )));

    assert_eq!(mode(&key_file), 0o600);
    assert_eq!(mode(&site.gw2.join("alice.toml")), 0o600);
    assert_eq!(secret_b64(&key_file), secret_before, "the secret S is kept");

    let client = load_client_key(&key_file)?;
    assert_eq!(client.gateways.len(), 2);
    let gw1 = client.gateway(Some(&id("gw1")))?;
    assert_eq!(
        (gw1.host.as_deref(), gw1.port),
        (Some("gw1.example.net"), Some(62210))
    );
    assert_eq!(gw1.knock.len(), 1, "gw1's knock survives the rewrite");
    let gw2 = client.gateway(Some(&id("gw2")))?;
    assert_eq!(gw2.host.as_deref(), Some("gw2.example.net"));
    let err = client.gateway(None).expect_err("two gateways now");
    assert!(
        err.to_string().contains("choose one with --server-id"),
        "{err}"
    );

    let e1 = load_server_entry(&site.gw1.join("alice.toml"))?;
    let e2 = load_server_entry(&site.gw2.join("alice.toml"))?;
    assert_eq!(e2.server_id, id("gw2"));
    assert_eq!(e2.key, client.secret.server_key(&id("gw2")));
    assert_ne!(e2.key, e1.key);
    let e2_text = fs::read_to_string(site.gw2.join("alice.toml")).expect("read");
    assert!(!e2_text.contains(&secret_before), "{e2_text}");
    let k_srv_b64 = base64::engine::general_purpose::STANDARD.encode(e2.key.expose());
    assert!(
        e2_text.contains(&format!("k_srv = \"{k_srv_b64}\"")),
        "{e2_text}"
    );

    // The same gateway twice is refused.
    keygen(&site.root)
        .args([
            "add-gateway",
            "--key",
            "alice.key",
            "--server-id",
            "gw2",
            "--doors",
            "ssh",
        ])
        .arg("--keys-dir")
        .arg(&site.gw2)
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "alice.key already has gateway gw2; pass --force",
        ));
    Ok(())
}

#[test]
fn loose_permissions_are_refused_with_the_chmod_to_run() {
    let site = site();
    issue(&site, "alice", "ssh").success();
    let key_file = site.root.join("alice.key");
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = load_client_key(&key_file).expect_err("0644 must be refused");
    assert!(
        matches!(err, KeyFileError::Permissions { mode: 0o644, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("chmod 600 {}", key_file.display())),
        "{err}"
    );
    keygen(&site.root)
        .args([
            "add-gateway",
            "--key",
            "alice.key",
            "--server-id",
            "gw2",
            "--doors",
            "ssh",
        ])
        .arg("--keys-dir")
        .arg(&site.gw2)
        .assert()
        .failure()
        .stderr(predicate::str::contains("run: chmod 600 alice.key"));

    let entry = site.gw1.join("alice.toml");
    fs::set_permissions(&entry, fs::Permissions::from_mode(0o640)).expect("chmod");
    // The loose entry is skipped and named (with the fix); it holds back no other entry.
    let dir = load_keys_dir(&site.gw1, &id("gw1.example.net")).expect("the directory loads");
    assert!(
        dir.entries.iter().all(|e| e.user != "alice"),
        "0640 entry refused"
    );
    let (path, why) = dir.skipped.first().expect("named as skipped");
    assert_eq!(path, &entry);
    assert!(
        why.contains(&format!("chmod 600 {}", entry.display())),
        "{why}"
    );
}

#[test]
fn bad_input_gets_a_clear_answer() {
    let site = site();
    let missing = site.root.join("no-such-dir");
    keygen(&site.root)
        .args([
            "issue",
            "--user",
            "alice",
            "--server-id",
            "gw1",
            "--doors",
            "ssh",
            "--keys-dir",
        ])
        .arg(&missing)
        .assert()
        .failure()
        .stderr(predicate::str::contains(format!(
            "install -d -m 700 {}",
            missing.display()
        )));
    assert!(!site.root.join("alice.key").exists());
    keygen(&site.root)
        .arg("list")
        .arg("--keys-dir")
        .arg(&missing)
        .assert()
        .failure()
        .stderr(predicate::str::contains("does not exist"));
    keygen(&site.root)
        .args([
            "issue",
            "--user",
            "../root",
            "--server-id",
            "gw1",
            "--doors",
            "ssh",
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("user name \"../root\""));
    keygen(&site.root)
        .args([
            "issue",
            "--user",
            "a",
            "--server-id",
            "gw1",
            "--doors",
            "ssh",
        ])
        .args(["--knock", "legacy:4:20000-40000"])
        .arg("--keys-dir")
        .arg(&site.gw1)
        .assert()
        .failure()
        .stderr(predicate::str::contains("not in --doors"));
    keygen(&site.root)
        .args(["revoke", "--user", "carol", "--keys-dir"])
        .arg(&site.gw1)
        .assert()
        .failure()
        .stderr(predicate::str::contains("no entry for user carol"));
    keygen(&site.root)
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("spa-keygen issue --user alice"));

    // A broken entry file: list shows the others, names the broken file:line:col, exits 1.
    issue(&site, "alice", "ssh").success();
    let bob = site.gw1.join("bob.toml");
    let alice_text = fs::read_to_string(site.gw1.join("alice.toml")).expect("read");
    let bob_text = alice_text
        .replace("user = \"alice\"", "user = \"bob\"")
        .replace("revoked", "revokd");
    fs::write(&bob, bob_text).expect("write");
    fs::set_permissions(&bob, fs::Permissions::from_mode(0o600)).expect("chmod");
    keygen(&site.root)
        .arg("list")
        .arg("--keys-dir")
        .arg(&site.gw1)
        .assert()
        .failure()
        .stdout(predicate::str::contains("alice"))
        .stderr(predicate::str::contains(format!(
            "{}:9:1: unknown field `revokd`",
            bob.display()
        )));
}

#[test]
fn set_and_revoke_edit_the_entry_and_keep_the_admins_comments() {
    let site = site();
    issue(&site, "alice", "ssh").success();
    let entry_file = site.gw1.join("alice.toml");
    let mut text = fs::read_to_string(&entry_file).unwrap();
    text.insert_str(0, "# laptop key, ticket OPS-112\n");
    text = text.replace(
        "doors = [\"ssh\"]",
        "doors = [\"ssh\"]  # ssh only until training",
    );
    fs::write(&entry_file, &text).unwrap();

    keygen(&site.root)
        .args(["set", "--user", "alice", "--doors", "ssh,web"])
        .args(["--expires", "2099-12-31", "--allow-observed", "yes"])
        .arg("--keys-dir")
        .arg(&site.gw1)
        .assert()
        .success()
        .stdout(predicate::str::contains("changed alice on gw1.example.net"))
        .stdout(predicate::str::contains(
            "doors ssh,web, expires 2099-12-31, allow_observed yes",
        ));
    let after = fs::read_to_string(&entry_file).unwrap();
    assert!(
        after.starts_with("# laptop key, ticket OPS-112\n"),
        "{after}"
    );
    assert!(
        after.contains("doors = [\"ssh\", \"web\"]  # ssh only until training\n"),
        "{after}"
    );
    assert_eq!(mode(&entry_file), 0o600);
    let e = load_server_entry(&entry_file).unwrap();
    assert_eq!(e.doors.len(), 2);
    assert!(e.allow_observed);
    assert_eq!(
        e.expires.map(|d| d.to_string()).as_deref(),
        Some("2099-12-31")
    );

    keygen(&site.root)
        .args(["set", "--user", "alice", "--expires", "never"])
        .arg("--keys-dir")
        .arg(&site.gw1)
        .assert()
        .success()
        .stdout(predicate::str::contains("expires never"));
    assert_eq!(load_server_entry(&entry_file).unwrap().expires, None);

    keygen(&site.root)
        .args(["revoke", "--user", "alice"])
        .arg("--keys-dir")
        .arg(&site.gw1)
        .assert()
        .success();
    let revoked = fs::read_to_string(&entry_file).unwrap();
    assert!(revoked.contains("revoked = true"), "{revoked}");
    assert!(
        revoked.starts_with("# laptop key, ticket OPS-112\n"),
        "{revoked}"
    );
    assert!(revoked.contains("# ssh only until training"), "{revoked}");
}

#[test]
fn set_refuses_nothing_to_do_a_past_day_and_an_unknown_user() {
    let site = site();
    issue(&site, "alice", "ssh").success();
    let run = |args: &[&str]| {
        keygen(&site.root)
            .arg("set")
            .args(args)
            .arg("--keys-dir")
            .arg(&site.gw1)
            .assert()
            .failure()
    };
    run(&["--user", "alice"]).stderr(predicate::str::contains(
        "nothing to change: give --doors, --expires or --allow-observed",
    ));
    run(&["--user", "alice", "--expires", "2001-01-01"]).stderr(predicate::str::contains(
        "--expires 2001-01-01 is in the past",
    ));
    run(&["--user", "bob", "--doors", "ssh"])
        .stderr(predicate::str::contains("no entry for user bob"));
    run(&["--user", "alice", "--allow-observed", "maybe"])
        .stderr(predicate::str::contains("invalid value 'maybe'"));
}
