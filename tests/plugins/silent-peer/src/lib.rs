//! Connects to the `ip:port` given as the output text and reads until the
//! peer closes: against a peer that never answers, the read is a host call
//! that only the deadline can cut short. Transforms to what it read, or
//! rejects with `net_error`.
use std::io::Read;

use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};

struct SilentPeer;

impl Guardrail for SilentPeer {
    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }
    fn check_output(_req: &Request, output: String, _ctx: OutputContext) -> Verdict {
        let read = output
            .trim()
            .parse::<std::net::SocketAddr>()
            .map_err(|e| e.to_string())
            .and_then(|addr| {
                let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
                let mut got = String::new();
                s.read_to_string(&mut got).map_err(|e| e.to_string())?;
                Ok(got)
            });
        match read {
            Ok(got) => Verdict::transform(got),
            Err(e) => Verdict::reject("net_error", e),
        }
    }
}

sluice_sdk::export_guardrail!(SilentPeer);
