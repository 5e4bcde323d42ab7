//! TLS to PostgreSQL, with `sslmode` meaning what it means to libpq:
//!
//! - `disable`: never;
//! - `allow`, `prefer` (the default): when the server offers it, without
//!   checking who the server is;
//! - `require`: always, without checking who the server is — unless a root
//!   certificate is given, then as `verify-ca` (as libpq does);
//! - `verify-ca`: always, and the server's certificate must chain to a trusted
//!   root (`sslrootcert=FILE`, `sslrootcert=system`, else
//!   `~/.postgresql/root.crt`);
//! - `verify-full`: as `verify-ca`, and the certificate must name the host.
//!
//! rustls does the work (the `ring` provider); a Unix socket never uses TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where trusted root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    /// The operating system's store (`sslrootcert=system`).
    System,
}

/// A connection's TLS settings, from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    pub root_cert: Option<RootCert>,
}

impl Default for Tls {
    fn default() -> Tls {
        Tls {
            mode: SslMode::Prefer,
            root_cert: None,
        }
    }
}

/// Take `sslmode` and `sslrootcert` out of a URL's query: the URL the driver
/// reads (its own `sslmode`: disable, prefer or require), and the settings.
pub fn split_url(url: &str) -> Result<(String, Tls), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), Tls::default()));
    };
    let mut tls = Tls::default();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if let Some(mode) = pair.strip_prefix("sslmode=") {
            tls.mode = SslMode::parse(mode).ok_or_else(|| {
                format!(
                    "`sslmode={mode}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )
            })?;
        } else if let Some(root) = pair.strip_prefix("sslrootcert=") {
            let root = percent_decode(root);
            tls.root_cert = Some(if root == "system" {
                RootCert::System
            } else {
                RootCert::File(PathBuf::from(root))
            });
        } else if pair.starts_with("sslcert=")
            || pair.starts_with("sslkey=")
            || pair.starts_with("sslpassword=")
            || pair.starts_with("sslcrl=")
        {
            return Err(format!(
                "`{}` is not supported: objectos authenticates to PostgreSQL with a password, not a client certificate",
                pair.split('=').next().unwrap_or(pair)
            ));
        } else {
            kept.push(pair.to_string());
        }
    }
    kept.push(
        match tls.mode {
            SslMode::Disable => "sslmode=disable",
            SslMode::Allow | SslMode::Prefer => "sslmode=prefer",
            _ => "sslmode=require",
        }
        .to_string(),
    );
    Ok((format!("{base}?{}", kept.join("&")), tls))
}

fn percent_decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|b| hex(*b)),
            bytes.get(i + 2).and_then(|b| hex(*b)),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Tls {
    /// Whether the server's certificate is checked against trusted roots.
    pub fn verifies_chain(&self) -> bool {
        matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull)
            || (self.mode == SslMode::Require && self.root_cert.is_some())
    }

    /// What the settings mean, for `doctor`.
    pub fn describe(&self) -> String {
        let roots = match &self.root_cert {
            Some(RootCert::File(p)) => format!("`{}`", p.display()),
            Some(RootCert::System) => "the system's roots".into(),
            None => "`~/.postgresql/root.crt`".into(),
        };
        match self.mode {
            SslMode::VerifyFull => {
                format!(
                    "sslmode=verify-full: certificate checked against {roots} and the host name"
                )
            }
            _ if self.verifies_chain() => format!(
                "sslmode={}: certificate checked against {roots} (not the host name)",
                self.mode.as_str()
            ),
            mode => format!("sslmode={}", mode.as_str()),
        }
    }

    /// The rustls configuration for these settings; `None` for `disable`.
    pub fn client_config(&self) -> Result<Option<rustls::ClientConfig>, String> {
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let verifier: Arc<dyn ServerCertVerifier> = if self.verifies_chain() {
            let roots = self.roots()?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("TLS: {e}"))?;
            if self.mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        } else {
            Arc::new(Unverified(provider))
        };
        Ok(Some(
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth(),
        ))
    }

    fn roots(&self) -> Result<RootCertStore, String> {
        let mut store = RootCertStore::empty();
        let file = match &self.root_cert {
            Some(RootCert::System) => {
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    let _ = store.add(cert);
                }
                if store.is_empty() {
                    return Err(
                        "`sslrootcert=system`: the system holds no root certificates".into(),
                    );
                }
                return Ok(store);
            }
            Some(RootCert::File(path)) => path.clone(),
            None => {
                let home = std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_default();
                let default = home.join(".postgresql/root.crt");
                if !default.exists() {
                    return Err(format!(
                        "`sslmode={}` checks the server's certificate, and no root certificate is given",
                        self.mode.as_str()
                    ));
                }
                default
            }
        };
        for cert in read_certs(&file)? {
            store
                .add(cert)
                .map_err(|e| format!("`{}`: {e}", file.display()))?;
        }
        Ok(store)
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read the root certificate `{}`: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("`{}` is not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("`{}` holds no certificate", path.display()));
    }
    Ok(certs)
}

/// `verify-ca`: the chain must verify; the name need not match.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
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

/// `prefer` and `require` without a root: encrypted, the server unchecked (the
/// handshake's signatures still are).
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_settings_leave_the_url_and_the_driver_gets_its_own_mode() {
        let (url, tls) = split_url(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=5",
        )
        .unwrap();
        assert_eq!(url, "postgres://u@h/db?connect_timeout=5&sslmode=require");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(RootCert::File("/etc/ca.pem".into())));
        let (url, tls) = split_url("postgres://u@h/db").unwrap();
        assert_eq!(url, "postgres://u@h/db");
        assert_eq!(tls, Tls::default());
        let (url, tls) = split_url("postgres://u@h/db?sslmode=allow").unwrap();
        assert_eq!(url, "postgres://u@h/db?sslmode=prefer");
        assert!(!tls.verifies_chain());
        let (_, tls) = split_url("postgres://u@h/db?sslmode=require&sslrootcert=system").unwrap();
        assert!(tls.verifies_chain());
        assert!(split_url("postgres://u@h/db?sslmode=sometimes").is_err());
        assert!(split_url("postgres://u@h/db?sslcert=c.pem").is_err());
        let missing = Tls {
            mode: SslMode::VerifyCa,
            root_cert: Some(RootCert::File("/nonexistent/ca.pem".into())),
        };
        let err = missing.client_config().unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
