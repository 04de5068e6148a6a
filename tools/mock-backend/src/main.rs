//! A fast mock OpenAI-compatible model backend.
//!
//! Used as the upstream behind Envoy in the integration tests and benchmarks.
//! Every request (except `/__mock/*`) is recorded so tests can assert exactly
//! what the backend received; see `GET /__mock/requests`.
//!
//! Some objects are stateful, kept in memory per process (each kind capped at
//! `STORE_CAPACITY`, oldest dropped first): stored Responses API responses
//! (`GET`/`DELETE /v1/responses/{id}`), deferred chat completions
//! (`"deferred": true`, then `GET /v1/chat/deferred-completion/{id}`: 202
//! once, then 200) and video jobs (`GET /v1/videos/{id}`: `in_progress` once,
//! then `completed`).
//!
//! Usage: `mock-backend --name NAME --listen 127.0.0.1:PORT [--threads N]`
//!
//! Modules: `server` (listener, connections, common headers), `routes`
//! (routing, recording, `x-mock-status`), `control` (`/__mock/*`), one module
//! per endpoint family (`chat`, `responses`, `embeddings`, `media`), `sse`
//! (event streams and their pacing headers), `reply` (response and error
//! builders), `state` (recorded requests and stored objects), `body` (the
//! response body type) and `common` (request fields, clock, base64).

mod body;
mod chat;
mod common;
mod control;
mod embeddings;
mod media;
mod reply;
mod responses;
mod routes;
mod server;
mod sse;
mod state;

use std::net::SocketAddr;
use std::time::Duration;

struct Args {
    name: String,
    listen: SocketAddr,
    threads: usize,
}

const USAGE: &str = "usage: mock-backend --name NAME --listen ADDR:PORT [--threads N]";

fn parse_args() -> Result<Args, String> {
    let mut name = None;
    let mut listen = None;
    let mut threads = 2usize;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |flag: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--name" => name = Some(value("--name")?),
            "--listen" => listen = Some(parse_listen(&value("--listen")?)?),
            "--threads" => threads = parse_threads(&value("--threads")?)?,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        name: name.ok_or("--name is required")?,
        listen: listen.ok_or("--listen is required")?,
        threads,
    })
}

fn parse_listen(v: &str) -> Result<SocketAddr, String> {
    v.parse::<SocketAddr>()
        .map_err(|e| format!("bad --listen address {v:?}: {e}"))
}

fn parse_threads(v: &str) -> Result<usize, String> {
    v.parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("bad --threads value {v:?}"))
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mock-backend: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mock-backend: cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(server::serve(args.name, args.listen));
    // Don't wait for open keep-alive connections or streams.
    runtime.shutdown_timeout(Duration::from_millis(100));
    if let Err(e) = result {
        eprintln!("mock-backend: {e}");
        std::process::exit(1);
    }
}
