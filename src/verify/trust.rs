//! Trust material: the Fulcio CAs, Rekor (transparency log) keys, CT log keys and timestamp
//! authorities a signature may chain to, each with the time range in which it may be used.
//!
//! These are plain data types shared by the certificate, Rekor and key checks; parsing
//! (trusted_root.json, TrustRoot `sigstoreKeys`) and the embedded production root live here too.

/// A validity window in Unix seconds; an open end is unbounded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TimeRange {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl TimeRange {
    /// True when `at` (Unix seconds) lies inside the window, ends included.
    pub fn contains(&self, at: i64) -> bool {
        self.start.is_none_or(|start| at >= start) && self.end.is_none_or(|end| at <= end)
    }
}

/// A certificate authority (Fulcio, or a timestamp authority).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CertificateAuthority {
    /// Where the CA is reachable; used to name it in messages.
    pub uri: String,
    /// DER certificates: intermediates first, the self-signed root last.
    pub chain_der: Vec<Vec<u8>>,
    /// When leaves issued by this CA may be trusted (checked at signing time).
    pub valid_for: TimeRange,
}

/// A transparency log (Rekor) or certificate transparency log key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LogKey {
    pub base_url: String,
    /// The log id: sha256 of the key's SubjectPublicKeyInfo DER, unless the trust root says
    /// otherwise.
    pub log_id: Vec<u8>,
    /// DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    pub valid_for: TimeRange,
}

/// Everything a signature may be verified against.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TrustMaterial {
    pub certificate_authorities: Vec<CertificateAuthority>,
    pub tlogs: Vec<LogKey>,
    pub ctlogs: Vec<LogKey>,
    pub timestamp_authorities: Vec<CertificateAuthority>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_range_contains() {
        let range = TimeRange {
            start: Some(10),
            end: Some(20),
        };
        assert!(range.contains(10) && range.contains(20) && range.contains(15));
        assert!(!range.contains(9) && !range.contains(21));
        assert!(TimeRange::default().contains(i64::MIN));
        let open_end = TimeRange {
            start: Some(10),
            end: None,
        };
        assert!(open_end.contains(i64::MAX) && !open_end.contains(0));
    }
}
