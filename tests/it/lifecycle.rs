//! Connection lifecycle: an HTTP/2 connection that starts no request within
//! `server.idle_timeout` is closed (however diligently its client answers or sends PINGs),
//! and so is a WebSocket tunnel that carries nothing either way, while busy ones stay open;
//! with `server.workers = N` the per-client cap holds for the process, not per worker.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::*;

fn config() -> String {
    config_with(
        Some("[access]\nallow_any_gitlab_user = true\n\n[[access.public]]\npath = \"^/\"\n"),
        "",
    )
    .replace("[server]\n", "[server]\nidle_timeout = \"1s\"\n")
}

/// `labgate run` (the real binary) on `port` with `server` lines added to `[server]`, in
/// front of an echo upstream and the stand-in; SIGTERM when dropped.
struct RealLabgate {
    child: std::process::Child,
    _gitlab: std::sync::Arc<labgate::dev::gitlab::StandIn>,
    _dir: tempfile::TempDir,
}

impl RealLabgate {
    async fn start(port: u16, server: &str) -> RealLabgate {
        let gl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut fixture = labgate::dev::gitlab::Fixture::demo();
        fixture.applications[0].secret = test_client_secret().into();
        let gitlab = labgate::dev::gitlab::StandIn::start(gl, fixture, "");
        let echo = start_echo().await;
        let cfg = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n{server}\
             [log]\nlevel = \"error\"\n[upstream]\nurl = \"{echo}\"\n[gitlab]\nurl = \"{}\"\nclient_id = \"labgate-dev-client-id\"\nclient_secret = \"{}\"\n\
             [session]\ncookie_secret = \"{}\"\ncookie_secure = false\n[access]\nallowed_groups = [\"acme\"]\n",
            gitlab.base_url,
            test_client_secret(),
            test_cookie_secret()
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labgate.toml");
        std::fs::write(&path, cfg).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_labgate"))
            .args(["run", "--config", path.to_str().unwrap()])
            .env_remove("RUST_LOG")
            .spawn()
            .unwrap();
        wait_for_port(port).await;
        RealLabgate {
            child,
            _gitlab: gitlab,
            _dir: dir,
        }
    }

    fn config_path(&self) -> std::path::PathBuf {
        self._dir.path().join("labgate.toml")
    }
}

impl Drop for RealLabgate {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

async fn h2(
    labgate_url: &str,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let addr = labgate_url.trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        // The client PINGs while idle, and answers the server's PINGs: neither is a request.
        .keep_alive_interval(Duration::from_millis(200))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, task)
}

