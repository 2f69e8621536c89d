#!/usr/bin/env python3
"""Interop tests: the third-party Python client `pysignalr` against the hubs TestHub.

Run (a plain asyncio script, no pytest; exit code 0 = all passed, 1 = a case failed, 2 = usage):

    python3 -m venv .venv && .venv/bin/pip install -r tests/interop/python/requirements.txt
    HUBS_URL=http://127.0.0.1:5000 .venv/bin/python tests/interop/python/test_pysignalr.py

What pysignalr 1.3.3 does on the wire (the server must accept all of it):

* Negotiate: ``POST {HUBS_URL}/testhub/negotiate`` with **no** ``negotiateVersion`` query parameter
  (negotiate version 0), no body, no Content-Type. It reads the response with aiohttp's
  ``response.json()``, so the answer must be ``Content-Type: application/json``. It uses only
  ``connectionId`` (``connectionToken``/``negotiateVersion``/``availableTransports`` are ignored),
  so a version-0 answer must have ``connectionToken`` absent/equal to ``connectionId``. Cookies set by
  negotiate are sent back on the WebSocket request. Non-200: 401 -> AuthorizationError, else error.
* Transport: WebSockets only, ``ws://127.0.0.1:<port>/testhub?id=<connectionId>`` (query rebuilt
  with urllib's urlencode). No ``skipNegotiation`` option on SignalRClient. User-Agent is the
  ``websockets`` library's default.
* Handshake: ``{"protocol":"json","version":1}\\x1e`` in a **text** frame for JSON;
  ``{"protocol":"messagepack","version":1}\\x1e`` in a **binary** frame for MessagePack. The reply is
  accepted as text or binary. Messages following the handshake reply in the same frame are handled.
* It sends no Ping right after the handshake, then a Ping every 15 s; it never sends a Close message
  (type 7): stopping just closes the WebSocket (here: close frame 1000 after cancelling the client).
* JSON invocations look like ``{"target":"Echo","arguments":["x"],"type":1,"invocationId":"<uuid4>",
  "headers":{}}``: ``type`` is **not** the first key, ``headers`` is always present (``{}``),
  invocation ids are UUID4 strings, ``send`` without a callback omits ``invocationId``.
* MessagePack invocations are 6-element arrays ``[1, {}, id|nil, target, [args], []]``.
* Server messages: JSON frames may hold several RS-terminated messages; each frame must contain only
  whole messages. Unknown JSON keys in a message make pysignalr raise (it builds dataclasses from
  the keys), so send only the documented fields. Handler targets are matched **case-sensitively**.
  A Completion with an error needs an ``on_error`` callback (registered below), else it raises.
* Client results are supported: a handler's non-None return value is sent back as a Completion for
  server invocations that carry an invocationId ("Client didn't provide a result." otherwise).
* Server-to-client streams: ``client.stream(target, args, on_next, on_complete, on_error)`` sends
  ``{"target":"Stream","arguments":[],"type":4,"invocationId":"<uuid4>","headers":{}}`` (MessagePack
  ``[4, {}, id, target, [args], []]``); ``on_next`` gets each item, ``on_complete`` the Completion.
  pysignalr has no way to cancel a stream (it never sends CancelInvocation).
* Client-to-server streams: ``client.client_stream(target)`` sends an Invocation **without**
  invocationId (``[1, {}, nil, target, [], ["<uuid4>"]]``), StreamItems, then a void Completion; the
  hub method's result is never reported back, so StreamingConcat cannot be checked with it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import traceback
import uuid
from collections import defaultdict
from typing import Any

from pysignalr.client import SignalRClient
from pysignalr.messages import CompletionMessage
from pysignalr.protocol.json import JSONProtocol
from pysignalr.protocol.messagepack import MessagepackProtocol

STEP_SECONDS = 5.0
"""Bound for every single await (connect, invoke, waiting for a handler call)."""

BUDGET_SECONDS = 45.0
"""Overall budget: once spent, every remaining step fails at once (bounds a hung server)."""
_deadline = 0.0

THROW_ERROR = (
    "An unexpected error occurred invoking 'ThrowException' on the server. "
    "InvalidOperationException: An error occurred."
)

PROTOCOLS = {"json": JSONProtocol, "messagepack": MessagepackProtocol}


class HubError(Exception):
    """The server completed an invocation with an error."""


class Connection:
    """One pysignalr client running in a background task, with recorded handler calls."""

    def __init__(self, url: str, protocol_name: str) -> None:
        self.protocol_name = protocol_name
        self.client = SignalRClient(url, protocol=PROTOCOLS[protocol_name]())
        self.calls: defaultdict[str, list[list[Any]]] = defaultdict(list)
        self._changed = asyncio.Event()
        self._opened = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.client.on_open(self._on_open)
        # Without an error callback pysignalr raises on every error Completion.
        self.client.on_error(self._on_error)

    async def _on_open(self) -> None:
        self._opened.set()

    async def _on_error(self, message: CompletionMessage) -> None:
        pass  # the per-invocation callback sees the error as well

    def record(self, method: str) -> list[list[Any]]:
        """Registers a handler for `method` that records its argument lists."""

        async def handler(args: list[Any]) -> None:
            self.calls[method].append(args)
            self._changed.set()

        self.client.on(method, handler)
        return self.calls[method]

    async def _bounded(self, awaitable: Any, what: str) -> Any:
        """Awaits `awaitable` for at most STEP_SECONDS; fails early if the client task died."""
        assert self._task is not None
        step = asyncio.ensure_future(awaitable)
        limit = max(0.0, min(STEP_SECONDS, _deadline - asyncio.get_running_loop().time()))
        done, _ = await asyncio.wait({step, self._task}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        if step in done:
            return step.result()
        step.cancel()
        if self._task in done:
            error = self._task.exception() if not self._task.cancelled() else None
            raise RuntimeError(f"{what}: the pysignalr client stopped: {error!r}")
        if limit < STEP_SECONDS:
            raise TimeoutError(f"the script's overall time budget ran out: {what}")
        raise TimeoutError(f"timed out after {STEP_SECONDS} s: {what}")

    async def start(self) -> None:
        self._task = asyncio.create_task(self.client.run())
        await self._bounded(self._opened.wait(), f"connecting ({self.protocol_name})")

    async def invoke(self, method: str, *args: Any) -> Any:
        """Invokes `method` and returns its result, or raises HubError with the server's text."""
        completion: asyncio.Future[CompletionMessage] = asyncio.get_running_loop().create_future()

        async def on_completion(message: CompletionMessage) -> None:
            if not completion.done():
                completion.set_result(message)

        await self._bounded(self.client.send(method, list(args), on_completion), f'sending "{method}"')
        message = await self._bounded(completion, f'completion of "{method}"')
        if message.error:
            raise HubError(message.error)
        return message.result

    async def wait_call(self, method: str, args: list[Any]) -> None:
        """Waits until `method` has been called with exactly `args`."""

        async def wait() -> None:
            while args not in self.calls[method]:
                self._changed.clear()
                await self._changed.wait()

        await self._bounded(wait(), f"{method}({args!r}) to be called")

    async def stop(self) -> None:
        if self._task is None:
            return
        ws = self.client._transport._ws  # noqa: SLF001 - pysignalr has no public stop()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), STEP_SECONDS)
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


