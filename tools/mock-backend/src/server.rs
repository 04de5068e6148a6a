//! The HTTP/1 server: the listener, one task per connection, the headers
//! every response carries, and shutdown on SIGTERM/SIGINT.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::body::MockBody;
use crate::routes;
use crate::state::{ProbeMode, State};

/// Answer one request, adding the headers every response carries:
/// `x-mock-backend: NAME` and permissive CORS.
async fn service(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    let name_header = state.name_header.clone();
    let mut resp = routes::handle(state, req).await;
    let h = resp.headers_mut();
    h.insert(HeaderName::from_static("x-mock-backend"), name_header);
    h.insert(
        HeaderName::from_static("access-control-allow-origin"),
        HeaderValue::from_static("*"),
    );
    h.insert(
        HeaderName::from_static("access-control-allow-credentials"),
        HeaderValue::from_static("true"),
    );
    Ok(resp)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serve one keep-alive connection in its own task.
fn spawn_connection(stream: TcpStream, state: Arc<State>) {
    let _ = stream.set_nodelay(true);
    tokio::spawn(async move {
        let svc = service_fn(move |req| service(state.clone(), req));
        let _ = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), svc)
            .await;
    });
}

/// Accept connections until SIGTERM or SIGINT.
async fn accept_until_shutdown(listener: TcpListener, state: Arc<State>) {
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(_) => {
                        // E.g. EMFILE: back off briefly instead of spinning.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                spawn_connection(stream, state.clone());
            }
        }
    }
}

/// Listen on `listen` as the backend `name` (listing `models`, probes
/// answering in `probe_mode`), print `mock-backend NAME listening on ADDR`
/// once ready, and serve until SIGTERM or SIGINT.
pub async fn serve(
    name: String,
    listen: SocketAddr,
    models: Vec<String>,
    probe_mode: ProbeMode,
) -> Result<(), String> {
    let name_header = HeaderValue::from_str(&name)
        .map_err(|_| format!("--name {name:?} is not a valid header value"))?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().unwrap_or(listen);
    let state = Arc::new(State::new(name, name_header, models, probe_mode));

    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "mock-backend {} listening on {addr}", state.name);
        let _ = out.flush();
    }

    accept_until_shutdown(listener, state.clone()).await;
    eprintln!("mock-backend {} shutting down", state.name);
    Ok(())
}
