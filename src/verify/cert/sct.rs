//! Signed certificate timestamps embedded in a leaf (RFC 6962 §3.3).
//!
//! The CT log signed the precertificate: the final certificate's TBSCertificate without the SCT
//! list extension. The signed data (RFC 6962 §3.2) is:
//!
//! ```text
//! sct_version (1 byte, v1 = 0) ‖ signature_type (1 byte, certificate_timestamp = 0)
//! ‖ timestamp (uint64, ms) ‖ entry_type (uint16, precert_entry = 1)
//! ‖ issuer_key_hash (32 bytes: sha256 of the issuer's SubjectPublicKeyInfo DER)
//! ‖ tbs_certificate (opaque<1..2^24-1>) ‖ extensions (opaque<0..2^16-1>)
//! ```
//!
//! The extension value is a DER OCTET STRING holding the TLS-encoded
//! `SerializedSCT sct_list<1..2^16-1>`, each `SerializedSCT` being `opaque<1..2^16-1>` around
//! one `SignedCertificateTimestamp`.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use sha2::{Digest, Sha256};
use x509_cert::der::asn1::OctetStringRef;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode, Header, Length, Reader, SliceReader, Tag, TagNumber};
use x509_cert::spki::SubjectPublicKeyInfoRef;

use super::{CertError, format_time, parse_certificate};
use crate::verify::trust::LogKey;

/// RFC 6962 §3.3: the embedded SCT list extension.
const SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// TLS `HashAlgorithm.sha256` and `SignatureAlgorithm.rsa` / `.ecdsa` (RFC 5246 §7.4.1.4.1).
const HASH_SHA256: u8 = 4;
const SIGNATURE_RSA: u8 = 1;
const SIGNATURE_ECDSA: u8 = 3;

/// Checks that at least one SCT embedded in `leaf_der` is a valid signature, by a log in
/// `ct_logs`, over the leaf's precertificate as issued by `issuer_der` (the leaf's direct issuer,
/// [`super::VerifiedLeaf::issuer_der`]).
///
/// A log matches when its `log_id` equals the SCT's log id and its `valid_for` contains the SCT
/// timestamp. Signatures: ECDSA (P-256 or P-384) and RSA PKCS#1 v1.5, with SHA-256.
pub fn verify_embedded_sct(
    leaf_der: &[u8],
    issuer_der: &[u8],
    ct_logs: &[LogKey],
) -> Result<(), CertError> {
    let leaf = parse_certificate(leaf_der, || "leaf certificate".to_string())?;
    let issuer = parse_certificate(issuer_der, || "issuer certificate".to_string())?;

    let mut sct_extensions = leaf
        .tbs_certificate()
        .extensions()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(|ext| ext.extn_id == SCT_LIST);
    let extension = sct_extensions.next().ok_or(CertError::SctMissing)?;
    if sct_extensions.next().is_some() {
        return Err(CertError::DuplicateExtension {
            oid: SCT_LIST.to_string(),
        });
    }
    let list = <&OctetStringRef>::from_der(extension.extn_value.as_bytes())
        .map_err(|err| CertError::SctMalformed(format!("expected a der octet string: {err}")))?;
    let scts = split_sct_list(list.as_bytes()).map_err(CertError::SctMalformed)?;

    let tbs = precertificate_tbs(leaf_der).map_err(|err| CertError::Malformed {
        what: "leaf certificate".to_string(),
        detail: err,
    })?;
    let issuer_spki = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|err| CertError::Malformed {
            what: "issuer certificate".to_string(),
            detail: format!("could not encode its public key: {err}"),
        })?;
    let issuer_key_hash: [u8; 32] = Sha256::digest(&issuer_spki).into();

    let mut failures = Vec::new();
    for (index, raw) in scts.iter().enumerate() {
        match verify_one(raw, &issuer_key_hash, &tbs, ct_logs) {
            Ok(()) => return Ok(()),
            Err(reason) => failures.push(format!("sct {}: {reason}", index + 1)),
        }
    }
    Err(CertError::SctUnverified { failures })
}

