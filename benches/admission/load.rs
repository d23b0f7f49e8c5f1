//! Webhook processes under a load generator: `verity serve` and the null webhook as child
//! processes, `hey` and `wrk` against them over HTTPS, and their memory from `/proc`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::metric;

/// A webhook server running as a child process; killed and reaped on drop.
pub struct Served {
    child: Child,
    pub webhook: String,
    pub admin: String,
    /// The command line that started it, for the report.
    pub command: String,
}

impl Served {
    /// `verity serve ARGS`; the addresses come from its `listening` log line (JSON format).
    pub fn verity(binary: &Path, args: &[String], log: &Path) -> Self {
        let mut child = Command::new(binary)
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel::<(String, String)>();
        let log_path = log.to_path_buf();
        let log = log.to_path_buf();
        // Drains the log for the life of the process so verity never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(&log).expect("log file");
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                if line.contains("listening")
                    && let (Some(webhook), Some(admin)) =
                        (json_field(&line, "webhook"), json_field(&line, "admin"))
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send((webhook, admin));
                }
            }
        });
        let (webhook, admin) = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addresses) => addresses,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "verity serve did not log its addresses (a `listening` line); its log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
        };
        Served {
            child,
            webhook,
            admin,
            command: format!("{} serve {}", binary.display(), args.join(" ")),
        }
    }

    /// The null webhook: this benchmark binary again, with `--null-webhook CERT KEY`.
    pub fn null_webhook(cert: &Path, key: &Path) -> Self {
        let exe = std::env::current_exe().expect("current exe");
        let mut child = Command::new(&exe)
            .arg("--null-webhook")
            .arg(cert)
            .arg(key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the null webhook");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("null webhook output");
        let mut webhook = None;
        let mut admin = None;
        for field in line.split_whitespace() {
            if let Some(value) = field.strip_prefix("webhook=") {
                webhook = Some(value.to_string());
            } else if let Some(value) = field.strip_prefix("admin=") {
                admin = Some(value.to_string());
            }
        }
        Served {
            child,
            webhook: webhook.expect("null webhook address"),
            admin: admin.expect("null webhook admin address"),
            command: format!(
                "{} --null-webhook {} {}",
                exe.display(),
                cert.display(),
                key.display()
            ),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("https://{}/validate", self.webhook)
    }

    /// VmRSS and VmHWM now.
    pub fn memory(&self) -> Memory {
        Memory::of(self.pid())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The string value of `"name":"..."` in a JSON log line, wherever it is nested.
fn json_field(line: &str, name: &str) -> Option<String> {
    let value: Value = serde_json::from_str(line).ok()?;
    find(&value, name)
}

fn find(value: &Value, name: &str) -> Option<String> {
    match value {
        Value::Object(map) => map
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| map.values().find_map(|v| find(v, name))),
        _ => None,
    }
}

/// Resident memory of a process, KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse().ok())
                .unwrap_or_default()
        };
        Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        }
    }
}

/// `12.3 MiB`
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// One load-generator run.
#[derive(Clone, Debug)]
pub struct LoadRun {
    pub target: String,
    pub command: String,
    pub requests: u64,
    /// Responses with status 200.
    pub ok: u64,
    pub rps: f64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
}

/// `hey -n N -c C -host localhost -m POST -T application/json -D BODY URL`
///
/// `-host localhost`: hey sends the URL's `host:port` as the TLS server name (rakyll/hey#270),
/// which is not a valid SNI; rustls refuses the handshake with `illegal_parameter`. With `-host`
/// hey sends that name instead (and as the Host header, which the webhook ignores).
pub fn hey(target: &str, requests: u64, concurrency: u64, body: &Path, url: &str) -> LoadRun {
    let args = vec![
        "-n".to_string(),
        requests.to_string(),
        "-c".to_string(),
        concurrency.to_string(),
        "-host".to_string(),
        "localhost".to_string(),
        "-m".to_string(),
        "POST".to_string(),
        "-T".to_string(),
        "application/json".to_string(),
        "-D".to_string(),
        body.display().to_string(),
        url.to_string(),
    ];
    let output = run_tool("hey", &args);
    let mut run = LoadRun {
        target: target.to_string(),
        command: format!("hey {}", args.join(" ")),
        // Each of hey's C workers sends N / C requests.
        requests: requests / concurrency.max(1) * concurrency,
        ok: 0,
        rps: 0.0,
        p50: Duration::ZERO,
        p90: Duration::ZERO,
        p99: Duration::ZERO,
    };
    for line in output.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            run.rps = rest.trim().parse().unwrap_or_default();
        } else if let Some(rest) = line.strip_prefix("[200]") {
            run.ok = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_default();
        } else if let Some((percent, rest)) = line.split_once("% in ") {
            let seconds: f64 = rest
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or_default();
            let value = Duration::from_secs_f64(seconds);
            match percent {
                "50" => run.p50 = value,
                "90" => run.p90 = value,
                "99" => run.p99 = value,
                _ => {}
            }
        }
    }
    assert!(run.rps > 0.0, "cannot read hey's output:\n{output}");
    run
}

