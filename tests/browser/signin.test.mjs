// The sign-in experience in a real browser, against `labgate dev`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { LABGATE, GITLAB, startDev, launch, watchedPage, signInAtGitLab, screenshots, axe } from "./harness.mjs";

let dev, browser;
before(async () => { dev = await startDev(); browser = await launch(); });
after(async () => { await browser?.close(); await dev?.stop(); });

function clean(problems) {
  assert.deepEqual(problems.console, [], "no console errors");
  assert.deepEqual(problems.foreign, [], "no requests to other hosts");
}

test("deep link -> sign-in page -> GitLab -> back on the deep link with the identity", async () => {
  const context = await browser.newContext();
  const { page, problems } = await watchedPage(context);
  await page.goto(`${LABGATE}/reports/2026?view=summary`);
  await page.waitForURL(`${LABGATE}/oauth2/sign_in**`);
  await assert.doesNotReject(page.getByRole("link", { name: "Sign in with GitLab" }).waitFor());
  assert.match(await page.textContent("main"), /labgate demo/);
  await screenshots(page, "sign-in");
  await page.getByRole("link", { name: "Sign in with GitLab" }).click();
  await page.waitForURL(`${GITLAB}/users/sign_in**`);
  await signInAtGitLab(page, "alice");
  await page.waitForURL(`${LABGATE}/reports/2026?view=summary`);
  assert.equal(await page.textContent("#user"), "alice");
  assert.equal(await page.textContent("#valid"), "Verified");
  clean(problems);
  await context.close();
});

test("keyboard-only sign-in works", async () => {
  const context = await browser.newContext();
  const { page, problems } = await watchedPage(context);
  await page.goto(`${LABGATE}/keyboard`);
  await page.waitForURL(`${LABGATE}/oauth2/sign_in**`);
  // Tab to the button and press Enter: the first focusable element is the button.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Sign in with GitLab");
  await page.keyboard.press("Enter");
  await page.waitForURL(`${GITLAB}/users/sign_in**`);
  await page.keyboard.press("Tab");
  await page.keyboard.type("alice");
  await page.keyboard.press("Tab");
  await page.keyboard.type("alice-password");
  await page.keyboard.press("Enter");
  await page.waitForURL(`${GITLAB}/oauth/authorize**`);
  await page.keyboard.press("Tab");
  await page.keyboard.press("Enter");
  await page.waitForURL(`${LABGATE}/keyboard`);
  assert.equal(await page.textContent("#user"), "alice");
  clean(problems);
  await context.close();
});

