//! The signing side of cosign/sigstore, for verification tests.
//!
//! - [`ct`]: certificate transparency logs that sign RFC 6962 SCTs, and the pieces that embed
//!   them in a leaf.

pub mod ct;

/// 2000-01-01T00:00:00Z: the start of every validity window the toolkit writes.
pub const VALID_FROM: i64 = 946_684_800;

/// Standard base64, as every cosign and sigstore format uses it.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// PEM text of one DER block (64-character lines, trailing newline), as openssl writes it.
pub fn pem(label: &str, der: &[u8]) -> String {
    let encoded = b64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
