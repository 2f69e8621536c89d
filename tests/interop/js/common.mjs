// What every interop test file shares: the server, transport and client generation from the
// environment, the two hub protocols, the step bounds, and bounded waiting under a per-file time
// budget. (Not a test file: `node --test js/` runs only `*.test.mjs`.)
//
// Every test file takes `signalR` (and the MessagePack protocol) from here, never from a package,
// so the whole suite runs unchanged on each generation of the official client.

import { createRequire } from "node:module";

/**
 * The official client generations the suite runs with (HUBS_SIGNALR, default 9). Each is an npm
 * package pinned in package.json: the client, and the MessagePack protocol package to use with it.
 * There is no MessagePack 11.0.0; its newest, 10.0.11, is the one for 11.0.0 too. Its own
 * `@microsoft/signalr` import (the enums, `NullLogger`) must be the generation it runs with, not
 * the root 9.0.19: package.json installs it twice under two aliases and `overrides` pins the
 * nested `@microsoft/signalr` of each to 10.0.11 and 11.0.0 (`MESSAGEPACK_PEER_VERSION` below).
 */
const GENERATIONS = {
    9: { client: "@microsoft/signalr", messagePack: "@microsoft/signalr-protocol-msgpack" },
    10: { client: "signalr10", messagePack: "signalr10-protocol-msgpack" },
    11: { client: "signalr11", messagePack: "signalr11-protocol-msgpack" },
};

/** The client generation of this run: 9, 10 or 11 (HUBS_SIGNALR). */
export const GENERATION = Number(process.env.HUBS_SIGNALR || "9");
if (!GENERATIONS[GENERATION]) {
    console.error(`HUBS_SIGNALR must be one of ${Object.keys(GENERATIONS).join(", ")} (got "${process.env.HUBS_SIGNALR}")`);
    process.exit(2);
}
/** The npm name the chosen client is installed under (`@microsoft/signalr`, `signalr10`, `signalr11`). */
export const SIGNALR_PACKAGE = GENERATIONS[GENERATION].client;

const require = createRequire(import.meta.url);
/**
 * `require` of a module of the chosen client's CommonJS build, e.g. `"dist/cjs/HttpConnection.js"`
 * (what the package index does not export). The package's index is its CommonJS build too
 * (`main`), so these share its classes and enums.
 */
export const requireSignalR = (path) => require(`${SIGNALR_PACKAGE}/${path}`);

/** The chosen `@microsoft/signalr` (its index: HubConnectionBuilder, HttpTransportType, VERSION, …). */
export const signalR = await import(SIGNALR_PACKAGE);
/** The MessagePack hub protocol class that goes with the chosen client. */
export const { MessagePackHubProtocol } = await import(GENERATIONS[GENERATION].messagePack);
/** The version of the `@microsoft/signalr` the MessagePack package itself imports, as Node resolves it. */
export const MESSAGEPACK_PEER_VERSION = createRequire(require.resolve(GENERATIONS[GENERATION].messagePack))(
    "@microsoft/signalr/package.json").version;
if (MESSAGEPACK_PEER_VERSION !== signalR.VERSION) {
    console.error(`the MessagePack package of generation ${GENERATION} imports @microsoft/signalr ${MESSAGEPACK_PEER_VERSION}, `
        + `but the client is ${signalR.VERSION}: run \`npm ci\` in tests/interop (see package.json's overrides)`);
    process.exit(2);
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
