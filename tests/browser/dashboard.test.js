// The dashboard in a real browser, over the real stack: Debian's chromium driven by
// playwright-core (which never downloads a browser of its own) against `rampart up` (a
// control plane with --auto-rollout, real `rampart edge` processes with their agents in three
// PoPs, one canary, the generator and traffic).
//
// It opens the dashboard, sees the real nodes in their PoPs with the canary marked and the
// generator's first version rolled out, publishes a file the edges reject (signed with a key
// only the control plane trusts) and watches the rollout halt at the canary with its NACK and
// roll back, checks the gate numbers and the audit entries, exercises the buttons with and
// without the operator token, checks that hostile text stays text, walks the page with the
// keyboard, checks the layout at 1280 and 390 px wide, saves screenshots (their paths are
// printed), and stops `rampart up` by its PID, checking that every process it started is gone.
//
//   node dashboard.test.js            (after `cargo build --bin rampart` and `npm ci`)
//
// Environment: RAMPART_BIN (default $CARGO_TARGET_DIR/debug/rampart, else ../../target),
// CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (default ./screenshots).
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const stackLib = require('./stack');

/** The whole test, start to finish. */
const OVERALL_TIMEOUT_MS = 200_000;
/** One wait for the page to show something. */
const WAIT_MS = 30_000;
/** Tab presses to walk the page with the keyboard. */
const MAX_TABS = 120;
const WIDE = { width: 1280, height: 900 };
const NARROW = { width: 390, height: 844 };
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
];
const XSS = '<img src=x onerror="window.__xss=1">restore v1 <b>now</b>';
/** `rampart up`: six edges over fra (canary fra-1), iad and sin; requests a second. */
const EDGES = 6;
const POPS = { fra: 'eu', iad: 'us', sin: 'ap' };
const RATE = 200;
/** The operator's name in the tokens file `rampart up` writes. */
const OPERATOR = 'operator';

