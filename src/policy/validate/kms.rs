//! `key.kms` reference formats, checked as the reference does (texts kept verbatim).
//!
//! verity cannot fetch KMS keys yet; the caller adds that error once the format is right, so
//! users fix a malformed reference and learn about the missing support in one round.

use std::sync::LazyLock;

use regex::Regex;

const PROVIDERS: [&str; 4] = ["awskms://", "azurekms://", "hashivault://", "gcpkms://"];
const AWS_PREFIX: &str = "awskms://";
const AWS_REFERENCE_FORMAT: &str =
    "kms key should be in the format awskms://[ENDPOINT]/[ID/ALIAS/ARN] (endpoint optional)";

/// The four AWS forms the reference recognises (key id, key ARN, alias name, alias ARN), each
/// with an optional endpoint. `[0-9]` rather than `\d`: Go's `\d` is ASCII only.
const AWS_PATTERNS: [&str; 4] = [
    r"^awskms://([^/]*)/(m?r?k?-?[A-Fa-f0-9]{8}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{12})$",
    r"^awskms://([^/]*)/(arn:(?:aws|aws-us-gov|aws-cn):kms:[a-z0-9-]+:[0-9]{12}:key/m?r?k?-?[A-Fa-f0-9]{8}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{12})$",
    r"^awskms://([^/]*)/((alias/.*))$",
    r"^awskms://([^/]*)/(arn:(?:aws|aws-us-gov|aws-cn):kms:[a-z0-9-]+:[0-9]{12}:(alias/.*))$",
];

/// Constant patterns; a test checks that all four compile. Should one ever fail, fewer
/// references match and more are rejected, never the reverse.
static AWS_REGEXES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    AWS_PATTERNS
        .iter()
        .filter_map(|pattern| Regex::new(pattern).ok())
        .collect()
});

/// `Ok` when the reference accepts `kms`, else the details of its `invalid value` error.
pub(super) fn check_reference(kms: &str) -> Result<(), String> {
    if !PROVIDERS.iter().any(|prefix| kms.starts_with(prefix)) {
        return Err(format!(
            "malformed KMS format, should be prefixed by any of the supported providers: [{}]",
            PROVIDERS.join(" ")
        ));
    }
    if kms.starts_with(AWS_PREFIX) {
        return check_aws_reference(kms);
    }
    Ok(())
}

fn check_aws_reference(kms: &str) -> Result<(), String> {
    let parts: Vec<&str> = kms.split('/').collect();
    let (Some(endpoint), Some(key_id)) = (parts.get(2), parts.get(3)) else {
        return Err("malformed AWS KMS format 'awskms://$ENDPOINT/$KEYID', should be conformant with KMS standard documented here: https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#key-id".to_string());
    };
    if !AWS_REGEXES.iter().any(|regex| regex.is_match(kms)) {
        return Err(AWS_REFERENCE_FORMAT.to_string());
    }
    // `awskms://arn:...` puts the ARN where the endpoint belongs.
    if endpoint.starts_with("arn") || endpoint.starts_with("alias") {
        return Err(AWS_REFERENCE_FORMAT.to_string());
    }
    if !endpoint.is_empty() {
        split_host_port(endpoint).map_err(|cause| format!("malformed endpoint: {cause}"))?;
    }
    let arn = parse_arn(key_id)
        .map_err(|cause| format!("failed to parse either key or alias arn: {cause}"))?;
    if arn.resource != "key" && arn.resource != "alias" {
        return Err(format!(
            "Got ARN: {{Partition:{} Service:{} Region:{} AccountID:{} Resource:{}}} Resource: {}",
            arn.partition, arn.service, arn.region, arn.account_id, arn.resource, arn.resource
        ));
    }
    Ok(())
}

struct Arn<'a> {
    partition: &'a str,
    service: &'a str,
    region: &'a str,
    account_id: &'a str,
    resource: &'a str,
}

/// aws-sdk-go's `arn.Parse`, with its error texts.
fn parse_arn(arn: &str) -> Result<Arn<'_>, &'static str> {
    if !arn.starts_with("arn:") {
        return Err("arn: invalid prefix");
    }
    let sections: Vec<&str> = arn.splitn(6, ':').collect();
    match sections[..] {
        [_, partition, service, region, account_id, resource] => Ok(Arn {
            partition,
            service,
            region,
            account_id,
            resource,
        }),
        _ => Err("arn: not enough sections"),
    }
}

