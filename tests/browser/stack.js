// The stack the dashboard test looks at: a real `rampart control` process on 127.0.0.1:0,
// signing keys and tokens made for this run, and files signed by the real binary.
//
// `rampart up` does not exist yet. When it does, `start()` becomes: spawn `rampart up` with
// its flags, read the control-plane URL and the admin token it prints, and return the same
// object with `fleet: null` (its real edges heartbeat by themselves). The test only uses
// what `start()` returns.
'use strict';

const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/** How long the control plane may take to print its address. */
const START_TIMEOUT_MS = 30_000;
/** How long it may take to stop after SIGTERM before it is SIGKILLed. */
const STOP_TIMEOUT_MS = 10_000;
/** A request to the API that takes longer fails the test. */
const REQUEST_TIMEOUT_MS = 10_000;
/** The heartbeat interval told to edges (fast, so the test is too). */
const BEAT_INTERVAL_MS = 200;

/** Fast gates, as the Rust socket tests use: 100 ms ticks, 100 requests judge a rate. */
const POLICY = `[rollout]
tick_ms = 100
[rollout.gates]
min_requests = 100
[rollout.gates.shift]
min_scores = 100
alpha = 0.001
min_d = 0.1
`;

function binary() {
  if (process.env.RAMPART_BIN) return process.env.RAMPART_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(__dirname, '..', '..', 'target');
  return path.join(target, 'debug', 'rampart');
}

/** Starts the control plane; resolves to the stack the test drives. */
async function start() {
  const bin = binary();
  if (!fs.existsSync(bin)) {
    throw new Error(`no rampart binary at ${bin}: run \`cargo build --bin rampart\` (or set RAMPART_BIN)`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rampart-dashboard-'));
  const secret = () => crypto.randomBytes(24).toString('hex');
  const tokens = { admin: secret(), publisher: secret(), edge: secret() };
  fs.writeFileSync(
    path.join(dir, 'tokens'),
    `alice admin ${tokens.admin}\ngen publisher ${tokens.publisher}\nedges edge ${tokens.edge}\n`,
    { mode: 0o600 },
  );
  fs.writeFileSync(path.join(dir, 'policy.toml'), POLICY);
  execFileSync(bin, ['keygen', '--out', path.join(dir, 'keys')], { stdio: ['ignore', 'ignore', 'inherit'] });

  const child = spawn(bin, [
    'control',
    '--listen', '127.0.0.1:0',
    '--data-dir', path.join(dir, 'data'),
    '--token-file', path.join(dir, 'tokens'),
    '--pubkey', path.join(dir, 'keys', 'rampart.pub'),
    '--policy', path.join(dir, 'policy.toml'),
    '--beat-interval-ms', String(BEAT_INTERVAL_MS),
  ], { env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] });

  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`rampart control printed no address in ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = /rampart control listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`rampart control exited early (${code ?? signal})`));
    });
  });

  const stack = {
    url,
    dir,
    pid: child.pid,
    tokens,
    beatIntervalMs: BEAT_INTERVAL_MS,
    /** Calls the API; `role` picks the token (none: an anonymous read). */
    async call(method, route, { role, body, raw } = {}) {
      const headers = {};
      if (role) headers.Authorization = `Bearer ${tokens[role]}`;
      let payload;
      if (raw !== undefined) payload = raw;
      else if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        payload = JSON.stringify(body);
      }
      const resp = await fetch(url + route, { method, headers, body: payload, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      const text = await resp.text();
      const json = text ? JSON.parse(text) : null;
      if (!resp.ok) throw new Error(`${method} ${route}: ${resp.status} ${text}`);
      return json;
    },
    /** Signs a document with the run's key (the real `rampart artifact sign`) and publishes it. */
    async publish(doc) {
      const name = `v${doc.version}-${crypto.randomBytes(4).toString('hex')}`;
      const docPath = path.join(dir, `${name}.json`);
      const envPath = path.join(dir, `${name}.signed.json`);
      fs.writeFileSync(docPath, JSON.stringify(doc, null, 2));
      execFileSync(bin, ['artifact', 'sign', '--key', path.join(dir, 'keys', 'rampart.key'), '--out', envPath, docPath], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      const result = await stack.call('POST', '/v1/artifacts', { role: 'publisher', raw: fs.readFileSync(envPath) });
      return result.artifact;
    },
    /** SIGTERM, then SIGKILL if it does not stop in time; removes the run's directory. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return stack;
}

module.exports = { start };
