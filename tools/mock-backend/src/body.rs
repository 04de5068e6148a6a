//! The response body: either a complete buffer or a channel fed by a task.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

pub enum MockBody {
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<Bytes>),
}

impl MockBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        MockBody::Full(Some(b.into()))
    }
    pub fn empty() -> Self {
        MockBody::Full(None)
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            // An empty chunk on the channel means "reset": the body fails and
            // hyper aborts the connection mid-response.
            MockBody::Channel(rx) => rx.poll_recv(cx).map(|o| {
                o.map(|b| {
                    if b.is_empty() {
                        Err(std::io::Error::other("mock stream reset"))
                    } else {
                        Ok(Frame::data(b))
                    }
                })
            }),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(None) => true,
            MockBody::Full(Some(b)) => b.is_empty(),
            MockBody::Channel(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(None) => SizeHint::with_exact(0),
            MockBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            MockBody::Channel(_) => SizeHint::default(),
        }
    }
}
