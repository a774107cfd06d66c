//! The open-file limit of the agent and of the HAProxy processes it starts (they inherit it).
//!
//! HAProxy needs about 2.5 descriptors per connection of its global `maxconn` (two sockets,
//! plus splice pipes) and, with its default `strict-limits`, refuses to start when it cannot
//! raise its own limit that far: under a hard limit of 20 000, `maxconn 50000` fails with
//! "Cannot raise FD limit to 125031, limit is 20000" although `haproxy -c` accepts the file.
//! Only the hard limit matters to HAProxy (it raises its soft limit itself); the agent raises
//! its soft limit to the hard one at start so that it and every child get what the host grants,
//! and logs both so an operator can see which global `maxconn` fits.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// `RLIMIT_NOFILE` before and after [`raise_nofile_limit`]; `None` is "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit the process started with.
    pub soft_before: Option<u64>,
    /// The soft limit now.
    pub soft: Option<u64>,
    /// The hard limit (unchanged: raising it needs `CAP_SYS_RESOURCE`).
    pub hard: Option<u64>,
}

/// The current `RLIMIT_NOFILE` (soft, hard).
pub fn nofile_limit() -> (Option<u64>, Option<u64>) {
    let limit = getrlimit(Resource::Nofile);
    (limit.current, limit.maximum)
}

/// Raises the soft `RLIMIT_NOFILE` of this process to its hard limit.
pub fn raise_nofile_limit() -> std::io::Result<NofileLimit> {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    if current != maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: maximum,
                maximum,
            },
        )?;
    }
    let (soft, hard) = nofile_limit();
    Ok(NofileLimit {
        soft_before: current,
        soft,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = nofile_limit();
        let Some(hard) = hard else {
            eprintln!("skipping: the hard open-file limit is unlimited");
            return;
        };
        let lowered = (hard / 2).max(64).min(hard);
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(lowered),
                maximum: Some(hard),
            },
        )
        .expect("lower the soft limit");
        let limit = raise_nofile_limit().expect("raise");
        assert_eq!(
            limit,
            NofileLimit {
                soft_before: Some(lowered),
                soft: Some(hard),
                hard: Some(hard),
            }
        );
        assert_eq!(nofile_limit(), (Some(hard), Some(hard)));
    }
}
