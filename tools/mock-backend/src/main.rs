//! A fast mock OpenAI-compatible model backend.
//!
//! Used as the upstream behind Envoy in the integration tests and benchmarks.
//! Every request is recorded so tests can assert exactly what the backend
//! received (see `GET /__mock/requests`), except the control API
//! (`/__mock/*`) and the probe paths (`GET /health`, `GET /v1/models`), which
//! only health checkers call.
//!
//! Some objects are stateful, kept in memory per process (each kind capped at
//! `STORE_CAPACITY`, oldest dropped first): stored Responses API responses
//! (`GET`/`DELETE /v1/responses/{id}`), deferred chat completions
//! (`"deferred": true`, then `GET /v1/chat/deferred-completion/{id}`: 202
//! once, then 200) and video jobs (`GET /v1/videos/{id}`: `in_progress` once,
//! then `completed`).
//!
//! Usage: `mock-backend --name NAME --listen 127.0.0.1:PORT [--threads N]
//! [--models ID[,ID...]] [--probe-mode MODE]`
//!
//! The control API (JSON bodies; a bad body answers 400 with an OpenAI error
//! envelope saying what is wrong; another method or path answers 404):
//! - `GET /__mock/requests`: 200 `{"backend": NAME, "requests": [...]}`, what
//!   the backend received, oldest first; `DELETE /__mock/requests`: 204,
//!   forget it.
//! - `GET /__mock/health`: 200 `{"backend": NAME}`.
//! - `GET /__mock/models`: 200 `{"models": [ID, ...]}`; `PUT /__mock/models`
//!   with `{"models": [ID, ...]}` (each a non-empty string, the list may be
//!   empty): 204, the ids `GET /v1/models` lists from now on (initially
//!   `--models`, default `mock`).
//! - `GET /__mock/probe`: 200 `{"mode": MODE}`; `PUT /__mock/probe` with
//!   `{"mode": MODE}`: 204, how the probe paths answer from now on (initially
//!   `--probe-mode`, default `ok`).
//!
//! The probe paths, `GET /health` (`{"status": "ok"}`) and `GET /v1/models`
//! (`{"object": "list", "data": [{"id": ID, "object": "model", "created": 0,
//! "owned_by": NAME}, ...]}`), ignore `x-mock-status` and answer by the probe
//! mode current when the request arrives; every other endpoint ignores the
//! mode:
//! - `ok`: 200 with that document;
//! - `hang`: no answer, the connection held open until the client leaves
//!   (setting another mode does not release probes already hanging);
//! - `garbage`: 200, `application/json`, body `<html>not json`;
//! - `error`: 503 with an OpenAI error envelope (`server_error`);
//! - `huge`: 200 with that document plus a `padding` string of 4 MiB of
//!   `x`;
//! - `slow`: as `ok`, after 3 seconds.
//!
//! Request headers that change how the other endpoints answer (values are
//! trimmed; a value that does not parse is ignored):
//! - `x-mock-status: CODE`: answer CODE with an OpenAI error envelope instead
//!   of the endpoint's response.
//! - `x-mock-delay-ms: N`: wait N ms (at most a minute) before answering.
//! - `x-mock-stream-delay-ms: N`: wait N ms between stream events;
//!   `x-mock-stream-cut-after: N`: end the stream cleanly after N events
//!   (no `[DONE]`); `x-mock-stream-reset-after: N`: abort the connection
//!   after N events.
//! - `x-mock-completion-tokens: N` (u64): the usage reports N completion
//!   tokens (`usage.completion_tokens` of chat and legacy completions,
//!   `usage.output_tokens` of the Responses API; JSON bodies, the streamed
//!   usage chunk and `response.completed`), the total prompt + N, whatever
//!   the content.
//! - `x-mock-usage: MODE`: a broken usage for chat and legacy completions
//!   (JSON and the streamed usage chunk), the Responses API (`input_tokens`,
//!   `output_tokens`) and embeddings (prompt count as the total); it wins
//!   over `x-mock-completion-tokens`, an unknown MODE is ignored:
//!   - `missing`: no `usage` member (no usage chunk even with
//!     `stream_options.include_usage`; `usage: null` in a Responses API
//!     response and its `response.completed` event);
//!   - `negative`: prompt -5, completion -7, total -12;
//!   - `absurd`: prompt 10^15, completion 10^15, total 2×10^15;
//!   - `fractional`: prompt 12.5, completion 3.25, total 15.75;
//!   - `string`: the counts as JSON strings, `"12"`, `"3"`, `"15"`.
//!
//! Modules: `server` (listener, connections, common headers), `routes`
//! (routing, recording, `x-mock-delay-ms`, `x-mock-status`), `control` (`/__mock/*`), `probe`
//! (the probe paths), one module per endpoint family (`chat`, `responses`,
//! `embeddings`, `media`), `sse` (event streams and their pacing headers),
//! `usage` (`x-mock-completion-tokens`, `x-mock-usage`), `reply` (response
//! and error builders), `state` (recorded requests, stored objects, listed
//! models, probe mode), `body` (the response body type) and `common`
//! (request fields, clock, base64).

