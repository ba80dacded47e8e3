//! A TCP relay on 127.0.0.1 that a test can cut and restore, to play a network drop between a
//! browser and the server without touching either, and that can hold every byte back for a
//! while, to play a network far away (a round trip of twice that delay).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Relays `127.0.0.1:<port>` to a target while up; when cut, drops every connection and refuses
/// new ones until restored on the same port.
#[derive(Debug)]
pub struct Relay {
    port: u16,
    target: SocketAddr,
    /// How long each byte waits on its way, in either direction.
    delay: Duration,
    up: Arc<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    pub async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        Self::start_delayed(target, Duration::ZERO).await
    }

    /// A relay whose every byte arrives `one_way` after it was sent, in both directions, with no
    /// limit on throughput: a round trip of twice that.
    pub async fn start_delayed(target: SocketAddr, one_way: Duration) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let mut relay = Self {
            port,
            target,
            delay: one_way,
            up: Arc::new(watch::Sender::new(true)),
            task: None,
        };
        relay.task = Some(relay.serve(listener));
        Ok(relay)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The network goes down: open connections are dropped, new ones refused.
    pub fn cut(&mut self) {
        self.up.send_replace(false);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// The network comes back on the same port.
    pub async fn restore(&mut self) -> anyhow::Result<()> {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await?;
        self.up.send_replace(true);
        self.task = Some(self.serve(listener));
        Ok(())
    }

    fn serve(&self, listener: TcpListener) -> JoinHandle<()> {
        let (target, delay) = (self.target, self.delay);
        let up = self.up.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut down = up.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    if delay.is_zero() {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = down.wait_for(|up| !*up) => {}
                        }
                        return;
                    }
                    let (from_client, to_client) = inbound.into_split();
                    let (from_server, to_server) = outbound.into_split();
                    tokio::select! {
                        _ = async {
                            tokio::join!(
                                delayed_copy(from_client, to_server, delay),
                                delayed_copy(from_server, to_client, delay),
                            )
                        } => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        })
    }
}

/// Copies `from` to `to`, each piece written `delay` after it was read; reading goes on
/// meanwhile, so the delay adds latency, not a cap on throughput.
async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (pieces, mut due) = tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(1024);
    let reading = async move {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(read @ 1..) = from.read(&mut buffer).await {
            let at = tokio::time::Instant::now() + delay;
            if pieces.send((at, buffer[..read].to_vec())).await.is_err() {
                break;
            }
        }
    };
    let writing = async move {
        while let Some((at, piece)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&piece).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reading, writing);
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}
