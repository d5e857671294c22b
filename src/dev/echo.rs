//! The echo upstream: shows what labgate told it (identity headers, the verified assertion)
//! as JSON, or to a browser as a readable page (`page.rs`), plus the endpoints the proxy tests need: streaming echo, download,
//! upload counting, slow answers, server-sent events and a WebSocket echo.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::JwkSet;
use tokio::net::TcpListener;

use crate::dev::util::{json, respond};
use crate::proxy::Body;

mod page;

/// Where the echo app finds labgate's JWKS and what it pins.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    /// labgate's `/oauth2/jwks.json` URL (configured, never taken from a token).
    pub jwks_url: String,
    /// Expected `iss` (labgate's public_url).
    pub issuer: String,
    /// Expected `aud`; empty: the origin of the request's own `Host` (one echo behind
    /// several hosts, each its own app).
    pub audience: String,
    /// Header carrying the assertion.
    pub assertion_header: String,
}

/// The echo app's state.
pub struct Echo {
    cfg: EchoConfig,
    http: reqwest::Client,
    jwks: Mutex<Option<(Arc<JwkSet>, Instant)>>,
}

impl Echo {
    /// Starts the echo app on `listener`.
    pub fn start(listener: TcpListener, cfg: EchoConfig) -> Arc<Echo> {
        let e = Arc::new(Echo {
            cfg,
            http: reqwest::Client::new(),
            jwks: Mutex::new(None),
        });
        crate::dev::util::serve(listener, None, e.clone(), handle);
        e
    }

    async fn keys(&self) -> Option<Arc<JwkSet>> {
        if let Some((k, at)) = self.jwks.lock().ok()?.clone() {
            if at.elapsed() < Duration::from_secs(30) {
                return Some(k);
            }
        }
        let set: JwkSet = self
            .http
            .get(&self.cfg.jwks_url)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let set = Arc::new(set);
        *self.jwks.lock().ok()? = Some((set.clone(), Instant::now()));
        Some(set)
    }

    /// Verifies an assertion the way an app should: ES256 only, key by kid from the
    /// configured JWKS, iss and aud pinned.
    pub async fn verify(&self, token: &str) -> Result<serde_json::Value, String> {
        self.verify_for(token, &self.cfg.audience).await
    }

    /// [`Echo::verify`], pinning `audience`.
    pub async fn verify_for(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<serde_json::Value, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let kid = header.kid.ok_or("no kid")?;
        let keys = self.keys().await.ok_or("JWKS unavailable")?;
        let jwk = keys.find(&kid).ok_or("unknown kid")?;
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.set_issuer(&[&self.cfg.issuer]);
        v.set_audience(&[audience]);
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
            .map(|d| d.claims)
            .map_err(|e| e.to_string())
    }
}

/// A page whose script opens a WebSocket back to the app and shows the echo.
const WS_PAGE: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>WebSocket echo</title></head>
<body><h1>WebSocket echo</h1><p>Status: <output id="ws-result">connecting</output></p>
<script>
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
ws.onopen = () => ws.send("hello through labgate");
ws.onmessage = (e) => { document.getElementById("ws-result").textContent = "echo: " + e.data; ws.close(); };
ws.onerror = () => { document.getElementById("ws-result").textContent = "error"; };
</script></body></html>"#;

fn query(req: &Request<Incoming>, name: &str) -> Option<String> {
    crate::respond::query_param(req.uri().query(), name)
}

async fn handle(e: Arc<Echo>, req: Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/ws" => websocket(req),
        "/ws-page" => respond(StatusCode::OK, "text/html; charset=utf-8", WS_PAGE),
        "/sse" => sse(&req),
        "/slow" => {
            let ms: u64 = query(&req, "ms")
                .and_then(|m| m.parse().ok())
                .unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            json(StatusCode::OK, &serde_json::json!({"slept_ms": ms}))
        }
        "/download" => download(&req),
        "/upload" => {
            let mut body = req.into_body();
            let mut n: u64 = 0;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                    Err(_) => break,
                }
            }
            json(StatusCode::OK, &serde_json::json!({"bytes": n}))
        }
        "/stream-echo" => {
            // Full duplex: every chunk is sent back as soon as it arrives.
            let mut r = Response::new(Body::Stream(req.into_body()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/octet-stream"),
            );
            r
        }
        _ => identity(&e, &req).await,
    }
}

async fn identity(e: &Echo, req: &Request<Incoming>) -> Response<Body> {
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .fold(serde_json::Map::new(), |mut m, (k, v)| {
            match m.get_mut(&k) {
                Some(serde_json::Value::Array(a)) => a.push(v.into()),
                _ => {
                    m.insert(k, serde_json::Value::Array(vec![v.into()]));
                }
            }
            m
        });
    let assertion = req
        .headers()
        .get(e.cfg.assertion_header.as_str())
        .and_then(|v| v.to_str().ok());
    let audience = match e.cfg.audience.as_str() {
        "" => format!(
            "http://{}",
            req.headers()
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        ),
        fixed => fixed.to_owned(),
    };
    let checked = match assertion {
        Some(a) => e.verify_for(a, &audience).await,
        None => Err("no assertion header".to_owned()),
    };
    let verified = match &checked {
        Ok(c) => serde_json::json!({"valid": true, "claims": c}),
        Err(err) => serde_json::json!({"valid": false, "error": err}),
    };
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let body = serde_json::json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.uri().query(),
        "user": h("x-forwarded-user"),
        "email": h("x-forwarded-email"),
        "groups": h("x-forwarded-groups"),
        "user_id": h("x-labgate-user-id"),
        "assertion": assertion,
        "verified": verified,
        "headers": headers,
    });
    if !crate::respond::wants_html(req.headers()) {
        return json(StatusCode::OK, &body);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let html = page::render(&page::Seen {
        headers: req.headers(),
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query(),
        assertion,
        verified: &checked,
        json: &body,
        now,
    });
    // No caching instructions of its own: labgate marks a signed-in user's HTML private.
    respond(StatusCode::OK, "text/html; charset=utf-8", html)
}

fn stream_body(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Body {
    Body::from_channel(rx)
}

fn download(req: &Request<Incoming>) -> Response<Body> {
    let total: u64 = query(req, "bytes")
        .and_then(|b| b.parse().ok())
        .unwrap_or(1 << 20);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if tx.send(chunk.slice(..n)).await.is_err() {
                return;
            }
            left -= n as u64;
        }
    });
    let mut r = Response::new(stream_body(rx));
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(total));
    r
}

fn sse(req: &Request<Incoming>) -> Response<Body> {
    let count: u32 = query(req, "count")
        .and_then(|c| c.parse().ok())
        .unwrap_or(5);
    let every: u64 = query(req, "ms").and_then(|c| c.parse().ok()).unwrap_or(200);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        for i in 0..count {
            if tx
                .send(Bytes::from(format!("id: {i}\ndata: tick {i}\n\n")))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(every)).await;
        }
    });
    let mut r = Response::new(stream_body(rx));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    r
}

fn websocket(mut req: Request<Incoming>) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return respond(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "WebSocket upgrade expected",
        );
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        let (mut tx, mut rx) = ws.split();
        while let Some(Ok(msg)) = rx.next().await {
            if msg.is_text() || msg.is_binary() {
                if tx.send(msg).await.is_err() {
                    break;
                }
            } else if msg.is_close() {
                break;
            }
        }
    });
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("upgrade"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    r
}
