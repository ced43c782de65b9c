//! spa-keygen: issues, extends, changes, lists and revokes spa user keys. A thin
//! command line over `spa_keys`: it reads the OS CSPRNG and the clock, writes
//! 0600 files, and prints where it wrote them — never a secret.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;
use ring::rand::{SecureRandom, SystemRandom};
use spa_keygen::cli::{
    AddGatewayArgs, Cli, Command, EntryArgs, Expiry, IssueArgs, ListArgs, RevokeArgs, SetArgs,
};
use spa_keys::{
    check_user_name, edit_server_entry, entry_path, load_client_key, load_server_entry,
    scan_keys_dir, write_secret_file, ClientKey, EntryChanges, Gateway, ServerEntry,
};
use spa_proto::{SecretBytes, UserSecret};
use zeroize::Zeroize;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Issue(a) => issue(a),
        Command::AddGateway(a) => add_gateway(a),
        Command::List(a) => list(a),
        Command::Set(a) => set(a),
        Command::Revoke(a) => revoke(a),
        Command::EnrolKey(a) => spa_keygen::enrol_cli::enrol_key(&a, &mut std::io::stdout())
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Accept(a) => spa_keygen::enrol_cli::accept(&a, &mut std::io::stdout())
            .map(|_| ExitCode::SUCCESS)
            .map_err(Into::into),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("spa-keygen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn issue(a: IssueArgs) -> Result<ExitCode> {
    check_user_name(&a.user).context("--user")?;
    let e = &a.entry;
    check_entry_args(e)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.key", a.user)));
    let entry_file = entry_path(&e.keys_dir, &a.user);
    require_dir(&e.keys_dir)?;
    if !e.force {
        refuse_existing(&out, "client key file")?;
        refuse_existing(&entry_file, "server entry")?;
    }

    let secret = new_user_secret()?;
    let entry = server_entry(e, &a.user, &secret, entry_file.clone());
    let client = ClientKey {
        user: a.user.clone(),
        secret,
        gateways: vec![gateway(e)],
        path: out.clone(),
    };
    write_secret_file(&entry_file, &entry.to_toml(), e.force)
        .with_context(|| format!("writing server entry {}", entry_file.display()))?;
    if let Err(err) = write_secret_file(&out, &client.to_toml(), e.force) {
        if !e.force {
            // Do not leave a gateway entry whose secret nobody holds.
            let _ = fs::remove_file(&entry_file);
        }
        return Err(err).with_context(|| format!("writing client key file {}", out.display()));
    }
    println!(
        "wrote server entry for {} on {}: {} (mode 0600)",
        a.user,
        e.server_id,
        entry_file.display()
    );
    println!(
        "wrote client key file for {}: {} (mode 0600)",
        a.user,
        out.display()
    );
    println!(
        "next: give {} to {} over a safe channel (it holds their secret); reload spad on {} \
         (systemctl reload spad, or SIGHUP) to pick up the entry.",
        out.display(),
        a.user,
        e.server_id
    );
    Ok(ExitCode::SUCCESS)
}

