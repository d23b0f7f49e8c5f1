//! RFC 6962 / RFC 9162 Merkle tree hashing and inclusion proofs (sha256), as Rekor uses them.

use sha2::{Digest as _, Sha256};

pub const HASH_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MerkleError {
    #[error("leaf index {index} is not inside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("inclusion proof hash {position} is {len} bytes (expected {HASH_LEN})")]
    HashLength { position: usize, len: usize },
    #[error(
        "inclusion proof has {found} hashes; leaf {index} of a tree of size {size} needs fewer"
    )]
    ProofTooLong { found: usize, index: u64, size: u64 },
    #[error("inclusion proof has {found} hashes; leaf {index} of a tree of size {size} needs more")]
    ProofTooShort { found: usize, index: u64, size: u64 },
}

impl MerkleError {
    pub fn reason(&self) -> &'static str {
        match self {
            MerkleError::IndexOutOfRange { .. } => "merkle_index_out_of_range",
            MerkleError::HashLength { .. } => "merkle_hash_length",
            MerkleError::ProofTooLong { .. } => "merkle_proof_too_long",
            MerkleError::ProofTooShort { .. } => "merkle_proof_too_short",
        }
    }
}

/// `sha256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> [u8; HASH_LEN] {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(leaf);
    hasher.finalize().into()
}

/// `sha256(0x01 || left || right)`.
pub fn node_hash(left: &[u8], right: &[u8]) -> [u8; HASH_LEN] {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root implied by an audit path (RFC 9162 §2.1.3.2). The caller compares it with the
/// root it trusts; a proof of the wrong length is an error, not a different root.
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf_hash: &[u8; HASH_LEN],
    proof: &[Vec<u8>],
) -> Result<[u8; HASH_LEN], MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mut node_index = index;
    let mut last_index = size - 1;
    let mut root = *leaf_hash;
    for (position, sibling) in proof.iter().enumerate() {
        if sibling.len() != HASH_LEN {
            return Err(MerkleError::HashLength {
                position,
                len: sibling.len(),
            });
        }
        if last_index == 0 {
            return Err(MerkleError::ProofTooLong {
                found: proof.len(),
                index,
                size,
            });
        }
        if node_index & 1 == 1 || node_index == last_index {
            root = node_hash(sibling, &root);
            // A right-most node with no sibling at this level moves up unchanged.
            if node_index & 1 == 0 {
                while node_index & 1 == 0 && node_index != 0 {
                    node_index >>= 1;
                    last_index >>= 1;
                }
            }
        } else {
            root = node_hash(&root, sibling);
        }
        node_index >>= 1;
        last_index >>= 1;
    }
    if last_index != 0 {
        return Err(MerkleError::ProofTooShort {
            found: proof.len(),
            index,
            size,
        });
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962 §2.1 MTH, by its recursive definition (independent of the iterative check).
    fn tree_hash(leaves: &[Vec<u8>]) -> [u8; HASH_LEN] {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = split(n);
                node_hash(&tree_hash(&leaves[..k]), &tree_hash(&leaves[k..]))
            }
        }
    }

    /// The largest power of two smaller than n.
    fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// RFC 6962 §2.1.1 PATH(m, D[n]).
    fn audit_path(m: usize, leaves: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split(n);
        if m < k {
            let mut path = audit_path(m, &leaves[..k]);
            path.push(tree_hash(&leaves[k..]).to_vec());
            path
        } else {
            let mut path = audit_path(m - k, &leaves[k..]);
            path.push(tree_hash(&leaves[..k]).to_vec());
            path
        }
    }

    fn leaves(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
    }

    #[test]
    fn every_leaf_of_trees_up_to_33_proves_the_root() {
        for size in 1..=33 {
            let leaves = leaves(size);
            let root = tree_hash(&leaves);
            for index in 0..size {
                let proof = audit_path(index, &leaves);
                let computed = root_from_inclusion_proof(
                    index as u64,
                    size as u64,
                    &leaf_hash(&leaves[index]),
                    &proof,
                )
                .unwrap();
                assert_eq!(computed, root, "size {size} index {index}");
            }
        }
    }

    #[test]
    fn any_change_gives_another_root_or_an_error() {
        let leaves = leaves(13);
        let root = tree_hash(&leaves);
        let proof = audit_path(6, &leaves);
        let leaf = leaf_hash(&leaves[6]);
        for position in 0..proof.len() {
            let mut bad = proof.clone();
            bad[position][0] ^= 1;
            assert_ne!(root_from_inclusion_proof(6, 13, &leaf, &bad).unwrap(), root);
        }
        assert_ne!(
            root_from_inclusion_proof(6, 13, &leaf_hash(b"other"), &proof).unwrap(),
            root
        );
        // Same proof at the neighbouring index hashes in the wrong order.
        assert_ne!(
            root_from_inclusion_proof(7, 13, &leaf, &proof).unwrap(),
            root
        );
    }

    #[test]
    fn malformed_proofs_are_errors() {
        let leaves = leaves(8);
        let proof = audit_path(2, &leaves);
        let leaf = leaf_hash(&leaves[2]);
        assert_eq!(
            root_from_inclusion_proof(8, 8, &leaf, &proof),
            Err(MerkleError::IndexOutOfRange { index: 8, size: 8 })
        );
        let mut long = proof.clone();
        long.push(vec![0; 32]);
        assert_eq!(
            root_from_inclusion_proof(2, 8, &leaf, &long)
                .unwrap_err()
                .to_string(),
            "inclusion proof has 4 hashes; leaf 2 of a tree of size 8 needs fewer"
        );
        assert_eq!(
            root_from_inclusion_proof(2, 8, &leaf, &proof[..2])
                .unwrap_err()
                .reason(),
            "merkle_proof_too_short"
        );
        let mut short_hash = proof.clone();
        short_hash[1].pop();
        assert_eq!(
            root_from_inclusion_proof(2, 8, &leaf, &short_hash)
                .unwrap_err()
                .to_string(),
            "inclusion proof hash 1 is 31 bytes (expected 32)"
        );
    }
}
