//! The admin connection to MariaDB/MySQL (mysql_async, the MySQL protocol; no `mysql`
//! command): create a task's account with its grants, drop it, list dbauth's accounts.
//!
//! Statements that carry a password never appear in an error: a failure of one of them
//! is reported by its server error code only.

use std::net::IpAddr;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool};

use super::config::Database;
use super::sql::{self, Grant};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("database {addr}: {what}")]
    Db {
        addr: String,
        what: String,
        #[source]
        err: mysql_async::Error,
    },
    #[error("database {addr}: setting the password of {account} failed (server error {code})")]
    Secret {
        addr: String,
        account: String,
        code: String,
    },
    #[error("database {addr}: no answer within {after:?}")]
    Timeout { addr: String, after: Duration },
}

/// How long one operation (connect + statements) may take.
const DEADLINE: Duration = Duration::from_secs(15);

pub struct Admin {
    pool: Pool,
    addr: String,
}

impl Admin {
    /// A pool for the admin connection (connects lazily).
    pub fn new(db: &Database) -> Admin {
        let opts = OptsBuilder::default()
            .ip_or_hostname(db.host.clone())
            .tcp_port(db.port)
            .user(Some(db.admin_user.clone()))
            .pass(Some(db.admin_password.clone()))
            .prefer_socket(false)
            .tcp_nodelay(true);
        Admin {
            pool: Pool::new(Opts::from(opts)),
            addr: format!("{}:{}", db.host, db.port),
        }
    }

    fn db_err(&self, what: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> AdminError {
        let (addr, what) = (self.addr.clone(), what.into());
        move |err| AdminError::Db { addr, what, err }
    }

    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, AdminError>>,
    ) -> Result<T, AdminError> {
        tokio::time::timeout(DEADLINE, f).await.unwrap_or_else(|_| {
            Err(AdminError::Timeout {
                addr: self.addr.clone(),
                after: DEADLINE,
            })
        })
    }

    /// Creates (or re-keys) `user`@`ip` with `password` and `grants`.
    pub async fn create(
        &self,
        user: &str,
        ip: IpAddr,
        password: &str,
        grants: &[Grant],
    ) -> Result<(), AdminError> {
        self.timed(async {
            let mut c = self.pool.get_conn().await.map_err(self.db_err("connect"))?;
            for (i, st) in sql::create(user, ip, password, grants).iter().enumerate() {
                let r = c.query_drop(st).await;
                match r {
                    Ok(()) => {}
                    Err(e) if i < sql::SECRET_STATEMENTS => {
                        let code = match &e {
                            mysql_async::Error::Server(s) => s.code.to_string(),
                            _ => "none: the connection failed".into(),
                        };
                        return Err(AdminError::Secret {
                            addr: self.addr.clone(),
                            account: format!("{user}@{ip}"),
                            code,
                        });
                    }
                    Err(e) => return Err(self.db_err(st.clone())(e)),
                }
            }
            Ok(())
        })
        .await
    }

    /// Drops `user`@`ip` (no error if it does not exist).
    pub async fn drop_account(&self, user: &str, ip: IpAddr) -> Result<(), AdminError> {
        self.timed(async {
            let mut c = self.pool.get_conn().await.map_err(self.db_err("connect"))?;
            let st = sql::drop(user, ip);
            c.query_drop(&st).await.map_err(self.db_err(st))
        })
        .await
    }

    /// dbauth's accounts that exist, as (user, host).
    pub async fn accounts(&self) -> Result<Vec<(String, String)>, AdminError> {
        self.timed(async {
            let mut c = self.pool.get_conn().await.map_err(self.db_err("connect"))?;
            c.query::<(String, String), _>(sql::LIST_ACCOUNTS)
                .await
                .map_err(self.db_err(sql::LIST_ACCOUNTS))
        })
        .await
    }
}
