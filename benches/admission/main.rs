//! `make bench`: verity's admission latency, throughput, registry traffic and memory, each
//! against a baseline measured in the same run, written to BENCHMARKS.md.
//!
//! 1. Cold key and keyless verification (in-process admission path) vs the registry floor.
//! 2. Registry requests of a rollout (Deployment + ReplicaSet + 50 Pods), at a counting proxy.
//! 3. Cached decisions over HTTPS under `hey` and `wrk`: `verity serve` vs the null webhook.
//! 4. Memory of `verity serve`: idle, after the load, with 10,000 cached results.
//!
//! Runs only under `cargo bench` (which passes `--bench`); under `cargo test --all-targets` it
//! does nothing. Knobs (environment): `BENCH_COLD_N` (300), `BENCH_WARMUP` (20),
//! `BENCH_HEY_N` (20000), `BENCH_CONCURRENCY` (32), `BENCH_ROUNDS` (3), `BENCH_WRK_SECONDS`
//! (5), `BENCH_FILL` (10000: verity's `--cache-size`, filled to the brim), `BENCH_OUTPUT`
//! (BENCHMARKS.md in the crate root).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tests/support/mod.rs"]
mod support;

mod burst;
mod cold;
mod fixture;
mod load;
mod metric;
mod null_webhook;
mod report;
mod stats;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use fixture::{
    BURST_REPO, CACHED_REPO, FILL_REPO, KEY_REPO, KEYLESS_REPO, Kind, STATIC_IMAGE, Signers,
    Signing, push_signed_images, review,
};
use load::{Served, hey, https_client, post_review, scrape, wrk, wrk_script};
use report::{LoadSection, MemorySection, Report};
use support::registry::TestRegistry;

const VERITY: &str = env!("CARGO_BIN_EXE_verity");

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("error: a rustls crypto provider was already installed");
        return ExitCode::from(2);
    }
    if let Some(at) = args.iter().position(|a| a == "--null-webhook") {
        let (Some(cert), Some(key)) = (args.get(at + 1), args.get(at + 2)) else {
            eprintln!("usage: --null-webhook CERT KEY");
            return ExitCode::from(2);
        };
        return null_webhook::main(cert, key);
    }
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "the admission benchmark runs under `cargo bench --bench admission` (or `make bench`)"
        );
        return ExitCode::SUCCESS;
    }
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(settings));
    ExitCode::SUCCESS
}

/// The sizes of one run.
#[derive(Clone, Debug)]
pub struct Settings {
    pub cold_n: usize,
    pub warmup: usize,
    pub hey_n: u64,
    pub concurrency: u64,
    pub rounds: usize,
    pub wrk_seconds: u64,
    pub fill: usize,
    pub output: PathBuf,
}

impl Settings {
    fn from_env() -> Self {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(text) => text
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
                Err(_) => default,
            }
        }
        Settings {
            cold_n: var("BENCH_COLD_N", 300),
            warmup: var("BENCH_WARMUP", 20),
            hey_n: var("BENCH_HEY_N", 20_000),
            concurrency: var("BENCH_CONCURRENCY", 32),
            rounds: var("BENCH_ROUNDS", 3usize).max(1),
            wrk_seconds: var("BENCH_WRK_SECONDS", 5),
            fill: var("BENCH_FILL", 10_000),
            output: std::env::var_os("BENCH_OUTPUT")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md")),
        }
    }
}

/// Fails (with how to install it) when a tool the benchmark runs is missing.
fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    assert!(
        found,
        "{tool} not found: install it with `sudo apt-get install -y {package}` \
         (`make bench` installs it when missing)"
    );
}

macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("bench: {}", format!($($arg)*)) };
}

