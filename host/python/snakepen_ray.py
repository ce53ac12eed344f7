"""snakepen's Ray driver: the host's workers as actors of a Ray cluster.

The host runs this program with an interpreter that has `ray`, its frames
on fd 3 (from the host; the first is its configuration) and fd 5 (to the
host), and the read end of its lifeline on fd 4 (the kernel kills this process when the host's end
closes). It connects to the cluster as a normal driver (`ray.init(address=...)`),
and every worker of the pool is one actor it owns: Ray ends the actors when
their owner ends, so nothing of the host outlives it in the cluster.

An actor runs snakepen's own worker program as its child, on the actor's
node: the worker serves the module exactly as a local one does (payloads,
streams, many calls at once, cancels, `ping`/`info`, printed output). Its
frames go straight to the host: the actor connects to the address the host
listens on (given with `start`, with a token the host checks), and hands
the connection to the worker as its fd 3 and fd 5. Where the actor cannot
reach the host (or the host asked for it), the actor holds the worker's
pipes instead and its frames are relayed through this driver: slower, but
it needs nothing from the network that Ray itself does not.

Frames between host and driver are the workers' own format (u32 header
length, u32 body length, a JSON header, the body). The host sends
`{"op":"start"|"send"|"kill"|"stop","w":ID}` (a `start` may carry `connect`,
the host's address and the worker's token; a `send` carries worker frames
as its body); the driver sends `{"op":"hello"|"failed"}` once, then
`{"op":"placed"|"data"|"log"|"ended","w":ID}` (`placed` says whether the
worker's frames go straight to the host; a `data` carries one worker frame
as its body).

Standard library only, beside `ray` itself.
"""

import asyncio
import fcntl
import json
import os
import select
import signal
import struct
import sys

FROM_HOST_FD = 3
LIFELINE_FD = 4
TO_HOST_FD = 5
F_SETSIG = 10
FRAME = struct.Struct(">II")
READ_BYTES = 64 << 10


def frame(header, body=b""):
    head = json.dumps(header, separators=(",", ":")).encode()
    return FRAME.pack(len(head), len(body)) + head + body


def split_frames(buffer):
    """The whole frames at the start of `buffer` (a bytearray), removed from it."""
    frames = []
    at = 0
    while len(buffer) - at >= 8:
        # struct.unpack_from, not FRAME: the actor's code travels by pickle.
        header_len, body_len = struct.unpack_from(">II", buffer, at)
        end = at + 8 + header_len + body_len
        if len(buffer) < end:
            break
        frames.append(bytes(buffer[at:end]))
        at = end
    if at:
        del buffer[:at]
    return frames


def is_final(worker_frame):
    """Whether a worker's frame ends a request (a reply, or the handshake),
    rather than a chunk or a notice."""
    header_len = FRAME.unpack_from(worker_frame, 0)[0]
    header = worker_frame[8:8 + header_len]
    return b'"chunk":true' not in header and b'"uncancellable"' not in header


def connect_to_host(connect):
    """A connection to the host at `connect["address"]` that it accepted
    as this worker's, or None and why not."""
    import socket
    host, port = connect["address"]
    try:
        link = socket.create_connection((host, port), timeout=5)
        link.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link.settimeout(None)
        hello = json.dumps({"w": connect["w"], "token": connect["token"]}).encode()
        # struct.pack with its format, not FRAME: this travels by pickle.
        link.sendall(struct.pack(">II", len(hello), 0) + hello)
        return link, None
    except OSError as exc:
        return None, "cannot reach the host at %s:%s (%s)" % (host, port, exc)


