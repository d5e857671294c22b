//! The reverse proxy: streaming, upgrades, hop-by-hop, X-Forwarded-*, faults, limits.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use reqwest::header::ACCEPT;
use reqwest::StatusCode;

use crate::harness::*;

/// Everything public: these tests are about moving bytes, not signing in.
fn open_config(extra: &str) -> String {
    config_with(
        Some("[access]\nallow_any_gitlab_user = true\n\n[[access.public]]\npath = \"^/\"\n"),
        extra,
    )
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn bodies_stream_both_ways_without_buffering() {
    let s = stack(&open_config("")).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    tx.send(Ok(Bytes::from_static(b"first-chunk")))
        .await
        .unwrap();
    let resp = plain()
        .post(format!("{}/stream-echo", s.labgate_url))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = resp.bytes_stream();
    // The first chunk comes back through labgate while the upload is still open.
    let got = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("first chunk in time")
        .unwrap()
        .unwrap();
    assert_eq!(&got[..], b"first-chunk");
    tx.send(Ok(Bytes::from_static(b"second"))).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&got[..], b"second");
    drop(tx);
    assert!(tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .is_none());
}

fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

#[tokio::test]
async fn one_gib_download_and_upload_in_bounded_memory() {
    const GIB: u64 = 1 << 30;
    let s = stack(&open_config("")).await;
    let before = rss_kib();
    let resp = plain()
        .get(format!("{}/download?bytes={GIB}", s.labgate_url))
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let mut n = 0u64;
    let mut peak = before;
    while let Some(chunk) = stream.next().await {
        n += chunk.unwrap().len() as u64;
        if n % (64 << 20) < 65536 {
            peak = peak.max(rss_kib());
        }
    }
    assert_eq!(n, GIB);
    // Upload: a generated 1 GiB body, counted by the upstream.
    let chunk = Bytes::from(vec![b'u'; 256 * 1024]);
    let count = (GIB / chunk.len() as u64) as usize;
    let stream =
        futures_util::stream::iter((0..count).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let resp = plain()
        .post(format!("{}/upload", s.labgate_url))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["bytes"], GIB);
    peak = peak.max(rss_kib());
    let growth_mib = (peak.saturating_sub(before)) / 1024;
    assert!(
        growth_mib < 32,
        "RSS grew by {growth_mib} MiB moving 1 GiB each way"
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed() {
    let s = stack(&open_config("")).await;
    let r = plain()
        .get(format!("{}/echo", s.labgate_url))
        .header(ACCEPT, "application/json")
        .header("connection", "keep-alive, x-hop-secret")
        .header("x-hop-secret", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .header("x-end-to-end", "kept")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    let h = &body["headers"];
    for gone in ["x-hop-secret", "keep-alive", "proxy-authorization", "te"] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream: {h}");
    }
    assert_eq!(h["x-end-to-end"][0], "kept");
}

#[tokio::test]
async fn x_forwarded_headers_believed_only_from_trusted_proxies() {
    let s = stack(&open_config("")).await;
    let r = plain()
        .get(format!("{}/", s.labgate_url))
        .header(ACCEPT, "application/json")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["headers"]["x-forwarded-for"],
        serde_json::json!(["127.0.0.1"])
    );
    assert_eq!(
        body["headers"]["x-forwarded-proto"],
        serde_json::json!(["http"])
    );
    assert!(body["headers"]["x-forwarded-host"][0]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));

    let trusted = stack(&open_config("").replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    ))
    .await;
    let r = plain()
        .get(format!("{}/", trusted.labgate_url))
        .header(ACCEPT, "application/json")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.example")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["headers"]["x-forwarded-for"],
        serde_json::json!(["6.6.6.6, 127.0.0.1"])
    );
    assert_eq!(
        body["headers"]["x-forwarded-proto"],
        serde_json::json!(["https"])
    );
    assert_eq!(
        body["headers"]["x-forwarded-host"],
        serde_json::json!(["app.example"])
    );
}

