//! The bearer token: where it is read from, and how a presented one is
//! compared. A token never appears in a log or a `Debug` output, and is
//! compared in constant time (`subtle`), so that neither leaks it.

use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

/// A bearer token requests must carry (`Authorization: Bearer TOKEN`).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(hidden)")
    }
}

/// A token that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The file cannot be read.
    #[error("cannot read the token file {} ({message}); check the path", file.display())]
    Unreadable {
        /// The file.
        file: PathBuf,
        /// The system's reason.
        message: String,
    },
    /// The file, or the variable, holds nothing but whitespace.
    #[error(
        "the token in {source_name} is empty; put a long random secret there (such as the output of `openssl rand -hex 32`)"
    )]
    Empty {
        /// The file or the variable it came from.
        source_name: String,
    },
    /// Others than its owner may read the file.
    #[error(
        "the token file {} can be read by others than its owner (mode {mode:04o}); make it private with `chmod 600 {}`",
        file.display(),
        file.display()
    )]
    Exposed {
        /// The file.
        file: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl Token {
    /// A token from `value` (leading and trailing whitespace dropped),
    /// which came from `source_name` (for the error).
    pub fn new(value: &str, source_name: &str) -> Result<Token, TokenError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(TokenError::Empty {
                source_name: source_name.to_string(),
            });
        }
        Ok(Token(value.to_string()))
    }

    /// Reads the token in `file`, which only its owner may read
    /// (`mode & 0o077 == 0`): a token others can read is no secret.
    pub fn from_file(file: &Path) -> Result<Token, TokenError> {
        use std::os::unix::fs::PermissionsExt;
        let unreadable = |e: std::io::Error| TokenError::Unreadable {
            file: file.to_path_buf(),
            message: e.to_string(),
        };
        let mode = std::fs::metadata(file)
            .map_err(unreadable)?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(TokenError::Exposed {
                file: file.to_path_buf(),
                mode,
            });
        }
        let text = std::fs::read_to_string(file).map_err(unreadable)?;
        Token::new(&text, &file.display().to_string())
    }

    /// Whether `presented` is this token, in time that does not depend on
    /// where they differ.
    pub(crate) fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_itself_only() {
        let token = Token::new(" s3cret\n", "test").unwrap();
        assert!(token.matches(b"s3cret"));
        assert!(!token.matches(b"s3creT"));
        assert!(!token.matches(b"s3cre"));
        assert!(!token.matches(b""));
        assert_eq!(format!("{token:?}"), "Token(hidden)");
    }
}
