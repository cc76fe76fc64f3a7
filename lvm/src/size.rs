//! Sizes in bytes, and parsing of what operators and tasks write (`10G`, `512MiB`, `4096`).
//!
//! `K`/`M`/`G`/`T` and `KiB`/`MiB`/`GiB`/`TiB` are powers of 1024 (as in LVM and Mesos disk
//! resources); `KB`/`MB`/`GB`/`TB` are powers of 1000; no suffix or `B` is bytes. Case does
//! not matter. Fractions are refused: sizes are exact.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(pub u64);

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;
pub const TIB: u64 = 1024 * GIB;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    #[error("size {0:?} is empty")]
    Empty(String),
    #[error("size {0:?} has no number; write e.g. 10G or 512MiB")]
    NoNumber(String),
    #[error("size {input:?} has unknown unit {unit:?}; use B, K/KiB, M/MiB, G/GiB, T/TiB, KB, MB, GB, TB")]
    BadUnit { input: String, unit: String },
    #[error("size {0:?} does not fit in 64 bits")]
    Overflow(String),
}

impl Bytes {
    pub fn mib(n: u64) -> Bytes {
        Bytes(n * MIB)
    }

    pub fn gib(n: u64) -> Bytes {
        Bytes(n * GIB)
    }

    /// Rounds up to a multiple of `unit` (an LVM extent, a 512-byte sector).
    pub fn round_up(self, unit: u64) -> Bytes {
        if unit == 0 {
            return self;
        }
        Bytes(self.0.div_ceil(unit).saturating_mul(unit))
    }
}

impl FromStr for Bytes {
    type Err = SizeError;

    fn from_str(input: &str) -> Result<Self, SizeError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(SizeError::Empty(input.into()));
        }
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        if num.is_empty() {
            return Err(SizeError::NoNumber(input.into()));
        }
        let n: u64 = num.parse().map_err(|_| SizeError::Overflow(input.into()))?;
        let mult = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => KIB,
            "m" | "mib" => MIB,
            "g" | "gib" => GIB,
            "t" | "tib" => TIB,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            _ => {
                return Err(SizeError::BadUnit {
                    input: input.into(),
                    unit: unit.trim().into(),
                })
            }
        };
        n.checked_mul(mult)
            .map(Bytes)
            .ok_or_else(|| SizeError::Overflow(input.into()))
    }
}

impl fmt::Display for Bytes {
    /// Exact: the largest binary unit that divides the size, e.g. `10GiB`, `1536MiB`, `513B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, name) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
            if b >= unit && b.checked_rem(unit) == Some(0) {
                return write!(f, "{}{name}", b / unit);
            }
        }
        write!(f, "{b}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!("10G".parse(), Ok(Bytes(10 * GIB)));
        assert_eq!("512MiB".parse(), Ok(Bytes(512 * MIB)));
        assert_eq!("512mib".parse(), Ok(Bytes(512 * MIB)));
        assert_eq!("4096".parse(), Ok(Bytes(4096)));
        assert_eq!("7B".parse(), Ok(Bytes(7)));
        assert_eq!("1k".parse(), Ok(Bytes(1024)));
        assert_eq!("2GB".parse(), Ok(Bytes(2_000_000_000)));
        assert_eq!(" 3 T ".parse(), Ok(Bytes(3 * TIB)));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!("".parse::<Bytes>(), Err(SizeError::Empty(_))));
        assert!(matches!("G".parse::<Bytes>(), Err(SizeError::NoNumber(_))));
        assert!(matches!(
            "1.5G".parse::<Bytes>(),
            Err(SizeError::BadUnit { .. })
        ));
        assert!(matches!(
            "10X".parse::<Bytes>(),
            Err(SizeError::BadUnit { .. })
        ));
        assert!(matches!("-1".parse::<Bytes>(), Err(SizeError::NoNumber(_))));
        assert!(matches!(
            "99999999999T".parse::<Bytes>(),
            Err(SizeError::Overflow(_))
        ));
        assert!(matches!(
            "99999999999999999999999".parse::<Bytes>(),
            Err(SizeError::Overflow(_))
        ));
    }

    #[test]
    fn displays_exactly_and_rounds() {
        assert_eq!(Bytes(10 * GIB).to_string(), "10GiB");
        assert_eq!(Bytes(1536 * MIB).to_string(), "1536MiB");
        assert_eq!(Bytes(513).to_string(), "513B");
        assert_eq!(Bytes(1).round_up(4 * MIB), Bytes(4 * MIB));
        assert_eq!(Bytes(8 * MIB).round_up(4 * MIB), Bytes(8 * MIB));
        for s in ["10G", "512MiB", "1234"] {
            let b: Bytes = s.parse().unwrap();
            assert_eq!(b.to_string().parse::<Bytes>().unwrap(), b);
        }
    }
}
