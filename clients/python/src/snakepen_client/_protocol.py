"""What the sync and async clients share, with no I/O: routes, request
bodies, how answers and stream events decode, and the retry policy.

Kept apart so that both clients read the API the same way.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union
from urllib.parse import quote

from ._errors import (
    ConnectionFailed,
    PoolExhausted,
    SnakepenError,
    Unavailable,
    WorkerCrashed,
    error_from_json,
)

#: One call of a batch: `(command, payload)`, or a mapping with the keys
#: of a call's body (`command`, `payload`, `session`, `deadline_ms`).
BatchCall = Union[tuple[str, Any], Mapping[str, Any]]

#: The errors worth sending an idempotent call again for: the call did not
#: run to its end, and another attempt may find a worker.
RETRYABLE: tuple[type[SnakepenError], ...] = (WorkerCrashed, PoolExhausted, Unavailable, ConnectionFailed)

#: What a stream's generator yields first: its answer is open (a request
#: the server refused has raised instead).
OPENED = object()

#: The first wait between attempts, and the most any wait may be (a
#: server's Retry-After included), in seconds.
BACKOFF_BASE = 0.1
BACKOFF_MAX = 2.0


def route(endpoint: str, pool: str | None) -> str:
    """The path of `endpoint` (`call`, `stream`, `batch`, `functions`), in
    `pool` when one is named."""
    if pool is None:
        return f"/v1/{endpoint}"
    return f"/v1/pools/{quote(pool, safe='')}/{endpoint}"


def call_body(
    command: str,
    payload: Any = None,
    session: str | None = None,
    deadline_ms: int | None = None,
) -> dict[str, Any]:
    """A call's body; keys that are None are left out (no payload means the
    handler gets no arguments)."""
    body = {"command": command, "payload": payload, "session": session, "deadline_ms": deadline_ms}
    return {key: value for key, value in body.items() if value is not None}


def batch_body(calls: Sequence[BatchCall]) -> dict[str, Any]:
    """The body of a batch, from `(command, payload)` pairs or call mappings."""
    requests = []
    for call in calls:
        if isinstance(call, Mapping):
            requests.append({key: value for key, value in call.items() if value is not None})
        else:
            command, payload = call
            requests.append(call_body(command, payload))
    return {"requests": requests}


def encode(body: Any) -> bytes:
    """JSON as the server reads it; NaN and infinities are refused here,
    since they are not JSON and the server would refuse them too."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def decode(content: bytes, status: int) -> Any:
    """A successful answer's JSON; an answer that is not JSON (a proxy's
    page) is an error of kind `invalid-response`."""
    try:
        return json.loads(content)
    except ValueError:
        text = content[:200].decode("utf-8", "replace")
        raise SnakepenError(
            f"the server's answer is not JSON: {text!r}", kind="invalid-response", status=status
        ) from None


def payload_of(outcome: Mapping[str, Any]) -> Any:
    """A call's answer: its JSON, its bytes when it is not JSON (sent as
    `payload_base64`), or None when the handler answered nothing."""
    if "payload" in outcome:
        return outcome["payload"]
    if "payload_base64" in outcome:
        return base64.b64decode(outcome["payload_base64"])
    return None


def batch_results(body: Any) -> list[Any]:
    """A batch's answers in request order, each a payload or the typed
    exception of that call (returned, not raised: the others succeeded)."""
    results = []
    for result in body["results"]:
        if "error" in result:
            results.append(error_from_json(result["error"], status=result.get("status")))
        else:
            results.append(payload_of(result))
    return results


def backoff(attempt: int, error: SnakepenError) -> float:
    """Seconds to wait before attempt `attempt + 1`: the server's
    Retry-After when it sent one, else 0.1 s doubling; at most 2 s either
    way, so that a retried call never stalls its caller for long."""
    wait = error.retry_after if error.retry_after is not None else BACKOFF_BASE * 2**attempt
    return min(wait, BACKOFF_MAX)


@dataclass
class ServerSentEvent:
    """One event of a `text/event-stream`."""

    event: str = "message"
    data: str = ""


class SSEDecoder:
    """Server-Sent Events, one line at a time, as the HTML standard reads
    them: `data:` lines join with newlines, a blank line ends an event,
    comments (`:` lines, the server's keep-alives) are skipped, and one
    leading space after the colon is dropped."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerSentEvent | None:
        """Takes one line (without its line end); returns the event it
        completes, if it completes one."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event, data = self._event, self._data
        self._event, self._data = "", []
        if not data:
            return None
        return ServerSentEvent(event or "message", "\n".join(data))


class EventReader:
    """A stream's answer, one line at a time: gives back each chunk,
    records the `end` event's result, and raises the `error` event's typed
    exception. Events of other names are not the API's (a newer server's)
    and are skipped."""

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self.ended = False
        self.result: Any = None
        self.worker_pid: int | None = None

    def feed(self, line: str) -> tuple[bool, Any]:
        """`(True, chunk)` when `line` completes a chunk, else `(False, None)`;
        after the last event, `ended` is true."""
        event = self._decoder.feed(line)
        if event is None:
            return False, None
        if event.event == "chunk":
            return True, json.loads(event.data)
        if event.event == "chunk-base64":
            return True, base64.b64decode(event.data)
        if event.event == "end":
            outcome = json.loads(event.data)
            self.ended, self.result, self.worker_pid = True, payload_of(outcome), outcome.get("worker_pid")
        elif event.event == "error":
            self.ended = True
            raise error_from_json(json.loads(event.data).get("error"))
        return False, None


def cut_short() -> ConnectionFailed:
    """The error of a stream whose connection closed before its last event."""
    return ConnectionFailed("the stream ended before its end event: the connection closed early")
