// The raw connection endpoint `/echo` and the endpoints around it (CONTRACT.md §2), with the
// official client's `HttpConnection` (the layer under `HubConnection`: negotiate and transports,
// no hub protocol), a plain WebSocket, `/echoredirect`, `/bad-negotiate`, `/uncreatable`, and
// `/authorizedhub` with tokens from `/generateJwtToken`.
//
// Run: HUBS_URL=http://127.0.0.1:5000 HUBS_TRANSPORT=LongPolling node --test tests/interop/js/
// The echo, `/uncreatable` and `/authorizedhub` cases use HUBS_TRANSPORT (default WebSockets); the cases that do not
// depend on a transport run only in the WebSockets run.
// Every await is bounded; an overall budget bounds the file even against a server that never answers.

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import {
    GENERATION, HUBS_URL, LACKS, STEP_MS, TEST_OPTS, TRANSPORT, deferred, fileBudget, requireSignalR, signalR, sleep,
} from "./common.mjs";

// `HttpConnection` is not exported by the package's index (the official functional tests import it
// from the build output the same way), so it comes from the chosen generation's CommonJS build.
const { HttpConnection } = requireSignalR("dist/cjs/HttpConnection.js");
const WebSocket = createRequire(import.meta.url)("ws");

const ONCE = TRANSPORT === "WebSockets" ? false : `runs in the WebSockets run only (this is ${TRANSPORT})`;
const ECHO_URL = `${HUBS_URL}/echo`;
const { withTimeout } = fileBudget(60000);

const logger = { log: (level, message) => { if (level >= signalR.LogLevel.Error) console.error(message); } };

/** The HTTP reason phrases of the statuses a negotiate is refused with here. */
const REASON = { 400: "Bad Request", 401: "Unauthorized" };

/**
 * Checks what `start()` rejected with when negotiate was answered `status` with `body`. From 6.0
 * on the client wraps the HttpError: `Failed to complete negotiation with the server: Error:
 * <body, or the reason phrase if empty>: Status code '<status>'`. Before (1.x to 5.0) it rejects
 * with the HttpError itself, whose message is the reason phrase alone (the body is not read) and
 * whose `statusCode` is the status.
 */
function assertNegotiateRefused(error, status, body) {
    if (GENERATION < 6) {
        assert.ok(error instanceof signalR.HttpError, `not an HttpError: ${error}`);
        assert.equal(error.statusCode, status);
        assert.equal(error.message, REASON[status]);
    } else if (body === undefined) {
        assert.match(error.message, new RegExp(`Status code '${status}'`));
    } else {
        assert.equal(error.message, `Failed to complete negotiation with the server: Error: ${body}: Status code '${status}'`);
    }
    return true;
}

/**
 * Starts an `HttpConnection` to `/echo` (forced to `transport` unless it is undefined) and
 * collects what it receives; `closed` settles with the error `onclose` reports.
 */
async function echoConnection(transport) {
    const options = { logger, ...(transport === undefined ? {} : { transport: signalR.HttpTransportType[transport] }) };
    const connection = new HttpConnection(ECHO_URL, options);
    const received = [];
    let waiter = null;
    connection.onreceive = (data) => {
        received.push(data);
        waiter?.();
    };
    const closed = deferred();
    connection.onclose = (error) => closed.resolve(error);
    await withTimeout(connection.start(signalR.TransferFormat.Text), STEP_MS, `start() over ${transport ?? "any transport"}`);
    /** Waits until everything received so far, joined, equals `text`. */
    const receivedText = async (text) => {
        const deadline = Date.now() + STEP_MS;
        while (received.join("") !== text) {
            assert.ok(Date.now() < deadline, `received ${JSON.stringify(received.join(""))}, expected ${JSON.stringify(text)}`);
            await new Promise((resolve) => {
                waiter = resolve;
                setTimeout(resolve, 50);
            });
        }
    };
    return { connection, received, receivedText, closed: closed.promise };
}

/** The client's HTTP client, recording every answer: `{ method, url, status, content }` (content as text). */
class RecordingHttpClient extends signalR.DefaultHttpClient {
    constructor(answers) {
        super(logger);
        this.answers = answers;
    }

