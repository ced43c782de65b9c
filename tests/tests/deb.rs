//! The Debian package, as an administrator gets it: `spa-dist` writes the man
//! pages and completions, `cargo deb` builds `spa`, dpkg installs it into a
//! throw-away root (never this machine's /), and then the installed pieces
//! are checked: file modes, the conffile kept over an upgrade, the installed
//! `spad --check` on the installed config, and `systemd-analyze verify` on
//! the installed unit with the installed binary at its path.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use spa_e2e::bins::{target_profile_dir, workspace_bin};

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Builds the .deb from the binaries of this test's profile; returns its path.
fn build_deb(out_dir: &Path) -> PathBuf {
    // The binaries the package holds, fresh.
    workspace_bin("spad").expect("spad");
    let profile_dir = target_profile_dir().expect("target dir");
    let target_dir = profile_dir.parent().expect("target/").to_path_buf();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_owned(),
        Some(other) => other.to_owned(),
        None => panic!("odd profile dir {}", profile_dir.display()),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Man pages and completions go where spad's [package.metadata.deb] assets expect them.
    run(Command::new(&cargo)
        .args(["run", "--quiet", "-p", "spa-dist", "--"])
        .arg(Path::new(WORKSPACE).join("target/assets"))
        .current_dir(WORKSPACE)
        .env("CARGO_TARGET_DIR", &target_dir));
    let has_cargo_deb = Command::new(&cargo)
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_cargo_deb,
        "cargo-deb is not installed: cargo install cargo-deb --locked (tests/setup.sh does it)"
    );
    run(Command::new(&cargo)
        .args(["deb", "-p", "spad", "--no-build", "--fast", "--profile"])
        .arg(&profile)
        .arg("-o")
        .arg(out_dir)
        .current_dir(WORKSPACE)
        .env("CARGO_TARGET_DIR", &target_dir));
    let debs: Vec<PathBuf> = std::fs::read_dir(out_dir)
        .expect("deb dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    debs[0].clone()
}

/// dpkg into `root` (its own database), running the maintainer scripts with $DPKG_ROOT.
fn dpkg_install(root: &Path, deb: &Path) -> Output {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--log=/dev/null",
            "-i",
        ])
        .arg(deb))
}

