//! ARN newtypes for the parts of a group: things, certificates and functions.

use std::fmt;
use std::sync::Arc;

/// Region and account used when the core's thing ARN does not give them.
pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_ACCOUNT: &str = "000000000000";

/// Why an ARN string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{arn}' is not {expected}")]
pub struct ArnError {
    pub arn: String,
    pub expected: &'static str,
}

fn arn_error(arn: &str, expected: &'static str) -> ArnError {
    ArnError { arn: arn.to_string(), expected }
}

/// `arn:aws:iot:REGION:ACCOUNT:thing/NAME`
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThingArn {
    arn: Arc<str>,
    name_at: usize,
}

impl ThingArn {
    pub fn parse(arn: &str) -> Result<Self, ArnError> {
        const EXPECTED: &str = "a thing ARN (arn:aws:iot:REGION:ACCOUNT:thing/NAME)";
        let rest = arn.strip_prefix("arn:").ok_or_else(|| arn_error(arn, EXPECTED))?;
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        if parts.len() != 5 || parts[1] != "iot" {
            return Err(arn_error(arn, EXPECTED));
        }
        let name = parts[4].strip_prefix("thing/").ok_or_else(|| arn_error(arn, EXPECTED))?;
        if !valid_thing_name(name) {
            return Err(arn_error(arn, EXPECTED));
        }
        Ok(Self { arn: Arc::from(arn), name_at: arn.len() - name.len() })
    }

    pub fn build(region: &str, account: &str, name: &str) -> Self {
        let arn = format!("arn:aws:iot:{region}:{account}:thing/{name}");
        let name_at = arn.len() - name.len();
        Self { arn: Arc::from(arn), name_at }
    }

    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// The thing name: what a device must use as its MQTT client id.
    pub fn name(&self) -> &str {
        &self.arn[self.name_at..]
    }

    /// (region, account) of this ARN.
    pub fn region_account(&self) -> (&str, &str) {
        let mut it = self.arn.split(':').skip(3);
        (it.next().unwrap_or(""), it.next().unwrap_or(""))
    }
}

/// AWS IoT thing names: 1-128 of `[a-zA-Z0-9:_-]`.
pub fn valid_thing_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'-')
}

impl fmt::Debug for ThingArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

impl fmt::Display for ThingArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

/// `arn:aws:iot:REGION:ACCOUNT:cert/<sha256 hex of the DER certificate>`
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CertificateArn {
    arn: Arc<str>,
    fingerprint: Arc<str>,
}

impl CertificateArn {
    pub fn parse(arn: &str) -> Result<Self, ArnError> {
        const EXPECTED: &str = "a certificate ARN (arn:aws:iot:REGION:ACCOUNT:cert/<64 hex digits>)";
        let rest = arn.strip_prefix("arn:").ok_or_else(|| arn_error(arn, EXPECTED))?;
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        if parts.len() != 5 || parts[1] != "iot" {
            return Err(arn_error(arn, EXPECTED));
        }
        let id = parts[4].strip_prefix("cert/").ok_or_else(|| arn_error(arn, EXPECTED))?;
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(arn_error(arn, EXPECTED));
        }
        Ok(Self { arn: Arc::from(arn), fingerprint: Arc::from(id.to_ascii_lowercase()) })
    }

    pub fn build(region: &str, account: &str, fingerprint: &str) -> Self {
        let fingerprint = fingerprint.to_ascii_lowercase();
        Self { arn: Arc::from(format!("arn:aws:iot:{region}:{account}:cert/{fingerprint}")), fingerprint: Arc::from(fingerprint) }
    }

    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// Lower-case hex SHA-256 of the certificate's DER encoding.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl fmt::Debug for CertificateArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`. System functions of
/// the original have an empty region and account (`arn:aws:lambda:::function:GGRouter`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionArn {
    arn: Arc<str>,
}

