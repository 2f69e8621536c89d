// Transport selection and cross-transport behaviour with the official `@microsoft/signalr` client
// (CONTRACT.md §2, §3, §4; protocol.md §2.5, §3): which transport the server sees when the client
// is forced to one, automatic fallback on `/testhub-nowebsockets`, a group fan-out across three
// transports at once, the negotiate cookies and the Node `User-Agent` on every transport.
//
// Run: HUBS_URL=http://127.0.0.1:5000 node --test tests/interop/js/   (see hub.test.mjs)
// This file chooses its transports itself, so it runs only when HUBS_TRANSPORT is unset or
// `WebSockets`; with `ServerSentEvents` or `LongPolling` it is skipped (the Rust test runs the
// directory once per transport, and this needs to run once).
// Every await is bounded; the file takes a second or two against a healthy server and an overall
// 60 s budget bounds it even against a server that never answers.
//
// Cookies in Node: the client's FetchHttpClient keeps a tough-cookie CookieJar per HubConnection
// and wraps fetch with fetch-cookie, so cookies set by the negotiate response are sent on the long
// polling GETs and the POSTs. For WebSockets and SSE it builds a `Cookie` header itself from the
// same jar (`getCookieString`), joining the cookies' full `toString()`, so that header reads
// `testCookie=testValue; Path=/; testCookie2=testValue2; Path=/`: a server parsing it must skip the
// `Path=/` pairs. Expired cookies are dropped by the jar.

import { after, afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
    ABSENCE_MS, HUBS_URL, JSON_PROTOCOL, LACKS, MSGPACK_PROTOCOL, STEP_MS, TEST_OPTS, TRANSPORT, fileBudget, signalR,
    sleep, unique,
} from "./common.mjs";

const HUB_URL = `${HUBS_URL}/testhub`;
/** The same TestHub, but negotiate offers only ServerSentEvents and LongPolling. */
const NO_WEBSOCKETS_URL = `${HUBS_URL}/testhub-nowebsockets`;

/** Skip reason for the whole file when the run is for another transport (it needs to run once). */
const FILE_SKIP = TRANSPORT === "WebSockets"
    ? false
    : `runs only once, with HUBS_TRANSPORT unset or WebSockets (it is ${TRANSPORT})`;

/** Every transport × protocol pair the official client can use (SSE is text-only). */
const COMBINATIONS = [
    ["WebSockets", JSON_PROTOCOL],
    ["WebSockets", MSGPACK_PROTOCOL],
    ["ServerSentEvents", JSON_PROTOCOL],
    ["LongPolling", JSON_PROTOCOL],
    ["LongPolling", MSGPACK_PROTOCOL],
];

/** The file's budget (see fileBudget in common.mjs). */
const { withTimeout, waitFor } = fileBudget(60000);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Connections opened by the current test; stopped by the afterEach hooks. */
const openConnections = new Set();

/**
 * Builds a HubConnection to `url` with `protocol`, forced to `transport` (a transport name) or,
 * when it is undefined, letting the client pick from negotiate, and starts it.
 */
