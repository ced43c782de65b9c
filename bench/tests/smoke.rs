//! The CI-sized run of the harness (root only: namespaces, firewall): every
//! scenario at small scale against spad, fwknopd and spad serving fwknopd's
//! packets, so the harness cannot rot. It checks what the full run reports, with loose bounds (a debug
//! build on a busy CI machine): spad opens every knock, the flood costs no
//! capture drops, every grant opens and closes, spad sleeps when idle, and
//! the namespaces are gone afterwards.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use spa_bench::scenarios::{Bench, Settings};
use spa_bench::stats::percentile;
use spa_bench::targets::Kind;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// `target/<profile>/`, where cargo put `spad` and `spa-keygen`, built fresh.
fn bin_dir() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or("cannot find the target dir")?
        .to_path_buf();
    if std::env::var_os("SPA_BENCH_NO_BUILD").is_none() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "--bins",
            "-p",
            "spad",
            "-p",
            "spa-keygen",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        if let Some(target) = dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let out = cmd.output()?;
        if !out.status.success() {
            return Err(format!(
                "building spad and spa-keygen failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
    }
    Ok(dir)
}

fn our_namespaces() -> Vec<String> {
    let prefix = format!("spa-bench-{}-", std::process::id());
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "needs root"]
fn smoke_run_measures_spad_and_fwknopd_and_cleans_up() -> TestResult {
    let mut settings = Settings::smoke();
    settings.targets = vec![Kind::Spad, Kind::Fwknopd, Kind::SpadFwknop];
    settings.fwknop_grants = 5;
    let bench = Bench::new(settings.clone(), &bin_dir()?)?;
    let reports = bench.run_all(&|step| eprintln!("smoke: {step}"));
    let spad = &reports[0];
    assert!(
        spad.errors.is_empty(),
        "spad scenarios failed: {:?}",
        spad.errors
    );

    let latency = spad.latency.as_ref().ok_or("no latency measured")?;
    assert_eq!(latency.opened(), settings.knocks, "{latency:?}");
    let p99 = percentile(&latency.to_rule(), 99.0).ok_or("no firewall change seen")?;
    assert!(p99 < Duration::from_secs(1), "knock → rule p99 {p99:?}");

    for flood in spad.junk.iter().chain(&spad.replay) {
        assert_eq!(flood.latency.opened(), settings.flood_tries, "{flood:?}");
        let capture = flood.capture.ok_or("spad reported no capture counters")?;
        assert_eq!(capture.dropped, 0, "{flood:?}");
        assert!(
            capture.received > 100,
            "the flood never reached spad: {flood:?}"
        );
    }
    assert_eq!(spad.junk.len(), 1);
    assert_eq!(spad.replay.len(), 1);

    let grants = spad.grants.as_ref().ok_or("no grants measured")?;
    assert_eq!(grants.sent, settings.grants);
    assert_eq!(grants.granted, settings.grants, "{grants:?}");
    assert_eq!(grants.still_open_after_1s, 0, "{grants:?}");

    let idle = spad.idle.ok_or("no idle measurement")?;
    assert!(
        idle.wakeups_per_sec < 2.0,
        "spad wakes up when idle: {idle:?}"
    );
    assert!(idle.rss_kib > 0);

    // fwknopd runs on the same network: its knocks open too (it is slower, not broken).
    let fwknopd = &reports[1];
    assert!(
        fwknopd.errors.is_empty(),
        "fwknopd scenarios failed: {:?}",
        fwknopd.errors
    );
    let fw = fwknopd.latency.as_ref().ok_or("no fwknopd latency")?;
    assert_eq!(fw.opened(), settings.knocks, "{fw:?}");

    // spad serving the same fwknop client packets: every knock and grant opens.
    let spad_fwknop = &reports[2];
    assert_eq!(spad_fwknop.kind, Kind::SpadFwknop);
    assert!(
        spad_fwknop.errors.is_empty(),
        "spad-fwknop scenarios failed: {:?}",
        spad_fwknop.errors
    );
    let sf = spad_fwknop
        .latency
        .as_ref()
        .ok_or("no spad-fwknop latency")?;
    assert_eq!(sf.opened(), settings.knocks, "{sf:?}");
    for flood in spad_fwknop.junk.iter().chain(&spad_fwknop.replay) {
        assert_eq!(flood.latency.opened(), settings.flood_tries, "{flood:?}");
        let capture = flood
            .capture
            .ok_or("spad-fwknop reported no capture counters")?;
        assert_eq!(capture.dropped, 0, "{flood:?}");
    }
    let grants = spad_fwknop.grants.as_ref().ok_or("no spad-fwknop grants")?;
    assert_eq!(grants.granted, settings.fwknop_grants, "{grants:?}");
    assert_eq!(grants.still_open_after_1s, 0, "{grants:?}");

    let table = spa_bench::report::table(&reports, &settings);
    assert!(
        table.contains("| 1. knock → firewall rule, p50 |"),
        "{table}"
    );
    assert!(table.starts_with(spa_bench::report::HEADER), "{table}");
    assert!(table.lines().count() > 20, "{table}");

    drop(bench);
    assert!(
        our_namespaces().is_empty(),
        "left behind: {:?}",
        our_namespaces()
    );
    Ok(())
}