class Relay:
    """One worker of the pool, as a Ray actor: snakepen's worker program as
    its child, and its frames relayed. An async actor: `exchange` and
    `push` write the host's frames in the order the driver numbered them,
    `exchange` then waits for the worker's frames; `output` waits for the
    lines the worker printed."""

    def __init__(self, source, argv, env, connect):
        import subprocess
        link, self.why = (None, None)
        if connect:
            link, self.why = connect_to_host(connect)
        self.direct = link is not None
        if self.direct:
            # The worker's frames go straight to the host, over `link`.
            requests_read = replies_write = link.detach()
            self.requests = self.replies = None
        else:
            requests_read, self.requests = os.pipe()
            self.replies, replies_write = os.pipe()
        lifeline_read, self.lifeline = os.pipe()

        def place():
            os.dup2(requests_read, 3)
            os.dup2(lifeline_read, 4)
            os.dup2(replies_write, 5)
            os.setpgid(0, 0)

        environment = dict(os.environ)
        environment.update(env)
        self.child = subprocess.Popen(
            [sys.executable, "-u", "-c", source] + argv,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=place, close_fds=True, pass_fds=(3, 4, 5, requests_read, replies_write, lifeline_read),
            env=environment)
        for fd in {requests_read, replies_write, lifeline_read}:
            os.close(fd)
        if not self.direct:
            os.set_blocking(self.requests, False)
            os.set_blocking(self.replies, False)
        self.buffer = bytearray()
        self.frames = []
        self.ended = None
        self.lines = []
        self.next_seq = 0
        self.waiting = {}
        self.started = False

    def where(self):
        import ray
        context = ray.get_runtime_context()
        return {
            "actor": context.get_actor_id(),
            "node": context.get_node_id(),
            "ip": ray.util.get_node_ip_address(),
            "pid": self.child.pid,
            "direct": self.direct,
            "why": self.why,
        }

    def _start(self):
        if self.started:
            return
        self.started = True
        self.loop = asyncio.get_running_loop()
        self.arrived = asyncio.Event()
        self.printed = asyncio.Event()
        self.writable = asyncio.Event()
        self.pending = bytearray()
        self.exited = asyncio.Event()
        self.status = None
        try:
            self.pidfd = os.pidfd_open(self.child.pid)
            self.loop.add_reader(self.pidfd, self._exited)
        except ProcessLookupError:  # it exited, and was reaped
            self.pidfd = None
            self._exited()
        if not self.direct:
            self.loop.add_reader(self.replies, self._readable)
        for name, stream in (("stdout", self.child.stdout), ("stderr", self.child.stderr)):
            os.set_blocking(stream.fileno(), False)
            self.loop.add_reader(stream.fileno(), self._printed, name, stream.fileno(), bytearray())

    def _exited(self):
        if self.pidfd is not None:
            self.loop.remove_reader(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None
        code = self.child.wait()
        self.status = "exit status %d" % code if code >= 0 else "signal %d" % -code
        self.exited.set()

    def _readable(self):
        try:
            data = os.read(self.replies, READ_BYTES)
        except BlockingIOError:
            return
        if not data:
            self.loop.remove_reader(self.replies)
            self.ended = "its pipe closed"
        else:
            self.buffer += data
            self.frames.extend(split_frames(self.buffer))
        self.arrived.set()

    def _printed(self, name, fd, partial):
        try:
            data = os.read(fd, READ_BYTES)
        except BlockingIOError:
            return
        if not data:
            self.loop.remove_reader(fd)
            if partial:
                self.lines.append((name, bytes(partial)))
        else:
            partial += data
            while True:
                cut = partial.find(b"\n")
                if cut < 0:
                    break
                self.lines.append((name, bytes(partial[:cut])))
                del partial[:cut + 1]
            if len(partial) > 8192:
                self.lines.append((name, bytes(partial)))
                partial.clear()
        self.printed.set()

    async def _write_in_order(self, seq, data):
        """Writes `data` once every frame numbered before it was written."""
        self.waiting[seq] = data
        while self.next_seq in self.waiting:
            self.pending += self.waiting.pop(self.next_seq)
            self.next_seq += 1
        while self.pending:
            try:
                written = os.write(self.requests, self.pending)
                del self.pending[:written]
            except BlockingIOError:
                self.writable.clear()
                self.loop.add_writer(self.requests, self.writable.set)
                try:
                    await self.writable.wait()
                finally:
                    self.loop.remove_writer(self.requests)
            except (BrokenPipeError, OSError):
                self.pending.clear()

    async def push(self, seq, data):
        self._start()
        await self._write_in_order(seq, data)

    async def exchange(self, seq, data):
        """Writes `data`, then waits for the worker's next frames: them,
        and how it ended if it did."""
        self._start()
        await self._write_in_order(seq, data)
        while not self.frames and self.ended is None:
            self.arrived.clear()
            await self.arrived.wait()
        frames, self.frames = self.frames, []
        return frames, self.ended

    async def watch(self):
        """How the worker process ended, once it did."""
        self._start()
        await self.exited.wait()
        return self.status

    async def output(self):
        """The lines the worker printed since the last call, waiting for one."""
        self._start()
        while not self.lines:
            self.printed.clear()
            await self.printed.wait()
        lines, self.lines = self.lines, []
        return lines

    async def stop(self, grace):
        """Asks the worker to finish (its request pipe closes), then
        SIGTERM, then SIGKILL of its process group."""
        self._start()
        if self.requests is not None:
            try:
                os.close(self.requests)
            except OSError:
                pass
        # (A direct worker's requests end when the host shuts its end.)
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                try:
                    os.killpg(self.child.pid, sig)
                except OSError:
                    pass
            try:
                await asyncio.wait_for(self.exited.wait(), grace)
                break
            except asyncio.TimeoutError:
                continue
        return self.status


class Host:
    """The host's end, written to (the driver reads it in `serve`)."""

    def __init__(self):
        self.out = os.fdopen(TO_HOST_FD, "wb", buffering=0)
        os.set_blocking(TO_HOST_FD, True)

    def send(self, header, body=b""):
        self.out.write(frame(header, body))


class Worker:
    """The driver's view of one actor."""

    def __init__(self, wid, handle, direct):
        self.wid = wid
        self.direct = direct
        self.handle = handle
        self.outbox = bytearray()
        self.outstanding = 1  # its handshake
        self.exchanging = False
        self.pushing = False
        self.seq = 0
        self.ended = False


class Driver:
    def __init__(self, config, host, ray):
        self.config = config
        self.host = host
        self.ray = ray
        self.workers = {}
        self.source = config["worker_source"]
        options = dict(config.get("actor_options") or {})
        options.setdefault("max_concurrency", 1000)
        self.options = options
        self.actor = ray.remote(Relay)

    def unschedulable(self):
        """Why no node of the cluster could ever hold an actor with these
        options, or None."""
        options = self.config.get("actor_options") or {}
        wanted = dict(options.get("resources") or {})
        for key, name in (("num_cpus", "CPU"), ("num_gpus", "GPU"), ("memory", "memory")):
            if options.get(key):
                wanted[name] = options[key]
        if not wanted:
            return None
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        for node in nodes:
            have = node.get("Resources", {})
            if all(have.get(k, 0) >= v for k, v in wanted.items()):
                return None
        offered = "; ".join(
            "%s: %s" % (n.get("NodeManagerAddress"), json.dumps(n.get("Resources", {}), sort_keys=True))
            for n in nodes)
        return ("no node of the cluster can ever hold a worker that asks for %s (its nodes offer %s): "
                "lower the actor options (num_cpus, num_gpus, resources) or add a node that has them"
                % (json.dumps(wanted, sort_keys=True), offered or "nothing"))

    def start(self, wid, connect):
        why = self.unschedulable()
        if why:
            self.host.send({"op": "ended", "w": wid, "kind": "unschedulable", "why": why})
            return
        try:
            handle = self.actor.options(**self.options).remote(
                self.source, self.config["worker_argv"], self.config.get("env") or {},
                dict(connect, w=wid) if connect else None)
        except Exception as exc:
            self.host.send({"op": "ended", "w": wid, "kind": "start-failed",
                            "why": "Ray refused to create the actor: %s: %s" % (type(exc).__name__, exc)})
            return
        worker = Worker(wid, handle, bool(connect))
        self.workers[wid] = worker
        asyncio.ensure_future(self.placed(worker))

    async def placed(self, worker):
        try:
            where = await worker.handle.where.remote()
        except Exception as exc:
            self.lost(worker, exc)
            return
        if worker.ended:
            return
        worker.direct = where.get("direct", False)
        self.host.send(dict(where, op="placed", w=worker.wid))
        asyncio.ensure_future(self.output(worker))
        asyncio.ensure_future(self.watch(worker))
        if not worker.direct:
            self.pump(worker)

    def send(self, wid, request, data):
        worker = self.workers.get(wid)
        if worker is None or worker.ended:
            return
        worker.outbox += data
        if request:
            worker.outstanding += 1
        self.pump(worker)

    def pump(self, worker):
        if worker.ended:
            return
        if not worker.exchanging and (worker.outbox or worker.outstanding > 0):
            data = bytes(worker.outbox)
            worker.outbox.clear()
            worker.exchanging = True
            seq = worker.seq
            worker.seq += 1
            asyncio.ensure_future(self.exchange(worker, seq, data))
        elif worker.outbox and not worker.pushing:
            data = bytes(worker.outbox)
            worker.outbox.clear()
            worker.pushing = True
            seq = worker.seq
            worker.seq += 1
            asyncio.ensure_future(self.push(worker, seq, data))

    async def exchange(self, worker, seq, data):
        try:
            frames, ended = await worker.handle.exchange.remote(seq, data)
        except Exception as exc:
            self.lost(worker, exc)
            return
        for f in frames:
            if is_final(f):
                worker.outstanding -= 1
            self.host.send({"op": "data", "w": worker.wid}, f)
        worker.exchanging = False
        if ended is not None:
            self.end(worker, "exited", "the worker process on the actor ended (%s)" % ended)
            return
        self.pump(worker)

    async def push(self, worker, seq, data):
        try:
            await worker.handle.push.remote(seq, data)
        except Exception as exc:
            self.lost(worker, exc)
            return
        worker.pushing = False
        self.pump(worker)

    async def watch(self, worker):
        try:
            status = await worker.handle.watch.remote()
        except Exception as exc:
            self.lost(worker, exc)
            return
        self.end(worker, "exited", "the worker process on the actor ended (%s)" % status)

    async def output(self, worker):
        while not worker.ended:
            try:
                lines = await worker.handle.output.remote()
            except Exception as exc:
                self.lost(worker, exc)
                return
            for stream, line in lines:
                self.host.send({"op": "log", "w": worker.wid, "stream": stream}, line)

    def lost(self, worker, exc):
        """The actor died (or could not be created): what Ray said."""
        text = str(exc)
        lowered = text.lower()
        if "node" in lowered and ("died" in lowered or "dead" in lowered):
            kind = "node-died"
        elif "ray.kill" in lowered:
            kind = "killed"
        else:
            kind = "actor-died"
        if len(text) > 2000:
            text = text[:2000] + "..."
        self.end(worker, kind, "%s: %s" % (type(exc).__name__, text))

    def end(self, worker, kind, why):
        if worker.ended:
            return
        worker.ended = True
        self.workers.pop(worker.wid, None)
        try:
            self.ray.kill(worker.handle, no_restart=True)
        except Exception:
            pass
        self.host.send({"op": "ended", "w": worker.wid, "kind": kind, "why": why})

    def kill(self, wid):
        worker = self.workers.get(wid)
        if worker is not None:
            self.end(worker, "killed", "killed by the pool (ray.kill)")

    async def stop(self, wid, grace):
        worker = self.workers.get(wid)
        if worker is None:
            return
        try:
            await asyncio.wait_for(worker.handle.stop.remote(grace), grace * 3 + 5)
        except Exception:
            pass
        self.end(worker, "stopped", "stopped by the pool")

    def stop_all(self):
        for worker in list(self.workers.values()):
            self.end(worker, "stopped", "the host went away")


def arm_lifeline(fd):
    fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(fd, F_SETSIG, signal.SIGKILL)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if poller.poll(0):
        os._exit(0)


async def serve(driver, host):
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(FROM_HOST_FD, "rb", buffering=0))
    while True:
        try:
            lengths = await reader.readexactly(8)
        except asyncio.IncompleteReadError:
            break  # the host closed its end: stop everything
        header_len, body_len = FRAME.unpack(lengths)
        header = json.loads(await reader.readexactly(header_len))
        body = await reader.readexactly(body_len) if body_len else b""
        op = header.get("op")
        wid = header.get("w")
        if op == "send":
            driver.send(wid, header.get("req", False), body)
        elif op == "start":
            driver.start(wid, header.get("connect"))
        elif op == "kill":
            driver.kill(wid)
        elif op == "stop":
            asyncio.ensure_future(driver.stop(wid, header.get("grace", 1.0)))
    driver.stop_all()


