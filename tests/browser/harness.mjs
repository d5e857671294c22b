// Shared harness for the browser suite: runs the real `labgate dev` binary (labgate, the
// GitLab stand-in and the echo app), launches Debian's Chromium through playwright-core,
// and records what the quality bars need (console errors, foreign requests).
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, "..", "..");
export const LABGATE = "http://127.0.0.1:4180";
export const GITLAB = "http://127.0.0.1:4181";
export const SHOTS = join(root, "target", "screenshots");
mkdirSync(SHOTS, { recursive: true });

const targetDir = process.env.CARGO_TARGET_DIR || join(root, "target");
const binary = process.env.LABGATE_BIN || join(targetDir, "debug", "labgate");

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => { s.end(); resolve(true); });
    s.on("error", () => resolve(false));
  });
}

/** Starts `labgate dev`: with `configFile`, that configuration instead of config/dev.toml;
 * else optionally with extra TOML added to config/dev.toml's [session] and [server]. */
export async function startDev({ sessionExtra = "", serverExtra = "", configFile = "" } = {}) {
  for (let i = 0; i < 50 && (await portOpen(4180)); i++) await new Promise((r) => setTimeout(r, 100));
  const args = ["dev"];
  if (configFile) {
    if (sessionExtra || serverExtra) throw new Error("startDev: configFile replaces config/dev.toml; put the extra TOML in it");
    args.push("--config", configFile);
  } else if (sessionExtra || serverExtra) {
    let cfg = readFileSync(join(root, "config", "dev.toml"), "utf8");
    cfg = cfg.replace("[session]\n", `[session]\n${sessionExtra}\n`).replace("[server]\n", `[server]\n${serverExtra}\n`);
    const dir = mkdtempSync(join(tmpdir(), "labgate-browser-"));
    writeFileSync(join(dir, "dev.toml"), cfg);
    args.push("--config", join(dir, "dev.toml"));
  }
  const child = spawn(binary, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  let exited = null;
  child.stderr.on("data", (d) => { stderr += d; });
  child.on("exit", (code, signal) => { exited = signal || `exit code ${code}`; });
  for (let i = 0; i < 100; i++) {
    if (exited) throw new Error(`labgate ${args.join(" ")} stopped (${exited}):\n${stderr}`);
    if ((await portOpen(4180)) && (await portOpen(4181)) && (await portOpen(4182))) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    stop: () => new Promise((resolve) => {
      if (exited) return resolve();
      child.on("exit", resolve);
      child.kill("SIGTERM");
    }),
    log: () => stderr,
  };
}

/** Launches headless Chromium the way this machine allows (no downloads, closed network).
 * Playwright gives every launch a fresh temporary profile. `args`: extra Chromium switches
 * (e.g. `--host-resolver-rules=...`). */
export async function launch({ args = [] } = {}) {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ...args,
    ],
  });
}

/** A page that records console errors and requests to hosts other than the test's own
 * (`hosts`: the host names it may talk to). */
export async function watchedPage(context, { hosts = ["127.0.0.1"] } = {}) {
  const page = await context.newPage();
  const problems = { console: [], foreign: [] };
  const documents = new Set();
  page.on("framenavigated", (f) => { if (f === page.mainFrame()) documents.add(f.url()); });
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    // Chromium also logs the status of the document itself (a 403 page is a 403): only
    // failed sub-resources and script errors are problems.
    if (m.text().startsWith("Failed to load resource") && documents.has(m.location().url)) return;
    problems.console.push(`${m.text()} (${m.location().url})`);
  });
  page.on("pageerror", (e) => problems.console.push(String(e)));
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (!hosts.includes(u.hostname) && !u.protocol.startsWith("data")) problems.foreign.push(r.url());
  });
  return { page, problems };
}

/** From GitLab's sign-in form (or consent page) to the app: signs in and authorizes. */
export async function signInAtGitLab(page, user, { deny = false } = {}) {
  if (page.url().startsWith(`${GITLAB}/users/sign_in`)) {
    await page.fill("#username", user);
    await page.fill("#password", `${user}-password`);
    await page.click("button[type=submit]");
  }
  await page.waitForURL(`${GITLAB}/oauth/authorize**`);
  await page.click(deny ? "button.deny" : "button[value=Authorize]");
}

/** Screenshots a page at desktop and phone sizes. */
export async function screenshots(page, name) {
  for (const [w, h] of [[1280, 800], [390, 844]]) {
    await page.setViewportSize({ width: w, height: h });
    await page.screenshot({ path: join(SHOTS, `${name}-${w}x${h}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 800 });
}

/** Runs axe-core on the current page (in a CSP-bypassing context) and returns violations. */
export async function axe(browser, url, prepare) {
  const context = await browser.newContext({ bypassCSP: true });
  const page = await context.newPage();
  if (prepare) await prepare(page);
  else await page.goto(url);
  await page.addScriptTag({ path: join(here, "node_modules", "axe-core", "axe.min.js") });
  const result = await page.evaluate(async () => await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "best-practice"] }));
  await context.close();
  return result.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
}
