//! Development TLS material: a throw-away CA and a serving certificate it signs.
//!
//! A pair rather than one self-signed certificate because rustls (like Go clients) rejects a
//! CA:TRUE certificate used as the server's end-entity certificate. The CA goes into the
//! webhook's `caBundle`; the leaf and its key are what `verity serve` is given.

use std::{
    fs,
    io::{self, Write},
    net::IpAddr,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use jiff::{Timestamp, ToSpan, civil::Date, tz::TimeZone};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    SanType,
};

/// Names the serving certificate always carries.
pub const DEFAULT_SANS: [&str; 2] = ["localhost", "127.0.0.1"];

/// Common name of the development CA.
pub const CA_COMMON_NAME: &str = "verity dev CA";

/// How long the certificates stay valid, in days.
const VALIDITY_DAYS: i32 = 365;

#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    #[error("invalid subject alternative name {name:?}: {source}")]
    InvalidSan { name: String, source: rcgen::Error },
    #[error("empty subject alternative name: expected a DNS name or an IP address")]
    EmptySan,
    #[error("failed to generate the {what}: {source}")]
    Generate {
        what: &'static str,
        source: rcgen::Error,
    },
    #[error("failed to compute the certificate validity period: {0}")]
    Validity(jiff::Error),
    #[error("failed to create directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("failed to write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

impl DevCertError {
    pub fn reason(&self) -> &'static str {
        match self {
            DevCertError::InvalidSan { .. } | DevCertError::EmptySan => "invalid_san",
            DevCertError::Generate { .. } => "generate",
            DevCertError::Validity(_) => "validity",
            DevCertError::CreateDir { .. } => "create_dir",
            DevCertError::Write { .. } => "write",
        }
    }
}

/// The files [`generate`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevCertPaths {
    /// `ca.crt`: trust this (e.g. the webhook's `caBundle`).
    pub ca_cert: PathBuf,
    /// `tls.crt`: the serving certificate.
    pub cert: PathBuf,
    /// `tls.key`: its PKCS#8 private key, mode 0600.
    pub key: PathBuf,
}

/// A serving certificate and its key, both PEM.
#[derive(Clone, Debug)]
pub struct ServingCertificate {
    pub cert_pem: String,
    /// PKCS#8 (`PRIVATE KEY`).
    pub key_pem: String,
}

/// An in-memory development CA (ECDSA P-256) that issues serving certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert: Certificate,
}

impl CertificateAuthority {
    /// A fresh CA, valid from yesterday for a year.
    pub fn new() -> Result<Self, DevCertError> {
        let key = generate_key("CA key")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(CA_COMMON_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params)?;
        let cert = params
            .self_signed(&key)
            .map_err(|source| DevCertError::Generate {
                what: "CA certificate",
                source,
            })?;
        Ok(CertificateAuthority {
            issuer: Issuer::new(params, key),
            cert,
        })
    }

    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    pub fn cert_der(&self) -> &[u8] {
        self.cert.der()
    }

