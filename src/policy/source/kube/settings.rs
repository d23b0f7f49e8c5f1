//! The ConfigMap `config-policy-controller` in verity's namespace: `no-match-policy` and
//! `fail-on-empty-authorities`, read from `data` as the reference reads them.

use std::collections::BTreeMap;

use crate::policy::index::{NoMatchPolicy, Settings};

/// Name of the ConfigMap, as the reference names it.
pub const CONFIG_MAP: &str = "config-policy-controller";
const NO_MATCH_POLICY: &str = "no-match-policy";
const FAIL_ON_EMPTY_AUTHORITIES: &str = "fail-on-empty-authorities";
/// The sample block of the shipped manifests; ignored without a word.
const EXAMPLE: &str = "_example";

/// What the ConfigMap controls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    pub settings: Settings,
    /// The validator rejects policies without authorities (reference default: true).
    pub fail_on_empty_authorities: bool,
}

/// The settings a ConfigMap gives, and what in it was not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsReport {
    pub settings: ClusterSettings,
    /// Keys verity does not read (`_example` excluded).
    pub ignored: Vec<String>,
    /// Values that could not be used; the default stays in force for them.
    pub problems: Vec<String>,
}

/// Reads the ConfigMap's `data` over `defaults` (the command-line flags). An absent ConfigMap or
/// key keeps the default. `no-match-policy` values other than `allow` and `warn` mean deny, as in
/// the reference, and are reported.
pub fn settings_from(
    data: Option<&BTreeMap<String, String>>,
    defaults: &ClusterSettings,
) -> SettingsReport {
    let mut report = SettingsReport {
        settings: defaults.clone(),
        ignored: Vec::new(),
        problems: Vec::new(),
    };
    for (key, value) in data.into_iter().flatten() {
        match key.as_str() {
            NO_MATCH_POLICY => {
                let parsed = NoMatchPolicy::parse_lenient(value.trim());
                if parsed.as_str() != value.trim() {
                    report.problems.push(format!(
                        "{CONFIG_MAP} {NO_MATCH_POLICY}: unknown value {value:?} (expected deny, warn or allow) means deny"
                    ));
                }
                report.settings.settings.no_match = parsed;
            }
            FAIL_ON_EMPTY_AUTHORITIES => match parse_go_bool(value.trim()) {
                Some(flag) => report.settings.fail_on_empty_authorities = flag,
                None => report.problems.push(format!(
                    "{CONFIG_MAP} {FAIL_ON_EMPTY_AUTHORITIES}: {value:?} is not a boolean (true or false); keeping {}",
                    defaults.fail_on_empty_authorities
                )),
            },
            EXAMPLE => {}
            _ => report.ignored.push(key.clone()),
        }
    }
    report
}

/// Go's `strconv.ParseBool`, which the reference uses for these keys.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> ClusterSettings {
        ClusterSettings {
            settings: Settings {
                no_match: NoMatchPolicy::Deny,
            },
            fail_on_empty_authorities: true,
        }
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn absent_config_map_keeps_the_flags() {
        let report = settings_from(None, &defaults());
        assert_eq!(report.settings, defaults());
        assert!(report.ignored.is_empty() && report.problems.is_empty());
    }

    #[test]
    fn reads_both_keys_and_ignores_example_silently() {
        let config = data(&[
            ("no-match-policy", "warn"),
            ("fail-on-empty-authorities", "false"),
            ("_example", "no-match-policy: allow\n"),
        ]);
        let report = settings_from(Some(&config), &defaults());
        assert_eq!(report.settings.settings.no_match, NoMatchPolicy::Warn);
        assert!(!report.settings.fail_on_empty_authorities);
        assert!(report.ignored.is_empty() && report.problems.is_empty());
        let allow = data(&[("no-match-policy", "allow")]);
        assert_eq!(
            settings_from(Some(&allow), &defaults())
                .settings
                .settings
                .no_match,
            NoMatchPolicy::Allow
        );
    }

    #[test]
    fn example_block_alone_changes_nothing() {
        // The shipped manifests put their sample only under _example, so defaults apply.
        let config = data(&[("_example", "no-match-policy: allow")]);
        let report = settings_from(Some(&config), &defaults());
        assert_eq!(report.settings, defaults());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_reported() {
        let config = data(&[
            ("enable-oci11", "true"),
            ("no-match-policy", "permit"),
            ("fail-on-empty-authorities", "nope"),
        ]);
        let start = ClusterSettings {
            settings: Settings {
                no_match: NoMatchPolicy::Allow,
            },
            fail_on_empty_authorities: true,
        };
        let report = settings_from(Some(&config), &start);
        assert_eq!(report.ignored, ["enable-oci11"]);
        // Like the reference: an unknown no-match value means deny.
        assert_eq!(report.settings.settings.no_match, NoMatchPolicy::Deny);
        assert!(report.settings.fail_on_empty_authorities);
        assert_eq!(
            report.problems,
            [
                r#"config-policy-controller fail-on-empty-authorities: "nope" is not a boolean (true or false); keeping true"#,
                r#"config-policy-controller no-match-policy: unknown value "permit" (expected deny, warn or allow) means deny"#,
            ]
        );
    }

    #[test]
    fn go_booleans() {
        for text in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(text), Some(true), "{text}");
        }
        for text in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(text), Some(false), "{text}");
        }
        for text in ["", "yes", "tRuE", "2"] {
            assert_eq!(parse_go_bool(text), None, "{text}");
        }
    }
}
