// The rampart dashboard: reads the control plane's public JSON (/v1) and builds the page
// from it. Every value from the API reaches the DOM as text (textContent, text nodes,
// attribute values set by name): never as markup. Writes carry the operator's bearer token,
// which lives in sessionStorage (this tab only) and is never put in a URL.
'use strict';

(() => {
  // === limits: every loop and every list on this page is bounded ===

  /** One poll cycle this often while the tab is visible. */
  const POLL_MS = 1000;
  /** After failures the next poll waits twice as long each time, at most this long. */
  const MAX_BACKOFF_MS = 15000;
  /** A request that takes longer is abandoned (the next poll tries again). */
  const FETCH_TIMEOUT_MS = 8000;
  /** Rollouts listed. */
  const ROLLOUTS_SHOWN = 20;
  /** Artifacts listed (and checked against the contracts). */
  const ARTIFACTS_SHOWN = 50;
  /** Contract checks fetched per poll (each decodes a file on the server). */
  const CHECKS_PER_POLL = 8;
  /** Newest audit entries kept in the page (the timeline is built from them). */
  const AUDIT_KEPT = 1000;
  /** Audit entries asked for per request. */
  const AUDIT_PAGE = 200;
  /** Audit pages read per poll. */
  const AUDIT_PAGES_PER_POLL = 5;
  /** Audit rows drawn. */
  const AUDIT_ROWS_SHOWN = 200;
  /** Probes to find the end of the audit log (binary search over a gapless sequence). */
  const AUDIT_PROBES = 64;
  /** Issues of a node's last rejection listed in its card. */
  const REJECTION_ISSUES_SHOWN = 3;
  /** Feature names listed per diff section. */
  const DIFF_NAMES_SHOWN = 40;
  /** Where the token is kept. */
  const TOKEN_KEY = 'rampart.dashboard.token';
  const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

  // === state ===

  const state = {
    nodes: [],
    switches: [],
    rollouts: [],
    artifacts: [],
    contracts: [],
    approvals: [], // requests waiting for a second admin
    audit: [],
    auditEnd: null, // seq of the newest entry read, null before the first read
    checks: new Map(), // digest -> {key, result}
    selected: null, // rollout id picked by the operator, null: the newest
    failures: 0,
    lastOk: 0,
  };
  let timer = null;
  let polling = false;
  let again = false; // a write asked for a poll while one ran

  // === DOM helpers ===

  const $ = (id) => document.getElementById(id);

  /** An element; strings among the children become text nodes, never markup. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'onclick') el.addEventListener('click', v);
      else if (k === 'value' || k === 'disabled' || k === 'selected' || k === 'checked') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(4)) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  const rendered = new Map();
  /** Rebuilds a container only when its data changed, so focus and selection survive polls. */
  function renderInto(el, data, build) {
    const key = JSON.stringify(data);
    if (rendered.get(el) === key) return;
    rendered.set(el, key);
    const parts = [build(data)].flat(8).filter((x) => x !== null && x !== undefined && x !== false);
    el.replaceChildren(...parts.map((x) => (x instanceof Node ? x : String(x))));
  }

  function badge(text, kind) {
    return h('span', { class: `badge ${kind || ''}`, text });
  }

  // === formatting ===

  const num = (x) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
  function fixed(x, digits) {
    const n = num(x);
    return n === null ? '–' : n.toFixed(digits);
  }
  function pct(x, digits = 2) {
    const n = num(x);
    return n === null ? '–' : `${(n * 100).toFixed(digits)}%`;
  }
  function utc(ms) {
    const n = num(ms);
    if (n === null) return '–';
    const s = new Date(n).toISOString();
    return `${s.slice(0, 10)} ${s.slice(11, 19)}`;
  }
  function clock(ms) {
    const n = num(ms);
    return n === null ? '–' : new Date(n).toISOString().slice(11, 19);
  }
  function ago(ms) {
    const n = num(ms);
    if (n === null) return 'never';
    const s = Math.max(0, (Date.now() - n) / 1000);
    if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    return `${Math.floor(s / 3600)} h ago`;
  }
  function duration(ms) {
    const n = num(ms);
    if (n === null) return '–';
    if (n < 1000) return `${n} ms`;
    if (n < 120000) return `${(n / 1000).toFixed(n % 1000 ? 1 : 0)} s`;
    return `${(n / 60000).toFixed(1)} min`;
  }
  function bytes(n) {
    if (num(n) === null) return '–';
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }
  const short = (d) => (typeof d === 'string' ? d.replace(/^sha256:/, '').slice(0, 12) : '–');
  const version = (a) => (a && num(a.version) !== null ? `v${a.version}` : '–');
  const words = (s) => String(s || '').replace(/_/g, ' ');

  function digestEl(d) {
    return h('code', { class: 'digest', title: String(d || '') }, short(d));
  }

  const PHASE_KIND = {
    pending: 'busy', baking: 'busy', verifying: 'busy', watching: 'busy', rolling_back: 'warn', rolling: 'busy',
    paused: 'warn', succeeded: 'ok', passed: 'ok', rolled_back: 'bad', aborted: 'warn',
    failed: 'bad',
  };
  const HEALTH_KIND = { healthy: 'ok', new: 'busy', degraded: 'bad', stale: 'warn' };
  const VERDICT_KIND = { pass: 'ok', skipped: 'mute', hold: 'warn', fail: 'bad', would_fail: 'warn', would_hold: 'mute' };

  // === the API ===

  class ApiFailure extends Error {
    constructor(status, body) {
      const code = body && typeof body.error === 'string' ? body.error : `http_${status}`;
      const message = body && typeof body.message === 'string' ? body.message : '';
      super(`${status} ${code}${message ? `: ${message}` : ''}`);
      this.status = status;
      this.code = code;
      this.body = body;
    }
  }

  function token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch {
      return '';
    }
  }

  async function api(method, path, body, write) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const t = write ? token() : '';
    if (t) headers.Authorization = `Bearer ${t}`;
    const ctl = new AbortController();
    const timeout = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const resp = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: ctl.signal,
        credentials: 'omit',
        cache: 'no-store',
        redirect: 'error',
      });
      const text = await resp.text();
      let json = null;
      try {
        json = text ? JSON.parse(text) : null;
      } catch {
        json = null;
      }
      if (!resp.ok) throw new ApiFailure(resp.status, json);
      return json;
    } finally {
      clearTimeout(timeout);
    }
  }
  const get = (path) => api('GET', path);

  // === polling ===

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  /** Polls now (after a write), unless a poll is running: then it follows at once. */
  function pollSoon() {
    if (polling) again = true;
    else schedule(0);
  }

  async function poll() {
    if (polling) return;
    if (document.hidden) {
      schedule(POLL_MS);
      return;
    }
    polling = true;
    try {
      const [nodes, switches, rollouts, artifacts, contracts, approvals] = await Promise.all([
        get('/v1/nodes'),
        get('/v1/killswitches'),
        get(`/v1/rollouts?limit=${ROLLOUTS_SHOWN}`),
        get(`/v1/artifacts?limit=${ARTIFACTS_SHOWN}`),
        get('/v1/contracts'),
        get('/v1/approvals'),
      ]);
      state.approvals = Array.isArray(approvals && approvals.approvals) ? approvals.approvals : [];
      state.nodes = Array.isArray(nodes && nodes.nodes) ? nodes.nodes : [];
      state.switches = Array.isArray(switches && switches.switches) ? switches.switches : [];
      state.rollouts = Array.isArray(rollouts && rollouts.rollouts) ? rollouts.rollouts : [];
      state.artifacts = Array.isArray(artifacts && artifacts.artifacts) ? artifacts.artifacts : [];
      state.contracts = Array.isArray(contracts && contracts.contracts) ? contracts.contracts : [];
      await readAudit();
      await readChecks();
      state.failures = 0;
      state.lastOk = Date.now();
      renderAll();
      setLive(true);
    } catch (e) {
      state.failures += 1;
      setLive(false, e);
    } finally {
      polling = false;
    }
    const wait = state.failures
      ? Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** Math.min(state.failures, 10))
      : POLL_MS;
    schedule(again && !state.failures ? 0 : wait);
    again = false;
  }

  function setLive(ok, err) {
    const el = $('live');
    el.classList.toggle('down', !ok);
    el.textContent = ok
      ? `live · updated ${clock(state.lastOk)} UTC`
      : `cannot reach the control plane (${err && err.message ? err.message : 'error'}); retrying`;
  }

  /** Whether entry `seq` exists (the log is gapless from 1). */
  async function auditHas(seq) {
    if (seq <= 0) return true;
    const page = await get(`/v1/audit?after=${seq - 1}&limit=1`);
    return Boolean(page && Array.isArray(page.entries) && page.entries.length);
  }

  /** The newest seq, by doubling then bisecting: about 2·log2(n) small reads, once. */
  async function auditLast() {
    let lo = 0;
    let hi = 1;
    let probes = 0;
    while (probes < AUDIT_PROBES && (await auditHas(hi))) {
      lo = hi;
      hi *= 2;
      probes += 1;
    }
    while (probes < AUDIT_PROBES && hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (await auditHas(mid)) lo = mid;
      else hi = mid;
      probes += 1;
    }
    return lo;
  }

  async function readAudit() {
    if (state.auditEnd === null) {
      const last = await auditLast();
      state.auditEnd = Math.max(0, last - AUDIT_KEPT);
    }
    for (let i = 0; i < AUDIT_PAGES_PER_POLL; i += 1) {
      const page = await get(`/v1/audit?after=${state.auditEnd}&limit=${AUDIT_PAGE}`);
      const entries = Array.isArray(page && page.entries) ? page.entries : [];
      for (const e of entries) {
        if (num(e.seq) !== null && e.seq > state.auditEnd) {
          state.audit.push(e);
          state.auditEnd = e.seq;
        }
      }
      if (state.audit.length > AUDIT_KEPT) state.audit.splice(0, state.audit.length - AUDIT_KEPT);
      if (!page || page.next_after === null || page.next_after === undefined) break;
    }
  }

  async function readChecks() {
    const key = JSON.stringify(state.contracts);
    let fetched = 0;
    for (const a of state.artifacts) {
      if (fetched >= CHECKS_PER_POLL) break;
      if (!DIGEST_RE.test(a.digest)) continue;
      const have = state.checks.get(a.digest);
      if (have && have.key === key) continue;
      fetched += 1;
      try {
        state.checks.set(a.digest, { key, result: await get(`/ui/checks/${a.digest}`) });
      } catch (e) {
        state.checks.set(a.digest, { key, error: e.message });
      }
    }
    // Forget checks of artifacts no longer listed.
    const listed = new Set(state.artifacts.map((a) => a.digest));
    for (const d of [...state.checks.keys()]) if (!listed.has(d)) state.checks.delete(d);
  }

  // === rendering ===

  function renderAll() {
    renderApprovals();
    renderFleet();
    renderSwitchForm();
    renderRollouts();
    renderArtifacts();
    renderAudit();
  }

  function renderFleet() {
    const nodes = state.nodes;
    const byHealth = {};
    for (const n of nodes) byHealth[n.health] = (byHealth[n.health] || 0) + 1;
    const versions = {};
    for (const n of nodes) {
      const v = version(n.active);
      versions[v] = (versions[v] || 0) + 1;
    }
    const fleetSwitch = state.switches.find((s) => s.node === null || s.node === undefined);
    const summary = {
      count: nodes.length,
      byHealth,
      versions,
      canaries: nodes.filter((n) => n.labels && n.labels.canary).length,
      fleetSwitch: fleetSwitch || null,
    };
    renderInto($('fleet-summary'), summary, (s) => [
      `${s.count} node${s.count === 1 ? '' : 's'}`,
      ...Object.entries(s.byHealth).map(([k, v]) => [' · ', badge(`${v} ${k}`, HEALTH_KIND[k])]),
      ` · ${s.canaries} canary · serving `,
      Object.entries(s.versions)
        .map(([k, v]) => `${k} on ${v}`)
        .join(', ') || 'nothing',
      s.fleetSwitch
        ? [' · ', badge(`bot module ${s.fleetSwitch.enabled ? 'on' : 'OFF'} fleet-wide`, s.fleetSwitch.enabled ? 'ok' : 'bad')]
        : null,
    ]);

    // Region, then PoP, then node id: the fault domains waves are cut along.
    const groups = new Map();
    for (const n of [...nodes].sort((a, b) => cmpNode(a, b))) {
      const key = `${n.labels.region} / ${n.labels.pop}`;
      if (!groups.has(key)) groups.set(key, { region: n.labels.region, pop: n.labels.pop, nodes: [] });
      groups.get(key).nodes.push(n);
    }
    // Relative times change every poll; the rest only when the fleet does.
    const view = [...groups.values()].map((g) => ({
      ...g,
      nodes: g.nodes.map((n) => ({ ...n, age: ago(n.last_beat_ms) })),
    }));
    renderInto($('fleet-body'), view, (gs) =>
      gs.length
        ? gs.map(popCard)
        : h('p', { class: 'empty', text: 'No node has registered yet.' }));
  }

  function cmpNode(a, b) {
    return (
      a.labels.region.localeCompare(b.labels.region) ||
      a.labels.pop.localeCompare(b.labels.pop) ||
      a.node.localeCompare(b.node)
    );
  }

  function popCard(g) {
    return h(
      'section',
      { class: 'pop', 'aria-label': `PoP ${g.pop} in region ${g.region}` },
      h('h3', {}, h('span', { class: 'pop-name', text: g.pop }), ' ', h('span', { class: 'region', text: `region ${g.region}` })),
      h('ul', { class: 'nodes' }, g.nodes.map(nodeItem)),
    );
  }

  /** Signal names a supervisor reports most (numbers as on Linux). */
  const SIGNALS = { 1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE', 9: 'SIGKILL', 11: 'SIGSEGV', 13: 'SIGPIPE', 15: 'SIGTERM' };

  /** A reported death: its cause, the version active then, when, and how long the run lived. */
  function deathText(d) {
    const c = d.cause || {};
    const cause = c.kind === 'signal' ? `signal ${c.signal}${SIGNALS[c.signal] ? ` (${SIGNALS[c.signal]})` : ''}`
      : c.kind === 'exit' ? `exit code ${c.code}`
      : c.kind === 'panic' ? 'panic' : 'cause unknown';
    const on = d.active ? `on v${d.active.version}` : 'before any file';
    const up = num(d.uptime_ms) === null ? '' : `, up ${duration(d.uptime_ms)}`;
    return `${cause} ${on}, found at ${clock(d.detected_at_ms)}${up}`;
  }

  function nodeItem(n) {
    const canary = n.labels && n.labels.canary;
    const sw = n.kill_switches && n.kill_switches.bot;
    const desiredDiffers = n.desired && (!n.active || n.desired.digest !== n.active.digest);
    const verdict = n.verdict;
    const rej = n.last_rejection;
    return h(
      'li',
      { class: `node${canary ? ' canary' : ''}`, 'data-node': n.node, 'data-health': n.health },
      h(
        'div',
        { class: 'node-head' },
        h('strong', { class: 'node-id', text: n.node }),
        canary ? badge('canary', 'canary-badge') : null,
        badge(n.health, HEALTH_KIND[n.health]),
      ),
      h(
        'dl',
        { class: 'facts' },
        h('dt', { text: 'serving' }),
        h('dd', {}, n.active ? [version(n.active), ' ', digestEl(n.active.digest)] : 'nothing yet',
          desiredDiffers ? [' → ', h('span', { class: 'desired', text: `told ${version(n.desired)}` })] : null),
        h('dt', { text: 'verdict' }),
        h('dd', {}, verdict
          ? [badge(verdict.verdict.toUpperCase(), verdict.verdict === 'ack' ? 'ok' : 'bad'), ` ${verdict.version ? `v${verdict.version}` : short(verdict.digest)}`,
            verdict.issues && verdict.issues.length ? ` (${verdict.issues.join(', ')})` : '']
          : '–'),
        h('dt', { text: 'bot module' }),
        h('dd', {},
          n.module_enabled === false ? badge('off', 'bad') : n.module_enabled === true ? badge('on', 'ok') : '–',
          sw && !sw.enabled ? [' switched off', sw.scope ? ` (${sw.scope})` : '', sw.reason ? `: ${sw.reason}` : ''] : null,
          sw && sw.enabled && sw.scope === 'node' ? ' (node override: on)' : null),
        h('dt', { text: 'last beat' }),
        h('dd', { text: n.age }),
        h('dt', { text: 'last rejection' }),
        h('dd', { class: rej ? 'rejection' : '' }, rej
          ? [h('code', { text: rej.code }), ` ${rej.version ? `v${rej.version}` : short(rej.digest)} at ${clock(rej.at_ms)}: `, rej.message,
            rej.issues && rej.issues.length
              ? h('ul', { class: 'issues' }, rej.issues.slice(0, REJECTION_ISSUES_SHOWN).map((i) => h('li', {}, h('code', { text: i.code }), ' ', i.message)),
                rej.issues.length > REJECTION_ISSUES_SHOWN ? h('li', { class: 'hint', text: `and ${rej.issues.length - REJECTION_ISSUES_SHOWN} more` }) : null)
              : null]
          : 'none'),
        n.last_death ? [h('dt', { text: 'last death' }), h('dd', { class: 'death' }, deathText(n.last_death))] : null,
        h('dt', { text: 'software' }),
        h('dd', { text: n.software_version }),
      ),
    );
  }

  /** Requests waiting for a second admin; another admin's token grants one here. */
  function renderApprovals() {
    const list = (state.approvals || []).map((a) => ({
      id: Number(a.id), action: String(a.action), by: String(a.requested_by),
      reason: a.request && typeof a.request.reason === 'string' ? a.request.reason : '',
    }));
    renderInto($('approvals'), list, (items) => items.map((a) => h('p', { class: 'approval', 'data-approval': a.id },
      badge('waits for a second admin', 'warn'), ' ',
      `#${a.id} ${a.action} asked by ${a.by}${a.reason ? `: ${a.reason}` : ''} `,
      h('button', { type: 'button', class: 'grant', onclick: () => grant(a.id), text: 'Grant' }))));
  }

  async function grant(id) {
    const out = $('approval-result');
    showResult(out, true, `Granting approval #${id}…`);
    try {
      const v = await api('POST', `/v1/approvals/${Number(id)}`, {}, true);
      showResult(out, true, `Approval #${v.approval.id} granted by ${v.approved_by}: ${v.approval.action} took effect.`);
      pollSoon();
    } catch (e) {
      showResult(out, false, refusal(e));
    }
  }

  function renderSwitchForm() {
    const sel = $('ks-node');
    const ids = state.nodes.map((n) => n.node).sort();
    renderInto(sel, { ids, chosen: sel.value }, ({ ids: list, chosen }) => [
      h('option', { value: '', text: 'whole fleet' }),
      ...list.map((id) => h('option', { value: id, selected: id === chosen, text: `node ${id}` })),
    ]);
  }

  function selectedRollout() {
    const rs = state.rollouts;
    if (state.selected !== null) {
      const r = rs.find((x) => x.id === state.selected);
      if (r) return r;
    }
    return rs[0] || null;
  }

  function renderRollouts() {
    const current = selectedRollout();
    const list = state.rollouts.map((r) => ({
      id: r.id, phase: r.phase, v: version(r.target), bg: r.break_glass, sel: current && r.id === current.id,
    }));
    renderInto($('rollout-list'), list, (items) =>
      items.length
        ? h('ul', {}, items.map((r) =>
          h('li', {}, h('button', {
            type: 'button',
            class: `rollout-pick${r.sel ? ' selected' : ''}`,
            'aria-pressed': r.sel ? 'true' : 'false',
            'data-rollout': r.id,
            onclick: () => { state.selected = r.id; renderRollouts(); },
          }, `#${r.id} ${r.v} `, badge(words(r.phase), PHASE_KIND[r.phase]), r.bg ? badge('break glass', 'bad') : null))))
        : h('p', { class: 'empty', text: 'No rollout yet.' }));

    $('rollout-detail').hidden = !current;
    if (!current) return;
    renderInto($('rollout-head'), current.id === undefined ? null : headData(current), () => rolloutHead(current));
    renderInto($('rollout-waves'), { id: current.id, ws: current.waves, cw: current.current_wave, done: current.done },
      ({ ws }) => ws.map((w) => waveItem(w, current)));
    const report = current.state && current.state.status ? current.state.status.report : null;
    renderInto($('rollout-report'), report ? { report, waves: current.waves.length } : null, () => reportLine(report, current));
    renderInto($('rollout-gates').tBodies[0], { gates: current.gates, report }, () => gateRows(current, report));
    const timeline = state.audit.filter((e) => e.subject === `rollout/${current.id}` ||
      (e.action === 'artifact.mark_bad' && e.subject === current.target.digest));
    renderInto($('rollout-timeline'), { id: current.id, seqs: timeline.map((e) => e.seq), start: current.started_at_ms },
      () => (timeline.length
        ? timeline.map((e) => timelineItem(e, current))
        : h('li', { class: 'empty', text: 'No audit entry of this rollout among the ones loaded.' })));
    const done = current.done;
    for (const b of document.querySelectorAll('#command-form [data-command]')) {
      const cmd = b.getAttribute('data-command');
      const applies = done ? cmd === 'rollback' && current.phase !== 'rolled_back' : cmd !== 'resume' || current.phase === 'paused';
      // A command that cannot apply now is disabled; the server stays the judge (409).
      b.disabled = !applies;
      b.title = applies ? '' : `does not apply to a rollout that is ${words(current.phase)}`;
    }
    $('command-title').textContent = `Steer rollout #${current.id}`;
  }

  // "watching until 15:20:03" for a rollout in its watch after the last wave.
  function phaseWords(r) {
    const p = r.state && r.state.status && r.state.status.phase;
    if (r.phase === 'watching' && p && p.until_ms) {
      return `watching until ${new Date(p.until_ms).toLocaleTimeString()}`;
    }
    return words(r.phase);
  }

  function headData(r) {
    return { id: r.id, phase: r.phase, outcome: r.outcome, updated: r.updated_at_ms, wave: r.current_wave };
  }

  function rolloutHead(r) {
    const live = r.waves.length;
    return [
      h('h3', { id: 'rollout-head-title', class: 'rollout-title' },
        `Rollout #${r.id}: ${version(r.previous)} → ${version(r.target)} `, badge(phaseWords(r), PHASE_KIND[r.phase]),
        r.break_glass ? badge('break glass', 'bad') : null),
      h('dl', { class: 'facts wide' },
        h('dt', { text: 'target' }), h('dd', {}, version(r.target), ' ', digestEl(r.target.digest)),
        h('dt', { text: 'previous' }), h('dd', {}, r.previous ? [version(r.previous), ' ', digestEl(r.previous.digest)] : 'none (first version)'),
        h('dt', { text: 'started' }), h('dd', { text: `${utc(r.started_at_ms)} by ${r.started_by}` }),
        h('dt', { text: 'reason' }), h('dd', { class: 'reason', text: r.reason || '–' }),
        h('dt', { text: 'wave' }), h('dd', { text: r.current_wave === null || r.current_wave === undefined ? '–' : `${r.current_wave + 1} of ${live}` }),
        h('dt', { text: 'outcome' }), h('dd', { class: `outcome ${PHASE_KIND[r.phase] || ''}`, text: r.outcome || (r.done ? '–' : 'in progress') }),
        r.observed && r.observed.length
          ? [h('dt', { text: 'observing gates' }), h('dd', { class: 'observed' }, h('ul', {}, r.observed.map((o) => h('li', { 'data-gate': o.gate },
            badge('observe', 'warn'), ' ', h('strong', { text: `${GATE_NAME[o.gate] || o.gate} ${o.would}` }), ` at ${clock(o.at_ms)} UTC: ${o.explanation}`))))]
          : null),
    ];
  }

  function waveItem(w, r) {
    const current = r.current_wave === w.index && !r.done;
    return h('li', { class: `wave ${PHASE_KIND[w.phase] || ''}${current ? ' current' : ''}`, 'data-wave': w.index, 'aria-current': current ? 'step' : false },
      h('div', { class: 'wave-head' }, h('strong', { text: w.name }), ' ', badge(words(w.phase), PHASE_KIND[w.phase])),
      h('p', { class: 'wave-numbers', text: `${w.nodes.length} node${w.nodes.length === 1 ? '' : 's'} · ${w.acked} acked · ${w.nacked} nacked · bake ${duration(w.bake_ms)}` }),
      h('p', { class: 'wave-nodes', text: w.nodes.join(', ') }));
  }

  const BASELINE = {
    same_pop: 'nodes on the previous version in the same PoPs',
    fleet: 'every node on the previous version',
    reference: 'the baseline recorded when an earlier wave passed',
    none: 'none',
  };

  function reportLine(report, r) {
    if (!report) return 'No gate has judged a wave yet.';
    const p = report.progress || {};
    const w = r.waves[report.wave];
    return [
      `Last evaluation at ${clock(report.at_ms)} UTC of wave ${w ? w.name : report.wave}, against ${BASELINE[report.baseline] || report.baseline}. `,
      `Touched ${p.nodes}: ${p.on_new} on the new version, ${p.nacked} nacked, ${p.pending} pending, ${p.missing} missing, ${p.restarted} restarted.`,
    ];
  }

  const GATE_ORDER = ['nack', 'restarts', 'errors_5xx', 'module_errors', 'score_shift', 'heartbeat', 'convergence', 'deaths'];
  const GATE_NAME = {
    nack: 'NACKs', restarts: 'Restarts', errors_5xx: '5xx vs baseline', module_errors: 'Module errors vs baseline',
    score_shift: 'Score shift (KS)', heartbeat: 'Heartbeats', convergence: 'Convergence', deaths: 'Deaths per node-hour',
  };

  // The status lists gates by their serde names; the report's fields spell two otherwise.
  const GATE_ALIAS = { errors5xx: 'errors_5xx', heartbeats: 'heartbeat' };

  function gateRows(r, report) {
    const views = new Map((r.gates || []).map((g) => [GATE_ALIAS[g.name] || g.name, g]));
    const names = report ? GATE_ORDER : [...views.keys()];
    if (!names.length) return h('tr', {}, h('td', { colspan: 5, class: 'empty', text: 'No evaluation yet.' }));
    return names.map((name) => {
      const v = report ? report[name] : null;
      const g = views.get(name);
      const verdict = (v && v.verdict) || (g && g.verdict) || '–';
      return h('tr', { 'data-gate': name, class: `gate ${VERDICT_KIND[verdict] || ''}` },
        h('th', { scope: 'row', 'data-label': 'Gate', text: GATE_NAME[name] || name }),
        h('td', { 'data-label': 'Verdict' }, badge(verdict, VERDICT_KIND[verdict])),
        h('td', { 'data-label': 'Measured', class: 'num', text: headline(name, g && g.value) }),
        h('td', { 'data-label': 'Limit', class: 'num', text: headline(name, g && g.threshold, true) }),
        h('td', { 'data-label': 'Numbers', class: 'gate-numbers' }, v ? verdictText(v) : g ? g.detail : '–'));
    });
  }

  function headline(name, x, limit) {
    if (num(x) === null) return '–';
    if (name === 'errors_5xx' || name === 'module_errors') return `${limit ? '> ' : ''}${pct(x, 3)}`;
    if (name === 'score_shift') return `${limit ? 'D ≥ ' : 'D = '}${fixed(x, 3)}`;
    return `${limit ? '≤ ' : ''}${x}`;
  }

  function verdictText(v) {
    switch (v.verdict) {
      case 'pass':
        return numbersText(v.numbers);
      case 'fail':
        return [h('strong', { text: v.explanation || 'failed' }), h('br'), numbersText(v.numbers)];
      case 'hold':
        return `waiting: ${holdText(v.reason)}`;
      case 'would_fail':
        return [h('strong', { text: `observe mode, would roll back: ${v.explanation || 'failed'}` }), h('br'), numbersText(v.numbers)];
      case 'would_hold':
        return `observe mode, would wait: ${holdText(v.reason)}`;
      case 'skipped':
        return `skipped: ${words(v.reason)}`;
      default:
        return '–';
    }
  }

  function holdText(r) {
    if (!r || typeof r !== 'object') return words(r);
    switch (r.reason) {
      case 'insufficient_requests': return `${r.have} of ${r.need} requests on the new version`;
      case 'insufficient_scores': return `scores: ${r.new} new, ${r.baseline} baseline, ${r.need} needed on each side`;
      case 'converging': return `${r.pending} node(s) still switching after ${duration(r.waited_ms)}`;
      case 'missing_heartbeats': return `${r.missing} node(s) missing, ${r.allowed} tolerated`;
      default: return words(r.reason);
    }
  }

  function numbersText(n) {
    if (!n || typeof n !== 'object') return '–';
    const listed = (nodes) => (nodes && nodes.length ? ` (${nodes.join(', ')})` : '');
    switch (n.kind) {
      case 'nack':
        return `${n.nacked} node(s) NACKed${listed(n.nodes)}${n.codes && n.codes.length ? `; issues: ${n.codes.join(', ')}` : ''}`;
      case 'restarts':
        return `${n.restarted} node(s) restarted${listed(n.nodes)}, worst ${n.worst}, allowed ${n.allowed_per_node} per node`;
      case 'rate': {
        const l = n.limits || {};
        return `new ${pct(n.new_rate, 3)} (${n.new_events} of ${n.new_requests}) vs baseline ${pct(n.baseline_rate, 3)} (${n.baseline_events} of ${n.baseline_requests})` +
          `; z ${fixed(n.z, 2)}; new rate lower bound ${pct(n.new_rate_lower, 3)}; fails above baseline by ${pct(l.abs_margin, 2)} and ${pct(l.rel_margin, 0)} at z ≥ ${fixed(l.min_z, 1)}`;
      }
      case 'shift': {
        const ks = n.ks || {};
        const mw = n.mann_whitney;
        const l = n.limits || {};
        return `KS D ${fixed(ks.d, 3)}, p ${fixed(ks.p_value, 4)} (at score ${ks.at_bucket === 0 ? 'unscored' : ks.at_bucket}: ${pct(ks.cdf_new, 1)} vs ${pct(ks.cdf_baseline, 1)}); ` +
          `n ${ks.n_new} new vs ${ks.n_baseline} baseline` +
          (mw ? `; Mann–Whitney AUC ${fixed(mw.auc, 3)} (z ${fixed(mw.z, 2)}, p ${fixed(mw.p_value, 4)})` : '') +
          `; unscored ${pct(n.unscored_new, 1)} vs ${pct(n.unscored_baseline, 1)}; fails at D ≥ ${fixed(l.min_d, 2)} with p < ${l.alpha}`;
      }
      case 'heartbeat':
        return `${n.missing} missing (${n.allowed} tolerated), ${n.timed_out} timed out, longest ${duration(n.longest_ms)}${listed(n.nodes)}`;
      case 'convergence':
        return `${n.pending} pending after ${duration(n.waited_ms)}${listed(n.nodes)}`;
      case 'deaths': {
        const t = n.test;
        const l = n.limits || {};
        return `${n.new_deaths} death(s) on the new version` + (t
          ? `: ${fixed(t.new_per_node_hour, 2)} per node-hour vs ${fixed(t.previous_per_node_hour, 2)} on the previous (${t.previous_deaths} deaths); ratio ${t.rate_ratio === null || t.rate_ratio === undefined ? 'unbounded' : fixed(t.rate_ratio, 2)}, p ${fixed(t.p_value, 4)}`
          : ', no exposure to compare yet') + `; fails at p < ${l.alpha} with ≥ ${l.min_deaths} deaths and ratio ≥ ${l.min_ratio}`;
      }
      default:
        return JSON.stringify(n);
    }
  }

  function timelineItem(e, r) {
    const rel = num(e.at_ms) !== null && num(r.started_at_ms) !== null ? `+${duration(Math.max(0, e.at_ms - r.started_at_ms))}` : '';
    const kind = /gate_failed|mark_bad|rolled_back|rollback/.test(e.action) ? 'bad' : /succeeded|passed/.test(e.action) ? 'ok' : '';
    return h('li', { class: `event ${kind}`, 'data-action': e.action },
      h('span', { class: 'when', text: `${clock(e.at_ms)} ${rel}` }),
      ' ', h('code', { class: 'action', text: e.action }),
      ' by ', h('span', { class: 'who', text: e.who }),
      e.reason ? [': ', h('span', { class: 'reason', text: e.reason })] : null);
  }

  function artifactLabel(a) {
    return `v${a.version} · ${short(a.digest)} · ${a.features} features${a.bad ? ' · BAD' : ''}`;
  }

  function renderArtifacts() {
    const cs = state.contracts;
    renderInto($('contracts-summary'), cs, (list) => [
      `Checked against ${list.length} consumer contract${list.length === 1 ? '' : 's'}: `,
      list.map((c, i) => [i ? ', ' : '', h('strong', { text: c.consumer }), ` (≤ ${c.max_features} features, ≤ ${bytes(c.max_bytes)}${c.known_names ? `, ${c.known_names.length} known names` : ''})`]),
    ]);
    const rows = state.artifacts.map((a) => ({ a, check: state.checks.get(a.digest) || null }));
    renderInto($('artifact-table').tBodies[0], rows, (rs) =>
      rs.length
        ? rs.map(({ a, check }) => h('tr', { 'data-digest': a.digest, class: a.bad ? 'bad-row' : '' },
          h('th', { scope: 'row', 'data-label': 'Version', text: `v${a.version}` }),
          h('td', { 'data-label': 'Digest' }, digestEl(a.digest)),
          h('td', { 'data-label': 'Features', class: 'num', text: `${a.features} · ${bytes(a.size)}` }),
          h('td', { 'data-label': 'Provenance' }, h('span', { text: a.source }), h('br'), h('span', { class: 'hint', text: `created ${a.created_at}, signed by ${a.signer || '–'}` })),
          h('td', { 'data-label': 'Published', text: `${utc(a.published_at_ms)} by ${a.published_by}` }),
          h('td', { 'data-label': 'Contracts', class: 'checks' }, checkCell(check)),
          h('td', { 'data-label': 'Status' }, a.bad
            ? [badge('marked bad', 'bad'), ' ', h('span', { class: 'reason', text: a.bad.reason }), a.bad.rollout ? ` (rollout #${a.bad.rollout})` : '']
            : badge('ok', 'ok'))))
        : h('tr', {}, h('td', { colspan: 7, class: 'empty', text: 'No artifact published yet.' })));

    const options = state.artifacts.map((a) => ({ d: a.digest, label: artifactLabel(a), bad: Boolean(a.bad) }));
    fillSelect($('diff-old'), options, 1);
    fillSelect($('diff-new'), options, 0);
    fillSelect($('start-digest'), options.filter((o) => !o.bad), 0);
  }

  function checkCell(check) {
    if (!check) return h('span', { class: 'hint', text: 'checking…' });
    if (check.error) return h('span', { class: 'hint', text: `cannot check: ${check.error}` });
    const list = (check.result && check.result.checks) || [];
    return h('ul', { class: 'check-list' }, list.map((c) => h('li', {},
      badge(c.passes ? 'passes' : 'fails', c.passes ? 'ok' : 'bad'), ' ', h('span', { text: c.consumer }),
      c.passes ? null : ` (${c.issues.map((i) => i.code).join(', ')}${c.more ? ` and ${c.more} more` : ''})`)));
  }

  /** Refills a select's options only when the list changed, keeping the operator's choice. */
  function fillSelect(sel, options, defaultIndex) {
    const chosen = sel.value;
    renderInto(sel, options, (os) => {
      const keep = os.some((o) => o.d === chosen) ? chosen : (os[defaultIndex] || os[0] || {}).d;
      return os.length
        ? os.map((o) => h('option', { value: o.d, selected: o.d === keep, text: o.label }))
        : h('option', { value: '', text: 'no artifact' });
    });
  }

  const auditRows = new Map();

  function auditRow(e) {
    return h('tr', { 'data-seq': e.seq, 'data-action': e.action },
      h('td', { 'data-label': '#', class: 'num', text: e.seq }),
      h('td', { 'data-label': 'When', class: 'when', text: utc(e.at_ms) }),
      h('td', { 'data-label': 'Who', text: e.who }),
      h('td', { 'data-label': 'Action' }, h('code', { class: 'action', text: e.action })),
      h('td', { 'data-label': 'Subject' }, h('code', { class: 'subject', text: e.subject })),
      h('td', { 'data-label': 'Reason' },
        e.reason ? h('p', { class: 'reason', text: e.reason }) : null,
        e.detail !== undefined && e.detail !== null
          ? h('details', {}, h('summary', { text: 'details' }), h('pre', { text: JSON.stringify(e.detail, null, 2) }))
          : null));
  }

  function renderAudit() {
    const filter = $('audit-filter').value.trim().toLowerCase();
    const rows = [];
    for (let i = state.audit.length - 1; i >= 0 && rows.length < AUDIT_ROWS_SHOWN; i -= 1) {
      const e = state.audit[i];
      if (filter) {
        const hay = `${e.action} ${e.who} ${e.subject} ${e.reason || ''}`.toLowerCase();
        if (!hay.includes(filter)) continue;
      }
      rows.push(e);
    }
    // Rows are built once per entry and moved, so an opened <details> stays open.
    const seen = new Set(state.audit.map((e) => e.seq));
    for (const seq of [...auditRows.keys()]) if (!seen.has(seq)) auditRows.delete(seq);
    renderInto($('audit-table').tBodies[0], { seqs: rows.map((e) => e.seq) }, () =>
      rows.length
        ? rows.map((e) => {
          if (!auditRows.has(e.seq)) auditRows.set(e.seq, auditRow(e));
          return auditRows.get(e.seq);
        })
        : h('tr', {}, h('td', { colspan: 6, class: 'empty', text: filter ? 'No entry matches.' : 'The audit log is empty.' })));
    $('audit-summary').textContent = state.audit.length
      ? `${state.audit.length} newest entries loaded (up to ${AUDIT_KEPT}); ${rows.length} shown.`
      : '';
  }

  // === writes ===

  function showResult(el, ok, text) {
    el.classList.toggle('error', !ok);
    el.classList.toggle('success', ok);
    el.textContent = text;
  }

  function refusal(e) {
    if (!(e instanceof ApiFailure)) return `Failed: ${e && e.message ? e.message : e}`;
    let hint = '';
    if (e.status === 401) hint = token() ? ' The token is not known to the control plane.' : ' Enter the operator token above first.';
    if (e.status === 403) hint = ' This token\'s role may not do this.';
    const issues = e.body && Array.isArray(e.body.issues) ? ` Issues: ${e.body.issues.map((i) => i.code).join(', ')}.` : '';
    return `Refused (${e.status} ${e.code}): ${e.body && e.body.message ? e.body.message : ''}.${issues}${hint}`;
  }

  async function command(cmd) {
    const r = selectedRollout();
    const out = $('command-result');
    if (!r) return;
    const reason = $('cmd-reason').value.trim();
    const body = {};
    if (reason) body.reason = reason;
    if (cmd === 'rollback' && $('cmd-mark-bad').checked) body.mark_bad = true;
    showResult(out, true, `Sending ${cmd} to rollout #${r.id}…`);
    try {
      const v = await api('POST', `/v1/rollouts/${Number(r.id)}/${cmd}`, body, true);
      showResult(out, true, `${cmd}: rollout #${v.id} is now ${words(v.phase)}.`);
      pollSoon();
    } catch (e) {
      showResult(out, false, refusal(e));
    }
  }

  async function startRollout(ev) {
    ev.preventDefault();
    const out = $('start-result');
    const digest = $('start-digest').value;
    if (!DIGEST_RE.test(digest)) {
      showResult(out, false, 'Pick an artifact first.');
      return;
    }
    const body = { digest, break_glass: $('start-break-glass').checked };
    const reason = $('start-reason').value.trim();
    if (reason) body.reason = reason;
    const bake = $('start-bake').value.trim();
    if (bake) body.bake_ms = Math.round(Number(bake) * 1000);
    showResult(out, true, 'Starting…');
    try {
      const v = await api('POST', '/v1/rollouts', body, true);
      if (isPending(v)) {
        showResult(out, true, pendingText(v));
        return;
      }
      // The newest rollout is shown unless the operator picked another: this one is newest.
      state.selected = null;
      showResult(out, true, `Rollout #${v.id} started: ${version(v.target)}, ${v.waves.length} wave(s).`);
      pollSoon();
    } catch (e) {
      showResult(out, false, refusal(e));
    }
  }

  // A fleet-wide kill switch and a break-glass start answer 202 with an approval: they take
  // effect once a second admin grants it.
  function isPending(v) {
    return v !== null && typeof v === 'object' && typeof v.requested_by === 'string' && typeof v.id === 'number';
  }

  function pendingText(a) {
    return `Waiting for a second admin: approval #${a.id} (${a.action}, asked by ${a.requested_by}). ` +
      `Another admin grants it: rampart approval grant ${a.id}, or POST /v1/approvals/${a.id}.`;
  }

  async function setSwitch(ev) {
    ev.preventDefault();
    const out = $('ks-result');
    const node = $('ks-node').value;
    const choice = $('ks-state').value;
    const reason = $('ks-reason').value.trim();
    if (choice === 'clear' && !node) {
      showResult(out, false, 'Clearing applies to one node: pick a node.');
      return;
    }
    const body = { module: 'bot', enabled: choice !== 'off', clear: choice === 'clear', reason };
    if (node) body.node = node;
    try {
      const v = await api('PUT', '/v1/killswitches', body, true);
      if (isPending(v)) {
        showResult(out, true, pendingText(v));
        return;
      }
      showResult(out, true, `Bot module ${choice === 'clear' ? 'follows the fleet again' : choice} ${node ? `on ${node}` : 'fleet-wide'}.`);
      pollSoon();
    } catch (e) {
      showResult(out, false, refusal(e));
    }
  }

  async function showDiff(ev) {
    ev.preventDefault();
    const oldD = $('diff-old').value;
    const newD = $('diff-new').value;
    const out = $('diff-body');
    if (!DIGEST_RE.test(oldD) || !DIGEST_RE.test(newD)) {
      out.replaceChildren(h('p', { class: 'result error', text: 'Pick two artifacts.' }));
      return;
    }
    try {
      const d = await get(`/v1/artifacts/${newD}/diff?against=${oldD}`);
      out.replaceChildren(...diffView(d));
    } catch (e) {
      out.replaceChildren(h('p', { class: 'result error', text: refusal(e) }));
    }
  }

  function diffView(d) {
    const names = (title, list, fmt) => h('div', { class: 'diff-part' },
      h('h4', { text: `${title} (${list.length})` }),
      list.length
        ? h('ul', { class: 'names' }, list.slice(0, DIFF_NAMES_SHOWN).map((x) => h('li', {}, fmt(x))),
          list.length > DIFF_NAMES_SHOWN ? h('li', { class: 'hint', text: `and ${list.length - DIFF_NAMES_SHOWN} more` }) : null)
        : h('p', { class: 'hint', text: 'none' }));
    return [
      h('p', { class: 'summary' },
        h('strong', { text: `v${d.old_version} → v${d.new_version}` }),
        `: ${d.old_count} → ${d.new_count} features (×${fixed(d.count_ratio, 2)}), name churn ${pct(d.name_churn, 1)}`,
        d.bias ? `, bias ${d.bias[0]} → ${d.bias[1]}` : ', bias unchanged'),
      h('div', { class: 'diff-parts' },
        names('Added', d.added, (f) => [h('code', { text: f.name }), ` ${f.type} · ${f.weight}`]),
        names('Removed', d.removed, (f) => [h('code', { text: f.name }), ` ${f.type} · ${f.weight}`]),
        names('Changed', d.changed, (c) => [h('code', { text: c.name }),
          ` ${c.old_type === c.new_type ? c.new_type : `${c.old_type} → ${c.new_type}`} · ${c.old_weight} → ${c.new_weight}`])),
    ];
  }

  // === the token ===

  function showTokenState() {
    const has = Boolean(token());
    $('token-state').textContent = has
      ? 'A token is set for this tab: writes are sent with it.'
      : 'No token: you can look, and writes will be refused (401).';
    $('token-panel').classList.toggle('has-token', has);
  }

  function saveToken(ev) {
    ev.preventDefault();
    const t = $('token').value.trim();
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      $('token-state').textContent = 'This browser refuses session storage: the token cannot be kept.';
      return;
    }
    $('token').value = '';
    showTokenState();
  }

  function forgetToken() {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // Nothing stored, nothing to forget.
    }
    $('token').value = '';
    showTokenState();
  }

  // === start ===

  function start() {
    $('token-form').addEventListener('submit', saveToken);
    $('token-forget').addEventListener('click', forgetToken);
    $('start-form').addEventListener('submit', startRollout);
    $('killswitch-form').addEventListener('submit', setSwitch);
    $('diff-form').addEventListener('submit', showDiff);
    $('command-form').addEventListener('submit', (ev) => ev.preventDefault());
    for (const b of document.querySelectorAll('#command-form [data-command]')) {
      b.addEventListener('click', () => command(b.getAttribute('data-command')));
    }
    $('audit-filter').addEventListener('input', renderAudit);
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) pollSoon();
    });
    showTokenState();
    poll();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
