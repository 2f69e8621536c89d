// Interop tests: the official ASP.NET Core SignalR JavaScript client (`@microsoft/signalr`, with
// `@microsoft/signalr-protocol-msgpack`) over one transport against the hubs TestHub described in
// tests/interop/CONTRACT.md (§4 TestHub, §6 error texts, §7 extensions).
//
// How it is run:
//   cd tests/interop && npm ci            # once; installs the pinned client packages
//   HUBS_URL=http://127.0.0.1:5000 node --test tests/interop/js/     # from the repository root
// HUBS_TRANSPORT picks the transport every connection of this file is forced to: `WebSockets`
// (the default), `ServerSentEvents` or `LongPolling`. Server-Sent Events carry text only, so with
// `ServerSentEvents` the MessagePack cases are skipped; skipNegotiation is WebSockets-only; the
// keep-alive case is skipped on LongPolling (no pings and no client-side server timeout there,
// protocol.md §3.4/§9).
// The Rust interop test starts the `interop` example server (hub at /testhub) with a 1 s
// keep-alive on a free port, sets HUBS_URL and runs the command above once per transport; exit
// code 0 = all passed. Every await is bounded by a timeout, so a hang fails a test instead of
// blocking. The file takes ~17 s against a healthy server over WebSockets (two 6 s keep-alive
// idles); an overall budget (50 s WebSockets, 60 s SSE, 75 s long polling) bounds it even against
// a server that never answers.

import { after, afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
    ABSENCE_MS, CLIENT_NAME, HUBS_URL, LACKS, PROTOCOLS, STEP_MS, TEST_OPTS, TRANSPORT, connectionIdOf, fileBudget,
    protocolSkip, signalR, sleep, unique, withServerTimeout,
} from "./common.mjs";

const HUB_URL = `${HUBS_URL}/testhub`;
/** The file's budget: SSE and long polling make more HTTP requests per connection, so more room. */
const { withTimeout, waitFor } = fileBudget({ WebSockets: 50000, ServerSentEvents: 60000, LongPolling: 75000 });

/** Connections opened by the current test; stopped by the afterEach hooks. */
const openConnections = new Set();
/** Per connection: { fired, error } of its onclose callback. */
const closeInfo = new WeakMap();

/**
 * Builds a HubConnection to the TestHub over TRANSPORT with `protocol` and starts it.
 * Options: `skipNegotiation` (WebSockets only), `serverTimeoutMs`.
 */
async function connect(protocol, { skipNegotiation = false, serverTimeoutMs } = {}) {
    const httpOptions = { transport: signalR.HttpTransportType[TRANSPORT] };
    if (skipNegotiation) {
        httpOptions.skipNegotiation = true;
    }
    let builder = new signalR.HubConnectionBuilder()
        .withUrl(HUB_URL, httpOptions)
        .withHubProtocol(protocol.create())
        .configureLogging(signalR.LogLevel.Warning);
    if (serverTimeoutMs !== undefined) {
        builder = withServerTimeout(builder, serverTimeoutMs);
    }
    const connection = builder.build();
    const info = { fired: false, error: undefined };
    closeInfo.set(connection, info);
    connection.onclose((error) => {
        info.fired = true;
        info.error = error;
    });
    openConnections.add(connection);
    await withTimeout(connection.start(), STEP_MS,
        `start() of a ${TRANSPORT} ${protocol.name} connection${skipNegotiation ? " (skipNegotiation)" : ""}`);
    assert.equal(connection.state, signalR.HubConnectionState.Connected);
    return connection;
}

async function stopAll() {
    const connections = [...openConnections];
    openConnections.clear();
    await Promise.all(connections.map((c) =>
        withTimeout(c.stop(), STEP_MS, "stop()", { useBudget: false })
            .catch((e) => console.error(`cleanup: ${e}`))));
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

/** Checks that the connection is still usable: Connected, not closed, and Echo round-trips. */
async function assertStillWorks(connection) {
    assert.equal(connection.state, signalR.HubConnectionState.Connected, "connection is no longer Connected");
    const info = closeInfo.get(connection);
    assert.equal(info.fired, false, `connection closed unexpectedly: ${info.error}`);
    const probe = unique("still-works");
    assert.equal(await invoke(connection, "Echo", probe), probe);
}

/** Converts Uint8Array and Date to tagged plain values so deepEqual also checks their types. */
function tagged(value) {
    if (value instanceof Uint8Array) {
        return { $bin: Array.from(value) };
    }
    if (value instanceof Date) {
        return { $date: value.toISOString() };
    }
    if (Array.isArray(value)) {
        return value.map(tagged);
    }
    if (value !== null && typeof value === "object") {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, tagged(v)]));
    }
    return value;
}

