//! `spad status` / `spad close` over the real control socket, as root and as
//! `nobody`: the socket's owner and mode, a non-root peer refused (by the
//! file mode, and by SO_PEERCRED when the mode is loosened), a member of the
//! socket's group let in, and what the commands print. The main loop is a
//! thread answering from a canned Status.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;

use spa_e2e::bins::workspace_bin;
use spad::control::{
    Access, CaptureStatus, ClosedDoor, ControlListener, ControlReply, ControlRequest,
    OpenDoorStatus, Request, Status,
};

fn canned() -> Status {
    Status {
        server_id: "gw1.example.net".into(),
        started_unix: 1_764_587_899,
        open_doors: vec![OpenDoorStatus {
            door: "ssh".into(),
            address: "198.51.100.7".parse().expect("address"),
            user: "alice".into(),
            backend: "nftables".into(),
            seconds_left: 27,
        }],
        granted: 3,
        refused: BTreeMap::from([("hint".to_owned(), 12)]),
        overload: 0,
        capture: CaptureStatus {
            received: 40,
            dropped: 0,
        },
        keys_loaded: 2,
        last_reload: None,
    }
}

/// Binds a socket in a directory `nobody` can traverse, answered by a fake main loop.
fn serve(access: Access) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = dir.path().join("control.sock");
    let listener = ControlListener::bind(&path, access).expect("bind");
    let (tx, rx) = mpsc::channel::<ControlRequest>();
    std::thread::spawn(move || {
        for req in rx {
            let reply = match req.kind {
                Request::Status => ControlReply::Status(canned()),
                Request::Close { door, addr } => ControlReply::Closed {
                    closed: vec![ClosedDoor { door, addr }],
                },
                Request::CloseAll => ControlReply::Closed { closed: vec![] },
            };
            let _ = req.reply.send(reply);
        }
    });
    listener.spawn(move |r| tx.send(r).is_ok()).expect("spawn");
    (dir, path)
}

fn spad(args: &[&str], socket: &Path, as_nobody: bool) -> Output {
    let bin = workspace_bin("spad").expect("spad binary");
    let mut cmd = if as_nobody {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    cmd.args(args).arg("--socket").arg(socket);
    cmd.output().expect("running spad")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn root_only() -> Access {
    Access {
        owner_uid: 0,
        group: None,
    }
}

#[test]
#[ignore = "needs root"]
fn root_sees_the_table_json_and_prometheus_and_can_close() {
    let (_dir, sock) = serve(root_only());
    let out = spad(&["status"], &sock, false);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("DOOR  ADDRESS       USER   BACKEND   SECONDS LEFT")
    );
    assert_eq!(
        lines.next(),
        Some("ssh   198.51.100.7  alice  nftables  27")
    );
    assert!(stdout.contains("keys loaded:  2\n"), "{stdout}");
    assert!(
        stdout.contains("last reload:  none since start\n"),
        "{stdout}"
    );

    let out = spad(&["status", "--json"], &sock, false);
    let (stdout, _) = text(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(v["server_id"], "gw1.example.net");
    assert_eq!(v["open_doors"][0]["address"], "198.51.100.7");
    assert_eq!(v["open_doors"][0]["user"], "alice");
    assert_eq!(v["open_doors"][0]["backend"], "nftables");
    assert_eq!(v["open_doors"][0]["seconds_left"], 27);
    assert_eq!(v["refused"]["hint"], 12);
    assert_eq!(v["keys_loaded"], 2);
    assert!(v["last_reload"].is_null());
    assert!(v.get("reply").is_none(), "--json prints the Status itself");

    let out = spad(&["status", "--prometheus"], &sock, false);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("spad_refused_total{reason=\"hint\"} 12\n"),
        "{stdout}"
    );

    let out = spad(&["close", "ssh", "198.51.100.7"], &sock, false);
    assert!(out.status.success());
    assert_eq!(text(&out).0, "closed ssh for 198.51.100.7\n");
    let out = spad(&["close", "--all"], &sock, false);
    assert_eq!(text(&out).0, "no doors were open\n");
}

#[test]
#[ignore = "needs root"]
fn the_socket_is_root_only_and_nobody_is_refused() {
    let (_dir, sock) = serve(Access::from_system());
    let meta = std::fs::metadata(&sock).expect("socket");
    assert_eq!(meta.uid(), 0, "owned by root");
    let mode = meta.permissions().mode() & 0o777;
    assert!(mode == 0o600 || mode == 0o660, "mode {mode:o}");
    assert_eq!(mode & 0o007, 0, "nothing for others");

    // The file mode stops nobody at connect().
    let out = spad(&["status"], &sock, true);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("cannot reach spad at") && stderr.contains("Permission denied"),
        "{stderr}"
    );

    // Loosened by hand: SO_PEERCRED still refuses.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let out = spad(&["close", "--all"], &sock, true);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("permission denied: uid 65534 is neither root nor in group spad"),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs root"]
fn a_member_of_the_socket_group_may_ask() {
    // nobody's primary group stands in for `spad`.
    let (_dir, sock) = serve(Access {
        owner_uid: 0,
        group: Some((65534, vec![])),
    });
    let meta = std::fs::metadata(&sock).expect("socket");
    assert_eq!((meta.uid(), meta.gid()), (0, 65534));
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let out = spad(&["status", "--json"], &sock, true);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("\"door\": \"ssh\""), "{stdout}");
}
