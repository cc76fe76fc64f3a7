//! The statements dbauth runs, built from validated names only (see [`super::names`]):
//! identifiers in backticks, account parts and the generated password in single quotes,
//! each with its quote character doubled anyway. Every statement is idempotent
//! (REFERENCE.md section 9), so a retry or a restart half-way repeats them safely.

use std::net::IpAddr;

/// `` `name` `` with backticks doubled.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `'text'` with quotes and backslashes escaped.
pub fn string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// `'user'@'ip'`.
pub fn account(user: &str, ip: IpAddr) -> String {
    format!("{}@{}", string(user), string(&ip.to_string()))
}

/// One database and its privileges (canonical spellings from [`super::names::privilege`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub database: String,
    pub privileges: Vec<&'static str>,
}

/// Creates (or re-keys) the account and grants each database. The first two statements
/// carry the password: their errors must never be shown with the statement.
pub fn create(user: &str, ip: IpAddr, password: &str, grants: &[Grant]) -> Vec<String> {
    let acc = account(user, ip);
    let pw = string(password);
    let mut v = vec![
        format!("CREATE USER IF NOT EXISTS {acc} IDENTIFIED BY {pw}"),
        format!("ALTER USER {acc} IDENTIFIED BY {pw}"),
    ];
    for g in grants {
        v.push(format!(
            "GRANT {} ON {}.* TO {acc}",
            g.privileges.join(", "),
            ident(&g.database)
        ));
    }
    v
}

/// How many leading statements of [`create`] carry the password.
pub const SECRET_STATEMENTS: usize = 2;

/// Drops the account (and with it its grants).
pub fn drop(user: &str, ip: IpAddr) -> String {
    format!("DROP USER IF EXISTS {}", account(user, ip))
}

/// The accounts dbauth made, as (user, host) rows.
pub const LIST_ACCOUNTS: &str = r"SELECT User, Host FROM mysql.user WHERE User LIKE 'bt\_%'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let g = [Grant {
            database: "shop".into(),
            privileges: vec!["SELECT", "INSERT"],
        }];
        assert_eq!(
            create("bt_ab", ip, "pw", &g),
            [
                "CREATE USER IF NOT EXISTS 'bt_ab'@'10.1.2.3' IDENTIFIED BY 'pw'",
                "ALTER USER 'bt_ab'@'10.1.2.3' IDENTIFIED BY 'pw'",
                "GRANT SELECT, INSERT ON `shop`.* TO 'bt_ab'@'10.1.2.3'",
            ]
        );
        assert_eq!(drop("bt_ab", ip), "DROP USER IF EXISTS 'bt_ab'@'10.1.2.3'");
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(string(r"a'\"), r"'a''\\'");
    }
}
