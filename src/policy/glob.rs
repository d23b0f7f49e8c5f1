//! Image globs with the reference's semantics (policy-controller `pkg/apis/glob`).
//!
//! - The whole glob `*` means `index.docker.io/library/*`, and `*/*` means `index.docker.io/*/*`.
//! - `**` matches any run of characters, `*` any run without `/`; everything else is literal
//!   (`.` included) and the match is anchored at both ends.
//! - `:` and `@` are ordinary characters, so `ghcr.io/foo*` matches `ghcr.io/foo:v1` and
//!   `ghcr.io/foo@sha256:…`.
//!
//! verity matches a glob against an image's normalised tag form and digest form (see
//! [`crate::image::ImageRef`]); the reference only ever matches the digest form in admission.
//! globset is not used: its `**` means "any number of path components", which differs from the
//! reference for globs such as `ghcr.io/foo**`.

use regex::Regex;

use crate::image::DOCKER_HUB;

/// Why a glob is invalid; the texts are the reference's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// Go's `filepath.Match` rejects the pattern (unclosed `[`, trailing `\`...).
    #[error("glob is invalid: syntax error in pattern")]
    Syntax,
    /// Characters outside `[a-zA-Z0-9-_:/*.@]`.
    #[error("glob is invalid: invalid glob {0:?}")]
    Characters(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Literal(u8),
    /// `*`: any run of characters except `/`.
    Star,
    /// `**`: any run of characters.
    DoubleStar,
}

