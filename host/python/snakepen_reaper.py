"""The reaper of a snakepen pool: the parent of every process the pool
starts, and the process that makes sure none of them outlives the host.

Standard library only; Python 3.9+; Linux. The host starts it once per pool
as

    python -I -S -c <this file>

with a connected socket on file descriptor 3 (control messages) and the
read end of the host's lifeline pipe on 4. It makes itself a child
subreaper (prctl PR_SET_CHILD_SUBREAPER), so that every process started
under it whose parent dies (a handler's double-forked daemon, the workers of
a fork server that died) becomes its child instead of init's. Unlike a
worker it does not ask for SIGKILL on the lifeline: it watches it, and once
the host's end closes (the host exited, was killed, or dropped its pool) it
kills every descendant, reaps them, repeats until none is left, and exits.

Control messages use the worker protocol's frames (u32 big-endian header
length, u32 big-endian body length, a JSON header, a body):
host -> reaper: {"kind": "spawn", "id": n, "argv": [...], "env": {...},
                 "cwd": dir or null, "targets": [3, 5, 1, 2, 4]}, sent
                with one descriptor per target (SCM_RIGHTS), which becomes
                the new process's descriptor of that number (a worker's
                request and reply pipes, stdout, stderr, lifeline; the fork
                server's socket, stdout, stderr, lifeline); stdin is
                /dev/null and the process leads its own process group;
                {"kind": "reap", "pid": p} once the host has killed the
                group of process p, which ended.
reaper -> host: {"kind": "ready", "pid": p} first;
                {"kind": "spawned", "id": n, "pid": p}, or
                {"kind": "failed", "id": n, "errno": e, "message": m} when
                the process could not be started (e is the OS error number);
                {"kind": "exited", "pid": p, "code": 1} (or "signal": 9) when
                a process it spawned ends (it stays a zombie, so its pid and
                process group cannot be reused, until the host says reap).
Any other child it gains (an orphan) is reaped as soon as it ends.
"""

import ctypes
import errno
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import sys

CONTROL_FD = 3
LIFELINE_FD = 4
PR_SET_CHILD_SUBREAPER = 36
FRAME = struct.Struct(">II")


def main():
    if sys.version_info < (3, 9):
        sys.stderr.write("snakepen needs Python 3.9 or newer; this is %s\n" % sys.version.split()[0])
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.stderr.write("snakepen reaper: cannot become a child subreaper: %s\n" % os.strerror(ctypes.get_errno()))
        return 1
    # A Ctrl-C in a terminal reaches the host's whole process group: the
    # reaper must outlive the host to clean up after it, so it ignores it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Asked to stop, it stops everything it started first.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    control = socket.socket(fileno=CONTROL_FD)
    send(control, {"kind": "ready", "pid": os.getpid()})
    try:
        serve(control, wake_r)
    finally:
        kill_everything()
    return 0


def serve(control, wake):
    spawned = {}  # pidfd -> pid, for the processes the host asked for
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ, "control")
    selector.register(LIFELINE_FD, selectors.EVENT_READ, "lifeline")
    selector.register(wake, selectors.EVENT_READ, "signal")
    buffered = b""
    fds = []  # descriptors received, in order, for the spawn requests to come
    truncated = False  # some descriptors were lost: the reaper has no room for them
    while True:
        for key, _ in selector.select():
            if key.data == "lifeline":
                return  # readable only once the host's end has closed
            if key.data == "signal":
                try:
                    os.read(wake, 4096)
                except BlockingIOError:
                    pass
                reap_orphans(set(spawned.values()))
            elif key.data == "control":
                try:
                    data, received, flags = recv_with_fds(control)
                except ConnectionError:
                    return
                if not data:
                    return  # the host hung up
                fds.extend(received)
                truncated = truncated or bool(flags & socket.MSG_CTRUNC)
                buffered += data
                while len(buffered) >= FRAME.size:
                    head_len, body_len = FRAME.unpack_from(buffered)
                    end = FRAME.size + head_len + body_len
                    if len(buffered) < end:
                        break
                    header = json.loads(buffered[FRAME.size:FRAME.size + head_len])
                    buffered = buffered[end:]
                    if header["kind"] == "spawn":
                        wanted = len(header.get("targets", ()))
                        mine, fds = fds[:wanted], fds[wanted:]
                        if len(mine) < wanted and truncated:
                            reply = failed(header["id"], errno.EMFILE, "receiving the new process's descriptors")
                        else:
                            reply = spawn(header, mine)
                        truncated = False
                        for fd in mine:
                            os.close(fd)
                        if "pid" in reply:
                            try:
                                pidfd = os.pidfd_open(reply["pid"])
                            except OSError as exc:
                                os.kill(reply["pid"], signal.SIGKILL)
                                reply = failed(header["id"], exc.errno, "watching the new process")
                            else:
                                spawned[pidfd] = reply["pid"]
                                selector.register(pidfd, selectors.EVENT_READ, "child")
                        send(control, reply)
                    elif header["kind"] == "reap":
                        for pidfd, pid in list(spawned.items()):
                            if pid == header["pid"]:
                                if pidfd in selector.get_map():
                                    selector.unregister(pidfd)  # reaped before it was seen ending
                                os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
                                del spawned[pidfd]
                                os.close(pidfd)
            else:
                pidfd = key.fd
                # An event of this same batch may have reaped the process
                # already, and its descriptor may be a newer process's now.
                if pidfd not in spawned:
                    continue
                info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOWAIT | os.WNOHANG)
                if info is None:
                    continue
                selector.unregister(pidfd)
                send(control, exited(spawned[pidfd], info))


