//! TrustRoot rules: the reference's, with nested errors accumulated (the reference lets each
//! certificate authority's errors overwrite the previous ones), paths that name the real
//! fields, and checks that the keys and certificates verity will load actually parse.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::key_material;
use crate::field_error::{FieldError, FieldErrors};
use crate::policy::crd::{
    CertificateAuthority, DistinguishedName, Remote, Repository, SigstoreKeys,
    TransparencyLogInstance, TrustRootSpec,
};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Every rule, with paths from `spec.`.
pub(super) fn check_spec(spec: &TrustRootSpec) -> FieldErrors {
    let trusted_root_json = spec
        .trusted_root_json
        .as_deref()
        .filter(|json| !json.is_empty());
    let kinds = [
        spec.repository.is_some(),
        spec.remote.is_some(),
        spec.sigstore_keys.is_some(),
        trusted_root_json.is_some(),
    ];
    let one_of = ["repository", "remote", "sigstoreKeys", "trustedRootJSON"];
    let errors = match kinds.iter().filter(|set| **set).count() {
        0 => FieldError::missing_one_of(one_of).into(),
        1 => {
            let mut errors = FieldErrors::new();
            if let Some(repository) = &spec.repository {
                errors.extend(check_repository(repository).via_field("repository"));
            }
            if let Some(remote) = &spec.remote {
                errors.extend(check_remote(remote).via_field("remote"));
            }
            if let Some(sigstore_keys) = &spec.sigstore_keys {
                errors.extend(check_sigstore_keys(sigstore_keys).via_field("sigstoreKeys"));
            }
            if let Some(json) = trusted_root_json {
                errors.extend(check_trusted_root_json(json));
            }
            errors
        }
        _ => FieldError::multiple_one_of(one_of).into(),
    };
    errors.via_field("spec")
}

fn check_repository(repository: &Repository) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if repository.targets.as_deref().is_none_or(str::is_empty) {
        errors.push(FieldError::missing_field(["targets"]));
    }
    errors.extend(check_root(&repository.root));
    if repository.mirror_fs.is_empty() {
        // The reference names this `repository.repository`.
        errors.push(FieldError::missing_field(["mirrorFS"]));
    } else if errors.is_empty() {
        // Only when the rest is right, as in the reference: a TUF client built from a wrong
        // root fails in ways that hide the real mistake.
        match STANDARD.decode(&repository.mirror_fs) {
            Err(err) => errors.push(
                FieldError::invalid_value("failed to decode base64", "mirrorFS")
                    .with_details(err.to_string()),
            ),
            Ok(archive) if !archive.starts_with(&GZIP_MAGIC) => errors.push(
                FieldError::invalid_value("failed to construct a TUF client", "mirrorFS")
                    .with_details("failed to uncompress: gzip: invalid header"),
            ),
            Ok(_) => {}
        }
    }
    errors
}

fn check_remote(remote: &Remote) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if remote.mirror.is_empty() {
        errors.push(FieldError::missing_field(["mirror"]));
    }
    errors.extend(check_root(&remote.root));
    errors
}

/// `root` is base64 of the initial TUF `root.json`, which must carry signatures.
fn check_root(root: &str) -> FieldErrors {
    if root.is_empty() {
        return FieldError::missing_field(["root"]).into();
    }
    let json = match STANDARD.decode(root) {
        Ok(json) => json,
        Err(err) => {
            return FieldError::invalid_value("failed to decode base64", "root")
                .with_details(err.to_string())
                .into();
        }
    };
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json) {
        Err(err) => FieldError::invalid_value("failed to unmarshal", "root")
            .with_details(err.to_string())
            .into(),
        Ok(root)
            if root
                .get("signatures")
                .is_none_or(serde_json::Value::is_null) =>
        {
            FieldError::invalid_value("missing signatures in root.json", "root")
                .with_details("no signatures")
                .into()
        }
        Ok(_) => FieldErrors::new(),
    }
}

