//! The process's open-file limit, and the connection cap it allows (issue 11, security
//! finding 1). Every connection holds a file descriptor; so do the database, its journal and
//! the log files. A server that runs out of descriptors cannot accept anyone, so `touchmark
//! serve` raises its soft limit to the hard one, and caps its connections below what remains
//! after a reserve.

/// Connections a server allows unless configured, whatever its open-file limit: plenty for a
/// factory's stations and its admins, and a bound on the memory idle connections hold.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// The open-file limit in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit now: what the process may open.
    pub limit: u64,
    /// The soft limit before it was raised, when it was.
    pub raised_from: Option<u64>,
}

/// Descriptors kept for what is not a client connection: the database (SQLite's file, journal
/// and readers, or PostgreSQL's pool), the listening socket, the runtime, standard streams and
/// log files. An eighth of the limit, at least 64.
pub fn reserved_files(limit: u64) -> u64 {
    (limit / 8).max(64)
}

/// The connections a limit of `limit` open files leaves room for, after the reserve.
pub fn connections_for(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(reserved_files(limit)))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// Raises the soft limit on open files (`RLIMIT_NOFILE`) to the hard limit, and returns the
/// limit in force afterwards. Where the hard limit is unlimited, it asks for 1,048,576.
///
/// # Errors
/// When the limit cannot be read. A limit that cannot be raised is not an error: the one in
/// force is returned.
#[cfg(unix)]
pub fn raise_open_file_limit() -> std::io::Result<OpenFiles> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    const UNLIMITED_TARGET: u64 = 1 << 20;
    let before = getrlimit(Resource::Nofile);
    let soft = before.current.unwrap_or(u64::MAX);
    let target = before.maximum.unwrap_or(UNLIMITED_TARGET).max(soft);
    if target == soft {
        return Ok(OpenFiles {
            limit: soft,
            raised_from: None,
        });
    }
    let raised = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: before.maximum,
        },
    );
    match raised {
        Ok(()) => Ok(OpenFiles {
            limit: getrlimit(Resource::Nofile).current.unwrap_or(target),
            raised_from: Some(soft),
        }),
        Err(e) => {
            tracing::warn!(error = %e, limit = soft, "the open-file limit could not be raised");
            Ok(OpenFiles {
                limit: soft,
                raised_from: None,
            })
        }
    }
}

/// Elsewhere the limit is left as it is, and taken to be the default cap's worth.
///
/// # Errors
/// None.
#[cfg(not(unix))]
pub fn raise_open_file_limit() -> std::io::Result<OpenFiles> {
    Ok(OpenFiles {
        limit: DEFAULT_MAX_CONNECTIONS as u64,
        raised_from: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_an_eighth_and_at_least_64() {
        for (limit, connections) in [(256, 192), (1024, 896), (20_000, 17_500), (10, 1)] {
            assert_eq!(connections_for(limit), connections, "limit {limit}");
        }
    }
}