# --- cases: each gets a fresh connection factory and the protocol name ---------------------------


async def case_echo(connect) -> None:
    conn = await connect()
    for value in ["Hello, World!", "🚀 héllo 世界", "", None]:
        result = await conn.invoke("Echo", value)
        check(result == value, f"Echo({value!r}) returned {result!r}")


async def case_invoke_with_string(connect) -> None:
    conn = await connect()
    messages = conn.record("Message")
    await conn.invoke("InvokeWithString", "hi")
    # pysignalr handles messages in order, so Message must already have been dispatched.
    check(messages == [["hi"]], f'Message("hi") must arrive before the completion; got {messages!r}')


async def case_send_custom_object(connect) -> None:
    conn = await connect()
    conn.record("CustomObject")
    await conn.invoke("SendCustomObject", {"Name": "n", "Value": 1})
    await conn.wait_call("CustomObject", [{"Name": "n", "Value": 1}])
    calls = conn.calls["CustomObject"]
    check(calls == [[{"Name": "n", "Value": 1}]], f"CustomObject calls: {calls!r}")


async def case_throw_exception(connect) -> None:
    conn = await connect()
    try:
        await conn.invoke("ThrowException", "An error occurred.")
    except HubError as error:
        check(str(error) == THROW_ERROR, f"error text {str(error)!r} != {THROW_ERROR!r}")
    else:
        raise AssertionError("ThrowException did not fail")
    result = await conn.invoke("Echo", "after error")
    check(result == "after error", f"Echo after the error returned {result!r}")


