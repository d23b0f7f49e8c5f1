//! What policies refer to by name: TrustRoots (`trustRootRef`) and Secrets (`key.secretRef`),
//! resolved at compile time.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::verify::trust::TrustMaterial;

/// Trust material with the name policies use for it and its content fingerprint.
#[derive(Debug)]
pub struct NamedTrust {
    /// `None` for the default (the embedded public-good root, or `--trust-root`).
    pub name: Option<String>,
    pub material: TrustMaterial,
    /// Content hash: part of every verification cache key that depends on it.
    pub fingerprint: String,
}

impl NamedTrust {
    pub fn new(name: Option<String>, material: TrustMaterial) -> Arc<Self> {
        let fingerprint = material.fingerprint();
        Arc::new(NamedTrust {
            name,
            material,
            fingerprint,
        })
    }

    /// How messages name it.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("TrustRoot {name}"),
            None => "the default trust root".to_string(),
        }
    }
}

/// The default trust material plus every TrustRoot by name.
#[derive(Clone, Debug)]
pub struct TrustRoots {
    default: Arc<NamedTrust>,
    named: BTreeMap<String, Arc<NamedTrust>>,
    /// TrustRoots that exist but cannot be used, with the reason (cluster mode).
    broken: BTreeMap<String, String>,
}

impl TrustRoots {
    pub fn new(default: TrustMaterial) -> Self {
        TrustRoots {
            default: NamedTrust::new(None, default),
            named: BTreeMap::new(),
            broken: BTreeMap::new(),
        }
    }

    pub fn insert(&mut self, name: &str, material: TrustMaterial) {
        self.broken.remove(name);
        self.named.insert(
            name.to_string(),
            NamedTrust::new(Some(name.to_string()), material),
        );
    }

    /// Records a TrustRoot that exists but cannot be used: references to it fail with `error`.
    pub fn insert_broken(&mut self, name: &str, error: String) {
        self.named.remove(name);
        self.broken.insert(name.to_string(), error);
    }

    /// Why the TrustRoot `name` exists but cannot be used; `None` when it is usable or absent.
    pub fn broken(&self, name: &str) -> Option<&str> {
        self.broken.get(name).map(String::as_str)
    }

    /// Names of the usable TrustRoots.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.named.keys().map(String::as_str)
    }

    pub fn default_trust(&self) -> &Arc<NamedTrust> {
        &self.default
    }

    /// The TrustRoot named by a `trustRootRef`, or the default when there is none.
    pub fn resolve(&self, reference: Option<&str>) -> Result<Arc<NamedTrust>, String> {
        match reference.filter(|r| !r.is_empty()) {
            None => Ok(Arc::clone(&self.default)),
            Some(name) if self.broken.contains_key(name) => Err(format!(
                "TrustRoot {name} is unusable: {}",
                self.broken(name).unwrap_or_default()
            )),
            Some(name) => self.named.get(name).cloned().ok_or_else(|| {
                let known: Vec<&str> = self.named.keys().map(String::as_str).collect();
                format!(
                    "trustRootRef {name} not found (TrustRoots loaded: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )
            }),
        }
    }
}

/// Secrets in verity's own namespace, by name: their decoded data entries.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    by_name: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

impl Secrets {
    pub fn insert(&mut self, name: &str, data: BTreeMap<String, Vec<u8>>) {
        self.by_name.insert(name.to_string(), data);
    }

    pub fn get(&self, name: &str) -> Option<&BTreeMap<String, Vec<u8>>> {
        self.by_name.get(name)
    }

    /// The public key PEM a `key.secretRef` names: the Secret's only entry, or the `cosign.pub`
    /// entry of a `cosign generate-key-pair k8s://` Secret (which also holds the encrypted
    /// private key and its password). The reference accepts only the first form.
    pub fn public_key_pem(&self, name: &str) -> Result<String, String> {
        let data = self
            .get(name)
            .ok_or_else(|| format!("secret {name:?} not found"))?;
        let (key, value) = match data.len() {
            0 => return Err(format!("secret {name:?} has no data entries")),
            1 => data.iter().next().ok_or_else(|| format!("secret {name:?} has no data entries"))?,
            _ => data.get_key_value("cosign.pub").ok_or_else(|| {
                let keys: Vec<&str> = data.keys().map(String::as_str).collect();
                format!(
                    "secret {name:?} has {} entries ({}); expected a single public key entry or a cosign.pub entry",
                    keys.len(),
                    keys.join(", ")
                )
            })?,
        };
        String::from_utf8(value.clone())
            .map_err(|_| format!("secret {name:?} entry {key} is not text"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_forms() {
        let mut secrets = Secrets::default();
        secrets.insert(
            "single",
            BTreeMap::from([("key.pem".into(), b"PEM".to_vec())]),
        );
        secrets.insert(
            "cosign",
            BTreeMap::from([
                ("cosign.key".into(), b"ENCRYPTED".to_vec()),
                ("cosign.password".into(), b"pw".to_vec()),
                ("cosign.pub".into(), b"PUB".to_vec()),
            ]),
        );
        secrets.insert(
            "two",
            BTreeMap::from([("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]),
        );
        assert_eq!(secrets.public_key_pem("single").unwrap(), "PEM");
        assert_eq!(secrets.public_key_pem("cosign").unwrap(), "PUB");
        assert_eq!(
            secrets.public_key_pem("two").unwrap_err(),
            r#"secret "two" has 2 entries (a, b); expected a single public key entry or a cosign.pub entry"#
        );
        assert_eq!(
            secrets.public_key_pem("absent").unwrap_err(),
            r#"secret "absent" not found"#
        );
    }

    #[test]
    fn trust_root_refs() {
        let mut roots = TrustRoots::new(TrustMaterial::default());
        assert!(roots.resolve(None).unwrap().name.is_none());
        assert_eq!(
            roots.resolve(Some("corp")).unwrap_err(),
            "trustRootRef corp not found (TrustRoots loaded: none)"
        );
        roots.insert("corp", TrustMaterial::default());
        assert_eq!(
            roots.resolve(Some("corp")).unwrap().label(),
            "TrustRoot corp"
        );
        roots.insert_broken(
            "corp",
            "invalid: missing field(s): spec.sigstoreKeys".into(),
        );
        assert_eq!(
            roots.resolve(Some("corp")).unwrap_err(),
            "TrustRoot corp is unusable: invalid: missing field(s): spec.sigstoreKeys"
        );
        assert_eq!(roots.names().count(), 0);
    }
}
