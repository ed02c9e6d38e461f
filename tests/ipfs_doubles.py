"""Test doubles of the pinning services, speaking their documented HTTP contracts on 127.0.0.1.

- Pinata: POST /pinning/pinFileToIPFS (multipart ``file``, ``pinataOptions``, ``pinataMetadata``;
  ``Authorization: Bearer <JWT>``) → ``{"IpfsHash", "PinSize", "Timestamp"}``.
- An IPFS node's RPC (kubo): POST /api/v0/add?cid-version=1&raw-leaves=true (multipart ``file``)
  → one JSON line ``{"Name", "Hash", "Size"}``.

The CID they answer comes from js-ipfs's importer (Node), not from the code under test.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from integration.server import free_port
from waiting import eventually

NODE_TOOLS = Path(__file__).resolve().parent / "node"


def js_cid(data: bytes) -> str:
    with tempfile.NamedTemporaryFile() as handle:
        handle.write(data)
        handle.flush()
        done = subprocess.run(["node", str(NODE_TOOLS / "unixfs-cid.mjs"), handle.name], capture_output=True,
                              text=True, timeout=60, check=True)
    return done.stdout.strip()


@dataclass
class Upload:
    service: str
    filename: str
    data: bytes
    headers: dict[str, str]
    form: dict[str, str]
    query: dict[str, str]


@dataclass
class Doubles:
    """Both services in one app; ``fail_with`` makes the next uploads fail, ``wrong_cid`` lie."""

    jwt: str = "test-jwt"
    uploads: list[Upload] = field(default_factory=list)
    fail_with: int | None = None
    wrong_cid: str | None = None

    def answer_cid(self, data: bytes) -> str:
        return self.wrong_cid or js_cid(data)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/pinning/pinFileToIPFS")
        async def pinata(request: Request):
            if request.headers.get("authorization") != f"Bearer {self.jwt}":
                return JSONResponse({"error": {"reason": "INVALID_CREDENTIALS", "details": "bad JWT"}}, 401)
            upload = await self._record("pinata", request)
            if self.fail_with:
                return JSONResponse({"error": {"reason": "SERVER_ERROR", "details": "try later"}}, self.fail_with)
            return {"IpfsHash": self.answer_cid(upload.data), "PinSize": len(upload.data),
                    "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}

        @app.post("/api/v0/add")
        async def kubo_add(request: Request):
            upload = await self._record("kubo", request)
            if self.fail_with:
                return JSONResponse({"Message": "node busy", "Code": 0, "Type": "error"}, self.fail_with)
            line = {"Name": upload.filename, "Hash": self.answer_cid(upload.data), "Size": str(len(upload.data))}
            return PlainTextResponse(json.dumps(line) + "\n", media_type="application/json")

        return app

    async def _record(self, service: str, request: Request) -> Upload:
        form = await request.form()
        file = form["file"]
        upload = Upload(service=service, filename=file.filename, data=await file.read(),
                        headers=dict(request.headers), form={k: v for k, v in form.items() if isinstance(v, str)},
                        query=dict(request.query_params))
        self.uploads.append(upload)
        return upload


class DoublesServer:
    """The doubles on a free 127.0.0.1 port, in a thread of the test process."""

    def __init__(self, doubles: Doubles) -> None:
        self.doubles = doubles
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(doubles.app(), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> DoublesServer:
        self.thread.start()
        if not eventually(lambda: self.server.started, timeout=10, every=0.02):
            raise TimeoutError("the IPFS doubles did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
