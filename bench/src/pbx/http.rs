//! HTTP as the benchmark speaks it to uapid and to ARI: a token, an action's PUT, and a
//! load of GETs with the server's CPU time per request.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::UAPID;
use crate::machine::cpu_time;
use crate::results::Load;
use crate::stats::pct;

/// The server a load is aimed at: its process and its CPU rate when idle.
#[derive(Clone, Copy)]
pub struct Server {
    pub pid: u32,
    pub idle_rate: f64,
}

impl Server {
    /// Measures `pid`'s CPU seconds per second with no requests (Asterisk relays the
    /// calls' audio all along): subtracted from what a load costs it.
    pub async fn idle(pid: u32) -> Server {
        let (c0, t0) = (cpu_time(pid), Instant::now());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle_rate = (cpu_time(pid) - c0).as_secs_f64() / t0.elapsed().as_secs_f64();
        Server { pid, idle_rate }
    }
}

/// Latency and throughput of GET `url` with `workers` concurrent clients for `secs`,
/// and the server's CPU time per request.
pub async fn load(
    http: &reqwest::Client,
    url: &str,
    auth: Option<(&str, &str)>,
    bearer: Option<&str>,
    workers: usize,
    secs: f64,
    server: Server,
) -> Load {
    let (cpu0, began) = (cpu_time(server.pid), Instant::now());
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (http, url) = (http.clone(), url.to_string());
        let auth = auth.map(|(u, p)| (u.to_string(), p.to_string()));
        let bearer = bearer.map(str::to_string);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < end {
                let mut req = http.get(&url);
                if let Some((u, p)) = &auth {
                    req = req.basic_auth(u, Some(p));
                }
                if let Some(b) = &bearer {
                    req = req.bearer_auth(b);
                }
                let t = Instant::now();
                let resp = req.send().await.expect("request");
                assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
                let _ = resp.bytes().await.expect("body");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    let cpu = (cpu_time(server.pid) - cpu0).as_secs_f64()
        - server.idle_rate * began.elapsed().as_secs_f64();
    all.sort();
    Load {
        requests: all.len(),
        p50_ms: pct(&all, 50.0),
        p90_ms: pct(&all, 90.0),
        p99_ms: pct(&all, 99.0),
        rps: all.len() as f64 / secs,
        server_cpu_us_per_request: cpu.max(0.0) * 1e6 / all.len().max(1) as f64,
    }
}

/// An OAuth token for the app `id`.
pub async fn token(http: &reqwest::Client, id: &str, secret: &str) -> String {
    let v: Value = http
        .post(format!("http://{UAPID}/oauth/token.php"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// PUT an action on call `id`: the status, the time to the answer and its body.
pub async fn put(
    http: &reqwest::Client,
    token: &str,
    id: &str,
    body: Value,
) -> (u16, Duration, String) {
    let t = Instant::now();
    let r = http
        .put(format!("http://{UAPID}/uapi/phoneCalls/@me/@self/{id}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("PUT");
    let st = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (st, t.elapsed(), text)
}
