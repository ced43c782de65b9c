//! A program's man page from its clap command (clap_mangen), with the
//! section it belongs in and a FILES/SEE ALSO tail that says where things live.

use std::io;

/// The roff text of the man page for `cmd` in `section`.
pub fn render(cmd: clap::Command, section: &str) -> io::Result<Vec<u8>> {
    let name = cmd.get_name().to_owned();
    let man = clap_mangen::Man::new(cmd)
        .section(section)
        .source(format!("spa {}", env!("CARGO_PKG_VERSION")))
        .manual(if section == "8" {
            "System Administration"
        } else {
            "User Commands"
        });
    let mut out = Vec::new();
    man.render(&mut out)?;
    out.extend_from_slice(tail(&name).as_bytes());
    Ok(out)
}

/// FILES and SEE ALSO for each program.
fn tail(name: &str) -> String {
    let (files, see_also) = match name {
        "spad" => (
            "/etc/spad.toml\tthe configuration, see spad.toml(5)\n\
             /etc/spad/keys.d\tone server entry per user (mode 0600), written by spa-keygen(1)\n\
             /var/lib/spad\treplay cache and open doors (survive a restart)\n\
             /run/spad/control.sock\tthe control socket of spad status and spad close",
            "spad.toml(5), spa-keygen(1), spa-client(1), fail2ban-client(1), systemctl(1)",
        ),
        "spa-keygen" => (
            "/etc/spad/keys.d\tthe default keys directory\n\
             USER.key\tthe client key file handed to the user (mode 0600)",
            "spad(8), spad.toml(5), spa-client(1)",
        ),
        _ => (
            "~/.spa/key\tthe default client key file (mode 0600)",
            "spa-keygen(1), spad(8)",
        ),
    };
    let mut out = String::from(".SH FILES\n");
    for line in files.lines() {
        let (path, what) = line.split_once('\t').unwrap_or((line, ""));
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", esc(path), esc(what)));
    }
    out.push_str(&format!(
        ".SH \"SEE ALSO\"\n{}\n.PP\n/usr/share/doc/spa/operating.md\n",
        esc(see_also)
    ));
    out
}

/// Escapes text for roff: backslashes, and a leading dot or quote.
pub fn esc(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}
