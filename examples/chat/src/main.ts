// The chat page, typed by the chat hub: `generated/chat.ts` is written from `#[hub]` and
// `#[client]` (examples/src/chat.rs), so a call the hub does not have, or a handler of the
// wrong shape, fails `tsc`.
//
// It uses the official browser client that `/signalr.js` serves (the global `signalR`).

import { chatHub, type Answer, type Message, type Reply, type RoomMembers } from "./generated/chat.js";

declare global {
  const signalR: typeof import("@microsoft/signalr");
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing`);
  return element as T;
};
const input = (id: string) => $<HTMLInputElement>(id);
const button = (id: string) => $<HTMLButtonElement>(id);

/** How long a typing notice stays up, and how often typing is sent. */
const TYPING_SHOWN_MS = 3000;
const TYPING_EVERY_MS = 2000;
/** How long this page leaves a question open (the hub waits 20 s). */
const QUESTION_OPEN_MS = 18000;

const params = new URLSearchParams(location.search);
const transports: Record<string, number> = {
  webSockets: signalR.HttpTransportType.WebSockets,
  serverSentEvents: signalR.HttpTransportType.ServerSentEvents,
  longPolling: signalR.HttpTransportType.LongPolling,
};
const transport = transports[params.get("transport") ?? ""];
const name = params.get("name") ?? `guest-${Math.floor(Math.random() * 1000)}`;
input("name").value = name;

/** A fresh token for the chat name: it lives a minute (`TOKEN_LIFETIME` in examples/src/chat.rs). */
async function token(): Promise<string> {
  const response = await fetch(`/token?name=${encodeURIComponent(name)}`);
  if (!response.ok) throw new Error(await response.text());
  return response.text();
}

const chat = chatHub(
  new signalR.HubConnectionBuilder()
    .withUrl("/chat", {
      accessTokenFactory: token,
      ...(transport === undefined ? {} : { transport }),
    })
    // The token expires after a minute and the server closes the connection then, unless
    // the client refreshes it first: it does, at half its lifetime, on the same connection.
    .withAuthenticationRefresh()
    .withAutomaticReconnect()
    .configureLogging(signalR.LogLevel.Warning)
    .build(),
);

let currentRoom = "";

// ---- rendering ----

function span(className: string, text: string): HTMLSpanElement {
  return Object.assign(document.createElement("span"), { className, textContent: text });
}

function add(parts: Node[], className = ""): void {
  const item = document.createElement("li");
  item.className = className;
  item.append(...parts);
  $("messages").append(item);
  item.scrollIntoView({ block: "nearest" });
}

function showMembers(update: RoomMembers): void {
  if (update.room !== currentRoom) return;
  $("members").textContent = update.members.length ? `in #${update.room}: ${update.members.join(", ")}` : "";
}

const typingTimers = new Map<string, number>();
function showTyping(): void {
  const names = [...typingTimers.keys()];
  $("typing").textContent =
    names.length === 0 ? "" : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
}

function describe(reply: Reply | null): string {
  if (reply === null) return "did not answer";
  switch (reply.kind) {
    case "answer":
      return reply.text;
    case "pass":
      return "passed";
  }
}

// ---- what the server calls ----

