//! What a connection's deadlines watch: requests begun, responses waiting for their head,
//! response body frames taken by the client, bytes read, and whether writing to the client
//! is stuck. Counted with relaxed atomics by a wrapper around the socket
//! ([`Watched`]) and one around every response body ([`Tracked`]); the connection's timer
//! reads them (see `serve_conn`).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::proxy::Body;

/// The counters of one connection.
#[derive(Debug)]
pub(crate) struct Activity {
    origin: Instant,
    /// Requests begun.
    begun: AtomicU64,
    /// Requests whose response head is not yet produced (the upstream is working; bounded
    /// by `upstream.timeout`).
    heads: AtomicU64,
    /// Response body frames handed to the connection.
    frames: AtomicU64,
    /// Response bodies with a frame ready to give that the connection has not asked for:
    /// the client is not taking data (a full TCP window, or an HTTP/2 flow-control window
    /// left at zero).
    owed: AtomicU64,
    /// Bytes read from the client.
    read: AtomicU64,
    /// When a write to the client last found the socket full (ms since `origin`, plus one);
    /// zero while writes go through.
    blocked_since: AtomicU64,
}

/// A reading of the counters, compared between two ticks of the connection's timer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Reading {
    pub begun: u64,
    pub frames: u64,
    pub read: u64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            origin: Instant::now(),
            begun: AtomicU64::new(0),
            heads: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            owed: AtomicU64::new(0),
            read: AtomicU64::new(0),
            blocked_since: AtomicU64::new(0),
        })
    }

    pub(crate) fn reading(&self) -> Reading {
        Reading {
            begun: self.begun.load(Ordering::Relaxed),
            frames: self.frames.load(Ordering::Relaxed),
            read: self.read.load(Ordering::Relaxed),
        }
    }

    /// Some request is still waiting for its response head.
    pub(crate) fn awaiting_head(&self) -> bool {
        self.heads.load(Ordering::Relaxed) > 0
    }

    /// Some response body has data the client is not taking.
    pub(crate) fn owed(&self) -> bool {
        self.owed.load(Ordering::Relaxed) > 0
    }

    /// How long writing to the client has been stuck, if it is.
    pub(crate) fn write_blocked_for(&self, now: Instant) -> Option<std::time::Duration> {
        let since = self.blocked_since.load(Ordering::Relaxed);
        let since = since.checked_sub(1)?;
        let elapsed = u64::try_from(now.duration_since(self.origin).as_millis()).ok()?;
        Some(std::time::Duration::from_millis(
            elapsed.saturating_sub(since),
        ))
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// A request begins; the returned guard marks its response head as produced (also when
    /// the request is cancelled).
    pub(crate) fn begin(self: &Arc<Self>) -> HeadPending {
        self.begun.fetch_add(1, Ordering::Relaxed);
        self.heads.fetch_add(1, Ordering::Relaxed);
        HeadPending(self.clone())
    }
}

/// A request whose response head is not produced yet.
#[derive(Debug)]
pub(crate) struct HeadPending(Arc<Activity>);

impl HeadPending {
    /// The head is ready: `body` is watched from now on.
    pub(crate) fn respond(self, resp: http::Response<Body>) -> http::Response<Tracked> {
        let activity = self.0.clone();
        resp.map(|body| Tracked::new(body, activity))
    }
}

impl Drop for HeadPending {
    fn drop(&mut self) {
        self.0.heads.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body whose frames are counted, and which counts as owed while it has been
/// polled to a frame and not polled again.
#[derive(Debug)]
pub struct Tracked {
    inner: Body,
    activity: Arc<Activity>,
    owed: bool,
}

impl Tracked {
    fn new(inner: Body, activity: Arc<Activity>) -> Tracked {
        let ended = http_body::Body::is_end_stream(&inner);
        if !ended {
            // Not asked for yet: with a zero flow-control window it never will be.
            activity.owed.fetch_add(1, Ordering::Relaxed);
        }
        Tracked {
            inner,
            activity,
            owed: !ended,
        }
    }

    fn set_owed(&mut self, owed: bool) {
        if std::mem::replace(&mut self.owed, owed) != owed {
            if owed {
                self.activity.owed.fetch_add(1, Ordering::Relaxed);
            } else {
                self.activity.owed.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.set_owed(false);
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        self.set_owed(false);
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            self.activity.frames.fetch_add(1, Ordering::Relaxed);
            let more = !http_body::Body::is_end_stream(&self.inner);
            self.set_owed(more);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The client's socket, counting bytes read and noting when writes find it full.
#[derive(Debug)]
pub(crate) struct Watched<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I> Watched<I> {
    pub(crate) fn new(inner: I, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }

    fn wrote(&self, polled: &Poll<io::Result<usize>>) {
        let a = &self.activity;
        match polled {
            Poll::Pending => {
                if a.blocked_since.load(Ordering::Relaxed) == 0 {
                    a.blocked_since.store(a.millis() + 1, Ordering::Relaxed);
                }
            }
            Poll::Ready(_) => {
                if a.blocked_since.load(Ordering::Relaxed) != 0 {
                    a.blocked_since.store(0, Ordering::Relaxed);
                }
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = out.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, out);
        let n = out.filled().len().saturating_sub(before);
        if n > 0 {
            self.activity
                .read
                .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&polled);
        polled
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        polled
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
