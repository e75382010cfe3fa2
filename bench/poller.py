"""A lean HTTP/1.1 client for the revocation benchmarks' polling.

The revocation samples poll introspection and refresh back to back from the benchmark's own
process, on the same two cores as the stack. With httpx each poll cost the observer ≈ 1–2 ms of
CPU, so the observer took a large share of the CPU the revocation it measures needs, and its
busy event loop saw answers late (docs/performance.md, "Revocation: where the time goes").
`Poller` keeps one keep-alive connection and writes a prepared request, which costs a small
fraction of that; it speaks only what the polls need (POST of a form, a Content-Length or
chunked answer) and reads every answer in full, status and body, so a benchmark can check it.
"""

from __future__ import annotations

import asyncio
import base64
from urllib.parse import urlencode, urlsplit


class Poller:
    """One keep-alive HTTP/1.1 connection to the origin of `base_url` (http only)."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"Poller speaks plain http to one origin, not {base_url!r}")
        self._host, self._port = parts.hostname, parts.port or 80
        self._authority = parts.netloc
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post_form(
        self, url: str, form: dict[str, str], basic: tuple[str, str] | None = None
    ) -> tuple[int, bytes]:
        """POST `form` to `url` (same origin); (status, body). A connection the server closed is
        opened again once."""
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if basic is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
        return await self.post(url, urlencode(form).encode(), headers)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """POST `body` with `headers` to `url` (same origin); (status, body), as `post_form`."""
        target = urlsplit(url)
        if target.netloc != self._authority:
            raise ValueError(f"{url!r} is not on {self._authority}")
        head = [
            f"POST {target.path}{'?' + target.query if target.query else ''} HTTP/1.1",
            f"Host: {self._authority}",
            *(f"{name}: {value}" for name, value in headers.items()),
            f"Content-Length: {len(body)}",
        ]
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        for attempt in (1, 2):
            reader, writer = await self.connect()
            try:
                writer.write(request)
                status, answer, closing = await _answer(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt == 2:
                    raise
                continue
            if closing:
                await self.close()
            return status, answer
        raise AssertionError("unreachable")

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The open connection (opened now if there is none): call it before timing starts."""
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._host, self._port)
        return self._streams

    async def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self._streams is not None:
            _, writer = self._streams
            self._streams = None
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the server closes the connection after it)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {}
    for line in head[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            chunks.append(chunk[:-2])
        body = b"".join(chunks)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection", "").lower() == "close"
