//! `FaultProxy`: a TCP forwarder that pauses, slows down or cuts the link to a server on command.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The most bytes forwarded at once: with [`FaultProxy::delay`], a connection moves at most this
/// many bytes per delay.
pub const CHUNK: usize = 4096;

/// A forwarder on `127.0.0.1:<free port>` in front of one upstream address.
///
/// Every accepted connection opens its own connection upstream; bytes are forwarded in chunks of
/// at most [`CHUNK`] bytes, both ways. [`FaultProxy::pause`] stops forwarding while keeping the
/// connections open ("the server hangs"), [`FaultProxy::delay`] makes every chunk wait ("the
/// server is slow"), [`FaultProxy::cut`] closes every connection and refuses new ones ("the
/// server is down"). Its tasks stop when it is dropped.
pub struct FaultProxy {
    address: SocketAddr,
    control: Arc<Control>,
    acceptor: JoinHandle<()>,
}

struct Control {
    upstream: String,
    paused: watch::Sender<bool>,
    delay_nanos: AtomicU64,
    cut: AtomicBool,
    connections: Mutex<JoinSet<()>>,
    to_client: AtomicU64,
    to_upstream: AtomicU64,
}

impl Control {
    fn connections(&self) -> MutexGuard<'_, JoinSet<()>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn delay(&self) -> Duration {
        Duration::from_nanos(self.delay_nanos.load(Ordering::SeqCst))
    }
}

impl FaultProxy {
    /// A proxy in front of `upstream` (`host:port`), forwarding until told otherwise.
    ///
    /// # Panics
    /// When no local port is free.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free local port");
        let address = listener.local_addr().expect("a bound address");
        let control = Arc::new(Control {
            upstream: upstream.to_owned(),
            paused: watch::Sender::new(false),
            delay_nanos: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            connections: Mutex::new(JoinSet::new()),
            to_client: AtomicU64::new(0),
            to_upstream: AtomicU64::new(0),
        });
        let acceptor = tokio::spawn(accept(listener, Arc::clone(&control)));
        Self {
            address,
            control,
            acceptor,
        }
    }

    /// Where clients connect.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `redis://127.0.0.1:<port>`: a Redis URL through this proxy.
    #[must_use]
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.address)
    }

    /// Stops forwarding bytes (both ways, on every connection, new ones too); connections stay
    /// open and what they send is held until [`FaultProxy::resume`].
    pub fn pause(&self) {
        self.control.paused.send_replace(true);
    }

    /// Forwards again, held bytes first.
    pub fn resume(&self) {
        self.control.paused.send_replace(false);
    }

    /// Makes every chunk wait `delay` before it is forwarded (`Duration::ZERO`: no more delay).
    pub fn delay(&self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.control.delay_nanos.store(nanos, Ordering::SeqCst);
    }

    /// Closes every open connection, and closes new ones as soon as they are accepted, until
    /// [`FaultProxy::restore`].
    pub fn cut(&self) {
        self.control.cut.store(true, Ordering::SeqCst);
        self.control.connections().abort_all();
    }

    /// Accepts and forwards again, without pause or delay.
    pub fn restore(&self) {
        self.delay(Duration::ZERO);
        self.resume();
        self.control.cut.store(false, Ordering::SeqCst);
    }

    /// Bytes forwarded from upstream to clients so far.
    #[must_use]
    pub fn bytes_to_clients(&self) -> u64 {
        self.control.to_client.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from clients to upstream so far.
    #[must_use]
    pub fn bytes_to_upstream(&self) -> u64 {
        self.control.to_upstream.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.control.connections().abort_all();
    }
}

async fn accept(listener: TcpListener, control: Arc<Control>) {
    while let Ok((client, _)) = listener.accept().await {
        // Checked under the lock that `cut` takes to abort: no connection slips through a cut.
        let mut connections = control.connections();
        if control.cut.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        // Forget the connections that ended.
        while connections.try_join_next().is_some() {}
        connections.spawn(forward(client, Arc::clone(&control)));
    }
}

/// Forwards between `client` and a new connection upstream until either side closes.
async fn forward(client: TcpStream, control: Arc<Control>) {
    let Ok(upstream) = TcpStream::connect(&control.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    tokio::select! {
        () = pump(client_read, upstream_write, &control, &control.to_upstream) => {}
        () = pump(upstream_read, client_write, &control, &control.to_client) => {}
    }
}

/// Copies chunks from `from` to `to`, honouring pause and delay, until either fails or closes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: &Control,
    counter: &AtomicU64,
) {
    let mut paused = control.paused.subscribe();
    let mut buffer = vec![0; CHUNK];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let delay = control.delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if paused.wait_for(|paused| !paused).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
        counter.fetch_add(read as u64, Ordering::SeqCst);
    }
}
