// What every interop test file shares: the server, transport and client generation from the
// environment, the two hub protocols, the step bounds, and bounded waiting under a per-file time
// budget. (Not a test file: `node --test js/` runs only `*.test.mjs`.)
//
// Every test file takes `signalR` (and the MessagePack protocol) from here, never from a package,
// so the whole suite runs unchanged on each generation of the official client.

import assert from "node:assert/strict";
import { createRequire } from "node:module";

/**
 * The official client generations the suite runs with (HUBS_SIGNALR, default 9). Each is an npm
 * package pinned in package.json: the client, the MessagePack protocol package to use with it, and
 * the name under which that MessagePack package imports the client (`peer`).
 *
 * 1 is `@aspnet/signalr` 1.1.4 (ASP.NET Core 2.1/2.2; the package was renamed `@microsoft/signalr`
 * at 3.0), with `@aspnet/signalr-protocol-msgpack` 1.1.0 (its newest): both under their own names,
 * so the MessagePack package's `@aspnet/signalr` import is the root 1.1.4 and needs no override.
 * There is no MessagePack 11.0.0; its newest, 10.0.11, is the one for 11.0.0 too. Its own
 * `@microsoft/signalr` import (the enums, `NullLogger`) must be the generation it runs with, not
 * the root 9.0.19: package.json installs it twice under two aliases and `overrides` pins the
 * nested `@microsoft/signalr` of each to 10.0.11 and 11.0.0 (`MESSAGEPACK_PEER_VERSION` below).
 */
const GENERATIONS = {
    1: { client: "@aspnet/signalr", messagePack: "@aspnet/signalr-protocol-msgpack", peer: "@aspnet/signalr" },
    9: { client: "@microsoft/signalr", messagePack: "@microsoft/signalr-protocol-msgpack", peer: "@microsoft/signalr" },
    10: { client: "signalr10", messagePack: "signalr10-protocol-msgpack", peer: "@microsoft/signalr" },
    11: { client: "signalr11", messagePack: "signalr11-protocol-msgpack", peer: "@microsoft/signalr" },
};

/** The client generation of this run: 1, 9, 10 or 11 (HUBS_SIGNALR), the client's major version. */
export const GENERATION = Number(process.env.HUBS_SIGNALR || "9");
if (!GENERATIONS[GENERATION]) {
    console.error(`HUBS_SIGNALR must be one of ${Object.keys(GENERATIONS).join(", ")} (got "${process.env.HUBS_SIGNALR}")`);
    process.exit(2);
}
/** The npm name the chosen client is installed under (`@aspnet/signalr`, `@microsoft/signalr`, `signalr10`, `signalr11`). */
export const SIGNALR_PACKAGE = GENERATIONS[GENERATION].client;

const require = createRequire(import.meta.url);
/**
 * `require` of a module of the chosen client's CommonJS build, e.g. `"dist/cjs/HttpConnection.js"`
 * (what the package index does not export; the path is the same from 1.0 to 11.0). The package's
 * index is its CommonJS build too (`main`), so these share its classes and enums.
 */
export const requireSignalR = (path) => require(`${SIGNALR_PACKAGE}/${path}`);

/** The chosen client (its index: HubConnectionBuilder, HttpTransportType, VERSION, …). */
export const signalR = await import(SIGNALR_PACKAGE);
/** The MessagePack hub protocol class that goes with the chosen client. */
export const { MessagePackHubProtocol } = await import(GENERATIONS[GENERATION].messagePack);
/**
 * The version of the client package the MessagePack package itself imports (`@aspnet/signalr` for
 * generation 1, `@microsoft/signalr` from 3.0 on), as Node resolves it.
 */
export const MESSAGEPACK_PEER_VERSION = createRequire(require.resolve(GENERATIONS[GENERATION].messagePack))(
    `${GENERATIONS[GENERATION].peer}/package.json`).version;
if (MESSAGEPACK_PEER_VERSION !== signalR.VERSION) {
    console.error(`the MessagePack package of generation ${GENERATION} imports ${GENERATIONS[GENERATION].peer} `
        + `${MESSAGEPACK_PEER_VERSION}, but the client is ${signalR.VERSION}: run \`npm ci\` in tests/interop `
        + "(see package.json's overrides)");
    process.exit(2);
}
/** The client's name and version, e.g. `@microsoft/signalr 9.0.19`, `@aspnet/signalr 1.1.4`. */
export const CLIENT_NAME = `${GENERATIONS[GENERATION].peer} ${signalR.VERSION}`;

/** A skip reason when the run's client is older than `major`, naming what `feature` needs; else false. */
const since = (major, feature, pkg = "@microsoft/signalr") => GENERATION < major
    ? `${feature} came with ${pkg} ${major}.0 (this run is ${CLIENT_NAME})`
    : false;

