//! Transparency-log checkpoints: a signed note (C2SP `signed-note`) whose text is
//! `<origin>\n<tree size>\n<base64 root hash>\n[extension lines]` followed by a blank line and
//! signature lines `— <name> <base64(4-byte key hint || signature)>`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::key::{HashAlgorithm, PublicKey, SignatureError};
use super::merkle::HASH_LEN;

/// The em dash that starts every signature line.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_hint: [u8; 4],
    pub signature: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
    /// The signed text: everything before the blank line, final newline included.
    pub signed_text: String,
    pub signatures: Vec<NoteSignature>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("checkpoint has no blank line between its text and its signatures")]
    NoSignatureBlock,
    #[error("checkpoint text has {found} lines (expected origin, tree size and root hash)")]
    TooFewLines { found: usize },
    #[error("checkpoint origin line is empty")]
    EmptyOrigin,
    #[error("checkpoint tree size \"{found}\" is not a decimal number")]
    TreeSize { found: String },
    #[error("checkpoint root hash \"{found}\" is not base64 of {HASH_LEN} bytes")]
    RootHash { found: String },
    #[error("checkpoint signature line \"{line}\" is malformed: {why}")]
    SignatureLine { line: String, why: &'static str },
    #[error("checkpoint has no signature lines")]
    NoSignatures,
    #[error(
        "checkpoint has no signature with key hint {expected} (found: {found})",
        found = if .found.is_empty() { "none".to_string() } else { .found.join(", ") }
    )]
    NoMatchingSignature {
        expected: String,
        found: Vec<String>,
    },
    #[error("checkpoint signature by \"{name}\" (key hint {key_hint}) does not verify: {source}")]
    SignatureInvalid {
        name: String,
        key_hint: String,
        source: SignatureError,
    },
}

impl CheckpointError {
    pub fn reason(&self) -> &'static str {
        match self {
            CheckpointError::NoSignatureBlock => "checkpoint_no_signature_block",
            CheckpointError::TooFewLines { .. } => "checkpoint_too_few_lines",
            CheckpointError::EmptyOrigin => "checkpoint_empty_origin",
            CheckpointError::TreeSize { .. } => "checkpoint_tree_size",
            CheckpointError::RootHash { .. } => "checkpoint_root_hash",
            CheckpointError::SignatureLine { .. } => "checkpoint_signature_line",
            CheckpointError::NoSignatures => "checkpoint_no_signatures",
            CheckpointError::NoMatchingSignature { .. } => "checkpoint_no_matching_signature",
            CheckpointError::SignatureInvalid { .. } => "checkpoint_signature_invalid",
        }
    }
}

impl Checkpoint {
    pub fn parse(note: &str) -> Result<Self, CheckpointError> {
        let (text, signature_block) = note
            .split_once("\n\n")
            .ok_or(CheckpointError::NoSignatureBlock)?;
        let signed_text = format!("{text}\n");
        let lines: Vec<&str> = text.split('\n').collect();
        if lines.len() < 3 {
            return Err(CheckpointError::TooFewLines { found: lines.len() });
        }
        let origin = lines[0];
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        let tree_size_text = lines[1];
        let tree_size = tree_size_text
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| tree_size_text.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| CheckpointError::TreeSize {
                found: tree_size_text.to_string(),
            })?;
        let root_hash = STANDARD
            .decode(lines[2])
            .ok()
            .filter(|hash| hash.len() == HASH_LEN)
            .ok_or_else(|| CheckpointError::RootHash {
                found: lines[2].to_string(),
            })?;

        let mut signatures = Vec::new();
        for line in signature_block.split('\n') {
            if line.is_empty() {
                continue;
            }
            signatures.push(parse_signature_line(line)?);
        }
        if signatures.is_empty() {
            return Err(CheckpointError::NoSignatures);
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            tree_size,
            root_hash,
            signed_text,
            signatures,
        })
    }

    /// At least one signature whose key hint is `key_hint` verifies with `key` (ECDSA keys
    /// sign the sha256 of the text, Ed25519 keys the text itself). Signatures by other keys
    /// (witnesses, other logs) are ignored.
    pub fn verify(&self, key: &PublicKey, key_hint: [u8; 4]) -> Result<(), CheckpointError> {
        let mut last_failure = None;
        for signature in self.signatures.iter().filter(|s| s.key_hint == key_hint) {
            match key.verify(
                self.signed_text.as_bytes(),
                &signature.signature,
                HashAlgorithm::Sha256,
            ) {
                Ok(()) => return Ok(()),
                Err(source) => {
                    last_failure = Some(CheckpointError::SignatureInvalid {
                        name: signature.name.clone(),
                        key_hint: hex::encode(signature.key_hint),
                        source,
                    })
                }
            }
        }
        Err(
            last_failure.unwrap_or_else(|| CheckpointError::NoMatchingSignature {
                expected: hex::encode(key_hint),
                found: self
                    .signatures
                    .iter()
                    .map(|s| format!("{} {}", s.name, hex::encode(s.key_hint)))
                    .collect(),
            }),
        )
    }
}

