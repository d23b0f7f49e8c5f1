//! The cosign "simple signing" payload: what a legacy `.sig` signature signs.
//!
//! `{"critical":{"identity":{"docker-reference":…},"image":{"docker-manifest-digest":"sha256:…"},
//! "type":"cosign container image signature"},"optional":{…}|null}`

use std::collections::BTreeMap;

use serde_json::Value;

use crate::image::Digest;

/// The fields verity checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimpleSigning {
    /// `critical.image.docker-manifest-digest`: the image the signature is for.
    pub manifest_digest: Digest,
    /// `critical.identity.docker-reference`, informational (the reference does not check it).
    pub docker_reference: Option<String>,
    /// `optional`: annotations given with `cosign sign -a k=v`.
    pub annotations: BTreeMap<String, String>,
}

/// Parses a payload; the error says what is wrong with it.
pub fn parse(payload: &[u8]) -> Result<SimpleSigning, String> {
    let json: Value =
        serde_json::from_slice(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    let critical = json
        .get("critical")
        .ok_or("payload has no critical section")?;
    let kind = critical.get("type").and_then(Value::as_str).unwrap_or("");
    if !kind.eq_ignore_ascii_case("cosign container image signature") {
        return Err(format!(
            "payload type is {kind:?}, not \"cosign container image signature\""
        ));
    }
    let digest = critical
        .pointer("/image/docker-manifest-digest")
        .and_then(Value::as_str)
        .ok_or("payload has no critical.image.docker-manifest-digest")?;
    let manifest_digest = Digest::parse(digest)
        .map_err(|_| format!("payload digest {digest:?} is not a valid digest"))?;
    let docker_reference = critical
        .pointer("/identity/docker-reference")
        .and_then(Value::as_str)
        .map(str::to_string);
    let annotations = match json.get("optional") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), value)
            })
            .collect(),
        Some(_) => return Err("payload optional section is not an object".to_string()),
    };
    Ok(SimpleSigning {
        manifest_digest,
        docker_reference,
        annotations,
    })
}

/// The first required annotation missing from `present`, as `key=value` (with what was there).
pub fn missing_annotation(
    required: &BTreeMap<String, String>,
    present: &BTreeMap<String, String>,
) -> Option<String> {
    required
        .iter()
        .find_map(|(key, value)| match present.get(key) {
            Some(found) if found == value => None,
            Some(found) => Some(format!(
                "annotation {key}={value} required, found {key}={found}"
            )),
            None => Some(format!("annotation {key}={value} required, not present")),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a";

    #[test]
    fn parses_cosign_payloads() {
        let payload = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"192.168.64.2:5000/cosign-signed/key-1"}},"image":{{"docker-manifest-digest":"{D}"}},"type":"cosign container image signature"}},"optional":null}}"#
        );
        let parsed = parse(payload.as_bytes()).unwrap();
        assert_eq!(parsed.manifest_digest.to_string(), D);
        assert_eq!(
            parsed.docker_reference.as_deref(),
            Some("192.168.64.2:5000/cosign-signed/key-1")
        );
        assert!(parsed.annotations.is_empty());

        let with_optional = format!(
            r#"{{"critical":{{"image":{{"docker-manifest-digest":"{D}"}},"type":"cosign container image signature"}},"optional":{{"imageRef":"refs/tags/v1.2.3","n":1}}}}"#
        );
        let parsed = parse(with_optional.as_bytes()).unwrap();
        assert_eq!(parsed.annotations["imageRef"], "refs/tags/v1.2.3");
        assert_eq!(parsed.annotations["n"], "1");
    }

    #[test]
    fn rejects_malformed_payloads() {
        assert!(
            parse(b"nope")
                .unwrap_err()
                .starts_with("payload is not JSON")
        );
        assert_eq!(parse(b"{}").unwrap_err(), "payload has no critical section");
        assert!(
            parse(br#"{"critical":{"type":"something else"}}"#)
                .unwrap_err()
                .contains("not \"cosign container image signature\"")
        );
        assert_eq!(
            parse(br#"{"critical":{"type":"cosign container image signature","image":{}}}"#)
                .unwrap_err(),
            "payload has no critical.image.docker-manifest-digest"
        );
    }

    #[test]
    fn annotation_requirements() {
        let required = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        assert_eq!(missing_annotation(&required, &required), None);
        assert_eq!(
            missing_annotation(&required, &BTreeMap::new()).unwrap(),
            "annotation env=prod required, not present"
        );
        let other = BTreeMap::from([("env".to_string(), "dev".to_string())]);
        assert_eq!(
            missing_annotation(&required, &other).unwrap(),
            "annotation env=prod required, found env=dev"
        );
    }
}
