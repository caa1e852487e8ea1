"""The benchmark's baseline: a bare ASGI hello-world on the server localbcc runs on.

Run as ``python bench/hello.py PORT``. The uvicorn options are those of
``localbcc serve`` with one process (src/localbcc/server.py): uvloop,
httptools, no access log, no log config, the same keep-alive and shutdown
timeouts. localbcc runs a subclass of uvicorn's httptools protocol that adds
header timeouts (api/protocol.py); that cost counts as localbcc's, so the
baseline is uvicorn's own protocol. Each ratio in bench/RESULTS.md is a
localbcc figure divided by this app's requests per second.
"""
from __future__ import annotations

import sys

import uvicorn

_BODY = b"Hello, world!"
_START = {"type": "http.response.start", "status": 200,
          "headers": [(b"content-type", b"text/plain"),
                      (b"content-length", str(len(_BODY)).encode())]}
_RESPONSE = {"type": "http.response.body", "body": _BODY}


async def app(scope, receive, send):
    if scope["type"] == "http":
        await send(_START)
        await send(_RESPONSE)
    elif scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None,
                access_log=False, loop="uvloop", http="httptools", lifespan="on",
                timeout_keep_alive=30, timeout_graceful_shutdown=10)