fn check_sigstore_keys(keys: &SigstoreKeys) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if keys.certificate_authorities.is_empty() && keys.timestamp_authorities.is_empty() {
        errors.push(FieldError::missing_one_of([
            "certificateAuthorities",
            "timestampAuthorities",
        ]));
    }
    for (index, authority) in keys.certificate_authorities.iter().enumerate() {
        errors.extend(
            check_certificate_authority(authority, ChainKind::CertificateAuthority)
                .via_field_index("certificateAuthorities", index),
        );
    }
    for (index, authority) in keys.timestamp_authorities.iter().enumerate() {
        errors.extend(
            check_certificate_authority(authority, ChainKind::TimestampAuthority)
                .via_field_index("timestampAuthorities", index),
        );
    }
    for (index, log) in keys.ctlogs.iter().enumerate() {
        errors.extend(check_transparency_log(log).via_field_index("ctLogs", index));
    }
    for (index, log) in keys.tlogs.iter().enumerate() {
        errors.extend(check_transparency_log(log).via_field_index("tLogs", index));
    }
    errors
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ChainKind {
    CertificateAuthority,
    TimestampAuthority,
}

fn check_certificate_authority(authority: &CertificateAuthority, kind: ChainKind) -> FieldErrors {
    let mut errors = check_distinguished_name(&authority.subject).via_field("subject");
    if authority.uri.is_empty() {
        errors.push(FieldError::missing_field(["uri"]));
    }
    if authority.cert_chain.is_empty() {
        // The reference names this `certchain`.
        errors.push(FieldError::missing_field(["certChain"]));
        return errors;
    }
    let pem = match STANDARD.decode(&authority.cert_chain) {
        Ok(pem) => pem,
        Err(err) => {
            errors.push(
                FieldError::invalid_value("failed to decode base64", "certChain")
                    .with_details(err.to_string()),
            );
            return errors;
        }
    };
    // The reference splits only timestamp authority chains; verity also checks the
    // certificate authorities' chains, which it loads the same way.
    match key_material::split_certificate_chain(&pem) {
        Err(details) => errors.push(
            FieldError::invalid_value("error splitting the certificates", "certChain")
                .with_details(details),
        ),
        Ok(certificates) if certificates.is_empty() => errors.push(
            FieldError::invalid_value("error splitting the certificates", "certChain")
                .with_details("no certificates found"),
        ),
        Ok(certificates) => {
            let leaves = certificates.iter().filter(|c| !c.is_ca).count();
            if kind == ChainKind::TimestampAuthority && leaves > 1 {
                errors.push(FieldError::invalid_value(
                    "certificate chain must contain at most one TSA certificate",
                    "certChain",
                ));
            }
        }
    }
    errors
}

fn check_distinguished_name(name: &DistinguishedName) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if name.organization.is_empty() {
        errors.push(FieldError::missing_field(["organization"]));
    }
    if name.common_name.is_empty() {
        errors.push(FieldError::missing_field(["commonName"]));
    }
    errors
}

fn check_transparency_log(log: &TransparencyLogInstance) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if log.base_url.is_empty() {
        errors.push(FieldError::missing_field(["baseURL"]));
    }
    if log.hash_algorithm.is_empty() {
        errors.push(FieldError::missing_field(["hashAlgorithm"]));
    }
    if log.public_key.is_empty() {
        errors.push(FieldError::missing_field(["publicKey"]));
        return errors;
    }
    // verity: the key is base64 of a PEM public key, which verity must be able to use.
    let checked = STANDARD
        .decode(&log.public_key)
        .map_err(|err| format!("not valid base64: {err}"))
        .and_then(|pem| String::from_utf8(pem).map_err(|_| "not a PEM text".to_string()))
        .and_then(|pem| key_material::check_public_key_pem(&pem));
    if let Err(details) = checked {
        errors.push(
            FieldError::invalid_value("failed to parse public key", "publicKey")
                .with_details(details),
        );
    }
    errors
}

/// verity: a `trustedRootJSON` that is not a JSON object cannot be loaded.
fn check_trusted_root_json(json: &str) -> FieldErrors {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json) {
        Ok(_) => FieldErrors::new(),
        Err(err) => FieldError::invalid_value("failed to unmarshal", "trustedRootJSON")
            .with_details(err.to_string())
            .into(),
    }
}
