// What every interop test file shares: the server and transport from the environment, the two
// hub protocols, the step bounds, and bounded waiting under a per-file time budget.
// (Not a test file: `node --test js/` runs only `*.test.mjs`.)

import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";

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
