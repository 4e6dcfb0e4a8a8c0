//! Opening a PostgreSQL connection with the TLS `database.url` asks for. The URL takes libpq's
//! parameters: `sslmode` (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`),
//! `sslrootcert` (a PEM file, or `system`), `sslcert` and `sslkey`. tokio-postgres reads neither
//! the verifying modes nor the files, so they are taken out of the URL here and applied with rustls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use diesel::ConnectionError;
use diesel_async::AsyncPgConnection;
use hookwire_core::config::Profile;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// How much of TLS a connection insists on, as libpq names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    /// Plain.
    Disable,
    /// TLS when the server offers it, unverified; plain otherwise. libpq's default.
    Prefer,
    /// TLS, the server's certificate not verified (verified like `verify-ca` when `sslrootcert`
    /// is given, as libpq does).
    Require,
    /// TLS, the certificate signed by a trusted authority, whatever name it carries.
    VerifyCa,
    /// TLS, the certificate signed by a trusted authority and issued for the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> anyhow::Result<Self> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => anyhow::bail!("sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"),
        })
    }

    /// Whether every byte to the server is encrypted (`prefer` may fall back to plain).
    pub fn encrypted(self) -> bool {
        self >= Self::Require
    }
}

/// A parsed `database.url`: what tokio-postgres connects with, and the TLS to wrap it in.
pub struct Target {
    config: tokio_postgres::Config,
    mode: SslMode,
    root_cert: Option<PathBuf>,
    client_identity: Option<(PathBuf, PathBuf)>,
}

impl Target {
    pub fn parse(database_url: &str) -> anyhow::Result<Self> {
        let mut url = url::Url::parse(database_url).context("database.url is not a URL")?;
        anyhow::ensure!(
            matches!(url.scheme(), "postgres" | "postgresql"),
            "database.url must start with postgres:// or postgresql://"
        );
        let (mut mode, mut root_cert, mut cert, mut key) = (SslMode::Prefer, None, None, None);
        // The other parameters pass on as written: re-encoding would turn `%20` into `+`, which
        // tokio-postgres does not read as a space.
        let mut rest = Vec::new();
        for raw in url.query().unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let Some((name, value)) = url::form_urlencoded::parse(raw.as_bytes()).next() else {
                continue;
            };
            match &*name {
                "sslmode" => mode = SslMode::parse(&value)?,
                "sslrootcert" => root_cert = Some(PathBuf::from(&*value)),
                "sslcert" => cert = Some(PathBuf::from(&*value)),
                "sslkey" => key = Some(PathBuf::from(&*value)),
                _ => rest.push(raw.to_owned()),
            }
        }
        let client_identity = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!("database.url: sslcert and sslkey go together; give both or neither"),
        };
        if mode == SslMode::Require && root_cert.is_some() {
            mode = SslMode::VerifyCa;
        }
        let rest = rest.join("&");
        url.set_query(Some(rest.as_str()).filter(|q| !q.is_empty()));
        let mut config: tokio_postgres::Config = url.as_str().parse().context("database.url")?;
        config.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        Ok(Self {
            config,
            mode,
            root_cert,
            client_identity,
        })
    }

    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The rustls settings for this target's mode, reading its certificate files.
    fn tls(&self) -> anyhow::Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => Arc::new(Unverified(provider)),
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let roots = Arc::new(self.roots()?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .context("building the certificate verifier")?;
                if self.mode == SslMode::VerifyCa {
                    Arc::new(AnyName(webpki))
                } else {
                    webpki
                }
            }
        };
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        Ok(match &self.client_identity {
            Some((cert, key)) => {
                let certs = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .with_context(|| format!("reading sslcert {}", cert.display()))?;
                let key =
                    PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading sslkey {}", key.display()))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .context("sslcert and sslkey")?
            }
            None => builder.with_no_client_auth(),
        })
    }

    /// The authorities a verifying mode trusts: `sslrootcert`'s, or the system's.
    fn roots(&self) -> anyhow::Result<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        match self.root_cert.as_deref() {
            Some(path) if path != Path::new("system") => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .with_context(|| format!("reading sslrootcert {}", path.display()))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                anyhow::ensure!(added > 0, "sslrootcert {} holds no usable certificate", path.display());
            }
            _ => {
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                anyhow::ensure!(
                    !roots.is_empty(),
                    "no system certificate authorities found; set sslrootcert"
                );
            }
        }
        Ok(roots)
    }
}

/// Opens a connection to `database_url`; what the pool and the migrations use.
pub async fn connect(database_url: &str) -> diesel::ConnectionResult<AsyncPgConnection> {
    let bad = |e: anyhow::Error| ConnectionError::BadConnection(format!("{e:#}"));
    let target = Target::parse(database_url).map_err(bad)?;
    let failed = |e: tokio_postgres::Error| ConnectionError::BadConnection(error_chain(&e));
    let mut conn = if target.mode == SslMode::Disable {
        let (client, connection) = target.config.connect(tokio_postgres::NoTls).await.map_err(failed)?;
        AsyncPgConnection::try_from_client_and_connection(client, connection).await?
    } else {
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(target.tls().map_err(bad)?);
        let (client, connection) = target.config.connect(tls).await.map_err(failed)?;
        AsyncPgConnection::try_from_client_and_connection(client, connection).await?
    };
    english_messages(&mut conn).await;
    Ok(conn)
}

