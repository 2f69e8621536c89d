// Stateful reconnect (ASP.NET Core 8+): the official client with `withStatefulReconnect()`,
// connected through a TCP proxy that cuts its socket while another client keeps sending to its
// group. The connection resumes: same connection id, group kept, every message once, in order.
// WebSockets only, as on the official server.

import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";

import {
    HUBS_URL, LACKS, PROTOCOLS, STEP_MS, TEST_OPTS, TRANSPORT, fileBudget, signalR, sleep, unique,
} from "./common.mjs";

const { withTimeout, waitFor } = fileBudget(40000);
const transportSkip = TRANSPORT !== "WebSockets" && "stateful reconnect runs over WebSockets only";
/** The cases with the client's `withStatefulReconnect()` (8.0 on); the negotiate case is raw `fetch`. */
const skip = LACKS.statefulReconnect || transportSkip;

/** A TCP proxy on 127.0.0.1 in front of the server whose open sockets can be cut at once. */
async function startProxy() {
    const target = new URL(HUBS_URL);
    const sockets = new Set();
    let refusing = false;
    const server = net.createServer((client) => {
        if (refusing) {
            client.resetAndDestroy();
            return;
        }
        const upstream = net.connect(Number(target.port), target.hostname);
        for (const [a, b] of [[client, upstream], [upstream, client]]) {
            a.on("data", (chunk) => b.write(chunk));
            a.on("error", () => b.destroy());
            a.on("close", () => b.destroy());
            sockets.add(a);
            a.on("close", () => sockets.delete(a));
        }
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    return {
        url: `http://127.0.0.1:${server.address().port}`,
        /** Drops new connections as they come (true), or passes them on again (false). */
        refuse(on) {
            refusing = on;
        },
        /** Drops every connection through the proxy, without a closing handshake. */
        cut() {
            for (const socket of sockets) {
                socket.resetAndDestroy();
            }
        },
        close: () => new Promise((resolve) => {
            for (const socket of sockets) {
                socket.destroy();
            }
            server.close(resolve);
        }),
    };
}

function connect(url, protocol, stateful, retryDelays) {
    let builder = new signalR.HubConnectionBuilder()
        .withUrl(`${url}/testhub`, { transport: signalR.HttpTransportType.WebSockets })
        .withHubProtocol(protocol.create())
        .configureLogging(signalR.LogLevel.None);
    if (stateful) {
        builder = builder.withStatefulReconnect();
    }
    if (retryDelays) {
        builder = builder.withAutomaticReconnect(retryDelays);
    }
    return builder.build();
}

for (const protocol of PROTOCOLS) {
    test(`stateful reconnect resumes the connection over a cut socket (${protocol.name})`,
        { ...TEST_OPTS, timeout: 30000, skip }, async () => {
            const proxy = await startProxy();
            const receiver = connect(proxy.url, protocol, true);
            const sender = connect(HUBS_URL, protocol, false);
            const received = [];
            let closed = null;
            receiver.on("GroupMessage", (_group, message) => { received.push(message); });
            receiver.onclose((error) => { closed = error ?? "closed"; });
            try {
                await withTimeout(receiver.start(), STEP_MS, "start through the proxy");
                await withTimeout(sender.start(), STEP_MS, "start the sender");
                const id = receiver.connectionId;
                const group = unique("stateful");
                await withTimeout(receiver.invoke("JoinGroup", group), STEP_MS, "join");

                const sent = [];
                for (let i = 0; i < 60; i += 1) {
                    if (i === 20) {
                        proxy.cut();
                    }
                    sent.push(`m${i}`);
                    await withTimeout(sender.invoke("SendToGroup", group, `m${i}`), STEP_MS, "send");
                    if (i % 10 === 0) {
                        await sleep(20);
                    }
                }
                await waitFor(() => received.length >= sent.length, 15000,
                    `all ${sent.length} messages (got ${received.length})`);
                await sleep(300);
                assert.deepEqual(received, sent, "every message once, in order");
                assert.equal(closed, null, "the connection never closed");
                assert.equal(receiver.connectionId, id, "the same connection id");
                assert.equal(receiver.state, signalR.HubConnectionState.Connected);
                // Calls work on the resumed connection, and its group is kept.
                assert.equal(await withTimeout(receiver.invoke("Echo", "after"), STEP_MS, "echo"), "after");
                await withTimeout(sender.invoke("SendToGroup", group, "last"), STEP_MS, "send last");
                await waitFor(() => received.includes("last"), STEP_MS, "the message after resuming");
            } finally {
                await receiver.stop();
                await sender.stop();
                await proxy.close();
            }
        });
}

test("a client that cannot resume reconnects to a new connection", { ...TEST_OPTS, skip }, async () => {
    const proxy = await startProxy();
    const connection = connect(proxy.url, PROTOCOLS[0], true, [0, 200, 200, 200, 200, 200, 200, 200, 200, 200]);
    const reconnected = new Promise((resolve) => connection.onreconnected(resolve));
    try {
        await withTimeout(connection.start(), STEP_MS, "start through the proxy");
        const before = connection.connectionId;
        // The socket drops and the server stays out of reach: the resume fails at once, so
        // the client falls back to a new connection once the server is back.
        proxy.refuse(true);
        proxy.cut();
        await sleep(500);
        proxy.refuse(false);
        const id = await withTimeout(reconnected, 8000, "reconnected");
        assert.notEqual(id, before, "a new connection");
        assert.equal(await withTimeout(connection.invoke("Echo", "new"), STEP_MS, "echo"), "new");
    } finally {
        await connection.stop();
        await proxy.close();
    }
});

test("a client that does not ask for stateful reconnect is not offered it", { ...TEST_OPTS, skip: transportSkip }, async () => {
    const response = await fetch(`${HUBS_URL}/testhub/negotiate?negotiateVersion=1`, { method: "POST" });
    const body = await response.json();
    assert.equal(body.useStatefulReconnect, undefined);
    const asked = await fetch(`${HUBS_URL}/testhub/negotiate?negotiateVersion=1&useStatefulReconnect=true`,
        { method: "POST" });
    assert.equal((await asked.json()).useStatefulReconnect, true);
    const other = await fetch(`${HUBS_URL}/testhub-nowebsockets/negotiate?negotiateVersion=1&useStatefulReconnect=true`,
        { method: "POST" });
    assert.equal((await other.json()).useStatefulReconnect, undefined, "not enabled on that hub");
});