#[test]
#[ignore = "needs root"]
fn the_deb_installs_into_a_root_and_its_spad_and_unit_check_out() {
    let work = tempfile::tempdir().expect("tempdir");
    let deb = build_deb(work.path());

    let listing = stdout(&run(Command::new("dpkg-deb").arg("-c").arg(&deb)));
    for (perm, path) in [
        ("-rwxr-xr-x", "./usr/sbin/spad"),
        ("-rwxr-xr-x", "./usr/bin/spa-client"),
        ("-rwxr-xr-x", "./usr/bin/spa-keygen"),
        ("-rw-------", "./etc/spad.toml"),
        ("-rw-r--r--", "./lib/systemd/system/spad.service"),
        ("-rw-r--r--", "./etc/fail2ban/filter.d/spad.conf"),
        ("-rw-r--r--", "./usr/share/man/man8/spad.8.gz"),
        ("-rw-r--r--", "./usr/share/man/man8/spad-status.8.gz"),
        ("-rw-r--r--", "./usr/share/man/man1/spa-client.1.gz"),
        ("-rw-r--r--", "./usr/share/man/man1/spa-keygen.1.gz"),
        ("-rw-r--r--", "./usr/share/man/man5/spad.toml.5.gz"),
        ("-rw-r--r--", "./usr/share/bash-completion/completions/spad"),
        (
            "-rw-r--r--",
            "./usr/share/zsh/vendor-completions/_spa-keygen",
        ),
        (
            "-rw-r--r--",
            "./usr/share/fish/vendor_completions.d/spa-client.fish",
        ),
        ("-rw-r--r--", "./usr/share/doc/spa/operating.md"),
    ] {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(perm) && l.ends_with(path)),
            "{perm} {path} not in the package:\n{listing}"
        );
    }
    let control = stdout(&run(Command::new("dpkg-deb").arg("-I").arg(&deb)));
    assert!(control.contains("Package: spa\n"), "{control}");

    // A throw-away root with an empty dpkg database.
    let root = work.path().join("root");
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).expect("dpkg dirs");
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).expect("dpkg dirs");
    std::fs::write(root.join("var/lib/dpkg/status"), "").expect("dpkg status");
    dpkg_install(&root, &deb);
    assert_eq!(mode(&root.join("etc/spad.toml")), 0o600);
    assert_eq!(mode(&root.join("etc/spad/keys.d")), 0o700);
    assert_eq!(mode(&root.join("var/lib/spad")), 0o700);
    let conffiles =
        std::fs::read_to_string(root.join("var/lib/dpkg/info/spa.conffiles")).expect("conffiles");
    assert!(
        conffiles.lines().any(|l| l == "/etc/spad.toml"),
        "{conffiles}"
    );

    // The installed spad checks the installed config (its two paths moved into the root).
    let config = std::fs::read_to_string(root.join("etc/spad.toml")).expect("config");
    let rooted = config
        .replace(
            "\"/etc/spad/keys.d\"",
            &format!("{:?}", root.join("etc/spad/keys.d").display().to_string()),
        )
        .replace(
            "\"/var/lib/spad\"",
            &format!("{:?}", root.join("var/lib/spad").display().to_string()),
        );
    assert_ne!(
        rooted, config,
        "the installed config no longer names its dirs"
    );
    let check_path = work.path().join("installed-spad.toml");
    std::fs::write(&check_path, rooted).expect("config copy");
    let check = run(Command::new(root.join("usr/sbin/spad"))
        .arg("--check")
        .arg("--config")
        .arg(&check_path));
    let said = stdout(&check);
    assert!(said.contains(": OK — server_id gw1.example.net"), "{said}");
    assert!(said.contains("warning: no active keys"), "{said}");

    // The installed unit, with the installed spad at /usr/sbin (a private mount
    // namespace: this machine's /usr/sbin is untouched).
    let unit = root.join("lib/systemd/system/spad.service");
    let verify = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind '{}' /usr/sbin && systemd-analyze verify --man=no '{}'",
            root.join("usr/sbin").display(),
            unit.display()
        ))
        .output()
        .expect("unshare + systemd-analyze (apt-get install systemd)");
    let verify_err = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && verify_err.trim().is_empty(),
        "systemd-analyze verify: {}\n{verify_err}",
        verify.status
    );
    // Documentation= names only what the package installed.
    let unit_text = std::fs::read_to_string(&unit).expect("unit");
    let docs = unit_text
        .lines()
        .find_map(|l| l.strip_prefix("Documentation="))
        .expect("Documentation=");
    for doc in docs.split_whitespace() {
        let installed = if let Some(page) = doc.strip_prefix("man:") {
            let (name, section) = page
                .trim_end_matches(')')
                .split_once('(')
                .expect("man:NAME(N)");
            root.join(format!("usr/share/man/man{section}/{name}.{section}.gz"))
        } else if let Some(file) = doc.strip_prefix("file://") {
            root.join(file.trim_start_matches('/'))
        } else {
            panic!("unexpected Documentation= entry {doc}")
        };
        assert!(
            installed.is_file(),
            "{doc}: {} is not installed",
            installed.display()
        );
    }

    // An upgrade keeps the administrator's /etc/spad.toml.
    let edited = config.replace(
        "server_id = \"gw1.example.net\"",
        "server_id = \"gw7.example.net\"",
    );
    std::fs::write(root.join("etc/spad.toml"), &edited).expect("edit");
    dpkg_install(&root, &deb);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/spad.toml")).expect("config"),
        edited
    );
    assert_eq!(mode(&root.join("etc/spad.toml")), 0o600);
}
