//! `source.oci`: the reference's strict go-containerregistry parse, with its error texts.
//!
//! A value whose first component has a `.` or `:` is a `registry/repository`; anything else is
//! a bare registry. Users read these texts in denials, so they are kept verbatim.

use super::go_url;

const REPOSITORY_CHARS: &str = "abcdefghijklmnopqrstuvwxyz0123456789_-./";
const DOCKER_HUB_NAMES: [&str; 2] = ["docker.io", "index.docker.io"];

/// `Ok` when the reference accepts `oci`, else its error text.
pub(super) fn check_signature_repository(oci: &str) -> Result<(), String> {
    match oci.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') => check_repository(oci),
        _ => check_registry(oci),
    }
}

fn check_repository(name: &str) -> Result<(), String> {
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') => (first, rest),
        _ => ("", name),
    };
    let length = repository.chars().count();
    if !(2..=255).contains(&length) {
        return Err(format!(
            "repository must be between 2 and 255 characters in length: {repository}"
        ));
    }
    if !repository.chars().all(|c| REPOSITORY_CHARS.contains(c)) {
        return Err(format!(
            "repository can only contain the characters `{REPOSITORY_CHARS}`: {repository}"
        ));
    }
    check_registry(registry)?;
    if DOCKER_HUB_NAMES.contains(&registry) && !repository.contains('/') {
        return Err(
            "strict validation requires the full repository path (missing 'library')".to_string(),
        );
    }
    Ok(())
}

fn check_registry(registry: &str) -> Result<(), String> {
    if registry.is_empty() {
        return Err("strict validation requires the registry to be explicitly defined".to_string());
    }
    if !go_url::is_uri_authority(registry) {
        return Err(format!(
            "registries must be valid RFC 3986 URI authorities: {registry}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_texts() {
        let cases = [
            ("registry.example.com", Ok(())),
            ("registry1", Ok(())),
            ("localhost:5000", Ok(())),
            ("registry.example.com/repository", Ok(())),
            ("gcr.io/google.com/project/hello-world", Ok(())),
            ("docker.io/library/busybox", Ok(())),
            (
                "registry.example.com/repo/*",
                Err(
                    "repository can only contain the characters `abcdefghijklmnopqrstuvwxyz0123456789_-./`: repo/*",
                ),
            ),
            (
                "re@gistry/reponame",
                Err("registries must be valid RFC 3986 URI authorities: re@gistry/reponame"),
            ),
            (
                "registry.example.com/a",
                Err("repository must be between 2 and 255 characters in length: a"),
            ),
            (
                "docker.io/busybox",
                Err("strict validation requires the full repository path (missing 'library')"),
            ),
            (
                "host:port/repo",
                Err("registries must be valid RFC 3986 URI authorities: host:port"),
            ),
        ];
        for (oci, expected) in cases {
            assert_eq!(
                check_signature_repository(oci),
                expected.map_err(str::to_string),
                "{oci}"
            );
        }
    }
}
