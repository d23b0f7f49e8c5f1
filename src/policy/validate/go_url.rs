//! The parts of Go's `net/url` parser that decide what the reference accepts.
//!
//! The reference checks predicate types with `url.ParseRequestURI`, remote policy URLs with
//! `url.Parse`, and registries with `url.Parse("//" + name).Host == name`
//! (go-containerregistry). Reproducing the parser keeps verity's verdicts identical; the error
//! texts are never shown, so only success and the scheme and host are returned.

/// What the checks need from a parsed URL.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ParsedUrl {
    /// Lower-cased, empty when absent.
    pub scheme: String,
    /// Unescaped `host[:port]`, empty when absent.
    pub host: String,
}

/// Go's `url.Parse`: a fragment is split off first, relative references are allowed.
pub(super) fn parse(raw: &str) -> Option<ParsedUrl> {
    let (without_fragment, fragment) = match raw.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (raw, None),
    };
    let url = parse_reference(without_fragment, false)?;
    if let Some(fragment) = fragment {
        unescape(fragment, Mode::Fragment)?;
    }
    Some(url)
}

/// Go's `url.ParseRequestURI`: an absolute URI or an absolute path; no fragment handling.
pub(super) fn parse_request_uri(raw: &str) -> Option<ParsedUrl> {
    parse_reference(raw, true)
}

/// go-containerregistry's registry check: `name` must come back unchanged as the host of
/// `//name`, so no userinfo, path, query, escapes or invalid port.
pub(super) fn is_uri_authority(name: &str) -> bool {
    parse(&format!("//{name}")).is_some_and(|url| url.host == name)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Host,
    Path,
    UserPassword,
    Fragment,
}

fn parse_reference(raw: &str, via_request: bool) -> Option<ParsedUrl> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    if raw.is_empty() && via_request {
        return None;
    }
    if raw == "*" {
        return Some(ParsedUrl::default());
    }
    let (scheme, rest) = split_scheme(raw)?;
    let scheme = scheme.to_ascii_lowercase();
    let rest = if rest.ends_with('?') && rest.matches('?').count() == 1 {
        &rest[..rest.len() - 1]
    } else {
        rest.split_once('?').map_or(rest, |(before, _query)| before)
    };
    if !rest.starts_with('/') {
        if !scheme.is_empty() {
            // A rootless path after a scheme is opaque (`urn:example`).
            return Some(ParsedUrl {
                scheme,
                host: String::new(),
            });
        }
        if via_request {
            return None;
        }
        let first_segment = rest.split('/').next().unwrap_or_default();
        if first_segment.contains(':') {
            return None;
        }
    }
    let mut host = String::new();
    let mut path = rest;
    let has_authority = (!scheme.is_empty() || (!via_request && !rest.starts_with("///")))
        && rest.starts_with("//");
    if has_authority {
        let after_slashes = &rest[2..];
        let (authority, remaining) = match after_slashes.find('/') {
            Some(i) => after_slashes.split_at(i),
            None => (after_slashes, ""),
        };
        host = parse_authority(authority)?;
        path = remaining;
    }
    unescape(path, Mode::Path)?;
    Some(ParsedUrl { scheme, host })
}

/// Go's `getScheme`: `None` only for a leading `:`.
fn split_scheme(raw: &str) -> Option<(&str, &str)> {
    for (i, byte) in raw.bytes().enumerate() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return None,
            b':' => return Some((&raw[..i], &raw[i + 1..])),
            _ => return Some(("", raw)),
        }
    }
    Some(("", raw))
}

fn parse_authority(authority: &str) -> Option<String> {
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            if !userinfo.bytes().all(is_userinfo_byte) {
                return None;
            }
            unescape(userinfo, Mode::UserPassword)?;
            parse_host(&authority[at + 1..])
        }
        None => parse_host(authority),
    }
}

fn is_userinfo_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&byte)
}

fn parse_host(host: &str) -> Option<String> {
    if host.starts_with('[') {
        let close = host.rfind(']')?;
        if !is_optional_port(&host[close + 1..]) {
            return None;
        }
    } else if let Some(colon) = host.rfind(':')
        && !is_optional_port(&host[colon..])
    {
        return None;
    }
    unescape(host, Mode::Host)
}

/// Empty, or `:` followed by digits only.
fn is_optional_port(port: &str) -> bool {
    port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Go's `unescape`: `%XX` escapes must be well formed; a host may only hold the characters
/// RFC 3986 allows there (and any non-ASCII byte).
fn unescape(input: &str, mode: Mode) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let high = hex_value(*bytes.get(i + 1)?)?;
            let low = hex_value(*bytes.get(i + 2)?)?;
            // In a host only non-ASCII escapes and `%25` are allowed.
            if mode == Mode::Host && high < 8 && &bytes[i..i + 3] != b"%25" {
                return None;
            }
            out.push(high * 16 + low);
            i += 3;
            continue;
        }
        if mode == Mode::Host && byte < 0x80 && !is_host_byte(byte) {
            return None;
        }
        out.push(byte);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// ASCII bytes Go leaves unescaped in a host: unreserved characters and sub-delimiters, plus
/// the `:[]<>"` it tolerates.
fn is_host_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:[]<>\"".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_uris_need_a_scheme_or_an_absolute_path() {
        for accepted in [
            "https://slsa.dev/provenance/v0.2",
            "https://cyclonedx.org/bom",
            "urn:example:predicate",
            "/absolute/path",
            "HTTPS://Example.com/x?y#z",
        ] {
            assert!(parse_request_uri(accepted).is_some(), "{accepted}");
        }
        for rejected in [
            "",
            "vuln",
            "cosign.sigstore.dev/attestation/vuln/v1",
            ":missing-scheme",
            "https://exa mple.com/",
            "https://example.com:port/",
            "https://example.com/%zz",
            "https://example.com/\u{7f}",
        ] {
            assert!(parse_request_uri(rejected).is_none(), "{rejected:?}");
        }
    }

    #[test]
    fn parse_splits_scheme_and_host() {
        assert_eq!(
            parse("https://user@example.com:8443/policy.cue#frag"),
            Some(ParsedUrl {
                scheme: "https".into(),
                host: "example.com:8443".into()
            })
        );
        assert_eq!(
            parse("example.com/policy"),
            Some(ParsedUrl::default()),
            "a relative reference has no host"
        );
        assert_eq!(parse("a:b/c").map(|u| u.scheme), Some("a".into()));
        assert!(parse("first:segment/has/colon").is_some());
        assert!(parse("1st:segment").is_none());
        assert!(parse("https://example.com/#%zz").is_none());
    }

    #[test]
    fn registry_authorities() {
        for valid in [
            "registry1",
            "registry.example.com",
            "localhost:5000",
            "[::1]:5000",
        ] {
            assert!(is_uri_authority(valid), "{valid}");
        }
        for invalid in [
            "re@gistry/reponame",
            "registry.example.com/repo",
            "host:port",
            "white space",
            "percent%41",
            "q?x",
        ] {
            assert!(!is_uri_authority(invalid), "{invalid:?}");
        }
    }
}