/// Go's `net.SplitHostPort` checks, with its error texts (`address X: why`).
fn split_host_port(address: &str) -> Result<(), String> {
    let fail = |why: &str| Err(format!("address {address}: {why}"));
    let Some(colon) = address.rfind(':') else {
        return fail("missing port in address");
    };
    let host = &address[..colon];
    if host.starts_with('[') {
        let Some(end) = address.find(']') else {
            return fail("missing ']' in address");
        };
        if end + 1 != colon {
            return if end + 1 == address.len() {
                fail("missing port in address")
            } else if address.as_bytes().get(end + 1) == Some(&b':') {
                fail("too many colons in address")
            } else {
                fail("missing port in address")
            };
        }
        if address[1..].contains('[') {
            return fail("unexpected '[' in address");
        }
        if address[end + 1..].contains(']') {
            return fail("unexpected ']' in address");
        }
        return Ok(());
    }
    if host.contains(':') {
        return fail("too many colons in address");
    }
    if address.contains('[') {
        return fail("unexpected '[' in address");
    }
    if address.contains(']') {
        return fail("unexpected ']' in address");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_patterns_compile() {
        assert_eq!(AWS_REGEXES.len(), AWS_PATTERNS.len());
    }

    #[test]
    fn reference_formats() {
        let uuid = "1234abcd-12ab-34cd-56ef-1234567890ab";
        let key_arn = format!("arn:aws:kms:us-east-2:111122223333:key/{uuid}");
        let alias_arn = "arn:aws:kms:us-east-2:111122223333:alias/ExampleAlias";
        for accepted in [
            "hashivault://key/path".to_string(),
            "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k".to_string(),
            "azurekms://vault.vault.azure.net/key".to_string(),
            format!("awskms:///{key_arn}"),
            format!("awskms://localhost:4566/{key_arn}"),
            format!("awskms:///{alias_arn}"),
            format!("awskms://localhost:4566/{alias_arn}"),
        ] {
            assert_eq!(check_reference(&accepted), Ok(()), "{accepted}");
        }
        let cases = [
            (
                "fookms://localhost:8888/xpa:butnotvalid".to_string(),
                "malformed KMS format, should be prefixed by any of the supported providers: [awskms:// azurekms:// hashivault:// gcpkms://]",
            ),
            (
                "awskms://localhost:8888/arn:butnotvalid".to_string(),
                AWS_REFERENCE_FORMAT,
            ),
            (
                "awskms://key".to_string(),
                "malformed AWS KMS format 'awskms://$ENDPOINT/$KEYID', should be conformant with KMS standard documented here: https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#key-id",
            ),
            (
                format!("awskms:///{uuid}"),
                "failed to parse either key or alias arn: arn: invalid prefix",
            ),
            (
                "awskms:///alias/ExampleAlias".to_string(),
                "failed to parse either key or alias arn: arn: invalid prefix",
            ),
            (format!("awskms://{key_arn}"), AWS_REFERENCE_FORMAT),
            (
                format!("awskms://localhost/{key_arn}"),
                "malformed endpoint: address localhost: missing port in address",
            ),
        ];
        for (kms, details) in cases {
            assert_eq!(check_reference(&kms), Err(details.to_string()), "{kms}");
        }
    }

    #[test]
    fn go_split_host_port() {
        assert_eq!(split_host_port("localhost:4566"), Ok(()));
        assert_eq!(split_host_port("[::1]:4566"), Ok(()));
        assert_eq!(
            split_host_port("a:b:c"),
            Err("address a:b:c: too many colons in address".into())
        );
        assert_eq!(
            split_host_port("[::1"),
            Err("address [::1: missing ']' in address".into())
        );
    }

    #[test]
    fn arn_sections() {
        assert_eq!(
            parse_arn("arn:butnotvalid").err(),
            Some("arn: not enough sections")
        );
        let arn = parse_arn("arn:aws:kms:r:1:key/x/y").ok();
        assert_eq!(arn.map(|a| a.resource), Some("key/x/y"));
    }
}
