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
/** Where the running demo's parts answer: set by startDev from the banner of `labgate dev
 * --port-base`, which takes free ports (never the user's own demo on 4180). */
export let LABGATE = "";
export let GITLAB = "";
export let ECHO = "";
export const SHOTS = join(root, "target", "screenshots");
mkdirSync(SHOTS, { recursive: true });

const targetDir = process.env.CARGO_TARGET_DIR || join(root, "target");
const binary = process.env.LABGATE_BIN || join(targetDir, "debug", "labgate");

function canBind(port, host) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

/** A port base whose three ports are free (labgate on 127.0.0.1, the stand-in on
 * 127.0.0.2, the echo app on 127.0.0.1): for configurations that name labgate's port. */
export async function freePortBase() {
  for (let i = 0; i < 200; i++) {
    const p = 20000 + Math.floor(Math.random() * 40000);
    if ((await canBind(p, "127.0.0.1")) && (await canBind(p + 1, "127.0.0.2")) && (await canBind(p + 2, "127.0.0.1"))) return p;
  }
  throw new Error("no three free ports in a row");
}

/** Writes a configuration file for `labgate dev --config` into a fresh directory. */
export function writeConfig(text) {
  const dir = mkdtempSync(join(tmpdir(), "labgate-browser-"));
  writeFileSync(join(dir, "dev.toml"), text);
  return join(dir, "dev.toml");
}

/** Starts `labgate dev` on its own ports (`portBase`; 0: free ones): with `configFile`,
 * that configuration instead of config/dev.toml; else optionally with extra TOML added to
 * config/dev.toml's [session] and [server]. Fails with the child's output if it does not
 * come up. */
export async function startDev({ sessionExtra = "", serverExtra = "", configFile = "", portBase = 0 } = {}) {
  const args = ["dev", "--port-base", String(portBase)];
  if (configFile) {
    if (sessionExtra || serverExtra) throw new Error("startDev: configFile replaces config/dev.toml; put the extra TOML in it");
    args.push("--config", configFile);
  } else if (sessionExtra || serverExtra) {
    let cfg = readFileSync(join(root, "config", "dev.toml"), "utf8");
    cfg = cfg.replace("[session]\n", `[session]\n${sessionExtra}\n`).replace("[server]\n", `[server]\n${serverExtra}\n`);
    args.push("--config", writeConfig(cfg));
  }
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let exited = null;
  child.stdout.on("data", (d) => { stdout += d; });
  child.stderr.on("data", (d) => { stderr += d; });
  child.on("exit", (code, signal) => { exited = signal || `exit code ${code}`; });
  child.on("error", (e) => { exited = e.message; });
  const failed = (why) => new Error(`labgate ${args.join(" ")} ${why}:\n${stdout}${stderr}`);
  for (let i = 0; !stdout.includes("Press Ctrl-C to stop."); i++) {
    if (exited) throw failed(`stopped (${exited})`);
    if (i >= 300) { child.kill("SIGKILL"); throw failed("did not start within 30 s"); }
    await new Promise((r) => setTimeout(r, 100));
  }
  const url = (label) => {
    const m = stdout.match(new RegExp(`^  ${label}\\s+(http://[^/\\s]+)`, "m"));
    if (!m) throw failed(`printed no ${label} URL`);
    return m[1];
  };
  LABGATE = url("Open");
  GITLAB = url("GitLab");
  ECHO = url("Echo app");
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
export async function watchedPage(context, { hosts = ["127.0.0.1", "127.0.0.2"] } = {}) {
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
