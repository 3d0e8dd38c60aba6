//! Client TLS: each device presents its own certificate and trusts the CA that
//! signed the server certificate.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", path.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("{}: no certificate", path.display()));
    }
    Ok(certs)
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).with_context(|| format!("reading key {}", path.display()))
}

/// Roots trusted by every client (the CA of the server certificate).
pub fn roots(ca: &Path) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(ca)? {
        roots.add(c).context("adding the server CA")?;
    }
    Ok(Arc::new(roots))
}

/// Client configuration of one device: TLS 1.2/1.3 (rustls defaults, aws-lc-rs),
/// authenticating with `cert`/`key`.
pub fn client_config(roots: Arc<RootCertStore>, cert: &Path, key: &Path) -> Result<Arc<ClientConfig>> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
        .context("client certificate")?;
    Ok(Arc::new(config))
}
