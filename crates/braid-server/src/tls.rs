//! TLS for both listeners (rustls with the aws-lc-rs provider): a certificate chain
//! and key in PEM files, and optionally a CA whose certificates clients must present.

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::ServerError;

/// Where the server's certificate and key are, and whether clients must show one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate chain, PEM (the server's certificate first).
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by a CA in this PEM file.
    pub client_ca: Option<PathBuf>,
}

fn bad(why: String) -> ServerError {
    ServerError::Config { why }
}

/// An acceptor offering `alpn` (`h2`, `http/1.1`) in preference order.
pub(crate) fn acceptor(config: &TlsConfig, alpn: &[&[u8]]) -> Result<TlsAcceptor, ServerError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| bad(format!("TLS certificate {}: {e}", config.cert.display())))?;
    if certs.is_empty() {
        return Err(bad(format!("TLS certificate {}: no certificate in it", config.cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .map_err(|e| bad(format!("TLS key {}: {e}", config.key.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS: {e}")))?;
    let builder = match &config.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .map_err(|e| bad(format!("client CA {}: {e}", ca.display())))?
            {
                let cert = cert.map_err(|e| bad(format!("client CA {}: {e}", ca.display())))?;
                roots.add(cert).map_err(|e| bad(format!("client CA {}: {e}", ca.display())))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| bad(format!("client CA {}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder
        .with_single_cert(certs, key)
        .map_err(|e| bad(format!("TLS certificate and key do not fit: {e}")))?;
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(server)))
}
