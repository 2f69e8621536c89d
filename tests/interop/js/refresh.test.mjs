// Authentication refresh (CONTRACT.md §5) with `@microsoft/signalr` 11.0, the first client that has
// it: `withAuthenticationRefresh()` keeps a connection of short-lived tokens alive on every
// transport × protocol, and what it sends meanwhile arrives once and in order; a refresh with
// another user's token is refused and changes nothing; the `{hub}/refresh` error table by raw
// `fetch`; and long polling's 409 `authentication_refresh_required`, which the client answers by
// refreshing by itself.
//
// Run: HUBS_URL=http://127.0.0.1:5000 HUBS_SIGNALR=11 node --test tests/interop/js/   (see hub.test.mjs)
// Runs only with HUBS_SIGNALR=11, and only once per generation: when HUBS_TRANSPORT is unset or
// `WebSockets` (it picks its transports itself, as transports.test.mjs). The cases run at the same
// time: the longest keeps its connections for 60 s, so the file takes ~70 s; an overall budget
// bounds it even against a server that never answers.
//
// What 11.0.0 does (its sources): the refresh is `POST {hub}/refresh` with the connection token in
// `X-SignalR-Connection-Token` and `Authorization: Bearer <a fresh accessTokenFactory() token>`;
// anything but 200 rejects with `Unexpected status code returned from authentication refresh
// '<status>'` (the body is not read); the timer refreshes at half the lifetime when it is at most
// twice the margin (default 5 min), so a 10 s token is refreshed 5 s after the handshake, then at
// half of each answer's `tokenLifetimeSeconds`. A failed refresh neither retries nor closes.

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
    GENERATION, HUBS_URL, JSON_PROTOCOL, MSGPACK_PROTOCOL, STEP_MS, TRANSPORT, fileBudget, signalR, sleep, unique,
} from "./common.mjs";

const AUTH_URL = `${HUBS_URL}/authorizedhub`;
const FILE_SKIP = process.env.HUBS_SKIP_REFRESH
    ? "run on its own (HUBS_SKIP_REFRESH; tests/tests/interop.rs runs this file alongside the suites)"
    : GENERATION < 11
    ? `authentication refresh needs @microsoft/signalr 11 (HUBS_SIGNALR=11; this run is ${GENERATION})`
    : TRANSPORT !== "WebSockets" && `runs only once, with HUBS_TRANSPORT unset or WebSockets (it is ${TRANSPORT})`;

/** How long the connections of case a live on refreshed 10 s tokens. */
const LIVE_MS = 60000;
/** Sender's period. */
const TICK_MS = 250;

/** The file's budget (see fileBudget in common.mjs): ~70 s against a healthy server. */
const { withTimeout, waitFor } = fileBudget(150000);

