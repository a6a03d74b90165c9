//! A fresh PostgreSQL database per test, on the server `LASTGOOD_TEST_PG` names, dropped
//! (with any template backups taken of it) when the test ends.
//!
//! Only tests use it: `database/mod.rs` declares it under `#[cfg(test)]`. Tests that
//! touch PostgreSQL in any module of the database folder share this one helper, so
//! they create and clean up their databases the same way.

use std::path::Path;

use super::url::{DbUrl, PgUrl};

/// A fresh PostgreSQL database for one test, dropped at the end.
pub(crate) struct TestPg {
    pub(crate) url: DbUrl,
    admin: PgUrl,
    name: String,
}

impl TestPg {
    pub(crate) fn new(tag: &str) -> Self {
        let base = std::env::var("LASTGOOD_TEST_PG").unwrap_or_else(|_| {
            panic!("LASTGOOD_TEST_PG is not set: run `eval \"$(scripts/services.sh)\"` (scripts/test.sh does) to start PostgreSQL")
        });
        let DbUrl::Postgres(admin) = DbUrl::parse(&base, Path::new("/")).expect("LASTGOOD_TEST_PG") else {
            panic!("LASTGOOD_TEST_PG must be a postgres:// URL")
        };
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("lg_{tag}_{}_{n}", std::process::id());
        let mut c =
            admin.client_config("lastgood-test").connect(::postgres::NoTls).expect("connect to the test server");
        // Separate calls: a multi-statement string runs as one transaction block, which
        // CREATE DATABASE refuses.
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).expect("drop an old test db");
        c.batch_execute(&format!("CREATE DATABASE {name}")).expect("create the test db");
        Self { url: DbUrl::Postgres(admin.with_database(&name)), admin, name }
    }

    pub(crate) fn client(&self) -> ::postgres::Client {
        let DbUrl::Postgres(p) = &self.url else { unreachable!() };
        p.client_config("lastgood-test").connect(::postgres::NoTls).expect("connect")
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        if let Ok(mut c) = self.admin.client_config("lastgood-test").connect(::postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
            // Template backups of this database.
            if let Ok(rows) = c.query(
                "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
                &[&format!("lastgood_backup_{}_", self.name)],
            ) {
                for r in rows {
                    let name: String = r.get(0);
                    let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
                }
            }
        }
    }
}
