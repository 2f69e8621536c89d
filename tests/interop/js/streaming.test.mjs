// Streaming with the official `@microsoft/signalr` client over HUBS_TRANSPORT × {JSON, MessagePack}
// against the hubs TestHub (tests/interop/CONTRACT.md §4 and §6; protocol.md §7, §8.1, §8.2):
// server-to-client streams (`Stream`, `EmptyStream`, `StreamThrowException`), cancellation of
// `InfiniteStream` (→ `StreamCanceled()` on the caller), client-to-server upload streams
// (`StreamingConcat`), and the streaming/non-streaming mismatch errors.
//
// Run: HUBS_URL=http://127.0.0.1:5000 node --test tests/interop/js/   (see hub.test.mjs)
// HUBS_TRANSPORT is `WebSockets` (default), `ServerSentEvents` (JSON cases only: SSE is text-only)
// or `LongPolling`.
// Every await is bounded; the file takes a few seconds against a healthy server and an overall
// budget (40 s WebSockets, 50 s SSE, 60 s long polling) bounds it even against a server that never
// answers.
//
// What the TS client (9.0.19; 10.0.11 and 11.0.0 alike) puts on the wire here:
// * `stream(m, ...)` sends a StreamInvocation; disposing the (only) subscription sends
//   CancelInvocation for that id, chained after the StreamInvocation's send, so "dispose
//   immediately" puts both messages on the socket back to back (over SSE / long polling they may
//   share one POST). Items and the final Completion
//   arriving after the dispose are dropped by the client.
// * `invoke(m, subject)` removes the Subject from the arguments and sends an Invocation with
//   `streamIds: ["<n>"]` (the stream id comes from the same counter as invocation ids), then a
//   StreamItem per `subject.next(x)` and a Completion for `subject.complete()` (MessagePack: void
//   result kind 2). `subject.error(err)` sends a Completion whose `error` is `err.message` for an
//   Error (`"Something bad"`, no `Error: ` prefix), else `err.toString()`.

import { after, afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
    ABSENCE_MS, HUBS_URL, LACKS, PROTOCOLS, STEP_MS, StepTimeout, TEST_OPTS, TRANSPORT, fileBudget, protocolSkip,
    signalR, sleep,
} from "./common.mjs";

const HUB_URL = `${HUBS_URL}/testhub`;
/** The file's budget; SSE and long polling get more room. */
const { withTimeout, waitFor } = fileBudget({ WebSockets: 40000, ServerSentEvents: 50000, LongPolling: 60000 });

const STREAM_THROW_ERROR =
    "An unexpected error occurred invoking 'StreamThrowException' on the server. InvalidOperationException: An error occurred.";
const CONCAT_UPLOAD_ERROR =
    "An unexpected error occurred invoking 'StreamingConcat' on the server. HubException: Something bad";
const streamingWithInvokeError = (method) =>
    `The client attempted to invoke the streaming '${method}' method with a non-streaming invocation.`;
const nonStreamingWithStreamError = (method) =>
    `The client attempted to invoke the non-streaming '${method}' method with a streaming invocation.`;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Connections opened by the current test; stopped by the afterEach hooks. */
const openConnections = new Set();
/** Per connection: { fired, error } of its onclose callback. */
const closeInfo = new WeakMap();

async function connect(protocol) {
    const connection = new signalR.HubConnectionBuilder()
        .withUrl(HUB_URL, { transport: signalR.HttpTransportType[TRANSPORT] })
        .withHubProtocol(protocol.create())
        .configureLogging(signalR.LogLevel.Warning)
        .build();
    const info = { fired: false, error: undefined };
    closeInfo.set(connection, info);
    connection.onclose((error) => {
        info.fired = true;
        info.error = error;
    });
    openConnections.add(connection);
    await withTimeout(connection.start(), STEP_MS, `start() of a ${TRANSPORT} ${protocol.name} connection`);
    assert.equal(connection.state, signalR.HubConnectionState.Connected);
    return connection;
}

async function stopAll() {
    const connections = [...openConnections];
    openConnections.clear();
    await Promise.all(connections.map((c) =>
        withTimeout(c.stop(), STEP_MS, "stop()").catch((e) => console.error(`cleanup: ${e}`))));
}

/** Registers `method` on `connection` and records the argument lists of every call. */
function record(connection, method) {
    const calls = [];
    connection.on(method, (...args) => {
        calls.push(args);
    });
    return calls;
}

/** `connection.invoke(...)`, bounded by STEP_MS. */
function invoke(connection, method, ...args) {
    return withTimeout(connection.invoke(method, ...args), STEP_MS, `invoke("${method}")`);
}

