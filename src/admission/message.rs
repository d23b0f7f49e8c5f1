//! Rendering decisions for the apiserver: the denial `status.message` exactly as the reference
//! renders it, and single-line warnings.

use crate::field_error::FieldErrors;

/// `validation failed: <merged field errors>`, as knative prints a denial.
pub fn denial_message(errors: &FieldErrors) -> String {
    format!("validation failed: {errors}")
}

/// One warning per merged entry, on one line: the apiserver drops warnings containing a newline,
/// so the details follow the paths after a space instead of `\n`.
pub fn warning_lines(warnings: &FieldErrors) -> Vec<String> {
    warnings
        .merged()
        .iter()
        .map(|entry| {
            let mut line = entry.message.clone();
            if !entry.paths.is_empty() {
                line.push_str(": ");
                line.push_str(&entry.paths.join(", "));
            }
            if !entry.details.is_empty() {
                line.push(' ');
                line.push_str(&entry.details);
            }
            // Any newline inside an authority's text would make the apiserver drop the warning.
            line.replace(['\n', '\r'], " ")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field_error::{FieldError, Level};

    #[test]
    fn denial_and_warning_formats() {
        let errors: FieldErrors = FieldError::new(
            "no matching policies",
            vec!["spec.containers[0].image".into()],
        )
        .with_details("nginx")
        .into();
        assert_eq!(
            denial_message(&errors),
            "validation failed: no matching policies: spec.containers[0].image\nnginx"
        );
        let warnings: FieldErrors = [
            FieldError::new(
                "failed policy: audit",
                vec!["spec.containers[1].image".into()],
            )
            .with_details("nginx line one\nline two")
            .at_level(Level::Warning),
            FieldError::new(
                "failed policy: audit",
                vec!["spec.containers[0].image".into()],
            )
            .with_details("nginx line one\nline two")
            .at_level(Level::Warning),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            warning_lines(&warnings),
            [
                "failed policy: audit: spec.containers[0].image, spec.containers[1].image nginx line one line two"
            ]
        );
    }
}
