//! BENCHMARKS.md: machine facts, how to read the numbers, one section per measurement, and the
//! exact commands.

use std::fmt::Write as _;
use std::time::Duration;

use crate::burst::BurstResult;
use crate::cold::ColdResult;
use crate::load::{LoadRun, Memory, mib};
use crate::stats::{Samples, median_index, ms, ratio, ratio_f};
use crate::{Settings, command_line};

/// Where the numbers were measured.
pub struct Machine {
    pub date: String,
    pub nproc: usize,
    pub cpu: String,
    pub memory: String,
    pub kernel: String,
    pub rustc: String,
    pub commit: String,
    pub registry: String,
    pub hey: String,
    pub wrk: String,
    /// `/proc/loadavg` (1, 5, 15 min) when the run started.
    pub load_before: String,
}

impl Machine {
    pub fn collect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".to_string());
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
        let dirty = !command_output("git", &["status", "--porcelain", "--untracked-files=no"])
            .trim()
            .is_empty();
        Machine {
            date: jiff::Timestamp::now()
                .strftime("%Y-%m-%d %H:%M UTC")
                .to_string(),
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            memory,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".to_string()),
            rustc: command_line(&rustc, &["--version"]),
            commit: format!(
                "{}{}",
                command_line("git", &["rev-parse", "--short", "HEAD"]),
                if dirty {
                    " (with uncommitted changes)"
                } else {
                    ""
                }
            ),
            registry: command_line("docker-registry", &["--version"]),
            hey: format!(
                "hey {}",
                command_line("dpkg-query", &["-W", "-f", "${Version}", "hey"])
            ),
            wrk: command_line("wrk", &["-v"]),
            load_before: load_average(),
        }
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_string())
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

pub struct LoadSection {
    pub verity_command: String,
    pub null_command: String,
    pub hey: Vec<LoadRun>,
    pub wrk: Vec<LoadRun>,
    /// Admissions verity answered during the load runs, and what they cost it.
    pub admissions: u64,
    pub registry_requests: u64,
    pub verifications: u64,
}

pub struct MemorySection {
    /// (verity, null webhook) after start and one warm-up request each.
    pub idle: (Memory, Memory),
    /// After every hey and wrk round.
    pub loaded: (Memory, Memory),
    /// verity after admitting `fill` distinct images.
    pub filled: Memory,
    pub fill: usize,
    /// `--cache-size`: the load test's image plus the `fill` ones.
    pub cache_size: usize,
    pub fill_time: Duration,
    pub fill_verifications: u64,
    pub fill_registry_requests: u64,
    pub concurrency: u64,
}

pub struct Report {
    pub settings: Settings,
    pub machine: Machine,
    pub host: String,
    pub cold_key: ColdResult,
    pub cold_keyless: ColdResult,
    pub bursts: Vec<BurstResult>,
    pub load: LoadSection,
    pub memory: MemorySection,
    pub duration: Duration,
    /// `/proc/loadavg` when the run ended.
    pub load_after: String,
}