/**
 * Subscribes to `stream` (an IStreamResult) and resolves with the array of its items when it
 * completes, or rejects with its error. If it neither completes nor errors within `ms`, the
 * subscription is disposed (so the server stops streaming) and the promise rejects, naming the
 * items received so far.
 */
async function collect(stream, what, ms = STEP_MS) {
    const items = [];
    let subscription;
    const done = new Promise((resolve, reject) => {
        subscription = stream.subscribe({
            next: (item) => {
                items.push(item);
            },
            complete: () => resolve(items),
            error: (error) => reject(error),
        });
    });
    try {
        return await withTimeout(done, ms, what);
    } catch (error) {
        if (error instanceof StepTimeout) {
            subscription.dispose();
            error.message += ` (items received so far: ${JSON.stringify(items)})`;
        }
        throw error;
    }
}

/** Checks that the connection is still usable: Connected, not closed, and Echo round-trips. */
async function assertStillWorks(connection) {
    assert.equal(connection.state, signalR.HubConnectionState.Connected, "connection is no longer Connected");
    const info = closeInfo.get(connection);
    assert.equal(info.fired, false, `connection closed unexpectedly: ${info.error}`);
    const probe = `still-works-${Math.random().toString(36).slice(2, 8)}`;
    assert.equal(await invoke(connection, "Echo", probe), probe);
}

after(async () => {
    await stopAll();
    // Safety net: if a leaked socket or timer keeps the event loop alive, exit anyway.
    setTimeout(() => process.exit(), 3000).unref();
});

// ---------------------------------------------------------------------------------------------
// Per-protocol cases
// ---------------------------------------------------------------------------------------------

