//! The `berth.image` label: `NAME`, `NAME:TAG` or `NAME@sha256:<hex>`, checked character
//! by character before any of it reaches a path.

use std::fmt;

use super::digest::Digest;

/// Which manifest of a layout is wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The only manifest of the index (an error if there are several).
    Only,
    /// The manifest annotated `org.opencontainers.image.ref.name` = this tag.
    Tag(String),
    /// The manifest (or index) with this digest.
    Digest(Digest),
}

/// A parsed `berth.image` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// A directory name under the images directory.
    pub name: String,
    pub selector: Selector,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReferenceError {
    #[error("{0:?} is not a plain name ([A-Za-z0-9_.-], 1 to 128 characters, not . or ..)")]
    Name(String),
    #[error("{0:?} is not a tag ([A-Za-z0-9_][A-Za-z0-9_.-], at most 128 characters)")]
    Tag(String),
    #[error(transparent)]
    Digest(#[from] super::digest::BadDigest),
}

/// A directory name: `[A-Za-z0-9_.-]`, 1..=128 characters, not `.`/`..`.
pub fn valid_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v != "."
        && v != ".."
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// An OCI tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Reference {
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        let (name, selector) = if let Some((n, d)) = text.split_once('@') {
            (n, Selector::Digest(Digest::parse(d)?))
        } else if let Some((n, t)) = text.split_once(':') {
            if !valid_tag(t) {
                return Err(ReferenceError::Tag(t.chars().take(140).collect()));
            }
            (n, Selector::Tag(t.to_string()))
        } else {
            (text, Selector::Only)
        };
        if !valid_name(name) {
            return Err(ReferenceError::Name(name.chars().take(140).collect()));
        }
        Ok(Reference {
            name: name.to_string(),
            selector,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            Selector::Only => write!(f, "{}", self.name),
            Selector::Tag(t) => write!(f, "{}:{t}", self.name),
            Selector::Digest(d) => write!(f, "{}@{d}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        assert_eq!(
            Reference::parse("busybox").unwrap(),
            Reference {
                name: "busybox".into(),
                selector: Selector::Only
            }
        );
        assert_eq!(
            Reference::parse("bb:1.36").unwrap().selector,
            Selector::Tag("1.36".into())
        );
        let d = format!("sha256:{}", "0".repeat(64));
        let r = Reference::parse(&format!("bb@{d}")).unwrap();
        assert_eq!(r.selector, Selector::Digest(Digest::parse(&d).unwrap()));
        assert_eq!(r.to_string(), format!("bb@{d}"));
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "bb:",
            "bb:.x",
            "bb:a/b",
            "bb@sha256:12",
            "bb@md5:00",
            ":v1",
            "bb:v1:v2",
            "x y",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Reference::parse(&"a".repeat(129)).is_err());
        assert!(Reference::parse(&format!("a:{}", "t".repeat(129))).is_err());
        assert!(Reference::parse(&format!("a:{}", "t".repeat(128))).is_ok());
    }
}
