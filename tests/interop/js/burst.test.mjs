// Bursts from the official client: thousands of sends and invocations made without awaiting.
// The client queues what is sent while a previous send is in flight and writes the queue as ONE
// transport message (`TransportSendQueue` in `HttpConnection`), so a burst of 1,000 × 1 KiB sends
// reaches the server as one ~1 MB WebSocket message, and its answers come back faster than any
// one-at-a-time test would ask. Every message must be handled, every invocation answered in
// order, every receiver served, and no connection closed.
//
// Runs with the client generation of the run (HUBS_SIGNALR, see common.mjs), JSON and MessagePack,
// over HUBS_TRANSPORT, against the TestHub.

import { after, afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
    CLIENT_NAME, HUBS_URL, LACKS, PROTOCOLS, STEP_MS, TRANSPORT, fileBudget, protocolSkip, signalR, unique,
} from "./common.mjs";

const HUB_URL = `${HUBS_URL}/testhub`;
const { withTimeout, waitFor } = fileBudget({ WebSockets: 150000, ServerSentEvents: 200000, LongPolling: 250000 });
/** A burst's own bound: generous, since it only guards against a hang. */
const BURST_MS = 60000;
const BURST_OPTS = { timeout: 90000 };
/**
 * Whether unawaited sends reach the server in the order they were made. Not before 3.0 over SSE
 * and long polling (LACKS.orderedPosts: one POST per message, all at once); there every message
 * must still arrive exactly once and every invocation be answered with its own result.
 */
const ORDERED = TRANSPORT === "WebSockets" || !LACKS.orderedPosts;
if (!ORDERED) {
    console.log(`# bursts: order not checked: ${LACKS.orderedPosts}`);
}

const CLIENTS = [{ name: CLIENT_NAME, signalR, protocols: PROTOCOLS }];

const open = new Set();

async function connect(client, protocol) {
    const connection = new client.signalR.HubConnectionBuilder()
        .withUrl(HUB_URL, { transport: client.signalR.HttpTransportType[TRANSPORT] })
        .withHubProtocol(protocol.create())
        .configureLogging(client.signalR.LogLevel.Warning)
        .build();
    const closed = { error: undefined, fired: false };
    connection.onclose((error) => {
        closed.fired = true;
        closed.error = error;
    });
    connection.closed = closed;
    open.add(connection);
    await withTimeout(connection.start(), STEP_MS, `start() of a ${client.name} ${protocol.name} connection`);
    return connection;
}

async function stopAll() {
    const connections = [...open];
    open.clear();
    await Promise.all(connections.map((c) =>
        withTimeout(c.stop(), STEP_MS, "stop()", { useBudget: false }).catch((e) => console.error(`cleanup: ${e}`))));
}

function assertOpen(connection, who) {
    assert.equal(connection.closed.fired, false, `${who} was closed: ${connection.closed.error}`);
    // A string from 3.0 on, a number (its enum) in 1.x.
    assert.equal(connection.state, signalR.HubConnectionState.Connected, `${who} is ${connection.state}`);
}

/**
 * One sender and `receivers` reading connections in a fresh group; the sender `send`s
 * `count` SendToGroup messages of `size` bytes without awaiting, and every member (the sender
 * too) must get all of them, in order.
 */
async function groupBurst(client, protocol, { receivers, count, size }) {
    const group = unique("burst");
    const members = [];
    for (let i = 0; i <= receivers; i += 1) {
        const connection = await connect(client, protocol);
        const got = [];
        // A block body: a handler that returns a value makes the client log "Result given for
        // 'groupmessage' method but server is not expecting a result." once per message.
        connection.on("GroupMessage", (_group, message) => { got.push(message); });
        await withTimeout(connection.invoke("JoinGroup", group), STEP_MS, "JoinGroup");
        members.push({ connection, got });
    }
    const sender = members[0].connection;
    const pad = "x".repeat(Math.max(0, size - 12));
    const sends = [];
    for (let i = 0; i < count; i += 1) {
        sends.push(sender.send("SendToGroup", group, `${String(i).padStart(8, "0")}:${pad}`));
    }
    await withTimeout(Promise.all(sends), BURST_MS, `${count} sends written`);
    await waitFor(() => members.every((m) => m.got.length >= count || m.connection.closed.fired), BURST_MS,
        `${count} messages at each of ${members.length} members`);
    members.forEach((member, i) => {
        assertOpen(member.connection, `member ${i}`);
        assert.equal(member.got.length, count, `member ${i} got ${member.got.length} of ${count}`);
        if (!ORDERED) {
            const numbers = member.got.map((message) => Number(message.slice(0, 8))).sort((x, y) => x - y);
            numbers.forEach((number, n) => {
                if (number !== n) {
                    assert.fail(`member ${i}: message ${n} missing or duplicated`);
                }
            });
            return;
        }
        member.got.forEach((message, n) => {
            if (!message.startsWith(`${String(n).padStart(8, "0")}:`)) {
                assert.fail(`member ${i}: message ${n} out of order: ${message.slice(0, 8)}`);
            }
        });
    });
}

afterEach(stopAll);
after(stopAll);

for (const client of CLIENTS) {
    describe(`bursts from ${client.name} over ${TRANSPORT}`, () => {
        for (const protocol of client.protocols) {
            const skip = protocolSkip(protocol);
            describe(protocol.name, () => {
                it("1,000 × 1 KiB sends without awaiting reach every member of a group, in order",
                    { ...BURST_OPTS, skip }, async () => {
                        await groupBurst(client, protocol, { receivers: 20, count: 1000, size: 1024 });
                    });

                it("10,000 × 100 B sends without awaiting reach every member of a group, in order",
                    { ...BURST_OPTS, skip }, async () => {
                        await groupBurst(client, protocol, { receivers: 20, count: 10000, size: 100 });
                    });

                it("10,000 Echo invocations without awaiting are all answered, in order",
                    { ...BURST_OPTS, skip }, async () => {
                        const connection = await connect(client, protocol);
                        const order = [];
                        const calls = [];
                        for (let i = 0; i < 10000; i += 1) {
                            calls.push(connection.invoke("Echo", `echo-${i}`).then((value) => {
                                order.push(i);
                                return value;
                            }));
                        }
                        const results = await withTimeout(Promise.all(calls), BURST_MS, "10,000 Echo results");
                        results.forEach((value, i) => assert.equal(value, `echo-${i}`));
                        (ORDERED ? order : []).forEach((value, i) => {
                            if (value !== i) {
                                assert.fail(`answer ${i} was for invocation ${value}`);
                            }
                        });
                        assertOpen(connection, "the caller");
                    });
            });
        }
    });
}
