//! Identity regexps: compiled with the `regex` crate (what verity matches with), errors worded
//! like Go's `regexp` where the reference's tests pin them, and a check for missing anchors.

use regex::Regex;

/// `Ok` when `pattern` compiles, else the details of the `invalid value` error:
/// `regex is invalid: error parsing regexp: <what>: `<where>``.
pub(super) fn check_regex(pattern: &str) -> Result<(), String> {
    match Regex::new(pattern) {
        Ok(_) => Ok(()),
        Err(regex::Error::Syntax(report)) => Err(format!(
            "regex is invalid: error parsing regexp: {}",
            explain_syntax_error(pattern, &report)
        )),
        Err(regex::Error::CompiledTooBig(_)) => Err(format!(
            "regex is invalid: error parsing regexp: expression too large: `{pattern}`"
        )),
        Err(other) => Err(format!(
            "regex is invalid: {}",
            other.to_string().replace('\n', " ")
        )),
    }
}

/// Turns the regex crate's multi-line report into Go's one-line `<code>: `<expr>``.
///
/// The report is `regex parse error:` / `    <pattern>` / `    <carets>` / `error: <what>`;
/// the carets mark the offending characters. Errors Go also has keep Go's wording and
/// expression; the rest keep the regex crate's explanation.
fn explain_syntax_error(pattern: &str, report: &str) -> String {
    let lines: Vec<&str> = report.lines().collect();
    let explanation = lines
        .iter()
        .rev()
        .find_map(|line| line.strip_prefix("error: "))
        .unwrap_or("invalid regular expression");
    let marked = marked_text(pattern, &lines);
    let from_marked_to_end = || {
        marked
            .as_ref()
            .map(|(start, _)| pattern.chars().skip(*start).collect::<String>())
    };
    let (go_code, expression) = match explanation {
        "repetition operator missing expression" => (
            "missing argument to repetition operator",
            marked.as_ref().map(|(_, text)| text.clone()),
        ),
        "unclosed group" => ("missing closing )", Some(pattern.to_string())),
        "unopened group" => ("unexpected )", Some(pattern.to_string())),
        "unclosed character class" => ("missing closing ]", from_marked_to_end()),
        "invalid character class range, the start must be <= the end" => (
            "invalid character class range",
            marked.as_ref().map(|(_, text)| text.clone()),
        ),
        "incomplete escape sequence, reached end of pattern prematurely" => (
            "trailing backslash at end of expression",
            Some(String::new()),
        ),
        "unrecognized escape sequence" => (
            "invalid escape sequence",
            marked.as_ref().map(|(_, text)| text.clone()),
        ),
        other => (other, marked.as_ref().map(|(_, text)| text.clone())),
    };
    match expression {
        Some(expression) => format!("{go_code}: `{expression}`"),
        None => go_code.to_string(),
    }
}

/// The character offset and text the report's caret line marks, when the report has the
/// single-line layout (one pattern line, one run of carets).
fn marked_text(pattern: &str, lines: &[&str]) -> Option<(usize, String)> {
    const INDENT: &str = "    ";
    if pattern.contains('\n') || lines.get(1) != Some(&format!("{INDENT}{pattern}").as_str()) {
        return None;
    }
    let carets = lines.get(2)?.strip_prefix(INDENT)?;
    let start = carets.chars().take_while(|c| *c == ' ').count();
    let length = carets[start..].chars().take_while(|c| *c == '^').count();
    if length == 0 || carets[start + length..].contains('^') {
        return None;
    }
    let text: String = pattern.chars().skip(start).take(length).collect();
    Some((start, text))
}

/// Whether the regex only matches whole values: every top-level alternative starts with `^`
/// (or `\A`) and ends with an unescaped `$` (or `\z`), after leading flag groups such as
/// `(?i)`. The multi-line flag makes `^`/`$` match at line breaks, so it never counts.
pub(super) fn is_anchored(pattern: &str) -> bool {
    if enables_multi_line(pattern) {
        return false;
    }
    let mut rest = pattern;
    while let Some(after) = rest.strip_prefix("(?") {
        match after.find(')') {
            Some(close)
                if after[..close]
                    .chars()
                    .all(|c| c.is_ascii_alphabetic() || c == '-') =>
            {
                rest = &after[close + 1..];
            }
            _ => break,
        }
    }
    top_level_alternatives(rest)
        .iter()
        .all(|alternative| starts_anchored(alternative) && ends_anchored(alternative))
}

