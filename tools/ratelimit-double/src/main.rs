//! A test double of Envoy's global rate-limit service
//! (`envoy.service.ratelimit.v3.RateLimitService`) that behaves like
//! envoyproxy/ratelimit with an in-memory counter store instead of Redis.
//!
//! Limits use envoyproxy/ratelimit's configuration document, as JSON. A small
//! HTTP/1 control API lets tests replace the limits, reset counters, make the
//! service fail or slow down, and read back every request received.
//!
//! Usage: `ratelimit-double --grpc ADDR --http ADDR [--config FILE]`

mod control;
mod limits;
mod service;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

use crate::limits::Limits;
use crate::service::{RateLimitDouble, Shared};

const USAGE: &str =
    "usage: ratelimit-double --grpc HOST:PORT --http HOST:PORT [--config FILE.json]";

struct Args {
    grpc: SocketAddr,
    http: SocketAddr,
    config: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut grpc = None;
    let mut http = None;
    let mut config = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--grpc" | "--http" => {
                let v = value(&arg)?;
                let addr: SocketAddr = v
                    .parse()
                    .map_err(|e| format!("{arg} {v:?}: not HOST:PORT ({e})"))?;
                if arg == "--grpc" {
                    grpc = Some(addr);
                } else {
                    http = Some(addr);
                }
            }
            "--config" => config = Some(value(&arg)?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        grpc: grpc.ok_or("--grpc is required")?,
        http: http.ok_or("--http is required")?,
        config,
    })
}

async fn shutdown_signal() {
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

async fn serve_http(listener: TcpListener, shared: Shared, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // E.g. EMFILE: back off briefly instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| control::handle(shared.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let limits = match &args.config {
        None => Limits::default(),
        Some(path) => {
            let text = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
            Limits::parse(&text).map_err(|e| format!("{path}: {e}"))?
        }
    };
    let shared = Shared::new(limits);

    let grpc_listener = TcpListener::bind(args.grpc)
        .await
        .map_err(|e| format!("cannot listen on {} (grpc): {e}", args.grpc))?;
    let grpc_addr = grpc_listener.local_addr().unwrap_or(args.grpc);
    let http_listener = TcpListener::bind(args.http)
        .await
        .map_err(|e| format!("cannot listen on {} (http): {e}", args.http))?;
    let http_addr = http_listener.local_addr().unwrap_or(args.http);

    let (stop_tx, stop_rx) = watch::channel(false);
    let http_task = tokio::spawn(serve_http(http_listener, shared.clone(), stop_rx.clone()));

    let mut grpc_stop = stop_rx;
    let incoming = TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
    let grpc_task = tokio::spawn(
        tonic::transport::Server::builder().serve_with_incoming_shutdown(
            RateLimitServiceServer::new(RateLimitDouble {
                shared: shared.clone(),
            }),
            incoming,
            async move {
                let _ = grpc_stop.changed().await;
            },
        ),
    );

    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "ratelimit-double grpc on {grpc_addr} http on {http_addr}"
        );
        let _ = out.flush();
    }

    shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = http_task.await;
    // Open gRPC streams (e.g. a slow-mode call) get a moment to finish.
    if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(2), grpc_task).await {
        eprintln!("ratelimit-double: grpc server: {e}");
    }
    eprintln!("ratelimit-double shutting down");
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ratelimit-double: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ratelimit-double: cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(run(args));
    runtime.shutdown_timeout(Duration::from_millis(100));
    if let Err(e) = result {
        eprintln!("ratelimit-double: {e}");
        std::process::exit(1);
    }
}
