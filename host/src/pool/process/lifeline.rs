//! The lifeline: a pipe whose write end only the host holds and whose read
//! end a Python process (worker or fork server) holds at fd 4, armed to
//! receive SIGKILL from the kernel when the write end closes (`O_ASYNC`
//! with `F_SETSIG`; the worker arms it on itself at start).
//!
//! The write end closes when its [`Lifeline`] is dropped, or when the host
//! process ends however it ends (`kill -9` included). Unlike a parent-death
//! signal it does not depend on who the process's parent is (a forked
//! worker's parent is the fork server, which may die while the worker must
//! live) nor on which host thread spawned it (`PR_SET_PDEATHSIG` fires when
//! that thread exits). Unlike a watcher thread it needs no Python code to
//! run, so a worker stuck in C code that holds the GIL dies at once too.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The descriptor a Python process finds its end of the lifeline on.
pub(crate) const LIFELINE_FD: RawFd = 4;

/// The host's end of one process's lifeline: dropping it kills the process.
pub(crate) struct Lifeline {
    _write: OwnedFd,
}

impl Lifeline {
    /// A new lifeline and the read end to hand to the process (the only
    /// copy of the write end stays here, close-on-exec, so no other child
    /// inherits it past its `exec`).
    pub(crate) fn new() -> std::io::Result<(Lifeline, OwnedFd)> {
        let (read, write) = pipe()?;
        Ok((Lifeline { _write: write }, read))
    }
}

/// A pipe, both ends close-on-exec: (read end, write end).
pub(crate) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets `O_NONBLOCK` on `fd`.
pub(crate) fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
