//! The open-file limit and the connection cap derived from it.
//!
//! Every client connection is a file descriptor, and so is the upstream
//! connection it usually holds. Past the process's `RLIMIT_NOFILE`,
//! `accept` fails and every new client waits in the kernel's queue until
//! it times out, while the connections that exhausted the limit (slowloris
//! heads, say) hold on. So the gateway raises its soft limit to the hard
//! limit at start and caps client connections below what remains.

/// Descriptors kept for everything but client connections and their
/// upstream connections: plugin files, the watcher, logs, the listener.
pub const RESERVED_FDS: u64 = 256;

/// The open-file soft limit after raising it to the hard limit, if the OS
/// reports one (`None` = unlimited).
pub fn raise_nofile_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let lim = getrlimit(Resource::Nofile);
        if lim.current != lim.maximum {
            let raised = Rlimit {
                current: lim.maximum,
                maximum: lim.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => return lim.maximum,
                Err(e) => tracing::debug!("raising the open-file limit: {e}"),
            }
        }
        lim.current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The client-connection cap: `configured` (0 = no preference) lowered to
/// what the open-file limit `nofile` allows, at least 1.
pub fn connection_cap(configured: usize, nofile: Option<u64>) -> usize {
    let allowed = match nofile {
        Some(n) => (n.saturating_sub(RESERVED_FDS) / 2).max(1),
        None => u64::MAX,
    };
    let allowed = usize::try_from(allowed).unwrap_or(usize::MAX);
    match configured {
        0 => allowed,
        n if n > allowed => {
            tracing::warn!(
                configured = n,
                allowed,
                "server.max-connections exceeds what the open-file limit allows; lowered"
            );
            allowed
        }
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_below_the_file_limit() {
        assert_eq!(connection_cap(0, Some(1024)), 384);
        assert_eq!(connection_cap(100, Some(1024)), 100);
        assert_eq!(connection_cap(5000, Some(1024)), 384);
        assert_eq!(connection_cap(0, Some(10)), 1);
        assert_eq!(connection_cap(7, None), 7);
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        #[cfg(unix)]
        {
            let before = rustix::process::getrlimit(rustix::process::Resource::Nofile);
            let after = raise_nofile_limit();
            assert!(after >= before.current || after.is_none());
        }
    }
}
