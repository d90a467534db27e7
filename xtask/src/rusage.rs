//! Reaping a child with `wait4` to read its own resource usage (peak RSS).
//!
//! `getrusage(RUSAGE_CHILDREN)` reports the maximum over every child ever reaped, so it cannot tell one
//! run from the next; `wait4` on the child's pid returns that child's usage alone. This is the only
//! unsafe code in xtask.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};

/// What `wait4` reports about a finished child.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reaped {
    /// How the child ended.
    pub(crate) status: ExitStatus,
    /// The child's peak resident set size in KiB (`ru_maxrss`; Linux reports KiB).
    pub(crate) max_rss_kib: u64,
}

/// Waits for `child` to end and reaps it with `wait4`, returning its exit status and peak RSS.
///
/// The child is reaped here: do not call `Child::wait` on it afterwards.
pub(crate) fn wait_with_rusage(child: &Child) -> io::Result<Reaped> {
    let pid = libc::pid_t::try_from(child.id())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "child pid out of range"))?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a plain C struct of integers (and `timeval`s of integers); all-zero is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid, exclusively borrowed out-parameters for the call;
        // `pid` is our own unreaped child (std's `Child` never reaps implicitly).
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if reaped == -1 && err.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return Err(err);
    }
    Ok(Reaped {
        status: ExitStatus::from_raw(status),
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    #[allow(clippy::zombie_processes)] // reaped by `wait_with_rusage`
    fn reports_status_and_rss() {
        let child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let reaped = wait_with_rusage(&child).unwrap();
        assert_eq!(reaped.status.code(), Some(3));
        assert!(reaped.max_rss_kib > 0);
    }
}
