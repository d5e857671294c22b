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

#[tokio::test]
async fn the_per_client_cap_holds_across_worker_runtimes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = free_port();
    let gl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut fixture = labgate::dev::gitlab::Fixture::demo();
    fixture.applications[0].secret = test_client_secret().into();
    let gitlab = labgate::dev::gitlab::StandIn::start(gl, fixture, "");
    let echo = start_echo().await;
    let cfg = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\nworkers = 2\nmax_connections_per_ip = 3\n\
         [log]\nlevel = \"warn\"\n[upstream]\nurl = \"{echo}\"\n[gitlab]\nurl = \"{}\"\nclient_id = \"labgate-dev-client-id\"\nclient_secret = \"{}\"\n\
         [session]\ncookie_secret = \"{}\"\ncookie_secure = false\n[access]\nallowed_groups = [\"acme\"]\n",
        gitlab.base_url,
        test_client_secret(),
        test_cookie_secret()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labgate.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_labgate"))
        .args(["run", "--config", path.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap();
    wait_for_port(port).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Eight keep-alive connections from one address, spread by the kernel over both
    // workers' sockets: three are served, the others closed at once.
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
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert_eq!(
        served, 3,
        "max_connections_per_ip = 3 for the whole process"
    );
}
