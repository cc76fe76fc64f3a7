//! The durable record of what dbauth granted (SQLite, one row per task), so a restart
//! knows which accounts exist and can drop those of tasks that ended meanwhile.
//!
//! A row is written BEFORE the account is created and deleted AFTER it is dropped: after
//! a crash at any point the record lists every account that may exist. No password is
//! stored.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("grant record {path}")]
    Sqlite {
        path: PathBuf,
        #[source]
        err: rusqlite::Error,
    },
    #[error("grant record {path}: bad row for task {task}")]
    Row { path: PathBuf, task: String },
}

/// One task's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub task_id: String,
    pub app: String,
    pub ip: IpAddr,
    pub account: String,
    pub databases: Vec<String>,
    /// Unix milliseconds.
    pub granted_at: u64,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating) the record at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let e = |err| StoreError::Sqlite {
            path: path.into(),
            err,
        };
        let conn = Connection::open(path).map_err(e)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS grants (
                 task_id TEXT PRIMARY KEY, app TEXT NOT NULL, ip TEXT NOT NULL,
                 account TEXT NOT NULL, databases TEXT NOT NULL, granted_at INTEGER NOT NULL)",
        )
        .map_err(e)?;
        Ok(Store {
            conn,
            path: path.into(),
        })
    }

    fn err(&self, err: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            err,
        }
    }

    /// Records (or replaces) a task's account.
    pub fn put(&self, r: &Record) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO grants VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    r.task_id,
                    r.app,
                    r.ip.to_string(),
                    r.account,
                    r.databases.join(" "),
                    r.granted_at as i64
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn delete(&self, task_id: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM grants WHERE task_id = ?1", params![task_id])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn get(&self, task_id: &str) -> Result<Option<Record>, StoreError> {
        Ok(self.all()?.into_iter().find(|r| r.task_id == task_id))
    }

    /// Every record, by task id.
    pub fn all(&self) -> Result<Vec<Record>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT task_id, app, ip, account, databases, granted_at FROM grants ORDER BY task_id")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, i64>(5)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (task_id, app, ip, account, dbs, at) = row.map_err(|e| self.err(e))?;
            let ip = ip.parse().map_err(|_| StoreError::Row {
                path: self.path.clone(),
                task: task_id.clone(),
            })?;
            out.push(Record {
                task_id,
                app,
                ip,
                account,
                databases: dbs.split_whitespace().map(str::to_string).collect(),
                granted_at: u64::try_from(at).unwrap_or(0),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.sqlite");
        let r = Record {
            task_id: "shop_web.1".into(),
            app: "/shop/web".into(),
            ip: "10.0.0.5".parse().unwrap(),
            account: "bt_1".into(),
            databases: vec!["a".into(), "b".into()],
            granted_at: 7,
        };
        {
            let s = Store::open(&path).unwrap();
            s.put(&r).unwrap();
            s.put(&Record {
                task_id: "x.2".into(),
                ..r.clone()
            })
            .unwrap();
            s.delete("x.2").unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.all().unwrap(), vec![r.clone()]);
        assert_eq!(s.get("shop_web.1").unwrap(), Some(r));
        assert_eq!(s.get("nope").unwrap(), None);
    }
}
