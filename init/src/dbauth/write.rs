//! The credentials file, my.cnf `[client]` format (`mysql --defaults-extra-file=F`):
//! created 0600 under a temporary name, chowned to the owner, synced, then renamed over
//! the target, so it is never readable by anyone else, not even half-written.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::request::Credentials;

/// The file's text.
pub fn text(c: &Credentials) -> String {
    let mut s = format!(
        "# berth dbauth: task {}, databases {}\n[client]\nuser={}\npassword={}\nhost={}\nport={}\n",
        c.task,
        c.databases.join(" "),
        c.user,
        c.password,
        c.host,
        c.port
    );
    if let [one] = c.databases.as_slice() {
        s.push_str(&format!("database={one}\n"));
    }
    s
}

/// Writes `c` to `path` for `owner` (uid, gid).
pub fn credentials(path: &Path, c: &Credentials, owner: (u32, u32)) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        std::os::unix::fs::fchown(&f, Some(owner.0), Some(owner.1))?;
        f.write_all(text(c).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/db.cnf");
        let c = Credentials {
            task: "t.1".into(),
            user: "bt_x".into(),
            password: "pw".into(),
            host: "10.0.0.2".into(),
            port: 3306,
            databases: vec!["shop".into()],
        };
        let me = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        credentials(&path, &c, me).unwrap();
        credentials(&path, &c, me).unwrap();
        let md = std::fs::metadata(&path).unwrap();
        assert_eq!((md.mode() & 0o777, md.uid()), (0o600, me.0));
        let t = std::fs::read_to_string(&path).unwrap();
        assert!(
            t.contains("[client]\nuser=bt_x\npassword=pw\n") && t.ends_with("database=shop\n"),
            "{t}"
        );
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