chat.on.receiveMessage((message: Message) => {
  const time = new Date(message.sentAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const clear = typingTimers.get(message.user);
  if (clear !== undefined) {
    clearTimeout(clear);
    typingTimers.delete(message.user);
    showTyping();
  }
  add(
    [
      span("time", time),
      ...(message.room ? [span("room", `#${message.room}`)] : []),
      span("user", message.user),
      document.createTextNode(message.text),
    ],
    "message",
  );
});

chat.on.members(showMembers);

chat.on.typing((room, user) => {
  if (room !== currentRoom) return;
  clearTimeout(typingTimers.get(user));
  typingTimers.set(
    user,
    window.setTimeout(() => {
      typingTimers.delete(user);
      showTyping();
    }, TYPING_SHOWN_MS),
  );
  showTyping();
});

// A client result: the question waits on the page until it is answered or passed.
chat.on.ask(
  (from, question) =>
    new Promise<Reply>((resolve) => {
      const card = document.createElement("li");
      card.className = "question";
      const answer = Object.assign(document.createElement("input"), { placeholder: "Your answer", className: "answer" });
      const send = Object.assign(document.createElement("button"), { textContent: "Answer", className: "send-answer" });
      const pass = Object.assign(document.createElement("button"), { textContent: "Pass", className: "secondary pass" });
      const done = (reply: Reply) => {
        clearTimeout(timer);
        card.replaceChildren(span("notice", `you ${reply.kind === "pass" ? "passed" : `answered: ${reply.text}`}`));
        resolve(reply);
      };
      const timer = window.setTimeout(() => done({ kind: "pass" }), QUESTION_OPEN_MS);
      send.addEventListener("click", () => {
        const text = answer.value.trim();
        if (text) done({ kind: "answer", text });
      });
      answer.addEventListener("keydown", (e) => {
        if (e.key === "Enter") send.click();
      });
      pass.addEventListener("click", () => done({ kind: "pass" }));
      card.append(span("user", from), document.createTextNode(` asks the room: ${question} `), answer, send, pass);
      $("messages").append(card);
      card.scrollIntoView({ block: "nearest" });
    }),
);

// ---- what the page calls ----

function setConnected(connected: boolean): void {
  for (const id of ["join", "leave", "send", "ask"]) button(id).disabled = !connected;
  $("status").className = connected ? "connected" : "";
  $("status").textContent = connected ? `connected as ${name}` : "disconnected";
  document.body.dataset["state"] = connected ? "connected" : "disconnected";
}
chat.connection.onreconnecting(() => setConnected(false));
chat.connection.onreconnected(async () => {
  setConnected(true);
  // A new connection: join the room again.
  if (currentRoom) showMembers(await chat.hub.joinRoom(currentRoom));
});
chat.connection.onclose(() => setConnected(false));
chat.connection.onAuthenticationRefreshed((event) => {
  const lifetime = event.newTokenLifetimeInSeconds;
  add([span("notice", `token refreshed${lifetime === undefined ? "" : ` (valid for ${lifetime} s)`}`)], "system");
});
chat.connection.onAuthenticationRefreshFailed((event) => {
  add([span("notice", `token refresh failed: ${event.error.message}`)], "error");
});

async function attempt(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (error) {
    add([span("notice", String(error instanceof Error ? error.message : error))], "error");
  }
}

button("send").addEventListener("click", () =>
  attempt(async () => {
    const text = input("message").value.trim();
    if (!text) return;
    await chat.hub.sendMessage(currentRoom, text);
    input("message").value = "";
  }),
);

let lastTyping = 0;
input("message").addEventListener("keydown", (e) => {
  if (e.key === "Enter") {
    button("send").click();
  } else if (currentRoom && Date.now() - lastTyping > TYPING_EVERY_MS) {
    // Throttled, and sent without waiting: typing is best effort.
    lastTyping = Date.now();
    void chat.send.typing(currentRoom).catch(() => {});
  }
});

button("join").addEventListener("click", () =>
  attempt(async () => {
    const room = input("room").value.trim();
    if (!room || room === currentRoom) return;
    if (currentRoom) await chat.hub.leaveRoom(currentRoom);
    currentRoom = room;
    showMembers(await chat.hub.joinRoom(room));
    document.body.dataset["room"] = room;
  }),
);

button("leave").addEventListener("click", () =>
  attempt(async () => {
    if (!currentRoom) return;
    await chat.hub.leaveRoom(currentRoom);
    currentRoom = "";
    $("members").textContent = "";
    delete document.body.dataset["room"];
  }),
);

button("ask").addEventListener("click", () =>
  attempt(async () => {
    const question = input("question").value.trim();
    if (!question) return;
    if (!currentRoom) throw new Error("Join a room to ask it something.");
    input("question").value = "";
    add([span("notice", `you asked #${currentRoom}: ${question} (waiting for answers…)`)]);
    const answers: Answer[] = await chat.hub.askRoom(currentRoom, question);
    const list = document.createElement("ul");
    list.className = "answers";
    for (const { user, reply } of answers) {
      const item = document.createElement("li");
      item.append(span("user", user), document.createTextNode(describe(reply)));
      list.append(item);
    }
    add(
      [span("notice", answers.length ? `answers to “${question}”:` : `nobody else is in the room to answer “${question}”.`), list],
      "answers",
    );
  }),
);

chat.connection
  .start()
  .then(() => setConnected(true))
  .catch((error: unknown) => {
    $("status").textContent = `could not connect: ${String(error)}`;
  });