/// One `SignedCertificateTimestamp` (RFC 6962 §3.2).
struct Sct<'a> {
    version: u8,
    log_id: &'a [u8],
    timestamp_ms: u64,
    extensions: &'a [u8],
    hash_algorithm: u8,
    signature_algorithm: u8,
    signature: &'a [u8],
}

fn verify_one(
    raw: &[u8],
    issuer_key_hash: &[u8; 32],
    tbs: &[u8],
    ct_logs: &[LogKey],
) -> Result<(), String> {
    let sct = parse_sct(raw)?;
    if sct.version != 0 {
        return Err(format!(
            "unsupported sct version {}, expected v1 (0)",
            sct.version
        ));
    }
    let log_id = hex::encode(sct.log_id);
    let candidates: Vec<&LogKey> = ct_logs
        .iter()
        .filter(|log| log.log_id == sct.log_id)
        .collect();
    if candidates.is_empty() {
        return Err(format!("from unknown log {log_id}"));
    }
    let timestamp_secs = i64::try_from(sct.timestamp_ms / 1000).unwrap_or(i64::MAX);
    let current: Vec<&LogKey> = candidates
        .iter()
        .copied()
        .filter(|log| log.valid_for.contains(timestamp_secs))
        .collect();
    if current.is_empty() {
        return Err(format!(
            "log {} ({log_id}) was not valid at the sct time {}",
            candidates
                .iter()
                .map(|log| log.base_url.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            format_time(timestamp_secs)
        ));
    }
    if sct.hash_algorithm != HASH_SHA256 {
        return Err(format!(
            "unsupported hash algorithm {}, expected sha256 ({HASH_SHA256})",
            sct.hash_algorithm
        ));
    }
    let signed = signed_data(&sct, issuer_key_hash, tbs)?;
    // Normally one log per id; should a trust root list a log id twice, any of them may verify.
    let mut failures = Vec::new();
    for log in current {
        let verified = log_verification_key(&log.spki_der, sct.signature_algorithm).and_then(
            |(algorithm, public_key)| {
                UnparsedPublicKey::new(algorithm, public_key)
                    .verify(&signed, sct.signature)
                    .map_err(|_| {
                        "signature does not verify over this certificate and issuer".to_string()
                    })
            },
        );
        match verified {
            Ok(()) => return Ok(()),
            Err(reason) => failures.push(format!("log {}: {reason}", log.base_url)),
        }
    }
    Err(failures.join(", "))
}

/// The verification algorithm for a log key, which must fit the SCT's signature algorithm.
fn log_verification_key(
    spki_der: &[u8],
    signature_algorithm: u8,
) -> Result<(&'static dyn VerificationAlgorithm, &[u8]), String> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|err| format!("log key is not a valid subject public key info: {err}"))?;
    let public_key = spki.subject_public_key.raw_bytes();
    let algorithm: &'static dyn VerificationAlgorithm =
        match (spki.algorithm.oid, signature_algorithm) {
            (EC_PUBLIC_KEY, SIGNATURE_ECDSA) => {
                let curve = spki
                    .algorithm
                    .parameters_oid()
                    .map_err(|err| format!("log key has no named curve: {err}"))?;
                match curve {
                    P256 => &signature::ECDSA_P256_SHA256_ASN1,
                    P384 => &signature::ECDSA_P384_SHA256_ASN1,
                    other => return Err(format!("log key uses unsupported curve {other}")),
                }
            }
            (RSA_ENCRYPTION, SIGNATURE_RSA) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (key, algorithm) => {
                return Err(format!(
                    "sct signature algorithm {algorithm} does not fit the log key type {key}"
                ));
            }
        };
    Ok((algorithm, public_key))
}

fn signed_data(sct: &Sct<'_>, issuer_key_hash: &[u8; 32], tbs: &[u8]) -> Result<Vec<u8>, String> {
    let tbs_len = u32::try_from(tbs.len())
        .ok()
        .filter(|len| *len < 1 << 24)
        .ok_or_else(|| "certificate too large for an sct".to_string())?;
    let extensions_len =
        u16::try_from(sct.extensions.len()).map_err(|_| "sct extensions too large".to_string())?;
    let mut out = Vec::with_capacity(tbs.len() + sct.extensions.len() + 50);
    out.push(0); // sct_version v1
    out.push(0); // signature_type certificate_timestamp
    out.extend_from_slice(&sct.timestamp_ms.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // entry_type precert_entry
    out.extend_from_slice(issuer_key_hash);
    out.extend_from_slice(&tbs_len.to_be_bytes()[1..]); // uint24 length
    out.extend_from_slice(tbs);
    out.extend_from_slice(&extensions_len.to_be_bytes());
    out.extend_from_slice(sct.extensions);
    Ok(out)
}

/// A cursor over TLS-encoded bytes (RFC 5246 §4).
struct TlsReader<'a> {
    rest: &'a [u8],
}

impl<'a> TlsReader<'a> {
    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], String> {
        let (head, rest) = self.rest.split_at_checked(len).ok_or_else(|| {
            format!(
                "truncated {what}: {len} bytes needed, {} left",
                self.rest.len()
            )
        })?;
        self.rest = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        let bytes = self.take(2, what)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(bytes))
    }

    /// `opaque<0..2^16-1>`.
    fn vec16(&mut self, what: &str) -> Result<&'a [u8], String> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }

    fn finish(&self, what: &str) -> Result<(), String> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(format!("{} trailing bytes after {what}", self.rest.len()))
        }
    }
}

