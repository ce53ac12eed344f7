"""A tiny client for `snakepen serve`, standard library only (Python 3.9+).

    from client import Snakepen, SnakepenError
    pen = Snakepen("http://127.0.0.1:8787")  # token: SNAKEPEN_TOKEN, or token="..."
    pen.call("word_stats", {"text": "the cat and the hat"})
    pen.batch([("add", [1, 2]), ("add", [3, 4])])

or from a shell:

    python3 examples/client.py [--url URL] [--session S] COMMAND [JSON]
"""

import json
import os
import sys
import urllib.error
import urllib.request


class SnakepenError(Exception):
    """A call that came back as an error: the contract's `kind`, the HTTP
    status, the server's message, and the case's fields in `detail`."""

    def __init__(self, status, kind, message, detail=None):
        super().__init__("%s (HTTP %d): %s" % (kind, status, message))
        self.status, self.kind, self.message, self.detail = status, kind, message, detail


class Snakepen:
    def __init__(self, url="http://127.0.0.1:8787", timeout=60, token=None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        # The server's bearer token, when it has one (see "Running it safely").
        self.token = token if token is not None else os.environ.get("SNAKEPEN_TOKEN")

    def call(self, command, payload=None, session=None, deadline_ms=None):
        """Runs one call; returns its payload, or raises SnakepenError."""
        body = {"command": command}
        if payload is not None:
            body["payload"] = payload
        if session is not None:
            body["session"] = session
        if deadline_ms is not None:
            body["deadline_ms"] = deadline_ms
        return self._post("/v1/call", body).get("payload")

    def batch(self, calls):
        """Runs (command, payload) pairs concurrently; returns a list in the
        same order, each a payload or a SnakepenError."""
        body = {"requests": [{"command": c, "payload": p} for c, p in calls]}
        out = []
        for result in self._post("/v1/batch", body)["results"]:
            if "error" in result:
                error = result["error"]
                out.append(SnakepenError(result["status"], error["kind"], error["message"], error.get("detail")))
            else:
                out.append(result.get("payload"))
        return out

    def status(self):
        return self._get("/v1/status")

    def _get(self, path):
        return self._send(urllib.request.Request(self.url + path))

    def _post(self, path, body):
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        return self._send(request)

    def _send(self, request):
        if self.token:
            request.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            try:
                error = json.loads(e.read())["error"]
            except (ValueError, KeyError):
                raise SnakepenError(e.code, "http", str(e)) from None
            raise SnakepenError(e.code, error["kind"], error["message"], error.get("detail")) from None


def main(argv):
    url, session, rest = "http://127.0.0.1:8787", None, []
    it = iter(argv)
    for arg in it:
        if arg == "--url":
            url = next(it)
        elif arg == "--session":
            session = next(it)
        else:
            rest.append(arg)
    if not rest:
        sys.stderr.write(__doc__)
        return 2
    payload = json.loads(rest[1]) if len(rest) > 1 else None
    try:
        print(json.dumps(Snakepen(url).call(rest[0], payload, session=session)))
    except SnakepenError as e:
        sys.stderr.write("error: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