/// A `(?m)` or `(?im:…)`-style group anywhere turns the multi-line flag on.
fn enables_multi_line(pattern: &str) -> bool {
    pattern.match_indices("(?").any(|(i, _)| {
        let flags: String = pattern[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic() || *c == '-')
            .collect();
        flags.split('-').next().is_some_and(|on| on.contains('m'))
    })
}

fn starts_anchored(alternative: &str) -> bool {
    alternative.starts_with('^') || alternative.starts_with("\\A")
}

fn ends_anchored(alternative: &str) -> bool {
    let escaped_before = |suffix_len: usize| {
        alternative[..alternative.len() - suffix_len]
            .chars()
            .rev()
            .take_while(|c| *c == '\\')
            .count()
    };
    (alternative.ends_with('$') && escaped_before(1) % 2 == 0)
        || (alternative.ends_with("\\z") && escaped_before(2) % 2 == 0)
}

/// Splits at `|` outside groups, classes and escapes.
fn top_level_alternatives(pattern: &str) -> Vec<&str> {
    let mut alternatives = Vec::new();
    let mut depth = 0usize;
    let mut in_class = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in pattern.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => depth = depth.saturating_sub(1),
            '|' if !in_class && depth == 0 => {
                alternatives.push(&pattern[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    alternatives.push(&pattern[start..]);
    alternatives
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_worded_errors() {
        let cases = [
            (
                "****",
                "regex is invalid: error parsing regexp: missing argument to repetition operator: `*`",
            ),
            (
                "+a",
                "regex is invalid: error parsing regexp: missing argument to repetition operator: `+`",
            ),
            (
                "a(b",
                "regex is invalid: error parsing regexp: missing closing ): `a(b`",
            ),
            (
                "a)b",
                "regex is invalid: error parsing regexp: unexpected ): `a)b`",
            ),
            (
                "x[ab",
                "regex is invalid: error parsing regexp: missing closing ]: `[ab`",
            ),
            (
                "[z-a]",
                "regex is invalid: error parsing regexp: invalid character class range: `z-a`",
            ),
            (
                "a\\",
                "regex is invalid: error parsing regexp: trailing backslash at end of expression: ``",
            ),
            (
                "\\q",
                "regex is invalid: error parsing regexp: invalid escape sequence: `\\q`",
            ),
            (
                "é*(",
                "regex is invalid: error parsing regexp: missing closing ): `é*(`",
            ),
        ];
        for (pattern, expected) in cases {
            assert_eq!(check_regex(pattern), Err(expected.to_string()), "{pattern}");
        }
    }

    #[test]
    fn other_errors_keep_the_regex_crate_explanation_on_one_line() {
        assert_eq!(
            check_regex("(?z)a"),
            Err("regex is invalid: error parsing regexp: unrecognized flag: `z`".to_string())
        );
        assert_eq!(
            check_regex("(?P<n>a)(?P<n>b)"),
            Err("regex is invalid: error parsing regexp: duplicate capture group name".to_string())
        );
        assert_eq!(
            check_regex("a\n("),
            Err("regex is invalid: error parsing regexp: missing closing ): `a\n(`".to_string())
        );
        assert_eq!(
            check_regex("a{1000}{1000}"),
            Err(
                "regex is invalid: error parsing regexp: expression too large: `a{1000}{1000}`"
                    .to_string()
            )
        );
    }

    #[test]
    fn valid_regexps() {
        for pattern in [".*subject.*", "^https://github\\.com/org/.+$", "(?i)^a$"] {
            assert_eq!(check_regex(pattern), Ok(()), "{pattern}");
        }
    }

    #[test]
    fn anchoring() {
        for anchored in [
            "^a$",
            "^.*@example\\.com$",
            "\\A.*\\z",
            "(?i)^a$",
            "^(a|b)$",
            "^a$|^b$",
            "^a\\\\$",
        ] {
            assert!(is_anchored(anchored), "{anchored}");
        }
        for unanchored in [
            ".*@example.com",
            "^.*@example.com",
            ".*@example.com$",
            "^a|b$",
            "^a\\$",
            "(?m)^a$",
            "^(?m)a$",
            "^(?im:a)$",
            "[|^]a$",
            "",
        ] {
            assert!(!is_anchored(unanchored), "{unanchored}");
        }
    }
}
