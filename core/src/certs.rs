//! Local certificate authorities and the certificates they sign (docs/config.md, docs/cli.md "ggcore certs").
//!
//! * group CA (`certs/group-ca.pem`): signs the core's MQTT server certificate;
//!   devices trust it.
//! * device CA (`certs/device-ca.pem`): signs device certificates; the default
//!   `deviceCaPath`.
//!
//! Keys are RSA 2048 like the original's and are written mode 0600.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    RsaKeySize, SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

use crate::layout::Layout;

/// Server certificates live this long and are renewed when less than
/// [`SERVER_CERT_RENEW_BEFORE`] remains.
pub const SERVER_CERT_LIFETIME: Duration = Duration::days(30);
pub const SERVER_CERT_RENEW_BEFORE: Duration = Duration::days(7);
const CA_LIFETIME: Duration = Duration::days(3650);
const DEVICE_CERT_LIFETIME: Duration = Duration::days(1825);

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Pem(PathBuf, String),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("'{0}' is not a valid thing name (1-128 characters of [a-zA-Z0-9:_-])")]
    BadThingName(String),
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |e| CertError::Io(p.to_path_buf(), e)
}

/// Writes `data` to `path` atomically with the given mode.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), CertError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(io(&tmp))?;
    // Exactly `mode`, whatever the umask (`ggcore run`'s is 077).
    f.set_permissions(fs::Permissions::from_mode(mode)).map_err(io(&tmp))?;
    f.write_all(data).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

fn random_serial() -> SerialNumber {
    let mut b = *uuid::Uuid::new_v4().as_bytes();
    b[0] &= 0x7f; // positive
    SerialNumber::from_slice(&b)
}

fn new_key() -> Result<KeyPair, CertError> {
    Ok(KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)?)
}

fn base_params(cn: &str, lifetime: Duration) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::hours(1);
    p.not_after = now + lifetime;
    p.serial_number = Some(random_serial());
    p
}

/// A certificate authority loaded from disk, able to sign.
pub struct CertificateAuthority {
    pub cert_pem: String,
    key: KeyPair,
}

impl CertificateAuthority {
    /// Loads the CA at (`cert`, `key`), making it first when either is missing.
    pub fn load_or_create(cert: &Path, key: &Path, cn: &str) -> Result<(Self, bool), CertError> {
        if cert.exists() && key.exists() {
            let cert_pem = fs::read_to_string(cert).map_err(io(cert))?;
            let key_pem = fs::read_to_string(key).map_err(io(key))?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| CertError::Pem(key.to_path_buf(), e.to_string()))?;
            return Ok((Self { cert_pem, key }, false));
        }
        let kp = new_key()?;
        let mut p = base_params(cn, CA_LIFETIME);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let c = p.self_signed(&kp)?;
        write_file(key, kp.serialize_pem().as_bytes(), 0o600)?;
        write_file(cert, c.pem().as_bytes(), 0o644)?;
        Ok((Self { cert_pem: c.pem(), key: kp }, true))
    }

    fn issuer(&self) -> Result<Issuer<'_, &KeyPair>, CertError> {
        Ok(Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?)
    }
}

/// The group CA and the device CA of a root, made where missing.
pub struct LocalCas {
    pub group: CertificateAuthority,
    pub device: CertificateAuthority,
    /// Files that this call created.
    pub created: Vec<PathBuf>,
}

pub fn ensure_cas(layout: &Layout) -> Result<LocalCas, CertError> {
    let mut created = Vec::new();
    let (group, made) = CertificateAuthority::load_or_create(&layout.group_ca_cert(), &layout.group_ca_key(), "ggcore Group CA")?;
    if made {
        created.push(layout.group_ca_cert());
    }
    let (device, made) = CertificateAuthority::load_or_create(&layout.device_ca_cert(), &layout.device_ca_key(), "ggcore Device CA")?;
    if made {
        created.push(layout.device_ca_cert());
    }
    Ok(LocalCas { group, device, created })
}

/// A certificate and its key, PEM encoded.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    /// Lower-case hex SHA-256 of the certificate's DER (the id in a `CertificateArn`).
    pub fingerprint: String,
}

/// Issues a device certificate with CN = thing name.
pub fn issue_device(ca: &CertificateAuthority, thing: &str) -> Result<Issued, CertError> {
    if !crate::group::arn::valid_thing_name(thing) {
        return Err(CertError::BadThingName(thing.to_string()));
    }
    let kp = new_key()?;
    let mut p = base_params(thing, DEVICE_CERT_LIFETIME);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let c = p.signed_by(&kp, &ca.issuer()?)?;
    Ok(Issued { cert_pem: c.pem(), key_pem: kp.serialize_pem(), fingerprint: fingerprint(c.der()) })
}

