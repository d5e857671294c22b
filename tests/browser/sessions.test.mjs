// The sessions page in a real browser: alice signs in on a laptop and a phone (Redis
// store), sees both on the laptop, ends the phone's, then signs out everywhere.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { LABGATE, GITLAB, startDev, launch, watchedPage, signInAtGitLab, screenshots, axe } from "./harness.mjs";

/** A free loopback port. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on("error", reject);
  });
}

let redis, dev, browser;
before(async () => {
  const port = await freePort();
  redis = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  redis.on("error", (e) => { throw new Error(`redis-server cannot start: ${e.message}`); });
  dev = await startDev({ sessionExtra: `store = "redis"\nredis_url = "redis://127.0.0.1:${port}"` });
  browser = await launch();
});
after(async () => { await browser?.close(); await dev?.stop(); redis?.kill("SIGTERM"); });

function clean(problems) {
  assert.deepEqual(problems.console, [], "no console errors");
  assert.deepEqual(problems.foreign, [], "no requests to other hosts");
}

/** A browser context named `agent`, signed in as alice through the sessions page. */
async function signedIn(agent) {
  const context = await browser.newContext({ userAgent: agent });
  const { page, problems } = await watchedPage(context);
  await page.goto(`${LABGATE}/oauth2/sessions`);
  await page.waitForURL(`${LABGATE}/oauth2/sign_in**`);
  await page.getByRole("link", { name: "Sign in with GitLab" }).click();
  await page.waitForURL(`${GITLAB}/users/sign_in**`);
  await signInAtGitLab(page, "alice");
  await page.waitForURL(`${LABGATE}/oauth2/sessions`);
  return { context, page, problems };
}

test("people see their sessions, end one, then sign out everywhere", async () => {
  const laptop = await signedIn("Mozilla/5.0 (X11; Linux x86_64) LaptopChromium/131");
  const phone = await signedIn("Mozilla/5.0 (iPhone; CPU iPhone OS 18_0) PhoneSafari/18");
  const page = laptop.page;
  await page.reload();
  assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "Your sessions");
  const items = page.locator("ul.sessions > li");
  assert.equal(await items.count(), 2);
  assert.equal(await items.nth(0).locator("h2").textContent(), "This browser");
  assert.match(await items.nth(0).textContent(), /LaptopChromium/);
  assert.match(await items.nth(1).textContent(), /PhoneSafari/);
  assert.match(await items.nth(1).textContent(), /127\.0\.0\.1/);
  await screenshots(page, "sessions");
  const violations = await axe(browser, null, async (p) => {
    await p.context().addCookies(await laptop.context.cookies());
    await p.goto(`${LABGATE}/oauth2/sessions`);
  });
  assert.deepEqual(violations, [], "axe finds nothing on the sessions page");
  // The phone's session ends from the laptop; the page says so; the phone is out.
  await items.nth(1).getByRole("button", { name: "Sign out this session" }).click();
  await page.waitForURL(`${LABGATE}/oauth2/sessions?ended=1`);
  assert.match(await page.getByRole("status").textContent(), /That session is signed out/);
  assert.equal(await page.locator("ul.sessions > li").count(), 1);
  await screenshots(page, "sessions-ended");
  await phone.page.goto(`${LABGATE}/`);
  await phone.page.waitForURL(`${LABGATE}/oauth2/sign_in**`);
  // Keyboard: "Sign out everywhere" is reachable and ends the laptop's session too.
  await page.getByRole("button", { name: "Sign out everywhere" }).focus();
  await page.keyboard.press("Enter");
  await page.waitForURL(`${LABGATE}/oauth2/sign_out?everywhere=1`);
  assert.match(await page.textContent("main"), /You are signed out/);
  await page.goto(`${LABGATE}/oauth2/sessions`);
  await page.waitForURL(`${LABGATE}/oauth2/sign_in**`);
  clean(laptop.problems);
  clean(phone.problems);
  await laptop.context.close();
  await phone.context.close();
});

test("a sign-out another site asks for is confirmed, and the confirmation works", async () => {
  const { context, page, problems } = await signedIn("Mozilla/5.0 LaptopChromium/131");
  // A link on another site (the stand-in's origin) to labgate's sign-out: asked first.
  await page.goto(`${GITLAB}/users/sign_in`);
  await page.evaluate((to) => { window.location.href = to; }, `${LABGATE}/oauth2/sign_out`);
  await page.waitForURL(`${LABGATE}/oauth2/sign_out`);
  assert.match(await page.textContent("main"), /Another site asked to sign you out/);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForLoadState();
  assert.match(await page.textContent("main"), /You are signed out/);
  await page.goto(`${LABGATE}/oauth2/sessions`);
  await page.waitForURL(`${LABGATE}/oauth2/sign_in**`);
  clean(problems);
  await context.close();
});
