//! Parse the URLs berth talks to: `http://host[:port][/path]` and `https://...`.

use std::fmt;

#[derive(Debug, thiserror::Error)]
#[error("bad URL {url:?}: {why}")]
pub struct UrlError {
    pub url: String,
    pub why: &'static str,
}

/// A parsed `http`/`https` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, always starting with `/`.
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, UrlError> {
        let bad = |why| UrlError {
            url: url.chars().take(200).collect(),
            why,
        };
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(bad("the scheme must be http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(bad("user info in the URL is not supported"));
        }
        let default = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6.find(']').ok_or_else(|| bad("unclosed [ in the host"))?;
            let port = match &v6[end + 1..] {
                "" => default,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| bad("bad port"))?,
            };
            (v6[..end].to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("bad port"))?),
                None => (authority.to_string(), default),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if path.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad("control characters or spaces in the path"));
        }
        Ok(Url {
            tls,
            host,
            port,
            path: path.to_string(),
        })
    }

    /// `host:port` for connecting and for the Host header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The same server, another path.
    pub fn with_path(&self, path: &str) -> Url {
        Url {
            path: path.to_string(),
            ..self.clone()
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_berth_uses() {
        let u = Url::parse("http://127.0.0.1:1988/v1/push").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "127.0.0.1", 1988, "/v1/push")
        );
        let u = Url::parse("https://marathon.example").unwrap();
        assert_eq!((u.port, u.path.as_str()), (443, "/"));
        let u = Url::parse("http://[fe80::1]:8080/x?y=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.authority()),
            ("fe80::1", 8080, "[fe80::1]:8080".to_string())
        );
        assert_eq!(u.to_string(), "http://[fe80::1]:8080/x?y=1");
    }

    #[test]
    fn refuses_what_it_cannot_connect_to() {
        for bad in [
            "ftp://x/",
            "http://",
            "http://h:99999/",
            "http://u:p@h/",
            "http://h/a b",
            "h:80",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
