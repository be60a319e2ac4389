// The dashboard in a real browser: Debian's chromium driven by playwright-core (which never
// downloads a browser of its own). Starts the stack, opens the dashboard, sees the fleet,
// publishes a file the edges reject and watches the rollout halt at the canary and roll
// back, checks the gate numbers and the audit entries, exercises the buttons with and
// without the operator token, checks the layout at 1280 and 390 px wide, and saves
// screenshots (their paths are printed).
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
const { Fleet } = require('./fleet');

/** The whole test, start to finish. */
const OVERALL_TIMEOUT_MS = 240_000;
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

const NODES = [
  { id: 'fra-1', pop: 'fra', region: 'eu', canary: true },
  { id: 'fra-2', pop: 'fra', region: 'eu', canary: false },
  { id: 'ams-1', pop: 'ams', region: 'eu', canary: false },
  { id: 'ams-2', pop: 'ams', region: 'eu', canary: false },
  { id: 'iad-1', pop: 'iad', region: 'us', canary: false },
  { id: 'iad-2', pop: 'iad', region: 'us', canary: false },
];

let passed = 0;
let failed = 0;
const shots = [];

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  passed += 1;
  console.log(`  ok ${passed} - ${what}`);
}

function documents() {
  const base = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'examples', 'features.json'), 'utf8'));
  const good = (version, tweak) => ({
    ...base,
    version,
    created_at: `2025-11-18T11:0${version}:00Z`,
    provenance: { ...base.provenance, source: `catalog:browser-test v${version}` },
    features: base.features.map((f, i) => ({ ...f, weight: i === 0 ? f.weight + tweak : f.weight })),
  });
  // The 18 November shape without tripping the control plane's own checks: the r0 columns
  // came back under other names, so the file is valid and under 200 features, and only the
  // edges (whose extractors do not know the names) refuse it.
  const leaked = {
    ...good(2, 0),
    provenance: { ...base.provenance, source: 'clickhouse:default+r0 (no database filter)' },
    features: [...base.features, ...base.features.map((f) => ({ ...f, name: `r0_${f.name}` }))],
  };
  return { v1: good(1, 0), v2: leaked, v3: good(3, 0.001), catalogue: base.features.map((f) => f.name) };
}