fn parse_signature_line(line: &str) -> Result<NoteSignature, CheckpointError> {
    let malformed = |why| CheckpointError::SignatureLine {
        line: line.chars().take(60).collect(),
        why,
    };
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or_else(|| malformed("it does not start with an em dash and a space"))?;
    let (name, encoded) = rest
        .split_once(' ')
        .ok_or_else(|| malformed("expected a name and a base64 signature"))?;
    if name.is_empty() || encoded.contains(' ') {
        return Err(malformed("expected a name and a base64 signature"));
    }
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|_| malformed("the signature is not base64"))?;
    if bytes.len() <= 4 {
        return Err(malformed(
            "the signature is shorter than its 4-byte key hint",
        ));
    }
    let (hint, signature) = bytes.split_at(4);
    let mut key_hint = [0u8; 4];
    key_hint.copy_from_slice(hint);
    Ok(NoteSignature {
        name: name.to_string(),
        key_hint,
        signature: signature.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: &str = "rekor.sigstore.dev - 1193050959916656506\n1139201557\n5TL0Mxvnr3yIzxCbPpqTBgL43oHrw/9aGPCWOwBEnXs=\n\n\u{2014} rekor.sigstore.dev wNI9ajBFAiEA2ZtI6/Od0hQZ45WjHDtg7dzPOX6athjTQU9CwYBPClICIHaNmJ9dVWyL4pa8Za4VKB96uqFLjvMVsI7vOZl4Vq81\n";

    #[test]
    fn parses_a_rekor_checkpoint() {
        let checkpoint = Checkpoint::parse(NOTE).unwrap();
        assert_eq!(
            checkpoint.origin,
            "rekor.sigstore.dev - 1193050959916656506"
        );
        assert_eq!(checkpoint.tree_size, 1_139_201_557);
        assert_eq!(
            hex::encode(&checkpoint.root_hash),
            "e532f4331be7af7c88cf109b3e9a930602f8de81ebc3ff5a18f0963b00449d7b"
        );
        assert_eq!(
            checkpoint.signed_text,
            "rekor.sigstore.dev - 1193050959916656506\n1139201557\n5TL0Mxvnr3yIzxCbPpqTBgL43oHrw/9aGPCWOwBEnXs=\n"
        );
        assert_eq!(checkpoint.signatures.len(), 1);
        assert_eq!(checkpoint.signatures[0].name, "rekor.sigstore.dev");
        assert_eq!(hex::encode(checkpoint.signatures[0].key_hint), "c0d23d6a");
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let cases = [
            (
                "a\n1\nAAAA\n",
                "checkpoint has no blank line between its text and its signatures",
            ),
            (
                "a\n1\n\n\u{2014} n AAAAAAAA\n",
                "checkpoint text has 2 lines (expected origin, tree size and root hash)",
            ),
            (
                "a\n-1\n5TL0Mxvnr3yIzxCbPpqTBgL43oHrw/9aGPCWOwBEnXs=\n\n\u{2014} n AAAAAAAA\n",
                "checkpoint tree size \"-1\" is not a decimal number",
            ),
            (
                "a\n1\nAAAA\n\n\u{2014} n AAAAAAAA\n",
                "checkpoint root hash \"AAAA\" is not base64 of 32 bytes",
            ),
            (
                "a\n1\n5TL0Mxvnr3yIzxCbPpqTBgL43oHrw/9aGPCWOwBEnXs=\n\n- n AAAAAAAA\n",
                "checkpoint signature line \"- n AAAAAAAA\" is malformed: it does not start with an em dash and a space",
            ),
            (
                "a\n1\n5TL0Mxvnr3yIzxCbPpqTBgL43oHrw/9aGPCWOwBEnXs=\n\n\u{2014} n AAAA\n",
                "checkpoint signature line \"\u{2014} n AAAA\" is malformed: the signature is shorter than its 4-byte key hint",
            ),
            (
                "a\n1\n5TL0Mxvnr3yIzxCbPpqTBgL43oHrw/9aGPCWOwBEnXs=\n\n",
                "checkpoint has no signature lines",
            ),
        ];
        for (note, message) in cases {
            assert_eq!(
                Checkpoint::parse(note).unwrap_err().to_string(),
                message,
                "{note:?}"
            );
        }
    }

    #[test]
    fn verify_without_a_matching_key_hint_names_the_hints() {
        let checkpoint = Checkpoint::parse(NOTE).unwrap();
        let key = super::super::trust::TrustMaterial::production()
            .unwrap()
            .tlogs[0]
            .public_key()
            .unwrap();
        checkpoint.verify(&key, [0xc0, 0xd2, 0x3d, 0x6a]).unwrap();
        assert_eq!(
            checkpoint
                .verify(&key, [1, 2, 3, 4])
                .unwrap_err()
                .to_string(),
            "checkpoint has no signature with key hint 01020304 (found: rekor.sigstore.dev c0d23d6a)"
        );
    }
}