fn add_gateway(a: AddGatewayArgs) -> Result<ExitCode> {
    let e = &a.entry;
    check_entry_args(e)?;
    let mut client = load_client_key(&a.key)
        .with_context(|| format!("reading client key file {}", a.key.display()))?;
    let existing = client
        .gateways
        .iter()
        .position(|g| g.server_id == e.server_id);
    if existing.is_some() && !e.force {
        bail!(
            "{} already has gateway {}; pass --force to replace it",
            a.key.display(),
            e.server_id
        );
    }
    require_dir(&e.keys_dir)?;
    let entry_file = entry_path(&e.keys_dir, &client.user);
    if !e.force && entry_file.exists() {
        let held = match load_server_entry(&entry_file) {
            Ok(old) => format!(" (it holds {}'s entry for {})", old.user, old.server_id),
            Err(_) => String::new(),
        };
        bail!(
            "server entry {} already exists{held}; use the keys dir of gateway {} (--keys-dir), \
             or pass --force to overwrite it",
            entry_file.display(),
            e.server_id
        );
    }

    let entry = server_entry(e, &client.user, &client.secret, entry_file.clone());
    match existing {
        Some(i) => client.gateways[i] = gateway(e),
        None => client.gateways.push(gateway(e)),
    }
    write_secret_file(&entry_file, &entry.to_toml(), e.force)
        .with_context(|| format!("writing server entry {}", entry_file.display()))?;
    write_secret_file(&a.key, &client.to_toml(), true)
        .with_context(|| format!("rewriting client key file {}", a.key.display()))?;
    println!(
        "wrote server entry for {} on {}: {} (mode 0600)",
        client.user,
        e.server_id,
        entry_file.display()
    );
    println!(
        "added gateway {} to client key file {} (mode 0600)",
        e.server_id,
        a.key.display()
    );
    println!(
        "next: reload spad on {} (systemctl reload spad, or SIGHUP); the user picks it with \
         spa-client --server-id {}.",
        e.server_id, e.server_id
    );
    Ok(ExitCode::SUCCESS)
}

