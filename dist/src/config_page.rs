//! spad.toml(5) from the annotated example config (conf/spad.toml, which a
//! test keeps valid): each setting with the comment above it, then the whole
//! example. The comments in that file are the config reference.

use crate::man::esc;

/// The shipped example config.
pub const EXAMPLE_CONFIG: &str = include_str!("../../conf/spad.toml");

/// One `key = value` line of the example with its comments.
#[derive(Debug, PartialEq, Eq)]
pub struct Setting {
    /// `[doors.ssh]` for door settings, empty for top-level ones.
    pub table: String,
    /// The key.
    pub key: String,
    /// The value as written in the example.
    pub example: String,
    /// The comment lines right above it and the comment after it.
    pub doc: Vec<String>,
}

/// The settings of the example, in order.
pub fn settings(example: &str) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut table = String::new();
    let mut comments: Vec<String> = Vec::new();
    for line in example.lines() {
        let t = line.trim();
        if let Some(c) = t.strip_prefix('#') {
            comments.push(c.trim().to_owned());
            continue;
        }
        if t.starts_with('[') {
            table = t.to_owned();
        } else if let Some((key, rest)) = t.split_once('=') {
            let (value, trailing) = match rest.split_once(" #") {
                Some((v, c)) => (v, Some(c.trim().to_owned())),
                None => (rest, None),
            };
            let mut doc = std::mem::take(&mut comments);
            doc.extend(trailing);
            out.push(Setting {
                table: table.clone(),
                key: key.trim().to_owned(),
                example: value.trim().to_owned(),
                doc,
            });
        }
        comments.clear();
    }
    out
}

/// The roff text of spad.toml(5).
pub fn render(example: &str) -> String {
    let mut out = format!(
        ".TH spad.toml 5 \"\" \"spa {}\" \"File Formats\"\n\
         .SH NAME\nspad.toml \\- configuration of spad, the single\\-packet\\-authorization daemon\n\
         .SH SYNOPSIS\n/etc/spad.toml\n\
         .SH DESCRIPTION\n\
         spad(8) reads its configuration from a TOML file, /etc/spad.toml unless \\fB\\-\\-config\\fR says otherwise. \
         Unknown keys are errors, reported as FILE:LINE:COL with the line and a caret; \
         \\fBspad \\-\\-check\\fR checks a file without starting anything. \
         \\fBsystemctl reload spad\\fR (SIGHUP) applies a changed file; server_id, state_dir, interfaces, \
         nft_table and control_socket take effect on restart.\n\
         .PP\nEach \\fB[doors.NAME]\\fR table is a door: the ports a valid packet opens, for the address it names, \
         and for how long. User keys live in keys_dir, one file per user, written by spa\\-keygen(1).\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut current = None;
    for s in settings(example) {
        if current.as_ref() != Some(&s.table) {
            let title = if s.table.is_empty() {
                "SETTINGS".to_owned()
            } else {
                format!("DOOR SETTINGS ({})", s.table)
            };
            out.push_str(&format!(".SH \"{}\"\n", esc(&title)));
            current = Some(s.table.clone());
        }
        out.push_str(&format!(
            ".TP\n\\fB{}\\fR = {}\n{}\n",
            esc(&s.key),
            esc(&s.example),
            esc(&s.doc.join(" "))
        ));
    }
    out.push_str(".SH EXAMPLE\nThe annotated example shipped as /etc/spad.toml:\n.PP\n.nf\n");
    for line in example.lines() {
        out.push_str(&esc(line));
        out.push('\n');
    }
    out.push_str(".fi\n.SH \"SEE ALSO\"\nspad(8), spa\\-keygen(1), spa\\-client(1)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_of_the_example_is_documented() {
        let all = settings(EXAMPLE_CONFIG);
        let top: Vec<&str> = all
            .iter()
            .filter(|s| s.table.is_empty())
            .map(|s| s.key.as_str())
            .collect();
        for key in [
            "server_id",
            "keys_dir",
            "state_dir",
            "port",
            "skew_secs",
            "stealth",
            "backend",
            "nft_table",
            "control_socket",
        ] {
            assert!(top.contains(&key), "{key} missing from {top:?}");
        }
        for s in &all {
            assert!(
                !s.doc.is_empty(),
                "{} has no comment in conf/spad.toml",
                s.key
            );
        }
        let max = all.iter().find(|s| s.key == "max_secs").expect("max_secs");
        assert_eq!(max.table, "[doors.ssh]");
        assert_eq!(max.doc, ["the longest a client may ask for"]);
    }

    #[test]
    fn the_page_has_its_sections_and_escapes_roff() {
        let page = render(EXAMPLE_CONFIG);
        assert!(page.starts_with(".TH spad.toml 5 "), "{page}");
        assert!(
            page.contains(".SH \"SETTINGS\"\n.TP\n\\fBserver_id\\fR = \"gw1.example.net\"\n"),
            "{page}"
        );
        assert!(
            page.contains(".SH \"DOOR SETTINGS ([doors.ssh])\"\n"),
            "{page}"
        );
        // No line of the example may start a roff request.
        assert!(!page.contains("\n.# "), "{page}");
        let settings = render("[t]\n.x = 1 # a\\b\n");
        assert!(
            settings.contains("\\fB\\&.x\\fR = 1\na\\eb\n"),
            "{settings}"
        );
    }
}
