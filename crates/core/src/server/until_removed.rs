//! A response body that stops when its viewer is removed: handed out in pieces, so a removal
//! between two of them ends the answer (as an error, on which hyper drops the connection)
//! instead of letting a multi-megabyte frame run to its end.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};

/// At most this much of a body goes to hyper at a time; a removal takes effect between pieces
/// (plus what hyper and the socket already hold).
const PIECE: usize = 64 * 1024;

pub struct UntilRemoved {
    inner: Body,
    /// Taken from `inner`, not yet handed on.
    pending: Bytes,
    removed: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl UntilRemoved {
    /// `body`, cut off when `removed` resolves.
    pub fn new(body: Body, removed: impl Future<Output = ()> + Send + 'static) -> Self {
        Self {
            inner: body,
            pending: Bytes::new(),
            removed: Box::pin(removed),
        }
    }
}

impl http_body::Body for UntilRemoved {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.removed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new("the viewer was removed"))));
        }
        if this.pending.is_empty() {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    Err(other) => return Poll::Ready(Some(Ok(other))),
                },
                other => return other,
            }
        }
        let piece = this.pending.split_to(this.pending.len().min(PIECE));
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let pending = self.pending.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + pending);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + pending);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_body_goes_whole_in_pieces_until_removed() {
        let data = Bytes::from(vec![7u8; PIECE * 2 + 10]);
        let whole = UntilRemoved::new(Body::from(data.clone()), std::future::pending());
        assert_eq!(whole.size_hint().exact(), Some(data.len() as u64));
        let mut whole = whole;
        let mut pieces = Vec::new();
        while let Some(frame) = whole.frame().await {
            pieces.push(frame.expect("a piece").into_data().expect("data"));
        }
        assert_eq!(
            pieces.iter().map(Bytes::len).collect::<Vec<_>>(),
            [PIECE, PIECE, 10]
        );
        assert_eq!(pieces.concat(), data.to_vec());

        let (remove, removed) = tokio::sync::oneshot::channel::<()>();
        let mut cut = UntilRemoved::new(Body::from(data), async {
            let _ = removed.await;
        });
        let first = cut.frame().await.expect("a piece").expect("data");
        assert_eq!(first.into_data().map(|data| data.len()).ok(), Some(PIECE));
        remove.send(()).expect("still listening");
        assert!(
            cut.frame().await.expect("an end").is_err(),
            "removed: the body ends in an error"
        );
    }
}