/// A compiled glob.
#[derive(Clone, Debug)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
    regex: Regex,
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Glob {
    pub fn compile(glob: &str) -> Result<Self, GlobError> {
        check_go_pattern_syntax(glob)?;
        let allowed = !glob.is_empty()
            && glob
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_:/*.@".contains(&b));
        if !allowed {
            return Err(GlobError::Characters(glob.to_string()));
        }
        let expanded = match glob {
            "*" => format!("{DOCKER_HUB}/library/*"),
            "*/*" => format!("{DOCKER_HUB}/*/*"),
            other => other.to_string(),
        };
        let tokens = tokenize(&expanded);
        let mut pattern = String::with_capacity(expanded.len() * 2 + 2);
        pattern.push('^');
        for token in &tokens {
            match token {
                Token::Literal(b'.') => pattern.push_str(r"\."),
                Token::Literal(b) => pattern.push(char::from(*b)),
                Token::Star => pattern.push_str("[^/]*"),
                Token::DoubleStar => pattern.push_str(".*"),
            }
        }
        pattern.push('$');
        // Only `.` needs escaping among the allowed characters, so this cannot fail; map the
        // impossible case to a syntax error rather than panicking.
        let regex = Regex::new(&pattern).map_err(|_| GlobError::Syntax)?;
        Ok(Glob {
            source: glob.to_string(),
            tokens,
            regex,
        })
    }

    /// The glob as written in the policy.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The anchored regular expression this glob compiles to.
    pub fn regex(&self) -> &str {
        self.regex.as_str()
    }

    /// Matches one normalised image form (`registry/repo:tag` or `registry/repo@digest`).
    pub fn is_match(&self, image_form: &str) -> bool {
        self.regex.is_match(image_form)
    }

    /// Whether this glob matches `name@<digest>` for at least one sha256 digest.
    ///
    /// Lets verity skip resolving a tag when no digest could change which policies match.
    pub fn may_match_some_digest_of(&self, name: &str) -> bool {
        let mut subject: Vec<Symbol> = name.bytes().map(Symbol::Byte).collect();
        subject.extend(b"@sha256:".iter().copied().map(Symbol::Byte));
        subject.extend(std::iter::repeat_n(Symbol::Hex, 64));
        tokens_match(&self.tokens, &subject)
    }
}

fn tokenize(glob: &str) -> Vec<Token> {
    let bytes = glob.as_bytes();
    let mut tokens = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'*' {
            if bytes.get(i + 1) == Some(&b'*') {
                tokens.push(Token::DoubleStar);
                i += 2;
            } else {
                tokens.push(Token::Star);
                i += 1;
            }
        } else {
            tokens.push(Token::Literal(bytes[i]));
            i += 1;
        }
    }
    tokens
}

/// One position of a string whose hex digits are left open.
#[derive(Clone, Copy)]
enum Symbol {
    Byte(u8),
    /// Any of `0-9a-f`.
    Hex,
}

/// Whether the glob tokens can match the symbol string for some choice of the open symbols.
fn tokens_match(tokens: &[Token], subject: &[Symbol]) -> bool {
    // reachable[j]: the tokens consumed so far can match subject[..j].
    let mut reachable = vec![false; subject.len() + 1];
    reachable[0] = true;
    for token in tokens {
        let mut next = vec![false; subject.len() + 1];
        match token {
            Token::Literal(expected) => {
                for j in 0..subject.len() {
                    if reachable[j] {
                        next[j + 1] = match subject[j] {
                            Symbol::Byte(b) => b == *expected,
                            Symbol::Hex => {
                                expected.is_ascii_digit() || (b'a'..=b'f').contains(expected)
                            }
                        };
                    }
                }
            }
            Token::Star | Token::DoubleStar => {
                let mut open = false;
                for j in 0..=subject.len() {
                    open |= reachable[j];
                    next[j] = open;
                    let crosses_slash = matches!(subject.get(j), Some(Symbol::Byte(b'/')));
                    if *token == Token::Star && crosses_slash {
                        open = false;
                    }
                }
            }
        }
        reachable = next;
    }
    reachable[subject.len()]
}

/// Reproduces the pattern errors of Go's `filepath.Match(pattern, "")` (Go ≥ 1.16 checks the
/// whole pattern): an unterminated or empty character class, or an escape at the end.
fn check_go_pattern_syntax(pattern: &str) -> Result<(), GlobError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err(GlobError::Syntax);
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut first = true;
                loop {
                    match chars.get(i) {
                        None => return Err(GlobError::Syntax),
                        Some(']') if !first => {
                            i += 1;
                            break;
                        }
                        _ => {}
                    }
                    first = false;
                    i = class_char_end(&chars, i)?;
                    if chars.get(i) == Some(&'-') {
                        i = class_char_end(&chars, i + 1)?;
                    }
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Consumes one (possibly escaped) character of a class; `]`, `-` and end are errors there.
fn class_char_end(chars: &[char], i: usize) -> Result<usize, GlobError> {
    match chars.get(i) {
        None | Some('-') | Some(']') => Err(GlobError::Syntax),
        Some('\\') => {
            if i + 1 >= chars.len() {
                Err(GlobError::Syntax)
            } else {
                Ok(i + 2)
            }
        }
        Some(_) => Ok(i + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:be5d77c62dbe7fedfb0a4e5ec2f91078080800ab1f18358e5f31fcc8faa023c4";

    fn matches(glob: &str, form: &str) -> bool {
        Glob::compile(glob).unwrap().is_match(form)
    }

    #[test]
    fn reference_translation() {
        let cases = [
            ("ghcr.io/foo", r"^ghcr\.io/foo$"),
            ("ghcr.io/*", r"^ghcr\.io/[^/]*$"),
            ("ghcr.io/**", r"^ghcr\.io/.*$"),
            ("*", r"^index\.docker\.io/library/[^/]*$"),
            ("*/*", r"^index\.docker\.io/[^/]*/[^/]*$"),
            ("**", r"^.*$"),
            ("a***", r"^a.*[^/]*$"),
        ];
        for (glob, regex) in cases {
            assert_eq!(Glob::compile(glob).unwrap().regex(), regex, "{glob}");
        }
    }

    #[test]
    fn match_table() {
        let cases: &[(&str, &str, bool)] = &[
            // The reference's documented globs.
            ("index.docker.io/*", "index.docker.io/busybox:latest", true),
            (
                "index.docker.io/*",
                "index.docker.io/library/busybox:latest",
                false,
            ),
            (
                "index.docker.io/*/*",
                "index.docker.io/library/busybox:latest",
                true,
            ),
            (
                "cgr.dev/chainguard/**",
                "cgr.dev/chainguard/static:latest",
                true,
            ),
            (
                "cgr.dev/chainguard/**",
                &format!("cgr.dev/chainguard/a/b@{D}"),
                true,
            ),
            (
                "gcr.io/your-image-here/*",
                "gcr.io/your-image-here/app:v1",
                true,
            ),
            (
                "gcr.io/your-image-here/*",
                "gcr.io/your-image-here/a/b:v1",
                false,
            ),
            // Special whole-glob rewrites.
            ("*", "index.docker.io/library/nginx:latest", true),
            ("*", &format!("index.docker.io/library/nginx@{D}"), true),
            ("*", "index.docker.io/myorg/nginx:latest", false),
            ("*", "ghcr.io/nginx:latest", false),
            ("*/*", "index.docker.io/myorg/nginx:1", true),
            ("*/*", "index.docker.io/library/nginx:1", true),
            ("*/*", "quay.io/myorg:1", false),
            // `*` crosses `:` and `@` but not `/`.
            ("ghcr.io/foo*", "ghcr.io/foo:v1", true),
            ("ghcr.io/foo*", &format!("ghcr.io/foo@{D}"), true),
            ("ghcr.io/foo*", "ghcr.io/foo/bar:v1", false),
            ("ghcr.io/foo**", "ghcr.io/foo/bar:v1", true),
            // Tag globs (the reference's admission path never matches these).
            ("ghcr.io/foo:*", "ghcr.io/foo:v1", true),
            ("ghcr.io/foo:v1.*", "ghcr.io/foo:v1.2", true),
            ("ghcr.io/foo:v1.*", "ghcr.io/foo:v1x2", false),
            ("ghcr.io/foo:*", &format!("ghcr.io/foo@{D}"), false),
            // A bare repository does not match a tagged or digested form (anchored).
            ("ghcr.io/foo", "ghcr.io/foo:latest", false),
            ("ghcr.io/foo@*", &format!("ghcr.io/foo@{D}"), true),
            ("ghcr.io/foo@*", "ghcr.io/foo:latest", false),
            // `.` is literal.
            ("ghcr.io/*", "ghcrxio/foo:latest", false),
            // `docker.io` in a glob is not normalised, so it never matches.
            (
                "docker.io/library/*",
                "index.docker.io/library/nginx:latest",
                false,
            ),
            ("localhost:5000/**", "localhost:5000/app:v1", true),
        ];
        for (glob, form, expected) in cases {
            assert_eq!(matches(glob, form), *expected, "glob {glob} against {form}");
        }
    }

    #[test]
    fn validation_messages() {
        assert_eq!(
            Glob::compile("[").unwrap_err().to_string(),
            "glob is invalid: syntax error in pattern"
        );
        assert_eq!(
            Glob::compile("$FOO*").unwrap_err().to_string(),
            r#"glob is invalid: invalid glob "$FOO*""#
        );
        for syntax in [
            "ghcr.io/[",
            "ghcr.io/[]",
            "ghcr.io/[a-",
            "ghcr.io/\\",
            "[^]",
        ] {
            assert_eq!(
                Glob::compile(syntax).unwrap_err(),
                GlobError::Syntax,
                "{syntax}"
            );
        }
        for chars in [
            "ghcr.io/[ab]",
            "ghcr.io/fo?",
            "ghcr.io/{a,b}",
            "a\\b",
            "",
            "ghcr.io/ foo",
        ] {
            assert!(
                matches!(Glob::compile(chars), Err(GlobError::Characters(_))),
                "{chars}"
            );
        }
    }

    #[test]
    fn may_match_some_digest() {
        let name = "ghcr.io/foo";
        let cases = [
            ("ghcr.io/foo*", true),
            ("ghcr.io/foo@*", true),
            ("ghcr.io/foo@sha256:*", true),
            ("ghcr.io/foo@sha256:be5d*", true),
            ("ghcr.io/foo@sha256:zz*", false),
            ("ghcr.io/foo@sha256:be5d", false),
            ("ghcr.io/foo:*", false),
            ("ghcr.io/foo", false),
            ("ghcr.io/**", true),
            ("ghcr.io/*", true),
            ("ghcr.io/*/x", false),
            ("**", true),
            ("quay.io/**", false),
            (&format!("ghcr.io/foo@{D}"), true),
        ];
        for (glob, expected) in cases {
            assert_eq!(
                Glob::compile(glob).unwrap().may_match_some_digest_of(name),
                expected,
                "{glob}"
            );
        }
    }
}
