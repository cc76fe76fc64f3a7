//! What the config files of every berth-agent role share: reading the file, parsing its
//! TOML (each role's structs refuse unknown keys), and one error type whose message names
//! the file and the key, on one line.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    /// Not TOML, or not the role's keys (toml's message names the key and the line).
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A key whose value cannot be used.
    #[error("{path}: {key}: {why}")]
    Invalid {
        path: PathBuf,
        key: String,
        why: String,
    },
}

/// The text of `path`.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
        path: path.to_owned(),
        err,
    })
}

/// `text` (read from `path`, named in errors) as a `T`.
pub fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        // toml's message spans lines (it shows the line); keep it on one.
        message: e.to_string().trim().replace('\n', " | "),
    })
}

/// The error for `key` of `path`.
pub fn invalid(path: &Path, key: impl Into<String>, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        key: key.into(),
        why: why.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: u32,
    }

    #[test]
    fn messages_name_the_file_and_the_key_on_one_line() {
        let p = Path::new("/etc/berth/x.toml");
        let e = parse_toml::<T>(p, "a = 1\nb = 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/berth/x.toml: "), "{e}");
        assert!(e.contains("`b`"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = invalid(p, "a", "must be at least 2").to_string();
        assert_eq!(e, "/etc/berth/x.toml: a: must be at least 2");
        let e = read(Path::new("/nonexistent/x.toml"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "cannot read /nonexistent/x.toml");
    }
}
