//! GETs the `http://host:port/path` given as the output text over
//! `wasi:http` and transforms the output to `<status> <body>`, or rejects
//! with `http_error` and the error. It imports `wasi:http`, so it only loads
//! with an `http` grant, and only the granted hosts answer.
use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

struct Http;

impl Guardrail for Http {
    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }
    fn check_output(_req: &Request, output: String, _ctx: OutputContext) -> Verdict {
        match get(output.trim()) {
            Ok((status, body)) => Verdict::transform(format!("{status} {body}")),
            Err(e) => Verdict::reject("http_error", e),
        }
    }
}

fn get(url: &str) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http:// URL: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let req = OutgoingRequest::new(Fields::new());
    req.set_scheme(Some(&Scheme::Http))
        .map_err(|()| "bad scheme")?;
    req.set_authority(Some(authority))
        .map_err(|()| format!("bad authority {authority}"))?;
    req.set_path_with_query(Some(path))
        .map_err(|()| format!("bad path {path}"))?;
    let pending = outgoing_handler::handle(req, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let resp = pending
        .get()
        .ok_or("no response after the pollable was ready")?
        .map_err(|()| "response taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status();
    let body = resp.consume().map_err(|()| "body taken twice")?;
    let stream = body.stream().map_err(|()| "body stream taken twice")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(4096) {
            Ok(chunk) => bytes.extend(chunk),
            Err(StreamError::Closed) => break,
            Err(e) => return Err(format!("reading the body: {e:?}")),
        }
    }
    // Child resources go before their parents.
    drop(stream);
    drop(body);
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

sluice_sdk::export_guardrail!(Http);
