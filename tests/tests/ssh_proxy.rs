//! Real OpenSSH through a shut door: Debian's `ssh` on the laptop reaches a
//! real `sshd` on the gateway (port 2222, behind door `ssh`, spad with the
//! nftables backend) using exactly the ssh_config snippets docs/client.md
//! shows — ProxyCommand, ProxyUseFdpass and Match exec — with key
//! authentication; each session runs a command and returns its output. Before
//! each session the door is shut for the laptop. Root only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use spa_e2e::bins::workspace_bin;
use spa_e2e::lab::{Lab, SERVER_V4};
use spa_e2e::netns::{run_checked, Netns};
use spa_e2e::spad::Backend;
use spa_e2e::{E2eError, Result};

/// sshd's port, behind door `ssh` (the lab's listener holds 22).
const SSHD_PORT: u16 = 2222;
/// The gateway name the docs use; the test puts the lab gateway's address in its place.
const DOCS_HOST: &str = "gw1.example.net";

/// Names what the harness was doing when an I/O operation failed.
fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> E2eError {
    let what = what.into();
    move |source| E2eError::Io { what, source }
}

/// The ```sshconfig blocks of docs/client.md, in order.
fn documented_ssh_configs() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/client.md");
    let text = fs::read_to_string(&path).expect("docs/client.md is readable");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sshconfig") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), l) => {
                block.push_str(l);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// Whether a TCP connect from the laptop to sshd succeeds within 1 s.
fn laptop_reaches_sshd(laptop: &Netns) -> Result<bool> {
    let out = laptop.output(
        "timeout",
        [
            "1",
            "bash",
            "-c",
            &format!("exec 3<>/dev/tcp/{SERVER_V4}/{SSHD_PORT}"),
        ],
    )?;
    Ok(out.status.success())
}

/// Waits until the door has closed again for the laptop.
fn wait_until_shut(laptop: &Netns) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while laptop_reaches_sshd(laptop)? {
        assert!(Instant::now() < deadline, "the door never closed again");
        std::thread::sleep(Duration::from_millis(300));
    }
    Ok(())
}

struct Sshd {
    dir: PathBuf,
}

/// Host key, user key, authorized_keys and an sshd_config in `dir`.
fn prepare_sshd(dir: &Path) -> Result<Sshd> {
    fs::create_dir_all(dir).map_err(io("creating the sshd dir"))?;
    fs::create_dir_all("/run/sshd").map_err(io("creating /run/sshd"))?;
    for (file, comment) in [("host_key", "spa-e2e host"), ("id_ed25519", "spa-e2e user")] {
        run_checked(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(dir.join(file)),
        )?;
    }
    fs::copy(dir.join("id_ed25519.pub"), dir.join("authorized_keys"))
        .map_err(io("writing authorized_keys"))?;
    let config = format!(
        "Port {SSHD_PORT}\nListenAddress {SERVER_V4}\nHostKey {d}/host_key\n\
         AuthorizedKeysFile {d}/authorized_keys\nPubkeyAuthentication yes\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n\
         PidFile {d}/sshd.pid\nLogLevel VERBOSE\n",
        d = dir.display()
    );
    fs::write(dir.join("sshd_config"), config).map_err(io("writing sshd_config"))?;
    Ok(Sshd {
        dir: dir.to_owned(),
    })
}

/// Runs `ssh -F CONFIG gw1 COMMAND` on the laptop with spa-client on PATH and
/// `home` as $HOME; only test plumbing (identity, known hosts, port) is added
/// on the command line.
fn ssh(lab: &Lab, sshd: &Sshd, home: &Path, config: &Path, command: &str) -> Result<Output> {
    let bin_dir = workspace_bin("spa-client")?
        .parent()
        .map(Path::to_path_buf)
        .expect("spa-client lives in a directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = lab.laptop.command("ssh");
    cmd.env("PATH", path)
        .env("HOME", home)
        .arg("-F")
        .arg(config)
        .args(["-p", &SSHD_PORT.to_string()])
        .arg("-i")
        .arg(sshd.dir.join("id_ed25519"))
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            sshd.dir.join("known_hosts").display()
        ))
        .args([
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=20",
            "root@gw1",
            command,
        ]);
    cmd.output().map_err(io(format!("running {cmd:?}")))
}

