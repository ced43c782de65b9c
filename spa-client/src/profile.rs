//! Client profiles: `~/.spa/config.toml` and `/etc/spa/client.toml`, a
//! `[defaults]` table and `[[host]]` blocks in the spirit of ssh_config's
//! `Host`. Owns that TOML format: parsing it (errors as file:line:col with a
//! caret, by spa-keys' renderer), matching a HOST against block names, and
//! where each value came from. Which value wins is `settings`' job.

use std::fmt;
use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use spa_keys::{located_error, parse_error, DoorField, KeyFileError, PortField, ServerIdField};
use spa_proto::{DoorName, ServerId};
use toml::Spanned;

use crate::target::HostSpec;

/// The user's profile file, under `$HOME`.
pub const USER_CONFIG: &str = ".spa/config.toml";
/// The machine's profile file.
pub const SYSTEM_CONFIG: &str = "/etc/spa/client.toml";

/// Which address families to knock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FamilyChoice {
    /// The resolver's first address (what ssh tries first).
    Any,
    /// IPv4 only.
    Ipv4,
    /// IPv6 only.
    Ipv6,
    /// One packet per family.
    Both,
}

impl fmt::Display for FamilyChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FamilyChoice::Any => "any",
            FamilyChoice::Ipv4 => "ipv4",
            FamilyChoice::Ipv6 => "ipv6",
            FamilyChoice::Both => "both",
        })
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag or argument.
    CommandLine,
    /// A profile file: its path, the value's line, and the block.
    File {
        /// The profile file.
        path: PathBuf,
        /// 1-based line of the value.
        line: usize,
        /// `[[host]] gw1` or `[defaults]`.
        block: String,
    },
    /// The key file's `[[gateway]]`.
    KeyFile(PathBuf),
    /// spa-client's own default.
    BuiltIn,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::CommandLine => f.write_str("command line"),
            Origin::File { path, line, block } => {
                write!(f, "{}:{line} ({block})", path.display())
            }
            Origin::KeyFile(p) => write!(f, "key file {}", p.display()),
            Origin::BuiltIn => f.write_str("built-in default"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The value.
    pub value: T,
    /// Its origin.
    pub origin: Origin,
}

impl<T> Setting<T> {
    /// A value from the command line.
    pub fn flag(value: T) -> Self {
        Setting {
            value,
            origin: Origin::CommandLine,
        }
    }

    /// A built-in default.
    pub fn built_in(value: T) -> Self {
        Setting {
            value,
            origin: Origin::BuiltIn,
        }
    }
}

/// Settings one source gives; `None` where it says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    /// Where to send: the real host name or address (ssh's HostName).
    pub hostname: Option<Setting<HostSpec>>,
    /// The gateway's SPA port.
    pub port: Option<Setting<u16>>,
    /// The client key file.
    pub key: Option<Setting<PathBuf>>,
    /// Which gateway of the key file.
    pub server_id: Option<Setting<ServerId>>,
    /// The door to open when none is typed.
    pub door: Option<Setting<DoorName>>,
    /// Seconds to ask for.
    pub seconds: Option<Setting<u16>>,
    /// Address families.
    pub family: Option<Setting<FamilyChoice>>,
    /// Ask for the observed address.
    pub observed: Option<Setting<bool>>,
    /// Wait for this TCP port after sending.
    pub wait: Option<Setting<u16>>,
    /// How long to wait, in seconds.
    pub wait_timeout: Option<Setting<u64>>,
}

impl Layer {
    /// Each setting of `self`, else of `lower`.
    pub fn over(self, lower: Layer) -> Layer {
        Layer {
            hostname: self.hostname.or(lower.hostname),
            port: self.port.or(lower.port),
            key: self.key.or(lower.key),
            server_id: self.server_id.or(lower.server_id),
            door: self.door.or(lower.door),
            seconds: self.seconds.or(lower.seconds),
            family: self.family.or(lower.family),
            observed: self.observed.or(lower.observed),
            wait: self.wait.or(lower.wait),
            wait_timeout: self.wait_timeout.or(lower.wait_timeout),
        }
    }
}

/// One profile file, parsed.
#[derive(Debug, Clone, Default)]
pub struct ProfileFile {
    /// The file.
    pub path: PathBuf,
    /// `[defaults]`.
    pub defaults: Layer,
    /// `[[host]]` blocks in file order, each with its name patterns.
    pub hosts: Vec<(Vec<String>, Layer)>,
}

