//! The rule for user names. A user name becomes a file name
//! (`<keys_dir>/<user>.toml`), so it can never contain `/` or start with `.`.

/// The longest user name.
pub const USER_NAME_MAX_LEN: usize = 64;

/// Why a user name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserNameError {
    /// Empty or longer than [`USER_NAME_MAX_LEN`].
    #[error("user name must be 1 to 64 characters long, got {0}")]
    Length(usize),
    /// Outside `[a-z0-9._-]` or not starting with `[a-z0-9]`.
    #[error("user name {0:?} must start with a-z or 0-9 and use only a-z, 0-9, '.', '_' and '-'")]
    Chars(String),
}

/// Checks a user name: 1..=64 characters of `[a-z0-9._-]`, first one `[a-z0-9]`.
pub fn check_user_name(name: &str) -> Result<(), UserNameError> {
    if name.is_empty() || name.len() > USER_NAME_MAX_LEN {
        return Err(UserNameError::Length(name.chars().count()));
    }
    let bytes = name.as_bytes();
    let first_ok = bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit();
    let rest_ok = bytes[1..]
        .iter()
        .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(UserNameError::Chars(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_follow_the_rule() {
        for ok in ["alice", "bob.laptop", "0ps_team-2", &"a".repeat(64)] {
            assert_eq!(check_user_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_user_name(""), Err(UserNameError::Length(0)));
        assert_eq!(
            check_user_name(&"a".repeat(65)),
            Err(UserNameError::Length(65))
        );
        for bad in [".alice", "-a", "Alice", "a/b", "../x", "a b", "é"] {
            assert!(
                matches!(check_user_name(bad), Err(UserNameError::Chars(_))),
                "{bad}"
            );
        }
    }
}
