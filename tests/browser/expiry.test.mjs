// Session expiry while a page is open: the next navigation goes through sign-in and lands
// back where the user was. Runs `labgate dev` with a 4-second session lifetime.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { LABGATE, startDev, launch, signInAtGitLab } from "./harness.mjs";

let dev, browser;
before(async () => { dev = await startDev({ sessionExtra: 'lifetime = "4s"' }); browser = await launch(); });
after(async () => { await browser?.close(); await dev?.stop(); });

test("an expired session sends the next navigation through sign-in and back", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${LABGATE}/first`);
  await page.getByRole("link", { name: "Sign in with GitLab" }).click();
  await signInAtGitLab(page, "alice");
  await page.waitForURL(`${LABGATE}/first`);
  assert.equal(await page.textContent("#user"), "alice");
  await new Promise((r) => setTimeout(r, 4500));
  await page.goto(`${LABGATE}/second?after=expiry`);
  await page.waitForURL(`${LABGATE}/oauth2/sign_in**`);
  await page.getByRole("link", { name: "Sign in with GitLab" }).click();
  // Still signed in at GitLab: straight to the consent page.
  await signInAtGitLab(page, "alice");
  await page.waitForURL(`${LABGATE}/second?after=expiry`);
  assert.equal(await page.textContent("#user"), "alice");
  await context.close();
});
