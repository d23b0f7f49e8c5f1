//! PEM (RFC 7468) text → labelled DER blocks.
//!
//! Keys, certificates and chains reach verity as PEM from several places (policy keys, layer
//! annotations, Rekor bodies, TrustRoot resources); one strict parser gives them all the same
//! error messages.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// One `-----BEGIN <label>----- … -----END <label>-----` block, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PemError {
    #[error("no PEM block found (expected a line \"-----BEGIN <label>-----\")")]
    NoBlock,
    #[error("PEM block \"{label}\" has no matching \"-----END {label}-----\" line")]
    Unterminated { label: String },
    #[error("PEM block \"{label}\" ends with \"-----END {found}-----\"")]
    MismatchedEnd { label: String, found: String },
    #[error(
        "PEM block \"{label}\" has encapsulated headers (\"{header}\"); encrypted PEM is not supported"
    )]
    Headers { label: String, header: String },
    #[error("PEM block \"{label}\" is not valid base64: {cause}")]
    Base64 { label: String, cause: String },
    #[error("unexpected text outside PEM blocks: \"{text}\"")]
    StrayText { text: String },
}

impl PemError {
    pub fn reason(&self) -> &'static str {
        match self {
            PemError::NoBlock => "pem_no_block",
            PemError::Unterminated { .. } => "pem_unterminated",
            PemError::MismatchedEnd { .. } => "pem_mismatched_end",
            PemError::Headers { .. } => "pem_headers",
            PemError::Base64 { .. } => "pem_base64",
            PemError::StrayText { .. } => "pem_stray_text",
        }
    }
}

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &str = "-----";

/// Every PEM block in `text`, in order. Blank lines and surrounding whitespace are allowed;
/// any other text outside blocks is an error, so a truncated or garbled chain is not half-read.
pub fn parse_blocks(text: &str) -> Result<Vec<PemBlock>, PemError> {
    // Text without any BEGIN line is "no PEM at all", the clearer complaint.
    if !text.lines().any(|line| line.trim().starts_with(BEGIN)) {
        return Err(PemError::NoBlock);
    }
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let Some(label) = line
            .strip_prefix(BEGIN)
            .and_then(|rest| rest.strip_suffix(DASHES))
        else {
            return Err(PemError::StrayText {
                text: shorten(line),
            });
        };
        let label = label.to_string();
        let mut body = String::new();
        let mut terminated = false;
        for line in lines.by_ref() {
            if let Some(rest) = line.strip_prefix(END) {
                let found = rest.strip_suffix(DASHES).unwrap_or(rest);
                if found != label {
                    return Err(PemError::MismatchedEnd {
                        label,
                        found: found.to_string(),
                    });
                }
                terminated = true;
                break;
            }
            if line.contains(':') {
                return Err(PemError::Headers {
                    label,
                    header: shorten(line),
                });
            }
            body.push_str(line);
        }
        if !terminated {
            return Err(PemError::Unterminated { label });
        }
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|e| PemError::Base64 {
                label: label.clone(),
                cause: e.to_string(),
            })?;
        blocks.push(PemBlock { label, der });
    }
    if blocks.is_empty() {
        return Err(PemError::NoBlock);
    }
    Ok(blocks)
}

/// Exactly one block is expected; the first is returned and the rest rejected by the caller's
/// label check when they matter. Used for single keys and single certificates.
pub fn parse_single(text: &str) -> Result<PemBlock, PemError> {
    let mut blocks = parse_blocks(text)?;
    // parse_blocks never returns an empty list.
    Ok(blocks.swap_remove(0))
}

fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks_with_whitespace_and_crlf() {
        let text = "\n  -----BEGIN A-----\r\nAAEC\r\nAw==\r\n-----END A-----\r\n\n-----BEGIN B-----\nBA==\n-----END B-----\n";
        let blocks = parse_blocks(text).unwrap();
        assert_eq!(
            blocks,
            vec![
                PemBlock {
                    label: "A".into(),
                    der: vec![0, 1, 2, 3]
                },
                PemBlock {
                    label: "B".into(),
                    der: vec![4]
                },
            ]
        );
    }

    #[test]
    fn errors_name_what_was_found() {
        assert_eq!(parse_blocks("  \n").unwrap_err(), PemError::NoBlock);
        assert_eq!(
            parse_blocks("hello").unwrap_err().to_string(),
            "no PEM block found (expected a line \"-----BEGIN <label>-----\")"
        );
        assert_eq!(
            parse_blocks("-----BEGIN A-----\nAAAA\n").unwrap_err(),
            PemError::Unterminated { label: "A".into() }
        );
        assert_eq!(
            parse_blocks("-----BEGIN A-----\nAAAA\n-----END B-----").unwrap_err(),
            PemError::MismatchedEnd {
                label: "A".into(),
                found: "B".into()
            }
        );
        let err = parse_blocks("-----BEGIN A-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END A-----")
            .unwrap_err();
        assert_eq!(err.reason(), "pem_headers");
        let err = parse_blocks("-----BEGIN A-----\n!!!!\n-----END A-----").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("PEM block \"A\" is not valid base64: "),
            "{err}"
        );
        let err = parse_blocks("-----BEGIN A-----\nAAAA\n-----END A-----\ntrailing").unwrap_err();
        assert_eq!(err.reason(), "pem_stray_text");
    }
}
