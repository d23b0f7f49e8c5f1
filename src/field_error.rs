//! Field errors in the format users of the reference know (knative `apis.FieldError`).
//!
//! Errors with the same level, message and details merge into one entry whose paths are sorted
//! and joined with `, `; entries are sorted by message, then details, then level, and render as
//! `<message>: <paths>` plus `\n<details>` when there are details. Policy validation and
//! admission denials both use this, so a denial reads exactly like the reference's.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Error,
    Warning,
}

/// One error (or warning) about one or more fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub message: String,
    pub paths: Vec<String>,
    pub details: String,
    pub level: Level,
}

impl FieldError {
    pub fn new(message: impl Into<String>, paths: Vec<String>) -> Self {
        FieldError {
            message: message.into(),
            paths,
            details: String::new(),
            level: Level::Error,
        }
    }

    /// `missing field(s)`
    pub fn missing_field<S: Into<String>>(paths: impl IntoIterator<Item = S>) -> Self {
        Self::new(
            "missing field(s)",
            paths.into_iter().map(Into::into).collect(),
        )
    }

    /// `expected exactly one, got neither`
    pub fn missing_one_of<S: Into<String>>(paths: impl IntoIterator<Item = S>) -> Self {
        Self::new(
            "expected exactly one, got neither",
            paths.into_iter().map(Into::into).collect(),
        )
    }

    /// `expected exactly one, got both`
    pub fn multiple_one_of<S: Into<String>>(paths: impl IntoIterator<Item = S>) -> Self {
        Self::new(
            "expected exactly one, got both",
            paths.into_iter().map(Into::into).collect(),
        )
    }

    /// `must not set the field(s)`
    pub fn disallowed<S: Into<String>>(paths: impl IntoIterator<Item = S>) -> Self {
        Self::new(
            "must not set the field(s)",
            paths.into_iter().map(Into::into).collect(),
        )
    }

    /// `invalid value: <value>` at `path`, with optional details.
    pub fn invalid_value(value: impl fmt::Display, path: impl Into<String>) -> Self {
        Self::new(format!("invalid value: {value}"), vec![path.into()])
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    pub fn at_level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// Prefixes every path with `field.` (or sets it when there were no paths).
    pub fn via_field(mut self, field: &str) -> Self {
        self.paths = prefix_paths(self.paths, field, ".");
        self
    }
}

fn prefix_paths(paths: Vec<String>, prefix: &str, separator: &str) -> Vec<String> {
    if paths.is_empty() {
        return vec![prefix.to_string()];
    }
    paths
        .into_iter()
        .map(|path| {
            if path.is_empty() {
                prefix.to_string()
            } else if path.starts_with('[') {
                format!("{prefix}{path}")
            } else {
                format!("{prefix}{separator}{path}")
            }
        })
        .collect()
}

/// A set of field errors and warnings, rendered merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors {
    errors: Vec<FieldError>,
}

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    pub fn extend(&mut self, other: FieldErrors) {
        self.errors.extend(other.errors);
    }

    /// Prefixes every path with `field.`.
    pub fn via_field(self, field: &str) -> Self {
        FieldErrors {
            errors: self
                .errors
                .into_iter()
                .map(|e| e.via_field(field))
                .collect(),
        }
    }

    /// Prefixes every path with `field[index].`.
    pub fn via_field_index(self, field: &str, index: usize) -> Self {
        self.via_field(&format!("{field}[{index}]"))
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn has_errors(&self) -> bool {
        self.errors.iter().any(|e| e.level == Level::Error)
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.errors.iter()
    }

    /// Only the entries of `level`.
    pub fn filter(&self, level: Level) -> FieldErrors {
        FieldErrors {
            errors: self
                .errors
                .iter()
                .filter(|e| e.level == level)
                .cloned()
                .collect(),
        }
    }

    /// Merged and sorted entries, as the reference renders them.
    pub fn merged(&self) -> Vec<FieldError> {
        let mut merged: Vec<FieldError> = Vec::new();
        for error in &self.errors {
            match merged.iter_mut().find(|m| {
                m.level == error.level && m.message == error.message && m.details == error.details
            }) {
                Some(existing) => existing.paths.extend(error.paths.iter().cloned()),
                None => merged.push(error.clone()),
            }
        }
        for entry in &mut merged {
            entry.paths.sort();
            entry.paths.dedup();
        }
        merged.sort_by(|a, b| {
            a.message
                .cmp(&b.message)
                .then_with(|| a.details.cmp(&b.details))
                .then_with(|| a.level.cmp(&b.level))
        });
        merged
    }

    /// One rendered string per merged entry (used for admission warnings).
    pub fn rendered_entries(&self) -> Vec<String> {
        self.merged().iter().map(render_entry).collect()
    }
}