/**
 * What the older clients lack, as `skip` reasons (false when the run's client has it), read from
 * the packages themselves (1.1.4: `dist/esm/*.d.ts` and `dist/cjs`). Everything else the suite
 * uses is in every generation: HubConnectionBuilder, invoke/send/stream/on/onclose, JSON and
 * MessagePack, the three transports, `skipNegotiation`, `accessTokenFactory`, `DefaultHttpClient`,
 * `HttpConnection` at `dist/cjs/HttpConnection.js`, `VERSION`, `serverTimeoutInMilliseconds`.
 */
export const LACKS = {
    /**
     * `Subject` and client-to-server streams (a Subject among `invoke`'s arguments, sent as
     * `streamIds`): 1.1.4 has neither; it would serialize the Subject as an argument.
     */
    uploadStreams: since(3, "client-to-server streaming (a Subject argument)"),
    /**
     * Cancelling a server-to-client stream over MessagePack: `@aspnet/signalr-protocol-msgpack`
     * 1.1.0 (the newest 1.x) cannot write a CancelInvocation (its `writeMessage` throws "Invalid
     * message type." when the subscription is disposed); the 3.0 package can. JSON cancels fine.
     */
    messagePackCancel: since(3, "writing CancelInvocation (disposing a stream's subscription) in MessagePack",
        "@microsoft/signalr-protocol-msgpack"),
    /**
     * One POST at a time over SSE and long polling (the client's send queue, which also batches):
     * 1.1.4 sends each message in its own POST at once, so unawaited sends race each other on
     * separate HTTP requests and reach the server in any order (protocol.md §3.5).
     */
    orderedPosts: since(3, "one POST at a time (the send queue keeping unawaited sends in order)"),
    /**
     * Closing cleanly when a Close message and the end of the transport arrive together: 1.1.4
     * handles the Close with an asynchronous `stop()`, so an SSE stream that ends in the same read
     * is reported first, as the transport's `Error occurred`; and a `start()` whose handshake
     * answer and Close arrive together still resolves and leaves the state `Connected` after
     * `onclose` has fired (3.0 checks for a close during start).
     */
    closeWithTransportEnd: since(3, "a clean close when the Close message and the transport's end arrive together"),
    /**
     * A failed transport `stop()` handled inside the client: 1.1.4 leaves the promise of the
     * `stop()` a Close message starts unhandled, so a long-polling DELETE refused (e.g. 401 with a
     * token that has expired meanwhile, as ASP.NET Core refuses it too) is an unhandled rejection.
     */
    handledStopFailure: since(3, "catching a failed transport stop() (a refused long-polling DELETE)"),
    /** `withAutomaticReconnect()` and `onreconnecting`; a 1.x connection just closes. */
    automaticReconnect: since(3, "withAutomaticReconnect()"),
    /**
     * `HubConnection.connectionId`: 1.1.4 keeps the negotiated id only in its transport's URL
     * (`connectionIdOf` reads it there).
     */
    connectionId: since(3, "HubConnection.connectionId"),
    /**
     * The `User-Agent: Microsoft SignalR/…` header (3.1 sends none either): 1.1.4 sends no
     * User-Agent at all (its `request`, `ws` and `eventsource` set none).
     */
    userAgent: since(5, "the `User-Agent: Microsoft SignalR/…` header"),
    /**
     * Client results: 1.1.4 stops its connection ("Server requested a response, which is not
     * supported in this version of the client.") when a server invocation carries an id.
     */
    clientResults: since(7, "client results (a handler's return value sent back to the server)"),
    /** `HubConnectionBuilder.withServerTimeout()`; older clients set `serverTimeoutInMilliseconds`. */
    withServerTimeout: since(8, "HubConnectionBuilder.withServerTimeout()"),
    /** `withStatefulReconnect()` (negotiate `useStatefulReconnect`, the ack/sequence messages). */
    statefulReconnect: since(8, "stateful reconnect (withStatefulReconnect())"),
};

/**
 * The connection id the client itself holds (what negotiate gave it), or null when it has none
 * (skipNegotiation). From 3.0 on that is `HubConnection.connectionId`; 1.1.4 has no such property,
 * so it is the `id` query parameter of the URL its transport connected to (negotiate version 0:
 * the id is also the connection token), read from its internals (`HubConnection.connection` is its
 * HttpConnection, whose `transport` keeps `url`, or for WebSockets `webSocket.url`).
 */
export function connectionIdOf(connection) {
    if (!LACKS.connectionId) {
        return connection.connectionId;
    }
    const transport = connection.connection.transport;
    const url = transport?.url ?? transport?.webSocket?.url;
    assert.ok(url, `cannot find the transport URL of a ${CLIENT_NAME} connection (is it connected?)`);
    return new URL(url).searchParams.get("id");
}

