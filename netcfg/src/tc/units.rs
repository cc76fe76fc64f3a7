//! Rates and sizes, parsed like `tc` parses them.
//!
//! Rates (`Rate`, bytes per second inside): a bare number or `bit` is bits/s; `kbit`,
//! `mbit`, `gbit`, `tbit` are powers of 1000 bits; `kibit`, `mibit`, `gibit` powers of
//! 1024 bits; `bps`, `kbps`, `mbps`, `gbps` are bytes/s (powers of 1000).
//! Sizes (`Size`, bytes): a bare number or `b` is bytes; `k`/`kb`/`kib`, `m`/`mb`/`mib`,
//! `g`/`gb`/`gib` are powers of 1024 bytes (as in `tc`); `kbit`, `mbit` are bits. Units are
//! case-insensitive.

use std::fmt;
use std::str::FromStr;

use super::TcError;

/// A rate in bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rate(pub u64);

/// A size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl Rate {
    /// From bits per second (rounded down to whole bytes).
    pub fn from_bits(bits: u64) -> Self {
        Self(bits / 8)
    }
    /// Bytes per second.
    pub fn bytes_per_sec(self) -> u64 {
        self.0
    }
    /// Bits per second.
    pub fn bits_per_sec(self) -> u64 {
        self.0.saturating_mul(8)
    }
}

fn split(text: &str) -> Result<(f64, String), String> {
    let t = text.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    let n: f64 = num
        .parse()
        .map_err(|_| "expected a number followed by a unit".to_string())?;
    if !n.is_finite() || n < 0.0 {
        return Err("must be a non-negative number".into());
    }
    Ok((n, unit.trim().to_ascii_lowercase()))
}

impl FromStr for Rate {
    type Err = TcError;
    fn from_str(text: &str) -> Result<Self, TcError> {
        let err = |why: String| TcError::Parse {
            what: "rate",
            text: text.to_string(),
            why,
        };
        let (n, unit) = split(text).map_err(err)?;
        // multiplier in bits per second
        let bits: f64 = match unit.as_str() {
            "" | "bit" => 1.0,
            "kbit" => 1e3,
            "mbit" => 1e6,
            "gbit" => 1e9,
            "tbit" => 1e12,
            "kibit" => 1024.0,
            "mibit" => 1024.0 * 1024.0,
            "gibit" => 1024.0 * 1024.0 * 1024.0,
            "bps" => 8.0,
            "kbps" => 8e3,
            "mbps" => 8e6,
            "gbps" => 8e9,
            _ => {
                return Err(err(format!(
                    "unknown unit {unit:?} (use bit, kbit, mbit, gbit, bps, kbps, mbps, ...)"
                )))
            }
        };
        let v = n * bits / 8.0;
        if v >= u64::MAX as f64 {
            return Err(err("too large".into()));
        }
        Ok(Rate(v as u64))
    }
}

impl FromStr for Size {
    type Err = TcError;
    fn from_str(text: &str) -> Result<Self, TcError> {
        let err = |why: String| TcError::Parse {
            what: "size",
            text: text.to_string(),
            why,
        };
        let (n, unit) = split(text).map_err(err)?;
        let bytes: f64 = match unit.as_str() {
            "" | "b" => 1.0,
            "k" | "kb" | "kib" => 1024.0,
            "m" | "mb" | "mib" => 1024.0 * 1024.0,
            "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
            "kbit" => 1024.0 / 8.0,
            "mbit" => 1024.0 * 1024.0 / 8.0,
            _ => {
                return Err(err(format!(
                    "unknown unit {unit:?} (use b, kb, mb, gb, KiB, MiB, ...)"
                )))
            }
        };
        let v = n * bytes;
        if v >= u32::MAX as f64 {
            return Err(err("too large (tc sizes are 32-bit)".into()));
        }
        Ok(Size(v as u64))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bits_per_sec();
        for (unit, m) in [
            ("gbit", 1_000_000_000u64),
            ("mbit", 1_000_000),
            ("kbit", 1000),
        ] {
            if b >= m && b.is_multiple_of(m) {
                return write!(f, "{}{unit}", b / m);
            }
        }
        write!(f, "{b}bit")
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, m) in [("MiB", 1u64 << 20), ("KiB", 1 << 10)] {
            if b >= m && b.is_multiple_of(m) {
                return write!(f, "{}{unit}", b / m);
            }
        }
        write!(f, "{b}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!("100mbit".parse::<Rate>().unwrap(), Rate(12_500_000));
        assert_eq!("1Gbit".parse::<Rate>().unwrap(), Rate(125_000_000));
        assert_eq!("8000".parse::<Rate>().unwrap(), Rate(1000));
        assert_eq!("2.5mbit".parse::<Rate>().unwrap(), Rate(312_500));
        assert_eq!("1mibit".parse::<Rate>().unwrap(), Rate(131_072));
        assert_eq!("10mbps".parse::<Rate>().unwrap(), Rate(10_000_000));
        assert!("fast".parse::<Rate>().is_err());
        assert!("10 parsecs".parse::<Rate>().is_err());
        assert_eq!(Rate(12_500_000).to_string(), "100mbit");
    }

    #[test]
    fn sizes() {
        assert_eq!("10MiB".parse::<Size>().unwrap(), Size(10 << 20));
        assert_eq!("64kb".parse::<Size>().unwrap(), Size(65536));
        assert_eq!("1500".parse::<Size>().unwrap(), Size(1500));
        assert_eq!("32kbit".parse::<Size>().unwrap(), Size(4096));
        assert!("-1".parse::<Size>().is_err());
        assert!("5TB".parse::<Size>().is_err());
        assert_eq!(Size(10 << 20).to_string(), "10MiB");
    }
}
