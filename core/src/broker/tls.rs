//! TLS for the local MQTT server: client certificates must chain to the device
//! CA; the server certificate can be replaced while connections stay up.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

use crate::certs::{self, CertError};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("{0}: {1}")]
    Rustls(String, rustls::Error),
    #[error("device CA {0}: {1}")]
    Verifier(String, String),
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Loads a certificate chain and key into a `CertifiedKey`.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = certs::load_certs(cert)?;
    let key_der = certs::load_key(key)?;
    let signer = provider().key_provider.load_private_key(key_der).map_err(|e| TlsError::Rustls(key.display().to_string(), e))?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

/// Serves the current server certificate; [`ServerCertResolver::replace`] swaps it
/// for new handshakes without touching established connections.
#[derive(Debug)]
pub struct ServerCertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl ServerCertResolver {
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        Self { current: ArcSwap::new(key) }
    }

    pub fn replace(&self, key: Arc<CertifiedKey>) {
        self.current.store(key);
    }
}

impl ResolvesServerCert for ServerCertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Builds the server configuration: TLS 1.2 and 1.3, client certificate required
/// and verified against the CA certificates in `device_ca`.
pub fn server_config(device_ca: &Path, resolver: Arc<ServerCertResolver>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs::load_certs(device_ca)? {
        roots.add(c).map_err(|e| TlsError::Rustls(device_ca.display().to_string(), e))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::Verifier(device_ca.display().to_string(), e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls("TLS versions".to_string(), e))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    Ok(Arc::new(config))
}