impl ProfileFile {
    /// What this file says for `host` (the name typed, `None` when none
    /// was): matching `[[host]]` blocks in order (the first value wins), then
    /// `[defaults]`.
    pub fn layer_for(&self, host: Option<&str>) -> Layer {
        let mut layer = Layer::default();
        if let Some(host) = host {
            for (names, block) in &self.hosts {
                if names.iter().any(|n| pattern_matches(n, host)) {
                    layer = layer.over(block.clone());
                }
            }
        }
        layer.over(self.defaults.clone())
    }
}

/// Why a profile file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The file exists but cannot be read.
    #[error("{}: reading: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file's contents are wrong (file:line:col with a caret).
    #[error(transparent)]
    Parse(#[from] KeyFileError),
}

/// Loads a profile file; one that does not exist is empty.
pub fn load_profile(path: &Path, home: Option<&Path>) -> Result<ProfileFile, ProfileError> {
    match fs::read_to_string(path) {
        Ok(text) => parse_profile(path, &text, home),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ProfileFile {
            path: path.to_owned(),
            ..ProfileFile::default()
        }),
        Err(source) => Err(ProfileError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileToml {
    defaults: Option<BlockToml>,
    #[serde(default)]
    host: Vec<Spanned<BlockToml>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Names {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockToml {
    name: Option<Spanned<Names>>,
    hostname: Option<Spanned<String>>,
    port: Option<Spanned<PortField>>,
    key: Option<Spanned<String>>,
    server_id: Option<Spanned<ServerIdField>>,
    door: Option<Spanned<DoorField>>,
    seconds: Option<Spanned<u16>>,
    family: Option<Spanned<FamilyChoice>>,
    observed: Option<Spanned<bool>>,
    wait: Option<Spanned<u16>>,
    wait_timeout: Option<Spanned<u64>>,
}

/// Parses a profile file's text; `home` expands `~/` in `key`.
pub fn parse_profile(
    path: &Path,
    text: &str,
    home: Option<&Path>,
) -> Result<ProfileFile, ProfileError> {
    let file: ProfileToml = toml::from_str(text).map_err(|e| parse_error(path, text, &e))?;
    let at = |span: Range<usize>, message: String| located_error(path, text, Some(span), message);
    let mut out = ProfileFile {
        path: path.to_owned(),
        ..ProfileFile::default()
    };
    if let Some(block) = file.defaults {
        if let Some(name) = &block.name {
            return Err(at(
                name.span(),
                "[defaults] applies to every host and takes no name; put named settings in a [[host]] block".into(),
            )
            .into());
        }
        out.defaults = to_layer(path, text, block, "[defaults]", home)?;
    }
    for spanned in file.host {
        let span = spanned.span();
        let mut block = spanned.into_inner();
        let Some(name) = block.name.take() else {
            return Err(at(
                span.start..span.start,
                "this [[host]] block has no name: add name = \"ALIAS\" (or a list; * and ? match any text)".into(),
            )
            .into());
        };
        let name_span = name.span();
        let names = match name.into_inner() {
            Names::One(n) => vec![n],
            Names::Many(v) => v,
        };
        if names.is_empty()
            || names
                .iter()
                .any(|n| n.is_empty() || n.contains(char::is_whitespace))
        {
            return Err(at(
                name_span,
                "name must be a host alias or pattern without spaces, or a non-empty list of them"
                    .into(),
            )
            .into());
        }
        let label = format!("[[host]] {}", names.join(", "));
        let layer = to_layer(path, text, block, &label, home)?;
        out.hosts.push((names, layer));
    }
    Ok(out)
}

fn to_layer(
    path: &Path,
    text: &str,
    block: BlockToml,
    label: &str,
    home: Option<&Path>,
) -> Result<Layer, ProfileError> {
    let at = |span: Range<usize>, message: String| located_error(path, text, Some(span), message);
    let origin = |span: &Range<usize>| Origin::File {
        path: path.to_owned(),
        line: text[..span.start.min(text.len())].matches('\n').count() + 1,
        block: label.to_owned(),
    };
    fn set<T, U>(
        s: Spanned<T>,
        origin: impl Fn(&Range<usize>) -> Origin,
        f: impl FnOnce(T) -> U,
    ) -> Setting<U> {
        let o = origin(&s.span());
        Setting {
            value: f(s.into_inner()),
            origin: o,
        }
    }
    let hostname = match block.hostname {
        Some(h) => {
            let span = h.span();
            let spec: HostSpec = h
                .get_ref()
                .parse()
                .map_err(|e: crate::target::HostSpecError| at(span.clone(), e.to_string()))?;
            Some(Setting {
                value: spec,
                origin: origin(&span),
            })
        }
        None => None,
    };
    let key = match block.key {
        Some(k) => {
            let span = k.span();
            let raw = k.into_inner();
            let expanded = expand_path(&raw, path, home).map_err(|m| at(span.clone(), m))?;
            Some(Setting {
                value: expanded,
                origin: origin(&span),
            })
        }
        None => None,
    };
    for (value, span, what) in [
        (
            block.seconds.as_ref().map(|s| u64::from(*s.get_ref())),
            block.seconds.as_ref().map(Spanned::span),
            "seconds",
        ),
        (
            block.wait.as_ref().map(|s| u64::from(*s.get_ref())),
            block.wait.as_ref().map(Spanned::span),
            "wait",
        ),
        (
            block.wait_timeout.as_ref().map(|s| *s.get_ref()),
            block.wait_timeout.as_ref().map(Spanned::span),
            "wait_timeout",
        ),
    ] {
        if let (Some(0), Some(span)) = (value, span) {
            return Err(at(span, format!("{what} must be at least 1")).into());
        }
    }
    if let Some(t) = &block.wait_timeout {
        if *t.get_ref() > 3600 {
            return Err(at(t.span(), "wait_timeout must be at most 3600 seconds".into()).into());
        }
    }
    Ok(Layer {
        hostname,
        port: block.port.map(|p| set(p, origin, |p| p.0)),
        key,
        server_id: block.server_id.map(|s| set(s, origin, |s| s.0)),
        door: block.door.map(|d| set(d, origin, |d| d.0)),
        seconds: block.seconds.map(|s| set(s, origin, |s| s)),
        family: block.family.map(|s| set(s, origin, |s| s)),
        observed: block.observed.map(|s| set(s, origin, |s| s)),
        wait: block.wait.map(|s| set(s, origin, |s| s)),
        wait_timeout: block.wait_timeout.map(|s| set(s, origin, |s| s)),
    })
}

/// `~/x` under `home`; a relative path is relative to the profile file's directory.
fn expand_path(raw: &str, profile: &Path, home: Option<&Path>) -> Result<PathBuf, String> {
    if raw.is_empty() {
        return Err("key must name a file".into());
    }
    if let Some(rest) = raw.strip_prefix("~/") {
        return home
            .map(|h| h.join(rest))
            .ok_or_else(|| "key starts with ~/ but $HOME is not set".to_owned());
    }
    let p = Path::new(raw);
    if p.is_absolute() {
        Ok(p.to_owned())
    } else {
        Ok(profile.parent().unwrap_or(Path::new("/")).join(p))
    }
}

/// ssh_config-style patterns: `*` any text, `?` one character; case-insensitive.
pub fn pattern_matches(pattern: &str, host: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let h: Vec<char> = host.to_ascii_lowercase().chars().collect();
    // Classic two-pointer wildcard match with backtracking to the last '*'.
    let (mut pi, mut hi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while hi < h.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == h[hi]) {
            pi += 1;
            hi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, hi));
            pi += 1;
        } else if let Some((sp, sh)) = star {
            pi = sp + 1;
            hi = sh + 1;
            star = Some((sp, sh + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/home/alice/.spa/config.toml";

    fn parse(text: &str) -> Result<ProfileFile, String> {
        parse_profile(Path::new(PATH), text, Some(Path::new("/home/alice")))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn patterns_match_like_ssh_config() {
        for (p, h, want) in [
            ("gw1", "gw1", true),
            ("gw1", "GW1", true),
            ("gw1", "gw10", false),
            ("*.example.net", "gw1.example.net", true),
            ("*.example.net", "example.net", false),
            ("gw?", "gw7", true),
            ("gw?", "gw", false),
            ("*", "anything", true),
            ("a*b*c", "aXXbYc", true),
            ("a*b*c", "aXXbY", false),
        ] {
            assert_eq!(pattern_matches(p, h), want, "{p} vs {h}");
        }
    }

    #[test]
    fn blocks_apply_in_order_then_defaults() -> Result<(), String> {
        let file = parse(
            "[defaults]\nkey = \"~/.spa/key\"\nseconds = 30\n\n\
             [[host]]\nname = \"gw1\"\nhostname = \"gw1.example.net:62211\"\ndoor = \"ssh\"\n\n\
             [[host]]\nname = [\"*.example.net\", \"gw*\"]\ndoor = \"web\"\nseconds = 90\nfamily = \"ipv6\"\n",
        )?;
        let l = file.layer_for(Some("gw1"));
        assert_eq!(
            l.door.as_ref().map(|d| d.value.as_str()),
            Some("ssh"),
            "first block wins"
        );
        assert_eq!(
            l.seconds.as_ref().map(|s| s.value),
            Some(90),
            "a later block fills what the first left"
        );
        assert_eq!(l.family.as_ref().map(|s| s.value), Some(FamilyChoice::Ipv6));
        assert_eq!(
            l.key.as_ref().map(|k| k.value.clone()),
            Some(PathBuf::from("/home/alice/.spa/key"))
        );
        let host = l.hostname.as_ref().map(|h| h.value.clone());
        assert_eq!(
            host.map(|h| (h.host, h.port)),
            Some(("gw1.example.net".into(), Some(62211)))
        );
        assert_eq!(
            l.door.map(|d| d.origin.to_string()),
            Some(format!("{PATH}:8 ([[host]] gw1)"))
        );
        assert_eq!(
            l.seconds.map(|d| d.origin.to_string()),
            Some(format!("{PATH}:13 ([[host]] *.example.net, gw*)"))
        );
        let other = file.layer_for(Some("db.internal"));
        assert_eq!(other.door, None);
        assert_eq!(
            other.seconds.map(|s| (s.value, s.origin.to_string())),
            Some((30, format!("{PATH}:3 ([defaults])")))
        );
        Ok(())
    }

    fn located(text: &str) -> (usize, usize, String) {
        match parse_profile(Path::new(PATH), text, None) {
            Err(ProfileError::Parse(e @ KeyFileError::Parse { .. })) => {
                let shown = e.to_string();
                let KeyFileError::Parse { line, col, .. } = e else {
                    unreachable!()
                };
                (line, col, shown)
            }
            Err(e) => panic!("expected a located error, got {e}"),
            Ok(p) => panic!("expected an error, got {p:?}"),
        }
    }

    #[test]
    fn errors_name_file_line_and_column_with_a_caret() {
        for (text, want, needle) in [
            (
                "[[host]]\nname = \"gw1\"\ndoor = \"SSH\"\n",
                (3, 8),
                "door name \"SSH\" must start",
            ),
            (
                "[[host]]\nname = \"gw1\"\nport = 0\n",
                (3, 8),
                "port must be 1 to 65535",
            ),
            (
                "[[host]]\nname = \"gw1\"\nhostnme = \"x\"\n",
                (3, 1),
                "unknown field `hostnme`",
            ),
            (
                "[[host]]\nname = \"gw1\"\nhostname = \"gw:0\"\n",
                (3, 12),
                "not a port number",
            ),
            (
                "[[host]]\nname = \"gw1\"\nfamily = \"ip4\"\n",
                (3, 10),
                "unknown variant `ip4`",
            ),
            (
                "[[host]]\nname = \"gw1\"\nseconds = 0\n",
                (3, 11),
                "seconds must be at least 1",
            ),
            ("[[host]]\ndoor = \"ssh\"\n", (1, 1), "has no name"),
            ("[defaults]\nname = \"x\"\n", (2, 8), "takes no name"),
        ] {
            let (line, col, shown) = located(text);
            assert!(shown.contains(needle), "{shown}");
            assert_eq!((line, col), want, "{shown}");
            assert!(
                shown.starts_with(&format!("{PATH}:{}:{}: ", want.0, want.1)),
                "{shown}"
            );
            assert!(
                shown.contains(" | ") && shown.contains('^'),
                "caret snippet: {shown}"
            );
        }
    }

    #[test]
    fn a_missing_file_is_empty() -> Result<(), ProfileError> {
        let p = load_profile(Path::new("/nonexistent/spa-cl/config.toml"), None)?;
        assert!(p.hosts.is_empty() && p.defaults == Layer::default());
        Ok(())
    }
}
