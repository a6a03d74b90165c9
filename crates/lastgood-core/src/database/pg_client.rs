//! Opening a PostgreSQL connection as the URL's `sslmode` says (over TCP or a Unix
//! socket), and a PostgreSQL error as one line of text.
//!
//! Every part of lastgood that talks to an application's PostgreSQL server (the
//! migration driver, template backups, rehearsals' scratch databases, schema reads)
//! connects through [`connect`], so `sslmode` and `sslrootcert` mean the same
//! everywhere, and words a server error with [`message`], so the SQLSTATE, detail and
//! hint are never lost. It is not a driver: running migrations and their bookkeeping
//! is [`super::driver`]'s job.
//!
//! It sits below both the URL module and the driver: URLs are parsed data, the driver
//! needs a connection, and with connecting kept in `url.rs` the two imported each other.

use std::path::PathBuf;
use std::sync::Mutex;

use super::url::{PgUrl, SslMode};

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("sslrootcert {}: {source}", path.display())]
    ReadRootCert {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sslrootcert {}: {source}", path.display())]
    ParseRootCert {
        path: PathBuf,
        #[source]
        source: native_tls::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[source] native_tls::Error),
    /// The server refused or could not be reached; shown with [`message`].
    #[error("{}", message(.0))]
    Postgres(#[source] postgres::Error),
}

/// Connects with TLS as `sslmode` asks (libpq's meanings: `prefer` and `require` do not
/// check the certificate, `verify-ca` checks who signed it, `verify-full` also the
/// host name), trusting the system's authorities plus `sslrootcert`. Over Unix sockets
/// `sslmode` is ignored, as libpq ignores it (the server offers no TLS there).
pub fn connect(url: &PgUrl, application_name: &str) -> Result<postgres::Client, ConnectError> {
    connect_with(url, url.client_config(application_name))
}

/// [`connect`] with a configuration the caller tuned (the ledger adds TCP keepalives
/// and a user timeout, so a cut network fails its queries instead of hanging them).
pub fn connect_with(url: &PgUrl, mut config: postgres::Config) -> Result<postgres::Client, ConnectError> {
    config.ssl_mode(match url.sslmode {
        _ if url.sockets_only() => postgres::config::SslMode::Disable,
        SslMode::Disable => postgres::config::SslMode::Disable,
        SslMode::Prefer => postgres::config::SslMode::Prefer,
        _ => postgres::config::SslMode::Require,
    });
    // No TLS at all: skip building a connector (loading the system's authorities costs
    // tens of milliseconds, which every command that opens a team ledger would pay).
    if url.sockets_only() || url.sslmode == SslMode::Disable {
        return config.connect(postgres::NoTls).map_err(ConnectError::Postgres);
    }
    let tls = tls_connector(url)?;
    config.connect(postgres_native_tls::MakeTlsConnector::new(tls)).map_err(ConnectError::Postgres)
}

/// The TLS connector for a URL's `sslmode` and `sslrootcert`, built once per process.
///
/// Building one is the expensive part of a TLS connection: `native-tls` builds OpenSSL's
/// `SslConnector`, which loads OpenSSL's default authorities (the system bundle, about
/// 140 certificates: 30-70 ms on a small machine) even when nothing will be checked, and
/// every `lastgood` command that opens a team ledger over TCP paid it, often twice. So
/// OpenSSL is pointed (through `SSL_CERT_FILE`, only while the connector is built) at what
/// the mode trusts: nothing for `prefer`/`require`, which check no certificate; only
/// `sslrootcert` when one is named, as libpq trusts only it; the system's authorities
/// otherwise. A `SSL_CERT_FILE` the user set is left alone.
fn tls_connector(url: &PgUrl) -> Result<native_tls::TlsConnector, ConnectError> {
    type Built = Vec<((SslMode, Option<PathBuf>), native_tls::TlsConnector)>;
    static BUILT: Mutex<Built> = Mutex::new(Vec::new());
    let key = (url.sslmode, url.sslrootcert.clone());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, tls)) = built.iter().find(|(k, _)| *k == key) {
        return Ok(tls.clone());
    }
    let mut tls = native_tls::TlsConnector::builder();
    match url.sslmode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => {
            // The certificate is not checked, so no authority is needed.
            tls.danger_accept_invalid_certs(true).danger_accept_invalid_hostnames(true);
        }
        SslMode::VerifyCa => {
            tls.danger_accept_invalid_hostnames(true);
        }
        SslMode::VerifyFull => {}
    }
    // What is trusted is known exactly unless a mode that checks names no sslrootcert.
    let exact = !matches!(url.sslmode, SslMode::VerifyCa | SslMode::VerifyFull) || url.sslrootcert.is_some();
    if exact {
        tls.disable_built_in_roots(true);
    }
    if let Some(path) = &url.sslrootcert {
        let pem = std::fs::read(path).map_err(|source| ConnectError::ReadRootCert { path: path.clone(), source })?;
        let cert = native_tls::Certificate::from_pem(&pem)
            .map_err(|source| ConnectError::ParseRootCert { path: path.clone(), source })?;
        tls.add_root_certificate(cert);
    }
    let tls = if exact {
        // SAFETY: the variable is set and put back while BUILT is locked, and every
        // connector of this process is built here under that lock, so no other OpenSSL
        // default-path load reads it meanwhile. No other thread of lastgood reads
        // SSL_CERT_FILE; a child spawned on another thread in this window would inherit
        // it, and lastgood spawns none while it opens a database connection.
        let theirs = std::env::var_os("SSL_CERT_FILE");
        unsafe { std::env::set_var("SSL_CERT_FILE", "/dev/null") };
        let tls = tls.build();
        match theirs {
            Some(v) => unsafe { std::env::set_var("SSL_CERT_FILE", v) },
            None => unsafe { std::env::remove_var("SSL_CERT_FILE") },
        }
        tls
    } else {
        tls.build()
    }
    .map_err(ConnectError::Tls)?;
    built.push((key, tls.clone()));
    Ok(tls)
}

/// A PostgreSQL error on one line: the server's severity, message and SQLSTATE with its
/// detail and hint, or the client's error with its causes.
pub fn message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code());
            if let Some(d) = db.detail() {
                m.push_str(&format!("; detail: {d}"));
            }
            if let Some(h) = db.hint() {
                m.push_str(&format!("; hint: {h}"));
            }
            m
        }
        None => {
            // The client error's Display can carry its source; keep it one line.
            let mut m = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                m.push_str(&format!(": {s}"));
                src = s.source();
            }
            m
        }
    }
}