/** A 16 KiB (16384 chars) string full of characters that need escaping in JSON. */
function bigEscapedString() {
    const chunk = 'He said "hi" \\ C:\\path\\to\\file\nline2\r\n\ttab \'single\' / slash <>&; ';
    const s = chunk.repeat(Math.ceil(16384 / chunk.length)).slice(0, 16384);
    // Keep the JSON invocation comfortably under the server's 32 KiB message limit.
    assert.ok(JSON.stringify(s).length < 30000, "test bug: escaped string too large");
    return s;
}

// What the official server sends with its built-in protocols (protocol.md §10.2).
const UNKNOWN_METHOD_ERROR =
    "Failed to invoke 'NoSuchMethodXyz' due to an error on the server. HubException: Method does not exist.";
const THROW_ERROR =
    "An unexpected error occurred invoking 'ThrowException' on the server. InvalidOperationException: An error occurred.";
const ECHO_BINDING_PREFIX = "Failed to invoke 'Echo' due to an error on the server.";

after(async () => {
    await stopAll();
    // Safety net: if a leaked socket or timer keeps the event loop alive, exit anyway (the runner
    // has already reported the results and set process.exitCode by then).
    setTimeout(() => process.exit(), 3000).unref();
});

// ---------------------------------------------------------------------------------------------
// Per-protocol cases
// ---------------------------------------------------------------------------------------------