async def case_groups(connect) -> None:
    member = await connect()
    sender = await connect()
    member.record("GroupMessage")
    group = f"py-{uuid.uuid4().hex[:8]}"
    text = f"m-{uuid.uuid4().hex[:8]}"
    await member.invoke("JoinGroup", group)
    await sender.invoke("SendToGroup", group, text)
    await member.wait_call("GroupMessage", [group, text])


async def case_client_result(connect) -> None:
    conn = await connect()

    async def result(args: list[Any]) -> Any:
        return args[0] * 2

    conn.client.on("Result", result)
    value = await conn.invoke("InvokeCaller", 21)
    check(value == 42, f"InvokeCaller(21) with a doubling handler returned {value!r}")


async def case_stream(connect) -> None:
    conn = await connect()
    items: list[Any] = []
    completion: asyncio.Future[CompletionMessage] = asyncio.get_running_loop().create_future()

    async def on_next(item: Any) -> None:
        items.append(item)

    async def on_complete(message: CompletionMessage) -> None:
        if not completion.done():
            completion.set_result(message)

    async def on_error(message: CompletionMessage) -> None:
        if not completion.done():
            completion.set_result(message)

    await conn._bounded(  # noqa: SLF001 - the same bounded await the helpers use
        conn.client.stream("Stream", [], on_next, on_complete, on_error), 'sending StreamInvocation "Stream"'
    )
    message = await conn._bounded(completion, 'completion of the "Stream" stream')  # noqa: SLF001
    check(not message.error, f"Stream failed: {message.error!r} (items so far: {items!r})")
    check(items == ["a", "b", "c"], f'Stream yielded {items!r}, expected ["a", "b", "c"]')
    result = await conn.invoke("Echo", "after stream")
    check(result == "after stream", f"Echo after the stream returned {result!r}")


CASES = [
    ("Echo", case_echo),
    ("InvokeCaller -> Result (client result)", case_client_result),
    ("InvokeWithString -> Message", case_invoke_with_string),
    ("SendCustomObject -> CustomObject", case_send_custom_object),
    ("ThrowException error text", case_throw_exception),
    ("JoinGroup + SendToGroup -> GroupMessage", case_groups),
    ('StreamInvocation "Stream" -> "a", "b", "c"', case_stream),
]


async def run_case(url: str, protocol_name: str, name: str, body) -> bool:
    connections: list[Connection] = []

    async def connect() -> Connection:
        conn = Connection(url, protocol_name)
        connections.append(conn)
        await conn.start()
        return conn

    try:
        await body(connect)
    except Exception as error:  # noqa: BLE001 - report every failure and go on
        print(f"FAIL [{protocol_name}] {name}: {type(error).__name__}: {error}", flush=True)
        if os.environ.get("VERBOSE"):
            traceback.print_exc()
        return False
    finally:
        await asyncio.gather(*(c.stop() for c in connections), return_exceptions=True)
    print(f"PASS [{protocol_name}] {name}", flush=True)
    return True


async def main() -> int:
    base = os.environ.get("HUBS_URL", "").rstrip("/")
    if not base:
        print("HUBS_URL is not set (expected e.g. HUBS_URL=http://127.0.0.1:5000)", file=sys.stderr)
        return 2
    url = f"{base}/testhub"
    global _deadline  # noqa: PLW0603
    _deadline = asyncio.get_running_loop().time() + BUDGET_SECONDS
    failures = 0
    for protocol_name in PROTOCOLS:
        for name, body in CASES:
            if not await run_case(url, protocol_name, name, body):
                failures += 1
    total = len(PROTOCOLS) * len(CASES)
    print(f"{total - failures}/{total} passed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(main()))
