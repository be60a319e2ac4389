// The stack the dashboard test looks at: the real `rampart up` (a control plane with
// --auto-rollout, an origin, real `rampart edge` processes with their agents across PoPs, one
// canary, the generator on the embedded catalog, and traffic), on 127.0.0.1 with ports it
// picks itself, in a work dir made for this run.
//
// Where everything is comes from `DIR/up.json`, which `rampart up` writes once every process
// has started: the control plane's URL, the token and key files, every child's PID. The
// test signs its own files with the real `rampart artifact sign` and publishes them with
// the publisher token, as `rampart up --inject` does.
//
// Stopping: SIGINT to `rampart up` by its PID (it stops its children in order and waits for
// them), a bounded wait, then SIGKILL to it and to whatever of its children is left: every
// PID in up.json and every process whose command line names this run's work dir (the
// children run in their own process groups, so nothing else would reach them).
'use strict';

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');

/** How long `rampart up` may take to write up.json. */
const START_TIMEOUT_MS = 60_000;
/** How long it may take to stop after SIGINT (each child has 10 s after SIGTERM; edges stop together). */
const STOP_TIMEOUT_MS = 45_000;
/** How long processes killed with SIGKILL may take to vanish. */
const KILL_WAIT_MS = 5_000;
/** A request to the API that takes longer fails the test. */
const REQUEST_TIMEOUT_MS = 10_000;
/** A call to `rampart artifact sign` that takes longer fails the test. */
const SIGN_TIMEOUT_MS = 30_000;
/** Lines of `rampart up`'s output kept to print when something fails. */
const KEPT_LINES = 400;

/**
 * The rollout policy of the run. The canary bakes 10 s, long enough for the test to pause
 * it from the page; the later waves 0.5 s; the whole fleet is watched 2 s after the last
 * wave. 100 ms ticks, 100 requests judge a rate.
 */
const POLICY = `[plan]
canary_bake_ms = 10000

[[plan.waves]]
share = 0.5
bake_ms = 500

[[plan.waves]]
share = 1.0
bake_ms = 500

[rollout]
tick_ms = 100
baseline_wait_ms = 3000
watch_ms = 2000

[rollout.gates]
min_requests = 100

[rollout.gates.shift]
min_scores = 100
`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function binary() {
  if (process.env.RAMPART_BIN) return process.env.RAMPART_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(__dirname, '..', '..', 'target');
  return path.join(target, 'debug', 'rampart');
}

/** Whether `pid` runs (a zombie has ended). */
function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ...": the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Live processes whose command line mentions `needle` (this run's work dir). */
function processesNaming(needle) {
  const found = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmd;
    try {
      cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmd.includes(needle) && alive(Number(entry))) {
      found.push({ pid: Number(entry), cmd: cmd.split('\0').join(' ').trim() });
    }
  }
  return found;
}

/**
 * Starts `rampart up` with `args` added to the run's own (work dir, policy, fast beats);
 * resolves to the stack once up.json is written.
 */
