"""chaos-py: a test fixture written in Python that misbehaves on request,
so that the host's bounds on WASI calls can be tested. Not for production
routes.

The record value says what to do:
  sleep      call time.sleep(60): a blocking WASI call (a monotonic-clock
             pollable waited on with wasi:io/poll), which only the host can
             cut short at the call's deadline;
  print      write 1 MiB to stdout (a blocking WASI stream write, which the
             host discards);
  socket     try to open a UDP socket (the sandbox has no network);
  anything else: emit the record unchanged.

The command may also be a JSON string ("sleep", quotes included), for
routes fed by an HTTP API that accepts JSON only.

Config: none ({}).
"""

import socket
import sys
import time

from wit_world import exports
from wit_world.imports import types


def _command(event):
    text = (event.value or b"").decode("utf-8", "replace")
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    return text


def _emit(event):
    return types.Outcome_Emit(
        [types.Output(None, event.key, event.value, event.headers)]
    )


class Transform(exports.Transform):
    def init(self, config: str) -> None:
        pass

    def process(self, batch):
        return [self._one(event) for event in batch]

    def _one(self, event):
        command = _command(event)
        if command == "sleep":
            time.sleep(60)
        elif command == "print":
            sys.stdout.write("x" * (1 << 20))
            sys.stdout.flush()
        elif command == "socket":
            try:
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                return types.Outcome_Reject(["a socket was opened"])
            except Exception as e:  # noqa: BLE001 - the error is the result
                return types.Outcome_Reject(["%s: %s" % (type(e).__name__, e)])
        return _emit(event)
