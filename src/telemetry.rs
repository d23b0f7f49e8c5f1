//! The tracing subscriber: an `EnvFilter` and plain or JSON lines on stderr.
//!
//! `log` records (rustls, for one) are forwarded into tracing, so one filter governs both.

use std::{fmt, io::IsTerminal, str::FromStr};

use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, fmt::MakeWriter, util::SubscriberInitExt};

/// The environment variable that, when set and not empty, replaces the configured filter.
pub const FILTER_ENV: &str = "RUST_LOG";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (coloured when stderr is a terminal).
    #[default]
    Plain,
    /// One JSON object per line, event fields at the top level.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Plain => "plain",
            LogFormat::Json => "json",
        })
    }
}

impl FromStr for LogFormat {
    type Err = TelemetryError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "plain" => Ok(LogFormat::Plain),
            "json" => Ok(LogFormat::Json),
            other => Err(TelemetryError::UnknownFormat(other.to_owned())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("unknown log format {0:?}: expected `plain` or `json`")]
    UnknownFormat(String),
    #[error("invalid log filter {filter:?} from {origin}: {source}")]
    InvalidFilter {
        filter: String,
        /// `the log level setting` or the environment variable name.
        origin: &'static str,
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a global tracing subscriber is already installed: {0}")]
    AlreadyInitialised(tracing_subscriber::util::TryInitError),
}

impl TelemetryError {
    pub fn reason(&self) -> &'static str {
        match self {
            TelemetryError::UnknownFormat(_) => "unknown_format",
            TelemetryError::InvalidFilter { .. } => "invalid_filter",
            TelemetryError::AlreadyInitialised(_) => "already_initialised",
        }
    }
}

/// Installs the global subscriber writing to stderr. `level` is an `EnvFilter` directive list
/// such as `info` or `verity=debug,info`; `RUST_LOG`, when set, is used instead.
pub fn init(format: LogFormat, level: &str) -> Result<(), TelemetryError> {
    let from_env = std::env::var(FILTER_ENV).ok();
    let filter = env_filter(level, from_env.as_deref())?;
    let ansi = std::io::stderr().is_terminal();
    subscriber(format, filter, std::io::stderr, ansi)
        .try_init()
        .map_err(TelemetryError::AlreadyInitialised)
}

/// The filter from `env_value` when it is set and not blank, else from `level`.
pub fn env_filter(level: &str, env_value: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    let (filter, origin) = match env_value {
        Some(value) if !value.trim().is_empty() => (value, FILTER_ENV),
        _ => (level, "the log level setting"),
    };
    EnvFilter::builder()
        .parse(filter)
        .map_err(|source| TelemetryError::InvalidFilter {
            filter: filter.to_owned(),
            origin,
            source,
        })
}

/// The subscriber [`init`] installs, writing to `writer`.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Plain => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        io,
        sync::{Arc, Mutex},
    };

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;

        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn capture(format: LogFormat, level: &str, emit: impl FnOnce()) -> String {
        let captured = Captured::default();
        let filter = env_filter(level, None).unwrap();
        let subscriber = subscriber(format, filter, captured.clone(), false);
        tracing::subscriber::with_default(subscriber, emit);
        captured.text()
    }

    #[test]
    fn json_lines_carry_level_message_and_fields() {
        let text = capture(LogFormat::Json, "info", || {
            tracing::info!(uid = "abc", images = 2, "admission decided");
            tracing::debug!("filtered out");
        });
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["message"], "admission decided");
        assert_eq!(lines[0]["uid"], "abc");
        assert_eq!(lines[0]["images"], 2);
        assert_eq!(lines[0]["target"], "verity::telemetry::tests");
    }

    #[test]
    fn plain_lines_are_text_without_colour_codes() {
        let text = capture(LogFormat::Plain, "info", || {
            tracing::warn!(registry = "ghcr.io", "registry slow");
        });
        assert!(text.contains(" WARN "), "{text}");
        assert!(
            text.contains("registry slow registry=\"ghcr.io\""),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn per_target_directives_apply() {
        let text = capture(LogFormat::Plain, "verity=debug,warn", || {
            tracing::debug!("verity debug");
            tracing::debug!(target: "kube_client", "kube debug");
            tracing::warn!(target: "kube_client", "kube warn");
        });
        assert!(text.contains("verity debug"), "{text}");
        assert!(!text.contains("kube debug"), "{text}");
        assert!(text.contains("kube warn"), "{text}");
    }

    #[test]
    fn environment_filter_replaces_the_setting() {
        let text = {
            let captured = Captured::default();
            let filter = env_filter("info", Some("error")).unwrap();
            tracing::subscriber::with_default(
                subscriber(LogFormat::Plain, filter, captured.clone(), false),
                || {
                    tracing::warn!("a warning");
                    tracing::error!("an error");
                },
            );
            captured.text()
        };
        assert!(!text.contains("a warning"), "{text}");
        assert!(text.contains("an error"), "{text}");

        // Blank means unset.
        let filter = env_filter("debug", Some("  ")).unwrap();
        assert_eq!(filter.to_string(), "debug");
    }

    #[test]
    fn invalid_filters_name_their_origin() {
        let error = env_filter("verity=loud", None).unwrap_err();
        assert_eq!(error.reason(), "invalid_filter");
        assert!(
            error
                .to_string()
                .starts_with("invalid log filter \"verity=loud\" from the log level setting: "),
            "{error}"
        );
        let error = env_filter("info", Some("verity=loud")).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid log filter \"verity=loud\" from RUST_LOG: "),
            "{error}"
        );
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!("plain".parse::<LogFormat>().unwrap(), LogFormat::Plain);
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        let error = "yaml".parse::<LogFormat>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown log format \"yaml\": expected `plain` or `json`"
        );
    }

    #[test]
    fn second_init_is_an_error_not_a_panic() {
        // The first call may already fail if another test in this process installed one.
        let _ = init(LogFormat::Plain, "off");
        let error = init(LogFormat::Json, "off").unwrap_err();
        assert_eq!(error.reason(), "already_initialised");
        assert!(
            error
                .to_string()
                .starts_with("a global tracing subscriber is already installed"),
            "{error}"
        );
    }
}
