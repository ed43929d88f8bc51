//! Signatures on checkpoints and anchors, so that whoever can rewrite the
//! events table cannot also rewrite the statements that pin its head.

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey};

/// Signs checkpoints and checks signatures (possibly from earlier keys).
pub trait CheckpointSigner: Send + Sync {
    /// The id of the key `sign` uses now.
    fn key_id(&self) -> String;
    /// Signs `message` with the current key.
    fn sign(&self, message: &[u8]) -> Vec<u8>;
    /// True when `signature` is a valid signature of `message` by key `key_id`.
    fn verify(&self, key_id: &str, message: &[u8], signature: &[u8]) -> bool;
}

/// An ES256 (ECDSA P-256, SHA-256) signer with one key.
pub struct Es256Signer {
    key_id: String,
    key: SigningKey,
}

impl Es256Signer {
    /// A signer that signs with `key` under the id `key_id`.
    pub fn new(key_id: String, key: SigningKey) -> Self {
        Es256Signer { key_id, key }
    }
}

impl CheckpointSigner for Es256Signer {
    fn key_id(&self) -> String {
        self.key_id.clone()
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: Signature = self.key.sign(message);
        signature.to_bytes().to_vec()
    }

    /// Only signatures by this signer's own key id are accepted.
    fn verify(&self, key_id: &str, message: &[u8], signature: &[u8]) -> bool {
        if key_id != self.key_id {
            return false;
        }
        match Signature::from_slice(signature) {
            Ok(signature) => self.key.verifying_key().verify(message, &signature).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn test_signer(seed: u8) -> Es256Signer {
        Es256Signer::new(
            format!("key-{seed}"),
            SigningKey::from_slice(&[seed; 32]).expect("valid scalar"),
        )
    }

    /// A signature verifies for its message and key id only.
    #[test]
    fn signs_and_verifies() {
        let signer = test_signer(7);
        let signature = signer.sign(b"checkpoint 5");
        assert_eq!(signature.len(), 64);
        assert!(signer.verify("key-7", b"checkpoint 5", &signature));
        assert!(
            !signer.verify("key-7", b"checkpoint 6", &signature),
            "other message"
        );
        assert!(
            !signer.verify("key-8", b"checkpoint 5", &signature),
            "other key id"
        );
        assert!(!test_signer(8).verify("key-7", b"checkpoint 5", &signature));
        let other = test_signer(9);
        assert!(
            !signer.verify("key-7", b"checkpoint 5", &other.sign(b"checkpoint 5")),
            "other key"
        );
        assert!(!signer.verify("key-7", b"checkpoint 5", b"short"));
    }
}