for (const protocol of PROTOCOLS) {
    describe(`${TRANSPORT} + ${protocol.name}`, { skip: protocolSkip(protocol) }, () => {
        afterEach(stopAll);

        it(`GetActiveTransportName is "${TRANSPORT}"`, TEST_OPTS, async () => {
            const connection = await connect(protocol);
            assert.equal(await invoke(connection, "GetActiveTransportName"), TRANSPORT);
        });

        describe("Echo", () => {
            const cases = [
                ["a plain string", "Hello, World!"],
                ["unicode", "🚀 héllo 世界"],
                ["the empty string", ""],
                ["null", null],
                ["a 16 KiB string with quotes, backslashes and newlines", bigEscapedString()],
            ];
            for (const [label, value] of cases) {
                it(`returns ${label} unchanged`, TEST_OPTS, async () => {
                    const connection = await connect(protocol);
                    const result = await invoke(connection, "Echo", value);
                    if (typeof value === "string" && value.length > 100) {
                        assert.equal(typeof result, "string");
                        assert.equal(result.length, value.length, "length differs");
                    }
                    assert.equal(result, value);
                });
            }
        });

        // connectionIdOf: `connection.connectionId`, or before 3.0 the `id` its transport connected with.
        it("GetCallerConnectionId equals connection.connectionId", TEST_OPTS, async () => {
            const connection = await connect(protocol);
            const expected = connectionIdOf(connection);
            assert.equal(typeof expected, "string");
            assert.ok(expected.length > 0, "client has an empty connectionId");
            assert.equal(await invoke(connection, "GetCallerConnectionId"), expected);
        });

        it("send() is non-blocking and the connection still works after", TEST_OPTS, async () => {
            const connection = await connect(protocol);
            await withTimeout(connection.send("Echo", "x"), STEP_MS, 'send("Echo", "x")');
            await assertStillWorks(connection);
        });

        it("InvokeWithString calls Message on the caller before the invocation completes", TEST_OPTS, async () => {
            const connection = await connect(protocol);
            const messages = record(connection, "Message");
            await invoke(connection, "InvokeWithString", "hi");
            assert.deepEqual(messages, [["hi"]], "Message(\"hi\") must arrive before the completion");
        });

        it("SendCustomObject calls CustomObject with the PascalCase object", TEST_OPTS, async () => {
            const connection = await connect(protocol);
            const calls = record(connection, "CustomObject");
            await invoke(connection, "SendCustomObject", { Name: "n", Value: 1 });
            await waitFor(() => calls.length > 0, STEP_MS, "CustomObject call");
            assert.equal(calls.length, 1);
            assert.deepEqual(calls[0], [{ Name: "n", Value: 1 }]);
        });

        it("ThrowException rejects with the detailed error text and the connection survives", TEST_OPTS, async () => {
            const connection = await connect(protocol);
            await assert.rejects(invoke(connection, "ThrowException", "An error occurred."), { message: THROW_ERROR });
            await assertStillWorks(connection);
        });

        it("invoke of an unknown method rejects with 'Method does not exist.'", TEST_OPTS, async () => {
            const connection = await connect(protocol);
            await assert.rejects(invoke(connection, "NoSuchMethodXyz"), { message: UNKNOWN_METHOD_ERROR });
            await assertStillWorks(connection);
        });

        it("send of an unknown method is ignored silently", TEST_OPTS, async () => {
            const connection = await connect(protocol);
            await withTimeout(connection.send("NoSuchMethodXyz"), STEP_MS, 'send("NoSuchMethodXyz")');
            await assertStillWorks(connection);
            await sleep(ABSENCE_MS);
            await assertStillWorks(connection);
        });

        describe("argument binding errors", () => {
            const cases = [
                ["no argument", []],
                ["two arguments", ["a", "b"]],
                ["an object instead of a string", [{ an: "object" }]],
            ];
            for (const [label, args] of cases) {
                it(`invoke("Echo") with ${label} rejects and the connection survives`, TEST_OPTS, async () => {
                    const connection = await connect(protocol);
                    await assert.rejects(invoke(connection, "Echo", ...args), (error) => {
                        assert.ok(error instanceof Error, `not an Error: ${error}`);
                        assert.ok(error.message.startsWith(ECHO_BINDING_PREFIX),
                            `error text does not start with "${ECHO_BINDING_PREFIX}": "${error.message}"`);
                        return true;
                    });
                    await assertStillWorks(connection);
                });
            }
        });

        describe("groups and fan-out (EXT)", () => {
            it("SendToGroup reaches current members only; LeaveGroup removes", TEST_OPTS, async () => {
                const [a, b, c] = await Promise.all([connect(protocol), connect(protocol), connect(protocol)]);
                const [ga, gb, gc] = [a, b, c].map((conn) => record(conn, "GroupMessage"));
                const group = unique("g1");
                await Promise.all([invoke(a, "JoinGroup", group), invoke(b, "JoinGroup", group)]);

                const m1 = unique("m");
                const isM1 = (args) => args[0] === group && args[1] === m1;
                await invoke(c, "SendToGroup", group, m1);
                await waitFor(() => ga.some(isM1), STEP_MS, "GroupMessage on A");
                await waitFor(() => gb.some(isM1), STEP_MS, "GroupMessage on B");
                await sleep(ABSENCE_MS);
                assert.deepEqual(ga.filter(isM1), [[group, m1]], "A must get GroupMessage exactly once");
                assert.deepEqual(gb.filter(isM1), [[group, m1]], "B must get GroupMessage exactly once");
                assert.deepEqual(gc, [], "C is not a member and must not get GroupMessage");

                await invoke(b, "LeaveGroup", group);
                const m2 = unique("m");
                const isM2 = (args) => args[0] === group && args[1] === m2;
                await invoke(c, "SendToGroup", group, m2);
                await waitFor(() => ga.some(isM2), STEP_MS, "second GroupMessage on A");
                await sleep(ABSENCE_MS);
                assert.deepEqual(gb.filter(isM2), [], "B left the group and must not get GroupMessage");
                assert.deepEqual(gc, [], "C must not get GroupMessage");
            });

            it("SendToOthers reaches everyone but the caller", TEST_OPTS, async () => {
                const [a, b, c] = await Promise.all([connect(protocol), connect(protocol), connect(protocol)]);
                const [oa, ob, oc] = [a, b, c].map((conn) => record(conn, "OthersMessage"));
                const m = unique("others");
                const isM = (args) => args.length === 1 && args[0] === m;
                await invoke(a, "SendToOthers", m);
                await waitFor(() => ob.some(isM), STEP_MS, "OthersMessage on B");
                await waitFor(() => oc.some(isM), STEP_MS, "OthersMessage on C");
                await sleep(ABSENCE_MS);
                assert.equal(oa.filter(isM).length, 0, "the caller (A) must not get OthersMessage");
                assert.equal(ob.filter(isM).length, 1, "B must get OthersMessage exactly once");
                assert.equal(oc.filter(isM).length, 1, "C must get OthersMessage exactly once");
            });

            it("SendToGroups reaches a member of both groups once", TEST_OPTS, async () => {
                const [a, b, c] = await Promise.all([connect(protocol), connect(protocol), connect(protocol)]);
                const [ga, gb, gc] = [a, b, c].map((conn) => record(conn, "GroupsMessage"));
                const [g1, g2] = [unique("g1"), unique("g2")];
                await Promise.all([invoke(a, "JoinGroup", g1), invoke(a, "JoinGroup", g2), invoke(b, "JoinGroup", g2)]);
                const m = unique("groups");
                const isM = (args) => args.length === 1 && args[0] === m;
                await invoke(c, "SendToGroups", [g1, g2], m);
                await waitFor(() => ga.some(isM) && gb.some(isM), STEP_MS, "GroupsMessage on A and B");
                await sleep(ABSENCE_MS);
                assert.equal(ga.filter(isM).length, 1, "A is in both groups and must get GroupsMessage once");
                assert.equal(gb.filter(isM).length, 1, "B must get GroupsMessage once");
                assert.equal(gc.filter(isM).length, 0, "C is in neither group");
            });

            it("GroupMembers lists the members, sorted", TEST_OPTS, async () => {
                const [a, b, c] = await Promise.all([connect(protocol), connect(protocol), connect(protocol)]);
                const group = unique("members");
                await Promise.all([invoke(a, "JoinGroup", group), invoke(b, "JoinGroup", group)]);
                const members = await invoke(c, "GroupMembers", group);
                assert.deepEqual(members, [connectionIdOf(a), connectionIdOf(b)].sort());
            });

            it("AskGroup gathers the members' results", { ...TEST_OPTS, skip: LACKS.clientResults }, async () => {
                const [a, b, c] = await Promise.all([connect(protocol), connect(protocol), connect(protocol)]);
                a.on("Result", () => 2);
                b.on("Result", () => 1);
                c.on("Result", () => 3);
                const group = unique("ask");
                await Promise.all([invoke(a, "JoinGroup", group), invoke(b, "JoinGroup", group)]);
                // The caller is a member too: its own handler answers while it waits.
                assert.deepEqual(await invoke(a, "AskGroup", group), [1, 2]);
            });

            it("Kick ends another connection without an error; an unknown id is false", TEST_OPTS, async () => {
                const [a, b] = await Promise.all([connect(protocol), connect(protocol)]);
                assert.equal(await invoke(a, "Kick", connectionIdOf(b)), true);
                const info = closeInfo.get(b);
                await waitFor(() => info.fired, STEP_MS, "onclose of the kicked connection");
                if (TRANSPORT === "ServerSentEvents" && LACKS.closeWithTransportEnd) {
                    // The stream's end, right behind the Close, wins the race in 1.x.
                    assert.ok(info.error === undefined || info.error.message === "Error occurred",
                        `${CLIENT_NAME}: a kick is a Close without an error, or the SSE stream's end: ${info.error}`);
                } else {
                    assert.equal(info.error, undefined, "a kick is a Close without an error");
                }
                assert.equal(await invoke(a, "Kick", "no-such-connection"), false);
                await assertStillWorks(a);
            });

            it("SendToAll reaches everyone including the caller", TEST_OPTS, async () => {
                const [a, b, c] = await Promise.all([connect(protocol), connect(protocol), connect(protocol)]);
                const all = [a, b, c].map((conn) => record(conn, "AllMessage"));
                const m = unique("all");
                const isM = (args) => args.length === 1 && args[0] === m;
                await invoke(a, "SendToAll", m);
                for (const [i, calls] of all.entries()) {
                    await waitFor(() => calls.some(isM), STEP_MS, `AllMessage on ${"ABC"[i]}`);
                }
                await sleep(ABSENCE_MS);
                for (const [i, calls] of all.entries()) {
                    assert.equal(calls.filter(isM).length, 1, `${"ABC"[i]} must get AllMessage exactly once`);
                }
            });
        });

        const skipNegotiationSkip = TRANSPORT === "WebSockets" ? false : "skipNegotiation is WebSockets-only";
        it("skipNegotiation connects straight over WebSockets", { ...TEST_OPTS, skip: skipNegotiationSkip }, async () => {
            const connection = await connect(protocol, { skipNegotiation: true });
            assert.equal(connectionIdOf(connection), null, "the client has no connection id without negotiate");
            assert.equal(await invoke(connection, "Echo", "skipped"), "skipped");
            const id = await invoke(connection, "GetCallerConnectionId");
            assert.equal(typeof id, "string");
            assert.ok(id.length > 0, "the hub must still assign a connection id");
        });

        // Long polling has no pings and the client arms no server timeout there (protocol.md §3.4, §9).
        const keepAliveSkip = TRANSPORT === "LongPolling" ? "long polling has no pings and no server timeout" : false;
        it("keep-alive pings hold an idle connection open past a 4 s server timeout", { timeout: 20000, skip: keepAliveSkip }, async () => {
            const connection = await connect(protocol, { serverTimeoutMs: 4000 });
            await sleep(6000);
            await assertStillWorks(connection);
        });

        it("stop() resolves and onclose fires without an error", TEST_OPTS, async () => {
            const connection = await connect(protocol);
            await withTimeout(connection.stop(), STEP_MS, "stop()");
            const info = closeInfo.get(connection);
            await waitFor(() => info.fired, STEP_MS, "onclose");
            assert.equal(info.error, undefined, `onclose got an error: ${info.error}`);
            assert.equal(connection.state, signalR.HubConnectionState.Disconnected);
        });
    });
}

