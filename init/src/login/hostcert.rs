//! The optional host certificate: init POSTs its fresh host public key to the host CA's
//! signing endpoint and installs the certificate it answers next to the key, after checking
//! with `ssh-keygen -L` that it is a *host* certificate for *this* key (a confused or
//! hostile endpoint cannot make sshd present someone else's identity or a user certificate).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::config::HOST_CERT;
use super::store::Fetch;

/// The only certificate type init asks for (its host key is ed25519).
const CERT_TYPE: &str = "ssh-ed25519-cert-v01@openssh.com";
/// A certificate line is a few hundred bytes; anything far bigger is not one.
const MAX_CERT: usize = 16 << 10;

/// The one certificate line of `answer`, or why it is not one.
pub fn parse_answer(answer: &[u8]) -> Result<String, String> {
    if answer.len() > MAX_CERT {
        return Err(format!("the answer is larger than {MAX_CERT} bytes"));
    }
    let text = std::str::from_utf8(answer).map_err(|_| "the answer is not text".to_string())?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let [line] = lines.as_slice() else {
        return Err(format!(
            "the answer has {} lines; expected one certificate line",
            lines.len()
        ));
    };
    let mut fields = line.split_whitespace();
    let kind = fields.next().unwrap_or_default();
    let blob = fields.next().unwrap_or_default();
    if kind != CERT_TYPE || blob.is_empty() || !line.is_ascii() {
        let shown: String = line.chars().take(40).collect();
        return Err(format!(
            "the answer is not an {CERT_TYPE} certificate (it starts {shown:?})"
        ));
    }
    Ok(format!("{line}\n"))
}

fn keygen(args: &[&str], file: &Path) -> Result<String, String> {
    let out = Command::new("ssh-keygen")
        .args(args)
        .arg(file)
        .output()
        .map_err(|e| format!("ssh-keygen: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ssh-keygen {} {}: {}",
            args.join(" "),
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `SHA256:...` fingerprint in `ssh-keygen -l` or `-L` output.
fn fingerprint(text: &str) -> Option<&str> {
    text.split_whitespace().find(|w| w.starts_with("SHA256:"))
}

/// Checks a certificate file against the host key's public half: a host certificate of
/// that key.
pub fn check(cert: &Path, host_pub: &Path) -> Result<(), String> {
    let listing = keygen(&["-L", "-f"], cert)?;
    let kind = listing
        .lines()
        .find_map(|l| l.trim().strip_prefix("Type:"))
        .unwrap_or_default();
    if !kind.trim().ends_with("host certificate") {
        return Err(format!("not a host certificate ({})", kind.trim()));
    }
    let cert_fp = listing
        .lines()
        .find_map(|l| l.trim().strip_prefix("Public key:"))
        .and_then(fingerprint);
    let own = keygen(&["-l", "-f"], host_pub)?;
    match (cert_fp, fingerprint(&own)) {
        (Some(a), Some(b)) if a == b => Ok(()),
        (a, b) => Err(format!(
            "the certificate is for key {} but the host key is {}",
            a.unwrap_or("?"),
            b.unwrap_or("?")
        )),
    }
}

/// Asks `url` to sign `key`'s public half and installs the certificate in `dir`
/// (atomically; nothing is left behind when the answer is refused).
pub fn obtain(url: &str, key: &Path, dir: &Path, http: &dyn Fetch) -> Result<PathBuf, String> {
    let host_pub = key.with_extension("pub");
    let public = std::fs::read(&host_pub).map_err(|e| format!("{}: {e}", host_pub.display()))?;
    let answer = http.post(url, &public)?;
    let line = parse_answer(&answer).map_err(|e| format!("{url}: {e}"))?;
    let dest = dir.join(HOST_CERT);
    let tmp = dir.join(format!("{HOST_CERT}.new"));
    std::fs::write(&tmp, line).map_err(|e| format!("{}: {e}", tmp.display()))?;
    if let Err(e) = check(&tmp, &host_pub) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{url}: {e}"));
    }
    std::fs::rename(&tmp, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let ok = format!("{CERT_TYPE} AAAAIHNzaA== host\n");
        assert_eq!(
            parse_answer(ok.as_bytes()).unwrap(),
            format!("{CERT_TYPE} AAAAIHNzaA== host\n")
        );
        assert!(parse_answer(b"<html>502</html>")
            .unwrap_err()
            .contains("not an"));
        assert!(parse_answer(b"ssh-ed25519 AAAA x")
            .unwrap_err()
            .contains("not an"));
        let two = format!("{CERT_TYPE} A\n{CERT_TYPE} B\n");
        assert!(parse_answer(two.as_bytes())
            .unwrap_err()
            .contains("2 lines"));
        assert!(parse_answer(b"").unwrap_err().contains("0 lines"));
        assert!(parse_answer(&vec![b'a'; MAX_CERT + 1]).is_err());
    }

    fn keygen_to(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&p)
            .status()
            .unwrap();
        assert!(st.success());
        p
    }

    fn sign(ca: &Path, key: &Path, host: bool) -> PathBuf {
        let mut c = Command::new("ssh-keygen");
        c.args(["-q", "-s"]).arg(ca).args(["-I", "t", "-n", "x"]);
        if host {
            c.arg("-h");
        }
        assert!(c.arg(key.with_extension("pub")).status().unwrap().success());
        PathBuf::from(format!("{}-cert.pub", key.display()))
    }

    #[test]
    fn only_a_host_certificate_of_this_key() {
        let d = tempfile::tempdir().unwrap();
        let ca = keygen_to(d.path(), "ca");
        let host = keygen_to(d.path(), "host");
        let other = keygen_to(d.path(), "other");
        let host_pub = host.with_extension("pub");
        check(&sign(&ca, &host, true), &host_pub).unwrap();
        let user_cert = sign(&ca, &host, false);
        assert!(check(&user_cert, &host_pub)
            .unwrap_err()
            .contains("not a host"));
        let foreign = sign(&ca, &other, true);
        assert!(check(&foreign, &host_pub)
            .unwrap_err()
            .contains("is for key"));
    }
}