mod body;
mod chat;
mod common;
mod control;
mod embeddings;
mod media;
mod probe;
mod reply;
mod responses;
mod routes;
mod server;
mod sse;
mod state;
mod usage;

use std::net::SocketAddr;
use std::time::Duration;

use state::ProbeMode;

#[derive(Debug, PartialEq)]
struct Args {
    name: String,
    listen: SocketAddr,
    threads: usize,
    models: Vec<String>,
    probe_mode: ProbeMode,
}

const USAGE: &str = "usage: mock-backend --name NAME --listen ADDR:PORT [--threads N] \
[--models ID[,ID...]] [--probe-mode ok|hang|garbage|error|huge|slow]";

/// The arguments after the program name, as `Args`.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut name = None;
    let mut listen = None;
    let mut threads = 2usize;
    let mut models = vec!["mock".to_string()];
    let mut probe_mode = ProbeMode::Ok;
    let mut it = args.into_iter();
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
            "--models" => models = parse_models(&value("--models")?)?,
            "--probe-mode" => {
                probe_mode = value("--probe-mode")?
                    .parse()
                    .map_err(|e| format!("bad --probe-mode: {e}"))?
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        name: name.ok_or("--name is required")?,
        listen: listen.ok_or("--listen is required")?,
        threads,
        models,
        probe_mode,
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

/// `--models`: ids separated by commas, each trimmed and non-empty.
fn parse_models(v: &str) -> Result<Vec<String>, String> {
    v.split(',')
        .map(|id| {
            let id = id.trim();
            if id.is_empty() {
                Err(format!("bad --models value {v:?}: empty model id"))
            } else {
                Ok(id.to_string())
            }
        })
        .collect()
}

fn main() {
    let args = match parse_args(std::env::args().skip(1)) {
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
    let result = runtime.block_on(server::serve(
        args.name,
        args.listen,
        args.models,
        args.probe_mode,
    ));
    // Don't wait for open keep-alive connections or streams.
    runtime.shutdown_timeout(Duration::from_millis(100));
    if let Err(e) = result {
        eprintln!("mock-backend: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args(args.iter().map(|a| a.to_string()))
    }

    fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 18931))
    }

    #[test]
    fn defaults() {
        assert_eq!(
            parse(&["--name", "b1", "--listen", "127.0.0.1:18931"]),
            Ok(Args {
                name: "b1".to_string(),
                listen: listen(),
                threads: 2,
                models: vec!["mock".to_string()],
                probe_mode: ProbeMode::Ok,
            })
        );
    }

    #[test]
    fn every_flag_separate_or_inline() {
        let expected = Ok(Args {
            name: "b1".to_string(),
            listen: listen(),
            threads: 1,
            models: vec!["a".to_string(), "b-2".to_string(), "c".to_string()],
            probe_mode: ProbeMode::Hang,
        });
        assert_eq!(
            parse(&[
                "--name",
                "b1",
                "--listen",
                "127.0.0.1:18931",
                "--threads",
                "1",
                "--models",
                "a,b-2, c",
                "--probe-mode",
                "hang",
            ]),
            expected
        );
        assert_eq!(
            parse(&[
                "--name=b1",
                "--listen=127.0.0.1:18931",
                "--threads=1",
                "--models=a,b-2, c",
                "--probe-mode=hang",
            ]),
            expected
        );
        assert_eq!(
            parse(&["--name=b1", "--listen=127.0.0.1:18931", "--models", "only"]).map(|a| a.models),
            Ok(vec!["only".to_string()])
        );
    }

    #[test]
    fn bad_arguments() {
        let base = ["--name", "b1", "--listen", "127.0.0.1:18931"];
        let with = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            parse(&args).err()
        };
        for (extra, error) in [
            (
                &["--models", ""][..],
                r#"bad --models value "": empty model id"#,
            ),
            (
                &["--models", "a,,b"],
                r#"bad --models value "a,,b": empty model id"#,
            ),
            (
                &["--models", "a, "],
                r#"bad --models value "a, ": empty model id"#,
            ),
            (&["--models"], "--models needs a value"),
            (
                &["--probe-mode", "nap"],
                r#"bad --probe-mode: unknown probe mode "nap"; expected one of: ok, hang, garbage, error, huge, slow"#,
            ),
            (&["--probe-mode"], "--probe-mode needs a value"),
            (&["--threads", "0"], r#"bad --threads value "0""#),
            (&["--bogus"], r#"unknown argument "--bogus""#),
        ] {
            assert_eq!(with(extra), Some(error.to_string()), "{extra:?}");
        }
        assert_eq!(
            parse(&["--listen", "127.0.0.1:1"]).err(),
            Some("--name is required".to_string())
        );
        assert_eq!(
            parse(&["--name", "b1"]).err(),
            Some("--listen is required".to_string())
        );
        assert!(parse(&["--name", "b1", "--listen", "nowhere"])
            .err()
            .is_some_and(|e| e.starts_with(r#"bad --listen address "nowhere": "#)));
        assert_eq!(parse(&["-h"]).err(), Some(USAGE.to_string()));
    }
}