// ---------------------------------------------------------------------------------------------
// ComplexObject (CONTRACT §4): kept apart so a payload-mapping failure is easy to spot
// ---------------------------------------------------------------------------------------------

const GUID = "00010203-0405-0607-0706-050403020100";

const COMPLEX = {
    json: {
        echo: {
            String: "Hello, World!",
            IntArray: [1, 2, 3, 255],
            ByteArray: "aGVsbG8=",
            Guid: GUID,
            DateTime: "2002-04-01T10:20:15Z",
        },
        fixed: {
            String: "hello world",
            IntArray: [1, 2, 3],
            ByteArray: "AQID",
            Guid: GUID,
            DateTime: "2000-01-01T00:00:00Z",
        },
    },
    messagepack: {
        echo: {
            String: "Hello, World!",
            IntArray: [1, 2, 3, 255],
            ByteArray: new Uint8Array([0x68, 0x65, 0x6c, 0x6c, 0x6f]),
            Guid: GUID,
            DateTime: new Date(Date.UTC(2002, 3, 1, 10, 20, 15)),
        },
        fixed: {
            String: "hello world",
            IntArray: [1, 2, 3],
            ByteArray: new Uint8Array([1, 2, 3]),
            Guid: GUID,
            DateTime: new Date(Date.UTC(2000, 0, 1, 0, 0, 0)),
        },
    },
};

