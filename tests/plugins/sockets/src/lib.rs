//! Connects to the `ip:port` given as the output text and writes `hello`;
//! transforms to `connected` or rejects with `net_error`. It imports
//! `wasi:sockets`, so it only loads with a `sockets` grant.
use std::io::Write;

use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};

struct Sockets;

impl Guardrail for Sockets {
    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }
    fn check_output(_req: &Request, output: String, _ctx: OutputContext) -> Verdict {
        let addr: std::net::SocketAddr = match output.trim().parse() {
            Ok(a) => a,
            Err(e) => return Verdict::reject("net_error", e.to_string()),
        };
        match std::net::TcpStream::connect(addr).and_then(|mut s| s.write_all(b"hello")) {
            Ok(()) => Verdict::transform("connected"),
            Err(e) => Verdict::reject("net_error", e.to_string()),
        }
    }
}

sluice_sdk::export_guardrail!(Sockets);