for (const protocol of PROTOCOLS) {
    describe(`streaming over ${TRANSPORT} + ${protocol.name}`, { skip: protocolSkip(protocol) }, () => {
        afterEach(stopAll);

        describe("server-to-client streams", () => {
            it('stream("Stream") yields exactly "a", "b", "c" then completes', TEST_OPTS, async () => {
                const connection = await connect(protocol);
                assert.deepEqual(await collect(connection.stream("Stream"), 'stream("Stream")'), ["a", "b", "c"]);
                await assertStillWorks(connection);
            });

            it('two concurrent stream("Stream") calls on one connection each get "a", "b", "c"', TEST_OPTS, async () => {
                const connection = await connect(protocol);
                const results = await Promise.all([
                    collect(connection.stream("Stream"), 'first stream("Stream")'),
                    collect(connection.stream("Stream"), 'second stream("Stream")'),
                ]);
                assert.deepEqual(results, [["a", "b", "c"], ["a", "b", "c"]]);
            });

            it('stream("EmptyStream") completes with no items', TEST_OPTS, async () => {
                const connection = await connect(protocol);
                assert.deepEqual(await collect(connection.stream("EmptyStream"), 'stream("EmptyStream")'), []);
                await assertStillWorks(connection);
            });

            it('stream("StreamThrowException") errors with the detailed text and the connection survives', TEST_OPTS, async () => {
                const connection = await connect(protocol);
                await assert.rejects(
                    collect(connection.stream("StreamThrowException", "An error occurred."), 'stream("StreamThrowException")'),
                    { message: STREAM_THROW_ERROR });
                await assertStillWorks(connection);
            });
        });

        const cancelSkip = protocol.name === "messagepack" && LACKS.messagePackCancel;
        describe("InfiniteStream cancellation", { skip: cancelSkip }, () => {
            const cases = [
                ["after ~100 ms", 100],
                ["immediately (CancelInvocation right after the StreamInvocation)", 0],
            ];
            for (const [label, delayMs] of cases) {
                it(`disposing the subscription ${label} makes the server call StreamCanceled()`, TEST_OPTS, async () => {
                    const connection = await connect(protocol);
                    const canceled = record(connection, "StreamCanceled");
                    const events = [];
                    const subscription = connection.stream("InfiniteStream").subscribe({
                        next: (item) => events.push(["next", item]),
                        complete: () => events.push(["complete"]),
                        error: (error) => events.push(["error", `${error?.message ?? error}`]),
                    });
                    if (delayMs > 0) {
                        await sleep(delayMs);
                    }
                    subscription.dispose(); // sends CancelInvocation
                    await waitFor(() => canceled.length > 0, STEP_MS,
                        "StreamCanceled() after disposing the InfiniteStream subscription");
                    await sleep(ABSENCE_MS);
                    assert.deepEqual(canceled, [[]], "StreamCanceled must be called exactly once, with no arguments");
                    assert.deepEqual(events, [], "InfiniteStream must not yield, complete or fail before it is cancelled");
                    await assertStillWorks(connection);
                });
            }
        });

        describe("client-to-server streams (StreamingConcat)", { skip: LACKS.uploadStreams }, () => {
            it('items sent synchronously: "Hello " + "world" + "!"', TEST_OPTS, async () => {
                const connection = await connect(protocol);
                const subject = new signalR.Subject();
                const p = invoke(connection, "StreamingConcat", subject);
                subject.next("Hello ");
                subject.next("world");
                subject.next("!");
                subject.complete();
                assert.equal(await p, "Hello world!");
                await assertStillWorks(connection);
            });

            it("items sent 20 ms apart", TEST_OPTS, async () => {
                const connection = await connect(protocol);
                const subject = new signalR.Subject();
                const p = invoke(connection, "StreamingConcat", subject);
                p.catch(() => {}); // awaited below; avoid an unhandled rejection during the sleeps
                for (const item of ["Hello ", "world", "!"]) {
                    await sleep(20);
                    subject.next(item);
                }
                await sleep(20);
                subject.complete();
                assert.equal(await p, "Hello world!");
                await assertStillWorks(connection);
            });

            it("an upload completed without items returns the empty string", TEST_OPTS, async () => {
                const connection = await connect(protocol);
                const subject = new signalR.Subject();
                const p = invoke(connection, "StreamingConcat", subject);
                subject.complete();
                assert.equal(await p, "");
            });

            it("subject.error(...) fails the invocation with the client's error text", TEST_OPTS, async () => {
                const connection = await connect(protocol);
                const subject = new signalR.Subject();
                const p = invoke(connection, "StreamingConcat", subject);
                subject.next("Hello ");
                // The TS client sends the Error's message ("Something bad") as the Completion error.
                subject.error(new Error("Something bad"));
                await assert.rejects(p, { message: CONCAT_UPLOAD_ERROR });
                await assertStillWorks(connection);
            });
        });

        // The server's read loop never waits on one invocation's upload: with the default single
        // invocation slot, an upload behind a busy slot (or behind another upload) is buffered, and
        // the Completion that frees the slot is still read.
        describe("uploads never wedge the connection", { skip: LACKS.uploadStreams }, () => {
            const ITEMS = 30;

            it(`a ${ITEMS}-item upload behind a slot busy with a client result completes`, { ...TEST_OPTS, skip: LACKS.clientResults }, async () => {
                const connection = await connect(protocol);
                let release;
                const released = new Promise((resolve) => { release = resolve; });
                // InvokeCaller holds the only slot until the client answers `Result`; the answer
                // waits until every item of the upload behind it has been sent.
                connection.on("Result", async (value) => {
                    await released;
                    return value;
                });
                const busy = invoke(connection, "InvokeCaller", 42);
                busy.catch(() => {});
                const subject = new signalR.Subject();
                const upload = invoke(connection, "StreamingConcat", subject);
                upload.catch(() => {});
                for (let i = 0; i < ITEMS; i++) {
                    subject.next("x");
                }
                subject.complete();
                await sleep(100);
                release();
                assert.equal(await busy, 42);
                assert.equal(await upload, "x".repeat(ITEMS));
                await assertStillWorks(connection);
            });

            it(`two concurrent ${ITEMS}-item uploads on one connection both complete`, TEST_OPTS, async () => {
                const connection = await connect(protocol);
                const first = new signalR.Subject();
                const second = new signalR.Subject();
                const one = invoke(connection, "StreamingConcat", first);
                const two = invoke(connection, "StreamingConcat", second);
                one.catch(() => {});
                two.catch(() => {});
                // Interleaved: the second upload's items arrive while its invocation still waits
                // for the slot the first one holds.
                for (let i = 0; i < ITEMS; i++) {
                    first.next("a");
                    second.next("b");
                }
                second.complete();
                first.complete();
                assert.equal(await one, "a".repeat(ITEMS));
                assert.equal(await two, "b".repeat(ITEMS));
                await assertStillWorks(connection);
            });
        });

        describe("streaming / non-streaming mismatches", () => {
            for (const method of ["EmptyStream", "Stream"]) {
                it(`invoke("${method}") rejects and the connection survives`, TEST_OPTS, async () => {
                    const connection = await connect(protocol);
                    await assert.rejects(invoke(connection, method), { message: streamingWithInvokeError(method) });
                    await assertStillWorks(connection);
                });
            }

            it('stream("Echo", "x") errors and the connection survives', TEST_OPTS, async () => {
                const connection = await connect(protocol);
                await assert.rejects(collect(connection.stream("Echo", "x"), 'stream("Echo")'),
                    { message: nonStreamingWithStreamError("Echo") });
                await assertStillWorks(connection);
            });
        });
    });
}