impl Report {
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.header(&mut out);
        self.how_to_read(&mut out);
        self.cold(
            &mut out,
            "1. Cold key verification vs the registry floor",
            "an image signed with `cosign sign --key` (legacy `.sig`, ECDSA P-256, SHA-256; \
             signature made by `openssl`), policy `key.data`, no Rekor requirement",
            &self.cold_key,
        );
        self.cold(
            &mut out,
            "2. Cold keyless verification vs the registry floor",
            "an image signed keylessly (legacy `.sig`: a test-Fulcio P-256 leaf with an embedded \
             SCT, its chain, a Rekor entry with SET bound to the signature), policy `keyless` with \
             an exact issuer/subject identity, the test `trusted_root.json` as default trust root",
            &self.cold_keyless,
        );
        self.load(&mut out);
        self.bursts(&mut out);
        self.memory(&mut out);
        self.method(&mut out);
        out
    }

    fn header(&self, out: &mut String) {
        let m = &self.machine;
        let s = &self.settings;
        let _ = writeln!(out, "# verity benchmarks\n");
        let _ = writeln!(
            out,
            "Written by `make bench` ({} in all); every number comes from that one run. \
             Do not edit by hand: `make bench` rewrites this file.\n",
            human(self.duration)
        );
        let _ = writeln!(out, "| | |\n|---|---|");
        let rows = [
            ("date", m.date.clone()),
            ("nproc", m.nproc.to_string()),
            ("CPU", m.cpu.clone()),
            ("memory", m.memory.clone()),
            (
                "load average (1/5/15 min)",
                format!(
                    "{} at the start, {} at the end (other work on the machine)",
                    m.load_before, self.load_after
                ),
            ),
            ("kernel", m.kernel.clone()),
            ("rustc", m.rustc.clone()),
            (
                "verity",
                format!(
                    "commit {}, {}",
                    m.commit,
                    if cfg!(debug_assertions) {
                        "DEBUG build: not numbers to quote"
                    } else {
                        "optimized (`cargo bench` profile, i.e. `[profile.release]`)"
                    }
                ),
            ),
            (
                "registry",
                format!(
                    "Debian `docker-registry` ({}) on {}, plain HTTP, filesystem storage",
                    m.registry, self.host
                ),
            ),
            ("load generators", format!("{}; {}", m.hey, m.wrk)),
            (
                "sizes",
                format!(
                    "BENCH_COLD_N={} BENCH_WARMUP={} BENCH_HEY_N={} BENCH_CONCURRENCY={} \
                     BENCH_ROUNDS={} BENCH_WRK_SECONDS={} BENCH_FILL={}",
                    s.cold_n, s.warmup, s.hey_n, s.concurrency, s.rounds, s.wrk_seconds, s.fill
                ),
            ),
        ];
        for (name, value) in rows {
            let _ = writeln!(out, "| {name} | {} |", value.replace('|', "\\|"));
        }
        out.push('\n');
    }

    fn how_to_read(&self, out: &mut String) {
        let nproc = self.machine.nproc;
        let _ = write!(
            out,
            "## How to read these numbers\n\n\
- **Ratios are the result; absolute numbers are not.** This machine has {nproc} cores shared \
with other work, and during the load runs the load generator, verity and the registry share \
them too, so absolute latencies and rates move between runs by tens of percent. Every ratio \
compares two series measured in the same run, interleaved: the cold series alternate image by \
image, the load targets round by round, both in rotating order.\n\
- **Cold** means a digest verity has never seen: the verification cache and the tag → digest \
cache both miss. The HTTP connection pool to the registry is warm, as in a running verity when \
a new image is rolled out. Each cold sample is a whole AdmissionReview (a Pod with one \
container, by tag) through the webhook router in process: decode, policy match, tag \
resolution, signature discovery, verification, decision, encoded answer.\n\
- **The registry floor** is the least registry work any cosign verifier does for an image by \
tag: HEAD the tag (digest), GET the `.sig` manifest, GET the signature blob, done one after the \
other (each needs the previous answer) by a plain `reqwest` client on a warm connection. \
verity / floor = ×1.00 would mean verity adds nothing to the registry round trips.\n\
- **Percentiles** are nearest-rank over the recorded samples (warm-up excluded). With \
{n} samples p99 is the {rank} slowest sample: indicative, not precise. `hey` reports \
latencies in steps of 0.1 ms, `wrk` in steps of 10 µs.\n\
- **Load**: `verity serve` (the optimized binary) and the **null webhook** (the same server \
stack: `verity::server::Server` with rustls, hyper HTTP/1.1 + h2, axum, the body limit, \
AdmissionReview decoded with verity's decoder, always `allowed: true`) run as separate \
processes, driven over HTTPS by `hey` and `wrk` on the same machine. The ratio to the null \
webhook is verity's own cost per cached decision (policy match, cache lookups, metrics, \
tracing span, deadline and concurrency limit). For each target the table shows the round with \
the median requests/s and its percentiles, and every round's requests/s.\n\
- **Memory** is read from `/proc/<pid>/status`: VmRSS (now) and VmHWM (peak resident set \
since start).\n\n",
            n = self.settings.cold_n,
            rank = ordinal(self.settings.cold_n + 1 - (self.settings.cold_n * 99).div_ceil(100)),
        );
    }

    fn cold(&self, out: &mut String, title: &str, what: &str, result: &ColdResult) {
        let floor = result.floor.summary();
        let _ = writeln!(out, "## {title}\n");
        let _ = writeln!(
            out,
            "What: {what}. {} images with distinct digests, each admitted once cold ({} more \
             as warm-up, not recorded).\n",
            result.verity.len(),
            self.settings.warmup
        );
        let _ = writeln!(
            out,
            "| series | p50 | p90 | p99 | mean | p50 / floor | p90 / floor | p99 / floor |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|"
        );
        let rows: [(&str, &Samples); 3] = [
            (
                "registry floor: HEAD tag + GET `.sig` manifest + GET blob (plain client)",
                &result.floor,
            ),
            ("**verity: cold admission**", &result.verity),
            (
                "verity: the same admission again (tag and verification cached)",
                &result.cached,
            ),
        ];
        for (name, samples) in rows {
            let s = samples.summary();
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} |",
                ms(s.p50),
                ms(s.p90),
                ms(s.p99),
                ms(s.mean),
                ratio(s.p50, floor.p50),
                ratio(s.p90, floor.p90),
                ratio(s.p99, floor.p99),
            );
        }
        let verity = result.verity.summary();
        let _ = writeln!(
            out,
            "\n**verity / floor: {} at p50, {} at p90, {} at p99.**\n",
            ratio(verity.p50, floor.p50),
            ratio(verity.p90, floor.p90),
            ratio(verity.p99, floor.p99)
        );
        let requests: Vec<String> = result
            .requests_per_admission
            .iter()
            .map(|(operation, n)| format!("{operation} {n:.2}"))
            .collect();
        let total: f64 = result.requests_per_admission.iter().map(|(_, n)| n).sum();
        let _ = writeln!(
            out,
            "Registry requests per cold admission (verity's `verity_registry_requests_total`): \
             {total:.2} ({}), against 3 for the floor. The `.sig` manifest is {} bytes, the \
             signed payload {} bytes.\n",
            requests.join(", "),
            result.manifest_bytes,
            result.blob_bytes
        );
        let _ = writeln!(
            out,
            "Where the time of one cold verification goes (each piece timed alone, same \
             images, after the series above):\n"
        );
        let _ = writeln!(out, "| piece | p50 | p90 | p99 |\n|---|---:|---:|---:|");
        let pieces: [(&str, &Samples); 5] = [
            (
                "tag → digest: HEAD (verity's registry client)",
                &result.resolve,
            ),
            (
                "signature discovery: `.sig` manifest → blob (verity's registry client; referrers are listed only when no `.sig` signature passes)",
                &result.discover,
            ),
            (
                "signature checks on what was found (CPU only)",
                &result.judge,
            ),
            (
                "the admission path with every cache warm (row 3 above)",
                &result.cached,
            ),
            (
                "… of which decoding the AdmissionReview (the null webhook does this too)",
                &result.decode,
            ),
        ];
        for (name, samples) in pieces {
            let s = samples.summary();
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} |",
                ms(s.p50),
                ms(s.p90),
                ms(s.p99)
            );
        }
        out.push('\n');
    }

    fn load(&self, out: &mut String) {
        let load = &self.load;
        let s = &self.settings;
        let _ = writeln!(
            out,
            "## 3. Cached decisions over HTTPS: verity vs the null webhook\n"
        );
        let _ = writeln!(
            out,
            "What: the same AdmissionReview (a Pod with one container) POSTed over and over. \
             *cached key verification*: an image by tag covered by the key policy, verified once \
             before the load (tag → digest and verification answered from the caches); *static \
             pass*: an image only a `static: {{action: pass}}` policy covers (no registry, no \
             cache); *--log-level warn,…*: the static case on a second `verity serve` started \
             with `--log-level warn,verity::server=info` instead of the default `info` (the \
             server's `listening` line stays, the per-request `admission` tracing span is no \
             longer recorded); *null webhook*: the cached-verification body, always \
             allowed.\n"
        );
        for (tool, runs, command) in [
            (
                "hey",
                &load.hey,
                format!("hey -n {} -c {}", s.hey_n, s.concurrency),
            ),
            (
                "wrk",
                &load.wrk,
                format!("wrk -t2 -c{} -d{}s", s.concurrency, s.wrk_seconds),
            ),
        ] {
            let _ = writeln!(
                out,
                "### {tool} (`{command}`, HTTP/1.1 keep-alive over TLS, {} rounds)\n",
                s.rounds
            );
            let _ = writeln!(
                out,
                "| target | requests/s | every round | p50 | p90 | p99 | requests/s vs null | p50 vs null | p99 vs null |\n\
                 |---|---:|---|---:|---:|---:|---:|---:|---:|"
            );
            let medians = medians(runs);
            let null = medians.first().map(|(run, _)| run.clone());
            for (run, rounds) in &medians {
                let (rps_ratio, p50_ratio, p99_ratio) = match &null {
                    Some(null) => (
                        ratio_f(run.rps, null.rps),
                        ratio(run.p50, null.p50),
                        ratio(run.p99, null.p99),
                    ),
                    None => Default::default(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {:.0} | {} | {} | {} | {} | {rps_ratio} | {p50_ratio} | {p99_ratio} |",
                    run.target,
                    run.rps,
                    rounds,
                    ms(run.p50),
                    ms(run.p90),
                    ms(run.p99),
                );
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "Every response was 200 and, per verity's own `verity_admission_requests_total`, \
             all admissions both verity processes answered during the load were allowed. The \
             {} admissions of the first cost it {} registry request(s) and {} verification(s) \
             (the tag → digest cache entry lives 30 s, so a long run re-resolves the tag about \
             once per 30 s).\n",
            load.admissions, load.registry_requests, load.verifications
        );
    }

    fn bursts(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## 4. Registry requests of a rollout (Deployment + ReplicaSet + 50 Pods)\n"
        );
        let _ = writeln!(
            out,
            "What: one image by tag, key-signed; a fresh in-process verifier (empty caches) per \
             scenario, its registry traffic counted by the harness's `CountingProxy` in front of \
             the registry. *rollout*: the Deployment, then the ReplicaSet, then the 50 Pods \
             concurrently; *all at once*: the 52 admissions concurrently. Counted here, asserted \
             by the test suite.\n"
        );
        let _ = writeln!(
            out,
            "| scenario | admissions | registry requests (one digest) | verifications run | joined a running one | verification cache hits | tag resolutions run |\n\
             |---|---:|---:|---:|---:|---:|---:|"
        );
        for burst in &self.bursts {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                burst.scenario,
                burst.admissions,
                burst.total_requests,
                burst.verification[0],
                burst.verification[1],
                burst.verification[2],
                burst.resolution[0],
            );
        }
        if let Some(first) = self.bursts.first() {
            let lines: Vec<String> = first
                .requests
                .iter()
                .map(|(line, n)| {
                    if *n == 1 {
                        format!("`{line}`")
                    } else {
                        format!("`{line}` ×{n}")
                    }
                })
                .collect();
            let _ = writeln!(
                out,
                "\nThe requests ({}): {}.\n",
                first.scenario,
                lines.join(", ")
            );
        }
        let worst = self
            .bursts
            .iter()
            .map(|b| b.total_requests)
            .max()
            .unwrap_or(0);
        let referrers = self
            .bursts
            .iter()
            .flat_map(|b| &b.requests)
            .filter(|(line, _)| line.contains("/referrers/"))
            .count();
        if worst > 3 {
            let _ = write!(
                out,
                "**Above the issue's bound of 3 registry requests per digest** ({worst})."
            );
            if referrers > 0 {
                let _ = write!(
                    out,
                    " The extra requests are the cosign v3 bundle lookup (the referrers API, \
                     404 on distribution 2.8, then the `sha256-<hex>` tag-schema fallback), \
                     which verity makes only when no `.sig` signature satisfied the policy."
                );
            }
            out.push_str("\n\n");
        }
    }

    fn memory(&self, out: &mut String) {
        let m = &self.memory;
        let _ = writeln!(out, "## 5. Memory of `verity serve`\n");
        let _ = writeln!(
            out,
            "| process | RSS after start | peak (VmHWM) after the cached load | RSS with {size} cached results | peak with {size} cached results |\n\
             |---|---:|---:|---:|---:|",
            size = m.cache_size
        );
        let _ = writeln!(
            out,
            "| verity serve | {} | {} | {} | {} |",
            mib(m.idle.0.rss_kib),
            mib(m.loaded.0.hwm_kib),
            mib(m.filled.rss_kib),
            mib(m.filled.hwm_kib)
        );
        let _ = writeln!(
            out,
            "| null webhook | {} | {} | | |\n",
            mib(m.idle.1.rss_kib),
            mib(m.loaded.1.hwm_kib)
        );
        let grown = m.filled.rss_kib.saturating_sub(m.loaded.0.rss_kib);
        let _ = writeln!(
            out,
            "Filling: {} admissions of distinct images by tag (each a cold key verification), \
             {} at a time over HTTPS, took {} ({:.0} admissions/s), {} verifications and {} \
             registry requests ({:.2} per admission). With the load test's image, verity \
             (`--cache-size {}`{}) then holds {} verification results and as many \
             tag → digest entries: both caches full, nothing evicted. RSS grew by {} over the \
             post-load RSS of {}: about {:.1} KiB per cached image (both cache entries, plus \
             whatever the allocator keeps from the fill's own traffic).\n",
            m.fill,
            m.concurrency,
            human(m.fill_time),
            m.fill as f64 / m.fill_time.as_secs_f64().max(1e-9),
            m.fill_verifications,
            m.fill_registry_requests,
            m.fill_registry_requests as f64 / m.fill.max(1) as f64,
            m.cache_size,
            if m.cache_size == 10_000 {
                ", the default"
            } else {
                ""
            },
            m.cache_size,
            mib(grown),
            mib(m.loaded.0.rss_kib),
            grown as f64 / m.fill.max(1) as f64,
        );
    }

    fn method(&self, out: &mut String) {
        let load = &self.load;
        let _ = writeln!(out, "## Commands\n");
        let _ = writeln!(
            out,
            "Everything: `make bench`, i.e. install `hey`, `wrk`, `docker-registry` and \
             `openssl` when missing, then `cargo bench --bench admission` (source: \
             `benches/admission/`; verity built with the bench profile, which inherits \
             `[profile.release]`), which starts the registry, pushes and \
             signs the images, runs every measurement and rewrites this file. Sections 1, 2 \
             and 4 run in the benchmark process (`benches/admission/cold.rs`, `burst.rs`); \
             sections 3 and 5 use these processes and commands (temporary paths and ports of \
             this run):\n"
        );
        let _ = writeln!(out, "```sh\n{}", load.verity_command);
        let _ = writeln!(out, "{}", load.null_command);
        let mut seen = Vec::new();
        for run in load.hey.iter().chain(&load.wrk) {
            if !seen.contains(&run.command) {
                let _ = writeln!(out, "{}    # {}", run.command, run.target);
                seen.push(run.command.clone());
            }
        }
        let _ = writeln!(out, "```");
    }
}

/// Per target (in first-seen order): the run with the median requests/s, and every round's
/// requests/s.
fn medians(runs: &[LoadRun]) -> Vec<(LoadRun, String)> {
    let mut targets: Vec<&str> = Vec::new();
    for run in runs {
        if !targets.contains(&run.target.as_str()) {
            targets.push(&run.target);
        }
    }
    targets
        .into_iter()
        .map(|target| {
            let of: Vec<&LoadRun> = runs.iter().filter(|r| r.target == target).collect();
            let rates: Vec<f64> = of.iter().map(|r| r.rps).collect();
            let median = of[median_index(&rates)].clone();
            let rounds: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
            (median, rounds.join(" / "))
        })
        .collect()
}

/// `1st`, `2nd`, `3rd`, `4th`...
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn human(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs >= 120.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{secs:.1} s")
    }
}
