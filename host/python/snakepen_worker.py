"""The worker side of snakepen: one long-lived Python process serving calls.

Standard library only; Python 3.9+. The host starts it as

    python -I -u -c <this file> --module handlers.py [--path DIR]...

with the protocol on two pipes, requests read from file descriptor 3 and
replies written to 5, the read end of the host's lifeline pipe on 4, and
pipes on 0/1/2, so that print() in user code reaches the host's log and
never the protocol. (Pipes rather than a socket: reading a socket pair
wakes whoever waits on the other end, for nothing, on every call.)

Protocol, both directions: frames of
    u32 big-endian header length, u32 big-endian body length,
    header (a JSON object, UTF-8), body (bytes).
host -> worker: header {"id": n, "command": name}, body = the payload
                (JSON; empty means no arguments)
worker -> host: first a handshake {"kind": "ready", ...} or
                {"kind": "failed", "error": {...}}; then one reply per
                request, {"id": n, "ok": true} with the result as JSON in
                the body, or {"id": n, "ok": false, "error": {...}}.
The worker exits when the host closes its end of the request pipe (a watcher
thread sees the hang-up), and is killed by the kernel the moment the host's
process ends, whatever the worker is doing: only the host holds the write
end of the lifeline pipe, and the worker asks for SIGKILL when that end
closes (O_ASYNC with F_SETSIG). That needs no Python code to run, so a
worker stuck in C code holding the GIL dies as promptly as an idle one.

With --fork-server the process imports the module once, freezes its heap
for copy-on-write (gc.freeze()) and forks workers on request instead of
serving calls. Control messages on fd 3 use the same frames:
host -> server: {"kind": "fork", "id": n}, sent with five descriptors
                (SCM_RIGHTS): the new worker's request pipe (read end),
                reply pipe (write end), its stdout, its stderr and the
                read end of its own lifeline;
                {"kind": "reap", "pid": p} once the host has cleaned up
                after worker p.
server -> host: the handshake, then {"kind": "forked", "id": n, "pid": p};
                {"kind": "exited", "pid": p, "code": 1} (or "signal": 9)
                when a worker ends (it stays a zombie, so its pid and
                process group cannot be reused, until the host says reap).
A forked worker leads its own process group, sends its own handshake on
its reply pipe and serves exactly as a started one.
"""

import fcntl
import gc
import importlib
import importlib.util
import json
import os
import select
import selectors
import signal
import socket
import stat
import struct
import sys
import threading
import time
from types import AsyncGeneratorType, CoroutineType, GeneratorType

PROTOCOL_FD = 3  # the worker's requests; the fork server's control socket
REPLIES_FD = 5
LIFELINE_FD = 4
F_SETSIG = 10  # Linux; the fcntl module does not name it
FRAME = struct.Struct(">II")
MAX_FRAME_BYTES = 1 << 30
BUILTINS = ("ping", "info")
# Room left in a reply frame for its header, out of the host's frame limit.
REPLY_HEADER_ROOM = 4096
# The longest message or traceback an error carries.
MAX_ERROR_TEXT = 64 << 10


class ProtocolError(Exception):
    pass


def main(argv):
    if sys.version_info < (3, 9):
        sys.stderr.write("snakepen needs Python 3.9 or newer; this is %s\n" % sys.version.split()[0])
        return 2
    options = parse_args(argv)
    if options.describe:
        return print_description(options)
    arm_lifeline(LIFELINE_FD)
    if options.fork_server:
        return serve_forks(options)
    watch_for_host_exit(PROTOCOL_FD)
    write = writer(REPLIES_FD)
    started = time.monotonic()
    try:
        module, handlers, shadowed = load_module(options)
    except BaseException as exc:  # the host reports it; nothing else to do here
        send(write, {"kind": "failed", "error": import_error(options.module, exc)})
        return 1
    encoder = json_encoder()  # imports orjson, if any, before the worker says it is ready
    send(write, ready_message(module, handlers, shadowed))
    serve(write, module, handlers, started, options, encoder)
    return 0


def print_description(options):
    """--describe: the module's handlers as the handshake would carry them,
    as one JSON document on stdout, or the import's error; no serving."""
    try:
        module, handlers, shadowed = load_module(options)
        answer, status = ready_message(module, handlers, shadowed), 0
    except BaseException as exc:
        answer, status = {"kind": "failed", "error": import_error(options.module, exc)}, 1
    sys.stdout.write("\n" + json.dumps(answer) + "\n")
    sys.stdout.flush()
    # At once: the module's threads and atexit hooks must not hold the answer back.
    os._exit(status)


def ready_message(module, handlers, shadowed, described=None):
    return {
        "kind": "ready",
        "pid": os.getpid(),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "executable": sys.executable,
        "module": module.__name__,
        "file": getattr(module, "__file__", None),
        "handlers": described if described is not None else describe(handlers),
        "shadowed": shadowed,
    }


def serve_forks(options):
    """The fork server: import once, then fork ready workers on request."""
    control = socket.socket(fileno=PROTOCOL_FD)
    watch_for_host_exit(control.fileno())
    started = time.monotonic()
    try:
        module, handlers, shadowed = load_module(options)
    except BaseException as exc:
        send(control.sendall, {"kind": "failed", "error": import_error(options.module, exc)})
        return 1
    encoder = json_encoder()  # orjson, if any, imported once for every worker
    # Everything imported so far is shared with every worker, page for page,
    # for as long as nobody writes to it: keep the collector's hands off it.
    described = describe(handlers)  # once, for every worker forked
    gc.collect()
    gc.freeze()
    send(control.sendall, ready_message(module, handlers, shadowed, described))

    children = {}  # pidfd -> pid
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    buffered = b""
    while True:
        for key, _ in selector.select():
            if key.fileobj is control:
                data, fds = recv_with_fds(control)
                if not data:
                    return 0  # the host hung up
                buffered += data
                while len(buffered) >= FRAME.size:
                    head_len, body_len = FRAME.unpack_from(buffered)
                    end = FRAME.size + head_len + body_len
                    if len(buffered) < end:
                        break
                    header = json.loads(buffered[FRAME.size:FRAME.size + head_len])
                    buffered = buffered[end:]
                    if header["kind"] == "fork":
                        pid = fork_worker(fds, control, children, module, handlers, (shadowed, described), options, encoder)
                        fds = []
                        pidfd = os.pidfd_open(pid)
                        children[pidfd] = pid
                        selector.register(pidfd, selectors.EVENT_READ)
                        send(control.sendall, {"kind": "forked", "id": header["id"], "pid": pid})
                    elif header["kind"] == "reap":
                        for pidfd, pid in list(children.items()):
                            if pid == header["pid"]:
                                os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
                                del children[pidfd]
                                os.close(pidfd)
                for fd in fds:  # descriptors that came without a fork request
                    os.close(fd)
            else:
                pidfd = key.fd
                selector.unregister(pidfd)
                info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOWAIT)
                send(control.sendall, exited(children[pidfd], info))


