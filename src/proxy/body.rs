//! The response body type: a fixed buffer for labgate's own answers, or the upstream's
//! body streamed through frame by frame (never buffered).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

/// A body labgate sends: its own bytes or a streamed one.
#[derive(Debug)]
pub enum Body {
    /// labgate's own page or JSON; `None` once sent.
    Full(Option<Bytes>),
    /// A peer's body passed through as it arrives.
    Stream(Incoming),
    /// The upstream's body, holding its connection slot (`upstream.max_connections`)
    /// until it is done.
    Upstream(Incoming, Option<tokio::sync::OwnedSemaphorePermit>),
    /// Chunks produced by a task (the dev echo app's streams).
    Channel(tokio::sync::mpsc::Receiver<Bytes>),
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Body::Full(None)
    }

    /// A body whose chunks come from `rx`; it ends when the sender is dropped.
    pub fn from_channel(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        Body::Channel(rx)
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::Full(if b.is_empty() { None } else { Some(b) })
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Body::from(Bytes::from(s))
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Body::from(Bytes::from_static(s.as_bytes()))
    }
}

impl From<Incoming> for Body {
    fn from(b: Incoming) -> Self {
        Body::Stream(b)
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(s) | Body::Upstream(s, _) => Pin::new(s).poll_frame(cx),
            Body::Channel(rx) => rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(b) => b.is_none(),
            Body::Stream(s) | Body::Upstream(s, _) => s.is_end_stream(),
            Body::Channel(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream(s) | Body::Upstream(s, _) => s.size_hint(),
            Body::Channel(_) => SizeHint::default(),
        }
    }
}
