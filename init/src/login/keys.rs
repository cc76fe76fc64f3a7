//! What a CA source and a revocation source may contain, checked before anything is
//! installed: garbage from a source never replaces the last good copy.

use base64::Engine as _;

/// Key types sshd accepts as a CA (`TrustedUserCAKeys`).
const TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// The magic at the start of a binary KRL (`ssh-keygen -k`).
pub const KRL_MAGIC: &[u8] = b"SSHKRL\n\0";

/// A checked public key list: the normalized text (one `type base64 [comment]` a line) and
/// the number of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyList {
    /// What goes into the file sshd reads.
    pub text: String,
    /// How many keys.
    pub count: usize,
}

/// Parses one `type base64 [comment]` line; the blob must decode and name the same type.
fn parse_line(line: &str) -> Result<(), String> {
    let mut parts = line.split_whitespace();
    let ty = parts.next().unwrap_or_default();
    if !TYPES.contains(&ty) {
        return Err(format!("unknown key type {:?}", truncate(ty)));
    }
    let b64 = parts.next().ok_or("a key type without key data")?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "key data is not base64".to_string())?;
    // The blob starts with the type as an SSH string: u32 length, then the bytes.
    let len = blob
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    match len.and_then(|n| blob.get(4..4 + n)) {
        Some(t) if t == ty.as_bytes() => Ok(()),
        _ => Err(format!("key data does not hold a {ty} key")),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Checks a CA key list: at least one key, every non-empty non-comment line a public key
/// (certificates, private keys and options are refused).
pub fn parse_ca_keys(data: &[u8]) -> Result<KeyList, String> {
    let text = std::str::from_utf8(data).map_err(|_| "not UTF-8 text".to_string())?;
    let mut out = String::new();
    let mut count = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        parse_line(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        out.push_str(line);
        out.push('\n');
        count += 1;
    }
    if count == 0 {
        return Err("no keys (an empty trust list is never installed)".into());
    }
    Ok(KeyList { text: out, count })
}

/// Checks a revocation source: a binary KRL (by its magic) or a public key list (which
/// may be empty: nothing revoked).
pub fn check_revoked(data: &[u8]) -> Result<(), String> {
    if data.starts_with(KRL_MAGIC) {
        return Ok(());
    }
    let text = std::str::from_utf8(data)
        .map_err(|_| "neither a KRL (no SSHKRL magic) nor a key list".to_string())?;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        parse_line(line).map_err(|e| format!("line {}: {e}", i + 1))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real ed25519 public key (ssh-keygen output).
    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO5XhPxx1+7O/Qt06ihndYMoEIAPn/cC6xuTtwMrMzoP ca@test";

    #[test]
    fn accepts_keys_and_rotation() {
        let two = format!("# company CA\n{KEY}\n\n{KEY} second\n");
        let l = parse_ca_keys(two.as_bytes()).unwrap();
        assert_eq!(l.count, 2);
        assert!(!l.text.contains('#'));
    }

    #[test]
    fn refuses_garbage_and_empty() {
        for bad in [
            "",
            "# only a comment\n",
            "<html>502 Bad Gateway</html>",
            "ssh-ed25519 !!!notbase64",
            "ssh-ed25519",
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIO5XhPxx1+7O/Qt06ihndYMoEIAPn/cC6xuTtwMrMzoP",
            "cert-authority ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO5XhPxx1+7O/Qt06ihndYMoEIAPn/cC6xuTtwMrMzoP",
        ] {
            assert!(parse_ca_keys(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let mixed = format!("{KEY}\ngarbage here\n");
        assert!(parse_ca_keys(mixed.as_bytes())
            .unwrap_err()
            .contains("line 2"));
        assert!(parse_ca_keys(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn revoked_forms() {
        assert!(check_revoked(b"SSHKRL\n\0\0\0\0\x01rest").is_ok());
        assert!(check_revoked(b"").is_ok());
        assert!(check_revoked(KEY.as_bytes()).is_ok());
        assert!(check_revoked(b"<html>").is_err());
        assert!(check_revoked(&[0, 1, 2, 0xff]).is_err());
    }
}