impl FunctionArn {
    pub fn parse(arn: &str) -> Result<Self, ArnError> {
        const EXPECTED: &str = "a function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER])";
        let rest = arn.strip_prefix("arn:").ok_or_else(|| arn_error(arn, EXPECTED))?;
        let parts: Vec<&str> = rest.split(':').collect();
        if !(parts.len() == 6 || parts.len() == 7) || parts[1] != "lambda" || parts[4] != "function" {
            return Err(arn_error(arn, EXPECTED));
        }
        let name_ok = |s: &str| !s.is_empty() && s.len() <= 140 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok(parts[5]) {
            return Err(arn_error(arn, EXPECTED));
        }
        if let Some(q) = parts.get(6) {
            if !(name_ok(q) || *q == "$LATEST") {
                return Err(arn_error(arn, EXPECTED));
            }
        }
        Ok(Self { arn: Arc::from(arn) })
    }

    pub fn as_str(&self) -> &str {
        &self.arn
    }

    fn parts(&self) -> impl Iterator<Item = &str> {
        self.arn.split(':')
    }

    pub fn region(&self) -> &str {
        self.parts().nth(3).unwrap_or("")
    }

    pub fn account(&self) -> &str {
        self.parts().nth(4).unwrap_or("")
    }

    /// The function's name (without qualifier).
    pub fn name(&self) -> &str {
        self.parts().nth(6).unwrap_or("")
    }

    /// Version or alias, when the ARN is qualified.
    pub fn qualifier(&self) -> Option<&str> {
        self.parts().nth(7)
    }

    /// The ARN without its qualifier.
    pub fn unqualified(&self) -> &str {
        match self.qualifier() {
            Some(q) => &self.arn[..self.arn.len() - q.len() - 1],
            None => &self.arn,
        }
    }

    /// A system function of the original core (empty region and account).
    pub fn is_system(&self) -> bool {
        self.region().is_empty() && self.account().is_empty()
    }
}

impl fmt::Debug for FunctionArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

impl fmt::Display for FunctionArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thing_arn() {
        let t = ThingArn::parse("arn:aws:iot:eu-west-1:123456789012:thing/demo-device-1").unwrap();
        assert_eq!(t.name(), "demo-device-1");
        assert_eq!(t.region_account(), ("eu-west-1", "123456789012"));
        assert!(ThingArn::parse("arn:aws:iot:r:a:cert/x").is_err());
        assert!(ThingArn::parse("arn:aws:iot:r:a:thing/").is_err());
        assert!(ThingArn::parse("arn:aws:iot:r:a:thing/bad name").is_err());
        assert_eq!(ThingArn::build("r", "a", "n").as_str(), "arn:aws:iot:r:a:thing/n");
    }

    #[test]
    fn certificate_arn() {
        let fp = "AB".repeat(32);
        let c = CertificateArn::parse(&format!("arn:aws:iot:us-east-1:000000000000:cert/{fp}")).unwrap();
        assert_eq!(c.fingerprint(), "ab".repeat(32));
        assert!(CertificateArn::parse("arn:aws:iot:r:a:cert/abc").is_err());
    }

    #[test]
    fn function_arn() {
        let f = FunctionArn::parse("arn:aws:lambda:us-east-1:123456789012:function:hello:1").unwrap();
        assert_eq!(f.name(), "hello");
        assert_eq!(f.qualifier(), Some("1"));
        assert_eq!(f.unqualified(), "arn:aws:lambda:us-east-1:123456789012:function:hello");
        assert!(!f.is_system());
        let s = FunctionArn::parse("arn:aws:lambda:::function:GGCloudSpooler:1").unwrap();
        assert!(s.is_system());
        assert_eq!(s.name(), "GGCloudSpooler");
        assert!(FunctionArn::parse("arn:aws:lambda:r:a:function:").is_err());
        assert!(FunctionArn::parse("arn:aws:iot:r:a:function:x").is_err());
    }
}
