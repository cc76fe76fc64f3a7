//! The sshd configuration init writes: certificates only, everything under the login dir.
//! Pure text; [`super::setup`] writes it and checks it with `sshd -t`.

use std::path::Path;

/// What the config needs to name.
#[derive(Debug, Clone)]
pub struct ConfigInput<'a> {
    /// The login dir (host key, trust list, principals, KRL live here).
    pub dir: &'a Path,
    /// Listening port.
    pub port: u16,
    /// Users allowed to log in.
    pub users: Vec<&'a str>,
    /// A host certificate was installed next to the host key.
    pub host_cert: bool,
    /// What sessions get as environment (see [`session_env`]).
    pub env: Vec<(String, String)>,
}

/// Exact names of the executor's variables a session gets (besides `MARATHON_*` and
/// `PORT*`): resource sizes and identity. Nothing else passes: the executor token, database
/// credentials and whatever else init's environment holds stay out of sessions.
const SESSION_VARS: &[&str] = &[
    "BERTH_CPUS",
    "BERTH_MEM_MB",
    "BERTH_DISK_MB",
    "BERTH_HOME_MB",
    "BERTH_BANDWIDTH_MBIT",
    "BERTH_PORTS",
    "BERTH_TASK_ID",
    "BERTH_CONTAINER_ID",
    "MESOS_TASK_ID",
    "HOST",
];

fn secret_like(name: &str) -> bool {
    let up = name.to_ascii_uppercase();
    ["TOKEN", "SECRET", "PASSW", "CREDENTIAL", "KEY", "AUTH"]
        .iter()
        .any(|w| up.contains(w))
}

/// The allow-listed part of `vars`, sorted; values sshd's `SetEnv` cannot carry (quotes,
/// backslashes, control characters) are left out.
pub fn session_env(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, v)| {
            let allowed = SESSION_VARS.contains(&k.as_str())
                || k.starts_with("MARATHON_")
                || (k.starts_with("PORT") && k[4..].bytes().all(|b| b.is_ascii_digit()));
            allowed
                && !secret_like(k)
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !v.contains(['"', '\\'])
                && !v.chars().any(char::is_control)
        })
        .collect();
    out.sort();
    out
}

/// File names inside the login dir.
pub const HOST_KEY: &str = "ssh_host_ed25519_key";
/// Its certificate from the host CA, when the spec names a signing endpoint.
pub const HOST_CERT: &str = "ssh_host_ed25519_key-cert.pub";
/// The trust list sshd reads (`TrustedUserCAKeys`).
pub const CA_KEYS: &str = "user_ca_keys";
/// The revocation list (`RevokedKeys`); an empty key list when none is configured.
pub const REVOKED: &str = "revoked_keys";
/// The principals dir (`AuthorizedPrincipalsFile <dir>/principals/%u`).
pub const PRINCIPALS: &str = "principals";
/// The config itself.
pub const CONFIG: &str = "sshd_config";
/// sshd's pid file (kept in the login dir: the image's /run may be read-only).
pub const PID_FILE: &str = "sshd.pid";

/// Renders the config. Passwords, keyboard-interactive, plain authorized_keys, agent and
/// TCP forwarding are off; only certificates from the trusted CAs naming one of the
/// user's principals get in.
pub fn render(c: &ConfigInput) -> String {
    let d = c.dir.display();
    let mut s = String::new();
    s.push_str("# written by berth-init: certificates from the user CA only\n");
    s.push_str(&format!("Port {}\n", c.port));
    s.push_str(&format!("HostKey {d}/{HOST_KEY}\n"));
    if c.host_cert {
        s.push_str(&format!("HostCertificate {d}/{HOST_CERT}\n"));
    }
    s.push_str(&format!("PidFile {d}/{PID_FILE}\n"));
    s.push_str(&format!("TrustedUserCAKeys {d}/{CA_KEYS}\n"));
    s.push_str(&format!("RevokedKeys {d}/{REVOKED}\n"));
    s.push_str(&format!("AuthorizedPrincipalsFile {d}/{PRINCIPALS}/%u\n"));
    s.push_str(
        "AuthorizedKeysFile none\n\
         AuthenticationMethods publickey\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         HostbasedAuthentication no\n\
         PermitEmptyPasswords no\n\
         PermitRootLogin prohibit-password\n\
         UsePAM no\n\
         StrictModes no\n\
         AllowTcpForwarding no\n\
         AllowAgentForwarding no\n\
         X11Forwarding no\n\
         PermitUserEnvironment no\n\
         PermitTunnel no\n\
         PrintMotd no\n\
         LogLevel VERBOSE\n",
    );
    s.push_str(&format!("AllowUsers {}\n", c.users.join(" ")));
    if !c.env.is_empty() {
        let vars: Vec<String> = c.env.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        s.push_str(&format!("SetEnv {}\n", vars.join(" ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_only() {
        let c = render(&ConfigInput {
            dir: Path::new("/run/berth/login"),
            port: 2222,
            users: vec!["work", "admin"],
            host_cert: false,
            env: vec![("MARATHON_APP_ID".into(), "/team/web".into())],
        });
        for line in [
            "Port 2222",
            "TrustedUserCAKeys /run/berth/login/user_ca_keys",
            "AuthorizedPrincipalsFile /run/berth/login/principals/%u",
            "RevokedKeys /run/berth/login/revoked_keys",
            "AuthorizedKeysFile none",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "AllowUsers work admin",
        ] {
            assert!(c.lines().any(|l| l == line), "{line} missing in\n{c}");
        }
        assert!(!c.contains("HostCertificate"));
        assert!(c.contains("SetEnv MARATHON_APP_ID=\"/team/web\"\n"));
    }

    #[test]
    fn sessions_get_no_secrets() {
        let vars = [
            ("MARATHON_APP_ID", "/team/web"),
            ("BERTH_MEM_MB", "512"),
            ("PORT0", "8080"),
            ("PORTAL", "x"),
            ("BERTH_EXECUTOR_TOKEN", "s3cret"),
            ("MARATHON_APP_DB_PASSWORD", "s3cret"),
            ("MYSQL_PASSWORD", "s3cret"),
            ("MARATHON_APP_LABEL_X", "a\"b"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let names: Vec<String> = session_env(vars).into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["BERTH_MEM_MB", "MARATHON_APP_ID", "PORT0"]);
    }
}