def failed(rid, code, where):
    return {"kind": "failed", "id": rid, "errno": code, "message": "%s: %s" % (where, os.strerror(code))}


def spawn(header, fds):
    """Starts one process on `fds`; the reply for the host."""
    rid = header["id"]
    targets = header.get("targets", [])
    if len(fds) != len(targets) or not {1, 2}.issubset(targets):
        return failed(rid, errno.EINVAL, "a spawn request needs a descriptor for each of its targets %r (stdout and stderr among them), got %d" % (targets, len(fds)))
    argv, env, cwd = header["argv"], header["env"], header.get("cwd")
    try:
        # The child reports why exec failed on this pipe; exec closes it.
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
    except OSError as exc:
        return failed(rid, exc.errno, "creating a pipe")
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(report_r)
        os.close(report_w)
        return failed(rid, exc.errno, "fork")
    if pid == 0:
        start_child(argv, env, cwd, list(zip(fds, targets)), report_w)  # never returns
    os.close(report_w)
    try:
        os.setpgid(pid, pid)  # also in the child: whichever runs first
    except OSError:
        pass
    with os.fdopen(report_r, "rb") as report:
        failure = report.read()
    if failure:
        os.waitpid(pid, 0)
        code, _, where = failure.decode("utf-8", "replace").partition(":")
        return failed(rid, int(code), where)
    return {"kind": "spawned", "id": rid, "pid": pid}


def start_child(argv, env, cwd, fds, report):
    """In the forked child: set up its descriptors and exec `argv`."""
    where = "setpgid"
    try:
        os.setpgid(0, 0)
        # What Python and this reaper changed goes back to what a program expects.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        where = "descriptors"
        # First all above every target, so that no dup2 overwrites a
        # descriptor still to be placed (the report pipe included).
        floor = max(target for _, target in fds) + 1
        fds = [(fcntl.fcntl(fd, fcntl.F_DUPFD, floor), target) for fd, target in fds]
        report = fcntl.fcntl(report, fcntl.F_DUPFD_CLOEXEC, floor)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, target in fds:
            os.dup2(fd, target)
        keep = sorted({0, report} | {target for _, target in fds})
        for low, high in zip(keep, keep[1:] + [os.sysconf("SC_OPEN_MAX")]):
            os.closerange(low + 1, high)
        if cwd:
            where = "cannot enter %s" % cwd
            os.chdir(cwd)
        where = "cannot run %s" % argv[0]
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        os.write(report, ("%d:%s" % (exc.errno or errno.EIO, where)).encode())
    except BaseException:
        os.write(report, ("%d:%s" % (errno.EIO, where)).encode())
    os._exit(127)


def reap_orphans(spawned):
    """Reaps the children that ended and that the host does not know of."""
    for pid, state in children(os.getpid()):
        if state == "Z" and pid not in spawned:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def kill_everything():
    """SIGKILLs every descendant and reaps them, again and again, until no
    child is left: each one that dies hands its own children to this one,
    and the next round kills those."""
    me = os.getpid()
    while True:
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return  # no child, so no descendant: nothing to look for in /proc
        for pid in descendants(me):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.waitpid(-1, 0)  # until one of them has died
        except ChildProcessError:
            return


def children(parent):
    """(pid, state) of every process whose parent is `parent`."""
    return [(pid, state) for pid, ppid, state in processes() if ppid == parent]


def descendants(root):
    tree = {}
    for pid, ppid, _ in processes():
        tree.setdefault(ppid, []).append(pid)
    found, frontier = [], [root]
    while frontier:
        for child in tree.get(frontier.pop(), ()):
            found.append(child)
            frontier.append(child)
    return found


def processes():
    """(pid, parent pid, state) of every process in /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended meanwhile
        found.append((int(entry), int(fields[1]), fields[0].decode()))
    return found


def exited(pid, info):
    """The exit report of `pid`: its exit code, or the signal that ended it."""
    report = {"kind": "exited", "pid": pid}
    if info is not None:
        report["code" if info.si_code == os.CLD_EXITED else "signal"] = info.si_status
    return report


def recv_with_fds(sock):
    fds = []
    data, ancillary, flags, _ = sock.recvmsg(1 << 16, socket.CMSG_SPACE(16 * 4))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(struct.unpack("%di" % (usable // 4), payload[:usable]))
    return data, fds, flags


def send(sock, header):
    head = json.dumps(header, separators=(",", ":")).encode()
    sock.sendall(FRAME.pack(len(head), 0) + head)


if __name__ == "__main__":
    sys.exit(main())
