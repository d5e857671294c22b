//! The benchmark's floor: a bare hyper reverse proxy in labgate's runtime layout and nothing
//! else (no authentication, no header rewriting, no logging, no metrics). One current-thread
//! runtime per worker, all accepting on one shared listening socket, HTTP/1 connections
//! served by `hyper::server::conn::http1`, and per worker one pooled hyper-util client to the
//! upstream; mimalloc, as labgate. What labgate costs above this row is labgate's own work.
//! `bare_proxy LISTEN UPSTREAM WORKERS`, e.g. `bare_proxy 127.0.0.1:8097 127.0.0.1:8099 1`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::{combinators::BoxBody, BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Body = BoxBody<Bytes, hyper::Error>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8097".into());
    let upstream = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8099".into());
    let workers: usize = args.get(3).and_then(|w| w.parse().ok()).unwrap_or(1);
    let socket = std::net::TcpListener::bind(&listen).expect("bind");
    socket.set_nonblocking(true).expect("nonblocking");
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let socket = socket.try_clone().expect("clone the listener");
            let upstream = upstream.clone();
            std::thread::spawn(move || serve(socket, upstream))
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

/// One worker: a current-thread runtime accepting on the shared socket.
fn serve(socket: std::net::TcpListener, upstream: String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(socket).expect("listener");
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .pool_timer(TokioTimer::new())
            .build(connector);
        let base: &'static str = Box::leak(format!("http://{upstream}").into_boxed_str());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let client = client.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let client = client.clone();
                    async move { Ok::<_, Infallible>(forward(&client, base, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
}

/// The request to the upstream with its path, the response streamed back.
async fn forward(
    client: &Client<HttpConnector, Incoming>,
    base: &str,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut uri = String::with_capacity(base.len() + pq.len());
    uri.push_str(base);
    uri.push_str(pq);
    *req.uri_mut() = uri.parse().unwrap();
    match client.request(req).await {
        Ok(resp) => resp.map(|b| b.boxed()),
        Err(_) => {
            let mut r = Response::new(Empty::new().map_err(|never| match never {}).boxed());
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            r
        }
    }
}
