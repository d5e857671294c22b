// One labgate, many apps (docs/many-apps.md, step 2) in a real browser: `labgate dev` runs
// tests/browser/many-apps.toml, where wiki.example.test and admin.example.test are two apps
// (both the echo app), sign-in lives at auth.example.test, and one cookie for example.test
// covers them all. Chromium resolves every *.example.test name to 127.0.0.1.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { GITLAB, root, startDev, launch, watchedPage, signInAtGitLab, screenshots, freePortBase, writeConfig } from "./harness.mjs";

// The apps' addresses on labgate's port, which this run chooses (the file says 4180).
let AUTH, WIKI, ADMIN, EVIL;
const HOSTS = ["127.0.0.1", "127.0.0.2", "auth.example.test", "wiki.example.test", "admin.example.test", "evil.example.test"];

let dev, browser;
before(async () => {
  const base = await freePortBase();
  const file = readFileSync(join(root, "tests", "browser", "many-apps.toml"), "utf8");
  dev = await startDev({ configFile: writeConfig(file.replaceAll(".example.test:4180", `.example.test:${base}`)), portBase: base });
  [AUTH, WIKI, ADMIN, EVIL] = ["auth", "wiki", "admin", "evil"].map((h) => `http://${h}.example.test:${base}`);
  browser = await launch({ args: ["--host-resolver-rules=MAP *.example.test 127.0.0.1"] });
});
after(async () => { await browser?.close(); await dev?.stop(); });

function clean(problems) {
  // The test hosts are plain http and not loopback names, so Chromium ignores (and logs)
  // sign-out's Clear-Site-Data: what ends the session here is labgate's Set-Cookie alone.
  const insecure = /^Clear-Site-Data header on '[^']*\/oauth2\/sign_out': Not supported for insecure origins\./;
  assert.deepEqual(problems.console.filter((m) => !insecure.test(m)), [], "no console errors");
  assert.deepEqual(problems.foreign, [], "no requests to other hosts");
}

/** The redirects a navigation went through, first to last, ending with its own URL. */
function chain(response) {
  const urls = [];
  for (let r = response.request(); r; r = r.redirectedFrom()) urls.unshift(r.url());
  return urls;
}

/** A verified claim as the echo page shows it. */
async function claim(page, name) {
  return (await page.locator("#claims > div").filter({ has: page.locator("dt", { hasText: new RegExp(`^${name}$`) }) }).locator("dd").textContent()).trim();
}

/** Asserts the echo page shows `user`'s verified assertion, addressed to `origin`. */
async function assertAppPage(page, origin, user) {
  assert.equal(await page.textContent("#user"), user);
  const why = await page.locator("p", { has: page.locator("#valid") }).textContent();
  assert.equal(await page.textContent("#valid"), "Verified", `the assertion verifies for ${origin}: ${why}`);
  assert.equal(await claim(page, "aud"), origin, "aud is this app's origin");
  assert.equal(await claim(page, "iss"), AUTH, "iss is labgate's public_url");
}

/** Opens `url` and asserts the browser ends on the auth host's sign-in page, to come back. */
async function assertSentToSignIn(page, url) {
  await page.goto(url);
  await page.waitForURL(`${AUTH}/oauth2/sign_in**`);
  assert.equal(new URL(page.url()).searchParams.get("rd"), url, "rd names the app page");
  await page.getByRole("link", { name: "Sign in with GitLab" }).waitFor();
}

test("sign in once at the auth host, open both apps, sign out of both", async () => {
  const context = await browser.newContext();
  const { page, problems } = await watchedPage(context, { hosts: HOSTS });
  const navigations = [];
  page.on("request", (r) => { if (r.isNavigationRequest() && r.frame() === page.mainFrame()) navigations.push(r.url()); });

  // The admin app sends the browser to the auth host's sign-in page...
  await assertSentToSignIn(page, `${ADMIN}/console?tab=users`);
  await screenshots(page, "many-apps-sign-in");
  // ...through the stand-in's sign-in and consent...
  await page.getByRole("link", { name: "Sign in with GitLab" }).click();
  await page.waitForURL(`${GITLAB}/users/sign_in**`);
  await signInAtGitLab(page, "alice");
  // ...and back to the admin page, whose assertion is for the admin app.
  await page.waitForURL(`${ADMIN}/console?tab=users`);
  await assertAppPage(page, ADMIN, "alice");
  // GitLab was asked for, and answered at, the one Redirect URI on the auth host.
  const authorize = new URL(navigations.find((u) => u.startsWith(`${GITLAB}/oauth/authorize?`)));
  assert.equal(authorize.searchParams.get("redirect_uri"), `${AUTH}/oauth2/callback`);
  assert.ok(navigations.some((u) => u.startsWith(`${AUTH}/oauth2/callback?`)), navigations.join("\n"));
  // One session cookie, for the whole cookie domain (no per-host copies).
  const ours = (await context.cookies()).filter((c) => c.name.startsWith("_labgate"));
  assert.deepEqual(ours.map((c) => `${c.name}@${c.domain}`), ["_labgate@.example.test"]);

  // The wiki opens without a second sign-in, with an assertion for the wiki.
  const wiki = await page.goto(`${WIKI}/home`);
  assert.equal(wiki.status(), 200);
  assert.deepEqual(chain(wiki), [`${WIKI}/home`], "no detour through sign-in");
  await assertAppPage(page, WIKI, "alice");
  await screenshots(page, "many-apps-wiki");

  // Signing out where the wiki page offers it ends the session at both apps.
  await page.getByRole("link", { name: "Sign out" }).click();
  await page.waitForURL(`${WIKI}/oauth2/sign_out`);
  assert.match(await page.textContent("h1"), /signed out/);
  const left = (await context.cookies()).filter((c) => c.name.startsWith("_labgate"));
  assert.deepEqual(left.map((c) => `${c.name}@${c.domain}`), [], "no labgate cookie left");
  await assertSentToSignIn(page, `${ADMIN}/console`);
  await assertSentToSignIn(page, `${WIKI}/home`);
  clean(problems);
  await context.close();
});

test("each app has its own rules: bob enters the wiki, not the admin app", async () => {
  const context = await browser.newContext();
  const { page, problems } = await watchedPage(context, { hosts: HOSTS });
  await assertSentToSignIn(page, `${WIKI}/notes`);
  await page.getByRole("link", { name: "Sign in with GitLab" }).click();
  await signInAtGitLab(page, "bob");
  await page.waitForURL(`${WIKI}/notes`);
  await assertAppPage(page, WIKI, "bob");

  const admin = await page.goto(`${ADMIN}/console`);
  assert.equal(admin.status(), 403);
  assert.deepEqual(chain(admin), [`${ADMIN}/console`], "refused in place, not sent to sign in again");
  assert.match(await page.textContent("h1"), /don't have access/);
  assert.match(await page.textContent("main"), /signed in as bob/);
  assert.equal(await page.locator("#user").count(), 0, "the admin app's page is not shown");
  await screenshots(page, "many-apps-forbidden");
  clean(problems);
  await context.close();
});

test("a host no app is configured for gets labgate's 421 page", async () => {
  const context = await browser.newContext();
  const { page, problems } = await watchedPage(context, { hosts: HOSTS });
  const r = await page.goto(`${EVIL}/anything`);
  assert.equal(r.status(), 421);
  assert.match(await page.textContent("h1"), /No application here/);
  assert.match(await page.textContent("main"), /no application at evil\.example\.test/);
  assert.equal(await page.locator("#user").count(), 0, "no app answered");
  await screenshots(page, "many-apps-misdirected");
  clean(problems);
  await context.close();
});