#[tokio::test]
async fn websocket_round_trip() {
    let s = stack(&open_config("")).await;
    let url = format!("{}/ws", s.labgate_url.replace("http://", "ws://"));
    let (mut ws, resp) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade through labgate");
    assert_eq!(resp.status(), 101);
    for msg in ["hello", "labgate"] {
        ws.send(tokio_tungstenite::tungstenite::Message::text(msg))
            .await
            .unwrap();
        let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), msg);
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn server_sent_events_arrive_as_written() {
    let s = stack(&open_config("")).await;
    let start = Instant::now();
    let resp = plain()
        .get(format!("{}/sse?count=4&ms=400", s.labgate_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    let first_at = start.elapsed();
    assert!(String::from_utf8_lossy(&first).contains("tick 0"));
    // The stream takes ~1.2 s in all; the first event must not wait for the end.
    assert!(
        first_at < Duration::from_millis(800),
        "first event after {first_at:?}"
    );
    let mut rest = Vec::new();
    while let Some(c) = stream.next().await {
        rest.extend_from_slice(&c.unwrap());
    }
    assert!(String::from_utf8_lossy(&rest).contains("tick 3"));
    assert!(start.elapsed() >= Duration::from_millis(1100));
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_is_504() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let s = stack(&open_config("").replace(
        "url = \"{echo}\"",
        &format!("url = \"http://127.0.0.1:{port}\""),
    ))
    .await;
    let (status, body) = get_json(&plain(), &format!("{}/", s.labgate_url)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"], "upstream_unreachable");
    let r = plain()
        .get(format!("{}/", s.labgate_url))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("could not reach the application"));

    let s = stack(&open_config("").replace("timeout = \"30s\"", "timeout = \"1s\"")).await;
    let start = Instant::now();
    let (status, body) = get_json(&plain(), &format!("{}/slow?ms=5000", s.labgate_url)).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body["error"], "upstream_timeout");
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn oversized_request_heads_are_refused() {
    let s = stack(&open_config("")).await;
    let big = "x".repeat(20 * 1024);
    let r = plain()
        .get(format!("{}/", s.labgate_url))
        .header("x-big", big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let mut req = plain().get(format!("{}/", s.labgate_url));
    for i in 0..120 {
        req = req.header(format!("x-h{i}"), "1");
    }
    let r = req.send().await;
    assert!(
        r.map(|r| r.status() == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
            .unwrap_or(true),
        "too many headers refused"
    );
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s =
        stack(&open_config("").replace("[server]\n", "[server]\nheader_read_timeout = \"1s\"\n"))
            .await;
    let addr = s.labgate_url.trim_start_matches("http://").to_owned();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut buf))
        .await
        .expect("connection closed by labgate");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn probes_answer() {
    let s = stack(&open_config("")).await;
    let r = plain()
        .get(format!("{}/ping", s.labgate_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = plain()
        .get(format!("{}/ready", s.labgate_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn graceful_shutdown_lets_a_slow_request_finish() {
    let s = stack(&open_config("")).await;
    let url = format!("{}/slow?ms=1500", s.labgate_url);
    let req = tokio::spawn(async move { plain().get(url).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let drained = s.stop().await;
    assert!(drained, "drain finished within the grace period");
    assert_eq!(req.await.unwrap().unwrap(), StatusCode::OK);
}

/// Sockets that connect and say nothing (before HTTP/1 or HTTP/2 is even chosen) are cut off
/// at the header deadline on the main and the side listeners, so they cannot hold every
/// connection slot; one client address holds at most `max_connections_per_ip`.
#[tokio::test]
async fn silent_sockets_are_cut_off_and_cannot_starve_the_listener() {
    use tokio::io::AsyncReadExt;
    let metrics_port = free_port();
    let s = stack(&open_config("").replace(
        "[server]\n",
        &format!(
            "[server]\nheader_read_timeout = \"1s\"\nmax_connections = 20\nmax_connections_per_ip = 1000\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n"
        ),
    ))
    .await;
    let addr = s.labgate_url.trim_start_matches("http://").to_owned();
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    // Every slot is taken by a silent socket; a real request is served once they are cut.
    let start = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        plain().get(format!("{}/x", s.labgate_url)).send(),
    )
    .await
    .expect("served after the silent sockets were cut")
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(start.elapsed() < Duration::from_secs(4));
    for mut sock in silent {
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(3), sock.read(&mut buf))
            .await
            .expect("closed by labgate")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    // The metrics listener cuts them off too.
    let labgate_metrics = labgate::server::serve_metrics(
        tokio::net::TcpListener::bind(("127.0.0.1", metrics_port))
            .await
            .unwrap(),
        labgate::server::Shared::new(s.app.clone()).unwrap(),
    );
    tokio::spawn(labgate_metrics);
    wait_for_port(metrics_port).await;
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", metrics_port))
        .await
        .unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(3), sock.read(&mut buf))
        .await
        .expect("side listener closes a silent socket")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn one_client_address_holds_at_most_its_share_of_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = stack(&open_config("").replace("[server]\n", "[server]\nmax_connections_per_ip = 3\n"))
        .await;
    let addr = s.labgate_url.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 12];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(c);
    }
    // The fourth is closed at once.
    let mut fourth = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = fourth
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), fourth.read_to_end(&mut buf)).await;
    assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));
    // Closing one frees its slot.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = plain()
        .get(format!("{}/x", s.labgate_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// A WebSocket tunnel outlives its HTTP connection but keeps counting against the
/// per-client cap until it closes: upgrades are no way around the connection limits.
#[tokio::test]
async fn websocket_tunnels_count_against_the_connection_caps() {
    let cfg = open_config("").replace("[server]\n", "[server]\nmax_connections_per_ip = 3\n");
    let s = stack(&cfg).await;
    let url = format!("{}/ws", s.labgate_url.replace("http://", "ws://"));
    let mut tunnels = Vec::new();
    for _ in 0..3 {
        let (ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("tunnel");
        tunnels.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio_tungstenite::connect_async(&url).await.is_err(),
        "a fourth connection from the same client is refused"
    );
    assert!(plain()
        .get(format!("{}/x", s.labgate_url))
        .send()
        .await
        .is_err());
    drop(tunnels.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = plain()
        .get(format!("{}/x", s.labgate_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
