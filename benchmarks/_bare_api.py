"""The baseline of ``bench_single_record.py``: a bare FastAPI produce endpoint on the same uvicorn set-up
as ``pinpipe api serve``, which parses the body as the API does and answers the same shape without writing.

    .venv/bin/python benchmarks/_bare_api.py PORT    # prints "listening on URL", serves until SIGTERM
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import orjson  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from starlette.responses import Response  # noqa: E402

from pinpipe.ingest.errors import KafkaJSONResponse  # noqa: E402
from pinpipe.ingest.rest_proxy import parse_records  # noqa: E402
from pinpipe.ingest.service import parse_json  # noqa: E402
from pinpipe.serve import bound_url, listen  # noqa: E402


def bare_app() -> FastAPI:
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
    config = uvicorn.Config(bare_app(), log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