fn split_sct_list(bytes: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut outer = TlsReader { rest: bytes };
    let list = outer.vec16("sct list")?;
    outer.finish("sct list")?;
    let mut reader = TlsReader { rest: list };
    let mut scts = Vec::new();
    while !reader.rest.is_empty() {
        let sct = reader.vec16("serialized sct")?;
        if sct.is_empty() {
            return Err("empty serialized sct".to_string());
        }
        scts.push(sct);
    }
    if scts.is_empty() {
        return Err("empty sct list".to_string());
    }
    Ok(scts)
}

fn parse_sct(bytes: &[u8]) -> Result<Sct<'_>, String> {
    let mut reader = TlsReader { rest: bytes };
    let version = reader.u8("sct version")?;
    if version != 0 {
        // Later versions may be laid out differently; do not read further.
        return Ok(Sct {
            version,
            log_id: &[],
            timestamp_ms: 0,
            extensions: &[],
            hash_algorithm: 0,
            signature_algorithm: 0,
            signature: &[],
        });
    }
    let sct = Sct {
        version,
        log_id: reader.take(32, "sct log id")?,
        timestamp_ms: reader.u64("sct timestamp")?,
        extensions: reader.vec16("sct extensions")?,
        hash_algorithm: reader.u8("sct hash algorithm")?,
        signature_algorithm: reader.u8("sct signature algorithm")?,
        signature: reader.vec16("sct signature")?,
    };
    reader.finish("sct")?;
    Ok(sct)
}

/// The leaf's TBSCertificate with the SCT list extension removed, re-encoded as DER: the
/// precertificate TBS the log signed (its poison extension was removed the same way). All other
/// fields and extensions keep their bytes and order; an extensions field left empty is omitted.
fn precertificate_tbs(leaf_der: &[u8]) -> Result<Vec<u8>, String> {
    let der_err = |err: x509_cert::der::Error| err.to_string();
    let certificate = sequence_contents(leaf_der).map_err(der_err)?;
    let mut reader = SliceReader::new(certificate).map_err(der_err)?;
    let tbs = sequence_contents(reader.tlv_bytes().map_err(der_err)?).map_err(der_err)?;

    let extensions_tag = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber(3),
    };
    let mut fields = Vec::with_capacity(tbs.len());
    let mut reader = SliceReader::new(tbs).map_err(der_err)?;
    while !reader.is_finished() {
        let field = reader.tlv_bytes().map_err(der_err)?;
        if tag_of(field).map_err(der_err)? != extensions_tag {
            fields.extend_from_slice(field);
            continue;
        }
        let explicit = tagged_contents(field, extensions_tag).map_err(der_err)?;
        let list = sequence_contents(explicit).map_err(der_err)?;
        let mut kept = Vec::with_capacity(list.len());
        let mut ext_reader = SliceReader::new(list).map_err(der_err)?;
        while !ext_reader.is_finished() {
            let extension = ext_reader.tlv_bytes().map_err(der_err)?;
            let mut inner = SliceReader::new(sequence_contents(extension).map_err(der_err)?)
                .map_err(der_err)?;
            let oid: ObjectIdentifier = inner.decode().map_err(der_err)?;
            if oid != SCT_LIST {
                kept.extend_from_slice(extension);
            }
        }
        if !kept.is_empty() {
            let sequence = wrap(Tag::Sequence, &kept).map_err(der_err)?;
            fields.extend(wrap(extensions_tag, &sequence).map_err(der_err)?);
        }
    }
    wrap(Tag::Sequence, &fields).map_err(der_err)
}