async function start({ edges = 6, pops = 3, rate = 200 } = {}) {
  const bin = binary();
  if (!fs.existsSync(bin)) {
    throw new Error(`no rampart binary at ${bin}: run \`cargo build --bin rampart\` (or set RAMPART_BIN)`);
  }
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'rampart-browser-'));
  const dir = path.join(base, 'up');
  const policy = path.join(base, 'policy.toml');
  fs.writeFileSync(policy, POLICY);
  const args = [
    'up', '--dir', dir,
    '--edges', String(edges), '--pops', String(pops), '--rate', String(rate),
    '--every', '1h', '--beat-interval-ms', '200', '--policy', policy,
  ];
  const child = spawn(bin, args, {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = [];
  const keep = (chunk) => {
    for (const line of String(chunk).split('\n')) {
      if (line.trim()) lines.push(line);
    }
    lines.splice(0, Math.max(0, lines.length - KEPT_LINES));
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exit = null;
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    exit = { code, signal };
    resolve(exit);
  }));

  let state = null;
  let stopped = null;

  /** Stops `rampart up` and everything it started; resolves to what happened. Idempotent. */
  const stop = () => {
    if (!stopped) stopped = stopOnce();
    return stopped;
  };
  const stopOnce = async () => {
    let clean = false;
    if (exit === null) {
      child.kill('SIGINT');
      clean = await Promise.race([exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
      if (!clean) {
        child.kill('SIGKILL');
        await Promise.race([exited, sleep(KILL_WAIT_MS)]);
      }
    }
    // What is still running now is a leftover: the test fails on it, and it is killed.
    const pids = new Set(state ? state.children.map((c) => c.pid) : []);
    const leftovers = [
      ...[...pids].filter(alive).map((pid) => ({ pid, cmd: '(from up.json)' })),
      ...processesNaming(dir).filter((p) => !pids.has(p.pid)),
    ];
    for (const p of leftovers) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // Gone in between.
      }
    }
    const until = Date.now() + KILL_WAIT_MS;
    while (Date.now() < until && leftovers.some((p) => alive(p.pid))) await sleep(50);
    const stateLeft = fs.existsSync(path.join(dir, 'up.json'));
    return { clean, exit, leftovers, stateLeft, output: lines.join('\n') };
  };

  try {
    const file = path.join(dir, 'up.json');
    const until = Date.now() + START_TIMEOUT_MS;
    while (!fs.existsSync(file)) {
      if (exit !== null) throw new Error(`rampart up exited early (${exit.code ?? exit.signal}):\n${lines.join('\n')}`);
      if (Date.now() > until) throw new Error(`rampart up wrote no up.json in ${START_TIMEOUT_MS} ms:\n${lines.join('\n')}`);
      await sleep(100);
    }
    state = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    await stop();
    fs.rmSync(base, { recursive: true, force: true });
    throw e;
  }

  const read = (p) => fs.readFileSync(p, 'utf8').trim();
  const tokens = {
    admin: read(state.files.admin_token),
    approver: read(state.files.approver_token),
    publisher: read(state.files.publisher_token),
  };
  const url = state.control;
  // The control plane serves https with a certificate from the stack's own CA: trust that
  // CA, and nothing else, for every API call.
  const ca = fs.readFileSync(state.files.ca);
  /** One request to the control plane over TLS; resolves to { ok, status, text }. */
  const request = (route, { method = 'GET', headers = {}, body, timeout = REQUEST_TIMEOUT_MS } = {}) =>
    new Promise((resolve, reject) => {
      const req = https.request(url + route, { method, headers, ca, timeout }, (resp) => {
        const chunks = [];
        resp.on('data', (c) => chunks.push(c));
        resp.on('end', () => resolve({
          ok: resp.statusCode >= 200 && resp.statusCode < 300,
          status: resp.statusCode,
          text: Buffer.concat(chunks).toString('utf8'),
        }));
        resp.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${route}: timed out`)));
      req.on('error', reject);
      if (body !== undefined) req.write(body);
      req.end();
    });

  const stack = {
    url,
    dir,
    pid: child.pid,
    state,
    tokens,
    keys: { signing: state.files.signing_key, rotated: state.files.rotated_key },
    /** The last lines `rampart up` printed. */
    output: () => lines.join('\n'),
    request,
    /** Calls the API; `role` picks the token (none: an anonymous read). */
    async call(method, route, { role, body, raw } = {}) {
      const headers = {};
      if (role) headers.Authorization = `Bearer ${tokens[role]}`;
      let payload;
      if (raw !== undefined) {
        headers['Content-Type'] = 'application/octet-stream';
        payload = raw;
      } else if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        payload = JSON.stringify(body);
      }
      const resp = await request(route, { method, headers, body: payload });
      const text = resp.text;
      if (!resp.ok) throw new Error(`${method} ${route}: ${resp.status} ${text}`);
      return text ? JSON.parse(text) : null;
    },
    /** The document inside a stored artifact. */
    async document(digest) {
      const resp = await request(`/v1/artifacts/${digest}`);
      if (!resp.ok) throw new Error(`GET artifact ${digest}: ${resp.status}`);
      const env = JSON.parse(resp.text);
      return JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8'));
    },
    /** Signs `doc` with `key` (the real `rampart artifact sign`) and publishes it as the publisher. */
    async publish(doc, key) {
      const name = `v${doc.version}-${path.basename(key, '.key')}`;
      const docPath = path.join(base, `${name}.json`);
      const envPath = path.join(base, `${name}.signed.json`);
      fs.writeFileSync(docPath, JSON.stringify(doc, null, 2));
      execFileSync(bin, ['artifact', 'sign', '--key', key, '--out', envPath, docPath], {
        stdio: ['ignore', 'ignore', 'inherit'],
        timeout: SIGN_TIMEOUT_MS,
      });
      const result = await stack.call('POST', '/v1/artifacts', { role: 'publisher', raw: fs.readFileSync(envPath) });
      return result.artifact;
    },
    /** An edge's admin API, as JSON. */
    async admin(id, route) {
      const e = state.edges.find((x) => x.id === id);
      if (!e) throw new Error(`no edge ${id} in up.json`);
      const resp = await fetch(`http://${e.admin}${route}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      if (!resp.ok) throw new Error(`GET ${e.admin}${route}: ${resp.status}`);
      return resp.json();
    },
    stop,
    /** Stops (if not yet) and removes the run's directories. */
    async dispose() {
      const result = await stop();
      fs.rmSync(base, { recursive: true, force: true });
      return result;
    },
  };
  return stack;
}

module.exports = { start, alive, POLICY };
