// The official client over TLS: HUBS_URL is an https:// URL of a hubs server whose
// certificate is signed by a test CA that NODE_EXTRA_CA_CERTS names. Every transport × protocol
// connects, calls, streams and stops.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";

const HUBS_URL = (process.env.HUBS_URL ?? "").replace(/\/+$/, "");
assert.ok(HUBS_URL.startsWith("https://"), "HUBS_URL must be an https:// URL");

const TRANSPORTS = ["WebSockets", "ServerSentEvents", "LongPolling"];
const PROTOCOLS = [
    { name: "json", create: () => new signalR.JsonHubProtocol() },
    { name: "messagepack", create: () => new MessagePackHubProtocol() },
];

for (const transport of TRANSPORTS) {
    for (const protocol of PROTOCOLS) {
        const skip = transport === "ServerSentEvents" && protocol.name === "messagepack"
            && "Server-Sent Events carry text only";
        test(`${transport} + ${protocol.name} over TLS`, { timeout: 15000, skip }, async () => {
            const connection = new signalR.HubConnectionBuilder()
                .withUrl(`${HUBS_URL}/testhub`, { transport: signalR.HttpTransportType[transport] })
                .withHubProtocol(protocol.create())
                .configureLogging(signalR.LogLevel.None)
                .build();
            await connection.start();
            try {
                assert.equal(await connection.invoke("Echo", "sealed"), "sealed");
                assert.equal(await connection.invoke("GetActiveTransportName"), transport);
                const items = await new Promise((resolve, reject) => {
                    const seen = [];
                    connection.stream("Stream").subscribe({
                        next: (item) => seen.push(item),
                        complete: () => resolve(seen),
                        error: reject,
                    });
                });
                assert.deepEqual(items, ["a", "b", "c"]);
            } finally {
                await connection.stop();
            }
        });
    }
}