/// The tag at the start of a TLV.
fn tag_of(tlv: &[u8]) -> Result<Tag, x509_cert::der::Error> {
    let mut reader = SliceReader::new(tlv)?;
    Ok(Header::decode(&mut reader)?.tag())
}

fn sequence_contents(tlv: &[u8]) -> Result<&[u8], x509_cert::der::Error> {
    tagged_contents(tlv, Tag::Sequence)
}

/// The contents of a TLV that must carry `tag` and span all of `tlv`.
fn tagged_contents(tlv: &[u8], tag: Tag) -> Result<&[u8], x509_cert::der::Error> {
    let mut reader = SliceReader::new(tlv)?;
    let header = Header::decode(&mut reader)?;
    header.tag().assert_eq(tag)?;
    let contents = reader.read_slice(header.length())?;
    reader.finish()?;
    Ok(contents)
}

fn wrap(tag: Tag, contents: &[u8]) -> Result<Vec<u8>, x509_cert::der::Error> {
    let mut out = Header::new(tag, Length::try_from(contents.len())?).to_der()?;
    out.extend_from_slice(contents);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sct_list_framing() {
        assert_eq!(
            split_sct_list(&[0, 4, 0, 2, 0xaa, 0xbb]).unwrap(),
            vec![&[0xaa, 0xbb][..]]
        );
        assert!(
            split_sct_list(&[0, 0])
                .unwrap_err()
                .contains("empty sct list")
        );
        assert!(
            split_sct_list(&[0, 2, 0, 0])
                .unwrap_err()
                .contains("empty serialized")
        );
        assert!(
            split_sct_list(&[0, 5, 0, 2, 0xaa])
                .unwrap_err()
                .contains("truncated")
        );
        assert!(
            split_sct_list(&[0, 1, 0])
                .unwrap_err()
                .contains("truncated serialized sct")
        );
        assert!(
            split_sct_list(&[0, 4, 0, 2, 1, 2, 9])
                .unwrap_err()
                .contains("trailing")
        );
    }

    #[test]
    fn sct_fields_parse_and_trailing_bytes_fail() {
        let mut raw = vec![0u8];
        raw.extend([7u8; 32]);
        raw.extend(1_700_000_000_000u64.to_be_bytes());
        raw.extend([0, 1, 0xee]);
        raw.extend([4, 3, 0, 2, 0x30, 0x00]);
        let sct = parse_sct(&raw).unwrap();
        assert_eq!(sct.log_id, &[7u8; 32]);
        assert_eq!(sct.timestamp_ms, 1_700_000_000_000);
        assert_eq!(sct.extensions, &[0xee]);
        assert_eq!((sct.hash_algorithm, sct.signature_algorithm), (4, 3));
        assert_eq!(sct.signature, &[0x30, 0x00]);
        raw.push(1);
        assert!(parse_sct(&raw).err().unwrap().contains("trailing"));
    }

    #[test]
    fn signed_data_layout() {
        let sct = Sct {
            version: 0,
            log_id: &[0; 32],
            timestamp_ms: 0x0102_0304_0506_0708,
            extensions: &[0xee],
            hash_algorithm: 4,
            signature_algorithm: 3,
            signature: &[],
        };
        let signed = signed_data(&sct, &[0x11; 32], &[0x30, 0x00]).unwrap();
        let mut expected = vec![0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1];
        expected.extend([0x11; 32]);
        expected.extend([0, 0, 2, 0x30, 0x00, 0, 1, 0xee]);
        assert_eq!(signed, expected);
    }
}