    async send(request) {
        const response = await super.send(request);
        const { content } = response;
        this.answers.push({
            method: request.method,
            url: request.url,
            status: response.statusCode,
            content: content instanceof ArrayBuffer ? Buffer.from(content).toString("latin1") : content,
        });
        return response;
    }
}

/**
 * Before 3.0 (LACKS.handledStopFailure) the client does not catch what its transport's `stop()`
 * rejects with when a Close message stops it: over long polling, the DELETE it then sends with a
 * token that has just expired is refused 401, and would be an unhandled rejection that fails the
 * file. This catches and prints it, for `connection` only (its HttpConnection's `stop`).
 */
function catchStopFailure(connection) {
    if (!LACKS.handledStopFailure) {
        return;
    }
    const http = connection.connection;
    const stop = http.stop.bind(http);
    http.stop = (error) => stop(error).catch((e) => console.log(`# ${LACKS.handledStopFailure}: stop() failed: ${e}`));
}

const open = new Set();
after(async () => {
    await Promise.all([...open].map((c) => withTimeout(c.stop(), STEP_MS, "stop()").catch(() => {})));
    setTimeout(() => process.exit(), 3000).unref();
});

describe(`raw connection /echo over ${TRANSPORT}`, () => {
    it("echoes a message, and stop() closes without an error", TEST_OPTS, async () => {
        const { connection, receivedText, closed } = await echoConnection(TRANSPORT);
        open.add(connection);
        await withTimeout(connection.send("Hello World!"), STEP_MS, "send()");
        await receivedText("Hello World!");
        await withTimeout(connection.stop(), STEP_MS, "stop()");
        open.delete(connection);
        assert.equal(await withTimeout(closed, STEP_MS, "onclose"), undefined);
    });

    it("echoes many messages in order, unicode and a 20 KB one included", TEST_OPTS, async () => {
        const { connection, receivedText } = await echoConnection(TRANSPORT);
        open.add(connection);
        const messages = ["één", "两个", "🎉", "x".repeat(20000)];
        for (let i = 0; i < 30; i += 1) {
            messages.push(`message ${i};`);
        }
        for (const message of messages) {
            await withTimeout(connection.send(message), STEP_MS, "send()");
        }
        // Long polling may deliver several echoes in one response, so compare the concatenation.
        await receivedText(messages.join(""));
        await withTimeout(connection.stop(), STEP_MS, "stop()");
        open.delete(connection);
    });
});

describe("raw connection endpoints (transport-independent)", { skip: ONCE }, () => {
    it("an HttpConnection without a transport option picks one and echoes", TEST_OPTS, async () => {
        const { connection, receivedText, closed } = await echoConnection(undefined);
        open.add(connection);
        await withTimeout(connection.send("picked"), STEP_MS, "send()");
        await receivedText("picked");
        await withTimeout(connection.stop(), STEP_MS, "stop()");
        open.delete(connection);
        assert.equal(await withTimeout(closed, STEP_MS, "onclose"), undefined);
    });

    it("a plain WebSocket without negotiate echoes text frames and closes cleanly with 1000", TEST_OPTS, async () => {
        const socket = new WebSocket(ECHO_URL.replace(/^http/, "ws"));
        const messages = [];
        const message = deferred();
        const closed = deferred();
        socket.on("message", (data, isBinary) => {
            // ws 7 (what the official client depends on) gives text frames as strings; ws 8 says isBinary.
            messages.push({ text: data.toString(), isBinary: isBinary ?? typeof data !== "string" });
            message.resolve();
        });
        socket.on("close", (code, reason) => closed.resolve({ code, reason: reason.toString() }));
        await withTimeout(new Promise((resolve, reject) => {
            socket.once("open", resolve);
            socket.once("error", reject);
        }), STEP_MS, "WebSocket open");
        socket.send("plain hello");
        await withTimeout(message.promise, STEP_MS, "the echo");
        assert.deepEqual(messages, [{ text: "plain hello", isBinary: false }]);
        socket.close(1000);
        const { code } = await withTimeout(closed.promise, STEP_MS, "the close handshake");
        assert.equal(code, 1000);
    });

    it("/echoredirect answers 302 to the same URL on /echo", TEST_OPTS, async () => {
        const response = await withTimeout(fetch(`${HUBS_URL}/echoredirect/negotiate?negotiateVersion=1`, { method: "POST", redirect: "manual" }), STEP_MS, "fetch");
        assert.equal(response.status, 302);
        assert.equal(response.headers.get("location"), "/echo/negotiate?negotiateVersion=1");
    });

    it("a failing negotiate (/bad-negotiate) fails start() with the server's text", TEST_OPTS, async () => {
        const connection = new signalR.HubConnectionBuilder()
            .withUrl(`${HUBS_URL}/bad-negotiate`)
            .configureLogging(signalR.LogLevel.None)
            .build();
        await assert.rejects(withTimeout(connection.start(), STEP_MS, "start()"),
            (error) => assertNegotiateRefused(error, 400, "Some response from server"));
    });
});

