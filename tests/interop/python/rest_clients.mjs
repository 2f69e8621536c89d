// Official JavaScript clients (@microsoft/signalr) driven over stdin/stdout by test_rest_api.py:
// each line in is a JSON command, each line out a JSON event. Not a test by itself.
//
// in:  {"cmd": "connect", "name": "a", "user": "ann" | null, "protocol": "json" | "messagepack",
//       "transport": "WebSockets" | "ServerSentEvents" | "LongPolling"}
//      {"cmd": "invoke", "name": "a", "method": "SendToGroup", "args": [...]}
//      {"cmd": "exit"}
// out: {"event": "connected", "name": "a", "id": "<connection id>"}
//      {"event": "message", "name": "a", "target": "<target>", "args": [...]}
//      {"event": "invoked", "name": "a", "result": ..., "error": null | "<text>"}
//      {"event": "closed", "name": "a", "error": null | "<text>"}
//      {"event": "failed", "name": "a", "error": "<text>"}

import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";
import readline from "node:readline";

const url = process.env.HUBS_CLIENT_URL;
const TARGETS = ["RestMessage", "GroupMessage"];
const clients = new Map();
const emit = (event) => process.stdout.write(JSON.stringify(event) + "\n");

async function connect({ name, user, protocol, transport }) {
    const query = user ? `?user=${encodeURIComponent(user)}` : "";
    const builder = new signalR.HubConnectionBuilder()
        .withUrl(`${url}/testhub${query}`, { transport: signalR.HttpTransportType[transport || "WebSockets"] })
        .configureLogging(signalR.LogLevel.None);
    if (protocol === "messagepack") {
        builder.withHubProtocol(new MessagePackHubProtocol());
    }
    const connection = builder.build();
    for (const target of TARGETS) {
        connection.on(target, (...args) => emit({ event: "message", name, target, args }));
    }
    connection.onclose((error) => emit({ event: "closed", name, error: error ? String(error.message ?? error) : null }));
    await connection.start();
    clients.set(name, connection);
    emit({ event: "connected", name, id: connection.connectionId });
}

async function invoke({ name, method, args }) {
    const connection = clients.get(name);
    try {
        const result = await connection.invoke(method, ...(args || []));
        emit({ event: "invoked", name, result: result ?? null, error: null });
    } catch (error) {
        emit({ event: "invoked", name, result: null, error: String(error.message ?? error) });
    }
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
    if (!line.trim()) continue;
    const command = JSON.parse(line);
    try {
        if (command.cmd === "connect") await connect(command);
        else if (command.cmd === "invoke") await invoke(command);
        else if (command.cmd === "exit") break;
    } catch (error) {
        emit({ event: "failed", name: command.name, error: String(error.message ?? error) });
    }
}
for (const connection of clients.values()) {
    await connection.stop().catch(() => {});
}
process.exit(0);
