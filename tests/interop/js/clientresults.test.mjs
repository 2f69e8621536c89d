// Client results with the official `@microsoft/signalr` client over HUBS_TRANSPORT × {JSON,
// MessagePack}: the TestHub's `InvokeCaller` (a client result from inside a hub method) and
// `GET /clientresult/{connectionId}` (a client result through the hub context).
//
// Run: HUBS_URL=http://127.0.0.1:5000 node --test tests/interop/js/   (see hub.test.mjs)
// HUBS_TRANSPORT is `WebSockets` (default), `ServerSentEvents` (JSON cases only: SSE is text-only)
// or `LongPolling`.

import { after, afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
    HUBS_URL, LACKS, PROTOCOLS, STEP_MS, TEST_OPTS, TRANSPORT, fileBudget, protocolSkip, signalR,
} from "./common.mjs";

/** The file's budget (a few seconds against a healthy server); SSE and long polling get more room. */
const { withTimeout } = fileBudget({ WebSockets: 40000, ServerSentEvents: 50000, LongPolling: 60000 });
const bounded = (promise, what) => withTimeout(promise, STEP_MS, what);

const open = new Set();

async function connect(protocol, handler) {
    const connection = new signalR.HubConnectionBuilder()
        .withUrl(`${HUBS_URL}/testhub`, { transport: signalR.HttpTransportType[TRANSPORT] })
        .withHubProtocol(protocol.create())
        .configureLogging(signalR.LogLevel.None)
        .build();
    if (handler) {
        connection.on("Result", handler);
    }
    open.add(connection);
    await bounded(connection.start(), `start() of a ${TRANSPORT} ${protocol.name} connection`);
    return connection;
}

after(() => {
    // Safety net: if a connection whose stop() timed out (e.g. a pending long poll) keeps the event
    // loop alive, exit anyway (the runner has already reported the results by then).
    setTimeout(() => process.exit(), 3000).unref();
});

async function clientResult(connectionId) {
    const response = await bounded(fetch(`${HUBS_URL}/clientresult/${connectionId}`), "GET /clientresult");
    assert.equal(response.status, 200);
    return response.text();
}

for (const protocol of PROTOCOLS) {
    describe(`client results over ${TRANSPORT} (${protocol.name})`, { skip: protocolSkip(protocol) || LACKS.clientResults }, () => {
        afterEach(async () => {
            const connections = [...open];
            open.clear();
            await Promise.all(connections.map((c) => bounded(c.stop(), "stop()").catch(() => {})));
        });

        it("InvokeCaller returns what the caller's handler returned", TEST_OPTS, async () => {
            const connection = await connect(protocol, (value) => value * 2);
            assert.equal(await bounded(connection.invoke("InvokeCaller", 21), "InvokeCaller"), 42);
            // Several in a row, and the connection keeps working.
            for (const n of [1, 2, 3]) {
                assert.equal(await bounded(connection.invoke("InvokeCaller", n), "InvokeCaller"), n * 2);
            }
            assert.equal(await bounded(connection.invoke("Echo", "still"), "Echo"), "still");
        });

        it("InvokeCaller fails with the handler's error", TEST_OPTS, async () => {
            const connection = await connect(protocol, () => {
                throw new Error("boom");
            });
            await assert.rejects(bounded(connection.invoke("InvokeCaller", 1), "InvokeCaller"), {
                message: "An unexpected error occurred invoking 'InvokeCaller' on the server. HubException: Error: boom",
            });
            assert.equal(await bounded(connection.invoke("Echo", "after"), "Echo"), "after");
        });

        it("InvokeCaller without a handler fails with the client's text", TEST_OPTS, async () => {
            const connection = await connect(protocol, undefined);
            await assert.rejects(bounded(connection.invoke("InvokeCaller", 1), "InvokeCaller"), {
                message:
                    "An unexpected error occurred invoking 'InvokeCaller' on the server. HubException: Client didn't provide a result.",
            });
        });

        it("GET /clientresult/{id} returns the handler's value", TEST_OPTS, async () => {
            const connection = await connect(protocol, () => 10);
            assert.equal(await clientResult(connection.connectionId), "10");
        });

        it("GET /clientresult/{id} returns the handler's error text", TEST_OPTS, async () => {
            const connection = await connect(protocol, () => {
                throw new Error("from callback");
            });
            assert.equal(await clientResult(connection.connectionId), "Error: from callback");
        });

        it("GET /clientresult/{id} without a handler", TEST_OPTS, async () => {
            const connection = await connect(protocol, undefined);
            assert.equal(await clientResult(connection.connectionId), "Client didn't provide a result.");
        });

        it("GET /clientresult/{id} with an async handler", TEST_OPTS, async () => {
            const connection = await connect(protocol, async () => {
                await new Promise((resolve) => setTimeout(resolve, 50));
                return 7;
            });
            assert.equal(await clientResult(connection.connectionId), "7");
        });
    });
}

describe("client results: unknown connection", () => {
    it("GET /clientresult/{unknown} says so", TEST_OPTS, async () => {
        assert.equal(await clientResult("nope"), "Connection 'nope' does not exist.");
    });
});
