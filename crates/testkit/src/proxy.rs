//! A TCP relay on 127.0.0.1 that a test can cut and restore, to play a network drop between a
//! browser and the server without touching either.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Relays `127.0.0.1:<port>` to a target while up; when cut, drops every connection and refuses
/// new ones until restored on the same port.
#[derive(Debug)]
pub struct Relay {
    port: u16,
    target: SocketAddr,
    up: Arc<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    pub async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let mut relay = Self {
            port,
            target,
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
        let target = self.target;
        let up = self.up.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut down = up.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}