fn list(a: ListArgs) -> Result<ExitCode> {
    let dir = &a.keys_dir;
    let files = scan_keys_dir(dir).context("listing keys")?;
    let now_ms = now_ms()?;
    let mut rows = vec![[
        "USER".to_string(),
        "SERVER_ID".into(),
        "DOORS".into(),
        "EXPIRES".into(),
        "OBSERVED".into(),
        "STATUS".into(),
    ]];
    let mut broken = 0usize;
    for path in &files.files {
        match load_server_entry(path) {
            Ok(en) => rows.push([
                en.user.clone(),
                en.server_id.to_string(),
                en.doors
                    .iter()
                    .map(|d| d.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                en.expires
                    .map_or_else(|| "never".to_string(), |d| d.to_string()),
                if en.allow_observed { "yes" } else { "no" }.to_string(),
                en.status_at(now_ms).to_string(),
            ]),
            Err(err) => {
                broken += 1;
                eprintln!("spa-keygen: error: {err}");
            }
        }
    }
    for (path, reason) in &files.skipped {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden {
            eprintln!("note: skipped {}: {reason}", path.display());
        }
    }
    if rows.len() == 1 {
        if broken == 0 {
            println!("no entries in {}", dir.display());
            return Ok(ExitCode::SUCCESS);
        }
        rows.clear();
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
    if broken > 0 {
        eprintln!("spa-keygen: {broken} entry file(s) in {} could not be read; fix them: loading this keys directory fails until then", dir.display());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The entry file of `user` in `keys_dir`, which must exist.
fn existing_entry(keys_dir: &Path, user: &str) -> Result<PathBuf> {
    check_user_name(user).context("--user")?;
    require_dir(keys_dir)?;
    let path = entry_path(keys_dir, user);
    if !path.exists() {
        bail!(
            "no entry for user {user} in {} (no file {}); see: spa-keygen list --keys-dir {}",
            keys_dir.display(),
            path.display(),
            keys_dir.display()
        );
    }
    Ok(path)
}

fn revoke(a: RevokeArgs) -> Result<ExitCode> {
    let path = existing_entry(&a.keys_dir, &a.user)?;
    if a.delete {
        fs::remove_file(&path).with_context(|| format!("deleting {}", path.display()))?;
        fs::File::open(&a.keys_dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", a.keys_dir.display()))?;
        println!(
            "deleted {}; spad drops {}'s key on reload (systemctl reload spad, or SIGHUP).",
            path.display(),
            a.user
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut entry = load_server_entry(&path)
        .with_context(|| format!("reading server entry {}", path.display()))?;
    if entry.revoked {
        println!(
            "{} on {} is already revoked ({}).",
            a.user,
            entry.server_id,
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let changes = EntryChanges {
        revoked: Some(true),
        ..EntryChanges::default()
    };
    entry = edit_server_entry(&path, &changes)
        .with_context(|| format!("rewriting server entry {}", path.display()))?;
    println!(
        "revoked {} on {}: {} now says revoked = true; spad picks it up on reload \
         (systemctl reload spad, or SIGHUP).",
        a.user,
        entry.server_id,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn set(a: SetArgs) -> Result<ExitCode> {
    let path = existing_entry(&a.keys_dir, &a.user)?;
    if a.doors.as_ref().is_some_and(Vec::is_empty) {
        bail!(
            "--doors needs at least one door (to stop a key opening anything: spa-keygen revoke)"
        );
    }
    if let Some(Expiry(Some(day))) = a.expires {
        check_not_past(day)?;
    }
    let changes = EntryChanges {
        doors: a.doors,
        expires: a.expires.map(|e| e.0),
        allow_observed: a.allow_observed,
        revoked: None,
    };
    if changes.is_empty() {
        bail!("nothing to change: give --doors, --expires or --allow-observed");
    }
    let entry = edit_server_entry(&path, &changes)
        .with_context(|| format!("changing server entry {}", path.display()))?;
    let doors: Vec<&str> = entry.doors.iter().map(|d| d.as_str()).collect();
    println!(
        "changed {} on {} ({}): doors {}, expires {}, allow_observed {}{}",
        entry.user,
        entry.server_id,
        path.display(),
        doors.join(","),
        entry
            .expires
            .map_or_else(|| "never".to_owned(), |d| d.to_string()),
        if entry.allow_observed { "yes" } else { "no" },
        if entry.revoked {
            " (still revoked)"
        } else {
            ""
        }
    );
    println!("spad picks it up on reload (systemctl reload spad, or SIGHUP).");
    Ok(ExitCode::SUCCESS)
}

fn check_not_past(day: time::Date) -> Result<()> {
    let today = time::OffsetDateTime::now_utc().date();
    if day < today {
        bail!("--expires {day} is in the past (today is {today} UTC); the key would never work");
    }
    Ok(())
}

/// Cross-field checks clap cannot express.
fn check_entry_args(e: &EntryArgs) -> Result<()> {
    for (door, _) in &e.knock {
        if !e.doors.contains(door) {
            bail!("--knock names door {door}, which is not in --doors; add it to --doors");
        }
    }
    if let Some(host) = &e.host {
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            bail!("--host {host:?} must be a host name or IP address without spaces");
        }
    }
    let mut seen = BTreeMap::new();
    for (door, k) in &e.knock {
        if seen.insert(door, k).is_some() {
            bail!("--knock is given twice for door {door}");
        }
    }
    if let Some(day) = e.expires {
        check_not_past(day)?;
    }
    Ok(())
}

fn require_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        bail!(
            "keys directory {} does not exist; create it with: install -d -m 700 {} (or pass --keys-dir)",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

fn refuse_existing(path: &Path, what: &str) -> Result<()> {
    if path.exists() {
        bail!(
            "{what} {} already exists; nothing was written. Pass --force to overwrite it \
             (the key it holds stops working).",
            path.display()
        );
    }
    Ok(())
}

fn new_user_secret() -> Result<UserSecret> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the operating system's random number generator failed"))?;
    let secret = UserSecret::new(SecretBytes::new(bytes));
    bytes.zeroize();
    Ok(secret)
}

fn server_entry(e: &EntryArgs, user: &str, secret: &UserSecret, path: PathBuf) -> ServerEntry {
    ServerEntry {
        user: user.to_owned(),
        server_id: e.server_id.clone(),
        key: secret.server_key(&e.server_id),
        doors: e.doors.iter().fold(Vec::new(), |mut doors, d| {
            if !doors.contains(d) {
                doors.push(d.clone());
            }
            doors
        }),
        expires: e.expires,
        allow_observed: e.allow_observed,
        revoked: false,
        path,
    }
}

fn gateway(e: &EntryArgs) -> Gateway {
    Gateway {
        server_id: e.server_id.clone(),
        host: e.host.clone(),
        port: e.port,
        knock: e.knock.iter().cloned().collect(),
    }
}

fn now_ms() -> Result<u64> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    Ok(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}
