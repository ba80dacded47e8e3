//! A socket that gives up on a client that stopped reading, or reads too slowly to matter.
//!
//! hyper has a timeout for reading a request head but none for writing a response: a phone that
//! went to sleep mid-frame would keep its connection and the frame's buffers for ever, and a
//! client taking a 4K frame a few kilobytes at a time could hold many. This wrapper fails a write
//! (or flush) that has made no progress for the stall limit, or that finds the client has taken
//! less than the minimum rate over two windows of ten seconds spent waiting for it; hyper then
//! drops the connection and everything it held. Time the connection spends with nothing to send
//! (a long poll waiting for a change) counts for neither. One slow window is forgiven: a viewer
//! whose network paused for a few seconds (Wi-Fi roaming, a phone waking up) takes what waited
//! for it at full speed once it is back, and a pushed stream then catches up instead of being
//! cut and reopened.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Waiting time over which a client's rate is judged.
const RATE_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct StallGuard<S> {
    inner: S,
    limit: Duration,
    /// Bytes per second a client must take, measured while it is behind.
    min_rate: u64,
    /// Armed when a write first finds the socket full; disarmed by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
    /// Since the client first fell behind: the time spent waiting for it, and what it took.
    behind: Option<Behind>,
    /// The last window of waiting found the client too slow; a second such window drops it.
    forgiven: bool,
}

#[derive(Debug)]
struct Behind {
    waited: Duration,
    bytes: u64,
    /// When the current wait began, while there is one.
    waiting_since: Option<Instant>,
}

impl<S> StallGuard<S> {
    pub(crate) fn new(inner: S, limit: Duration, min_rate: u64) -> Self {
        Self {
            inner,
            limit,
            min_rate,
            stalled: None,
            behind: None,
            forgiven: false,
        }
    }

    /// After the inner write made progress (`written` bytes) or failed.
    fn progressed<T>(&mut self, result: io::Result<T>, written: usize) -> Poll<io::Result<T>> {
        self.stalled = None;
        if result.is_ok()
            && let Some(behind) = self.behind.as_mut()
        {
            if let Some(since) = behind.waiting_since.take() {
                behind.waited += since.elapsed();
            }
            behind.bytes += written as u64;
            if behind.waited >= RATE_WINDOW {
                let wanted = self.min_rate as f64 * behind.waited.as_secs_f64();
                let took = behind.bytes as f64;
                self.behind = None;
                let slow = took < wanted;
                if slow && self.forgiven {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client reads too slowly",
                    )));
                }
                self.forgiven = slow;
            }
        }
        Poll::Ready(result)
    }

    /// After the inner write found the socket full: pending, until the stall limit runs out.
    fn blocked<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let behind = self.behind.get_or_insert(Behind {
            waited: Duration::ZERO,
            bytes: 0,
            waiting_since: None,
        });
        behind.waiting_since.get_or_insert_with(Instant::now);
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                let written = result.as_ref().map_or(0, |n| *n);
                this.progressed(result, written)
            }
            Poll::Pending => this.blocked(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                let written = result.as_ref().map_or(0, |n| *n);
                this.progressed(result, written)
            }
            Poll::Pending => this.blocked(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(result) => this.progressed(result, 0),
            Poll::Pending => this.blocked(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Ready(result) => this.progressed(result, 0),
            Poll::Pending => this.blocked(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_never_reads_fails_the_write_after_the_limit() {
        // A pipe with room for 16 bytes whose other end nobody reads.
        let (writer, _reader) = tokio::io::duplex(16);
        let mut guarded = StallGuard::new(writer, Duration::from_secs(5), 1024);
        let started = tokio::time::Instant::now();
        let error = guarded
            .write_all(&[0u8; 64])
            .await
            .expect_err("the write must fail, not hang");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_reader_is_kept() {
        use tokio::io::AsyncReadExt;
        let (writer, mut reader) = tokio::io::duplex(16);
        // 8 bytes every 3 s is 2.7 B/s: above this guard's minimum of 2 B/s.
        let mut guarded = StallGuard::new(writer, Duration::from_secs(5), 2);
        let drain = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut chunk = [0u8; 8];
            loop {
                // Slower than nothing, faster than the limit.
                tokio::time::sleep(Duration::from_secs(3)).await;
                match reader.read(&mut chunk).await {
                    Ok(0) | Err(_) => return got,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
            }
        });
        guarded
            .write_all(&[7u8; 64])
            .await
            .expect("steady progress is not a stall");
        drop(guarded);
        let got = drain.await.expect("reader task");
        assert_eq!(got, vec![7u8; 64]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_reader_is_dropped_once_it_has_been_waited_for_long_enough() {
        use tokio::io::AsyncReadExt;
        let (writer, mut reader) = tokio::io::duplex(16);
        // 8 bytes a second, where 100 are the minimum.
        let mut guarded = StallGuard::new(writer, Duration::from_secs(5), 100);
        tokio::spawn(async move {
            let mut chunk = [0u8; 8];
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if !matches!(reader.read(&mut chunk).await, Ok(1..)) {
                    return;
                }
            }
        });
        let started = tokio::time::Instant::now();
        let error = guarded
            .write_all(&[1u8; 4096])
            .await
            .expect_err("too slow to keep");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("too slowly"), "{error}");
        let took = started.elapsed();
        assert!(
            took >= RATE_WINDOW * 2 && took < RATE_WINDOW * 3,
            "judged after two windows (the first is forgiven): {took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_back_from_a_pause_takes_what_waited_for_it() {
        use tokio::io::AsyncReadExt;
        let (writer, mut reader) = tokio::io::duplex(4096);
        // A minimum of 100 kB/s, which the pause alone would miss by far.
        let mut guarded = StallGuard::new(writer, Duration::from_secs(15), 100_000);
        let drain = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(12)).await;
            let mut got = Vec::new();
            reader.read_to_end(&mut got).await.map(|_| got)
        });
        guarded
            .write_all(&[3u8; 1 << 20])
            .await
            .expect("a pause shorter than the stall limit is not a slow reader");
        drop(guarded);
        let got = drain.await.expect("reader task").expect("read");
        assert_eq!(got.len(), 1 << 20);
    }

    #[tokio::test(start_paused = true)]
    async fn time_with_nothing_to_send_does_not_count() {
        use tokio::io::AsyncReadExt;
        let (writer, mut reader) = tokio::io::duplex(64);
        let mut guarded = StallGuard::new(writer, Duration::from_secs(5), 1_000_000);
        // A long poll's quiet minute, then a small answer the client takes at once.
        tokio::time::sleep(Duration::from_secs(60)).await;
        guarded.write_all(b"an update").await.expect("written");
        let mut got = [0u8; 9];
        reader.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"an update");
    }
}