async function connect(protocol, transport, url = HUB_URL) {
    const httpOptions = transport === undefined ? {} : { transport: signalR.HttpTransportType[transport] };
    const connection = new signalR.HubConnectionBuilder()
        .withUrl(url, httpOptions)
        .withHubProtocol(protocol.create())
        .configureLogging(signalR.LogLevel.Warning)
        .build();
    openConnections.add(connection);
    const label = `${transport ?? "automatic"} ${protocol.name} connection to ${url}`;
    await withTimeout(connection.start(), STEP_MS, `start() of a ${label}`);
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

after(async () => {
    await stopAll();
    // Safety net: if a leaked socket, poll or timer keeps the event loop alive, exit anyway (the
    // runner has already reported the results by then).
    setTimeout(() => process.exit(), 3000).unref();
});

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

describe("transports", { skip: FILE_SKIP }, () => {
    afterEach(stopAll);

    describe("GetActiveTransportName with the client forced to one transport", () => {
        const cases = [
            ["WebSockets", JSON_PROTOCOL],
            ["ServerSentEvents", JSON_PROTOCOL],
            ["LongPolling", JSON_PROTOCOL],
            ["LongPolling", MSGPACK_PROTOCOL],
        ];
        for (const [transport, protocol] of cases) {
            it(`${transport} + ${protocol.name} → "${transport}"`, TEST_OPTS, async () => {
                const connection = await connect(protocol, transport);
                assert.equal(await invoke(connection, "GetActiveTransportName"), transport);
            });
        }
    });

    describe("automatic fallback on /testhub-nowebsockets (negotiate offers SSE and long polling)", () => {
        const cases = [
            // JSON takes the first offered transport it can use; MessagePack skips SSE (text only).
            [JSON_PROTOCOL, "ServerSentEvents"],
            [MSGPACK_PROTOCOL, "LongPolling"],
        ];
        for (const [protocol, expected] of cases) {
            it(`${protocol.name} without a transport option lands on ${expected} and Echo works`, TEST_OPTS, async () => {
                const connection = await connect(protocol, undefined, NO_WEBSOCKETS_URL);
                assert.equal(await invoke(connection, "GetActiveTransportName"), expected);
                const probe = unique("fallback");
                assert.equal(await invoke(connection, "Echo", probe), probe);
            });
        }
    });

    describe("mixed transports on one hub", () => {
        it("SendToGroup reaches a WebSockets/JSON, a LongPolling/MessagePack and an SSE/JSON member", TEST_OPTS, async () => {
            const members = [
                ["WebSockets/json", await connect(JSON_PROTOCOL, "WebSockets")],
                ["LongPolling/messagepack", await connect(MSGPACK_PROTOCOL, "LongPolling")],
                ["ServerSentEvents/json", await connect(JSON_PROTOCOL, "ServerSentEvents")],
            ];
            const received = members.map(([, connection]) => record(connection, "GroupMessage"));
            const group = unique("mixed-group");
            await Promise.all(members.map(([, connection]) => invoke(connection, "JoinGroup", group)));

            // Each member sends once, so every transport is exercised as sender and as receiver.
            for (const [senderLabel, sender] of members) {
                const m = unique(`from-${senderLabel}`);
                const isM = (args) => args[0] === group && args[1] === m;
                await invoke(sender, "SendToGroup", group, m);
                for (const [i, [label]] of members.entries()) {
                    await waitFor(() => received[i].some(isM), STEP_MS, `GroupMessage sent by ${senderLabel} on ${label}`);
                }
                await sleep(ABSENCE_MS);
                for (const [i, [label]] of members.entries()) {
                    assert.deepEqual(received[i].filter(isM), [[group, m]],
                        `${label} must get the GroupMessage sent by ${senderLabel} exactly once`);
                }
            }
        });
    });

    describe("negotiate cookies are kept and sent on the transport request", () => {
        for (const [transport, protocol] of COMBINATIONS) {
            it(`${transport} + ${protocol.name}: GetCookie sees testCookie and testCookie2, not expiredCookie`, TEST_OPTS, async () => {
                const connection = await connect(protocol, transport);
                assert.equal(await invoke(connection, "GetCookie", "testCookie"), "testValue");
                assert.equal(await invoke(connection, "GetCookie", "testCookie2"), "testValue2");
                assert.equal(await invoke(connection, "GetCookie", "expiredCookie"), null,
                    "the client must drop a cookie whose expiry is in the past");
            });
        }
    });

    describe("the Node client's User-Agent reaches the hub", { skip: LACKS.userAgent }, () => {
        for (const [transport, protocol] of COMBINATIONS) {
            it(`${transport} + ${protocol.name}: GetHeader("User-Agent") starts with "Microsoft SignalR/"`, TEST_OPTS, async () => {
                const connection = await connect(protocol, transport);
                const userAgent = await invoke(connection, "GetHeader", "User-Agent");
                assert.equal(typeof userAgent, "string", `no User-Agent header: ${userAgent}`);
                assert.ok(userAgent.startsWith("Microsoft SignalR/"),
                    `User-Agent does not start with "Microsoft SignalR/": "${userAgent}"`);
                // e.g. "Microsoft SignalR/9.0 (9.0.19; Linux; NodeJS; 20.20.2)"
                assert.ok(userAgent.includes(`(${signalR.VERSION}; `) && userAgent.includes("; NodeJS; "),
                    `User-Agent is not the Node client's: "${userAgent}"`);
                // The header name is case-insensitive.
                assert.equal(await invoke(connection, "GetHeader", "user-agent"), userAgent);
            });
        }
    });
});
