//! TLS for the connections to PostgreSQL (the privacy policy promises TLS
//! for data in transit). `sslmode=require` in `--database` makes every
//! connection TLS (rustls, TLS 1.2+), with the server's certificate checked
//! against the system's roots plus `--database-ca-file` PEM files and its
//! name against the URL's host (stricter than libpq's `require`, like its
//! `verify-full`). Without it the connection is plain, which is refused for
//! any host but this machine's loopback or a Unix socket: personal data
//! (sealed, but with its ids, sizes and timing) never crosses a network in
//! the clear.

use std::net::IpAddr;
use std::path::PathBuf;

use tokio_postgres::config::{Host, SslMode};

use crate::store::StoreError;

/// How a node connects: TLS (with this trust) or plain.
#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls(tokio_postgres_rustls::MakeRustlsConnect),
}

/// The transport `config` asks for, refusing plain connections that leave
/// the machine.
pub fn transport(
    config: &tokio_postgres::Config,
    ca_files: &[PathBuf],
) -> Result<Transport, StoreError> {
    if config.get_ssl_mode() == SslMode::Require {
        let client = crate::tls::client_config(ca_files).map_err(StoreError::Io)?;
        return Ok(Transport::Tls(
            tokio_postgres_rustls::MakeRustlsConnect::new(client),
        ));
    }
    // `hostaddr` wins over `host` when given: the address actually dialled.
    if let Some(addr) = config.get_hostaddrs().iter().find(|a| !a.is_loopback()) {
        return Err(StoreError::Io(format!(
            "--database: the connection to {addr} would carry data in plaintext; \
             add sslmode=require to the URL (and --database-ca-file for a private CA)"
        )));
    }
    if let Some(host) = config.get_hosts().iter().find(|h| !is_local(h)) {
        let name = match host {
            Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            Host::Unix(path) => path.display().to_string(),
        };
        return Err(StoreError::Io(format!(
            "--database: the connection to {name} would carry data in plaintext; \
             add sslmode=require to the URL (and --database-ca-file for a private CA)"
        )));
    }
    if !ca_files.is_empty() {
        return Err(StoreError::Io(
            "--database-ca-file needs sslmode=require in --database".into(),
        ));
    }
    Ok(Transport::Plain)
}

/// This machine: a loopback address, `localhost`, or a Unix socket.
fn is_local(host: &Host) -> bool {
    match host {
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> tokio_postgres::Config {
        url.parse().unwrap()
    }

    #[test]
    fn plain_only_on_this_machine() {
        for local in [
            "postgres://u:p@127.0.0.1:5432/db",
            "postgres://u:p@localhost/db",
            "postgres://u:p@[::1]:5432/db",
            "postgres://u:p@127.0.0.1/db?sslmode=disable",
        ] {
            assert!(
                matches!(transport(&parse(local), &[]), Ok(Transport::Plain)),
                "{local}"
            );
        }
        for remote in [
            "postgres://u:p@db.internal:5432/db",
            "postgres://u:p@10.0.0.5/db?sslmode=prefer",
            "postgres://u:p@127.0.0.1,db2.internal/db",
            "postgres://u:p@/db?hostaddr=10.0.0.5",
            "postgres://u:p@localhost/db?hostaddr=10.0.0.5",
        ] {
            let Err(e) = transport(&parse(remote), &[]) else {
                panic!("{remote} accepted in plaintext");
            };
            assert!(e.to_string().contains("sslmode=require"), "{e}");
        }
        assert!(matches!(
            transport(&parse("postgres://u:p@db.internal/db?sslmode=require"), &[]),
            Ok(Transport::Tls(_))
        ));
    }

    #[test]
    fn a_ca_file_without_tls_is_refused() {
        let e = transport(
            &parse("postgres://u:p@127.0.0.1/db"),
            &[PathBuf::from("ca.pem")],
        )
        .err()
        .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("sslmode=require")));
    }
}
