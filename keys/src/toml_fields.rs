//! How key-file TOML becomes typed values: serde field types that validate
//! while deserializing (so every bad value is reported at its own line and
//! column), the conversion of a `toml` error into [`KeyFileError::Parse`], and
//! the quoting of values when writing. Secret values never appear in a message
//! or a snippet.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use base64::Engine as _;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use spa_proto::{DoorName, SecretBytes, ServerId, KEY_LEN};
use zeroize::Zeroizing;

use crate::error::KeyFileError;
use crate::user_name::check_user_name;

/// Keys whose values are secrets: masked in error snippets.
const SECRET_KEYS: [&str; 2] = ["secret", "k_srv"];

/// Standard base64 with padding of 32 bytes (44 characters).
pub(crate) fn encode_key(bytes: &[u8; KEY_LEN]) -> Zeroizing<String> {
    Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Decodes standard padded base64 into exactly 32 secret bytes.
pub(crate) fn decode_key(text: &str) -> Result<SecretBytes, String> {
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|_| {
                "not valid base64 (standard alphabet A-Z a-z 0-9 + /, with '=' padding; a key is 44 characters)"
                    .to_string()
            })?,
    );
    SecretBytes::from_slice(&decoded).ok_or_else(|| {
        format!(
            "decodes to {} bytes, but a key must be exactly {KEY_LEN} bytes (44 base64 characters)",
            decoded.len()
        )
    })
}

/// A TOML basic string, quoted and escaped.
pub(crate) fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A 32-byte key in base64.
pub(crate) struct KeyField(pub(crate) SecretBytes);

impl<'de> Deserialize<'de> for KeyField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 32-byte key in base64 (44 characters, in quotes)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyField, E> {
                decode_key(v).map(KeyField).map_err(E::custom)
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<KeyField, E> {
                let v = Zeroizing::new(v);
                self.visit_str(&v)
            }
        }
        d.deserialize_str(V)
    }
}

/// Deserializes a string and checks it with `check`.
fn checked_str<'de, D, T, E>(
    d: D,
    check: impl FnOnce(String) -> Result<T, E>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    E: fmt::Display,
{
    let s = String::deserialize(d)?;
    check(s).map_err(de::Error::custom)
}

/// A user name (see [`crate::check_user_name`]).
pub(crate) struct UserField(pub(crate) String);

impl<'de> Deserialize<'de> for UserField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, |s| check_user_name(&s).map(|()| UserField(s)))
    }
}

/// A gateway server id.
#[derive(Debug)]
pub struct ServerIdField(pub ServerId);

impl<'de> Deserialize<'de> for ServerIdField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, |s| s.parse().map(ServerIdField))
    }
}

/// A door name; also usable as a table key.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DoorField(pub DoorName);

impl<'de> Deserialize<'de> for DoorField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, |s| s.parse().map(DoorField))
    }
}

/// A host name or address to send to: non-empty, no spaces.
pub(crate) struct HostField(pub(crate) String);

impl<'de> Deserialize<'de> for HostField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, |s| {
            if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err("host must be a host name or IP address without spaces")
            } else {
                Ok(HostField(s))
            }
        })
    }
}

/// A UDP port, 1..=65535.
#[derive(Debug)]
pub struct PortField(pub u16);

impl<'de> Deserialize<'de> for PortField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match u16::try_from(n) {
            Ok(p) if p != 0 => Ok(PortField(p)),
            _ => Err(de::Error::custom(format!(
                "port must be 1 to 65535, got {n}"
            ))),
        }
    }
}

/// A calendar date: a TOML local date (`2027-01-31`) or the same in quotes.
pub(crate) struct DateField(pub(crate) time::Date);

impl<'de> Deserialize<'de> for DateField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = match toml::Value::deserialize(d)? {
            toml::Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => dt.to_string(),
            toml::Value::String(s) => s,
            other => {
                return Err(de::Error::custom(format!(
                    "expected a date like 2027-01-31, got {other}"
                )))
            }
        };
        parse_date(&text).map(DateField).map_err(de::Error::custom)
    }
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<time::Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format)
        .map_err(|e| format!("{text:?} is not a valid date like 2027-01-31 ({e})"))
}

