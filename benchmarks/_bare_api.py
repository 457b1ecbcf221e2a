"""The baseline of ``bench_single_record.py``: a bare ASGI produce endpoint on the same uvicorn set-up as
``pinpipe api serve`` (the same parser and event loop, chosen the same way), which reads the body and parses
it as the API does and answers the same shape without writing: the ceiling of the server stack.

    .venv/bin/python benchmarks/_bare_api.py PORT    # prints "listening on URL", serves until SIGTERM
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import orjson  # noqa: E402
import uvicorn  # noqa: E402

from pinpipe.ingest.errors import KAFKA_MEDIA_TYPE  # noqa: E402
from pinpipe.ingest.rest_proxy import parse_records  # noqa: E402
from pinpipe.ingest.service import parse_json  # noqa: E402
from pinpipe.serve import bound_url, listen  # noqa: E402

OK = b'{"status":"ok"}'


class BareApp:
    """``POST /topics/{topic}``: parse, number the records, answer; ``GET /healthz``; lifespan."""

    def __init__(self) -> None:
        self.offset = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["method"] == "GET":
            await self.answer(send, OK, b"application/json")
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        offsets = []
        for _ in parse_records(parse_json(b"".join(chunks)), 500):
            offsets.append({"partition": 0, "offset": self.offset, "error_code": None, "error": None})
            self.offset += 1
        body = orjson.dumps({"offsets": offsets, "key_schema_id": None, "value_schema_id": None})
        await self.answer(send, body, KAFKA_MEDIA_TYPE.encode())

    @staticmethod
    async def answer(send: Any, body: bytes, media_type: bytes) -> None:
        headers = [(b"content-length", str(len(body)).encode()), (b"content-type", media_type)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    sock = listen("127.0.0.1", int(sys.argv[1]))
    print(f"listening on {bound_url(sock)}", flush=True)
    config = uvicorn.Config(BareApp(), log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