impl From<FieldError> for FieldErrors {
    fn from(error: FieldError) -> Self {
        FieldErrors {
            errors: vec![error],
        }
    }
}

impl FromIterator<FieldError> for FieldErrors {
    fn from_iter<T: IntoIterator<Item = FieldError>>(iter: T) -> Self {
        FieldErrors {
            errors: iter.into_iter().collect(),
        }
    }
}

/// `<message>: <paths>` then `\n<details>` when there are details.
pub fn render_entry(entry: &FieldError) -> String {
    let mut out = entry.message.clone();
    if !entry.paths.is_empty() {
        out.push_str(": ");
        out.push_str(&entry.paths.join(", "));
    }
    if !entry.details.is_empty() {
        out.push('\n');
        out.push_str(&entry.details);
    }
    out
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rendered_entries().join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_same_message_and_details_with_sorted_paths() {
        let details = "gcr.io/distroless/static:nonroot@sha256:be5d signature keyless validation failed for authority authority-0 for gcr.io/distroless/static@sha256:be5d: bad signature";
        let errors: FieldErrors = [
            FieldError::new(
                "failed policy: cluster-image-policy-keyless",
                vec!["spec.initContainers[0].image".into()],
            )
            .with_details(details),
            FieldError::new(
                "failed policy: cluster-image-policy-keyless",
                vec!["spec.containers[0].image".into()],
            )
            .with_details(details),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            errors.to_string(),
            format!(
                "failed policy: cluster-image-policy-keyless: spec.containers[0].image, spec.initContainers[0].image\n{details}"
            )
        );
    }

    #[test]
    fn sorts_by_message_then_details() {
        let errors: FieldErrors = [
            FieldError::missing_field(["spec.images"]),
            FieldError::missing_field(["spec.authorities"]),
            FieldError::invalid_value("garbage", "spec.mode").with_details("unsupported mode"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            errors.to_string(),
            "invalid value: garbage: spec.mode\nunsupported mode\nmissing field(s): spec.authorities, spec.images"
        );
    }

    #[test]
    fn via_field_prefixes_paths() {
        let errors = FieldErrors::from(FieldError::missing_one_of(["key", "keyless", "static"]))
            .via_field_index("authorities", 0)
            .via_field("spec");
        assert_eq!(
            errors.to_string(),
            "expected exactly one, got neither: spec.authorities[0].key, spec.authorities[0].keyless, spec.authorities[0].static"
        );
        let root = FieldErrors::from(FieldError::new("oops", vec![])).via_field("spec");
        assert_eq!(root.to_string(), "oops: spec");
    }

    #[test]
    fn levels_are_kept_apart() {
        let errors: FieldErrors = [
            FieldError::new("failed policy: a", vec!["spec.containers[0].image".into()]),
            FieldError::new("failed policy: a", vec!["spec.containers[1].image".into()])
                .at_level(Level::Warning),
        ]
        .into_iter()
        .collect();
        assert_eq!(errors.merged().len(), 2);
        assert!(errors.has_errors());
        assert_eq!(
            errors.filter(Level::Warning).rendered_entries(),
            vec!["failed policy: a: spec.containers[1].image".to_string()]
        );
    }
}
