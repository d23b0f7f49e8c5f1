//! Table tests for ClusterImagePolicy and TrustRoot defaulting and validation. Every case
//! asserts the full rendered text of the errors and of the warnings.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::*;
use crate::field_error::Level;
use crate::policy::crd::{
    Attestation, Authority, ConfigMapReference, Identity, ImagePattern, KeyRef, KeylessRef,
    LocalObjectReference, MatchResource, Policy, RemotePolicy, Rfc3161Timestamp, SecretReference,
    Source, StaticRef, TLog,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/policies");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

fn pem(name: &str) -> String {
    fixture(&format!("pem/{name}"))
}

// ---------------------------------------------------------------------------------------------
// Builders

fn spec(authorities: Vec<Authority>) -> ClusterImagePolicySpec {
    ClusterImagePolicySpec {
        images: vec![ImagePattern {
            glob: "ghcr.io/example/*".into(),
        }],
        authorities,
        ..Default::default()
    }
}

fn key(key: KeyRef) -> Authority {
    Authority {
        key: Some(key),
        ..Default::default()
    }
}

fn key_data(data: &str) -> KeyRef {
    KeyRef {
        data: Some(data.into()),
        ..Default::default()
    }
}

fn key_kms(kms: &str) -> KeyRef {
    KeyRef {
        kms: Some(kms.into()),
        ..Default::default()
    }
}

fn p256_key() -> Authority {
    key(key_data(&pem("ec-p256.pub.pem")))
}

fn keyless(keyless: KeylessRef) -> Authority {
    Authority {
        keyless: Some(keyless),
        ..Default::default()
    }
}

fn github_identity() -> Identity {
    Identity {
        issuer: Some("https://token.actions.githubusercontent.com".into()),
        subject: Some(
            "https://github.com/example/app/.github/workflows/release.yaml@refs/heads/main".into(),
        ),
        ..Default::default()
    }
}

fn fulcio(identities: Vec<Identity>) -> KeylessRef {
    KeylessRef {
        url: Some(DEFAULT_FULCIO_URL.into()),
        identities,
        ..Default::default()
    }
}

fn static_action(action: &str) -> Authority {
    Authority {
        static_ref: Some(StaticRef {
            action: action.into(),
            message: None,
        }),
        ..Default::default()
    }
}

fn attestation(name: &str, predicate_type: &str, policy: Option<Policy>) -> Attestation {
    Attestation {
        name: name.into(),
        predicate_type: predicate_type.into(),
        policy,
    }
}

fn cue(data: &str) -> Policy {
    Policy {
        policy_type: "cue".into(),
        data: Some(data.into()),
        ..Default::default()
    }
}

fn source(oci: &str) -> Source {
    Source {
        oci: Some(oci.into()),
        ..Default::default()
    }
}

fn requirement(key: &str, operator: &str, values: Option<Vec<&str>>) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.into(),
        operator: operator.into(),
        values: values.map(|values| values.into_iter().map(String::from).collect()),
    }
}

// ---------------------------------------------------------------------------------------------
// verity's texts, as users read them

fn attestations_unsupported(authority: usize) -> String {
    format!(
        "attestations are not supported by verity yet: spec.authorities[{authority}].attestations\nverity verifies image signatures only and does not load a policy it cannot enforce; remove attestations to require a signature from this authority instead"
    )
}

fn policy_unsupported(path: &str) -> String {
    format!(
        "cue and rego policies are not supported by verity yet: {path}\nverity does not evaluate policies and does not load a policy it cannot enforce; remove policy to enforce the authorities alone"
    )
}

const RFC3161_UNSUPPORTED: &str = "rfc3161timestamp is not supported by verity yet: spec.authorities[0].rfc3161timestamp\nverity cannot verify RFC 3161 signed timestamps yet and does not load a policy it cannot enforce; remove rfc3161timestamp from this authority";
const KMS_UNSUPPORTED: &str = "KMS keys are not supported by verity yet; inline the public key with key.data or reference a Secret with key.secretRef";
const UNANCHORED: &str = "regex is not anchored with ^...$, so it matches anywhere in the value (.*@example.com also matches x@example.com.evil)";
const DEPRECATED_PREDICATE: &str = "deprecated value, please use RFC 3986 conformant values";

// ---------------------------------------------------------------------------------------------
// Running the cases

struct Case {
    name: &'static str,
    spec: ClusterImagePolicySpec,
    errors: String,
    warnings: String,
}

fn case(name: &'static str, spec: ClusterImagePolicySpec, errors: &str) -> Case {
    Case {
        name,
        spec,
        errors: errors.into(),
        warnings: String::new(),
    }
}

fn case_warning(
    name: &'static str,
    spec: ClusterImagePolicySpec,
    errors: &str,
    warnings: &str,
) -> Case {
    Case {
        name,
        spec,
        errors: errors.into(),
        warnings: warnings.into(),
    }
}

