//! `static` authorities: a fixed answer with no network access.

use super::{Evidence, Failure};

/// `pass` admits; `fail` denies with the reference text `disallowed by static policy: <message>`
/// (the trailing `": "` with an empty message is the reference's too).
pub fn evaluate(pass: bool, message: &str) -> Result<Evidence, Failure> {
    if pass {
        Ok(Evidence {
            description: "static pass".to_string(),
        })
    } else {
        Err(Failure::definite(format!(
            "disallowed by static policy: {message}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_texts() {
        assert_eq!(evaluate(true, "").unwrap().description, "static pass");
        assert_eq!(
            evaluate(false, "mirror images first").unwrap_err().message,
            "disallowed by static policy: mirror images first"
        );
        assert_eq!(
            evaluate(false, "").unwrap_err().message,
            "disallowed by static policy: "
        );
    }
}
