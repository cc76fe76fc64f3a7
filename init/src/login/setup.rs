//! Start-up: the login dir, a fresh host key, the principals files, the first fetch of the
//! trust list (and KRL), the config checked with `sshd -t`, and the sshd service.

use std::path::{Path, PathBuf};
use std::process::Command as Proc;

use crate::spec::login::{LoginSpec, Source};
use crate::spec::ServiceSpec;

use super::config::{self, ConfigInput};
use super::store::{Fetch, Refreshed, Store};
use super::{hostcert, principals, LoginError};

/// What start-up produced: the service to supervise and the lists to keep fresh.
pub struct Prepared {
    /// `sshd -D -e -f <dir>/sshd_config`, restarted always, TCP-checked on the port.
    pub service: ServiceSpec,
    /// The trust list.
    pub ca: Store,
    /// The revocation list, when configured.
    pub revoked: Option<Store>,
    /// Number of CA keys installed.
    pub ca_keys: usize,
    /// The host certificate: `None` when none was asked for, else installed or why not.
    pub host_cert: Option<Result<(), String>>,
}

fn run(what: &str, cmd: &mut Proc) -> Result<(), LoginError> {
    let out = cmd.output().map_err(|err| LoginError::Run {
        what: what.into(),
        detail: err.to_string(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(LoginError::Run {
        what: what.into(),
        detail: format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

fn io(what: &Path) -> impl FnOnce(std::io::Error) -> LoginError + '_ {
    move |err| LoginError::Io {
        path: what.into(),
        err,
    }
}

/// A fresh ed25519 host key in `dir` (any older one is removed first: a key is never reused
/// across containers, and an image never supplies one).
pub fn host_key(dir: &Path) -> Result<PathBuf, LoginError> {
    let key = dir.join(config::HOST_KEY);
    for p in [key.clone(), key.with_extension("pub")] {
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&p)(e)),
            _ => {}
        }
    }
    run(
        "ssh-keygen (host key)",
        Proc::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "berth-host", "-f"])
            .arg(&key),
    )?;
    Ok(key)
}

/// Everything before sshd runs. `app_id` is `MARATHON_APP_ID` (for default principals);
/// `env` is init's environment (the allow-listed part reaches sessions).
pub fn prepare(
    spec: &LoginSpec,
    dir: &Path,
    app_id: Option<&str>,
    env: impl IntoIterator<Item = (String, String)>,
    http: &dyn Fetch,
) -> Result<Prepared, LoginError> {
    let sshd = spec.sshd();
    if !sshd.is_file() {
        return Err(LoginError::NoSshd(sshd));
    }
    let pdir = dir.join(config::PRINCIPALS);
    std::fs::create_dir_all(&pdir).map_err(io(&pdir))?;
    // sshd's privilege-separation dir (compiled in; the image's /run may be a fresh tmpfs).
    let privsep = Path::new("/run/sshd");
    if !privsep.is_dir() {
        std::fs::create_dir_all(privsep).map_err(io(privsep))?;
    }
    let key = host_key(dir)?;
    let host_cert = match &spec.host_certificate {
        Some(Source::Url(url)) => match hostcert::obtain(url, &key, dir, http) {
            Ok(_) => Some(Ok(())),
            Err(e) if spec.required => return Err(LoginError::HostCert(e)),
            Err(e) => {
                tracing::warn!("login: no host certificate, sshd presents its bare host key: {e}");
                Some(Err(e))
            }
        },
        // The spec check refuses a file (nothing to sign with).
        Some(Source::File(p)) => {
            return Err(LoginError::HostCert(format!(
                "{} is not a signing endpoint",
                p.display()
            )))
        }
        None => None,
    };

    let defaults = match app_id {
        Some(id) if !id.is_empty() => Some(principals::from_app_id(id)),
        _ => None,
    };
    for (user, u) in &spec.users {
        let list = match (&u.principals, &defaults) {
            (Some(p), _) => p.clone(),
            (None, Some(Ok(d))) => d.clone(),
            (None, Some(Err(e))) => return Err(LoginError::AppId(e.clone())),
            (None, None) => return Err(LoginError::NoPrincipals(user.clone())),
        };
        let f = pdir.join(user);
        super::store::install(&f, format!("{}\n", list.join("\n")).as_bytes()).map_err(io(&f))?;
    }

    let revoked_path = dir.join(config::REVOKED);
    let revoked = match &spec.revoked {
        Some(src) => {
            let mut s = Store::revoked(src.clone(), revoked_path);
            // Fail closed: without the revocation list nobody gets in.
            if let Refreshed::Kept { reason, .. } = s.refresh(http) {
                return Err(LoginError::NoRevoked(reason));
            }
            Some(s)
        }
        None => {
            super::store::install(&revoked_path, b"").map_err(io(&revoked_path))?;
            None
        }
    };
    let mut ca = Store::ca(spec.ca.clone(), dir.join(config::CA_KEYS));
    let ca_keys = match ca.refresh(http) {
        Refreshed::Installed { keys } => keys,
        Refreshed::Unchanged => 0,
        Refreshed::Kept { reason, .. } => return Err(LoginError::NoCaKeys(reason)),
    };

    let cfg_path = dir.join(config::CONFIG);
    let text = config::render(&ConfigInput {
        dir,
        port: spec.port(),
        users: spec.users.keys().map(String::as_str).collect(),
        host_cert: matches!(host_cert, Some(Ok(()))),
        env: config::session_env(env),
    });
    super::store::install(&cfg_path, text.as_bytes()).map_err(io(&cfg_path))?;
    run(
        "sshd -t",
        Proc::new(&sshd).arg("-t").arg("-f").arg(&cfg_path),
    )?;

    let service = service(spec, &sshd, &cfg_path)?;
    Ok(Prepared {
        service,
        ca,
        revoked,
        ca_keys,
        host_cert,
    })
}

/// All sshd may hold: switching to the user (SETUID, SETGID), its privilege-separation
/// chroot (SYS_CHROOT), a port below 1024, the session's pty (CHOWN, FOWNER), signalling
/// its own children (KILL), login records (AUDIT_WRITE). Nothing else, not even
/// DAC_OVERRIDE: init writes every file sshd reads as root.
pub const SSHD_CAPS: [&str; 8] = [
    "SETUID",
    "SETGID",
    "SYS_CHROOT",
    "NET_BIND_SERVICE",
    "CHOWN",
    "FOWNER",
    "KILL",
    "AUDIT_WRITE",
];

/// The name of the sshd service in the status and the logs.
pub const SERVICE: &str = "login-sshd";

fn service(spec: &LoginSpec, sshd: &Path, cfg: &Path) -> Result<ServiceSpec, LoginError> {
    let v = serde_json::json!({
        "command": [sshd.display().to_string(), "-D", "-e", "-f", cfg.display().to_string()],
        "restart": "always",
        "required": spec.required,
        "capabilities": SSHD_CAPS,
        "health": {"tcp": {"port": spec.port()}, "interval": "10s", "grace_period": "5s"},
    });
    let mut s: ServiceSpec =
        serde_json::from_value(v).map_err(|e| LoginError::Internal(e.to_string()))?;
    s.name = SERVICE.into();
    Ok(s)
}
