// The chat page in a real browser: headless Chromium (Debian's package) driven by
// playwright-core opens the page twice, on each transport the official browser client
// has: a message crosses, both see who is in the room, one sees the other typing, and a
// question put to the room comes back with the other's answer. The page is TypeScript
// compiled against the module generated from the hub, so this also runs that module.
//
// Run: CHAT_URL=http://127.0.0.1:5000 CHROMIUM=/usr/bin/chromium node --test tests/interop/browser/
// Set SCREENSHOT=/path.png to keep a screenshot of the page.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const CHAT_URL = (process.env.CHAT_URL ?? "").replace(/\/+$/, "");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
if (!CHAT_URL) {
    console.error("CHAT_URL is not set (expected e.g. CHAT_URL=http://127.0.0.1:5000)");
    process.exit(2);
}
const STEP_MS = 10000;

let browser;

before(async () => {
    browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
        timeout: 30000,
    });
});

after(async () => {
    await browser?.close();
});

async function openChat(context, transport, name) {
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    const errors = [];
    page.on("pageerror", (error) => errors.push(String(error)));
    await page.goto(`${CHAT_URL}/?transport=${transport}&name=${name}`);
    await page.waitForSelector("body[data-state=connected]");
    return { page, errors };
}

for (const transport of ["webSockets", "serverSentEvents", "longPolling"]) {
    describe(`chat page over ${transport}`, () => {
        it("the page refreshes its short-lived token and stays connected past its expiry", { timeout: 30000 }, async () => {
            // The server under test issues 6 s tokens and closes a connection at expiry.
            const context = await browser.newContext();
            try {
                const carol = await openChat(context, transport, "carol");
                const started = Date.now();
                await carol.page.waitForFunction(
                    () => [...document.querySelectorAll("#messages li")].some((li) => li.textContent.startsWith("token refreshed")),
                );
                await carol.page.waitForTimeout(Math.max(0, 8000 - (Date.now() - started)));
                assert.equal(await carol.page.getAttribute("body", "data-state"), "connected", "still connected past the first token's expiry");
                const text = `after the refresh over ${transport}`;
                await carol.page.fill("#message", text);
                await carol.page.click("#send");
                await carol.page.waitForFunction(
                    (expected) => [...document.querySelectorAll("#messages li")].some((li) => li.textContent.includes(expected)),
                    text,
                );
                assert.deepEqual(carol.errors, []);
            } finally {
                await context.close();
            }
        });

        it("a message sent on one page appears on the other", { timeout: 60000 }, async () => {
            const context = await browser.newContext();
            try {
                const ann = await openChat(context, transport, "ann");
                const bob = await openChat(context, transport, "bob");
                const text = `hello from ann over ${transport} ${Math.random().toString(36).slice(2, 8)}`;
                await ann.page.fill("#message", text);
                await ann.page.click("#send");
                for (const { page } of [ann, bob]) {
                    await page.waitForFunction(
                        (expected) => [...document.querySelectorAll("#messages li")].some((li) => li.textContent.includes(expected)),
                        text,
                    );
                }
                const line = bob.page.locator("#messages li", { hasText: text }).first();
                assert.equal(await line.locator(".user").textContent(), "ann", "the line names the sender");
                assert.match(await line.locator(".time").textContent(), /\d/, "the line has the server's time");

                // Rooms and presence: bob joins "rust", then ann; both see both.
                await bob.page.fill("#room", "rust");
                await bob.page.click("#join");
                await bob.page.waitForFunction(() => document.querySelector("#members").textContent === "in #rust: bob");
                await ann.page.fill("#room", "rust");
                await ann.page.click("#join");
                for (const { page } of [ann, bob]) {
                    await page.waitForFunction(() => document.querySelector("#members").textContent === "in #rust: ann, bob");
                }

                // Typing: bob types, ann sees it.
                await bob.page.click("#message");
                await bob.page.keyboard.type("hm");
                await ann.page.waitForFunction(() => document.querySelector("#typing").textContent === "bob is typing…");

                // A room message reaches the room.
                const roomText = `room message ${transport}`;
                await ann.page.fill("#message", roomText);
                await ann.page.click("#send");
                await bob.page.waitForFunction(
                    (expected) => document.querySelector("#messages").textContent.includes(expected),
                    roomText,
                );

                // Ask the room: ann's question reaches bob, bob answers, ann gets the answers.
                await ann.page.fill("#question", "tea or coffee?");
                await ann.page.click("#ask");
                await bob.page.waitForSelector("li.question input.answer");
                assert.match(await bob.page.locator("li.question").textContent(), /ann asks the room: tea or coffee\?/);
                await bob.page.fill("li.question input.answer", "tea");
                await bob.page.click("li.question button.send-answer");
                await ann.page.waitForSelector("ul.answers li");
                assert.equal(await ann.page.locator("ul.answers li").allTextContents().then((all) => all.join("|")), "bobtea");

                // Leaving updates the others.
                await bob.page.click("#leave");
                await ann.page.waitForFunction(() => document.querySelector("#members").textContent === "in #rust: ann");
                if (process.env.SCREENSHOT && transport === "webSockets") {
                    await bob.page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
                }
                assert.deepEqual([...ann.errors, ...bob.errors], []);
            } finally {
                await context.close();
            }
        });
    });
}
