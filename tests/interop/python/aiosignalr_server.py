"""A SignalR hub server we did not write, for testing the Rust client against it.

Serves the third-party `aiosignalr` (PyPI, pinned in requirements.txt) hub server on
127.0.0.1 with one hub at `/hub`:

    Echo(message: str) -> str      returns its argument
    Add(a: int, b: int) -> int     a + b
    Fail(message: str)             raises HubException(message): the client gets an error
                                   Completion whose text is exactly `message` (no .NET prefix)
    FailUnexpected(message: str)   raises a plain exception: the client gets exactly
                                   "An unexpected error occurred invoking 'FailUnexpected' on the server."
    Notify(text: str)              sends Invocation `Notified(text)` to the caller, then returns
                                   (void: empty Completion, no `result` key)
    Counter(n: int)                server-to-client stream of 0..n-1, then an empty Completion
    Ticks(n: int, delay_ms: int)   like Counter, sleeping delay_ms before each item (for cancellation)

Both hub protocols (`json`, `messagepack`) and all three transports are offered, with aiosignalr's
defaults (15 s keep-alive, 30 s client timeout, 15 s long-poll timeout, no stateful reconnect).

Where aiosignalr 0.1.1 departs from ASP.NET Core (checked by hand against the wire; see
shared/protocol.md), the ones a client test trips over:
- WebSockets: every server frame is Binary, JSON included (the official JS client cannot parse
  the handshake response; clients that accept either frame type work).
- MessagePack: StreamItem and Completion carry headers as the integer 128 (`cc 80`), not an
  empty map (`80`); clients that require a map reject every result. Server-to-client
  Invocations and Pings are encoded correctly.
- Long polling: the first poll is not answered at once (it waits up to 15 s for data) and a
  connection with no poll answered for 15 s is torn down (then 404), so a client that waits for
  the first poll before POSTing the handshake fails after 15 s.
- The server never sends a Close message (type 7): it just closes the transport (WebSocket 1000).
- Error texts: HubException(msg) -> exactly `msg`; unknown method -> `Unknown hub method 'X'`;
  argument-count errors append a detail; arguments are not type-checked.
- Void methods complete with no `result` (JSON `{"type":3,"invocationId":"1"}`, MessagePack
  kind 2), and an error Completion for an unknown/mismatched method can overtake the Completion
  of an earlier invocation.

Usage: python aiosignalr_server.py PORT   (PORT 0 picks a free port)

Prints exactly one line, `listening on http://127.0.0.1:<port>`, once the socket accepts
connections, then runs until SIGTERM or SIGINT.
"""

import asyncio
import contextlib
import signal
import sys

from aiosignalr.errors import HubException
from aiosignalr.server import Hub, SignalRServer

HOST = "127.0.0.1"
PATH = "/hub"


class InteropHub(Hub):
    # aiosignalr exposes every public method of the subclass, under its Python name, matched
    # case-insensitively. A return annotation other than None makes the Completion carry
    # `result`; `-> None` (or none) makes it empty (void). No `from __future__ import
    # annotations` here: it turns `-> None` into the string "None", which aiosignalr treats
    # as a result type (the Completion would then carry `"result": null`).

    async def Echo(self, message: str) -> str:
        return message

    async def Add(self, a: int, b: int) -> int:
        return a + b

    async def Fail(self, message: str) -> None:
        raise HubException(message)

    async def FailUnexpected(self, message: str) -> None:
        raise RuntimeError(message)

    async def Notify(self, text: str) -> None:
        await self.clients.caller.send("Notified", text)

    async def Counter(self, n: int):
        for i in range(n):
            yield i

    async def Ticks(self, n: int, delay_ms: int):
        for i in range(n):
            await asyncio.sleep(delay_ms / 1000)
            yield i


async def main() -> None:
    if len(sys.argv) != 2:
        print("usage: aiosignalr_server.py PORT  (0 = pick a free port)", file=sys.stderr)
        sys.exit(2)
    port = int(sys.argv[1])

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    server = SignalRServer(InteropHub)
    # serve() returns once the aiohttp site is bound and listening.
    _, bound_port = await server.serve(HOST, port, path=PATH)
    print(f"listening on http://{HOST}:{bound_port}", flush=True)
    try:
        await stop.wait()
    finally:
        # aiohttp's cleanup waits (up to 60 s) for open WebSocket / SSE / poll handlers, and
        # aiosignalr does not close them itself: abort every live connection first (the client
        # sees a WebSocket close 1000 or the end of its SSE stream / poll, with no Close message).
        for ctx in list(server.lifetime.connections.values()):
            if ctx is not None:
                with contextlib.suppress(Exception):
                    await ctx.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.close(), 5)


if __name__ == "__main__":
    asyncio.run(main())