def recv_with_fds(sock):
    fds = []
    data, ancillary, _, _ = sock.recvmsg(1 << 16, socket.CMSG_SPACE(16 * 4))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(struct.unpack("%di" % (usable // 4), payload[:usable]))
    return data, fds


def exited(pid, info):
    """The exit report of `pid`: its exit code, or the signal that ended it."""
    report = {"kind": "exited", "pid": pid}
    if info is not None:
        report["code" if info.si_code == os.CLD_EXITED else "signal"] = info.si_status
    return report


def fork_worker(fds, control, children, module, handlers, hello, options, encoder):
    """Forks one worker from this process; returns its pid (in the server)."""
    if len(fds) != 5:
        raise ProtocolError("a fork request needs 5 descriptors, got %d" % len(fds))
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        return pid
    # The worker: its own process group, its own pipes, nothing of the server's.
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # Above every target first: a received descriptor may have any
        # number above the server's own (0 to 4), fd 5 included.
        moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, REPLIES_FD + 1) for fd in fds]
        for fd in fds + list(children):
            os.close(fd)
        requests_fd, replies_fd, out_fd, err_fd, lifeline_fd = moved
        os.dup2(lifeline_fd, LIFELINE_FD)  # replaces the server's own lifeline
        arm_lifeline(LIFELINE_FD)
        os.dup2(requests_fd, PROTOCOL_FD)  # replaces the server's control socket
        os.dup2(replies_fd, REPLIES_FD)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        for fd in moved:
            os.close(fd)
        gc.unfreeze()
        watch_for_host_exit(PROTOCOL_FD)
        write = writer(REPLIES_FD)
        send(write, ready_message(module, handlers, *hello))
        serve(write, module, handlers, time.monotonic(), options, encoder)
    except BaseException:
        import traceback
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


class Options:
    """What the host said on the command line."""

    def __init__(self):
        self.module = None
        self.paths = []
        self.preload = []
        self.expose = []
        self.fork_server = False
        self.max_reply_bytes = MAX_FRAME_BYTES
        self.max_concurrency = 1
        self.describe = False


def parse_args(argv):
    options = Options()
    it = iter(argv)
    for arg in it:
        if arg == "--module":
            options.module = next(it)
        elif arg == "--path":
            options.paths.append(next(it))
        elif arg == "--preload":
            options.preload.append(next(it))
        elif arg == "--expose":
            options.expose.append(next(it))
        elif arg == "--max-reply-bytes":
            options.max_reply_bytes = int(next(it))
        elif arg == "--max-concurrency":
            options.max_concurrency = int(next(it))
        elif arg == "--fork-server":
            options.fork_server = True
        elif arg == "--describe":
            options.describe = True
        else:
            raise SystemExit("snakepen worker: unknown argument %r" % arg)
    if not options.module:
        raise SystemExit("snakepen worker: --module is required")
    return options


def arm_lifeline(fd):
    """Ask the kernel for SIGKILL when the host's end of the lifeline pipe
    closes, which happens when the host process ends, however it ends. The
    signal owner is this process (a forked worker re-arms its own pipe)."""
    fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(fd, F_SETSIG, signal.SIGKILL)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
    # The host may have ended before the line was armed: then no signal comes.
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if poller.poll(0):
        os._exit(0)


def watch_for_host_exit(fd):
    """Exit at once when the host's end of the request pipe closes, even while
    user code is busy: a worker never outlives its host."""
    def watch():
        poller = select.poll()
        poller.register(fd, 0)  # no events asked for: wakes on hang-up only
        while True:
            for _, event in poller.poll():
                if event & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    os._exit(0)

    threading.Thread(target=watch, name="snakepen-hangup", daemon=True).start()


def load_module(options):
    name = options.module
    for path in reversed(options.paths):
        if path not in sys.path:
            sys.path.insert(0, path)
    for extra in options.preload:
        try:
            importlib.import_module(extra)
        except ImportError as exc:
            raise ImportError("the preload module %r: %s" % (extra, exc)) from exc
    if name.endswith(".py") or os.sep in name or "/" in name:
        path = os.path.abspath(name)
        if os.path.isdir(path):
            raise IsADirectoryError(
                "%s is a directory, not a module: name a .py file in it, or its package as a "
                "dotted name with the package's parent on the python path" % path)
        if not os.path.isfile(path):
            raise FileNotFoundError("no such file: %s" % path)
        directory = os.path.dirname(path)
        if directory not in sys.path:
            sys.path.insert(0, directory)  # so the module can import its neighbours
        mod_name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(name)
    handlers = commands(module, options.expose)
    # The built-ins answer their names; module functions of those names are shadowed.
    shadowed = sorted(name for name in BUILTINS if name in handlers)
    for name in BUILTINS:
        handlers.pop(name, None)
    return module, handlers, shadowed


def commands(module, expose):
    """The module's commands: the functions defined in it (their __module__
    is the module), or, when it has __all__, the names listed there; plus
    the names in `expose`. Nothing else, whatever its name: a function the
    module imported (`from os import system`) is not a command."""
    listed = getattr(module, "__all__", None)
    if listed is not None:
        names = [n for n in listed if isinstance(n, str)]
    else:
        names = [
            n for n, value in vars(module).items()
            if not n.startswith("_") and getattr(value, "__module__", None) == module.__name__
        ]
    found = {}
    for name in names:
        value = getattr(module, name, None)
        if callable(value) and not isinstance(value, type) and not isinstance(value, type(sys)):
            found[name] = value
    for name in expose:
        value = getattr(module, name, None)
        if value is None or not callable(value) or isinstance(value, type):
            raise LookupError(
                "expose names %r, but %s has no function of that name (it has: %s)"
                % (name, module.__name__, ", ".join(sorted(found)) or "none"))
        found[name] = value
    return found


# ---- How handlers describe themselves ------------------------------------
# Read from code objects and annotations rather than with `inspect`, whose
# import (8 ms here) would slow every worker's start.

CO_VARARGS, CO_VARKEYWORDS = 0x04, 0x08
CO_GENERATOR, CO_COROUTINE, CO_ASYNC_GENERATOR = 0x20, 0x80, 0x200
SCHEMA_DEPTH = 8  # deeper (or recursive) types accept any JSON


def describe(handlers):
    """Each handler as the handshake carries it: its name, kind, docstring,
    parameters and the JSON Schema of the payloads it takes. A handler that
    cannot be read is described by its name alone, never failing the start."""
    described = []
    for name, fn in sorted(handlers.items()):
        try:
            entry = describe_one(name, fn)
            json.dumps(entry, allow_nan=False)  # what the handshake can carry
            described.append(entry)
        except (Exception, SystemExit) as exc:
            described.append({"name": name, "kind": "plain", "doc": None, "parameters": [],
                              "takes_bytes": False, "returns": None, "schema": {},
                              "unreadable": "%s: %s" % (type_name(exc), exc)})
    return described


def describe_one(name, fn):
    target = fn
    for _ in range(100):  # functools.wraps, bounded as inspect.unwrap is
        wrapped = getattr(target, "__wrapped__", None)
        if wrapped is None or wrapped is target:
            break
        target = wrapped
    code = getattr(target, "__code__", None)
    if code is None:  # a callable object: its __call__, without self
        call = getattr(type(target), "__call__", None)
        code = getattr(call, "__code__", None)
        target, skip = (call, 1) if code is not None else (target, 0)
    else:
        skip = 1 if getattr(target, "__self__", None) is not None else 0
    doc = getattr(fn, "__doc__", None) or getattr(target, "__doc__", None)
    described = {
        "name": name,
        "kind": kind_of(code),
        "doc": clean_doc(doc) if isinstance(doc, str) else None,
        "parameters": [],
        "takes_bytes": takes_bytes(fn),
        "returns": None,
    }
    annotations = annotations_of(target)
    if "return" in annotations:
        described["returns"] = written(annotations["return"])
    if code is None:  # a builtin: nothing more to read
        described["schema"] = {}
        return described
    context = getattr(target, "__globals__", {})
    parameters = described["parameters"] = parameters_of(target, code, skip, annotations)
    described["schema"] = {} if described["takes_bytes"] else payload_schema(parameters, annotations, context)
    for parameter in parameters:
        parameter.pop("_default", None)
    return described


def kind_of(code):
    flags = code.co_flags if code is not None else 0
    if flags & CO_ASYNC_GENERATOR:
        return "async-generator"
    if flags & CO_COROUTINE:
        return "async"
    if flags & CO_GENERATOR:
        return "generator"
    return "plain"


def clean_doc(doc):
    """A docstring without its common indentation (what inspect.cleandoc does)."""
    lines = doc.expandtabs().split("\n")
    indents = [len(line) - len(line.lstrip()) for line in lines[1:] if line.strip()]
    margin = min(indents) if indents else 0
    lines = [lines[0].strip()] + [line[margin:].rstrip() for line in lines[1:]]
    return "\n".join(lines).strip()


def annotations_of(fn):
    try:
        found = getattr(fn, "__annotations__", None)
    except Exception:  # a property that raises: described without them
        return {}
    return found if isinstance(found, dict) else {}


def parameters_of(fn, code, skip, annotations):
    """The parameters in order, as inspect.Parameter would name them."""
    names = code.co_varnames
    positional = code.co_argcount
    keyword_only = code.co_kwonlyargcount
    defaults = getattr(fn, "__defaults__", None) or ()
    kwdefaults = getattr(fn, "__kwdefaults__", None) or {}
    first_default = positional - len(defaults)
    found = []
    for i in range(skip, positional):
        kind = "positional-only" if i < code.co_posonlyargcount else "positional-or-keyword"
        default = defaults[i - first_default] if i >= first_default else NO_DEFAULT
        found.append(parameter(names[i], kind, default, annotations))
    at = positional + keyword_only
    if code.co_flags & CO_VARARGS:
        found.append(parameter(names[at], "var-positional", NO_DEFAULT, annotations))
        at += 1
    for name in names[positional:positional + keyword_only]:
        found.append(parameter(name, "keyword-only", kwdefaults.get(name, NO_DEFAULT), annotations))
    if code.co_flags & CO_VARKEYWORDS:
        found.append(parameter(names[at], "var-keyword", NO_DEFAULT, annotations))
    return found


NO_DEFAULT = object()


def parameter(name, kind, default, annotations):
    described = {"name": name, "kind": kind, "required": default is NO_DEFAULT and not kind.startswith("var-")}
    if name in annotations:
        described["annotation"] = written(annotations[name])
    if default is not NO_DEFAULT:
        described["_default"] = default
        try:
            json.dumps(default, allow_nan=False)
            described["default"] = default
        except (TypeError, ValueError, RecursionError):
            shown = repr(default)[:200]
            if " at 0x" in shown:  # <object object at 0x7f…>: the address says nothing
                shown = shown.split(" at 0x")[0] + ">"
            described["default_repr"] = shown
    return described


def written(annotation):
    """An annotation as its author wrote it, near enough."""
    if isinstance(annotation, str):
        return annotation
    if annotation is None or annotation is type(None):
        return "None"
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")


def payload_schema(parameters, annotations, context):
    """The JSON Schema of a payload that binds to `parameters`: an object
    of keyword arguments, an array of positional ones, or, for a handler
    of one argument, that argument itself. (No payload at all calls the
    handler with no arguments.)"""
    by_keyword = [p for p in parameters if p["kind"] in ("positional-or-keyword", "keyword-only")]
    by_position = [p for p in parameters if p["kind"] in ("positional-only", "positional-or-keyword")]
    var_positional = any(p["kind"] == "var-positional" for p in parameters)
    var_keyword = any(p["kind"] == "var-keyword" for p in parameters)
    schemas = {p["name"]: field_schema(p, annotations, context) for p in parameters}
    keywords = {"type": "object", "properties": {p["name"]: schemas[p["name"]] for p in by_keyword}}
    required = [p["name"] for p in by_keyword if p["required"]]
    if required:
        keywords["required"] = required
    if not var_keyword:
        keywords["additionalProperties"] = False
    positions = {"type": "array", "prefixItems": [schemas[p["name"]] for p in by_position],
                 "minItems": sum(1 for p in by_position if p["required"])}
    if not var_positional:
        positions["maxItems"] = len(by_position)
    forms = []
    if not any(p["required"] and p["kind"] == "positional-only" for p in parameters):
        forms.append(keywords)
    if not any(p["required"] and p["kind"] == "keyword-only" for p in parameters):
        forms.append(positions)
    # A value that is neither binds as the one argument.
    first = by_position[0] if by_position else next(
        (p for p in parameters if p["kind"] == "var-positional"), None)
    if first is not None and not any(p["required"] for p in parameters if p is not first):
        alone = schemas[first["name"]]
        if first["kind"] == "var-positional":
            alone = alone.get("items", {})
        forms.append(scalar_form(alone))
    if not forms:
        return False  # a positional-only and a keyword-only parameter both required: no payload binds
    return {"anyOf": forms}


def scalar_form(schema):
    """A value passed alone: neither an object nor an array (those bind
    keywords and positions), nor null (over HTTP, a null payload is no
    payload)."""
    scalar = ["string", "number", "boolean"]
    if not schema:
        return {"type": scalar}
    if schema.get("type") in ("string", "integer", "number", "boolean"):
        return schema
    return {"allOf": [schema, {"type": scalar}]}


def field_schema(parameter, annotations, context):
    if parameter["name"] not in annotations:
        schema = {}
    else:
        schema = type_schema(annotations[parameter["name"]], context, 0)
    if parameter["kind"] == "var-positional":
        schema = {"type": "array", "items": schema}
    elif parameter["kind"] == "var-keyword":
        schema = {"type": "object", "additionalProperties": schema}
    if "default" in parameter:
        schema = dict(schema, default=parameter["default"])
    return schema


SCALARS = {int: "integer", float: "number", str: "string", bool: "boolean"}


def type_schema(annotation, context, depth):
    """The JSON Schema of values of `annotation`; {} (any JSON) for what
    does not map to one. Uses only modules the handler's own module
    already imported."""
    if depth > SCHEMA_DEPTH:
        return {}
    annotation = getattr(annotation, "__forward_arg__", annotation)  # typing.ForwardRef
    if isinstance(annotation, str):
        try:
            annotation = eval(annotation, dict(context))  # as typing.get_type_hints does
        except (Exception, SystemExit):
            return {}
    if annotation is None or annotation is type(None):
        return {"type": "null"}
    if annotation in SCALARS:
        return {"type": SCALARS[annotation]}
    if annotation is dict:
        return {"type": "object"}
    if annotation in (list, tuple, set, frozenset):
        return {"type": "array"}
    origin = getattr(annotation, "__origin__", None)
    args = getattr(annotation, "__args__", None) or ()
    typing = sys.modules.get("typing")
    nested = lambda t: type_schema(t, context, depth + 1)  # noqa: E731
    if typing is not None and annotation is getattr(typing, "Any", None):
        return {}
    if origin is not None:
        name = getattr(origin, "_name", None) or getattr(annotation, "_name", None)
        if typing is not None and origin is getattr(typing, "Union", None):
            return {"anyOf": [nested(t) for t in args]}
        if typing is not None and origin is getattr(typing, "Literal", None):
            return json_enum(list(args))
        if typing is not None and origin is getattr(typing, "Annotated", None):
            return nested(args[0]) if args else {}
        if origin in (list, set, frozenset) or name in ("Sequence", "List", "Set", "Iterable"):
            return {"type": "array", "items": nested(args[0])} if args else {"type": "array"}
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": nested(args[0])}
            return {"type": "array", "prefixItems": [nested(t) for t in args],
                    "minItems": len(args), "maxItems": len(args)}
        if origin is dict or name in ("Mapping", "Dict"):
            if len(args) == 2 and args[0] is str:
                return {"type": "object", "additionalProperties": nested(args[1])}
            return {"type": "object"}
        return {}
    union = getattr(sys.modules.get("types"), "UnionType", None)
    if union is not None and isinstance(annotation, union):  # int | None
        return {"anyOf": [nested(t) for t in args]}
    if isinstance(annotation, type):
        return class_schema(annotation, nested)
    return {}


def class_schema(cls, nested):
    """A TypedDict, a dataclass or an Enum as JSON Schema; other classes {}."""
    module = sys.modules.get(cls.__module__)
    context = vars(module) if module is not None else {}
    if issubclass(cls, dict) and hasattr(cls, "__total__"):  # a TypedDict
        fields = annotations_of(cls)
        required = getattr(cls, "__required_keys__", frozenset(fields) if cls.__total__ else ())
        schema = {"type": "object", "title": cls.__name__,
                  "properties": {k: nested(resolve(v, context)) for k, v in fields.items()},
                  "additionalProperties": False}
        if required:
            schema["required"] = sorted(required)
        return schema
    fields = getattr(cls, "__dataclass_fields__", None)
    if isinstance(fields, dict):
        properties, required = {}, []
        for name, field in fields.items():
            if getattr(field, "_field_type", None) is not None and str(field._field_type) != "_FIELD":
                continue  # a ClassVar or an InitVar
            properties[name] = nested(resolve(field.type, context))
            missing = type(field.default).__name__ == "_MISSING_TYPE"
            if missing and type(field.default_factory).__name__ == "_MISSING_TYPE":
                required.append(name)
        schema = {"type": "object", "title": cls.__name__, "properties": properties}
        if required:
            schema["required"] = required
        return schema
    enum = sys.modules.get("enum")
    if enum is not None and issubclass(cls, enum.Enum):
        return dict(json_enum([member.value for member in cls]), title=cls.__name__)
    return {}


def json_enum(values):
    """{"enum": values} when every value is JSON (strings, numbers, bools,
    None); {} (any JSON) otherwise."""
    plain = (str, int, float, bool, type(None))
    if values and all(isinstance(v, plain) and v == v for v in values):
        return {"enum": values}
    return {}


def resolve(annotation, context):
    annotation = getattr(annotation, "__forward_arg__", annotation)  # typing.ForwardRef
    if isinstance(annotation, str):
        try:
            return eval(annotation, dict(context))
        except (Exception, SystemExit):
            return annotation
    return annotation


def import_error(module_name, exc):
    import traceback

    return {
        "kind": "python-exception",
        "type": type_name(exc),
        "message": "cannot import %s: %s" % (module_name, exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def takes_bytes(fn):
    """Whether `fn` takes the payload as it came: one parameter, annotated
    `bytes` (`def f(data: bytes)`). Read from the code object rather than
    with `inspect`, whose import would slow every worker's start."""
    code = getattr(fn, "__code__", None)
    if code is None or code.co_argcount != 1 or code.co_kwonlyargcount:
        return False
    annotation = getattr(fn, "__annotations__", {}).get(code.co_varnames[0])
    return annotation is bytes or annotation == "bytes"


def serve(write, module, handlers, started, options, encoder):
    """Serves requests until the host hangs up: one at a time on this
    thread, or, with --max-concurrency above 1, many at once."""
    max_reply_bytes = options.max_reply_bytes

    def encode(value):
        # Bytes are the answer as it is: no JSON in between.
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        return encoder(value)

    raw = {name for name, fn in handlers.items() if takes_bytes(fn)}
    if options.max_concurrency > 1:
        return Concurrent(module, handlers, raw, encode, started, options).serve()
    run = EventLoop().run
    requests = Requests(PROTOCOL_FD)
    served = 0
    while True:
        frame = requests.next()
        if frame is None:
            return
        header, body = frame
        if "command" not in header:
            continue  # a cancel or credit for a call that has ended
        served += 1
        rid = header.get("id")
        command = header["command"]
        streamed = header.get("stream", False)
        try:
            error, encoded = handle(module, handlers, raw, command, body, encode, served, started, run, streamed)
            if error is STREAMING:
                error, encoded = stream_here(write, requests, rid, command, encoded, encode, run, header.get("credit", 0))
            if error is None and len(encoded) > max_reply_bytes - REPLY_HEADER_ROOM:
                error, encoded = too_large(command, len(encoded), max_reply_bytes), None
        except BaseException as exc:  # a bug here must cost one call, never the worker
            error, encoded = internal_error(command, exc), None
        respond(write, rid, error, encoded)


class Requests:
    """The host's frames on fd 3, read into a buffer of this worker's own,
    so that it can look for one without waiting (a cancel or more credit
    while it streams)."""

    def __init__(self, fd):
        self.fd = fd
        self.buffer = bytearray()
        self.held = []  # frames read while streaming that were for later

    def next(self, wait=True):
        """The next frame, (header, body); None once the host hung up; and
        with `wait` false, NOTHING when none has come."""
        if self.held:
            return self.held.pop(0)
        while True:
            frame = self.take()
            if frame is not None:
                return frame
            if not wait and not select.select([self.fd], [], [], 0)[0]:
                return NOTHING
            data = os.read(self.fd, READ_BYTES)
            if not data:
                if self.buffer:
                    raise ProtocolError("the host closed its pipe inside a frame")
                return None
            if not self.buffer and len(data) >= FRAME.size:
                # The usual case: exactly one whole frame came.
                header_len, body_len = FRAME.unpack_from(data)
                if len(data) == FRAME.size + header_len + body_len:
                    return loads(data[FRAME.size:FRAME.size + header_len]), data[FRAME.size + header_len:]
            self.buffer += data

    def take(self):
        buffer = self.buffer
        if len(buffer) < FRAME.size:
            return None
        header_len, body_len = FRAME.unpack_from(buffer)
        if header_len + body_len > MAX_FRAME_BYTES:
            raise ProtocolError("frame of %d bytes is over the limit" % (header_len + body_len))
        end = FRAME.size + header_len + body_len
        if len(buffer) < end:
            return None
        header = loads(bytes(buffer[FRAME.size:FRAME.size + header_len]))
        body = bytes(buffer[FRAME.size + header_len:end])
        del buffer[:end]
        return header, body

    def hold(self, frame):
        self.held.append(frame)


# How much one read of the host's pipe asks for: under malloc's mmap
# threshold, since os.read allocates what it asks for (a read of 256 KiB
# cost 10 us in mmap and munmap; one of 64 KiB, 0.7 us).
READ_BYTES = 64 << 10
NOTHING = object()  # no frame has come (Requests.next without waiting)
STREAMING = object()  # handle()'s mark of an answer to stream: (STREAMING, generator)


def stream_here(write, requests, rid, command, generator, encode, run, credit):
    """Sends each value `generator` yields as a chunk of request `rid`, no
    more than the host has given credit for, and looks between chunks for a
    cancel (which closes the generator: its `finally` runs). Returns the
    stream's outcome as handle() does: its return value, or its error. An
    async generator is driven by one task from start to end, as libraries
    that hold task-scoped state across its `yield`s (anyio, DSPy) need."""
    if type(generator) is AsyncGeneratorType:
        return run(stream_async_here(write, requests, rid, command, generator, encode, credit))
    head = b'{"id":%d,"chunk":true}' % rid
    try:
        while True:
            credit, stop = heed(requests, rid, command, credit)
            if stop is not None:
                return stop, None
            try:
                item = next(generator)
            except StopIteration as stop:
                return answer(command, stop.value, encode)
            except BaseException as exc:  # SystemExit too: a handler must not end the worker
                return call_error(command, None, (), {}, exc), None
            error, chunk = answer(command, item, encode)
            if error is not None:
                return error, None
            put(write, head, chunk)
            credit -= 1
    finally:
        try:
            generator.close()
        except BaseException:  # a generator that raises on close: its call is over
            pass


async def stream_async_here(write, requests, rid, command, generator, encode, credit):
    """stream_here for an async generator, on one task. (While it waits for
    credit the worker's loop waits too: so does the handler.)"""
    head = b'{"id":%d,"chunk":true}' % rid
    try:
        while True:
            credit, stop = heed(requests, rid, command, credit)
            if stop is not None:
                return stop, None
            try:
                item = await generator.__anext__()
            except StopAsyncIteration:
                return answer(command, None, encode)
            except BaseException as exc:  # SystemExit too: a handler must not end the worker
                return call_error(command, None, (), {}, exc), None
            error, chunk = answer(command, item, encode)
            if error is not None:
                return error, None
            put(write, head, chunk)
            credit -= 1
    finally:
        try:
            await generator.aclose()
        except BaseException:  # a generator that raises on close: its call is over
            pass


def heed(requests, rid, command, credit):
    """What the host said about stream `rid` meanwhile, waiting for it while
    the stream has no credit: (its credit now, None), or (credit, the error
    that ends the stream: a cancel, or the host hanging up)."""
    while True:
        frame = requests.next(wait=credit <= 0)
        if frame is NOTHING:
            return credit, None
        if frame is None:  # the host hung up
            return credit, {"kind": "timeout", "message": "the host hung up"}
        header = frame[0]
        if header.get("cancel") == rid:
            return credit, {"kind": "timeout", "message": "%s was cancelled" % shown(command)}
        if header.get("id") == rid and "credit" in header:
            credit += header["credit"]
        elif "command" in header:
            requests.hold(frame)  # not for this stream: served after it


def respond(write, rid, error, encoded):
    if error is None:
        reply_ok(write, rid, encoded)
    else:
        reply_error(write, rid, bounded(error))


class EventLoop:
    """The worker's own event loop, made at its first coroutine (asyncio is
    imported only by a worker that needs it) and kept for its life: what
    one call leaves on it (a client's connection pool) serves the next."""

    def __init__(self):
        self.loop = None

    def run(self, coroutine):
        if self.loop is None:
            import asyncio

            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
        return self.loop.run_until_complete(coroutine)


def json_encoder():
    """The function that turns an answer into JSON bytes. The standard
    library's encoder, with the rules of `by_rule` beyond it (an Enum, a
    UUID, a dataclass, a pydantic model, a DSPy Prediction); NaN and
    infinities are refused (JSON has none). When
    the worker's interpreter has orjson it does the work: the JSON value is
    the same (its text may differ: UTF-8 rather than \\u escapes, 1e16
    rather than 1e+16), and whatever orjson would do differently is done by
    the standard library instead (an answer with a null in it is checked
    there, since orjson writes NaN as null)."""
    stdlib = json.JSONEncoder(allow_nan=False, separators=(",", ":"), default=by_rule).encode

    def standard(value):
        return stdlib(value).encode()

    try:
        import orjson
    except ImportError:
        return standard
    dumps = orjson.dumps
    # Dataclasses and dates go to `default`, which refuses them as the
    # standard library does; orjson raises TypeError for what it cannot do
    # (integers beyond 64 bits, keys that are not strings, deep nesting).
    option = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME

    def fast(value):
        try:
            text = dumps(value, default=by_rule, option=option)
        except TypeError:
            return standard(value)
        return standard(value) if b"null" in text else text

    return fast


def by_rule(value):
    """What JSON makes of a value it has no type for, beyond the standard
    library: an Enum's value; a UUID's text; a dataclass's fields (as
    dataclasses.asdict gives them); what an object's `model_dump()` (a
    pydantic model) or `toDict()` (a DSPy Prediction or Example) returns.
    Anything else is refused, naming its type."""
    import dataclasses
    import enum
    import uuid

    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    for method in ("model_dump", "toDict"):
        convert = getattr(type(value), method, None)
        if callable(convert):
            return convert(value)
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


def handle(module, handlers, raw, command, body, encode, served, started, run, streamed=False):
    """Runs one request: (None, the answer's bytes), or (an error, None). A
    handler in `raw` gets the payload's bytes as they came; any handler that
    returns bytes answers with them as they are. An `async def` handler's
    coroutine is run to its end by `run` (on the worker's event loop). A
    handler that is (or returns) a generator or an async generator streams:
    for a `streamed` request the answer is (STREAMING, the generator); for
    another, its values are collected into one answer,
    {"chunks": [...], "result": its return value}."""
    if command == "ping":
        return None, encode({"pid": os.getpid(), "rss_bytes": rss_bytes(), "requests": served})
    if command == "info":
        return None, encode(info(module, handlers, served, started))
    fn, args, kwargs, error = prepare(module, handlers, raw, command, body)
    if error is not None:
        return error, None
    try:
        result = fn(*args, **kwargs)
        if type(result) is CoroutineType:
            result = run(result)
        if type(result) is GeneratorType or type(result) is AsyncGeneratorType:
            if streamed:
                return STREAMING, result
            result = collect(result, run)
    except BaseException as exc:  # SystemExit too: a handler must not end the worker
        return call_error(command, fn, args, kwargs, exc), None
    return answer(command, result, encode)


def next_step(generator):
    """(False, its next value), or (True, its return value) once it ended."""
    try:
        return False, next(generator)
    except StopIteration as stop:
        return True, stop.value


def collect(generator, run):
    """A stream's values and return value as one answer."""
    chunks = []
    if type(generator) is AsyncGeneratorType:
        async def drain():
            async for item in generator:
                chunks.append(item)

        run(drain())
        return {"chunks": chunks, "result": None}
    while True:
        try:
            chunks.append(next(generator))
        except StopIteration as stop:
            return {"chunks": chunks, "result": stop.value}


def prepare(module, handlers, raw, command, body):
    """The handler of `command` and its arguments from `body`: (fn, args,
    kwargs, None), or (None, None, None, the error of a request that cannot
    be run)."""
    fn = handlers.get(command)
    if fn is None:
        return None, None, None, {
            "kind": "no-such-command",
            "message": "%s has no function %s; it has: %s" % (
                module.__name__, shown(command), ", ".join(sorted(handlers)) or "none"),
        }
    if command in raw:
        return fn, (body,), {}, None
    try:
        args, kwargs = arguments(body)
    except ValueError as exc:
        return None, None, None, {"kind": "bad-request", "message": "the payload of %s is not valid JSON: %s" % (
            shown(command), exc)}
    except (RecursionError, MemoryError) as exc:
        # A payload nested deeper than the decoder goes: it is the request
        # that is bad, not the worker.
        return None, None, None, {"kind": "bad-request", "message": "the payload of %s cannot be decoded (%s: %s); send it nested less deep" % (
            shown(command), type_name(exc), exc)}
    return fn, args, kwargs, None


class Concurrent:
    """A worker that holds many calls at once (--max-concurrency N above 1).
    Its event loop reads requests as they come: an `async def` handler runs
    as a task of the loop, a plain function on one of N threads (the GIL is
    let go while it waits on I/O). Replies are written through the loop,
    which buffers what the pipe cannot take yet, so that reading goes on.
    A cancel from the host (a call past its deadline) cancels an async
    call's task, which still answers; a call on a thread cannot be stopped,
    and the host is told so (it replaces the worker once its other calls
    are done)."""

    def __init__(self, module, handlers, raw, encode, started, options):
        import asyncio
        import concurrent.futures
        import inspect

        self.asyncio = asyncio
        self.module, self.handlers, self.raw = module, handlers, raw
        self.encode, self.started = encode, started
        self.max_reply_bytes = options.max_reply_bytes
        self.asynchronous = {
            name for name, fn in handlers.items()
            if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)}
        self.credits = {}  # request id of a stream -> [credit left, event set when it grows]
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.threads = concurrent.futures.ThreadPoolExecutor(
            options.max_concurrency, thread_name_prefix="snakepen-call")
        self.running = {}  # request id -> (task or future, runs on a thread)
        self.requests = Requests(PROTOCOL_FD)  # its buffer and frame parsing (reads are the loop's)
        self.served = 0
        self.hung_up = False
        self.write = None

    def serve(self):
        loop = self.loop
        replies = os.fdopen(REPLIES_FD, "wb", buffering=0)
        one_socket = stat.S_ISSOCK(os.fstat(REPLIES_FD).st_mode)

        class Replies(self.asyncio.BaseProtocol):
            def connection_made(self, transport):
                if one_socket:
                    # One connection carries both ways (a worker on a Ray
                    # node): the pipe transport watches its fd for a hang-up,
                    # and would take a request arriving for one and close the
                    # fd. Its watch is added right after this callback; this
                    # removal comes after it, and before any readiness is
                    # handled. The requests' EOF says a hang-up.
                    loop.call_soon(loop.remove_reader, REPLIES_FD)

        transport, _ = loop.run_until_complete(loop.connect_write_pipe(Replies, replies))
        self.write = transport.write
        loop.add_reader(PROTOCOL_FD, self.readable)
        try:
            loop.run_forever()
        finally:
            self.threads.shutdown(wait=False, cancel_futures=True)

    def readable(self):
        data = os.read(PROTOCOL_FD, READ_BYTES)
        if not data:  # the host hung up
            self.loop.remove_reader(PROTOCOL_FD)
            self.hung_up = True
            self.stop_when_done()
            return
        self.requests.buffer += data
        while True:
            frame = self.requests.take()
            if frame is None:
                break
            self.dispatch(*frame)

    def dispatch(self, header, body):
        if "cancel" in header:
            self.cancel(header["cancel"])
            return
        if "command" not in header:  # more credit for a stream
            state = self.credits.get(header.get("id"))
            if state is not None:
                state[0] += header.get("credit", 0)
                state[1].set()
            return
        self.served += 1
        rid, command = header.get("id"), header.get("command", "")
        streamed, credit = header.get("stream", False), header.get("credit", 0)
        if command in self.asynchronous:
            task = self.loop.create_task(self.run_async(rid, command, body, streamed, credit))
            self.running[rid] = (task, False)
        elif command in self.handlers:
            future = self.loop.run_in_executor(
                self.threads, handle, self.module, self.handlers, self.raw, command, body,
                self.encode, self.served, self.started, self.run_on_loop, streamed)
            self.running[rid] = (future, True)
            future.add_done_callback(lambda done: self.finished(rid, command, done, credit))
        else:  # a built-in, or no such command: answered at once
            try:
                error, encoded = handle(self.module, self.handlers, self.raw, command, body,
                                        self.encode, self.served, self.started, None)
            except BaseException as exc:
                error, encoded = internal_error(command, exc), None
            self.respond(rid, command, error, encoded)

    def cancel(self, rid):
        entry = self.running.get(rid)
        if entry is None:
            return  # it answered meanwhile
        work, on_thread = entry
        if on_thread:
            send(self.write, {"kind": "uncancellable", "id": rid})
        else:
            work.cancel()

    async def run_async(self, rid, command, body, streamed, credit):
        fn, args, kwargs, error = prepare(self.module, self.handlers, self.raw, command, body)
        encoded = None
        if error is None:
            try:
                result = fn(*args, **kwargs)
                if type(result) is CoroutineType:
                    result = await result
                if type(result) is GeneratorType or type(result) is AsyncGeneratorType:
                    if streamed:
                        error, encoded = await self.stream(rid, command, result, credit)
                    else:
                        result = await self.collect(result)
            except self.asyncio.CancelledError:
                error = {"kind": "timeout", "message": "%s was cancelled at its deadline" % shown(command)}
            except BaseException as exc:  # SystemExit too: a handler must not end the worker
                error = call_error(command, fn, args, kwargs, exc)
            if error is None and encoded is None:
                try:
                    error, encoded = answer(command, result, self.encode)
                except BaseException as exc:
                    error = internal_error(command, exc)
        self.running.pop(rid, None)
        self.respond(rid, command, error, encoded)
        self.stop_when_done()

    async def collect(self, generator):
        """A stream's values as one answer, for a caller that did not ask for a stream."""
        if type(generator) is AsyncGeneratorType:
            chunks = [item async for item in generator]
            return {"chunks": chunks, "result": None}
        return await self.loop.run_in_executor(self.threads, collect, generator, None)

    async def stream(self, rid, command, generator, credit):
        """Sends each value of `generator` as a chunk of request `rid`, as
        far as the host's credit goes; a cancel (this task's) closes the
        generator, whose `finally` runs. The outcome as handle() gives it."""
        asyncio = self.asyncio
        state = self.credits[rid] = [credit, asyncio.Event()]
        asynchronous = type(generator) is AsyncGeneratorType
        head = b'{"id":%d,"chunk":true}' % rid
        step = None
        try:
            while True:
                while state[0] <= 0:
                    state[1].clear()
                    await state[1].wait()
                if asynchronous:
                    try:
                        item = await generator.__anext__()
                    except StopAsyncIteration:
                        return answer(command, None, self.encode)
                else:
                    step = self.loop.run_in_executor(self.threads, next_step, generator)
                    done, item = await asyncio.shield(step)
                    if done:
                        return answer(command, item, self.encode)
                error, chunk = answer(command, item, self.encode)
                if error is not None:
                    return error, None
                put(self.write, head, chunk)
                state[0] -= 1
        except asyncio.CancelledError:
            return {"kind": "timeout", "message": "%s was cancelled" % shown(command)}, None
        except BaseException as exc:  # SystemExit too: a handler must not end the worker
            return call_error(command, None, (), {}, exc), None
        finally:
            del self.credits[rid]
            try:
                if asynchronous:
                    await generator.aclose()
                else:
                    if step is not None and not step.done():
                        await asyncio.wait([step])  # a generator runs on one thread at a time
                    await self.loop.run_in_executor(self.threads, generator.close)
            except BaseException:  # a generator that raises on close: its call is over
                pass

    def run_on_loop(self, coroutine):
        """Runs, from a call's thread, a coroutine a plain function returned."""
        return self.asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def finished(self, rid, command, done, credit):
        self.running.pop(rid, None)
        try:
            error, encoded = done.result()
        except BaseException as exc:  # handle() catches the handler's own
            error, encoded = internal_error(command, exc), None
        if error is STREAMING:  # a plain function gave a generator: stream it from here
            task = self.loop.create_task(self.stream_then_respond(rid, command, encoded, credit))
            self.running[rid] = (task, False)
            return
        self.respond(rid, command, error, encoded)
        self.stop_when_done()

    async def stream_then_respond(self, rid, command, generator, credit):
        error, encoded = await self.stream(rid, command, generator, credit)
        self.running.pop(rid, None)
        self.respond(rid, command, error, encoded)
        self.stop_when_done()

    def respond(self, rid, command, error, encoded):
        if error is None and len(encoded) > self.max_reply_bytes - REPLY_HEADER_ROOM:
            error, encoded = too_large(command, len(encoded), self.max_reply_bytes), None
        respond(self.write, rid, error, encoded)

    def stop_when_done(self):
        if self.hung_up and not self.running:
            self.loop.stop()


def answer(command, result, encode):
    """A handler's result as the answer's bytes, or the error of one JSON
    cannot encode."""
    try:
        return None, encode(result)
    except (TypeError, ValueError, RecursionError, MemoryError) as exc:
        return {
            "kind": "python-exception",
            "type": "TypeError",
            "message": "%s returned a value JSON cannot encode (a %s): %s: %s. Return dicts, lists, str, int, float, bool or None, nested less than %d deep, or bytes (sent as they are)" % (
                shown(command), type_name(result), type_name(exc), exc, sys.getrecursionlimit()),
            "traceback": "",
        }, None


def too_large(command, size, limit):
    """The error of an answer the host would refuse as an oversized frame:
    the same call would fail the same way again, so it is not a crash."""
    return {
        "kind": "python-exception",
        "type": "snakepen.ReplyTooLarge",
        "message": "%s returned %d bytes of JSON, over the pool's limit of %d (max_frame_bytes); return less, or raise max_frame_bytes" % (
            shown(command), size, limit - REPLY_HEADER_ROOM),
        "traceback": "",
    }


def internal_error(command, exc):
    import traceback

    return {
        "kind": "python-exception",
        "type": type_name(exc),
        "message": "the snakepen worker failed while serving %s: %s" % (shown(command), safe_str(exc)),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def shown(name, limit=80):
    """A command name as messages quote it: cut, so that a megabyte of name
    is not echoed back."""
    text = repr(name)
    if len(text) <= limit:
        return text
    return "%s... (%d characters)" % (text[:limit], len(name))


def safe_str(exc):
    try:
        return str(exc)
    except BaseException:  # an exception whose __str__ raises
        return "<%s, whose str() failed>" % type_name(exc)


def bounded(error):
    """The error with its message and traceback cut to what a frame header
    should carry (a traceback keeps its end, where the cause is)."""
    for key, keep_end in (("message", False), ("traceback", True)):
        text = error.get(key)
        if isinstance(text, str) and len(text) > MAX_ERROR_TEXT:
            cut = len(text) - MAX_ERROR_TEXT
            if keep_end:
                error[key] = "[%d characters cut]\n%s" % (cut, text[-MAX_ERROR_TEXT:])
            else:
                error[key] = "%s [%d characters cut]" % (text[:MAX_ERROR_TEXT], cut)
    return error


def arguments(body):
    if not body:
        return (), {}
    value = loads(body)
    if isinstance(value, dict):
        return (), value
    if isinstance(value, list):
        return value, {}
    return (value,), {}


def call_error(command, fn, args, kwargs, exc):
    if fn is not None and isinstance(exc, TypeError) and exc.__traceback__ is not None and exc.__traceback__.tb_next is None:
        # Raised by the call itself, not inside the function: the payload
        # does not fit the signature.
        import inspect

        try:
            inspect.signature(fn).bind(*args, **kwargs)
        except TypeError as why:
            try:
                signature = "%s%s" % (command, inspect.signature(fn))
            except (TypeError, ValueError):
                signature = command
            return {"kind": "bad-request", "message": "the payload does not fit %s: %s" % (signature, why)}
        except ValueError:
            pass
    import traceback

    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None  # skip this file's frame
    return {
        "kind": "python-exception",
        "type": type_name(exc),
        "message": safe_str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, tb)),
    }


def type_name(value):
    cls = value if isinstance(value, type) else type(value)
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    return "%s.%s" % (cls.__module__, cls.__qualname__)


def info(module, handlers, served, started):
    return {
        "pid": os.getpid(),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "module": module.__name__,
        "functions": sorted(handlers),
        "rss_bytes": rss_bytes(),
        "requests": served,
        "uptime_s": round(time.monotonic() - started, 3),
    }


def rss_bytes():
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


_raw_decode = json.JSONDecoder().raw_decode  # the settings json.loads uses


def loads(data):
    """json.loads(data) for bytes: the same value or the same error, sooner
    for what hosts send (UTF-8 without surrounding whitespace), which skips
    json.loads's encoding detection and whitespace scans."""
    try:
        text = data.decode("utf-8")
        value, end = _raw_decode(text)
        if end == len(text):
            return value
    except ValueError:  # not UTF-8, or not JSON from its first character
        pass
    return json.loads(data)


def writer(fd):
    """A function that writes all of its bytes to the pipe `fd`."""
    write = os.write

    def write_all(data):
        sent = write(fd, data)
        if sent < len(data):  # a signal cut a large write short
            view = memoryview(data)
            while sent < len(view):
                sent += write(fd, view[sent:])

    return write_all


def send(write, header, body=b""):
    """Writes one frame with `write` (a function that writes all it is given)."""
    put(write, json.dumps(header, separators=(",", ":")).encode(), body)


def put(write, head, body):
    """Writes the frame of `head` (JSON text, as bytes) and `body`."""
    if len(body) < 65536:
        write(FRAME.pack(len(head), len(body)) + head + body)
    else:  # no copy of a large body: two writes instead
        write(FRAME.pack(len(head), len(body)) + head)
        write(body)


def reply_ok(write, rid, encoded):
    if type(rid) is int:
        put(write, b'{"id":%d,"ok":true}' % rid, encoded)  # json.dumps's text, sooner
    else:
        send(write, {"id": rid, "ok": True}, encoded)


def reply_error(write, rid, error):
    send(write, {"id": rid, "ok": False, "error": error})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