/// Turns a `toml` error into [`KeyFileError::Parse`] with line, column and a
/// snippet whose secret values are masked.
pub fn parse_error(path: &Path, text: &str, err: &toml::de::Error) -> KeyFileError {
    located_error(path, text, err.span(), err.message().trim_end().to_string())
}

/// Where a span of a TOML text is, for people: 1-based line and column, and
/// the line with a caret under the span (secret values masked). The one
/// renderer of spa's file:line:col errors — key files and spad's config alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// The line with a caret under the span.
    pub snippet: String,
}

/// Locates `span` (byte offsets into `text`; `None` is the start).
pub fn locate(text: &str, span: Option<Range<usize>>) -> Location {
    let span = span.unwrap_or(0..0);
    let start = floor_char_boundary(text, span.start.min(text.len()));
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line_text = &text[line_start..line_end];
    let line = text[..start].matches('\n').count() + 1;
    let col = text[line_start..start].chars().count() + 1;
    let end = floor_char_boundary(text, span.end.clamp(start, line_end));
    let width = text[start..end].chars().count().max(1);

    let shown = mask_secret_value(line_text.trim_end_matches('\r'));
    let gutter = " ".repeat(line.to_string().len());
    let snippet = format!(
        "{gutter} |\n{line} | {shown}\n{gutter} | {}{}",
        " ".repeat(col - 1),
        "^".repeat(width)
    );
    Location { line, col, snippet }
}

/// A [`KeyFileError::Parse`] at `span` (byte offsets into `text`).
pub fn located_error(
    path: &Path,
    text: &str,
    span: Option<Range<usize>>,
    message: String,
) -> KeyFileError {
    let Location { line, col, snippet } = locate(text, span);
    KeyFileError::Parse {
        path: path.to_owned(),
        line,
        col,
        message,
        snippet,
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Replaces the value of a `secret = ...` / `k_srv = ...` line with `*`s of
/// the same length, so the caret still points at the right column.
fn mask_secret_value(line: &str) -> String {
    let Some((key, value)) = line.split_once('=') else {
        return line.to_owned();
    };
    let key_name = key.trim().trim_matches(|c| c == '"' || c == '\'');
    if !SECRET_KEYS.contains(&key_name) {
        return line.to_owned();
    }
    let masked: String = value
        .chars()
        .map(|c| if c.is_whitespace() { c } else { '*' })
        .collect();
    format!("{key}={masked}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_base64() -> Result<(), String> {
        let key = SecretBytes::new([7; 32]);
        let text = encode_key(key.expose());
        assert_eq!(text.len(), 44);
        assert_eq!(decode_key(&text)?, key);
        Ok(())
    }

    #[test]
    fn bad_keys_say_why() {
        let short = encode_key(&[1; 32]);
        let err = decode_key(&short[..41]).err().unwrap_or_default();
        assert!(err.contains("not valid base64"), "{err}");
        let err = decode_key("AAAA").err().unwrap_or_default();
        assert!(err.contains("decodes to 3 bytes"), "{err}");
    }

    #[test]
    fn snippet_masks_secret_values_and_points_at_the_column() {
        let text = "user = \"a\"\nsecret = \"c2VjcmV0c2VjcmV0\"\n";
        let start = text.find("c2V").unwrap_or(0) - 1;
        let err = located_error(Path::new("/k"), text, Some(start..start + 18), "bad".into());
        let KeyFileError::Parse {
            line, col, snippet, ..
        } = &err
        else {
            panic!("not a parse error: {err}");
        };
        assert_eq!((*line, *col), (2, 10));
        assert!(!snippet.contains("c2Vj"), "{snippet}");
        assert!(
            snippet.contains("2 | secret = ******************"),
            "{snippet}"
        );
        assert!(
            snippet.ends_with("  |          ^^^^^^^^^^^^^^^^^^"),
            "{snippet}"
        );
        assert!(err.to_string().starts_with("/k:2:10: bad\n"), "{err}");
    }

    #[test]
    fn dates_parse_with_a_clear_error() {
        assert_eq!(
            parse_date("2027-01-31").map(|d| d.to_string()),
            Ok("2027-01-31".into())
        );
        let err = parse_date("2027-02-30").err().unwrap_or_default();
        assert!(err.contains("\"2027-02-30\" is not a valid date"), "{err}");
    }
}