#[test]
#[ignore = "needs root"]
fn openssh_reaches_sshd_through_a_shut_door_with_each_documented_snippet() -> Result<()> {
    let snippets = documented_ssh_configs();
    let find = |pred: &dyn Fn(&str) -> bool| -> String {
        snippets
            .iter()
            .find(|s| pred(s))
            .cloned()
            .unwrap_or_else(|| panic!("docs/client.md lacks a snippet; has: {snippets:?}"))
    };
    let cases = [
        (
            "ProxyCommand",
            find(&|s| s.contains("ssh-proxy %h %p") && !s.contains("Fdpass")),
        ),
        (
            "ProxyUseFdpass",
            find(&|s| s.contains("ProxyUseFdpass yes")),
        ),
        (
            "Match exec",
            find(&|s| s.contains("Match ") && s.contains("exec ")),
        ),
    ];

    let lab = Lab::new()?;
    let key = lab.issue_key("alice", &["ssh"])?;
    let mut config = lab.config(Backend::Nftables, 1);
    for door in &mut config.doors {
        if door.name == "ssh" {
            door.open = vec![format!("tcp/{SSHD_PORT}")];
            door.default_secs = 4;
            door.max_secs = 4;
        }
    }
    let _spad = lab.start_spad(&config)?;
    let sshd = prepare_sshd(&lab.dir.path().join("sshd"))?;
    let mut sshd_proc = lab.server.spawn(
        "sshd",
        "/usr/sbin/sshd",
        [
            "-D".as_ref(),
            "-e".as_ref(),
            "-f".as_ref(),
            sshd.dir.join("sshd_config").as_os_str(),
        ],
    )?;
    sshd_proc.wait_for_line("sshd listening", Duration::from_secs(10), |l| {
        l.contains("Server listening on")
    })?;

    // The user's side: ~/.spa/key and a profile for gw1, as docs/client.md shows.
    let home = lab.dir.path().join("home");
    let spa = home.join(".spa");
    fs::create_dir_all(&spa).map_err(io("creating ~/.spa"))?;
    fs::copy(&key, spa.join("key")).map_err(io("installing the key"))?;
    fs::set_permissions(spa.join("key"), fs::Permissions::from_mode(0o600))
        .map_err(io("chmod the key"))?;
    fs::write(
        spa.join("config.toml"),
        format!("[[host]]\nname = \"gw1\"\nhostname = \"{SERVER_V4}\"\ndoor = \"ssh\"\n"),
    )
    .map_err(io("writing the profile"))?;

    for (name, snippet) in cases {
        let ssh_config = lab
            .dir
            .path()
            .join(format!("ssh_config-{}", name.replace(' ', "-")));
        fs::write(
            &ssh_config,
            snippet.replace(DOCS_HOST, &SERVER_V4.to_string()),
        )
        .map_err(io("writing ssh_config"))?;
        wait_until_shut(&lab.laptop)?;
        assert!(
            !laptop_reaches_sshd(&lab.laptop)?,
            "{name}: sshd must be shut for the laptop before ssh runs"
        );
        let out = ssh(
            &lab,
            &sshd,
            &home,
            &ssh_config,
            "echo spa-through-$((6*7)); id -un",
        )?;
        assert!(
            out.status.success(),
            "{name}: ssh failed ({})\nssh_config:\n{snippet}\nstdout: {}\nstderr: {}\nsshd:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            sshd_proc.lines().join("\n")
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "spa-through-42\nroot\n",
            "{name}: the remote command's output comes back"
        );
    }
    let accepted = sshd_proc
        .lines()
        .iter()
        .filter(|l| l.contains("Accepted publickey for root"))
        .count();
    assert_eq!(
        accepted,
        3,
        "three sessions by key: {:?}",
        sshd_proc.lines()
    );
    Ok(())
}
