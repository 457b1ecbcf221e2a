"""The baselines of ``bench_single_record.py``: a bare produce endpoint on the same uvicorn set-up as
``pinpipe api serve`` (the same parser and event loop, chosen the same way), which reads the body and parses
it as the API does and answers the same shape without writing. ``asgi`` (the target's baseline) is a plain
ASGI app: the ceiling of the server stack; ``fastapi`` is the same endpoint as a FastAPI route, for what a
framework route costs on top.

    .venv/bin/python benchmarks/_bare_api.py PORT [asgi|fastapi]   # prints "listening on URL"; until SIGTERM
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
from fastapi import FastAPI, Request  # noqa: E402
from starlette.responses import Response  # noqa: E402

from pinpipe.ingest.errors import KAFKA_MEDIA_TYPE, KafkaJSONResponse  # noqa: E402
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


def fastapi_app() -> FastAPI:
    app = FastAPI()
    offset = 0

    @app.post("/topics/{topic}")
    async def produce(topic: str, request: Request) -> Response:
        nonlocal offset
        items = parse_records(parse_json(await request.body()), 500)
        offsets = []
        for _ in items:
            offsets.append({"partition": 0, "offset": offset, "error_code": None, "error": None})
            offset += 1
        return KafkaJSONResponse(
            orjson.dumps({"offsets": offsets, "key_schema_id": None, "value_schema_id": None})
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    sock = listen("127.0.0.1", int(sys.argv[1]))
    print(f"listening on {bound_url(sock)}", flush=True)
    app = fastapi_app() if sys.argv[2:] == ["fastapi"] else BareApp()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