async fn run(settings: Settings) {
    for (tool, package) in [
        ("hey", "hey"),
        ("wrk", "wrk"),
        ("docker-registry", "docker-registry"),
        ("openssl", "openssl"),
    ] {
        require(tool, package);
    }
    let started = Instant::now();
    let machine = report::Machine::collect();
    let registry = TestRegistry::start().await;
    let host = registry.host().to_string();
    let signers = tokio::task::block_in_place(Signers::new);
    let index = signers.index(&host);
    let count = settings.warmup + settings.cold_n;

    // 1. Cold verification vs the registry floor.
    progress!("pushing {count} key-signed and {count} keyless-signed images");
    let key_images =
        push_signed_images(&registry, &signers, KEY_REPO, "k", count, Signing::Key, 8).await;
    let keyless_images = push_signed_images(
        &registry,
        &signers,
        KEYLESS_REPO,
        "kl",
        count,
        Signing::Keyless,
        8,
    )
    .await;
    let cold = cold::Cold::new(&host, index.clone());
    progress!(
        "cold key verification ({} + {} warm-up)",
        settings.cold_n,
        settings.warmup
    );
    let cold_key = cold.run(&key_images, settings.warmup, "bench-key").await;
    progress!("cold keyless verification");
    let cold_keyless = cold
        .run(&keyless_images, settings.warmup, "bench-keyless")
        .await;

    // 2. Registry requests of a rollout.
    progress!("rollout: Deployment + ReplicaSet + 50 Pods through a counting proxy");
    let proxy = registry.counting_proxy().await;
    let burst_image =
        push_signed_images(&registry, &signers, BURST_REPO, "v", 1, Signing::Key, 1).await;
    let burst_reference = format!("{}/{BURST_REPO}:{}", proxy.host(), burst_image[0].tag);
    let bursts = burst::run(&proxy, &signers.index(&proxy.host()), &burst_reference).await;

    // 3. Cached decisions over HTTPS, verity serve vs the null webhook.
    let dir = tempfile::Builder::new()
        .prefix("verity-bench-")
        .tempdir()
        .expect("temporary directory");
    let certs = verity::devcert::generate(&dir.path().join("certs"), &[]).expect("dev certs");
    let ca_pem = std::fs::read(&certs.ca_cert).expect("CA");
    let policies = dir.path().join("policies.yaml");
    std::fs::write(&policies, fixture::policies_yaml(&host, &signers.key)).expect("policies");
    let trust_root = dir.path().join("trusted_root.json");
    std::fs::write(&trust_root, &signers.trusted_root_json).expect("trust root");
    let cached_image =
        push_signed_images(&registry, &signers, CACHED_REPO, "v", 1, Signing::Key, 1).await;
    let cached_body = dir.path().join("review-cached.json");
    std::fs::write(
        &cached_body,
        review(Kind::Pod, "load-cached", &cached_image[0].reference),
    )
    .expect("review");
    let static_body = dir.path().join("review-static.json");
    std::fs::write(&static_body, review(Kind::Pod, "load-static", STATIC_IMAGE)).expect("review");

    let verity_args: Vec<String> = vec![
        "--policies".to_string(),
        policies.display().to_string(),
        "--trust-root".to_string(),
        trust_root.display().to_string(),
        "--tls-cert".to_string(),
        certs.cert.display().to_string(),
        "--tls-key".to_string(),
        certs.key.display().to_string(),
        "--addr".to_string(),
        "127.0.0.1:0".to_string(),
        "--admin-addr".to_string(),
        "127.0.0.1:0".to_string(),
        "--insecure-registry".to_string(),
        host.clone(),
        "--log-format".to_string(),
        "json".to_string(),
        "--cache-size".to_string(),
        settings.fill.to_string(),
    ];
    let verity = Served::verity(
        Path::new(VERITY),
        &verity_args,
        &dir.path().join("verity.log"),
    );
    // A second verity logging at `warn` (but the server's own `listening` line, which tells
    // its addresses): the per-request `admission` span is not recorded, which shows what the
    // default `info` level costs per cached decision.
    let mut quiet_args = verity_args.clone();
    quiet_args.extend(["--log-level".to_string(), QUIET_LOG_LEVEL.to_string()]);
    let quiet = Served::verity(
        Path::new(VERITY),
        &quiet_args,
        &dir.path().join("verity-quiet.log"),
    );
    let null = Served::null_webhook(&certs.cert, &certs.key);
    wait_ready(&verity.admin).await;
    wait_ready(&quiet.admin).await;
    let client = https_client(&ca_pem);
    let idle = (verity.memory(), null.memory());

    // Warm verity's caches; check every target answers "allowed" for its body.
    let body = |path: &Path| std::fs::read(path).expect("review body");
    for (url, path) in [
        (verity.url(), &cached_body),
        (verity.url(), &static_body),
        (quiet.url(), &static_body),
        (null.url(), &cached_body),
    ] {
        let (allowed, answer) = post_review(&client, &url, body(path.as_path())).await;
        assert!(allowed, "{url} must allow {}: {answer}", path.display());
    }
    let targets = [
        ("null webhook", null.url(), cached_body.clone()),
        (
            "verity, cached key verification",
            verity.url(),
            cached_body.clone(),
        ),
        (
            "verity, static pass policy",
            verity.url(),
            static_body.clone(),
        ),
        (QUIET_TARGET, quiet.url(), static_body.clone()),
    ];
    let before_load = scrape(&verity.admin).await;
    let quiet_before = scrape(&quiet.admin).await;
    // Each round starts with another target, so none always runs first (or after another).
    let count = targets.len();
    let order = |round: usize| (0..count).map(move |i| (round + i) % count);
    let mut hey_runs = Vec::new();
    for round in 0..settings.rounds {
        for (name, url, path) in order(round).map(|i| &targets[i]) {
            progress!("hey round {}/{}: {name}", round + 1, settings.rounds);
            let run = hey(name, settings.hey_n, settings.concurrency, path, url);
            assert_eq!(run.ok, run.requests, "{name}: every response must be 200");
            hey_runs.push(run);
        }
    }
    let mut wrk_runs = Vec::new();
    for round in 0..settings.rounds {
        for (index, (name, url, path)) in order(round).map(|i| (i, &targets[i])) {
            progress!("wrk round {}/{}: {name}", round + 1, settings.rounds);
            let script = wrk_script(dir.path(), &format!("post-{index}"), path);
            let run = wrk(
                name,
                2,
                settings.concurrency,
                settings.wrk_seconds,
                &script,
                url,
            );
            assert_eq!(run.ok, run.requests, "{name}: every response must be 200");
            wrk_runs.push(run);
        }
    }
    let after_load = scrape(&verity.admin).await;
    let quiet_after = scrape(&quiet.admin).await;
    let loaded = (verity.memory(), null.memory());
    let sent = |quiet: bool| -> u64 {
        hey_runs
            .iter()
            .chain(&wrk_runs)
            .filter(|r| r.target.starts_with("verity") && (r.target == QUIET_TARGET) == quiet)
            .map(|r| r.requests)
            .sum()
    };
    let answered = all_allowed(&before_load, &after_load, sent(false));
    all_allowed(&quiet_before, &quiet_after, sent(true));
    drop(quiet);
    let load_section = LoadSection {
        verity_command: verity.command.clone(),
        null_command: null.command.clone(),
        hey: hey_runs,
        wrk: wrk_runs,
        admissions: answered as u64,
        registry_requests: metric::delta(
            &before_load,
            &after_load,
            "verity_registry_requests_total",
            &[],
        ) as u64,
        verifications: metric::delta(
            &before_load,
            &after_load,
            "verity_cache_requests_total",
            &[("cache", "verification"), ("result", "miss")],
        ) as u64,
    };

    // 4. Memory with a full verification cache.
    // The verification cache holds the load test's image; these fill it to `--cache-size`.
    let fill = settings.fill.saturating_sub(1);
    progress!("pushing {fill} signed images to fill the cache");
    let pushing = Instant::now();
    let fill_images = push_signed_images(
        &registry,
        &signers,
        FILL_REPO,
        "f",
        fill,
        Signing::KeyNative,
        16,
    )
    .await;
    progress!("pushed in {:.0?}; admitting them", pushing.elapsed());
    let before_fill = scrape(&verity.admin).await;
    let filling = Instant::now();
    let url = verity.url();
    let admitted = futures::stream::iter(fill_images.iter().enumerate().map(|(i, image)| {
        let body = review(Kind::Pod, &format!("fill-{i}"), &image.reference);
        let (client, url) = (client.clone(), url.clone());
        async move { post_review(&client, &url, body).await.0 }
    }))
    .buffer_unordered(settings.concurrency as usize)
    .filter(|allowed| std::future::ready(*allowed))
    .count()
    .await;
    let fill_time = filling.elapsed();
    assert_eq!(
        admitted,
        fill_images.len(),
        "every fill image must be admitted"
    );
    let after_fill = scrape(&verity.admin).await;
    let filled = verity.memory();
    let memory = MemorySection {
        idle,
        loaded,
        filled,
        fill: fill_images.len(),
        cache_size: settings.fill,
        fill_time,
        fill_verifications: metric::delta(
            &before_fill,
            &after_fill,
            "verity_cache_requests_total",
            &[("cache", "verification"), ("result", "miss")],
        ) as u64,
        fill_registry_requests: metric::delta(
            &before_fill,
            &after_fill,
            "verity_registry_requests_total",
            &[],
        ) as u64,
        concurrency: settings.concurrency,
    };
    drop(verity);
    drop(null);

    let report = Report {
        settings: settings.clone(),
        machine,
        host,
        cold_key,
        cold_keyless,
        bursts,
        load: load_section,
        memory,
        duration: started.elapsed(),
        load_after: report::load_average(),
    };
    let markdown = report.render();
    std::fs::write(&settings.output, &markdown).expect("write BENCHMARKS.md");
    println!("{markdown}");
    progress!(
        "wrote {} in {:.0?}",
        settings.output.display(),
        started.elapsed()
    );
}

/// The log level of the second verity, and its load target.
const QUIET_LOG_LEVEL: &str = "warn,verity::server=info";
const QUIET_TARGET: &str = "verity, static pass policy, --log-level warn,verity::server=info";

/// Checks that a verity process allowed every admission it answered between two scrapes, and
/// answered at least the `sent` requests the load generators counted (wrk stops with requests
/// in flight that verity still answers); returns how many it answered.
fn all_allowed(before: &[metric::Sample], after: &[metric::Sample], sent: u64) -> f64 {
    let family = "verity_admission_requests_total";
    let allowed = metric::delta(before, after, family, &[("decision", "allow")]);
    let answered = metric::delta(before, after, family, &[]);
    assert!(
        allowed as u64 >= sent && allowed == answered,
        "verity must allow every load request: {allowed} allowed of {answered} answered, {sent} sent"
    );
    answered
}

/// Polls `/readyz` of an admin address until it answers 200.
async fn wait_ready(admin: &str) {
    let url = format!("http://{admin}/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = reqwest::get(&url).await
            && response.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} did not turn ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The first line a command prints, or `unknown`.
pub fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}
