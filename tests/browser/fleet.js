// Simulated edges that speak the real heartbeat API (as crates/control/tests do): each
// registers with its labels and contract, then long-polls heartbeats, fetches every version
// it is told to serve, and ACKs it, or NACKs it with the issues when the file carries
// feature names outside its extractor catalogue. Traffic is a fixed human/bot mix of scores,
// the same on every node, so a healthy version passes the score-shift gate.
//
// With `rampart up` the real edges replace this module.
'use strict';

/** Requests per beat and node. */
const REQUESTS_PER_BEAT = 1000;
/** 5xx per beat and node (any 5xx in a beat shows the node as degraded). */
const ERRORS_PER_BEAT = 0;
/** Requests per beat that pass unscored. */
const UNSCORED_PER_BEAT = 5;
/** How long the control plane may hold a heartbeat when nothing changed. */
const WAIT_MS = 200;
/** A heartbeat answered sooner than this with nothing new waits the rest (no busy loop). */
const MIN_BEAT_GAP_MS = 50;
/** Each node beats at most this many times: the loop is bounded even if stop() is never called. */
const MAX_BEATS = 20_000;
/** A request that takes longer is abandoned and retried. */
const REQUEST_TIMEOUT_MS = 35_000;
/** Issues listed in a rejection (the API caps a heartbeat at 64). */
const MAX_ISSUES = 5;
const SCORE_BUCKETS = 99;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** 90% humans scoring 60..99, 10% bots scoring 1..20 (the rest unscored). */
function histogram() {
  const buckets = new Array(SCORE_BUCKETS).fill(0);
  const scored = REQUESTS_PER_BEAT - UNSCORED_PER_BEAT;
  const bots = Math.round(scored * 0.1);
  for (let i = 0; i < bots; i += 1) buckets[i % 20] += 1;
  for (let i = 0; i < scored - bots; i += 1) buckets[59 + (i % 40)] += 1;
  return { buckets, unscored: UNSCORED_PER_BEAT };
}

function decode(envelope) {
  const env = JSON.parse(envelope);
  return JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8'));
}

class Fleet {
  /**
   * @param stack what stack.start() returned
   * @param nodes [{ id, pop, region, canary }]
   * @param catalogue the feature names every edge can extract
   */
  constructor(stack, nodes, catalogue) {
    this.stack = stack;
    this.nodes = nodes;
    this.catalogue = new Set(catalogue);
    this.stopped = false;
    this.loops = [];
    this.errors = [];
  }

  async start() {
    for (const n of this.nodes) {
      await this.stack.call('POST', '/v1/nodes', {
        role: 'edge',
        body: {
          node: n.id,
          labels: { pop: n.pop, region: n.region, canary: n.canary },
          contract: {
            consumer: 'edge', max_features: 200, min_features: 1, max_bytes: 1048576, max_name_len: 64,
            max_abs_weight: 1000.0,
            allowed_types: ['Bool', 'UInt8', 'UInt16', 'UInt32', 'UInt64', 'Int8', 'Int16', 'Int32', 'Int64', 'Float32', 'Float64'],
          },
          software_version: 'sim-edge 0.1 (browser test)',
        },
      });
    }
    this.loops = this.nodes.map((n) => this.run(n));
  }

  async stop() {
    this.stopped = true;
    await Promise.allSettled(this.loops);
  }

  /** What an edge decides about a file: the issues, or none. */
  judge(doc) {
    const unknown = doc.features.map((f) => f.name).filter((name) => !this.catalogue.has(name));
    return unknown.map((name) => ({
      code: 'unknown_name',
      message: `feature ${JSON.stringify(name)} has no extractor on this edge`,
      detail: { name },
    }));
  }

  async run(node) {
    const hist = histogram();
    let active = null;
    let verdict = null;
    let rejection = null;
    let seen = null;
    let moduleEnabled = true;
    for (let seq = 0; seq < MAX_BEATS && !this.stopped; seq += 1) {
      const began = Date.now();
      const beat = {
        seq,
        active,
        module_enabled: moduleEnabled,
        verdict,
        last_rejection: rejection,
        counters: { requests: REQUESTS_PER_BEAT, errors_5xx: ERRORS_PER_BEAT, module_errors: 0, restarts: 0 },
        scores: hist,
        seen,
        wait_ms: WAIT_MS,
      };
      let answer;
      try {
        answer = await this.call('POST', `/v1/nodes/${node.id}/heartbeat`, beat);
      } catch (e) {
        this.errors.push(`${node.id}: ${e.message}`);
        await sleep(100);
        continue;
      }
      seen = answer.etag;
      moduleEnabled = answer.kill_switches.bot.enabled;
      const d = answer.desired;
      if (d && (!active || active.digest !== d.digest) && !(verdict && verdict.digest === d.digest && verdict.verdict === 'nack')) {
        try {
          const doc = decode(await this.fetchText(d.fetch));
          const issues = this.judge(doc);
          const now = Date.now();
          if (issues.length) {
            verdict = { digest: d.digest, version: d.version, verdict: 'nack', issues: [...new Set(issues.map((i) => i.code))], at_ms: now };
            rejection = {
              at_ms: now,
              version: d.version,
              digest: d.digest,
              code: 'invalid',
              message: `refused v${d.version}: ${issues.length} feature(s) this edge cannot extract; kept v${active ? active.version : '-'}`,
              issues: issues.slice(0, MAX_ISSUES),
            };
          } else {
            active = { version: d.version, digest: d.digest };
            verdict = { digest: d.digest, version: d.version, verdict: 'ack', issues: [], at_ms: now };
          }
        } catch (e) {
          this.errors.push(`${node.id}: fetch ${d.digest}: ${e.message}`);
        }
      }
      const spent = Date.now() - began;
      if (!answer.changed && spent < MIN_BEAT_GAP_MS) await sleep(MIN_BEAT_GAP_MS - spent);
    }
  }

  async call(method, route, body) {
    const resp = await fetch(this.stack.url + route, {
      method,
      headers: { Authorization: `Bearer ${this.stack.tokens.edge}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await resp.text();
    if (!resp.ok) throw new Error(`${resp.status} ${text}`);
    return JSON.parse(text);
  }

  async fetchText(route) {
    const resp = await fetch(this.stack.url + route, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    if (!resp.ok) throw new Error(`${resp.status}`);
    return resp.text();
  }
}

module.exports = { Fleet };