const COMBINATIONS = [
    ["WebSockets", JSON_PROTOCOL],
    ["WebSockets", MSGPACK_PROTOCOL],
    ["ServerSentEvents", JSON_PROTOCOL],
    ["LongPolling", JSON_PROTOCOL],
    ["LongPolling", MSGPACK_PROTOCOL],
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** A token from the server: `user`, `lifetime` seconds, `roles`. */
async function tokenFor(user, lifetime, roles = []) {
    const query = new URLSearchParams({ user, lifetime: String(lifetime) });
    roles.forEach((role) => query.append("role", role));
    const response = await withTimeout(fetch(`${HUBS_URL}/generateJwtToken?${query}`), STEP_MS, "GET /generateJwtToken");
    assert.equal(response.status, 200, "GET /generateJwtToken");
    return response.text();
}

/** A logger that keeps the client's warnings and errors (for failure messages). */
function keepingLogger() {
    const lines = [];
    return {
        lines,
        log(level, message) {
            if (level >= signalR.LogLevel.Warning) {
                lines.push(`${new Date().toISOString()} ${signalR.LogLevel[level]}: ${message}`);
            }
        },
    };
}

/**
 * The client's HTTP client, recording every answer as `{ method, url, status, content, at }`
 * (content as text). 11.0 resolves non-2xx answers, so a 409 poll is seen here too.
 */
class RecordingHttpClient extends signalR.DefaultHttpClient {
    constructor(logger) {
        super(logger);
        this.answers = [];
    }

    async send(request) {
        const response = await super.send(request);
        const { content } = response;
        this.answers.push({
            method: request.method,
            url: request.url,
            status: response.statusCode,
            content: content instanceof ArrayBuffer ? Buffer.from(content).toString("latin1") : content,
            at: Date.now(),
        });
        return response;
    }

    /** The answers to polls (GET) and to `{hub}/refresh`. */
    polls() {
        return this.answers.filter((a) => a.method === "GET");
    }

    refreshes() {
        return this.answers.filter((a) => new URL(a.url).pathname.endsWith("/refresh"));
    }
}

/** Connections of the running tests; stopped at the end. */
const openConnections = new Set();

/**
 * Starts a connection to /authorizedhub over `transport` with `protocol` whose token factory is
 * `factory`, with `withAuthenticationRefresh()` when `autoRefresh`. Returns it with what it saw:
 * `closed` ({ fired, error }), `refreshed` and `refreshFailed` (the events), `http`, `logger`.
 */
async function connect({ transport, protocol, factory, autoRefresh = false }) {
    const logger = keepingLogger();
    const http = new RecordingHttpClient(logger);
    let builder = new signalR.HubConnectionBuilder()
        .withUrl(AUTH_URL, { transport: signalR.HttpTransportType[transport], accessTokenFactory: factory, httpClient: http })
        .withHubProtocol(protocol.create())
        .configureLogging(logger);
    if (autoRefresh) {
        builder = builder.withAuthenticationRefresh();
    }
    const connection = builder.build();
    const seen = { connection, http, logger, closed: { fired: false, error: undefined }, refreshed: [], refreshFailed: [] };
    connection.onclose((error) => {
        seen.closed = { fired: true, error, at: Date.now() };
    });
    connection.onAuthenticationRefreshed((event) => seen.refreshed.push({ ...event, at: Date.now() }));
    connection.onAuthenticationRefreshFailed((event) => seen.refreshFailed.push(event));
    openConnections.add(connection);
    await withTimeout(connection.start(), STEP_MS, `start() of a ${transport} ${protocol.name} connection`);
    assert.equal(connection.state, signalR.HubConnectionState.Connected);
    return seen;
}

/** `connection.invoke(...)`, bounded by STEP_MS. */
function invoke(connection, method, ...args) {
    return withTimeout(connection.invoke(method, ...args), STEP_MS, `invoke("${method}")`);
}

/** A sender with its own long-lived token (another user), over WebSockets/JSON. */
async function sender() {
    const user = unique("sender");
    const token = await tokenFor(user, 120);
    return (await connect({ transport: "WebSockets", protocol: JSON_PROTOCOL, factory: () => token })).connection;
}

/**
 * Sends `Message(n)` to `connectionId` and `GroupMessage(group, n)` to `group` from `from`,
 * n = 0, 1, …, every TICK_MS for `ms`; returns how many it sent.
 */
async function sendNumbered(from, connectionId, group, ms) {
    const start = Date.now();
    let n = 0;
    while (Date.now() - start < ms) {
        const text = String(n);
        await Promise.all([
            invoke(from, "SendToConnection", connectionId, text),
            invoke(from, "SendToGroup", group, text),
        ]);
        n += 1;
        await sleep(start + n * TICK_MS - Date.now());
    }
    return n;
}

/** Records `Message` and `GroupMessage` texts on `connection`. */
function recordNumbered(connection, group) {
    const got = { direct: [], group: [] };
    connection.on("Message", (message) => { got.direct.push(message); });
    connection.on("GroupMessage", (name, message) => {
        if (name === group) {
            got.group.push(message);
        }
    });
    return got;
}

/** Asserts `got` holds exactly "0" … `${count - 1}`, in order. */
function assertNumbered(got, count, what) {
    const expected = Array.from({ length: count }, (_, i) => String(i));
    for (const [kind, messages] of Object.entries(got)) {
        assert.deepEqual(messages, expected, `${what}: every ${kind} message once, in order`);
    }
}

/** The closed state as text, with the client's warnings, for a failure message. */
const describeClose = (seen) => `closed: ${seen.closed.fired} ${seen.closed.error ?? ""}\n${seen.logger.lines.join("\n")}`;

/** A raw `POST {path}/refresh`, with `headers`; returns `{ status, type, body }` (body parsed if JSON). */
async function rawRefresh(path, { method = "POST", headers = {}, query = "" } = {}) {
    const response = await withTimeout(fetch(`${HUBS_URL}${path}/refresh${query}`, { method, headers }), STEP_MS,
        `${method} ${path}/refresh`);
    const text = await response.text();
    const type = response.headers.get("content-type") ?? "";
    return { status: response.status, type, body: type.includes("json") ? JSON.parse(text) : text };
}

/** Stops `connections` (all still open when omitted), bounded, reporting but not failing on errors. */
async function stop(connections = [...openConnections]) {
    await Promise.all(connections.map((c) => {
        openConnections.delete(c);
        return withTimeout(c.stop(), STEP_MS, "stop()", { useBudget: false }).catch((e) => console.error(`cleanup: ${e}`));
    }));
}

after(async () => {
    await stop();
    // Safety net: if a leaked socket, poll or timer keeps the event loop alive, exit anyway.
    setTimeout(() => process.exit(), 3000).unref();
});

// ---------------------------------------------------------------------------------------------
// Cases (all at the same time: case a takes 60 s, the others fit in it)
// ---------------------------------------------------------------------------------------------

describe("authentication refresh (11.0)", { skip: FILE_SKIP, concurrency: true }, () => {
    describe("a. withAuthenticationRefresh() keeps a connection of 10 s tokens for 60 s", { concurrency: true }, () => {
        for (const [transport, protocol] of COMBINATIONS) {
            it(`${transport} + ${protocol.name}: same connection, ≥ 8 refreshes, every message once and in order; a refresh adding admin opens AdminOnly`,
                { timeout: LIVE_MS + 40000 }, async (t) => {
                    const user = unique("refresher");
                    let admin = false;
                    let firstAdminToken = Infinity;
                    const seen = await connect({
                        transport,
                        protocol,
                        autoRefresh: true,
                        factory: async () => {
                            if (admin) {
                                firstAdminToken = Math.min(firstAdminToken, Date.now());
                            }
                            return tokenFor(user, 10, admin ? ["admin"] : []);
                        },
                    });
                    const { connection } = seen;
                    const id = connection.connectionId;
                    assert.equal(await invoke(connection, "WhoAmI"), user);
                    assert.deepEqual(await invoke(connection, "MyRoles"), []);
                    const group = unique("refresh-group");
                    await invoke(connection, "JoinGroup", group);
                    const got = recordNumbered(connection, group);

                    const from = await sender();
                    t.after(() => stop([connection, from]));
                    const count = await sendNumbered(from, id, group, LIVE_MS);
                    await waitFor(() => (got.direct.length >= count && got.group.length >= count) || seen.closed.fired,
                        STEP_MS, `all ${count} messages of each kind (got ${got.direct.length} and ${got.group.length})`);

                    assert.equal(seen.closed.fired, false, describeClose(seen));
                    assert.equal(connection.state, signalR.HubConnectionState.Connected);
                    assert.equal(connection.connectionId, id, "the same connection id");
                    assertNumbered(got, count, `${count} messages`);
                    t.diagnostic(`${count} messages of each kind, ${seen.refreshed.length} refreshes`);
                    assert.ok(seen.refreshed.length >= 8, `onAuthenticationRefreshed fired ${seen.refreshed.length} times`);
                    assert.deepEqual(seen.refreshFailed.map((e) => `${e.error}`), [], "no refresh failed");
                    for (const event of seen.refreshed) {
                        assert.ok(event.newTokenLifetimeInSeconds > 0 && event.newTokenLifetimeInSeconds <= 10,
                            `newTokenLifetimeInSeconds ${event.newTokenLifetimeInSeconds}`);
                        assert.ok(event.refreshedAt instanceof Date);
                    }
                    assert.ok(seen.http.refreshes().every((a) => a.status === 200), "every refresh answered 200");

                    // From now on the factory's tokens carry the role admin: the refresh that
                    // asked for one (the refreshes follow one another) brings it to the hub.
                    await assert.rejects(invoke(connection, "AdminOnly"),
                        { message: "Failed to invoke 'AdminOnly' because user is unauthorized" });
                    admin = true;
                    await waitFor(() => seen.refreshed.some((e) => e.at > firstAdminToken) || seen.closed.fired,
                        8000, "a refresh with an admin token");
                    assert.equal(await invoke(connection, "AdminOnly"), "admin");
                    assert.deepEqual(await invoke(connection, "MyRoles"), ["admin"]);
                    assert.equal(await invoke(connection, "WhoAmI"), user);
                    assert.equal(connection.connectionId, id, "the same connection id");
                    assert.equal(seen.closed.fired, false, describeClose(seen));
                });
        }
    });

    describe("b. a refresh with another user's token is refused", { concurrency: true }, () => {
        // Long polling is not here: there the server hands an 11.0 client's expiry to the 409 of
        // case d instead of closing (see connection.test.mjs).
        for (const transport of ["WebSockets", "ServerSentEvents"]) {
            it(`${transport}: refreshAuthentication() rejects with 403, the connection keeps its id and user, and closes when its own token expires`,
                { timeout: 20000 }, async (t) => {
                    const user = unique("owner");
                    const own = await tokenFor(user, 5);
                    const expiresAt = Date.now() + 5000;
                    const other = await tokenFor(unique("intruder"), 60);
                    let token = own;
                    const seen = await connect({ transport, protocol: JSON_PROTOCOL, factory: () => token });
                    const { connection } = seen;
                    t.after(() => stop([connection]));
                    const id = connection.connectionId;

                    token = other;
                    await assert.rejects(withTimeout(connection.refreshAuthentication(), STEP_MS, "refreshAuthentication()"),
                        // The client reports only the status (it does not read the body).
                        { message: "Unexpected status code returned from authentication refresh '403'" });
                    token = own;
                    assert.deepEqual(seen.http.refreshes().map((a) => [a.status, JSON.parse(a.content)]),
                        [[403, { error: "permission_change_rejected" }]]);
                    assert.equal(connection.state, signalR.HubConnectionState.Connected);
                    assert.equal(connection.connectionId, id);
                    assert.equal(await invoke(connection, "WhoAmI"), user, "still its own user");
                    assert.deepEqual(seen.refreshed, [], "no refresh event (a manual refresh fires none)");

                    await waitFor(() => seen.closed.fired, expiresAt + 2500 - Date.now(),
                        "closed within 2 s of its own token's expiry");
                    assert.ok(seen.closed.at >= expiresAt - 1000, "not before its token expired");
                    assert.match(`${seen.closed.error?.message}`,
                        /^Server returned an error on close: Connection closed with an error\./);
                });
        }
    });

    describe("c. the {hub}/refresh error table, by raw fetch", () => {
        it("404 refresh_disabled on /testhub-nowebsockets; 405, 400, 401, 403, 404 and 200 on /authorizedhub", { timeout: 20000 }, async (t) => {
            const disabled = await rawRefresh("/testhub-nowebsockets");
            assert.equal(disabled.status, 404);
            assert.deepEqual(disabled.body, { error: "refresh_disabled" });
            assert.match(disabled.type, /^application\/json/);

            // A live connection, to learn a real connection token: the negotiate answer.
            const user = unique("raw");
            const seen = await connect({
                transport: "WebSockets", protocol: JSON_PROTOCOL, factory: () => tokenFor(user, 60),
            });
            t.after(() => stop([seen.connection]));
            const negotiate = seen.http.answers.find((a) => new URL(a.url).pathname.endsWith("/negotiate"));
            const { connectionToken, tokenLifetimeSeconds } = JSON.parse(negotiate.content);
            assert.ok(tokenLifetimeSeconds > 55 && tokenLifetimeSeconds <= 60, `negotiate's tokenLifetimeSeconds ${tokenLifetimeSeconds}`);
            const bearer = async (lifetime, who = user) => ({ Authorization: `Bearer ${await tokenFor(who, lifetime)}` });
            const header = { "X-SignalR-Connection-Token": connectionToken };

            const get = await rawRefresh("/authorizedhub", { method: "GET", headers: { ...header, ...await bearer(30) } });
            assert.equal(get.status, 405, "GET");
            const missing = await rawRefresh("/authorizedhub", { headers: await bearer(30) });
            assert.deepEqual([missing.status, missing.body], [400, { error: "missing_connection_token" }], "no connection token");
            const forged = (await bearer(30)).Authorization.replace(/.{8}$/, "AAAAAAAA");
            const bad = await rawRefresh("/authorizedhub", { headers: { ...header, Authorization: forged } });
            assert.deepEqual([bad.status, bad.body], [401, { error: "invalid_token" }], "a bad token");
            const none = await rawRefresh("/authorizedhub", { headers: header });
            assert.deepEqual([none.status, none.body], [401, { error: "invalid_token" }], "no token");
            const unknown = await rawRefresh("/authorizedhub",
                { headers: { "X-SignalR-Connection-Token": "no-such-connection-token", ...await bearer(30) } });
            assert.deepEqual([unknown.status, unknown.body], [404, { error: "connection_not_found" }], "a made-up connection token");
            const intruder = await rawRefresh("/authorizedhub", { headers: { ...header, ...await bearer(30, unique("intruder")) } });
            assert.deepEqual([intruder.status, intruder.body], [403, { error: "permission_change_rejected" }], "another user");

            const byHeader = await rawRefresh("/authorizedhub", { headers: { ...header, ...await bearer(30) } });
            assert.equal(byHeader.status, 200, "with X-SignalR-Connection-Token");
            assert.deepEqual(Object.keys(byHeader.body), ["tokenLifetimeSeconds"]);
            assert.ok(Number.isInteger(byHeader.body.tokenLifetimeSeconds)
                && byHeader.body.tokenLifetimeSeconds > 25 && byHeader.body.tokenLifetimeSeconds <= 30,
                `tokenLifetimeSeconds ${byHeader.body.tokenLifetimeSeconds}`);
            const byQuery = await rawRefresh("/authorizedhub",
                { query: `?id=${encodeURIComponent(connectionToken)}`, headers: await bearer(40) });
            assert.equal(byQuery.status, 200, "with ?id=");
            assert.ok(byQuery.body.tokenLifetimeSeconds > 35 && byQuery.body.tokenLifetimeSeconds <= 40,
                `tokenLifetimeSeconds ${byQuery.body.tokenLifetimeSeconds}`);

            // None of it disturbed the connection.
            assert.equal(await invoke(seen.connection, "WhoAmI"), user);
            assert.equal(seen.closed.fired, false, describeClose(seen));
        });
    });

    describe("d. long polling without automatic refresh: 409, then the client refreshes by itself", { concurrency: true }, () => {
        for (const protocol of [JSON_PROTOCOL, MSGPACK_PROTOCOL]) {
            it(`LongPolling + ${protocol.name}: 4 s tokens, 12 s of messages across the expiries, all once and in order`,
                { timeout: 30000 }, async (t) => {
                    const user = unique("poller");
                    const seen = await connect({ transport: "LongPolling", protocol, factory: () => tokenFor(user, 4) });
                    const { connection, http } = seen;
                    const id = connection.connectionId;
                    const started = Date.now();
                    const group = unique("poll-group");
                    await invoke(connection, "JoinGroup", group);
                    const got = recordNumbered(connection, group);

                    const from = await sender();
                    t.after(() => stop([connection, from]));
                    const count = await sendNumbered(from, id, group, 12000);
                    await waitFor(() => (got.direct.length >= count && got.group.length >= count) || seen.closed.fired,
                        STEP_MS, `all ${count} messages of each kind (got ${got.direct.length} and ${got.group.length})`);

                    assert.equal(seen.closed.fired, false, describeClose(seen));
                    assert.equal(connection.state, signalR.HubConnectionState.Connected);
                    assert.equal(connection.connectionId, id, "the same connection id");
                    assertNumbered(got, count, `${count} messages`);
                    // The polls after each expiry were answered 409, and each 409 was followed
                    // by a refresh (200) and a poll that was not a 409.
                    const conflicts = http.polls().filter((a) => a.status === 409);
                    await waitFor(() => http.refreshes().length >= conflicts.length, STEP_MS, "the refresh after the last 409");
                    assert.ok(conflicts.length >= 2, `polls answered 409: ${conflicts.length} (4 s tokens for ${Date.now() - started} ms)`);
                    for (const conflict of conflicts) {
                        assert.deepEqual(JSON.parse(conflict.content), { error: "authentication_refresh_required" });
                    }
                    const refreshes = http.refreshes();
                    assert.deepEqual(refreshes.map((a) => a.status), conflicts.map(() => 200), "one refresh per 409, each 200");
                    assert.deepEqual(seen.refreshed, [], "the long-polling refresh fires no onAuthenticationRefreshed");
                    assert.equal(await invoke(connection, "WhoAmI"), user);
                    t.diagnostic(`${count} messages of each kind, ${conflicts.length} polls answered 409, `
                        + `${http.answers.filter((a) => a.status === 401).length} requests answered 401 (then sent again)`);
                });
        }
    });
});