describe(`/uncreatable over ${TRANSPORT}`, () => {
    it("the server closes the connection with an error the client reports", TEST_OPTS, async () => {
        const connection = new signalR.HubConnectionBuilder()
            .withUrl(`${HUBS_URL}/uncreatable`, { transport: signalR.HttpTransportType[TRANSPORT] })
            .configureLogging(signalR.LogLevel.None)
            .build();
        const closed = deferred();
        connection.onclose((error) => closed.resolve(error));
        // Officially either start() fails or onclose reports the error, depending on timing.
        let error;
        try {
            await withTimeout(connection.start(), STEP_MS, "start()");
            error = await withTimeout(closed.promise, STEP_MS, "onclose");
        } catch (e) {
            error = e;
        }
        assert.ok(error, "the connection closed without an error");
        const prefix = "Server returned an error on close: Connection closed with an error.";
        assert.ok(error.message.startsWith(prefix), `unexpected error: ${error.message}`);
        assert.match(error.message, /Unable to resolve service/);
        // Before 3.0, start() resolves after onclose when the handshake answer and the Close arrive
        // together (SSE), and sets the state Connected then (LACKS.closeWithTransportEnd).
        if (!LACKS.closeWithTransportEnd) {
            assert.equal(connection.state, signalR.HubConnectionState.Disconnected);
        }
    });
});