async function main() {
  const started = Date.now();
  const shotDir = process.env.SCREENSHOT_DIR || path.join(__dirname, 'screenshots');
  fs.mkdirSync(shotDir, { recursive: true });
  const docs = documents();
  let stack = null;
  let fleet = null;
  let context = null;
  const userData = fs.mkdtempSync(path.join(os.tmpdir(), 'rampart-chromium-'));
  const cleanup = async () => {
    if (context) await context.close().catch(() => {});
    if (fleet) await fleet.stop().catch(() => {});
    if (stack) await stack.stop().catch(() => {});
    fs.rmSync(userData, { recursive: true, force: true });
  };
  const deadline = setTimeout(async () => {
    console.error(`browser test: over its ${OVERALL_TIMEOUT_MS / 1000} s budget, stopping`);
    await Promise.race([cleanup(), new Promise((r) => setTimeout(r, 10_000))]);
    console.log(`browser: ${passed} passed, ${failed + 1} failed`);
    process.exit(1);
  }, OVERALL_TIMEOUT_MS);

  try {
    // --- the stack ---
    stack = await stackLib.start();
    console.log(`control plane at ${stack.url} (pid ${stack.pid})`);
    fleet = new Fleet(stack, NODES, docs.catalogue);
    await fleet.start();

    context = await chromium.launchPersistentContext(userData, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: WIDE,
    });
    const page = context.pages()[0] || (await context.newPage());
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    // Chromium logs every non-2xx answer; the two 401s this test provokes are expected.
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 401/.test(m.text())) pageErrors.push(m.text());
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
    };
    const forgetToken = () => page.click('#token-forget');

    // --- the page itself ---
    const resp = await page.goto(`${stack.url}/`);
    check(page.url().endsWith('/ui/'), '/ redirects to the dashboard at /ui/');
    const headers = resp.headers();
    check(headers['content-type'] === 'text/html; charset=utf-8', `served as text/html (${headers['content-type']})`);
    check(/script-src 'self'/.test(headers['content-security-policy'] || ''), 'a Content-Security-Policy allows only its own script');
    check(headers['x-content-type-options'] === 'nosniff', 'nosniff');

    // --- the fleet ---
    await waitFor('all six nodes are shown', () => document.querySelectorAll('#fleet-body li.node').length === 6);
    await waitFor('every node is healthy', () => document.querySelectorAll('#fleet-body li.node[data-health="healthy"]').length === 6);
    check((await page.locator('#fleet-body section.pop').count()) === 3, 'nodes are grouped into their three PoPs');
    check((await text('#fleet-body li.node[data-node="fra-1"]')).includes('canary'), 'the canary is marked');
    check(!(await text('#fleet-body li.node[data-node="fra-2"]')).includes('canary'), 'other nodes are not marked canary');
    const eu = await page.locator('#fleet-body section.pop[aria-label*="region eu"]').count();
    check(eu === 2, 'PoPs carry their region');

    // --- v1 through the dashboard's start form: refused without the token, then with it ---
    const v1 = await stack.publish(docs.v1);
    await waitText('the published artifact is listed', '#artifact-table', 'v1');
    await waitFor('v1 passes the edges\' contract', () => {
      const row = document.querySelector('#artifact-table tbody tr');
      return Boolean(row && row.textContent.includes('passes'));
    });
    await page.click('#start-panel > summary');
    await page.selectOption('#start-digest', v1.digest);
    await page.fill('#start-reason', 'first version');
    await page.fill('#start-bake', '0.3');
    await page.click('#start-submit');
    await waitText('a start without the token is refused visibly (401)', '#start-result', '401');
    check(await page.locator('#start-result.error').isVisible(), 'the refusal is shown as an error');
    check((await stack.call('GET', '/v1/rollouts')).rollouts.length === 0, 'the refused start changed nothing');
    await setToken(stack.tokens.admin);
    await waitText('the token is taken', '#token-state', 'A token is set');
    check(await page.evaluate(() => Object.keys(sessionStorage).length === 1), 'the token lives in sessionStorage');
    check((await page.inputValue('#token')) === '', 'the token field is emptied after use');
    await page.click('#start-submit');
    await waitText('with the token the rollout starts', '#start-result', 'started');
    await waitText('v1 reaches every wave', '#rollout-head', 'succeeded');
    await waitFor('every node serves v1', () => [...document.querySelectorAll('#fleet-body li.node')].every((n) => n.textContent.includes('v1 ')));

    // --- v2: the edges refuse it; the canary halts it and it rolls back ---
    const v2 = await stack.publish(docs.v2);
    const bad = await stack.call('POST', '/v1/rollouts', {
      role: 'admin',
      body: { digest: v2.digest, reason: XSS, bake_ms: 60_000 },
    });
    console.log(`rollout #${bad.id} of the file the edges reject`);
    await waitFor('the bad rollout is selected', (id) => document.querySelector('#rollout-head')?.textContent.includes(`Rollout #${id}`), bad.id);
    await waitText('it rolls back by itself', '#rollout-head', 'rolled back');
    check((await text('#rollout-waves li[data-wave="0"]')).includes('1 nacked'), 'the canary wave shows its NACK');
    check((await text('#rollout-waves li[data-wave="0"]')).includes('rolled back'), 'the canary wave is rolled back');
    const later = await page.locator('#rollout-waves li.wave').allInnerTexts();
    check(later.length >= 3 && later.slice(1).every((t) => t.includes('pending')), 'no wave after the canary started');
    const nackRow = await text('#rollout-gates tr[data-gate="nack"]');
    check(nackRow.includes('fail') && nackRow.includes('fra-1') && nackRow.includes('unknown_name'), `the NACK gate fails with its numbers (${nackRow.replace(/\s+/g, ' ')})`);
    check((await text('#rollout-head')).includes('wave 0'), 'the outcome names the wave');
    await waitText('the timeline shows the failed gate', '#rollout-timeline', 'rollout.gate_failed');
    await waitText('the timeline shows the rollback', '#rollout-timeline', 'rollout.rolled_back');
    await waitFor('the audit log shows gate_failed and mark_bad', () => {
      const t = document.querySelector('#audit-table')?.textContent || '';
      return t.includes('rollout.gate_failed') && t.includes('artifact.mark_bad') && t.includes('rollout.rolled_back');
    });
    await waitText('the artifact is marked bad', '#artifact-table', 'marked bad');
    await waitFor('v2 is not offered for a new rollout', (d) => ![...document.querySelectorAll('#start-digest option')].some((o) => o.value === d), v2.digest);
    await waitFor('the canary shows its last rejection', () => {
      const t = document.querySelector('#fleet-body li.node[data-node="fra-1"]')?.textContent || '';
      return t.includes('unknown_name') && t.includes('invalid');
    });
    await waitFor('every node still serves v1', () => [...document.querySelectorAll('#fleet-body li.node')].every((n) => n.textContent.includes('v1 ')));
    check((await text('#rollout-head')).includes(XSS), 'a hostile reason is shown as text');
    check(await page.evaluate(() => window.__xss === undefined && !document.querySelector('#main img, #main b')), 'and never runs or becomes markup');
    await shoot('1280-rolled-back');
    await shoot('1280-rollouts-rolled-back', '#rollouts');
    await shoot('1280-fleet-after-rejection', '#fleet');

    // --- v3 through the form, baking at the canary: gate numbers against the baseline ---
    const v3 = await stack.publish(docs.v3);
    await waitFor('v3 is offered', (d) => [...document.querySelectorAll('#start-digest option')].some((o) => o.value === d), v3.digest);
    await page.selectOption('#start-digest', v3.digest);
    await page.fill('#start-reason', 'v3: one weight nudged');
    await page.fill('#start-bake', '60');
    await page.click('#start-submit');
    await waitText('v3 starts', '#start-result', 'started');
    await waitText('v3 bakes at the canary', '#rollout-head', 'baking');
    await waitFor('the score-shift gate passes with its statistic', () => {
      const t = document.querySelector('#rollout-gates tr[data-gate="score_shift"]')?.textContent || '';
      return t.includes('pass') && t.includes('KS D') && t.includes('Mann–Whitney AUC');
    });
    const rate = await text('#rollout-gates tr[data-gate="errors_5xx"]');
    check(/new 0\.000% \(0 of \d+\) vs baseline 0\.000% \(0 of \d+\)/.test(rate), `5xx against the baseline is shown (${rate.replace(/\s+/g, ' ')})`);
    check((await text('#rollout-gates tr[data-gate="errors_5xx"] td.num')) === '0.000%', 'the 5xx gate shows its measured rate');
    check((await text('#rollout-gates tr[data-gate="score_shift"] td.num')) === 'D = 0.000', 'the shift gate shows its KS distance');
    check((await text('#rollout-report')).includes('same PoPs'), 'the baseline is named');
    await shoot('1280-rollouts-baking', '#rollouts');

    // Pause without the token: refused, visibly; with it: paused; then a rollback.
    await forgetToken();
    await waitText('the token is forgotten', '#token-state', 'No token');
    await page.click('#command-form button[data-command="pause"]');
    await waitText('pause without the token is refused visibly (401)', '#command-result', '401');
    check((await text('#rollout-head')).includes('baking'), 'and the rollout kept baking');
    await setToken(stack.tokens.admin);
    await page.fill('#cmd-reason', 'look at the canary first');
    await page.click('#command-form button[data-command="pause"]');
    await waitText('pause with the token', '#rollout-head', 'paused');
    await waitFor('resume is offered once paused', () => !document.querySelector('#command-form button[data-command="resume"]').disabled);
    await page.fill('#cmd-reason', 'not today');
    await page.click('#command-form button[data-command="rollback"]');
    await waitText('the operator\'s rollback completes', '#rollout-head', 'rolled back by alice');
    await waitFor('the audit log shows the commands by alice', () => {
      const rows = [...document.querySelectorAll('#audit-table tbody tr[data-action="rollout.command"]')];
      return rows.length >= 2 && rows.every((r) => r.textContent.includes('alice'));
    });
    await waitFor('every node is back on v1', () => [...document.querySelectorAll('#fleet-body li.node')].every((n) => n.textContent.includes('v1 ')));

    // --- artifacts: a diff, and the switch form ---
    await page.selectOption('#diff-old', v1.digest);
    await page.selectOption('#diff-new', v2.digest);
    await page.click('#diff-submit');
    await waitText('the diff shows the doubling', '#diff-body', '×2.00');
    check((await text('#diff-body')).includes('Added (64)'), 'and lists the added names');
    const failedRow = '#audit-table tbody tr[data-action="rollout.gate_failed"]';
    await page.click(`${failedRow} details > summary`);
    const failedDetail = await text(`${failedRow} details pre`);
    check(failedDetail.includes('"gate": "nack"') && failedDetail.includes('"nacked": 1'), 'the audit entry of the failed gate carries its numbers');
    await page.click('#killswitch-panel > summary');
    await page.selectOption('#ks-node', 'iad-2');
    await page.selectOption('#ks-state', 'off');
    await page.fill('#ks-reason', 'drill: <script>window.__xss=2</script>');
    await page.click('#ks-set');
    await waitText('the switch is set', '#ks-result', 'off on iad-2');
    await waitFor('iad-2 shows its bot module off', () => document.querySelector('#fleet-body li.node[data-node="iad-2"]')?.textContent.includes('switched off (node)'));
    check(await page.evaluate(() => window.__xss === undefined), 'a hostile switch reason stays text');
    await waitText('the switch is audited', '#audit-table tbody tr:first-child', 'killswitch.set');
    check(await page.locator(`${failedRow} details`).evaluate((d) => d.open), 'an opened audit entry stays open as new entries arrive');

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
    check(fleet.errors.length === 0, `the simulated edges saw no API error (${fleet.errors.slice(0, 3).join(' | ') || 'none'})`);
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
  } finally {
    clearTimeout(deadline);
    await cleanup();
  }
  for (const s of shots) console.log(`screenshot: ${s}`);
  console.log(`browser: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
