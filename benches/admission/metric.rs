//! Reading verity's Prometheus text exposition (in-process `Metrics::render`, or `/metrics` of a
//! `verity serve` process).

use std::collections::BTreeMap;

/// One sample: name, labels, value.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of an exposition (comments skipped).
pub fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, labels_of(rest.trim_end_matches('}'))),
            None => (series, BTreeMap::new()),
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

fn labels_of(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, tail)) = rest.split_once("=\"") {
        let Some(end) = tail.find('"') else { break };
        labels.insert(
            key.trim_start_matches(',').trim().to_string(),
            tail[..end].to_string(),
        );
        rest = &tail[end + 1..];
    }
    labels
}

/// The sum of `name` over the samples whose labels include every `filter` pair.
pub fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            filter
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// How much `name` (filtered) grew between two expositions.
pub fn delta(before: &[Sample], after: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    sum(after, name, filter) - sum(before, name, filter)
}

/// How much `name` grew between two expositions, per value of `label` (only those that grew).
pub fn delta_by_label(
    before: &[Sample],
    after: &[Sample],
    name: &str,
    label: &str,
) -> Vec<(String, f64)> {
    let mut values: Vec<String> = after
        .iter()
        .filter(|s| s.name == name)
        .filter_map(|s| s.labels.get(label).cloned())
        .collect();
    values.sort();
    values.dedup();
    values
        .into_iter()
        .map(|value| {
            let grown = delta(before, after, name, &[(label, &value)]);
            (value, grown)
        })
        .filter(|(_, grown)| *grown > 0.0)
        .collect()
}