/// Asks for PostgreSQL's messages in English on a connection whose `lc_messages` is another
/// language. diesel passes on a SQLSTATE only for constraint and serialization errors, so a
/// deadlock (40P01) and a statement timeout (57014) are told apart by their English message
/// (`hookwire_http::ApiError`). Changing `lc_messages` needs a superuser or
/// `GRANT SET ON PARAMETER lc_messages`; without it the registry says so once.
async fn english_messages(conn: &mut AsyncPgConnection) {
    use diesel_async::{RunQueryDsl as _, SimpleAsyncConnection as _};
    static WARNED: std::sync::Once = std::sync::Once::new();
    let Ok(current) = diesel::select(current_setting("lc_messages"))
        .get_result::<String>(conn)
        .await
    else {
        return;
    };
    let english = current.is_empty()
        || current.starts_with("en")
        || current.starts_with("C.")
        || matches!(current.as_str(), "C" | "POSIX");
    if !english {
        if let Err(e) = conn.batch_execute("SET lc_messages TO 'C'").await {
            WARNED.call_once(|| {
                tracing::warn!(
                    lc_messages = %current, error = %e,
                    "PostgreSQL answers in another language and lc_messages cannot be changed: \
                     deadlocks and statement timeouts will answer 500 instead of 503"
                );
            });
        }
    }
}

diesel::define_sql_function! {
    /// PostgreSQL's `current_setting(name)`.
    fn current_setting(name: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// An error with its causes: a refused certificate is only named in the innermost one.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// Refuses a plain or unverifiable `database.url` in production unless `allow_plaintext`.
pub fn check(database_url: &str, profile: Profile, allow_plaintext: bool) -> anyhow::Result<()> {
    let target = Target::parse(database_url)?;
    if profile == Profile::Production && !target.mode.encrypted() && !allow_plaintext {
        anyhow::bail!(
            "database.url does not require TLS in the production profile; add \
             sslmode=verify-full (and sslrootcert=<CA file>), or set database.allow_plaintext = true"
        );
    }
    if target.mode != SslMode::Disable {
        target.tls()?;
    }
    Ok(())
}

/// Accepts any certificate, still checking that the server holds its key: `prefer` and `require`.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The full verification but for the host name: `verify-ca`.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name is checked last, after the chain: failing only on it means the chain held.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_parameters_are_read_and_taken_out_of_the_url() {
        let t = Target::parse(
            "postgres://u:p@db.internal:6432/hw?sslmode=verify-full&sslrootcert=/ca.pem&options=-c%20statement_timeout%3D30s",
        )
        .unwrap();
        assert_eq!(t.mode(), SslMode::VerifyFull);
        assert_eq!(t.root_cert.as_deref(), Some(Path::new("/ca.pem")));
        assert_eq!(t.config.get_options(), Some("-c statement_timeout=30s"));
        assert_eq!(t.config.get_dbname(), Some("hw"));
        assert_eq!(t.config.get_ports(), &[6432]);
        // libpq's default, and `require` with an authority turning into `verify-ca`.
        assert_eq!(Target::parse("postgres://u@h/d").unwrap().mode(), SslMode::Prefer);
        let t = Target::parse("postgres://u@h/d?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert_eq!(t.mode(), SslMode::VerifyCa);
        let err = Target::parse("postgres://u@h/d?sslmode=verify_full").err().unwrap();
        assert!(err.to_string().contains("verify-full"), "{err}");
        let err = Target::parse("postgres://u@h/d?sslcert=/c.pem").err().unwrap();
        assert!(err.to_string().contains("go together"), "{err}");
    }

    #[test]
    fn production_refuses_a_database_connection_that_may_be_plain() {
        for url in [
            "postgres://u@h/d",
            "postgres://u@h/d?sslmode=disable",
            "postgres://u@h/d?sslmode=prefer",
        ] {
            let err = check(url, Profile::Production, false).unwrap_err().to_string();
            assert!(
                err.contains("sslmode=verify-full") && err.contains("allow_plaintext"),
                "{url}: {err}"
            );
            assert!(check(url, Profile::Production, true).is_ok(), "{url}");
            assert!(check(url, Profile::Development, false).is_ok(), "{url}");
        }
        assert!(check("postgres://u@h/d?sslmode=require", Profile::Production, false).is_ok());
        // A verifying mode's authority file is read before the first connection.
        let err = check(
            "postgres://u@h/d?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            Profile::Production,
            false,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/ca.pem"), "{err:#}");
    }
}