test("a denied user sees the 403 page naming them, and sign-out works", async () => {
  const context = await browser.newContext();
  const { page, problems } = await watchedPage(context);
  await page.goto(`${LABGATE}/oauth2/start?rd=%2F`);
  await signInAtGitLab(page, "mallory");
  await page.waitForURL(`${LABGATE}/oauth2/callback**`);
  assert.match(await page.textContent("h1"), /don't have access/);
  assert.match(await page.textContent("main"), /signed in as mallory/);
  await screenshots(page, "forbidden");
  await page.getByRole("link", { name: "Sign out" }).click();
  await page.waitForURL(`${LABGATE}/oauth2/sign_out`);
  assert.match(await page.textContent("h1"), /signed out/);
  await screenshots(page, "signed-out");
  clean(problems);
  await context.close();
});

test("Deny at GitLab shows the cancelled message", async () => {
  const context = await browser.newContext();
  const { page, problems } = await watchedPage(context);
  await page.goto(`${LABGATE}/somewhere`);
  await page.getByRole("link", { name: "Sign in with GitLab" }).click();
  await signInAtGitLab(page, "bob", { deny: true });
  await page.waitForURL(`${LABGATE}/oauth2/callback**`);
  assert.match(await page.textContent("[role=alert]"), /You cancelled the sign-in at GitLab/);
  await screenshots(page, "cancelled");
  clean(problems);
  await context.close();
});

test("an error page explains a missing sign-in cookie", async () => {
  const context = await browser.newContext();
  const { page } = await watchedPage(context);
  await page.goto(`${LABGATE}/oauth2/callback?code=x&state=nothing-here`);
  assert.match(await page.textContent("main"), /did not send back/);
  await screenshots(page, "error");
  await context.close();
});

test("after sign-out the back button does not reveal the app", async () => {
  const context = await browser.newContext();
  const { page } = await watchedPage(context);
  await page.goto(`${LABGATE}/secret-page`);
  await page.getByRole("link", { name: "Sign in with GitLab" }).click();
  await signInAtGitLab(page, "alice");
  await page.waitForURL(`${LABGATE}/secret-page`);
  assert.equal(await page.textContent("#user"), "alice");
  await page.getByRole("link", { name: "Sign out" }).click();
  await page.waitForURL(`${LABGATE}/oauth2/sign_out`);
  await page.goBack();
  await page.waitForLoadState();
  assert.notEqual(new URL(page.url()).pathname, "/secret-page", "not shown from history");
  assert.match(page.url(), /\/oauth2\/sign_in\?rd=%2Fsecret-page$/, "sent to sign in, to come back there");
  assert.equal(await page.locator("#user").count(), 0, "the app's page is not shown");
  await context.close();
});

test("two tabs signing in at once both land where they started", async () => {
  const context = await browser.newContext();
  const a = await context.newPage();
  const b = await context.newPage();
  await a.goto(`${LABGATE}/tab-a`);
  await b.goto(`${LABGATE}/tab-b`);
  await a.getByRole("link", { name: "Sign in with GitLab" }).click();
  await b.getByRole("link", { name: "Sign in with GitLab" }).click();
  await signInAtGitLab(a, "alice");
  await signInAtGitLab(b, "alice");
  await a.waitForURL(`${LABGATE}/tab-a`);
  await b.waitForURL(`${LABGATE}/tab-b`);
  assert.equal(await a.textContent("#user"), "alice");
  assert.equal(await b.textContent("#user"), "alice");
  await context.close();
});

test("a WebSocket page of the app works after sign-in", async () => {
  const context = await browser.newContext();
  const { page, problems } = await watchedPage(context);
  await page.goto(`${LABGATE}/ws-page`);
  await page.getByRole("link", { name: "Sign in with GitLab" }).click();
  await signInAtGitLab(page, "alice");
  await page.waitForURL(`${LABGATE}/ws-page`);
  await page.waitForFunction(() => document.getElementById("ws-result").textContent.startsWith("echo"));
  assert.equal(await page.textContent("#ws-result"), "echo: hello through labgate");
  clean(problems);
  await context.close();
});

test("the CSP blocks inline script injection on labgate's pages", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${LABGATE}/oauth2/sign_in?rd=%2F%22%3E%3Cscript%3Ewindow.pwned%3D1%3C%2Fscript%3E`);
  assert.equal(await page.evaluate(() => window.pwned), undefined, "rd is not reflected as markup");
  await page.addScriptTag({ content: "window.injected = 1" }).catch(() => {});
  assert.equal(await page.evaluate(() => window.injected), undefined, "inline script refused by CSP");
  await context.close();
});

test("labgate's pages pass an automated accessibility check", async () => {
  const pages = {
    "sign-in": { url: `${LABGATE}/oauth2/sign_in?rd=%2F` },
    "signed-out": { url: `${LABGATE}/oauth2/sign_out` },
    "error": { url: `${LABGATE}/oauth2/callback?code=x&state=nothing-here` },
    "forbidden": {
      prepare: async (page) => {
        await page.goto(`${LABGATE}/oauth2/start?rd=%2F`);
        await signInAtGitLab(page, "mallory");
        await page.waitForURL(`${LABGATE}/oauth2/callback**`);
      },
    },
  };
  for (const [name, p] of Object.entries(pages)) {
    for (const scheme of ["light", "dark"]) {
      const violations = await axe(browser, p.url, async (page) => {
        await page.emulateMedia({ colorScheme: scheme });
        if (p.prepare) await p.prepare(page);
        else await page.goto(p.url);
      });
      assert.deepEqual(violations, [], `${name} (${scheme})`);
    }
  }
});