describe(`ComplexObject (${TRANSPORT})`, () => {
    afterEach(stopAll);

    for (const protocol of PROTOCOLS) {
        const expected = COMPLEX[protocol.name];
        const opts = { ...TEST_OPTS, skip: protocolSkip(protocol) };

        it(`EchoComplexObject round-trips (${protocol.name})`, opts, async () => {
            const connection = await connect(protocol);
            const result = await invoke(connection, "EchoComplexObject", expected.echo);
            assert.deepEqual(tagged(result), tagged(expected.echo));
        });

        it(`SendComplexObject returns the fixed value (${protocol.name})`, opts, async () => {
            const connection = await connect(protocol);
            const result = await invoke(connection, "SendComplexObject");
            assert.deepEqual(tagged(result), tagged(expected.fixed));
        });
    }
});

// ---------------------------------------------------------------------------------------------
// Mixed protocols on one hub
// ---------------------------------------------------------------------------------------------

// On SSE a MessagePack connection is impossible; transports.test.mjs mixes transports instead.
describe(`mixed protocols (${TRANSPORT})`, { skip: protocolSkip(PROTOCOLS[1]) }, () => {
    afterEach(stopAll);

    it("a JSON and a MessagePack connection both receive the same SendToAll", TEST_OPTS, async () => {
        const [jsonConn, msgpackConn] = await Promise.all(PROTOCOLS.map((p) => connect(p)));
        const received = [jsonConn, msgpackConn].map((conn) => record(conn, "AllMessage"));
        for (const [sender, label] of [[jsonConn, "json"], [msgpackConn, "messagepack"]]) {
            const m = unique(`mixed-from-${label}`);
            const isM = (args) => args.length === 1 && args[0] === m;
            await invoke(sender, "SendToAll", m);
            await waitFor(() => received[0].some(isM), STEP_MS, `AllMessage (sent by ${label}) on the JSON connection`);
            await waitFor(() => received[1].some(isM), STEP_MS, `AllMessage (sent by ${label}) on the MessagePack connection`);
        }
    });
});