/// Names a server certificate must carry: `localhost`, `127.0.0.1`, and every
/// connectivity address, sorted and without duplicates.
pub fn server_names(connectivity: &[String]) -> Vec<String> {
    let mut v = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    v.extend(connectivity.iter().cloned());
    v.sort();
    v.dedup();
    v
}

/// Issues the core's MQTT server certificate, signed by the group CA.
pub fn issue_server(ca: &CertificateAuthority, names: &[String]) -> Result<Issued, CertError> {
    let kp = new_key()?;
    let mut p = base_params("ggcore", SERVER_CERT_LIFETIME);
    p.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(n.as_str().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let c = p.signed_by(&kp, &ca.issuer()?)?;
    Ok(Issued { cert_pem: c.pem(), key_pem: kp.serialize_pem(), fingerprint: fingerprint(c.der()) })
}

/// Why an existing server certificate must be replaced, if it must.
pub fn server_cert_needs_renewal(cert_pem: &str, names: &[String], group_ca_pem: &str) -> Option<&'static str> {
    let Ok(der) = CertificateDer::from_pem_slice(cert_pem.as_bytes()) else {
        return Some("unreadable");
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return Some("unreadable");
    };
    let remaining = cert.validity().not_after.timestamp() - OffsetDateTime::now_utc().unix_timestamp();
    if remaining < SERVER_CERT_RENEW_BEFORE.whole_seconds() {
        return Some("expiring");
    }
    let mut have: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => have.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => match b.len() {
                    4 => have.push(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(b);
                        have.push(std::net::Ipv6Addr::from(a).to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    have.sort();
    have.dedup();
    if have != names {
        return Some("connectivity changed");
    }
    let ca_subject = CertificateDer::from_pem_slice(group_ca_pem.as_bytes())
        .ok()
        .and_then(|d| x509_parser::parse_x509_certificate(&d).ok().map(|(_, c)| c.subject().to_string()));
    if ca_subject.as_deref() != Some(&cert.issuer().to_string()) {
        return Some("group CA changed");
    }
    None
}

/// Makes or renews the server certificate where needed. Returns why it was renewed.
pub fn ensure_server_cert(layout: &Layout, group_ca: &CertificateAuthority, names: &[String]) -> Result<Option<&'static str>, CertError> {
    let cert = layout.server_cert();
    let key = layout.server_key();
    let reason = match (fs::read_to_string(&cert), key.exists()) {
        (Ok(pem), true) => server_cert_needs_renewal(&pem, names, &group_ca.cert_pem),
        _ => Some("missing"),
    };
    if let Some(r) = reason {
        let issued = issue_server(group_ca, names)?;
        write_file(&key, issued.key_pem.as_bytes(), 0o600)?;
        // Under ggc/var/state, where every file is the core's alone.
        write_file(&cert, issued.cert_pem.as_bytes(), 0o600)?;
        return Ok(Some(r));
    }
    Ok(None)
}

/// Lower-case hex SHA-256 of DER bytes.
pub fn fingerprint(der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let mut s = String::with_capacity(64);
    for b in d.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The subject's common name, if the certificate has one.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let data = fs::read(path).map_err(io(path))?;
    let certs: Vec<_> =
        CertificateDer::pem_slice_iter(&data).collect::<Result<_, _>>().map_err(|e| CertError::Pem(path.to_path_buf(), e.to_string()))?;
    if certs.is_empty() {
        return Err(CertError::Pem(path.to_path_buf(), "no certificate found".to_string()));
    }
    Ok(certs)
}

/// Reads a private key (PKCS#8, PKCS#1 or SEC1) from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    let data = fs::read(path).map_err(io(path))?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| CertError::Pem(path.to_path_buf(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_and_check() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().to_path_buf(), None);
        let cas = ensure_cas(&layout).unwrap();
        assert_eq!(cas.created.len(), 2);
        let again = ensure_cas(&layout).unwrap();
        assert!(again.created.is_empty());
        let d = issue_device(&cas.device, "dev-1").unwrap();
        let der = CertificateDer::from_pem_slice(d.cert_pem.as_bytes()).unwrap();
        assert_eq!(common_name(&der).as_deref(), Some("dev-1"));
        assert_eq!(fingerprint(&der), d.fingerprint);
        assert_eq!(d.fingerprint.len(), 64);
        let names = server_names(&["192.0.2.10".to_string(), "gw.local".to_string()]);
        assert_eq!(ensure_server_cert(&layout, &cas.group, &names).unwrap(), Some("missing"));
        assert_eq!(ensure_server_cert(&layout, &cas.group, &names).unwrap(), None);
        let fewer = server_names(&[]);
        assert_eq!(ensure_server_cert(&layout, &cas.group, &fewer).unwrap(), Some("connectivity changed"));
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(layout.server_key()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(issue_device(&cas.device, "bad name").is_err());
    }
}
