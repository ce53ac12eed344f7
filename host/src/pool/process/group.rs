//! Signals to a worker's process group: every worker leads its own, so
//! one signal reaches whatever it forked too.

pub(crate) fn kill_group(pid: u32, signal: i32) {
    if pid == 0 {
        return;
    }
    // SAFETY: killpg has no memory-safety preconditions. The group id is the
    // pid of a process started as a group leader that has not been reaped,
    // or whose group may still hold its children.
    unsafe {
        libc::killpg(pid as libc::pid_t, signal);
    }
}
