// The demo's echo page in a real browser: alice signs in through `labgate dev` and sees who
// she is, her groups and the verified assertion claims, readable at desktop and phone size.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { LABGATE, GITLAB, SHOTS, startDev, launch, watchedPage, signInAtGitLab, axe } from "./harness.mjs";

let dev, browser;
before(async () => { dev = await startDev(); browser = await launch(); });
after(async () => { await browser?.close(); await dev?.stop(); });

/** Elements wider than the viewport, or poking out of it to the right. */
function overflowing(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const out = [];
    if (document.documentElement.scrollWidth > width) out.push(`document scrolls sideways (${document.documentElement.scrollWidth} > ${width})`);
    for (const el of document.querySelectorAll("body *")) {
      const r = el.getBoundingClientRect();
      if (r.width > 0 && r.right > width + 0.5) out.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}.${el.className} right=${Math.round(r.right)}`);
    }
    return out;
  });
}

test("alice sees who she is, her groups and the verified claims, at desktop and phone size", async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const { page, problems } = await watchedPage(context);
  await page.goto(`${LABGATE}/hello?from=echo-test`);
  await page.getByRole("link", { name: "Sign in with GitLab" }).click();
  await page.waitForURL(`${GITLAB}/users/sign_in**`);
  await signInAtGitLab(page, "alice");
  await page.waitForURL(`${LABGATE}/hello?from=echo-test`);

  // Who: name as the heading, the username, the verified email.
  assert.equal(await page.textContent("#user"), "alice");
  const name = await page.getByRole("heading", { level: 1 }).textContent();
  assert.match(name, /Alice/);
  assert.match(await page.textContent("#email"), /alice@example\.com.*verified/);
  // Verified against labgate's JWKS, said in words, and the claims shown.
  assert.equal(await page.textContent("#valid"), "Verified");
  await assert.doesNotReject(page.getByRole("heading", { name: "Verified assertion claims" }).waitFor());
  const claims = await page.textContent("#claims");
  for (const claim of ["sub", "username", "groups", "iss", "aud", "exp"]) assert.match(claims, new RegExp(claim));
  assert.match(claims, /in \d+ (min|s)/, "exp shown as a time from now");
  // Groups, as alice's fixture has them.
  const groups = await page.locator("#groups li").allTextContents();
  for (const g of ["acme", "acme/team"]) assert.ok(groups.includes(g), `groups: ${groups}`);
  for (let i = 0; i < groups.length; i++) assert.ok(await page.locator("#groups li").nth(i).isVisible(), groups[i]);
  for (const sel of ["#user", "#valid", "#claims", "#groups"]) assert.ok(await page.locator(sel).isVisible(), `${sel} visible`);

  await page.screenshot({ path: join(SHOTS, "echo-desktop.png"), fullPage: true });
  assert.deepEqual(await overflowing(page), [], "nothing wider than the desktop viewport");

  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(100);
  for (const sel of ["#user", "#valid", "#claims", "#groups"]) assert.ok(await page.locator(sel).isVisible(), `${sel} visible on a phone`);
  assert.deepEqual(await overflowing(page), [], "nothing overflows horizontally at phone width");
  await page.screenshot({ path: join(SHOTS, "echo-phone.png"), fullPage: true });

  assert.deepEqual(problems.console, [], "no console errors");
  assert.deepEqual(problems.foreign, [], "no requests to other hosts");

  // Accessible (axe, WCAG 2 A/AA), with the same session.
  const state = await context.storageState();
  const violations = await axe(browser, null, async (p) => {
    await p.context().addCookies(state.cookies);
    await p.goto(`${LABGATE}/hello`);
  });
  assert.deepEqual(violations, []);
  await context.close();
});

test("the same URL answers JSON to an API client", async () => {
  const context = await browser.newContext();
  const { page } = await watchedPage(context);
  await page.goto(`${LABGATE}/oauth2/start?rd=%2Fapi`);
  await signInAtGitLab(page, "alice");
  await page.waitForURL(`${LABGATE}/api`);
  const r = await context.request.get(`${LABGATE}/api`, { headers: { Accept: "application/json" } });
  assert.equal(r.status(), 200);
  assert.match(r.headers()["content-type"], /application\/json/);
  const body = await r.json();
  assert.equal(body.user, "alice");
  assert.equal(body.verified.valid, true);
  assert.equal(body.verified.claims.username, "alice");
  await context.close();
});

test("a public path shows nobody signed in", async () => {
  const context = await browser.newContext();
  const { page, problems } = await watchedPage(context);
  await page.goto(`${LABGATE}/public/info`);
  assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "Not signed in");
  assert.equal(await page.textContent("#valid"), "No assertion");
  assert.deepEqual(problems.console, []);
  await context.close();
});
