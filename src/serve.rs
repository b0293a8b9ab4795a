//! The connection loop: hyper's connection builder with the limits a server on the internet needs and
//! axum does not offer. At most `max_connections` connections are served at once (the rest wait in the
//! kernel's accept queue, so a flood cannot exhaust file descriptors or memory), request headers are
//! capped in size (431 past the cap) and must arrive within a deadline (slow-loris), and no client can
//! hold a slot by saying nothing: every connection has a watchdog (see `supervise`). Shutdown stops
//! accepting at once, then lets every open connection finish its request.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tower::Service;

use crate::config::{ConnectionLimits, MIN_HEADER_BYTES};

/// How often an HTTP/2 connection is pinged, and how long the peer has to answer before it is
/// dropped: a peer that vanished without closing is noticed even while a request is in flight.
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(20);
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `router` on `listener` until `shutdown` completes, then waits for open connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.http2_max_streams)
        .keep_alive_interval(HTTP2_PING_INTERVAL)
        .keep_alive_timeout(HTTP2_PING_TIMEOUT);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Every connection holds a receiver: `true` asks it to close; all receivers gone means all closed.
    let (closing, _) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        // A slot first, then the connection: past the limit, new connections wait unaccepted.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small request-response exchanges: send each response at once.
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let service = tracked(router.clone(), peer, activity.clone());
        let builder = builder.clone();
        let closing = closing.subscribe();
        tokio::spawn(async move {
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service),
            );
            // Errors here are the peer's doing (reset, malformed request); hyper has answered them.
            if let Err(e) = supervise(connection, &activity, &limits, closing).await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    closing.send_replace(true);
    closing.closed().await;
    Ok(())
}

/// The router as one connection's service: each request learns the peer's address and is counted in
/// the connection's [`Activity`]. Costs two atomic updates and a clock read per request.
fn tracked(
    mut router: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
) -> impl Service<
    axum::http::Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |mut req: axum::http::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let busy = Busy::start(activity.clone());
        let response = router.call(req);
        async move {
            let response = response.await;
            drop(busy);
            response
        }
    })
}

/// What the watchdog of one connection needs to know: requests in flight, and when the last one
/// ended (milliseconds since the connection was accepted, plus one; zero is "none yet").
struct Activity {
    accepted: Instant,
    in_flight: AtomicU32,
    last_end: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            accepted: Instant::now(),
            in_flight: AtomicU32::new(0),
            last_end: AtomicU64::new(0),
        }
    }

    /// When the connection became quiet, and whether it has served a request; `None` while a request
    /// is in flight.
    fn quiet_since(&self) -> Option<(Instant, bool)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(match self.last_end.load(Ordering::Acquire) {
            0 => (self.accepted, false),
            ms => (self.accepted + Duration::from_millis(ms - 1), true),
        })
    }
}

/// One request in flight; ending it (the response head is ready) stamps the connection's activity.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        let ms = a.accepted.elapsed().as_millis() as u64 + 1;
        a.last_end.fetch_max(ms, Ordering::AcqRel);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs one connection to its end, and ends it when its client holds it without using it:
///
/// - a new connection must have its first request in within `header_read_timeout` (hyper's own header
///   deadline starts only once HTTP/1 is detected, and detection waits for bytes forever; an HTTP/2
///   connection that sent only its preface has no deadline of its own at all);
/// - a connection with no request in flight is closed `idle_timeout` after its last request ended;
/// - a closing connection (idle, or the server shutting down) gets `header_read_timeout` to finish its
///   goodbye, and as long again after its last answer once no request is in flight, then is dropped:
///   an HTTP/2 goodbye waits for the peer to answer a ping, which a hostile peer never does.
///
/// The deadline is one timer per connection, moved only when it fires, so requests never touch it.
async fn supervise<C, E>(
    connection: C,
    activity: &Activity,
    limits: &ConnectionLimits,
    mut server_closing: watch::Receiver<bool>,
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>> + GracefulShutdown,
{
    tokio::pin!(connection);
    let grace = limits.header_read_timeout;
    let first = limits.header_read_timeout.min(limits.idle_timeout);
    let deadline = tokio::time::sleep_until(activity.accepted + first);
    tokio::pin!(deadline);
    let mut closing = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => return ended,
            changed = server_closing.wait_for(|closing| *closing), if !closing => {
                // An error means the server is gone: close just the same.
                let _ = changed;
                connection.as_mut().graceful_shutdown();
                closing = true;
                deadline.as_mut().reset(Instant::now() + grace);
            }
            () = &mut deadline => {
                let now = Instant::now();
                match activity.quiet_since() {
                    // Requests end by themselves (the request timeout); look again later.
                    None => deadline.as_mut().reset(now + grace.min(limits.idle_timeout)),
                    // The last answer has had `grace` to be delivered too.
                    Some((since, _)) if closing => {
                        if now >= since + grace {
                            return Ok(());
                        }
                        deadline.as_mut().reset(since + grace);
                    }
                    Some((since, served)) => {
                        let allowed = if served {
                            limits.idle_timeout
                        } else {
                            limits.header_read_timeout
                        };
                        if now >= since + allowed {
                            connection.as_mut().graceful_shutdown();
                            closing = true;
                            deadline.as_mut().reset(now + grace);
                        } else if served {
                            deadline.as_mut().reset(since + allowed);
                        } else {
                            // A first request may end any moment; its idle time counts from then.
                            deadline
                                .as_mut()
                                .reset((since + allowed).min(now + limits.idle_timeout));
                        }
                    }
                }
            }
        }
    }
}

/// The connections [`supervise`] can close politely (hyper-util's own trait is sealed).
trait GracefulShutdown {
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>);
}

impl<I, S, E, B> GracefulShutdown for auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: auto::HttpServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        auto::UpgradeableConnection::graceful_shutdown(self);
    }
}

/// What to do when `accept` fails: a peer that gave up before we accepted is nothing; running out of
/// file descriptors or memory is logged and waited out, as axum does, instead of spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