/// `wrk -t T -c C -d Ds --latency --timeout 5s -s post.lua URL`
pub fn wrk(
    target: &str,
    threads: u64,
    connections: u64,
    seconds: u64,
    script: &Path,
    url: &str,
) -> LoadRun {
    let args = vec![
        format!("-t{threads}"),
        format!("-c{connections}"),
        format!("-d{seconds}s"),
        "--latency".to_string(),
        "--timeout".to_string(),
        "5s".to_string(),
        "-s".to_string(),
        script.display().to_string(),
        url.to_string(),
    ];
    let output = run_tool("wrk", &args);
    let mut run = LoadRun {
        target: target.to_string(),
        command: format!("wrk {}", args.join(" ")),
        requests: 0,
        ok: 0,
        rps: 0.0,
        p50: Duration::ZERO,
        p90: Duration::ZERO,
        p99: Duration::ZERO,
    };
    let mut failed = 0;
    for line in output.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            run.rps = rest.trim().parse().unwrap_or_default();
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            failed = rest.trim().parse().unwrap_or_default();
        } else if line.contains(" requests in ") {
            run.requests = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_default();
        } else if line.starts_with("Socket errors:") {
            // connect/read/write/timeout counts: all of them are failures.
            failed += line
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some((percent, value)) = line.split_once('%') {
            let value = parse_wrk_duration(value.trim());
            match percent {
                "50" => run.p50 = value,
                "90" => run.p90 = value,
                "99" => run.p99 = value,
                _ => {}
            }
        }
    }
    run.ok = run.requests.saturating_sub(failed);
    assert!(run.rps > 0.0, "cannot read wrk's output:\n{output}");
    run
}

/// `635.91us`, `1.23ms`, `2.00s`
fn parse_wrk_duration(text: &str) -> Duration {
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let value: f64 = text[..number_end].parse().unwrap_or_default();
    let seconds = match &text[number_end..] {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        _ => 0.0,
    };
    Duration::from_secs_f64(seconds)
}

/// The Lua script wrk needs to POST `body`.
pub fn wrk_script(dir: &Path, name: &str, body: &Path) -> PathBuf {
    let path = dir.join(format!("{name}.lua"));
    let script = format!(
        "local f = io.open(\"{}\", \"rb\")\nlocal body = f:read(\"*a\")\nf:close()\n\
         wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = body\n",
        body.display()
    );
    std::fs::write(&path, script).expect("write wrk script");
    path
}

fn run_tool(tool: &str, args: &[String]) -> String {
    let output = tokio::task::block_in_place(|| Command::new(tool).args(args).output())
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{tool} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// An HTTPS client trusting the dev CA, for warming and checking the servers.
pub fn https_client(ca_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca_pem).expect("CA PEM"))
        .pool_max_idle_per_host(64)
        .build()
        .expect("HTTPS client")
}

/// POSTs one AdmissionReview and returns whether it was allowed (and the answer).
pub async fn post_review(client: &reqwest::Client, url: &str, body: Vec<u8>) -> (bool, Value) {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST /validate");
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("AdmissionReview JSON");
    (answer["response"]["allowed"] == true, answer)
}

/// verity's metrics.
pub async fn scrape(admin: &str) -> Vec<metric::Sample> {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    metric::parse(&text)
}