/**
 * `HubConnectionBuilder.withServerTimeout(ms)` where the client has it, else (before 8.0) the
 * same through `serverTimeoutInMilliseconds` on the built connection: a builder-like object
 * whose `build()` applies it.
 */
export function withServerTimeout(builder, ms) {
    if (!LACKS.withServerTimeout) {
        return builder.withServerTimeout(ms);
    }
    return {
        build() {
            const connection = builder.build();
            connection.serverTimeoutInMilliseconds = ms;
            return connection;
        },
    };
}

/** The server, from HUBS_URL (e.g. `http://127.0.0.1:5000`), without a trailing slash. */
export const HUBS_URL = (process.env.HUBS_URL ?? "").replace(/\/+$/, "");
if (!HUBS_URL) {
    console.error("HUBS_URL is not set (expected e.g. HUBS_URL=http://127.0.0.1:5000)");
    process.exit(2);
}

export const TRANSPORT_NAMES = ["WebSockets", "ServerSentEvents", "LongPolling"];
/** The transport a run is for (HUBS_TRANSPORT, default WebSockets). */
export const TRANSPORT = process.env.HUBS_TRANSPORT || "WebSockets";
if (!TRANSPORT_NAMES.includes(TRANSPORT)) {
    console.error(`HUBS_TRANSPORT must be one of ${TRANSPORT_NAMES.join(", ")} (got "${TRANSPORT}")`);
    process.exit(2);
}

export const JSON_PROTOCOL = { name: "json", create: () => new signalR.JsonHubProtocol() };
export const MSGPACK_PROTOCOL = { name: "messagepack", create: () => new MessagePackHubProtocol() };
export const PROTOCOLS = [JSON_PROTOCOL, MSGPACK_PROTOCOL];

/** Why `protocol` cannot run over TRANSPORT (a `skip` reason), or false if it can. */
export function protocolSkip(protocol) {
    return TRANSPORT === "ServerSentEvents" && protocol.name === "messagepack"
        ? "Server-Sent Events carry text only; MessagePack is binary"
        : false;
}

/** Default bound for a single await (connect, invoke, a whole finite stream, a handler call). */
export const STEP_MS = 5000;
/** How long to wait before concluding that a message did NOT arrive. */
export const ABSENCE_MS = 300;
/** Per-test bound; the runner fails the test if it takes longer. */
export const TEST_OPTS = { timeout: 15000 };

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let uniqueCounter = 0;
const RUN_ID = Math.random().toString(36).slice(2, 8);
/** A value unique to this run and call, so concurrent runs against the same server can't mix. */
export function unique(prefix) {
    uniqueCounter += 1;
    return `${prefix}-${RUN_ID}-${uniqueCounter}`;
}

/** A bounded step that did not settle in time. */
export class StepTimeout extends Error {}

/** A promise with its `resolve` and `reject` exposed. */
export function deferred() {
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
        resolve = res;
        reject = rej;
    });
    return { promise, resolve, reject };
}

/**
 * A wall-clock budget for a whole file, `ms` from now (or `ms[TRANSPORT]` when `ms` is an object
 * of per-transport budgets): once it is spent, every remaining bounded step fails at once, so even
 * a server that never answers cannot keep a file running much past it.
 */
export function fileBudget(ms) {
    const deadline = Date.now() + (typeof ms === "number" ? ms : ms[TRANSPORT]);

    /**
     * Rejects with a StepTimeout if `promise` does not settle within `stepMs` (or, unless
     * `useBudget` is false, before the file's budget runs out).
     */
    function withTimeout(promise, stepMs, what, { useBudget = true } = {}) {
        let timer;
        const limit = useBudget ? Math.min(stepMs, Math.max(0, deadline - Date.now())) : stepMs;
        const reason = limit < stepMs
            ? `the file's overall time budget ran out: ${what}`
            : `timed out after ${stepMs} ms: ${what}`;
        const timeout = new Promise((_, reject) => {
            timer = setTimeout(() => reject(new StepTimeout(reason)), limit);
        });
        return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
    }

    /** Polls `predicate` until it returns a truthy value (which is returned) or `stepMs` elapse. */
    async function waitFor(predicate, stepMs, what) {
        const until = Math.min(Date.now() + stepMs, deadline);
        for (;;) {
            const value = predicate();
            if (value) {
                return value;
            }
            if (Date.now() >= until) {
                throw new StepTimeout(`timed out after ${stepMs} ms (or the file's time budget ran out) waiting for: ${what}`);
            }
            await sleep(10);
        }
    }

    return { deadline, withTimeout, waitFor };
}