async fn get(send: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>, url: &str) -> u16 {
    let req = http::Request::get(format!("{url}/x"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_and_a_busy_one_is_not() {
    let s = stack(&config()).await;
    let (mut idle, idle_conn) = h2(&s.labgate_url).await;
    assert_eq!(get(&mut idle, &s.labgate_url).await, 200);
    let (mut busy, busy_conn) = h2(&s.labgate_url).await;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(3500) {
        assert_eq!(get(&mut busy, &s.labgate_url).await, 200, "busy stays open");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(idle_conn.is_finished(), "the idle connection was closed");
    assert!(!busy_conn.is_finished(), "the busy connection is open");
    // Meanwhile a new client is served.
    let r = plain()
        .get(format!("{}/y", s.labgate_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_idle_websocket_tunnel_is_closed_and_a_busy_one_is_not() {
    let s = stack(&config()).await;
    let url = format!("{}/ws", s.labgate_url.replace("http://", "ws://"));
    let (mut idle, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut busy, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(3500) {
        busy.send(Message::text("ping")).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(2), busy.next())
            .await
            .expect("busy tunnel answers")
            .expect("busy tunnel open")
            .unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), "ping");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The idle tunnel was closed: the next read ends at once.
    let next = tokio::time::timeout(Duration::from_secs(1), idle.next())
        .await
        .expect("the idle tunnel is closed, not hanging");
    assert!(
        matches!(next, None | Some(Err(_)) | Some(Ok(Message::Close(_)))),
        "{next:?}"
    );
}

/// An attacker's process of the same user (the app beside labgate in a pod runs as the same
/// uid) binding labgate's port with SO_REUSEPORT would get a share of the connections,
/// cookies and OAuth codes included: the workers share one socket that has no SO_REUSEPORT.
#[tokio::test]
async fn no_other_process_can_take_a_share_of_the_port() {
    let port = free_port();
    let labgate = RealLabgate::start(port, "workers = 2\n").await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let thief = tokio::net::TcpSocket::new_v4().unwrap();
    thief.set_reuseport(true).unwrap();
    thief.set_reuseaddr(true).unwrap();
    let bound = thief.bind(addr).and_then(|()| thief.listen(16));
    assert!(
        bound.is_err(),
        "another SO_REUSEPORT socket could bind labgate's port"
    );
    // A second labgate on the same port fails instead of sharing it.
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_labgate"))
        .args(["run", "--config"])
        .arg(labgate.config_path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("cannot listen"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
}

#[tokio::test]
async fn the_per_client_cap_holds_across_worker_runtimes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = free_port();
    let labgate = RealLabgate::start(port, "workers = 2\nmax_connections_per_ip = 3\n").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Eight keep-alive connections from one address, taken by either worker: three are
    // served, the others closed at once.
    let mut served = 0;
    let mut open = Vec::new();
    for _ in 0..8 {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let _ = tcp
            .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf))
            .await
            .unwrap_or(Ok(0))
            .unwrap_or(0);
        if buf[..n].starts_with(b"HTTP/1.1 200") {
            served += 1;
        }
        open.push(tcp);
    }
    drop(labgate);
    assert_eq!(
        served, 3,
        "max_connections_per_ip = 3 for the whole process"
    );
}

fn stall_config() -> String {
    config_with(
        Some("[access]\nallow_any_gitlab_user = true\n\n[[access.public]]\npath = \"^/\"\n"),
        "",
    )
    .replace(
        "[server]\n",
        "[server]\nidle_timeout = \"1h\"\nsend_timeout = \"2s\"\n",
    )
}

/// Sends `GET path` on a fresh socket with a small receive buffer.
async fn raw_get(labgate_url: &str, path: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr: std::net::SocketAddr = labgate_url.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    tcp
}

/// Reads until the end of the stream (or `limit`), returning the bytes read.
async fn drain(tcp: &mut tokio::net::TcpStream, limit: Duration) -> (usize, bool) {
    use tokio::io::AsyncReadExt;
    let mut total = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (total, true),
            Ok(Ok(n)) => total += n,
            Err(_) => return (total, false),
        }
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_a_slow_reader_is_not() {
    use tokio::io::AsyncReadExt;
    let s = stack(&stall_config()).await;
    // A gigabyte it never reads: labgate's writes stall at once.
    let mut stalled = raw_get(&s.labgate_url, "/download?bytes=1073741824").await;
    // Two megabytes taken 16 KiB every 250 ms at first: slow, never stopped.
    let mut slow = raw_get(&s.labgate_url, "/download?bytes=2097152").await;
    let mut got = 0;
    let mut buf = vec![0u8; 16 * 1024];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        got += slow.read(&mut buf).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A normal request is served meanwhile.
    assert_eq!(
        reqwest::get(format!("{}/x", s.labgate_url))
            .await
            .unwrap()
            .status(),
        200
    );
    let (rest, ended) = drain(&mut slow, Duration::from_secs(20)).await;
    assert!(ended);
    assert!(
        got + rest > 2 * 1024 * 1024,
        "the slow reader got the whole download ({} bytes)",
        got + rest
    );
    // The stalled one was cut off after send_timeout: what it reads now ends early.
    let (read, ended) = drain(&mut stalled, Duration::from_secs(5)).await;
    assert!(
        ended && read < 512 * 1024 * 1024,
        "the stalled connection was closed (read {read} bytes, ended: {ended})"
    );
}

#[tokio::test]
async fn an_http2_client_that_leaves_its_window_at_zero_is_disconnected() {
    let s = stack(&stall_config()).await;
    let addr = s.labgate_url.trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // No flow-control window for the server's data, ever.
    let (mut client, conn) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, Bytes>(tcp)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let mut responses = Vec::new();
    for path in ["/download?bytes=1048576", "/x"] {
        let req = http::Request::get(format!("http://{addr}{path}"))
            .body(())
            .unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        responses.push(resp);
    }
    for resp in responses {
        let resp = tokio::time::timeout(Duration::from_secs(5), resp)
            .await
            .expect("the response heads arrive")
            .unwrap();
        assert_eq!(resp.status(), 200);
        // Its body is left unread and its window at zero.
        std::mem::forget(resp);
    }
    let ended = tokio::time::timeout(Duration::from_secs(8), conn).await;
    assert!(
        ended.is_ok(),
        "labgate dropped the connection that takes no data (send_timeout = 2s)"
    );
    // Others are served meanwhile.
    assert_eq!(
        reqwest::get(format!("{}/x", s.labgate_url))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn side_listeners_share_the_limits_and_the_deadlines() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = free_port();
    let metrics_port = free_port();
    let labgate = RealLabgate::start(
        port,
        &format!(
            "max_connections_per_ip = 2\nidle_timeout = \"3s\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n"
        ),
    )
    .await;
    wait_for_port(metrics_port).await;
    // The metrics listener's HTTP/2 connection is closed when idle, PINGs or not.
    let metrics_url = format!("http://127.0.0.1:{metrics_port}");
    // The probes that waited for the two ports hold this address's two slots until labgate
    // sees them close (later on a loaded runner): retry until one is free again.
    let mut attempt = 0;
    let conn = loop {
        attempt += 1;
        let (mut send, conn) = h2(&metrics_url).await;
        let req = http::Request::get(format!("{metrics_url}/metrics"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        match send.send_request(req).await {
            Ok(resp) => {
                assert_eq!(resp.status(), 200);
                break conn;
            }
            Err(e) if attempt < 20 => {
                eprintln!("metrics request refused ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("the metrics listener never answered: {e}"),
        }
    };
    // (3 s, not less: on a loaded 2-core runner the request may begin a second late.)
    let closed = tokio::time::timeout(Duration::from_secs(10), conn).await;
    // Two connections from this address on the main listener: the metrics listener
    // refuses a third.
    // (Earlier probes may still hold a slot until labgate sees them close, later on a
    // loaded runner: a refused connection is tried again.)
    let mut held = Vec::new();
    let mut attempt = 0;
    while held.len() < 2 {
        attempt += 1;
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let _ = tcp
            .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut buf = [0u8; 256];
        match tcp.read(&mut buf).await {
            Ok(n) if buf[..n].starts_with(b"HTTP/1.1 200") => held.push(tcp),
            other if attempt < 20 => {
                eprintln!("main listener refused a connection ({other:?}); retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => panic!("the main listener never served /ping: {other:?}"),
        }
    }
    let mut third = tokio::net::TcpStream::connect(("127.0.0.1", metrics_port))
        .await
        .unwrap();
    let _ = third
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = [0u8; 256];
    let answered = tokio::time::timeout(Duration::from_secs(3), third.read(&mut buf))
        .await
        .map(|r| r.unwrap_or(0))
        .unwrap_or(0);
    drop(labgate);
    assert!(
        closed.is_ok(),
        "the idle HTTP/2 connection to the metrics listener was closed"
    );
    assert_eq!(
        answered, 0,
        "the metrics listener counts the main listener's connections from this address"
    );
}
