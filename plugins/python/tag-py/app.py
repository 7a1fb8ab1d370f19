"""tag-py: a Switchyard plugin written in Python.

Parses each record value as a JSON object, sets one field (by default
`"tagged_by": "python"`) and emits it. Values that are not JSON objects are
rejected with a reason; tombstones pass through unchanged.

Config (JSON, from the route's `config` table):
  field          name of the field to set           (default "tagged_by")
  value          value to set it to (any JSON)       (default "python")
  probe_sandbox  if true, also add a "sandbox" field reporting what the
                 plugin got when it tried to read a file, list a directory
                 and read the environment (used by the tests)

The types come from bindings that componentize-py generates from ../../../wit
at build time (`componentize-py -d wit -w plugin bindings DIR`); they are not
copied here.
"""

import json
import os

from wit_world import exports
from wit_world.imports import log, types
from componentize_py_types import Err

_config = {"field": "tagged_by", "value": "python", "probe_sandbox": False}


def _probe_sandbox():
    """What the sandbox lets this plugin see: each entry is either what was
    read or the error raised."""
    report = {}
    try:
        with open("/etc/passwd") as f:
            report["file"] = "read %d bytes" % len(f.read())
    except Exception as e:  # noqa: BLE001 - the error is the result
        report["file"] = "error: %s: %s" % (type(e).__name__, e)
    try:
        report["listdir"] = os.listdir("/")
    except Exception as e:  # noqa: BLE001
        report["listdir"] = "error: %s: %s" % (type(e).__name__, e)
    report["env"] = dict(os.environ)
    return report


class Transform(exports.Transform):
    def init(self, config: str) -> None:
        try:
            parsed = json.loads(config or "{}")
        except ValueError as e:
            raise Err("config is not JSON: %s" % e)
        if not isinstance(parsed, dict):
            raise Err("config must be a JSON object")
        unknown = sorted(set(parsed) - set(_config))
        if unknown:
            raise Err("unknown config keys: %s" % ", ".join(unknown))
        if "field" in parsed and not isinstance(parsed["field"], str):
            raise Err("`field` must be a string")
        _config.update(parsed)
        log.log(log.Level.DEBUG, "tag-py: setting %r" % _config["field"])

    def process(self, batch):
        sandbox = _probe_sandbox() if _config["probe_sandbox"] else None
        return [self._one(event, sandbox) for event in batch]

    def _one(self, event, sandbox):
        if event.value is None:
            # A tombstone: pass it through as it is.
            return types.Outcome_Emit(
                [types.Output(None, event.key, None, event.headers)]
            )
        try:
            doc = json.loads(event.value)
        except ValueError as e:
            return types.Outcome_Reject(["value is not JSON: %s" % e])
        if not isinstance(doc, dict):
            return types.Outcome_Reject(
                ["value is JSON but not an object (%s)" % type(doc).__name__]
            )
        doc[_config["field"]] = _config["value"]
        if sandbox is not None:
            doc["sandbox"] = sandbox
        value = json.dumps(doc, separators=(",", ":")).encode()
        return types.Outcome_Emit(
            [types.Output(None, event.key, value, event.headers)]
        )