def unreachable(address):
    """Why nothing answers at `address` (`host:port`), or None: `ray.init`
    waits a long while for a cluster that is not there."""
    import socket
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return None  # `auto`, or a form Ray reads itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        return "nothing answers at %s (%s)" % (address, exc)
    return None


def read_exactly(fd, n):
    data = bytearray()
    while len(data) < n:
        part = os.read(fd, n - len(data))
        if not part:
            raise EOFError("the host closed its end")
        data += part
    return bytes(data)


def main(argv):
    arm_lifeline(LIFELINE_FD)
    # The first frame is the configuration: {"op":"config"}, then its JSON.
    header_len, body_len = FRAME.unpack(read_exactly(FROM_HOST_FD, 8))
    read_exactly(FROM_HOST_FD, header_len)
    config = json.loads(read_exactly(FROM_HOST_FD, body_len))
    host = Host()
    try:
        import ray
    except ImportError as exc:
        host.send({"op": "failed", "kind": "no-ray", "why": "%s (%s)" % (exc, sys.executable)})
        return 1
    address = config["address"]
    why = unreachable(address)
    if why:
        host.send({"op": "failed", "kind": "no-cluster", "why": why})
        return 1
    try:
        # The job's runtime_env (the module's folder as its working_dir)
        # reaches every node: Ray uploads a local folder only at this level.
        ray.init(address=address, namespace=config.get("namespace"), log_to_driver=False,
                 logging_level="ERROR", runtime_env=config.get("runtime_env") or None)
    except Exception as exc:
        text = str(exc)
        kind = "version-mismatch" if "version mismatch" in text.lower() else "no-cluster"
        host.send({"op": "failed", "kind": kind, "why": "%s: %s" % (type(exc).__name__, text[:4000])})
        return 1
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    host.send({"op": "hello", "ray": ray.__version__, "nodes": len(nodes),
               "ip": ray.util.get_node_ip_address(),
               "python": "%d.%d.%d" % sys.version_info[:3]})
    driver = Driver(config, host, ray)
    try:
        asyncio.run(serve(driver, host))
    finally:
        try:
            ray.shutdown()
        except Exception:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
