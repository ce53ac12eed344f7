"""Checks an OpenAPI document of `snakepen serve` with described.py's
handlers (tests/integration/openapi.rs): valid OpenAPI 3.1, and each
handler's request schema takes what its signature takes.

    python check_openapi.py openapi.json
"""
import json, sys
from openapi_spec_validator import validate
from jsonschema import Draft202012Validator
doc = json.load(open(sys.argv[1]))
validate(doc)
schemas = doc["components"]["schemas"]
def accepts(name, payload):
    validator = Draft202012Validator({"$ref": "#/components/schemas/" + name, "components": doc["components"]})
    return validator.is_valid(payload)
checks = {
    "default.add.payload": [({"a": 1}, True), ({"a": 1, "b": 2}, True), ([1, 2], True), (5, True),
                            ({"a": "one"}, False), ({"b": 2}, False), ([1, 2, 3], False), ({"a": 1, "c": 3}, False)],
    "default.fetch.payload": [({"url": "u", "mode": "slow"}, True), ({"url": "u", "mode": "medium"}, False),
                              ({"url": "u", "retries": None}, True)],
    "default.shapes.payload": [({"point": {"x": 1, "y": 2.5}, "options": {"depth": 1}, "colour": "red",
                                 "rows": [{"a": 1}], "pair": [1, "b"]}, True),
                                ({"point": {"x": 1}, "options": {"depth": 1}, "colour": "red",
                                  "rows": [], "pair": [1, "b"]}, False)],
    "default.add.call": [({"command": "add", "payload": {"a": 1}}, True),
                         ({"command": "add", "payload": {"a": "x"}}, False)],
}
failed = [(name, payload, want) for name, cases in checks.items() for payload, want in cases
          if accepts(name, payload) != want]
assert not failed, failed
paths = doc["paths"]
for path in ["/v1/call", "/v1/stream", "/v1/batch", "/v1/functions", "/v1/status", "/healthz",
             "/readyz", "/metrics", "/openapi.json", "/v1/pools/{pool}/call", "/v1/pools/default/call"]:
    assert path in paths, path
body = paths["/v1/call"]["post"]["requestBody"]["content"]["application/json"]["schema"]
refs = [case.get("$ref") for case in body["anyOf"]]
assert "#/components/schemas/default.add.call" in refs, refs
statuses = set(paths["/v1/call"]["post"]["responses"])
assert {"200", "400", "404", "500", "502", "503", "504"} <= statuses, statuses
kinds = schemas["ErrorKind"]["enum"]
assert "python-exception" in kinds and "no-such-pool" in kinds, kinds
print("ok", doc["openapi"], len(paths), "paths", len(schemas), "schemas")
