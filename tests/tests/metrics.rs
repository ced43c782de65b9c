//! The opt-in Prometheus listener from outside: spad started with
//! `metrics_listen` on loopback serves `GET /metrics` inside its network
//! namespace with the same text `spad status --prometheus` prints (counters
//! included), 404 for other paths; `spad --check` refuses a listener that is
//! not on loopback, naming the line and column. Root only.

use std::process::Command;
use std::time::Duration;

use spa_e2e::bins::workspace_bin;
use spa_e2e::lab::Lab;
use spa_e2e::probe::udp_send;
use spa_e2e::spad::{check_config, Backend, Spad};
use spa_e2e::{E2eError, Result};

fn io(what: &str) -> impl FnOnce(std::io::Error) -> E2eError + '_ {
    move |source| E2eError::Io {
        what: what.to_owned(),
        source,
    }
}

/// One HTTP/1.0 GET to 127.0.0.1:9105 from inside the server's namespace (bash's /dev/tcp).
fn get(lab: &Lab, path: &str) -> Result<String> {
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/9105 && printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
    );
    lab.server.run("bash", ["-c", &script])
}

#[test]
#[ignore = "needs root"]
fn the_listener_serves_the_status_counters_on_loopback() -> Result<()> {
    let lab = Lab::new()?;
    let _alice = lab.issue_key("alice", &["ssh"])?;
    let config = lab.config(Backend::Nftables, 1);
    lab.prepare_backend(config.backend)?;
    // A top-level key goes before the first [doors.*] table.
    let text = format!("metrics_listen = \"127.0.0.1:9105\"\n{}", config.to_toml());
    std::fs::write(lab.config_path(), text).map_err(io("writing the config"))?;
    let mut spad = Spad::start_with_env(
        &lab.server,
        &lab.config_path(),
        &[("JOURNAL_STREAM", "8:1")],
    )?;
    spad.wait_for_log("the metrics line", Duration::from_secs(3), |l| {
        l == "<6>metrics on http://127.0.0.1:9105/metrics"
    })?;
    udp_send(
        &lab.laptop,
        &spa_e2e::craft::random_bytes(100)?,
        lab.spa_addr(),
        lab.dir.path(),
    )?;
    spad.wait_for_log("the hint refusal", Duration::from_secs(3), |l| {
        l.contains("reason=hint count=1")
    })?;

    let response = get(&lab, "/metrics")?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        body.contains("spad_refused_total{reason=\"hint\"} 1\n"),
        "{body}"
    );
    assert!(body.contains("spad_keys_loaded 1\n"), "{body}");
    let socket = lab.state_dir().with_file_name("control.sock");
    let out = Command::new(workspace_bin("spad")?)
        .args(["status", "--prometheus", "--socket"])
        .arg(&socket)
        .output()
        .map_err(io("running spad status"))?;
    assert_eq!(
        body,
        String::from_utf8_lossy(&out.stdout),
        "the listener and `spad status --prometheus` differ"
    );
    let response = get(&lab, "/")?;
    assert!(
        response.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{response}"
    );
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn check_refuses_a_listener_off_loopback() -> Result<()> {
    let lab = Lab::new()?;
    let config = lab.config(Backend::Nftables, 1);
    let text = format!("metrics_listen = \"0.0.0.0:9105\"\n{}", config.to_toml());
    std::fs::write(lab.config_path(), text).map_err(io("writing the config"))?;
    let out = check_config(&lab.config_path())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let want = format!(
        "{}:1:18: metrics_listen: 0.0.0.0 is not a loopback address",
        lab.config_path().display()
    );
    assert!(stderr.contains(&want), "{stderr}");
    Ok(())
}
