//! Fetching the trust list and the revocation list and installing them atomically, keeping
//! the last good copy when the source is down or sends garbage.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::spec::login::Source;

use super::keys;

/// Reads a source's bytes. Files are read directly; URLs through the fetcher the caller
/// gives (berth-http), so this module stays free of any HTTP stack.
pub trait Fetch {
    /// The body of `url`, or why not.
    fn get(&self, url: &str) -> Result<Vec<u8>, String>;
    /// The body of the answer to POSTing `body` (`text/plain`) to `url`, or why not: the
    /// host-certificate request.
    fn post(&self, url: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        let _ = body;
        Err(format!("{url}: POST is not available in this build"))
    }
}

/// No URL support: every URL source fails (with a message saying so).
pub struct NoHttp;

impl Fetch for NoHttp {
    fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        Err(format!(
            "{url}: URL sources are not available in this build"
        ))
    }
}

/// Size limit of a source (a trust list or a KRL is small; anything bigger is garbage).
pub const MAX_SOURCE: u64 = 1 << 20;

fn read(src: &Source, http: &dyn Fetch) -> Result<Vec<u8>, String> {
    match src {
        Source::File(p) => {
            let meta = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
            if meta.len() > MAX_SOURCE {
                return Err(format!("{}: larger than {MAX_SOURCE} bytes", p.display()));
            }
            std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
        }
        Source::Url(u) => {
            let body = http.get(u)?;
            if body.len() as u64 > MAX_SOURCE {
                return Err(format!("{u}: larger than {MAX_SOURCE} bytes"));
            }
            Ok(body)
        }
    }
}

/// Writes `data` to `dest` through a temporary file and a rename, so sshd never reads a
/// half-written list. Mode 0644: sshd reads these as root; nothing in them is secret.
pub fn install(dest: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dest.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dest)
}

/// The outcome of one refresh of one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// New content installed (`keys`: the number of CA keys, 0 for the KRL).
    Installed { keys: usize },
    /// Same content as installed: nothing written.
    Unchanged,
    /// The source failed or sent garbage; the last good copy stays (if there is one).
    Kept { reason: String, have_good: bool },
}

/// One list (CA keys or revoked keys) with its last good content.
pub struct Store {
    src: Source,
    dest: PathBuf,
    ca: bool,
    good: Option<Vec<u8>>,
}

impl Store {
    /// The CA trust list from `src`, installed at `dest`.
    pub fn ca(src: Source, dest: PathBuf) -> Self {
        Store {
            src,
            dest,
            ca: true,
            good: None,
        }
    }

    /// The revocation list from `src`, installed at `dest`.
    pub fn revoked(src: Source, dest: PathBuf) -> Self {
        Store {
            src,
            dest,
            ca: false,
            good: None,
        }
    }

    /// Whether a good copy was ever installed.
    pub fn have_good(&self) -> bool {
        self.good.is_some()
    }

    /// Where it comes from.
    pub fn source(&self) -> &Source {
        &self.src
    }

    /// Fetches, checks, and installs when changed.
    pub fn refresh(&mut self, http: &dyn Fetch) -> Refreshed {
        let have_good = self.good.is_some();
        let kept = |reason: String| Refreshed::Kept { reason, have_good };
        let body = match read(&self.src, http) {
            Ok(b) => b,
            Err(e) => return kept(e),
        };
        let (data, count) = if self.ca {
            match keys::parse_ca_keys(&body) {
                Ok(l) => (l.text.into_bytes(), l.count),
                Err(e) => return kept(format!("{}: {e}", self.src)),
            }
        } else {
            match keys::check_revoked(&body) {
                Ok(()) => (body, 0),
                Err(e) => return kept(format!("{}: {e}", self.src)),
            }
        };
        if self.good.as_deref() == Some(&data[..]) {
            return Refreshed::Unchanged;
        }
        if let Err(e) = install(&self.dest, &data) {
            return kept(format!("writing {}: {e}", self.dest.display()));
        }
        self.good = Some(data);
        Refreshed::Installed { keys: count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO5XhPxx1+7O/Qt06ihndYMoEIAPn/cC6xuTtwMrMzoP a";

    #[test]
    fn keeps_last_good_copy() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        let dest = d.path().join("dest");
        let mut s = Store::ca(Source::File(src.clone()), dest.clone());
        // Never obtained: nothing installed, nothing good.
        assert_eq!(
            s.refresh(&NoHttp),
            Refreshed::Kept {
                reason: format!("{}: No such file or directory (os error 2)", src.display()),
                have_good: false
            }
        );
        assert!(!dest.exists());
        std::fs::write(&src, format!("{K1}\n")).unwrap();
        assert_eq!(s.refresh(&NoHttp), Refreshed::Installed { keys: 1 });
        assert_eq!(s.refresh(&NoHttp), Refreshed::Unchanged);
        std::fs::write(&src, "<html>oops</html>").unwrap();
        assert!(matches!(
            s.refresh(&NoHttp),
            Refreshed::Kept {
                have_good: true,
                ..
            }
        ));
        std::fs::write(&src, "").unwrap();
        assert!(matches!(
            s.refresh(&NoHttp),
            Refreshed::Kept {
                have_good: true,
                ..
            }
        ));
        std::fs::remove_file(&src).unwrap();
        assert!(matches!(
            s.refresh(&NoHttp),
            Refreshed::Kept {
                have_good: true,
                ..
            }
        ));
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), format!("{K1}\n"));
    }

    #[test]
    fn urls_go_through_the_fetcher() {
        struct Canned;
        impl Fetch for Canned {
            fn get(&self, _: &str) -> Result<Vec<u8>, String> {
                Ok(K1.as_bytes().to_vec())
            }
        }
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::ca(Source::Url("https://ca/x".into()), d.path().join("k"));
        assert!(matches!(s.refresh(&NoHttp), Refreshed::Kept { .. }));
        assert_eq!(s.refresh(&Canned), Refreshed::Installed { keys: 1 });
    }
}
