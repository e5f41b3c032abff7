//! The web listener: HTTP/1 connections served with hyper's connection builder, so that a
//! stranger cannot hold the server with connections that never finish a request.
//!
//! - At most [`ListenerConfig::max_connections`] connections are served at once. The
//!   listener takes a permit before it accepts, so further connections wait in the kernel's
//!   accept backlog (and are refused by the kernel when that is full); a permit is given
//!   back when its connection closes, WebSockets included (the permit travels with the
//!   socket into the upgraded connection).
//! - A request head (the request line and headers, of the first request and of every
//!   later one on a kept-alive connection) must arrive within
//!   [`ListenerConfig::header_timeout`] of the server starting to wait for it; otherwise
//!   the connection is closed. An idle kept-alive connection is closed the same way.
//! - A request body must arrive within [`ListenerConfig::body_timeout`] of its head; a
//!   handler reading a body that does not come in time gets an error (400) and the
//!   connection closes.
//!
//! Handlers see the client's address as `ConnectInfo<SocketAddr>`. On shutdown the
//! listener stops accepting, asks every connection to finish its request in flight and
//! close, and waits for them at most [`ListenerConfig::shutdown_grace`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Bounds of the listener (`keepwatch.toml` `[limits]`).
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// A request head must arrive within this long, or the connection is closed.
    pub header_timeout: Duration,
    /// A request body must arrive within this long after its head.
    pub body_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's accept backlog.
    pub max_connections: usize,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Behind a balancer: connections come from it and start with a PROXY protocol header
    /// naming the client's address (`keepwatch-proxy`), which handlers then see.
    pub proxy: Option<keepwatch_proxy::ProxyConfig>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 512,
            shutdown_grace: Duration::from_secs(10),
            proxy: None,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled; see the module docs.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    config: ListenerConfig,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let tracker = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(config.header_timeout);
    loop {
        // The permit first: without one, connections stay in the kernel's backlog.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "web: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let body_timeout = config.body_timeout;
        let stop = shutdown.clone();
        let (http, proxy) = (http.clone(), config.proxy.clone());
        tracker.spawn(async move {
            let mut stream = stream;
            // Behind a balancer, the client is who the header names (within its timeout,
            // while this connection holds its permit).
            let peer = match &proxy {
                None => peer,
                Some(p) => match keepwatch_proxy::read_header(&mut stream, peer, p).await {
                    Ok(client) => client,
                    Err(e) => {
                        tracing::warn!(error = %e, "web: connection refused");
                        return;
                    }
                },
            };
            let io = TokioIo::new(Counted { stream, _permit: permit });
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let (mut parts, body) = req.into_parts();
                parts.extensions.insert(ConnectInfo(peer));
                let body = axum::body::Body::new(DeadlineBody::new(body, body_timeout));
                app.clone().oneshot(hyper::Request::from_parts(parts, body))
            });
            let conn = http.serve_connection(io, service).with_upgrades();
            tokio::pin!(conn);
            let r = tokio::select! {
                r = conn.as_mut() => r,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "web: connection ended");
            }
        });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(config.shutdown_grace, tracker.wait()).await.is_err() {
        tracing::warn!("web: connections still open after the shutdown grace; leaving them");
    }
}

/// A connection's socket, holding its permit until it is dropped.
struct Counted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A request body that fails once its deadline passes before it has all arrived.
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    /// Armed the first time the body is not ready (most bodies never need it).
    sleep: Option<Pin<Box<Sleep>>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        DeadlineBody { inner, deadline: Instant::now() + timeout, sleep: None }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|r| r.map_err(Into::into))),
            Poll::Pending => {
                let deadline = this.deadline;
                let sleep =
                    this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err("the request body did not arrive in time".into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