describe(`/authorizedhub over ${TRANSPORT}`, () => {
    /**
     * A fresh token for one user (`/generateJwtToken` makes up a new user without `user=`). Before
     * 7.0 the client asks its `accessTokenFactory` for every request (negotiate, the transport's
     * connect, each poll and POST; 7.0 keeps the token until a 401), and the server refuses
     * another user's token on a running connection (403), as ASP.NET Core does.
     */
    const tokenUser = `factory-${Math.random().toString(36).slice(2, 8)}`;
    const getToken = async () => {
        const response = await withTimeout(fetch(`${HUBS_URL}/generateJwtToken?user=${tokenUser}`), STEP_MS, "GET /generateJwtToken");
        assert.equal(response.status, 200);
        return response.text();
    };
    const build = (options) => new signalR.HubConnectionBuilder()
        .withUrl(`${HUBS_URL}/authorizedhub`, { transport: signalR.HttpTransportType[TRANSPORT], ...options })
        .configureLogging(signalR.LogLevel.None)
        .build();

    it("with a token from /generateJwtToken, Echo works", TEST_OPTS, async () => {
        let calls = 0;
        const connection = build({ accessTokenFactory: () => { calls += 1; return getToken(); } });
        open.add(connection);
        await withTimeout(connection.start(), STEP_MS, "start()");
        assert.equal(await withTimeout(connection.invoke("Echo", "Hello, World!"), STEP_MS, "invoke"), "Hello, World!");
        assert.ok(calls >= 1, "the token factory was asked");
        await withTimeout(connection.stop(), STEP_MS, "stop()");
        open.delete(connection);
    });

    it("without a token, start() fails with the official 401 text", TEST_OPTS, async () => {
        const connection = build({});
        await assert.rejects(withTimeout(connection.start(), STEP_MS, "start()"),
            (error) => assertNegotiateRefused(error, 401, "Unauthorized"));
    });

    it("a token the server never issued is refused too", TEST_OPTS, async () => {
        const connection = build({ accessTokenFactory: () => "hubs.forged" });
        await assert.rejects(withTimeout(connection.start(), STEP_MS, "start()"),
            (error) => assertNegotiateRefused(error, 401));
    });

    const tokenFor = async (query) => {
        const response = await withTimeout(fetch(`${HUBS_URL}/generateJwtToken?${query}`), STEP_MS, "GET /generateJwtToken");
        assert.equal(response.status, 200);
        return response.text();
    };

    it("the user is the token's: WhoAmI answers its sub", TEST_OPTS, async () => {
        const user = `ann-${Math.random().toString(36).slice(2, 8)}`;
        const token = await tokenFor(`user=${user}`);
        const connection = build({ accessTokenFactory: () => token });
        open.add(connection);
        await withTimeout(connection.start(), STEP_MS, "start()");
        assert.equal(await withTimeout(connection.invoke("WhoAmI"), STEP_MS, "WhoAmI"), user);
        await withTimeout(connection.stop(), STEP_MS, "stop()");
        open.delete(connection);
    });

    it("AdminOnly refuses a user without the role with the official text, and the connection stays", TEST_OPTS, async () => {
        const token = await tokenFor("user=bob&role=reader");
        const connection = build({ accessTokenFactory: () => token });
        open.add(connection);
        await withTimeout(connection.start(), STEP_MS, "start()");
        await assert.rejects(withTimeout(connection.invoke("AdminOnly"), STEP_MS, "AdminOnly"), (error) => {
            assert.equal(error.message, "Failed to invoke 'AdminOnly' because user is unauthorized");
            return true;
        });
        assert.equal(await withTimeout(connection.invoke("Echo", "still here"), STEP_MS, "Echo"), "still here");
        await withTimeout(connection.stop(), STEP_MS, "stop()");
        open.delete(connection);
    });

    it("AdminOnly answers an admin", TEST_OPTS, async () => {
        const token = await tokenFor("user=root&role=reader&role=admin");
        const connection = build({ accessTokenFactory: () => token });
        open.add(connection);
        await withTimeout(connection.start(), STEP_MS, "start()");
        assert.equal(await withTimeout(connection.invoke("AdminOnly"), STEP_MS, "AdminOnly"), "admin");
        await withTimeout(connection.stop(), STEP_MS, "stop()");
        open.delete(connection);
    });

    it("a forged token is refused", TEST_OPTS, async () => {
        const token = await tokenFor("user=eve&role=admin");
        // The same claims with another signature.
        const [header, payload] = token.split(".");
        const forged = `${header}.${payload}.${Buffer.from("not the signature").toString("base64url")}`;
        const connection = build({ accessTokenFactory: () => forged });
        await assert.rejects(withTimeout(connection.start(), STEP_MS, "start()"),
            (error) => assertNegotiateRefused(error, 401));
    });

    it("an expired token is refused", TEST_OPTS, async () => {
        const token = await tokenFor("user=late&lifetime=1");
        await sleep(2100);
        const connection = build({ accessTokenFactory: () => token });
        await assert.rejects(withTimeout(connection.start(), STEP_MS, "start()"),
            (error) => assertNegotiateRefused(error, 401));
    });

    // On long polling the server does not close a connection of a client from 11.0 on (it tells them
    // by User-Agent) at expiry: it answers the next poll 409 `authentication_refresh_required`, and
    // the client refreshes (refresh.test.mjs). The two cases after this one cover that run.
    const REFRESHES_ON_409 = GENERATION >= 11 && TRANSPORT === "LongPolling";
    const closesAtExpiry = REFRESHES_ON_409
        ? "on long polling an 11.0 client is told to refresh (409) instead, see the next cases"
        : false;
    const toldToRefresh = REFRESHES_ON_409 ? false : "long polling from @microsoft/signalr 11.0 on only";

    it("the connection closes when its token expires, with an error and no reconnect", { ...TEST_OPTS, timeout: 12000, skip: closesAtExpiry }, async () => {
        const token = await tokenFor("user=brief&lifetime=2");
        let builder = new signalR.HubConnectionBuilder()
            .withUrl(`${HUBS_URL}/authorizedhub`, { transport: signalR.HttpTransportType[TRANSPORT], accessTokenFactory: () => token })
            .configureLogging(signalR.LogLevel.None);
        // Before 3.0 there is no automatic reconnect to refrain from: the close alone is checked.
        if (!LACKS.automaticReconnect) {
            builder = builder.withAutomaticReconnect([0, 0, 0]);
        }
        const connection = builder.build();
        catchStopFailure(connection);
        let reconnecting = false;
        if (!LACKS.automaticReconnect) {
            connection.onreconnecting(() => { reconnecting = true; });
        }
        const closed = new Promise((resolve) => connection.onclose(resolve));
        open.add(connection);
        await withTimeout(connection.start(), STEP_MS, "start()");
        const started = Date.now();
        const error = await withTimeout(closed, 6000, "closed at expiry");
        open.delete(connection);
        assert.ok(error, "closed with an error");
        assert.match(error.message, /Server returned an error on close: Connection closed with an error\./);
        assert.ok(Date.now() - started < 4500, "within 2 s of the expiry");
        assert.equal(reconnecting, false, "no reconnect");
        assert.equal(connection.state, signalR.HubConnectionState.Disconnected);
    });

    /** A connection whose token (of `user`, `lifetime` s) the factory keeps returning, recording its HTTP answers. */
    const expiringConnection = async (user, lifetime) => {
        const token = await tokenFor(`user=${user}&lifetime=${lifetime}`);
        const answers = [];
        const httpClient = new RecordingHttpClient(answers);
        const connection = build({ accessTokenFactory: () => token, httpClient });
        const closed = new Promise((resolve) => connection.onclose(resolve));
        open.add(connection);
        await withTimeout(connection.start(), STEP_MS, "start()");
        return { connection, closed, answers, expiresAt: Date.now() + lifetime * 1000 };
    };

    it("long polling, 11.0: after expiry the next poll is answered 409, the refresh with the expired token gets 401, and the connection closes with that error", { ...TEST_OPTS, timeout: 12000, skip: toldToRefresh }, async () => {
        const { connection, closed, answers, expiresAt } = await expiringConnection("brief-lp", 2);
        // A message sent to the connection after its expiry must not reach it.
        const sender = build({ transport: signalR.HttpTransportType.WebSockets, accessTokenFactory: () => tokenFor("user=sender") });
        open.add(sender);
        await withTimeout(sender.start(), STEP_MS, "start() of the sender");
        await sleep(expiresAt + 300 - Date.now());
        await withTimeout(sender.invoke("SendToConnection", connection.connectionId, "after expiry"), STEP_MS, "SendToConnection")
            .catch(() => {}); // the connection may already be gone
        const error = await withTimeout(closed, STEP_MS, "closed after the 409");
        open.delete(connection);
        assert.equal(error?.message, "Unexpected status code returned from authentication refresh '401'");
        const polls = answers.filter((a) => a.method === "GET");
        assert.deepEqual(polls.map((a) => a.status).slice(-1), [409], "the last poll was answered 409");
        assert.deepEqual(JSON.parse(polls.at(-1).content), { error: "authentication_refresh_required" });
        assert.deepEqual(answers.filter((a) => a.url.includes("/refresh")).map((a) => a.status), [401]);
    });

    // The poll held when the token expires is answered then, empty: the client polls again, is
    // answered 409, and (with the expired token its factory returns) its refresh fails.
    it("long polling, 11.0: an idle connection whose token expires ends within 2 s of the expiry", { ...TEST_OPTS, timeout: 12000, skip: toldToRefresh }, async () => {
        const { connection, closed, expiresAt } = await expiringConnection("brief-idle", 2);
        const error = await withTimeout(closed, expiresAt + 2000 - Date.now(), "closed within 2 s of the expiry");
        open.delete(connection);
        assert.ok(error, "closed with an error");
    });

    it("skipNegotiation with a token connects (WebSockets)", { ...TEST_OPTS, skip: ONCE }, async () => {
        const connection = build({ skipNegotiation: true, accessTokenFactory: getToken });
        open.add(connection);
        await withTimeout(connection.start(), STEP_MS, "start()");
        assert.equal(await withTimeout(connection.invoke("Echo", "skipped"), STEP_MS, "invoke"), "skipped");
        await withTimeout(connection.stop(), STEP_MS, "stop()");
        open.delete(connection);
    });
});