let passed = 0;
let failed = 0;
const shots = [];

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  passed += 1;
  console.log(`  ok ${passed} - ${what}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` (async) until it returns a truthy value; fails after WAIT_MS. */
async function until(what, fn) {
  const end = Date.now() + WAIT_MS;
  let last = null;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw new Error(`waited ${WAIT_MS} ms for ${what}${last ? ` (${last.message})` : ''}`);
}

async function main() {
  const started = Date.now();
  const shotDir = process.env.SCREENSHOT_DIR || path.join(__dirname, 'screenshots');
  fs.mkdirSync(shotDir, { recursive: true });
  let stack = null;
  let context = null;
  const userData = fs.mkdtempSync(path.join(os.tmpdir(), 'rampart-chromium-'));
  const cleanup = async () => {
    if (context) await context.close().catch(() => {});
    context = null;
    if (stack) {
      const result = await stack.dispose().catch((e) => ({ error: e.message }));
      for (const p of result.leftovers || []) console.error(`  killed leftover ${p.pid}: ${p.cmd}`);
    }
    fs.rmSync(userData, { recursive: true, force: true });
  };
  const deadline = setTimeout(async () => {
    console.error(`browser test: over its ${OVERALL_TIMEOUT_MS / 1000} s budget, stopping`);
    if (stack) console.error(`rampart up said, last:\n${stack.output().split('\n').slice(-30).join('\n')}`);
    await Promise.race([cleanup(), sleep(60_000)]);
    console.log(`browser: ${passed} passed, ${failed + 1} failed`);
    process.exit(1);
  }, OVERALL_TIMEOUT_MS);

  try {
    // --- the stack: the real `rampart up` ---
    stack = await stackLib.start({ edges: EDGES, pops: Object.keys(POPS).length, rate: RATE });
    const st = stack.state;
    console.log(`rampart up (pid ${stack.pid}): dashboard ${st.dashboard}, work dir ${st.dir}`);
    check(st.pid === stack.pid, 'up.json names the rampart up process');
    check(st.edges.length === EDGES && st.children.length === EDGES + 2,
      `up.json lists ${EDGES} edges and ${EDGES + 2} children (control, edges, generator)`);
    const loopback = (hostPort) => /^127\.0\.0\.1:\d+$/.test(hostPort);
    check(loopback(new URL(st.control).host) && loopback(new URL(st.origin).host) &&
      st.edges.every((e) => loopback(e.proxy) && loopback(e.admin)), 'everything listens on 127.0.0.1');
    check(st.children.every((c) => stackLib.alive(c.pid)), 'every child process runs');
    const canaryEdge = st.edges.find((e) => e.canary);
    check(canaryEdge && canaryEdge.id === 'fra-1' && st.edges.filter((e) => e.canary).length === 1, 'fra-1 is the one canary');

    context = await chromium.launchPersistentContext(userData, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: WIDE,
      // The stack's control plane serves a certificate from its own CA, which this throwaway
      // browser profile does not hold; the Node side checks the certificate against that CA.
      ignoreHTTPSErrors: true,
    });
    const page = context.pages()[0] || (await context.newPage());
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    // Chromium logs every non-2xx answer; the 401s and the one 403 (the admin who asked
    // granting their own request) this test provokes are expected.
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 40[13]/.test(m.text())) pageErrors.push(m.text());
    });

    const text = (sel) => page.locator(sel).first().innerText();
    const waitFor = async (what, fn, arg) => {
      try {
        await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 100 });
      } catch (e) {
        throw new Error(`waited ${WAIT_MS} ms for ${what}: ${e.message.split('\n')[0]}`);
      }
      check(true, what);
    };
    const waitText = (what, sel, needle) => waitFor(what, ([s, n]) => {
      const el = document.querySelector(s);
      return Boolean(el && el.textContent.includes(n));
    }, [sel, needle]);
    const allServe = (what, v) => waitFor(what, (want) => {
      const nodes = [...document.querySelectorAll('#fleet-body li.node')];
      return nodes.length > 0 && nodes.every((n) => n.querySelector('dd').textContent.startsWith(`v${want} `));
    }, v);
    // The whole page, or one section of it (easier to read).
    const shoot = async (name, selector, fullPage = true) => {
      const file = path.join(shotDir, `${name}.png`);
      if (selector) await page.locator(selector).screenshot({ path: file });
      else {
        await page.evaluate(() => window.scrollTo(0, 0));
        await page.screenshot({ path: file, fullPage });
      }
      shots.push(file);
    };
    const setToken = async (value) => {
      await page.fill('#token', value);
      await page.press('#token', 'Enter');
      await waitText('the token is taken', '#token-state', 'A token is set');
    };
    const forgetToken = async () => {
      await page.click('#token-forget');
      await waitText('the token is forgotten', '#token-state', 'No token');
    };
    const rolloutOf = (digest) => until(`a rollout of ${digest.slice(0, 15)}…`, async () => {
      const list = await stack.call('GET', '/v1/rollouts?limit=20');
      return list.rollouts.find((r) => r.target.digest === digest);
    });

    // --- the page itself ---
    const resp = await page.goto(`${stack.url}/`);
    check(page.url() === st.dashboard, `/ redirects to the dashboard at ${st.dashboard}`);
    const headers = resp.headers();
    check(headers['content-type'] === 'text/html; charset=utf-8', `served as text/html (${headers['content-type']})`);
    check(/script-src 'self'/.test(headers['content-security-policy'] || ''), 'a Content-Security-Policy allows only its own script');
    check(headers['x-content-type-options'] === 'nosniff', 'nosniff');

    // --- the fleet: the real edges, registered by their agents ---
    await waitFor('all six edges are shown', (n) => document.querySelectorAll('#fleet-body li.node').length === n, EDGES);
    const shown = await page.locator('#fleet-body li.node').evaluateAll((els) => els.map((e) => e.getAttribute('data-node')).sort());
    check(JSON.stringify(shown) === JSON.stringify(st.edges.map((e) => e.id).sort()), `the nodes are the edges rampart up started (${shown.join(', ')})`);
    await waitFor('every node is healthy', (n) => document.querySelectorAll('#fleet-body li.node[data-health="healthy"]').length === n, EDGES);
    for (const [pop, region] of Object.entries(POPS)) {
      const section = page.locator(`#fleet-body section.pop[aria-label="PoP ${pop} in region ${region}"]`);
      check((await section.locator('li.node').count()) === 2, `PoP ${pop} (region ${region}) holds its two edges`);
    }
    check((await page.locator('#fleet-body section.pop').count()) === 3, 'nodes are grouped into their three PoPs');
    check((await text('#fleet-body li.node[data-node="fra-1"]')).includes('canary'), 'the canary is marked');
    check((await page.locator('#fleet-body li.node.canary').count()) === 1, 'no other node is marked canary');
    check((await text('#fleet-body li.node[data-node="iad-2"]')).includes('0.1.0'), 'a node shows the software the real edge reports');

    // --- v1: the generator published it, the auto-rollout takes it through every wave ---
    await waitText('the generator\'s v1 is listed', '#artifact-table', 'v1');
    await waitFor('v1 passes the edges\' contract', () => {
      const row = document.querySelector('#artifact-table tbody tr:last-child');
      return Boolean(row && row.textContent.includes('passes') && row.textContent.includes('by generator'));
    });
    await waitText('the auto-rollout of v1 is shown', '#rollout-head', 'auto-rollout of version 1');
    await waitText('v1 goes through every wave', '#rollout-head', 'succeeded');
    await allServe('every node serves v1', 1);
    const v1 = (await stack.call('GET', '/v1/artifacts?limit=1')).artifacts[0];
    check(v1.version === 1 && v1.published_by === 'generator', 'v1 came from the generator');
    const doc = await stack.document(v1.digest);
    await shoot('1280-fleet-on-v1', '#fleet');

    // --- v2: signed with a key only the control plane trusts; the canary NACKs it ---
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const publishedAt = Date.now();
    const v2 = await stack.publish({
      ...doc,
      version: 2,
      created_at: now,
      provenance: { ...doc.provenance, generator: 'browser test: a key the edges do not trust yet' },
    }, stack.keys.rotated);
    check(v2.version === 2, 'the control plane accepts v2 (it trusts the rotated key)');
    const bad = await rolloutOf(v2.digest);
    console.log(`rollout #${bad.id} of the file the edges reject`);
    await waitFor('the auto-rollout of v2 is shown', (id) => document.querySelector('#rollout-head')?.textContent.includes(`Rollout #${id}`), bad.id);
    await waitText('it rolls back by itself', '#rollout-head', 'rolled back');
    check((await text('#rollout-waves li[data-wave="0"]')).includes('1 nacked'), 'the canary wave shows its NACK');
    check((await text('#rollout-waves li[data-wave="0"]')).includes('rolled back'), 'the canary wave is rolled back');
    const later = await page.locator('#rollout-waves li.wave').allInnerTexts();
    check(later.length === 3 && later.slice(1).every((t) => t.includes('pending')), 'no wave after the canary started');
    const nackRow = await text('#rollout-gates tr[data-gate="nack"]');
    check(nackRow.includes('fail') && nackRow.includes('fra-1') && nackRow.includes('unknown_key'), `the NACK gate fails with its numbers (${nackRow.replace(/\s+/g, ' ')})`);
    check((await text('#rollout-head')).includes('wave 0'), 'the outcome names the wave');
    await waitText('the timeline shows the failed gate', '#rollout-timeline', 'rollout.gate_failed');
    await waitText('the timeline shows the rollback', '#rollout-timeline', 'rollout.rolled_back');
    await waitFor('the audit log shows gate_failed, mark_bad and rolled_back', () => {
      const t = document.querySelector('#audit-table')?.textContent || '';
      return t.includes('rollout.gate_failed') && t.includes('artifact.mark_bad') && t.includes('rollout.rolled_back');
    });
    await waitText('the artifact is marked bad', '#artifact-table', 'marked bad');
    await waitFor('v2 is not offered for a new rollout', (d) => ![...document.querySelectorAll('#start-digest option')].some((o) => o.value === d), v2.digest);
    await waitFor('the canary shows its last rejection', () => {
      const t = document.querySelector('#fleet-body li.node[data-node="fra-1"] dd.rejection')?.textContent || '';
      return t.includes('invalid') && t.includes('unknown_key');
    });
    await allServe('every node still serves v1', 1);
    // The real processes agree with the page.
    const canary = await stack.admin('fra-1', '/status');
    const issues = ((canary.last_rejection && canary.last_rejection.issues) || []).map((i) => i.code);
    const rejection = canary.last_rejection || {};
    check(rejection.origin === 'control' && rejection.code === 'invalid' && rejection.at_ms >= publishedAt &&
      issues.includes('unknown_key') && canary.active.version === 1,
      `the canary edge refused the file from the control plane (${rejection.code}: ${issues.join(', ')}) and serves v1 (its /status)`);
    for (const e of st.edges.filter((x) => !x.canary)) {
      const s = await stack.admin(e.id, '/status');
      check(s.last_rejection === null && s.active.version === 1 && s.control.verdict.version === 1,
        `${e.id} was never told to serve v2 (its /status)`);
    }
    await shoot('1280-rolled-back');
    await shoot('1280-rollouts-rolled-back', '#rollouts');
    await shoot('1280-fleet-after-rejection', '#fleet');

    // --- v3: a good file; the auto-rollout bakes it at the canary; pause, then roll back ---
    const features = doc.features.map((f, i) => (i === 0 ? { ...f, weight: Number((f.weight + 0.001).toFixed(6)) } : f));
    const v3 = await stack.publish({
      ...doc,
      version: 3,
      created_at: now,
      provenance: { ...doc.provenance, generator: 'browser test: one weight nudged' },
      features,
    }, stack.keys.signing);
    const good = await rolloutOf(v3.digest);
    await waitFor('the auto-rollout of v3 is shown', (id) => document.querySelector('#rollout-head')?.textContent.includes(`Rollout #${id}`), good.id);
    await waitText('v3 bakes at the canary', '#rollout-head', 'baking');
    await page.click('#command-form button[data-command="pause"]');
    await waitText('pause without the token is refused visibly (401)', '#command-result', '401');
    check(await page.locator('#command-result.error').isVisible(), 'the refusal is shown as an error');
    check((await stack.call('GET', `/v1/rollouts/${good.id}`)).phase === 'baking', 'and the rollout kept baking');
    await setToken(stack.tokens.admin);
    check(await page.evaluate(() => Object.keys(sessionStorage).length === 1), 'the token lives in sessionStorage');
    check((await page.inputValue('#token')) === '', 'the token field is emptied after use');
    await page.fill('#cmd-reason', 'look at the canary first');
    await page.click('#command-form button[data-command="pause"]');
    await waitText('pause with the token', '#rollout-head', 'paused');
    await waitFor('resume is offered once paused', () => !document.querySelector('#command-form button[data-command="resume"]').disabled);
    // Paused stops progress, not the gates: they keep judging the canary against fra-2.
    await waitFor('the score-shift gate passes with its statistic', () => {
      const t = document.querySelector('#rollout-gates tr[data-gate="score_shift"]')?.textContent || '';
      return t.includes('pass') && t.includes('KS D') && t.includes('Mann–Whitney AUC');
    });
    const rate = await text('#rollout-gates tr[data-gate="errors_5xx"]');
    check(/new 0\.000% \(0 of [1-9]\d*\) vs baseline 0\.000% \(0 of [1-9]\d*\)/.test(rate), `5xx against the baseline is shown (${rate.replace(/\s+/g, ' ')})`);
    check((await text('#rollout-gates tr[data-gate="errors_5xx"] td.num')) === '0.000%', 'the 5xx gate shows its measured rate');
    check(/^D = 0\.\d{3}$/.test(await text('#rollout-gates tr[data-gate="score_shift"] td.num')), 'the shift gate shows its KS distance');
    check((await text('#rollout-report')).includes('same PoPs'), 'the baseline is named (the canary\'s PoP-mate)');
    await shoot('1280-rollouts-paused', '#rollouts');
    await page.fill('#cmd-reason', 'not today');
    await page.click('#command-form button[data-command="rollback"]');
    await waitText('the operator\'s rollback completes', '#rollout-head', `rolled back by ${OPERATOR}`);
    await waitFor('the audit log shows both commands by the operator', (who) => {
      const rows = [...document.querySelectorAll('#audit-table tbody tr[data-action="rollout.command"]')];
      return rows.length >= 2 && rows.every((r) => r.textContent.includes(who));
    }, OPERATOR);
    await allServe('every node is back on v1', 1);

    // --- v3 again, from the start form, with a hostile reason: refused without the token ---
    await forgetToken();
    await page.click('#start-panel > summary');
    await waitFor('v3 is offered', (d) => [...document.querySelectorAll('#start-digest option')].some((o) => o.value === d), v3.digest);
    await page.selectOption('#start-digest', v3.digest);
    await page.fill('#start-reason', XSS);
    await page.fill('#start-bake', '0.3');
    await page.click('#start-submit');
    await waitText('a start without the token is refused visibly (401)', '#start-result', '401');
    check(await page.locator('#start-result.error').isVisible(), 'the refusal is shown as an error');
    check((await stack.call('GET', '/v1/rollouts?limit=1')).rollouts[0].id === good.id, 'the refused start changed nothing');
    await setToken(stack.tokens.admin);
    await page.click('#start-submit');
    await waitText('with the token the rollout starts', '#start-result', 'started');
    await waitFor('the new rollout is shown', (id) => {
      const m = /Rollout #(\d+)/.exec(document.querySelector('#rollout-head')?.textContent || '');
      return m && Number(m[1]) > id;
    }, good.id);
    check((await text('#rollout-head')).includes(XSS), 'a hostile reason is shown as text');
    check(await page.evaluate(() => window.__xss === undefined && !document.querySelector('#main img, #main b')), 'and never runs or becomes markup');
    await waitText('v3 goes through every wave', '#rollout-head', 'succeeded');
    await allServe('every node serves v3', 3);
    const edgesOnV3 = await Promise.all(st.edges.map((e) => stack.admin(e.id, '/status')));
    check(edgesOnV3.every((s) => s.active.version === 3 && s.active.digest === v3.digest), 'every real edge serves v3 (their /status)');

    // --- artifacts: a diff, an audit entry's numbers, and the kill switch ---
    await page.selectOption('#diff-old', v1.digest);
    await page.selectOption('#diff-new', v3.digest);
    await page.click('#diff-submit');
    await waitText('the diff shows v1 → v3', '#diff-body', 'v1 → v3');
    const diff = await text('#diff-body');
    check(diff.includes('(×1.00)') && diff.includes('Added (0)') && diff.includes('Removed (0)') && diff.includes('Changed (1)') &&
      diff.includes(features[0].name), 'the diff lists the one changed weight');
    const failedRow = '#audit-table tbody tr[data-action="rollout.gate_failed"]';
    await page.click(`${failedRow} details > summary`);
    const failedDetail = await text(`${failedRow} details pre`);
    check(failedDetail.includes('"gate": "nack"') && failedDetail.includes('"nacked": 1') && failedDetail.includes('unknown_key'),
      'the audit entry of the failed gate carries its numbers');
    await page.click('#killswitch-panel > summary');
    await page.selectOption('#ks-node', 'iad-2');
    await page.selectOption('#ks-state', 'off');
    await page.fill('#ks-reason', 'drill: <script>window.__xss=2</script>');
    await page.click('#ks-set');
    await waitText('the switch is set', '#ks-result', 'off on iad-2');
    await waitText('iad-2 shows its switch', '#fleet-body li.node[data-node="iad-2"]', 'switched off (node)');
    await until('iad-2\'s agent to report its bot module off', async () => (await stack.call('GET', '/v1/nodes/iad-2')).module_enabled === false);
    check(true, 'iad-2\'s agent reports its bot module off');
    check(await page.evaluate(() => window.__xss === undefined), 'a hostile switch reason stays text');
    const iad2 = await stack.admin('iad-2', '/status');
    check(iad2.module_enabled === false && (iad2.kill_switch_reason || '').includes('drill'), 'the real edge iad-2 turned its bot module off (its /status)');
    check((await stack.admin('iad-1', '/status')).module_enabled === true, 'and iad-1 did not');
    await waitText('the switch is audited', '#audit-table tbody tr:first-child', 'killswitch.set');
    check(await page.locator(`${failedRow} details`).evaluate((d) => d.open), 'an opened audit entry stays open as new entries arrive');

    // --- an edge dies: rampart up records how and starts it again; the page shows the death ---
    const victim = stack.state.edges.find((e) => e.id === 'sin-2');
    process.kill(victim.pid, 'SIGKILL');
    await waitText('sin-2 shows its last death, SIGKILL, found by its next run', '#fleet-body li.node[data-node="sin-2"] dd.death', 'signal 9 (SIGKILL)');
    const sin2 = await stack.admin('sin-2', '/status');
    check(sin2.active && sin2.active.version >= 1, 'the restarted sin-2 answers on its admin address and serves a file (its /status)');

    // --- two admins for a fleet-wide switch: the operator asks, the approver grants ---
    await page.selectOption('#ks-node', '');
    await page.selectOption('#ks-state', 'on');
    await page.fill('#ks-reason', 'drill: two admins');
    await page.click('#ks-set');
    await waitText('a fleet-wide switch waits for a second admin', '#ks-result', 'Waiting for a second admin');
    await waitText('the pending approval is shown', '#approvals', `asked by ${OPERATOR}`);
    await page.click('#approvals button.grant');
    await waitText('the admin who asked cannot grant it (403)', '#approval-result', '403');
    await setToken(stack.tokens.approver);
    await page.click('#approvals button.grant');
    await waitText('the second admin grants it', '#approval-result', 'granted by approver');
    await waitFor('the approval is gone once granted', () => document.querySelectorAll('#approvals .approval').length === 0);
    await waitText('the switch is audited with both names', '#audit-table tbody', `${OPERATOR}+approver`);
    await setToken(stack.tokens.admin);

    // --- keyboard: every control is reachable by Tab ---
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.focus('body');
    const reached = new Set();
    for (let i = 0; i < MAX_TABS; i += 1) {
      await page.keyboard.press('Tab');
      const id = await page.evaluate(() => {
        const a = document.activeElement;
        return a ? a.id || a.getAttribute('data-command') || a.getAttribute('href') || a.tagName : '';
      });
      reached.add(id);
    }
    // The <details> of the forms are open from the steps above; the rollout commands are
    // disabled now that it is done, so its reason field stands for them.
    for (const want of ['#main', '#fleet', 'token', 'token-save', 'ks-reason', 'start-submit', 'cmd-reason', 'diff-old', 'audit-filter']) {
      check(reached.has(want), `Tab reaches ${want}`);
    }
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
      .filter((el) => !(el.labels && el.labels.length)).map((el) => el.id || el.name));
    check(unlabelled.length === 0, `every control has a label (${unlabelled.join(', ') || 'all'})`);

    // --- layout at 1280 and 390 px ---
    for (const [name, size] of [['1280', WIDE], ['390', NARROW]]) {
      await page.setViewportSize(size);
      await page.waitForTimeout(300);
      const over = await page.evaluate(() => {
        const width = document.documentElement.clientWidth;
        const offenders = [...document.querySelectorAll('body *')]
          .filter((el) => {
            const r = el.getBoundingClientRect();
            if (r.width === 0 || r.right <= width + 1) return false;
            // Inside a box that scrolls on its own (a wide table) is fine.
            for (let p = el.parentElement; p; p = p.parentElement) {
              const s = getComputedStyle(p);
              if (s.overflowX === 'auto' || s.overflowX === 'scroll' || s.overflowX === 'hidden') return p.getBoundingClientRect().right > width + 1;
            }
            return true;
          })
          .slice(0, 5)
          .map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}.${el.className}`);
        return { scroll: document.documentElement.scrollWidth, width, offenders };
      });
      check(over.scroll <= over.width && over.offenders.length === 0,
        `no horizontal overflow at ${name} px (page ${over.scroll} px wide${over.offenders.length ? `; too wide: ${over.offenders.join(', ')}` : ''})`);
      const pause = page.locator('#command-form button[data-command="pause"]');
      const box = await pause.boundingBox();
      check(box && box.x >= 0 && box.x + box.width <= size.width, `the command buttons fit at ${name} px`);
      await shoot(`${name}-dashboard`);
      await shoot(`${name}-first-screen`, null, false);
      for (const section of ['fleet', 'rollouts', 'artifacts', 'audit']) await shoot(`${name}-${section}`, `#${section}`);
    }

    check(pageErrors.length === 0, `no script error in the page (${pageErrors.join(' | ') || 'none'})`);
    await context.close();
    context = null;

    // --- stop: SIGINT to rampart up by its PID; every process it started is gone ---
    const stopAt = Date.now();
    const stop = await stack.stop();
    const stopS = ((Date.now() - stopAt) / 1000).toFixed(1);
    check(stop.clean && stop.exit && stop.exit.code === 0, `rampart up stops on SIGINT and exits 0 in ${stopS} s (${JSON.stringify(stop.exit)})`);
    check(/stopped control/.test(stop.output) && /stopped edge-fra-1/.test(stop.output) && /stopped generator/.test(stop.output),
      'it says it stopped the control plane, the edges and the generator');
    check(stop.leftovers.length === 0, `no process it started is left (${stop.leftovers.map((p) => `${p.pid} ${p.cmd}`).join('; ') || 'none'})`);
    check(!stop.stateLeft, 'up.json is removed');
    const refused = await stack.request('/v1/health', { timeout: 2000 }).then(() => false, () => true);
    const edgeRefused = await Promise.all(st.edges.map((e) => fetch(`http://${e.admin}/status`, { signal: AbortSignal.timeout(2000) }).then(() => false, () => true)));
    check(refused && edgeRefused.every(Boolean), 'the control plane and every edge admin port are closed');
    console.log(`took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (e) {
    failed += 1;
    console.error(`not ok - ${e.message}`);
    if (context) {
      const page = context.pages()[0];
      if (page) {
        const file = path.join(shotDir, 'failure.png');
        await page.screenshot({ path: file, fullPage: true }).catch(() => {});
        shots.push(file);
      }
    }
    if (stack) console.error(`rampart up said, last:\n${stack.output().split('\n').slice(-30).join('\n')}`);
  } finally {
    clearTimeout(deadline);
    await cleanup();
  }
  for (const s of shots) console.log(`screenshot: ${s}`);
  console.log(`browser: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