fn run(cases: Vec<Case>, options: &ValidationOptions) {
    let mut failures = Vec::new();
    for case in cases {
        let found = validate_cluster_image_policy(&case.spec, options);
        let errors = found.filter(Level::Error).to_string();
        let warnings = found.filter(Level::Warning).to_string();
        if errors != case.errors || warnings != case.warnings {
            failures.push(format!(
                "case {:?}\n  errors   expected: {:?}\n           found:    {:?}\n  warnings expected: {:?}\n           found:    {:?}",
                case.name, case.errors, errors, case.warnings, warnings
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn run_default(cases: Vec<Case>) {
    run(cases, &ValidationOptions::default());
}

// ---------------------------------------------------------------------------------------------
// The reference's rules and messages

#[test]
fn reference_images_and_authorities() {
    run_default(vec![
        case(
            "empty spec: both fields in one entry",
            ClusterImagePolicySpec::default(),
            "missing field(s): spec.authorities, spec.images",
        ),
        case(
            "glob not present",
            ClusterImagePolicySpec {
                images: vec![ImagePattern::default()],
                ..Default::default()
            },
            "missing field(s): spec.authorities, spec.images[0].glob",
        ),
        case(
            "glob with an unterminated class",
            ClusterImagePolicySpec {
                images: vec![ImagePattern { glob: "[".into() }],
                ..Default::default()
            },
            "invalid value: [: spec.images[0].glob\nglob is invalid: syntax error in pattern\nmissing field(s): spec.authorities",
        ),
        case(
            "glob with characters outside the allowed set",
            ClusterImagePolicySpec {
                images: vec![ImagePattern {
                    glob: "$FOO*".into(),
                }],
                ..Default::default()
            },
            "invalid value: $FOO*: spec.images[0].glob\nglob is invalid: invalid glob \"$FOO*\"\nmissing field(s): spec.authorities",
        ),
        case(
            "authorities missing",
            ClusterImagePolicySpec {
                images: vec![ImagePattern { glob: "*".into() }],
                ..Default::default()
            },
            "missing field(s): spec.authorities",
        ),
        case(
            "authority with no kind",
            spec(vec![Authority::default()]),
            "expected exactly one, got neither: spec.authorities[0].key, spec.authorities[0].keyless, spec.authorities[0].static",
        ),
        case(
            "rfc3161timestamp is not a kind of authority",
            spec(vec![Authority {
                rfc3161timestamp: Some(Rfc3161Timestamp::default()),
                ..Default::default()
            }]),
            "expected exactly one, got neither: spec.authorities[0].key, spec.authorities[0].keyless, spec.authorities[0].static",
        ),
        case(
            "key and keyless",
            spec(vec![Authority {
                keyless: Some(fulcio(vec![github_identity()])),
                ..p256_key()
            }]),
            "expected exactly one, got both: spec.authorities[0].key, spec.authorities[0].keyless, spec.authorities[0].static",
        ),
        case(
            "key and static",
            spec(vec![Authority {
                static_ref: Some(StaticRef {
                    action: "pass".into(),
                    message: None,
                }),
                ..p256_key()
            }]),
            "expected exactly one, got both: spec.authorities[0].key, spec.authorities[0].keyless, spec.authorities[0].static",
        ),
        case(
            "keyless and static",
            spec(vec![Authority {
                keyless: Some(fulcio(vec![github_identity()])),
                ..static_action("fail")
            }]),
            "expected exactly one, got both: spec.authorities[0].key, spec.authorities[0].keyless, spec.authorities[0].static",
        ),
        case(
            "errors of the second authority carry its index",
            spec(vec![static_action("pass"), Authority::default()]),
            "expected exactly one, got neither: spec.authorities[1].key, spec.authorities[1].keyless, spec.authorities[1].static",
        ),
    ]);
}

#[test]
fn reference_static() {
    run_default(vec![
        case(
            "static without action",
            spec(vec![static_action("")]),
            "missing field(s): spec.authorities[0].static.action",
        ),
        case(
            "static with an unknown action",
            spec(vec![static_action("garbage")]),
            "invalid value: garbage: spec.authorities[0].static.action\nunsupported action",
        ),
        case_warning(
            "static combined with attestations, source and ctlog",
            spec(vec![Authority {
                attestations: vec![attestation("first", "vuln", None)],
                sources: vec![Source {
                    oci: Some("registry1".into()),
                    signature_pull_secrets: vec![LocalObjectReference {
                        name: "placeholder".into(),
                    }],
                    ..Default::default()
                }],
                ctlog: Some(TLog::default()),
                ..static_action("fail")
            }]),
            &format!(
                "{}\nexpected exactly one, got both: spec.authorities[0].attestations, spec.authorities[0].ctlog, spec.authorities[0].source, spec.authorities[0].static",
                attestations_unsupported(0)
            ),
            &format!(
                "invalid value: vuln: spec.authorities[0].attestations.predicateType\n{DEPRECATED_PREDICATE}"
            ),
        ),
        case(
            "static combined with rfc3161timestamp",
            spec(vec![Authority {
                rfc3161timestamp: Some(Rfc3161Timestamp::default()),
                ..static_action("pass")
            }]),
            &format!(
                "expected exactly one, got both: spec.authorities[0].rfc3161timestamp, spec.authorities[0].static\n{RFC3161_UNSUPPORTED}"
            ),
        ),
    ]);
}

#[test]
fn reference_keys() {
    run_default(vec![
        case(
            "key with data and kms",
            spec(vec![key(KeyRef {
                kms: Some("hashivault://key/path".into()),
                ..key_data(&pem("ec-p256.pub.pem"))
            })]),
            &format!(
                "expected exactly one, got both: spec.authorities[0].key.data, spec.authorities[0].key.kms, spec.authorities[0].key.secretref\ninvalid value: hashivault://key/path: spec.authorities[0].key.kms\n{KMS_UNSUPPORTED}"
            ),
        ),
        case(
            "key with kms and secretRef",
            spec(vec![key(KeyRef {
                secret_ref: Some(SecretReference {
                    name: Some("cosign-key".into()),
                    namespace: None,
                }),
                ..key_kms("hashivault://key/path")
            })]),
            &format!(
                "expected exactly one, got both: spec.authorities[0].key.data, spec.authorities[0].key.kms, spec.authorities[0].key.secretref\ninvalid value: hashivault://key/path: spec.authorities[0].key.kms\n{KMS_UNSUPPORTED}"
            ),
        ),
        case(
            "empty key",
            spec(vec![key(KeyRef::default())]),
            "expected exactly one, got neither: spec.authorities[0].key.data, spec.authorities[0].key.kms, spec.authorities[0].key.secretref",
        ),
        case(
            "malformed key data",
            spec(vec![key(key_data("---some key data----"))]),
            "invalid value: ---some key data----: spec.authorities[0].key.data\ninvalid PEM public key: no PEM block found (expected a line \"-----BEGIN <label>-----\")",
        ),
        case(
            "unknown hash algorithm",
            spec(vec![key(KeyRef {
                hash_algorithm: Some("shaINVALID".into()),
                ..key_data(&pem("ec-p256.pub.pem"))
            })]),
            "invalid value: shaINVALID: spec.authorities[0].key.hashAlgorithm",
        ),
        case(
            "hash algorithms match case-insensitively",
            spec(vec![key(KeyRef {
                hash_algorithm: Some(" SHA512 ".into()),
                ..key_data(&pem("ec-p256.pub.pem"))
            })]),
            "",
        ),
        case(
            "kms with an unknown provider",
            spec(vec![key(key_kms(
                "fookms://localhost:8888/xpa:butnotvalid",
            ))]),
            "invalid value: fookms://localhost:8888/xpa:butnotvalid: spec.authorities[0].key.kms\nmalformed KMS format, should be prefixed by any of the supported providers: [awskms:// azurekms:// hashivault:// gcpkms://]",
        ),
        case(
            "aws kms that is no ARN",
            spec(vec![key(key_kms(
                "awskms://localhost:8888/arn:butnotvalid",
            ))]),
            "invalid value: awskms://localhost:8888/arn:butnotvalid: spec.authorities[0].key.kms\nkms key should be in the format awskms://[ENDPOINT]/[ID/ALIAS/ARN] (endpoint optional)",
        ),
        case(
            "aws kms key id",
            spec(vec![key(key_kms(
                "awskms:///1234abcd-12ab-34cd-56ef-1234567890ab",
            ))]),
            "invalid value: awskms:///1234abcd-12ab-34cd-56ef-1234567890ab: spec.authorities[0].key.kms\nfailed to parse either key or alias arn: arn: invalid prefix",
        ),
    ]);
}

#[test]
fn reference_keyless_and_identities() {
    run_default(vec![
        case(
            "keyless without identities (url defaulted)",
            spec(vec![keyless(KeylessRef::default())]),
            "missing field(s): spec.authorities[0].keyless.identities",
        ),
        case(
            "keyless with url and ca-cert",
            spec(vec![keyless(KeylessRef {
                url: Some("https://fulcio.example.com".into()),
                ca_cert: Some(key_data(&pem("root-ca.cert.pem"))),
                identities: vec![github_identity()],
                ..Default::default()
            })]),
            "expected exactly one, got both: spec.authorities[0].keyless.ca-cert, spec.authorities[0].keyless.url",
        ),
        case(
            "ca-cert with a malformed aws kms, and no identities",
            spec(vec![keyless(KeylessRef {
                ca_cert: Some(key_kms("awskms://localhost:8888/arn:butnotvalid")),
                ..Default::default()
            })]),
            "invalid value: awskms://localhost:8888/arn:butnotvalid: spec.authorities[0].keyless.ca-cert.kms\nkms key should be in the format awskms://[ENDPOINT]/[ID/ALIAS/ARN] (endpoint optional)\nmissing field(s): spec.authorities[0].keyless.identities",
        ),
        case(
            "identity with no field",
            spec(vec![keyless(fulcio(vec![Identity::default()]))]),
            "missing field(s): spec.authorities[0].keyless.identities[0].issuer, spec.authorities[0].keyless.identities[0].issuerRegExp, spec.authorities[0].keyless.identities[0].subject, spec.authorities[0].keyless.identities[0].subjectRegExp",
        ),
        case(
            "identity without issuer",
            spec(vec![keyless(fulcio(vec![Identity {
                subject: Some("subject".into()),
                ..Default::default()
            }]))]),
            "missing field(s): spec.authorities[0].keyless.identities[0].issuer, spec.authorities[0].keyless.identities[0].issuerRegExp",
        ),
        case(
            "identity without subject, in the second identity",
            spec(vec![keyless(fulcio(vec![
                github_identity(),
                Identity {
                    issuer: Some("issuer".into()),
                    ..Default::default()
                },
            ]))]),
            "missing field(s): spec.authorities[0].keyless.identities[1].subject, spec.authorities[0].keyless.identities[1].subjectRegExp",
        ),
        case_warning(
            "identity with issuer and issuerRegExp",
            spec(vec![keyless(fulcio(vec![Identity {
                issuer: Some("issuer".into()),
                issuer_regexp: Some("issuerregexp".into()),
                subject: Some("subject".into()),
                ..Default::default()
            }]))]),
            "expected exactly one, got both: spec.authorities[0].keyless.identities[0].issuer, spec.authorities[0].keyless.identities[0].issuerRegExp",
            &format!("{UNANCHORED}: spec.authorities[0].keyless.identities[0].issuerRegExp"),
        ),
        case_warning(
            "identity with subject and subjectRegExp",
            spec(vec![keyless(fulcio(vec![Identity {
                issuer: Some("issuer".into()),
                subject: Some("subject".into()),
                subject_regexp: Some("subjectregexp".into()),
                ..Default::default()
            }]))]),
            "expected exactly one, got both: spec.authorities[0].keyless.identities[0].subject, spec.authorities[0].keyless.identities[0].subjectRegExp",
            &format!("{UNANCHORED}: spec.authorities[0].keyless.identities[0].subjectRegExp"),
        ),
        case(
            "issuerRegExp that does not compile",
            spec(vec![keyless(fulcio(vec![Identity {
                issuer_regexp: Some("****".into()),
                subject: Some("subject".into()),
                ..Default::default()
            }]))]),
            "invalid value: ****: spec.authorities[0].keyless.identities[0].issuerRegExp\nregex is invalid: error parsing regexp: missing argument to repetition operator: `*`",
        ),
        case(
            "subjectRegExp that does not compile",
            spec(vec![keyless(fulcio(vec![Identity {
                issuer: Some("issuer".into()),
                subject_regexp: Some("^(unclosed$".into()),
                ..Default::default()
            }]))]),
            "invalid value: ^(unclosed$: spec.authorities[0].keyless.identities[0].subjectRegExp\nregex is invalid: error parsing regexp: missing closing ): `^(unclosed$`",
        ),
    ]);
}

#[test]
fn reference_sources() {
    run_default(vec![
        case(
            "oci with a glob in the repository",
            spec(vec![Authority {
                sources: vec![source("registry.example.com/repo/*")],
                ..p256_key()
            }]),
            "invalid value: registry.example.com/repo/*: spec.authorities[0].source[0].oci\nrepository can only contain the characters `abcdefghijklmnopqrstuvwxyz0123456789_-./`: repo/*",
        ),
        case(
            "oci registry with userinfo",
            spec(vec![Authority {
                sources: vec![source("re@gistry/reponame")],
                ..p256_key()
            }]),
            "invalid value: re@gistry/reponame: spec.authorities[0].source[0].oci\nregistries must be valid RFC 3986 URI authorities: re@gistry/reponame",
        ),
        case(
            "more than one source",
            spec(vec![Authority {
                sources: vec![source("registry1"), source("registry2")],
                ..p256_key()
            }]),
            "invalid value: source: spec.authorities[0].source\nonly single source is supported",
        ),
        case(
            "signature pull secret without name",
            spec(vec![Authority {
                sources: vec![Source {
                    oci: Some("registry.example.com/repo/*".into()),
                    signature_pull_secrets: vec![
                        LocalObjectReference {
                            name: "named".into(),
                        },
                        LocalObjectReference::default(),
                    ],
                    ..Default::default()
                }],
                ..p256_key()
            }]),
            // The reference would prefix the oci error with `signaturePullSecrets[1]` too.
            "invalid value: registry.example.com/repo/*: spec.authorities[0].source[0].oci\nrepository can only contain the characters `abcdefghijklmnopqrstuvwxyz0123456789_-./`: repo/*\nmissing field(s): spec.authorities[0].source[0].signaturePullSecrets[1].name",
        ),
        case(
            "empty oci is allowed",
            spec(vec![Authority {
                sources: vec![source("")],
                ..p256_key()
            }]),
            "",
        ),
    ]);
}

#[test]
fn reference_attestations_and_policies() {
    let mut include_flag_cases = Vec::new();
    type SetFlag = fn(&mut Policy);
    let flags: [(&'static str, SetFlag); 4] = [
        ("fetchConfigFile", |p| p.fetch_config_file = Some(true)),
        ("includeSpec", |p| p.include_spec = Some(true)),
        ("includeObjectMeta", |p| p.include_object_meta = Some(true)),
        ("includeTypeMeta", |p| p.include_type_meta = Some(true)),
    ];
    for (flag, set) in flags {
        let mut attestation_policy =
            cue("predicateType: \"cosign.sigstore.dev/attestation/vuln/v1\"");
        set(&mut attestation_policy);
        let mut cluster_policy = attestation_policy.clone();
        cluster_policy.policy_type = "rego".into();
        include_flag_cases.push(case_warning(
            flag,
            spec(vec![Authority {
                attestations: vec![
                    attestation("first", "vuln", None),
                    attestation("second", "custom", Some(attestation_policy)),
                ],
                ..p256_key()
            }]),
            &format!(
                "{}\n{}\nmust not set the field(s): spec.authorities[0].attestations.policy.{flag}",
                attestations_unsupported(0),
                policy_unsupported("spec.authorities[0].attestations[1].policy"),
            ),
            &format!(
                "invalid value: custom: spec.authorities[0].attestations.predicateType\n{DEPRECATED_PREDICATE}\ninvalid value: vuln: spec.authorities[0].attestations.predicateType\n{DEPRECATED_PREDICATE}"
            ),
        ));
        include_flag_cases.push(case(
            "the same flag is allowed on the ClusterImagePolicy-level policy",
            ClusterImagePolicySpec {
                policy: Some(cluster_policy),
                ..spec(vec![static_action("pass")])
            },
            &policy_unsupported("spec.policy"),
        ));
    }
    run_default(include_flag_cases);

    run_default(vec![
        case(
            "attestation without name and predicate type",
            spec(vec![Authority {
                attestations: vec![attestation("", "", None)],
                ..p256_key()
            }]),
            &format!(
                "{}\nmissing field(s): spec.authorities[0].attestations.name, spec.authorities[0].attestations.predicateType",
                attestations_unsupported(0)
            ),
        ),
        case_warning(
            "predicate types that are not URIs are deprecated",
            spec(vec![Authority {
                attestations: vec![
                    attestation("a", "cosign.sigstore.dev/attestation/vuln/v1", None),
                    attestation("b", "https://slsa.dev/provenance/v1", None),
                ],
                ..p256_key()
            }]),
            &attestations_unsupported(0),
            &format!(
                "invalid value: cosign.sigstore.dev/attestation/vuln/v1: spec.authorities[0].attestations.predicateType\n{DEPRECATED_PREDICATE}"
            ),
        ),
        case(
            "attestation policy with a plain http remote",
            spec(vec![Authority {
                attestations: vec![attestation(
                    "a",
                    "https://slsa.dev/provenance/v1",
                    Some(Policy {
                        policy_type: "cue".into(),
                        remote: Some(RemotePolicy {
                            url: "http://example.com".into(),
                            sha256sum: "abc".into(),
                        }),
                        ..Default::default()
                    }),
                )],
                ..p256_key()
            }]),
            &format!(
                "{}\n{}\ninvalid value: http://example.com: spec.authorities[0].attestations.policy.remote.url\nurl valid is invalid. host and https scheme are expected",
                attestations_unsupported(0),
                policy_unsupported("spec.authorities[0].attestations[0].policy"),
            ),
        ),
        case(
            "policy of an unknown type, with no source",
            ClusterImagePolicySpec {
                policy: Some(Policy {
                    policy_type: "yaml".into(),
                    ..Default::default()
                }),
                ..spec(vec![static_action("pass")])
            },
            &format!(
                "{}\ninvalid value: yaml: spec.policy.type\nonly [cue,rego] are supported at the moment\nmissing field(s): spec.policy.configMapRef, spec.policy.data, spec.policy.remote",
                policy_unsupported("spec.policy")
            ),
        ),
        case(
            "policy with data and a configMapRef without key",
            ClusterImagePolicySpec {
                policy: Some(Policy {
                    config_map_ref: Some(ConfigMapReference {
                        name: "policies".into(),
                        namespace: None,
                        key: String::new(),
                    }),
                    ..cue("{}")
                }),
                ..spec(vec![static_action("pass")])
            },
            &format!(
                "{}\nexpected exactly one, got both: spec.policy.configMapRef, spec.policy.data, spec.policy.remote\nmissing field(s): spec.policy.configMapRef.key",
                policy_unsupported("spec.policy")
            ),
        ),
        case(
            "remote policy without host or sha256sum",
            ClusterImagePolicySpec {
                policy: Some(Policy {
                    policy_type: "rego".into(),
                    remote: Some(RemotePolicy {
                        url: "https:///policy.rego".into(),
                        sha256sum: String::new(),
                    }),
                    ..Default::default()
                }),
                ..spec(vec![static_action("pass")])
            },
            &format!(
                "{}\ninvalid value: https:///policy.rego: spec.policy.remote.url\nurl valid is invalid. host and https scheme are expected\nmissing field(s): spec.policy.remote.sha256sum",
                policy_unsupported("spec.policy")
            ),
        ),
    ]);
}

#[test]
fn reference_mode_and_match() {
    let with_match = |match_resources: Vec<MatchResource>| ClusterImagePolicySpec {
        match_resources,
        ..spec(vec![static_action("pass")])
    };
    let selector = || {
        Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("team".to_string(), "a".to_string())])),
            ..Default::default()
        })
    };
    let mut cases = vec![
        case(
            "unknown mode",
            ClusterImagePolicySpec {
                mode: Some("garbage".into()),
                ..spec(vec![static_action("pass")])
            },
            "invalid value: garbage: spec.mode\nunsupported mode",
        ),
        case(
            "unknown resource",
            with_match(vec![MatchResource {
                resource: "apple".into(),
                ..Default::default()
            }]),
            "invalid value: apple: spec.match[0].resource\nunsupported resource name",
        ),
        case(
            "selector without a resource type",
            with_match(vec![MatchResource {
                selector: selector(),
                ..Default::default()
            }]),
            "invalid value: : spec.match[0].selector\nselector requires a resource type to match the labels",
        ),
        case(
            "selector with a group is enough",
            with_match(vec![MatchResource {
                group: "apps".into(),
                selector: selector(),
                ..Default::default()
            }]),
            "",
        ),
    ];
    for mode in ["enforce", "warn", ""] {
        cases.push(case(
            "known or empty mode",
            ClusterImagePolicySpec {
                mode: Some(mode.into()),
                ..spec(vec![static_action("pass")])
            },
            "",
        ));
    }
    for resource in [
        "pods",
        "deployments",
        "replicasets",
        "statefulsets",
        "daemonsets",
        "jobs",
        "cronjobs",
    ] {
        cases.push(case(
            "known resource",
            with_match(vec![MatchResource {
                resource: resource.into(),
                ..Default::default()
            }]),
            "",
        ));
    }
    run_default(cases);
}

#[test]
fn empty_authorities_follow_the_config() {
    let images_only = ClusterImagePolicySpec {
        images: vec![ImagePattern { glob: "*".into() }],
        ..Default::default()
    };
    run(
        vec![case(
            "fail-on-empty-authorities: false",
            images_only.clone(),
            "",
        )],
        &ValidationOptions {
            fail_on_empty_authorities: false,
            system_namespace: None,
        },
    );
    run_default(vec![case(
        "fail-on-empty-authorities: true",
        images_only,
        "missing field(s): spec.authorities",
    )]);
}

// ---------------------------------------------------------------------------------------------
// verity's departures

#[test]
fn unsupported_features_do_not_load() {
    run_default(vec![
        case(
            "well formed kms reference",
            spec(vec![key(key_kms(
                "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k",
            ))]),
            &format!(
                "invalid value: gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k: spec.authorities[0].key.kms\n{KMS_UNSUPPORTED}"
            ),
        ),
        case(
            "well formed aws kms key ARN",
            spec(vec![key(key_kms(
                "awskms:///arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            ))]),
            &format!(
                "invalid value: awskms:///arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab: spec.authorities[0].key.kms\n{KMS_UNSUPPORTED}"
            ),
        ),
        case(
            "kms for the ca-cert",
            spec(vec![keyless(KeylessRef {
                ca_cert: Some(key_kms("hashivault://ca")),
                identities: vec![github_identity()],
                ..Default::default()
            })]),
            "invalid value: hashivault://ca: spec.authorities[0].keyless.ca-cert.kms\nKMS is not supported by verity for keyless.ca-cert; inline the certificate with ca-cert.data or reference a Secret with ca-cert.secretRef",
        ),
        case(
            "attestations of a valid shape",
            spec(vec![Authority {
                attestations: vec![attestation("sbom", "https://cyclonedx.org/bom", None)],
                ..keyless(fulcio(vec![github_identity()]))
            }]),
            &attestations_unsupported(0),
        ),
        case(
            "cue policy of a valid shape",
            ClusterImagePolicySpec {
                policy: Some(cue("authorityMatches: {}")),
                ..spec(vec![static_action("pass")])
            },
            &policy_unsupported("spec.policy"),
        ),
        case(
            "rfc3161timestamp with a key",
            spec(vec![Authority {
                rfc3161timestamp: Some(Rfc3161Timestamp {
                    trust_root_ref: Some("tsa".into()),
                }),
                ..p256_key()
            }]),
            RFC3161_UNSUPPORTED,
        ),
    ]);
}

#[test]
fn signature_format() {
    let with_format = |authority: Authority, format: &str| {
        spec(vec![Authority {
            signature_format: Some(format.into()),
            ..authority
        }])
    };
    run_default(vec![
        case("bundle with a key", with_format(p256_key(), "bundle"), ""),
        case(
            "bundle with keyless",
            with_format(keyless(fulcio(vec![github_identity()])), "bundle"),
            "",
        ),
        case("legacy", with_format(p256_key(), "legacy"), ""),
        case("empty", with_format(p256_key(), ""), ""),
        case(
            "anything else",
            with_format(p256_key(), "oci11"),
            "invalid value: oci11: spec.authorities[0].signatureFormat\nsupported formats are legacy and bundle",
        ),
    ]);
}

#[test]
fn annotations() {
    let annotations = |pairs: &[(&str, &str)]| {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    run_default(vec![
        case(
            "annotations on a key authority",
            spec(vec![Authority {
                annotations: annotations(&[("team", "payments"), ("env", "")]),
                ..p256_key()
            }]),
            "",
        ),
        case(
            "empty annotation key",
            spec(vec![Authority {
                annotations: annotations(&[("", "payments")]),
                ..p256_key()
            }]),
            "annotation keys must not be empty: spec.authorities[0].annotations",
        ),
        case(
            "annotations with static",
            spec(vec![Authority {
                annotations: annotations(&[("team", "payments")]),
                ..static_action("pass")
            }]),
            "expected exactly one, got both: spec.authorities[0].annotations, spec.authorities[0].static",
        ),
    ]);
}

#[test]
fn identity_regexps_are_anchored_or_warned_about() {
    run_default(vec![
        case_warning(
            "unanchored regexps, merged into one warning",
            spec(vec![keyless(fulcio(vec![
                Identity {
                    issuer_regexp: Some(".*".into()),
                    subject_regexp: Some(".*@example.com".into()),
                    ..Default::default()
                },
                Identity {
                    issuer: Some("https://accounts.google.com".into()),
                    subject_regexp: Some("^.*@example\\.com$".into()),
                    ..Default::default()
                },
            ]))]),
            "",
            &format!(
                "{UNANCHORED}: spec.authorities[0].keyless.identities[0].issuerRegExp, spec.authorities[0].keyless.identities[0].subjectRegExp"
            ),
        ),
        case(
            "anchored regexps",
            spec(vec![keyless(fulcio(vec![Identity {
                issuer_regexp: Some("^https://token\\.actions\\.githubusercontent\\.com$".into()),
                subject_regexp: Some("(?i)^https://github\\.com/example/.*$".into()),
                ..Default::default()
            }]))]),
            "",
        ),
    ]);
}

#[test]
fn keyless_ca_cert_is_honoured() {
    let ca_cert = |data: &str| {
        spec(vec![keyless(KeylessRef {
            ca_cert: Some(key_data(data)),
            identities: vec![github_identity()],
            ..Default::default()
        })])
    };
    let chain = format!(
        "{}{}",
        pem("intermediate-ca.cert.pem"),
        pem("root-ca.cert.pem")
    );
    let public_key = pem("ec-p256.pub.pem");
    run_default(vec![
        case("ca-cert without url", ca_cert(&pem("root-ca.cert.pem")), ""),
        case("ca-cert chain", ca_cert(&chain), ""),
        case(
            "ca-cert holding a public key",
            ca_cert(&public_key),
            &format!(
                "invalid value: {public_key}: spec.authorities[0].keyless.ca-cert.data\nPEM block 0 is \"PUBLIC KEY\"; expected \"CERTIFICATE\""
            ),
        ),
        case(
            "ca-cert that does not parse",
            ca_cert("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"),
            "invalid value: -----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n: spec.authorities[0].keyless.ca-cert.data\ncertificate 0 does not parse: ASN.1 DER message is incomplete: expected 3, actual 2 at DER byte 2",
        ),
    ]);
}

#[test]
fn key_data_must_be_a_supported_public_key() {
    let mut cases = Vec::new();
    for supported in [
        "ec-p256.pub.pem",
        "ec-p384.pub.pem",
        "ec-p521.pub.pem",
        "rsa-2048.pub.pem",
        "rsa-2048.pkcs1.pub.pem",
        "ed25519.pub.pem",
    ] {
        cases.push(case(
            "supported key",
            spec(vec![key(key_data(&pem(supported)))]),
            "",
        ));
    }
    let supported =
        "verity supports ECDSA P-256, P-384 and P-521, RSA of 2048 to 8192 bits, and Ed25519";
    for (file, reason) in [
        (
            "rsa-1024.pub.pem",
            "RSA key of 1024 bits is too small; verity requires at least 2048 bits".to_string(),
        ),
        (
            "ec-secp256k1.pub.pem",
            format!("unsupported elliptic curve secp256k1 (1.3.132.0.10); {supported}"),
        ),
        (
            "ed448.pub.pem",
            format!("unsupported public key algorithm Ed448 (1.3.101.113); {supported}"),
        ),
        (
            "root-ca.cert.pem",
            "expected a PEM block \"PUBLIC KEY\" or \"RSA PUBLIC KEY\", found \"CERTIFICATE\""
                .to_string(),
        ),
    ] {
        let data = pem(file);
        cases.push(Case {
            name: "unsupported key",
            spec: spec(vec![key(key_data(&data))]),
            errors: format!("invalid value: {data}: spec.authorities[0].key.data\n{reason}"),
            warnings: String::new(),
        });
    }
    run_default(cases);
}

#[test]
fn secret_refs() {
    let secret = |name: Option<&str>, namespace: Option<&str>| {
        spec(vec![key(KeyRef {
            secret_ref: Some(SecretReference {
                name: name.map(String::from),
                namespace: namespace.map(String::from),
            }),
            ..Default::default()
        })])
    };
    let cluster = ValidationOptions {
        fail_on_empty_authorities: true,
        system_namespace: Some("cosign-system".into()),
    };
    run(
        vec![
            case(
                "secret in another namespace",
                secret(Some("cosign-key"), Some("default")),
                "invalid value: default: spec.authorities[0].key.secretref.namespace\nsecretref.namespace is invalid. If set, it should use the same namespace where the policy-controller was deployed",
            ),
            case(
                "secret in the system namespace",
                secret(Some("cosign-key"), Some("cosign-system")),
                "",
            ),
            case(
                "secret without namespace",
                secret(Some("cosign-key"), None),
                "",
            ),
            case(
                "secret without name",
                secret(None, None),
                "missing field(s): spec.authorities[0].key.secretref.name",
            ),
            case(
                "secret with an empty name",
                secret(Some(""), None),
                "missing field(s): spec.authorities[0].key.secretref.name",
            ),
        ],
        &cluster,
    );
    run_default(vec![case(
        "file mode does not check the namespace",
        secret(Some("cosign-key"), Some("default")),
        "",
    )]);
}

#[test]
fn signature_repositories_must_parse() {
    let with_source = |oci: &str| {
        spec(vec![Authority {
            sources: vec![source(oci)],
            ..p256_key()
        }])
    };
    run_default(vec![
        case("bare registry", with_source("registry.example.com"), ""),
        case("registry without dots", with_source("registry1"), ""),
        case(
            "nested repository",
            with_source("gcr.io/google.com/project/hello-world"),
            "",
        ),
        case(
            "registry with port, no repository",
            with_source("localhost:5000"),
            "invalid value: localhost:5000: spec.authorities[0].source[0].oci\ncould not parse reference: localhost:5000; write the signature repository as <registry>/<repository>",
        ),
        case(
            "docker hub needs library/",
            with_source("docker.io/busybox"),
            "invalid value: docker.io/busybox: spec.authorities[0].source[0].oci\nstrict validation requires the full repository path (missing 'library')",
        ),
    ]);
}

#[test]
fn label_selector_expressions() {
    run_default(vec![
        case(
            "malformed expressions",
            ClusterImagePolicySpec {
                match_resources: vec![MatchResource {
                    resource: "pods".into(),
                    selector: Some(LabelSelector {
                        match_expressions: Some(vec![
                            requirement("tier", "Equals", Some(vec!["a"])),
                            requirement("", "In", None),
                            requirement("canary", "Exists", Some(vec!["true"])),
                        ]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..spec(vec![static_action("pass")])
            },
            "invalid value: Equals: spec.match[0].selector.matchExpressions[0].operator\n\"Equals\" is not a valid label selector operator\nmissing field(s): spec.match[0].selector.matchExpressions[1].key\nmissing field(s): spec.match[0].selector.matchExpressions[1].values\nmust be specified when `operator` is 'In' or 'NotIn'\nmust not set the field(s): spec.match[0].selector.matchExpressions[2].values\nmay not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        ),
        case(
            "well formed expressions",
            ClusterImagePolicySpec {
                match_resources: vec![MatchResource {
                    resource: "pods".into(),
                    selector: Some(LabelSelector {
                        match_expressions: Some(vec![
                            requirement("tier", "In", Some(vec!["a", "b"])),
                            requirement("tier", "NotIn", Some(vec!["c"])),
                            requirement("canary", "DoesNotExist", None),
                            requirement("team", "Exists", Some(vec![])),
                        ]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..spec(vec![static_action("pass")])
            },
            "",
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Valid policies

#[test]
fn valid_policies() {
    run_default(vec![
        case("static pass", spec(vec![static_action("pass")]), ""),
        case(
            "static fail with a message",
            spec(vec![Authority {
                static_ref: Some(StaticRef {
                    action: "fail".into(),
                    message: Some("not allowed".into()),
                }),
                ..Default::default()
            }]),
            "",
        ),
        case("key data", spec(vec![p256_key()]), ""),
        case(
            "keyless with identities",
            spec(vec![keyless(fulcio(vec![github_identity()]))]),
            "",
        ),
        case(
            "keyless with the default url, a ctlog and a trust root",
            spec(vec![Authority {
                ctlog: Some(TLog {
                    url: Some("https://rekor.sigstore.dev".into()),
                    trust_root_ref: None,
                }),
                ..keyless(KeylessRef {
                    identities: vec![github_identity()],
                    trust_root_ref: Some("private".into()),
                    ..Default::default()
                })
            }]),
            "",
        ),
        case(
            "source.oci with pull secrets",
            spec(vec![Authority {
                sources: vec![Source {
                    oci: Some("registry.example.com/signatures".into()),
                    signature_pull_secrets: vec![LocalObjectReference {
                        name: "pull".into(),
                    }],
                    tag_prefix: Some("v2-".into()),
                }],
                ..p256_key()
            }]),
            "",
        ),
        case(
            "glob with an exact digest",
            ClusterImagePolicySpec {
                images: vec![ImagePattern {
                    glob: "ghcr.io/foo@sha256:5504f2a95018e3d8a52d80d9e1a128c6ea337581808ff9fe96f5628ce2336350".into(),
                }],
                ..spec(vec![static_action("pass")])
            },
            "",
        ),
        case(
            "match with selector",
            ClusterImagePolicySpec {
                match_resources: vec![MatchResource {
                    group: "apps".into(),
                    version: "v1".into(),
                    resource: "deployments".into(),
                    selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([(
                            "team".to_string(),
                            "payments".to_string(),
                        )])),
                        ..Default::default()
                    }),
                }],
                ..spec(vec![p256_key()])
            },
            "",
        ),
    ]);
}

/// Documents of both served versions deserialize into the same spec and validate clean.
#[test]
fn yaml_policies_of_both_versions() {
    for (file, api_version, names) in [
        (
            "v1alpha1-keyless.yaml",
            "policy.sigstore.dev/v1alpha1",
            vec!["authority-0"],
        ),
        (
            "v1beta1-key.yaml",
            "policy.sigstore.dev/v1beta1",
            vec!["release-key", "authority-1"],
        ),
        (
            "v1beta1-static-fail.yaml",
            "policy.sigstore.dev/v1beta1",
            vec!["authority-0"],
        ),
    ] {
        let document: serde_json::Value = serde_saphyr::from_str(&fixture(file)).unwrap();
        assert_eq!(document["apiVersion"], api_version, "{file}");
        assert_eq!(document["kind"], "ClusterImagePolicy", "{file}");
        let mut spec: ClusterImagePolicySpec =
            serde_json::from_value(document["spec"].clone()).unwrap();
        let found = validate_cluster_image_policy(&spec, &ValidationOptions::default());
        assert_eq!(found.to_string(), "", "{file}");
        set_defaults(&mut spec);
        let found_names: Vec<_> = spec
            .authorities
            .iter()
            .map(|a| a.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(found_names, names, "{file}");
    }
}

// ---------------------------------------------------------------------------------------------
// Defaulting

#[test]
fn defaults_authority_names() {
    let cases: [(&[&str], &[&str]); 4] = [
        (&[""], &["authority-0"]),
        (&["", "vuln-scan"], &["authority-0", "vuln-scan"]),
        (&["vuln-scan", ""], &["vuln-scan", "authority-1"]),
        (&["first", "second"], &["first", "second"]),
    ];
    for (names, expected) in cases {
        let mut spec = spec(
            names
                .iter()
                .map(|name| Authority {
                    name: Some(name.to_string()).filter(|n| !n.is_empty()),
                    ..static_action("pass")
                })
                .collect(),
        );
        set_defaults(&mut spec);
        let found: Vec<_> = spec
            .authorities
            .iter()
            .map(|a| a.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(found, expected);
    }
    let mut explicit_empty = spec(vec![Authority {
        name: Some(String::new()),
        ..static_action("pass")
    }]);
    set_defaults(&mut explicit_empty);
    assert_eq!(
        explicit_empty.authorities[0].name.as_deref(),
        Some("authority-0")
    );
}

#[test]
fn defaults_mode_to_enforce() {
    for (mode, expected) in [
        (None, "enforce"),
        (Some(""), "enforce"),
        (Some("warn"), "warn"),
        (Some("enforce"), "enforce"),
        (Some("garbage"), "garbage"),
    ] {
        let mut spec = ClusterImagePolicySpec {
            mode: mode.map(String::from),
            ..Default::default()
        };
        set_defaults(&mut spec);
        assert_eq!(spec.mode.as_deref(), Some(expected), "{mode:?}");
    }
}

#[test]
fn defaults_keyless_url_to_public_fulcio() {
    let cases = [
        (
            "keyless alone",
            keyless(KeylessRef::default()),
            Some(DEFAULT_FULCIO_URL),
        ),
        (
            "keyless with url",
            keyless(KeylessRef {
                url: Some("https://fulcio.example.com".into()),
                ..Default::default()
            }),
            Some("https://fulcio.example.com"),
        ),
        (
            "keyless with ca-cert",
            keyless(KeylessRef {
                ca_cert: Some(key_data(&pem("root-ca.cert.pem"))),
                ..Default::default()
            }),
            None,
        ),
        (
            "keyless with key",
            Authority {
                keyless: Some(KeylessRef::default()),
                ..p256_key()
            },
            None,
        ),
        (
            "keyless with static",
            Authority {
                keyless: Some(KeylessRef::default()),
                ..static_action("pass")
            },
            None,
        ),
        ("key", p256_key(), None),
        ("static", static_action("pass"), None),
    ];
    for (name, authority, expected) in cases {
        let mut spec = spec(vec![authority]);
        set_defaults(&mut spec);
        let url = spec.authorities[0]
            .keyless
            .as_ref()
            .and_then(|k| k.url.as_deref());
        assert_eq!(url, expected, "{name}");
    }
}

#[test]
fn defaulting_is_idempotent_and_applied_by_validation() {
    let mut spec = spec(vec![
        keyless(KeylessRef {
            identities: vec![github_identity()],
            ..Default::default()
        }),
        static_action("pass"),
    ]);
    let original = spec.clone();
    set_defaults(&mut spec);
    let once = spec.clone();
    set_defaults(&mut spec);
    assert_eq!(spec, once);
    assert_ne!(once, original);
    let options = ValidationOptions::default();
    assert_eq!(
        validate_cluster_image_policy(&original, &options),
        validate_cluster_image_policy(&once, &options)
    );
}

/// The reference's rule for a keyless authority with neither `url` nor `ca-cert` only shows
/// before defaulting; the public entry point always defaults first.
#[test]
fn keyless_without_url_or_ca_cert_before_defaulting() {
    let undefaulted = spec(vec![keyless(KeylessRef {
        identities: vec![github_identity()],
        ..Default::default()
    })]);
    assert_eq!(
        cluster_image_policy::check_spec(&undefaulted, &ValidationOptions::default()).to_string(),
        "expected exactly one, got neither: spec.authorities[0].keyless.ca-cert, spec.authorities[0].keyless.url"
    );
}

#[test]
fn validation_options_default_to_the_reference_config() {
    assert_eq!(
        ValidationOptions::default(),
        ValidationOptions {
            fail_on_empty_authorities: true,
            system_namespace: None,
        }
    );
}

// ---------------------------------------------------------------------------------------------
// TrustRoot

mod trust_roots {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::policy::crd::{
        CertificateAuthority, DistinguishedName, Remote, Repository, SigstoreKeys,
        TransparencyLogInstance,
    };

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        STANDARD.encode(bytes)
    }

    fn root_json() -> String {
        b64(r#"{"signed":{"_type":"root","version":1},"signatures":[{"keyid":"k","sig":"s"}]}"#)
    }

    /// Enough of a gzip stream for the header check.
    fn gzip_archive() -> String {
        b64([0x1f, 0x8b, 0x08, 0x00])
    }

    fn authority(chain: &str) -> CertificateAuthority {
        CertificateAuthority {
            subject: DistinguishedName {
                organization: "example".into(),
                common_name: "fulcio".into(),
            },
            uri: "https://fulcio.example.com".into(),
            cert_chain: b64(chain),
        }
    }

    fn log(public_key_pem: &str) -> TransparencyLogInstance {
        TransparencyLogInstance {
            base_url: "https://rekor.example.com".into(),
            hash_algorithm: "sha2-256".into(),
            public_key: b64(public_key_pem),
        }
    }

    fn ca_chain() -> String {
        format!(
            "{}{}",
            pem("intermediate-ca.cert.pem"),
            pem("root-ca.cert.pem")
        )
    }

    fn tsa_chain() -> String {
        format!("{}{}", pem("tsa-leaf-1.cert.pem"), ca_chain())
    }

    fn keys(keys: SigstoreKeys) -> TrustRootSpec {
        TrustRootSpec {
            sigstore_keys: Some(keys),
            ..Default::default()
        }
    }

    fn remote(root: &str, mirror: &str) -> TrustRootSpec {
        TrustRootSpec {
            remote: Some(Remote {
                root: root.into(),
                mirror: mirror.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn repository(root: &str, mirror_fs: &str) -> TrustRootSpec {
        TrustRootSpec {
            repository: Some(Repository {
                root: root.into(),
                mirror_fs: mirror_fs.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn run(cases: Vec<(&str, TrustRootSpec, String)>) {
        let mut failures = Vec::new();
        for (name, spec, expected) in cases {
            let found = validate_trust_root(&spec).to_string();
            if found != expected {
                failures.push(format!(
                    "case {name:?}\n  expected: {expected:?}\n  found:    {found:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn exactly_one_source_of_trust() {
        let all_four = "spec.remote, spec.repository, spec.sigstoreKeys, spec.trustedRootJSON";
        run(vec![
            (
                "nothing",
                TrustRootSpec::default(),
                format!("expected exactly one, got neither: {all_four}"),
            ),
            (
                "empty trustedRootJSON counts as unset",
                TrustRootSpec {
                    trusted_root_json: Some(String::new()),
                    ..Default::default()
                },
                format!("expected exactly one, got neither: {all_four}"),
            ),
            (
                "remote and sigstoreKeys",
                TrustRootSpec {
                    sigstore_keys: Some(SigstoreKeys::default()),
                    ..remote(&root_json(), "https://tuf.example.com")
                },
                format!("expected exactly one, got both: {all_four}"),
            ),
            (
                "sigstoreKeys and trustedRootJSON",
                TrustRootSpec {
                    trusted_root_json: Some("{}".into()),
                    ..keys(SigstoreKeys {
                        certificate_authorities: vec![authority(&ca_chain())],
                        ..Default::default()
                    })
                },
                format!("expected exactly one, got both: {all_four}"),
            ),
        ]);
    }

    #[test]
    fn remote_and_repository() {
        run(vec![
            (
                "valid remote",
                remote(&root_json(), "https://tuf.example.com"),
                String::new(),
            ),
            (
                "remote without mirror and root",
                remote("", ""),
                "missing field(s): spec.remote.mirror, spec.remote.root".into(),
            ),
            (
                "root that is not base64",
                remote("%%%", "https://tuf.example.com"),
                "invalid value: failed to decode base64: spec.remote.root\nInvalid symbol 37, offset 0.".into(),
            ),
            (
                "root that is not JSON",
                remote(&b64("not json"), "https://tuf.example.com"),
                "invalid value: failed to unmarshal: spec.remote.root\nexpected ident at line 1 column 2".into(),
            ),
            (
                "root that is not a JSON object",
                remote(&b64("[]"), "https://tuf.example.com"),
                "invalid value: failed to unmarshal: spec.remote.root\ninvalid type: sequence, expected a map at line 1 column 0".into(),
            ),
            (
                "root without signatures",
                remote(&b64(r#"{"signed":{},"signatures":null}"#), "https://tuf.example.com"),
                "invalid value: missing signatures in root.json: spec.remote.root\nno signatures".into(),
            ),
            (
                "valid repository (targets defaulted)",
                repository(&root_json(), &gzip_archive()),
                String::new(),
            ),
            (
                "repository without mirrorFS",
                repository(&root_json(), ""),
                "missing field(s): spec.repository.mirrorFS".into(),
            ),
            (
                "repository that is no gzip archive",
                repository(&root_json(), &b64("hello world\n")),
                "invalid value: failed to construct a TUF client: spec.repository.mirrorFS\nfailed to uncompress: gzip: invalid header".into(),
            ),
            (
                "repository archive not looked at while the root is wrong",
                repository("", &b64("hello world\n")),
                "missing field(s): spec.repository.root".into(),
            ),
            (
                "repository archive that is not base64",
                repository(&root_json(), "***"),
                "invalid value: failed to decode base64: spec.repository.mirrorFS\nInvalid symbol 42, offset 0.".into(),
            ),
        ]);
    }

    #[test]
    fn sigstore_keys() {
        let too_many_leaves = format!("{}{}", pem("tsa-leaf-2.cert.pem"), tsa_chain());
        run(vec![
            (
                "certificate authority, timestamp authority and logs",
                keys(SigstoreKeys {
                    certificate_authorities: vec![authority(&ca_chain())],
                    timestamp_authorities: vec![authority(&tsa_chain())],
                    tlogs: vec![log(&pem("ec-p256.pub.pem"))],
                    ctlogs: vec![log(&pem("ed25519.pub.pem"))],
                }),
                String::new(),
            ),
            (
                "only a timestamp authority",
                keys(SigstoreKeys {
                    timestamp_authorities: vec![authority(&tsa_chain())],
                    ..Default::default()
                }),
                String::new(),
            ),
            (
                "no certificate or timestamp authority",
                keys(SigstoreKeys {
                    tlogs: vec![log(&pem("ec-p256.pub.pem"))],
                    ..Default::default()
                }),
                "expected exactly one, got neither: spec.sigstoreKeys.certificateAuthorities, spec.sigstoreKeys.timestampAuthorities".into(),
            ),
            (
                "errors of every authority and log accumulate",
                keys(SigstoreKeys {
                    certificate_authorities: vec![
                        CertificateAuthority {
                            subject: DistinguishedName {
                                organization: String::new(),
                                common_name: "fulcio".into(),
                            },
                            uri: String::new(),
                            ..authority(&ca_chain())
                        },
                        CertificateAuthority {
                            subject: DistinguishedName {
                                organization: "example".into(),
                                common_name: String::new(),
                            },
                            cert_chain: String::new(),
                            ..authority(&ca_chain())
                        },
                    ],
                    timestamp_authorities: vec![authority(&too_many_leaves)],
                    tlogs: vec![TransparencyLogInstance::default()],
                    ctlogs: vec![log(&pem("rsa-1024.pub.pem"))],
                }),
                "invalid value: certificate chain must contain at most one TSA certificate: spec.sigstoreKeys.timestampAuthorities[0].certChain\ninvalid value: failed to parse public key: spec.sigstoreKeys.ctLogs[0].publicKey\nRSA key of 1024 bits is too small; verity requires at least 2048 bits\nmissing field(s): spec.sigstoreKeys.certificateAuthorities[0].subject.organization, spec.sigstoreKeys.certificateAuthorities[0].uri, spec.sigstoreKeys.certificateAuthorities[1].certChain, spec.sigstoreKeys.certificateAuthorities[1].subject.commonName, spec.sigstoreKeys.tLogs[0].baseURL, spec.sigstoreKeys.tLogs[0].hashAlgorithm, spec.sigstoreKeys.tLogs[0].publicKey".into(),
            ),
            (
                "timestamp authority chain that is no PEM",
                keys(SigstoreKeys {
                    timestamp_authorities: vec![CertificateAuthority {
                        cert_chain: b64("INVALID"),
                        ..authority("")
                    }],
                    ..Default::default()
                }),
                "invalid value: error splitting the certificates: spec.sigstoreKeys.timestampAuthorities[0].certChain\nerror during PEM decoding".into(),
            ),
            (
                "certificate authority chain that is not base64",
                keys(SigstoreKeys {
                    certificate_authorities: vec![CertificateAuthority {
                        cert_chain: "***".into(),
                        ..authority("")
                    }],
                    ..Default::default()
                }),
                "invalid value: failed to decode base64: spec.sigstoreKeys.certificateAuthorities[0].certChain\nInvalid symbol 42, offset 0.".into(),
            ),
            (
                "certificate authority chain without certificates",
                keys(SigstoreKeys {
                    certificate_authorities: vec![authority("  \n")],
                    ..Default::default()
                }),
                "invalid value: error splitting the certificates: spec.sigstoreKeys.certificateAuthorities[0].certChain\nno certificates found".into(),
            ),
            (
                "certificate authority chain with a broken certificate",
                keys(SigstoreKeys {
                    certificate_authorities: vec![authority(
                        "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
                    )],
                    ..Default::default()
                }),
                "invalid value: error splitting the certificates: spec.sigstoreKeys.certificateAuthorities[0].certChain\nx509: ASN.1 DER message is incomplete: expected 3, actual 2 at DER byte 2".into(),
            ),
            (
                "log key that is not PEM",
                keys(SigstoreKeys {
                    certificate_authorities: vec![authority(&ca_chain())],
                    tlogs: vec![TransparencyLogInstance {
                        public_key: b64("not a key"),
                        ..log("")
                    }],
                    ..Default::default()
                }),
                "invalid value: failed to parse public key: spec.sigstoreKeys.tLogs[0].publicKey\ninvalid PEM public key: no PEM block found (expected a line \"-----BEGIN <label>-----\")".into(),
            ),
        ]);
    }

    #[test]
    fn trusted_root_json() {
        let json = |json: &str| TrustRootSpec {
            trusted_root_json: Some(json.into()),
            ..Default::default()
        };
        run(vec![
            (
                "a JSON object",
                json(r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#),
                String::new(),
            ),
            (
                "not JSON",
                json("not json"),
                "invalid value: failed to unmarshal: spec.trustedRootJSON\nexpected ident at line 1 column 2".into(),
            ),
        ]);
    }

    #[test]
    fn defaults_tuf_targets() {
        let mut spec = TrustRootSpec {
            remote: Some(Remote::default()),
            repository: Some(Repository {
                targets: Some("custom".into()),
                trusted_root_target: Some(String::new()),
                ..Default::default()
            }),
            ..Default::default()
        };
        set_trust_root_defaults(&mut spec);
        let once = spec.clone();
        set_trust_root_defaults(&mut spec);
        assert_eq!(spec, once);
        let remote = spec.remote.unwrap();
        assert_eq!(remote.targets.as_deref(), Some("targets"));
        assert_eq!(
            remote.trusted_root_target.as_deref(),
            Some("trusted_root.json")
        );
        let repository = spec.repository.unwrap();
        assert_eq!(repository.targets.as_deref(), Some("custom"));
        assert_eq!(
            repository.trusted_root_target.as_deref(),
            Some("trusted_root.json")
        );

        let mut keys_only = keys(SigstoreKeys::default());
        set_trust_root_defaults(&mut keys_only);
        assert_eq!(keys_only, keys(SigstoreKeys::default()));
    }
}
