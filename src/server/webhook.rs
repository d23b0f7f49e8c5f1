//! The webhook routes on the HTTPS port: `POST /validate`.
//!
//! Every request gets a deadline under the apiserver's (its `?timeout=` minus a margin, capped by
//! `--request-timeout`), waits for a verification slot no longer than that, and is answered
//! in-band: overload and undecodable bodies become denials the user can read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::sync::Semaphore;

use crate::admission::Admission;
use crate::admission::review::{self, AdmissionResponse, AdmissionReviewResponse};
use crate::metrics::Metrics;

/// Limits of the webhook endpoints.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Upper bound for answering one request; below the webhook's timeoutSeconds.
    pub request_timeout: Duration,
    /// Requests verified at once; others wait (until their deadline) for a slot.
    pub max_in_flight: usize,
    /// Largest accepted request body.
    pub body_limit: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            request_timeout: Duration::from_secs(9),
            max_in_flight: 64,
            body_limit: 3 * 1024 * 1024,
        }
    }
}

#[derive(Clone)]
struct WebhookState {
    admission: Admission,
    settings: WebhookSettings,
    slots: Arc<Semaphore>,
    metrics: Metrics,
}

/// Which answer a request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Validate,
    Mutate,
}

/// The webhook router: `POST /validate` and `POST /mutate`.
pub fn router(admission: Admission, settings: WebhookSettings, metrics: Metrics) -> Router {
    let state = WebhookState {
        slots: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
        admission,
        metrics,
        settings: settings.clone(),
    };
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .with_state(state)
}

async fn validate(
    State(state): State<WebhookState>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(Endpoint::Validate, state, query, body).await
}

async fn mutate(
    State(state): State<WebhookState>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(Endpoint::Mutate, state, query, body).await
}

async fn answer(
    endpoint: Endpoint,
    state: WebhookState,
    query: Option<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let received = Instant::now();
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejected(&state, rejection),
    };
    let deadline = received + budget(&state.settings, query.as_deref());
    let permit = tokio::time::timeout_at(
        tokio::time::Instant::from_std(deadline),
        Arc::clone(&state.slots).acquire_owned(),
    )
    .await;
    let Ok(Ok(_permit)) = permit else {
        state.metrics.overload_rejections.inc();
        let uid = review::decode(&body)
            .map(|r| r.uid)
            .unwrap_or_else(|e| e.uid);
        let answer = AdmissionResponse::deny(
            &uid,
            format!(
                "verity is overloaded: no verification slot became free within {:.1}s ({} requests in flight); retry, or raise --max-in-flight",
                deadline.saturating_duration_since(received).as_secs_f64(),
                state.settings.max_in_flight
            ),
        );
        return axum::Json(AdmissionReviewResponse::from(answer)).into_response();
    };
    let answer = match endpoint {
        Endpoint::Validate => state.admission.review(&body, deadline).await,
        Endpoint::Mutate => state.admission.mutate_review(&body, deadline).await,
    };
    axum::Json(answer).into_response()
}

fn body_rejected(state: &WebhookState, rejection: BytesRejection) -> Response {
    state
        .metrics
        .admission_requests
        .with_label_values(&["deny", "bad_request"])
        .inc();
    let status = rejection.status();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "request body exceeds verity's limit of {} bytes",
            state.settings.body_limit
        )
    } else {
        format!("cannot read request body: {rejection}")
    };
    (status, message).into_response()
}

/// Time allowed for one request: `--request-timeout`, or less when the apiserver's own timeout
/// (`?timeout=10s`) leaves less, keeping a margin to send the answer back.
fn budget(settings: &WebhookSettings, query: Option<&str>) -> Duration {
    let apiserver = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.strip_prefix("timeout="))
        .find_map(parse_go_duration);
    match apiserver {
        Some(timeout) => {
            let margin = (timeout / 10).max(Duration::from_millis(500));
            settings
                .request_timeout
                .min(timeout.saturating_sub(margin))
                .max(Duration::from_millis(100))
        }
        None => settings.request_timeout,
    }
}

/// Parses the durations the apiserver writes (`10s`, `500ms`, `1m30s`).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_end);
        let value: f64 = number.parse().ok()?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let seconds = match unit {
            "h" => value * 3600.0,
            "m" => value * 60.0,
            "s" => value,
            "ms" => value / 1e3,
            "us" | "µs" => value / 1e6,
            "ns" => value / 1e9,
            _ => return None,
        };
        total += Duration::try_from_secs_f64(seconds).ok()?;
        rest = tail;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("tens"), None);
    }

    #[test]
    fn budget_stays_under_the_apiserver_timeout() {
        let settings = WebhookSettings::default();
        assert_eq!(budget(&settings, None), Duration::from_secs(9));
        assert_eq!(
            budget(&settings, Some("timeout=10s")),
            Duration::from_secs(9)
        );
        assert_eq!(
            budget(&settings, Some("timeout=5s")),
            Duration::from_millis(4500)
        );
        assert_eq!(
            budget(&settings, Some("timeout=30s")),
            Duration::from_secs(9)
        );
        assert_eq!(
            budget(&settings, Some("x=1&timeout=bogus")),
            Duration::from_secs(9)
        );
    }
}