    /// A serving certificate (CA:FALSE, digitalSignature, serverAuth) for `localhost`,
    /// `127.0.0.1` and `extra_sans`; IP addresses become IP SANs, anything else a DNS SAN.
    pub fn issue(&self, extra_sans: &[String]) -> Result<ServingCertificate, DevCertError> {
        let key = generate_key("serving key")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name("verity webhook");
        params.subject_alt_names = subject_alt_names(extra_sans)?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params)?;
        let cert =
            params
                .signed_by(&key, &self.issuer)
                .map_err(|source| DevCertError::Generate {
                    what: "serving certificate",
                    source,
                })?;
        Ok(ServingCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Writes `ca.crt`, `tls.crt` and `tls.key` (mode 0600) into `out_dir`, creating it.
pub fn generate(out_dir: &Path, extra_sans: &[String]) -> Result<DevCertPaths, DevCertError> {
    let ca = CertificateAuthority::new()?;
    let serving = ca.issue(extra_sans)?;
    fs::create_dir_all(out_dir).map_err(|source| DevCertError::CreateDir {
        path: out_dir.to_owned(),
        source,
    })?;
    let paths = DevCertPaths {
        ca_cert: out_dir.join("ca.crt"),
        cert: out_dir.join("tls.crt"),
        key: out_dir.join("tls.key"),
    };
    write_file(&paths.ca_cert, ca.cert_pem().as_bytes(), 0o644)?;
    write_file(&paths.cert, serving.cert_pem.as_bytes(), 0o644)?;
    write_file(&paths.key, serving.key_pem.as_bytes(), 0o600)?;
    Ok(paths)
}

fn generate_key(what: &'static str) -> Result<KeyPair, DevCertError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|source| DevCertError::Generate { what, source })
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// The defaults plus `extra`, without duplicates, in that order.
fn subject_alt_names(extra: &[String]) -> Result<Vec<SanType>, DevCertError> {
    let mut names: Vec<&str> = DEFAULT_SANS.to_vec();
    for name in extra.iter().map(|n| n.trim()) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
        .into_iter()
        .map(|name| match name.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) if name.is_empty() => Err(DevCertError::EmptySan),
            Err(_) => {
                name.try_into()
                    .map(SanType::DnsName)
                    .map_err(|source| DevCertError::InvalidSan {
                        name: name.to_owned(),
                        source,
                    })
            }
        })
        .collect()
}

/// From the start of yesterday (UTC; tolerates clock skew) to a year after today.
fn set_validity(params: &mut CertificateParams) -> Result<(), DevCertError> {
    let today = Timestamp::now().to_zoned(TimeZone::UTC).date();
    let not_before = today.checked_sub(1.day()).map_err(DevCertError::Validity)?;
    let not_after = today
        .checked_add(VALIDITY_DAYS.days())
        .map_err(DevCertError::Validity)?;
    let (year, month, day) = year_month_day(not_before);
    params.not_before = rcgen::date_time_ymd(year, month, day);
    let (year, month, day) = year_month_day(not_after);
    params.not_after = rcgen::date_time_ymd(year, month, day);
    Ok(())
}

fn year_month_day(date: Date) -> (i32, u8, u8) {
    // jiff's month is 1..=12 and day 1..=31, so the casts are lossless.
    (i32::from(date.year()), date.month() as u8, date.day() as u8)
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), DevCertError> {
    let write = || -> io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)?;
        // `mode` only applies to new files; tighten an existing one before writing the secret.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()
    };
    write().map_err(|source| DevCertError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{
        ClientConfig, ClientConnection, ConnectionCommon, RootCertStore, ServerConfig,
        ServerConnection, SideData,
    };
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
    use std::sync::Arc;
    use x509_cert::{
        Certificate as X509,
        der::{Decode, oid::db::rfc5280::ID_KP_SERVER_AUTH},
        ext::pkix::{
            BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName, name::GeneralName,
        },
    };

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    /// Moves pending TLS records from one side to the other, in memory.
    fn transfer<A: SideData, B: SideData>(
        from: &mut ConnectionCommon<A>,
        to: &mut ConnectionCommon<B>,
    ) {
        let mut records = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut records).unwrap();
        }
        let mut pending = &records[..];
        while !pending.is_empty() {
            to.read_tls(&mut pending).unwrap();
        }
    }

    /// Runs a full handshake between a client trusting only `ca_pem` and a server presenting
    /// `cert_pem`/`key_pem`, for `server_name`.
    fn handshake(
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
        server_name: &str,
    ) -> Result<(), rustls::Error> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem).unwrap())
            .unwrap();
        let client_config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key_pem).unwrap();
        let server_config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let name = ServerName::try_from(server_name.to_owned()).unwrap();
        let mut client = ClientConnection::new(Arc::new(client_config), name).unwrap();
        let mut server = ServerConnection::new(Arc::new(server_config)).unwrap();
        for _ in 0..10 {
            transfer(&mut client, &mut server);
            server.process_new_packets()?;
            transfer(&mut server, &mut client);
            client.process_new_packets()?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        panic!("handshake did not finish in 10 round trips");
    }

    fn read(path: &Path) -> Vec<u8> {
        fs::read(path).unwrap()
    }

    fn parse(pem: &[u8]) -> X509 {
        let der = CertificateDer::from_pem_slice(pem).unwrap();
        X509::from_der(der.as_ref()).unwrap()
    }

    #[test]
    fn generated_pair_completes_handshakes_for_the_default_names() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("certs");
        let paths = generate(&out, &[]).unwrap();
        assert_eq!(paths.ca_cert, out.join("ca.crt"));
        assert_eq!(paths.cert, out.join("tls.crt"));
        assert_eq!(paths.key, out.join("tls.key"));
        let (ca, cert, key) = (read(&paths.ca_cert), read(&paths.cert), read(&paths.key));
        handshake(&ca, &cert, &key, "localhost").unwrap();
        handshake(&ca, &cert, &key, "127.0.0.1").unwrap();
        let error = handshake(&ca, &cert, &key, "example.com").unwrap_err();
        assert!(
            error.to_string().contains("certificate not valid for name"),
            "{error}"
        );
    }

    #[test]
    fn extra_sans_become_dns_and_ip_names() {
        let dir = tempfile::tempdir().unwrap();
        let extra = vec![
            "verity.verity-system.svc".to_owned(),
            "10.0.0.7".to_owned(),
            "::1".to_owned(),
            "localhost".to_owned(),
        ];
        let paths = generate(dir.path(), &extra).unwrap();
        let (ca, cert, key) = (read(&paths.ca_cert), read(&paths.cert), read(&paths.key));
        handshake(&ca, &cert, &key, "verity.verity-system.svc").unwrap();
        handshake(&ca, &cert, &key, "10.0.0.7").unwrap();
        handshake(&ca, &cert, &key, "::1").unwrap();

        let leaf = parse(&cert);
        let (_, SubjectAltName(names)) = leaf
            .tbs_certificate()
            .get_extension::<SubjectAltName>()
            .unwrap()
            .unwrap();
        let rendered: Vec<String> = names
            .iter()
            .map(|name| match name {
                GeneralName::DnsName(dns) => format!("DNS:{}", dns.as_str()),
                GeneralName::IpAddress(ip) => format!("IP:{:?}", ip.as_bytes()),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            rendered,
            [
                "DNS:localhost",
                "IP:[127, 0, 0, 1]",
                "DNS:verity.verity-system.svc",
                "IP:[10, 0, 0, 7]",
                "IP:[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]",
            ]
        );
    }

    #[test]
    fn leaf_is_a_server_certificate_and_ca_is_a_ca() {
        let dir = tempfile::tempdir().unwrap();
        let paths = generate(dir.path(), &[]).unwrap();

        let leaf = parse(&read(&paths.cert));
        let (_, constraints) = leaf
            .tbs_certificate()
            .get_extension::<BasicConstraints>()
            .unwrap()
            .unwrap();
        assert!(!constraints.ca);
        let (_, usage) = leaf
            .tbs_certificate()
            .get_extension::<KeyUsage>()
            .unwrap()
            .unwrap();
        assert!(usage.digital_signature());
        assert!(!usage.key_cert_sign());
        let (_, ExtendedKeyUsage(purposes)) = leaf
            .tbs_certificate()
            .get_extension::<ExtendedKeyUsage>()
            .unwrap()
            .unwrap();
        assert_eq!(purposes, vec![ID_KP_SERVER_AUTH]);

        let ca = parse(&read(&paths.ca_cert));
        let (_, constraints) = ca
            .tbs_certificate()
            .get_extension::<BasicConstraints>()
            .unwrap()
            .unwrap();
        assert!(constraints.ca);
        let (_, usage) = ca
            .tbs_certificate()
            .get_extension::<KeyUsage>()
            .unwrap()
            .unwrap();
        assert!(usage.key_cert_sign());
        assert!(usage.crl_sign());
        assert_eq!(
            ca.tbs_certificate().subject().to_string(),
            "CN=verity dev CA"
        );
        assert_eq!(
            leaf.tbs_certificate().issuer(),
            ca.tbs_certificate().subject()
        );

        let validity = leaf.tbs_certificate().validity();
        let lifetime =
            validity.not_after.to_unix_duration() - validity.not_before.to_unix_duration();
        assert_eq!(lifetime.as_secs(), 366 * 24 * 3600);
    }

    #[test]
    fn key_is_pkcs8_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("tls.key");
        // A pre-existing world-readable file must not keep its mode.
        fs::write(&key_path, "old").unwrap();
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).unwrap();
        let paths = generate(dir.path(), &[]).unwrap();
        assert_eq!(paths.key, key_path);
        let mode = fs::metadata(&paths.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let pem = String::from_utf8(read(&paths.key)).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    }

    #[test]
    fn rejects_names_that_are_not_dns_names() {
        let dir = tempfile::tempdir().unwrap();
        let error = generate(dir.path(), &["bad name\u{e9}".to_owned()]).unwrap_err();
        assert_eq!(error.reason(), "invalid_san");
        assert!(
            error
                .to_string()
                .starts_with("invalid subject alternative name \"bad name\u{e9}\": "),
            "{error}"
        );
        let error = generate(dir.path(), &[" ".to_owned()]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "empty subject alternative name: expected a DNS name or an IP address"
        );
    }

    #[test]
    fn an_unwritable_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, "").unwrap();
        let error = generate(&file.join("certs"), &[]).unwrap_err();
        assert_eq!(error.reason(), "create_dir");
        assert!(
            error.to_string().starts_with(&format!(
                "failed to create directory {}: ",
                file.join("certs").display()
            )),
            "{error}"
        );
    }
}
