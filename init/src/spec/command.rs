//! A command as written in the spec: an argv list, or one line split like a shell would
//! (quotes and backslashes, no expansion, no pipes: write `["/bin/sh", "-c", "..."]` for those).

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// A non-empty argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command(pub Vec<String>);

impl Command {
    /// Splits one line the way a shell would (no expansion).
    pub fn from_line(line: &str) -> Result<Self, String> {
        let argv =
            shlex::split(line).ok_or_else(|| format!("unbalanced quotes in command {line:?}"))?;
        Self::from_argv(argv)
    }

    /// Checks that the argv is not empty.
    pub fn from_argv(argv: Vec<String>) -> Result<Self, String> {
        if argv.first().is_none_or(|a| a.is_empty()) {
            return Err("empty command: give a program and its arguments".into());
        }
        Ok(Command(argv))
    }

    /// The program (argv\[0\]).
    pub fn program(&self) -> &str {
        &self.0[0]
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|a| {
                shlex::try_quote(a)
                    .map(|q| q.into_owned())
                    .unwrap_or_else(|_| a.clone())
            })
            .collect();
        f.write_str(&parts.join(" "))
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Command;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command: a list of strings (argv) or one string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Command, E> {
                Command::from_line(v).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Command, A::Error> {
                let mut argv = Vec::new();
                while let Some(a) = seq.next_element::<String>()? {
                    argv.push(a);
                }
                Command::from_argv(argv).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        let c = Command::from_line("/bin/echo 'a b' \"c\\\"d\" e").unwrap();
        assert_eq!(c.0, vec!["/bin/echo", "a b", "c\"d", "e"]);
        assert!(Command::from_line("  ").is_err());
        assert!(Command::from_line("echo 'open").is_err());
    }

    #[test]
    fn reads_argv_lists() {
        let c: Command = serde_yaml::from_str("[sleep, '10']").unwrap();
        assert_eq!(c.0, vec!["sleep", "10"]);
        assert!(serde_yaml::from_str::<Command>("[]").is_err());
    }
}
