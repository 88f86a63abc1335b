// Real-browser tests of the operator console (issue 15): Playwright (playwright-core) driving
// Debian's Chromium. Run them with tests/browser/run.sh, which provisions and starts the servers
// and writes the fixture that CONCORDIA_FIXTURE points to (ports, passwords, keys, ids).
//
// Every journey step is a full-page screenshot in $SCREENSHOT_DIR (NN-step.png, numbered in the
// order the tests run); a failing test leaves failed-<test>.png beside them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const fixturePath = process.env.CONCORDIA_FIXTURE;
if (!fixturePath) throw new Error('CONCORDIA_FIXTURE is not set: run these tests with tests/browser/run.sh');
const F = JSON.parse(readFileSync(fixturePath, 'utf8'));
const C = F.collections;
const O = F.objects;
const SHOTS = process.env.SCREENSHOT_DIR || '/tmp/concordia-console-screenshots';
mkdirSync(SHOTS, { recursive: true });
const TAXII = 'application/taxii+json;version=2.1';
const PARTNERS = ['cert-alpha', 'cert-bravo', 'cert-charlie'];

// Strings that only data pages contain (never a URL, so a login page echoing its "next" cannot
// contain them): collection titles, partner titles, object names, STIX patterns, API keys.
const DATA_MARKERS = [
  C.alliance.title, C.bilateral.title, C.national.title,
  'National CERT of Alpha', 'National CERT of Bravo', 'Bilateral channel between Alpha and Bravo',
  'C2 domain of the spring campaign', 'Poison Ivy', 'c2.spring.example', 'sinkhole.national.example',
  'cnc_',
];

// The flags the machine needs (its closed network refuses Chromium's background connections).
// playwright's launch() gives every run a new, empty user data dir of its own.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
});
after(async () => {
  await browser?.close();
});

// ---- helpers -------------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
const pathname = (page) => new URL(page.url()).pathname;

let shotNo = 0;
async function shot(page, name) {
  shotNo += 1;
  await page.screenshot({ path: path.join(SHOTS, `${String(shotNo).padStart(2, '0')}-${name}.png`), fullPage: true });
}

// Waits for a condition (polling), e.g. for the audit trail's batched read records.
async function eventually(what, fn, { timeout = 5000, interval = 200 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(interval);
  }
}

// One browser context (fresh cookies) per test. Fails the test if a page of the console asks a
// host other than this machine (no CDN at runtime), raises a script error, or fails to load one
// of its own scripts, stylesheets or images.
function journey(name, fn, { baseURL = F.consoleUrl, timeout = 90_000 } = {}) {
  test(name, { timeout }, async () => {
    const context = await browser.newContext({ baseURL, viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(10_000);
    context.setDefaultNavigationTimeout(15_000);
    const problems = [];
    context.on('request', (req) => {
      const host = new URL(req.url()).hostname;
      if (host !== 'localhost' && host !== '127.0.0.1' && !req.url().startsWith('data:')) {
        problems.push(`request to a foreign host: ${req.url()}`);
      }
    });
    const page = await context.newPage();
    page.on('pageerror', (err) => problems.push(`script error on ${page.url()}: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) {
        problems.push(`console error on ${page.url()}: ${msg.text()}`);
      }
    });
    page.on('response', (res) => {
      const kind = res.request().resourceType();
      if (['script', 'stylesheet', 'image', 'font'].includes(kind) && res.status() >= 400) {
        problems.push(`${kind} ${res.url()} answered ${res.status()}`);
      }
    });
    try {
      await fn({ page, context });
      assert.deepEqual(problems, [], 'no foreign request, script error or broken asset');
    } catch (err) {
      await page.screenshot({ path: path.join(SHOTS, `failed-${slug(name)}.png`), fullPage: true }).catch(() => {});
      throw err;
    } finally {
      await context.close();
    }
  });
}

async function fillLogin(page, name, password) {
  await page.getByLabel('Operator name', { exact: true }).fill(name);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

async function login(page, { name = F.operator.name, password = F.operator.password } = {}) {
  await page.goto('/console/login');
  await fillLogin(page, name, password);
  await page.waitForURL((url) => url.pathname === '/console/');
  await h1(page, 'Overview');
}

async function h1(page, name) {
  const heading = page.getByRole('heading', { level: 1, name, exact: true });
  await heading.waitFor();
  return heading;
}

function nav(page) {
  return page.getByRole('navigation', { name: 'Console', exact: true });
}

async function goNav(page, link, heading) {
  await nav(page).getByRole('link', { name: link, exact: true }).click();
  await h1(page, heading);
}

// A control that is a link or a button, by its accessible name (a string: exactly; or a RegExp).
function control(scope, name) {
  const opts = typeof name === 'string' ? { name, exact: true } : { name };
  return scope.getByRole('link', opts).or(scope.getByRole('button', opts));
}

// A column header by the collection title it links to (the header also names the API root).
function columnOf(page, title) {
  return page.getByRole('columnheader').filter({ has: page.getByRole('link', { name: title, exact: true }) });
}

function signOut(page) {
  return page.getByRole('button', { name: 'Sign out', exact: true });
}

// Fills a labelled input or chooses in a labelled select.
async function setField(page, label, value) {
  // (a <label> that wraps a <select> also holds its options' text: then match its start)
  let field = page.getByLabel(label, { exact: true });
  if ((await field.count()) === 0) field = page.getByLabel(new RegExp(`^\\s*${label}\\b`)).first();
  const tag = await field.evaluate((el) => el.tagName.toLowerCase());
  if (tag === 'select') await field.selectOption(value);
  else await field.fill(value);
}

const basic = (user, password) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const bearer = (key) => `Bearer ${key}`;

async function taxiiGet(collection, authorization) {
  const res = await fetch(`${F.taxiiUrl}/${collection.root}/collections/${collection.id}/objects/`, {
    headers: { Accept: TAXII, Authorization: authorization },
  });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) };
}

function credentialRow(page, partner, label) {
  return page.getByRole('table', { name: partner, exact: true }).getByRole('row').filter({ hasText: label });
}

async function credentialState(page, partner, label) {
  const row = credentialRow(page, partner, label);
  assert.equal(await row.count(), 1, `one row labelled ${label} in ${partner}'s credentials table`);
  const text = await row.innerText();
  const states = ['active', 'revoked', 'expired'].filter((s) => new RegExp(`\\b${s}\\b`).test(text));
  assert.equal(states.length, 1, `exactly one state in the row "${text}"`);
  return states[0];
}

// An unauthenticated answer must be the login page or a redirect to it, and never carry data.
async function assertLoginOnly(res, what) {
  const body = await res.text();
  for (const marker of DATA_MARKERS) assert.ok(!body.includes(marker), `${what} leaks data ("${marker}") without a login`);
  if ([301, 302, 303, 307, 308].includes(res.status)) {
    const location = new URL(res.headers.get('location') ?? '', F.taxiiUrl);
    assert.equal(location.pathname, '/console/login', `${what} redirects to the login page`);
    return;
  }
  assert.ok([200, 401].includes(res.status), `${what} answered ${res.status}, not the login page`);
  assert.match(body, /name="password"/, `${what} answered ${res.status} with something other than the login page`);
}

const htmlDecode = (s) => s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;|&#x27;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');

// The links and forms of a console page (plain regexes: server-rendered HTML).
function linksAndForms(html, base) {
  const links = [...html.matchAll(/<a\b[^>]*\bhref="([^"]*)"/gi)].map((m) => new URL(htmlDecode(m[1]), base).href);
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)].map((m) => {
    const attrs = m[1];
    const method = (/\bmethod="([^"]*)"/i.exec(attrs)?.[1] ?? 'get').toLowerCase();
    const action = new URL(htmlDecode(/\baction="([^"]*)"/i.exec(attrs)?.[1] ?? base), base).href;
    const hasCsrf = /<input\b[^>]*\bname="csrf"[^>]*>/i.test(m[2]) && /<input\b(?=[^>]*\bname="csrf")(?=[^>]*\btype="hidden")[^>]*>/i.test(m[2]);
    return { method, action, hasCsrf };
  });
  return { links, forms };
}

// Export URLs found on the audit page (journey 4), checked again without a login later.
const discovered = new Set();

// ---- journey 1: log in --------------------------------------------------------------------

journey('journey 1: an operator logs in (a wrong password is refused first)', async ({ page, context }) => {
  await page.goto('/console/');
  assert.equal(pathname(page), '/console/login', 'an unauthenticated /console/ lands on the login page');
  await shot(page, 'login-page');

  await fillLogin(page, F.operator.name, 'not-the-password');
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.innerText(), /\S/, 'the refusal says something');
  assert.equal(pathname(page), '/console/login');
  await shot(page, 'login-wrong-password');
  await page.goto('/console/');
  assert.equal(pathname(page), '/console/login', 'a refused login opens no session');

  await fillLogin(page, F.operator.name, F.operator.password);
  await page.waitForURL((url) => url.pathname === '/console/');
  await h1(page, 'Overview');
  for (const link of ['Overview', 'Access', 'Policy', 'Credentials', 'Audit']) {
    assert.equal(await nav(page).getByRole('link', { name: link, exact: true }).count(), 1, `nav link ${link}`);
  }
  assert.equal(await signOut(page).count(), 1, 'a Sign out button');

  const cookies = await context.cookies(`${F.consoleUrl}/console/`);
  assert.ok(cookies.some((c) => c.httpOnly), `an HttpOnly session cookie (got ${JSON.stringify(cookies)})`);
  for (const c of cookies) {
    assert.equal(c.secure, true, `cookie ${c.name} is Secure`);
    assert.equal(c.sameSite, 'Strict', `cookie ${c.name} is SameSite=Strict`);
  }

  // Objects per collection: 2, 1 and 1 written by run.sh; each title links to its page.
  for (const [key, count] of [['alliance', 2], ['bilateral', 1], ['national', 1]]) {
    const link = page.getByRole('link', { name: C[key].title, exact: true }).first();
    assert.equal(new URL(await link.getAttribute('href'), F.consoleUrl).pathname, `/console/collections/${C[key].id}`);
    const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: C[key].title, exact: true }) }).first();
    const cells = await row.getByRole('cell').allInnerTexts();
    assert.ok(cells.some((t) => t.trim() === String(count)), `the overview's row of ${C[key].title} shows ${count} object(s): ${JSON.stringify(cells)}`);
  }
  // Activity: cert-alpha wrote those objects.
  assert.ok(await page.getByRole('row').filter({ hasText: 'cert-alpha' }).count() > 0, 'cert-alpha appears in the activity');
  // Quiet partners: nobody has polled yet.
  const quiet = await page.getByRole('list', { name: 'Quiet partners', exact: true }).getByRole('listitem').allInnerTexts();
  for (const p of ['cert-bravo', 'cert-charlie']) {
    assert.ok(quiet.some((q) => q.includes(p)), `${p} is a quiet partner: ${JSON.stringify(quiet)}`);
  }
  // Expiring within 30 days: the key run.sh gave cert-charlie for 10 days, and nothing else.
  const expiring = page.getByRole('table', { name: 'Credentials', exact: true }).getByRole('row').filter({ has: page.getByRole('cell') });
  const soon = await expiring.allInnerTexts();
  assert.equal(soon.length, 1, `one credential expires within 30 days: ${JSON.stringify(soon)}`);
  assert.match(soon[0], /cert-charlie[\s\S]*expires-soon/);
  await shot(page, 'overview');
});

journey('a collection page lists its latest objects and shows one as JSON', async ({ page }) => {
  await login(page);
  await page.getByRole('link', { name: C.alliance.title, exact: true }).first().click();
  await page.waitForURL((url) => url.pathname === `/console/collections/${C.alliance.id}`);
  await h1(page, C.alliance.title);
  const row = page.getByRole('row').filter({ hasText: O.indicator });
  assert.equal(await row.count(), 1, 'the indicator is listed');
  const text = await row.innerText();
  assert.match(text, /\bindicator\b/, 'its type');
  assert.match(text, /2026-03-01T10:00:00/, 'its modified');
  assert.match(text, /green/i, 'its TLP marking');
  assert.equal(await page.getByRole('row').filter({ hasText: O.malware }).count(), 1, 'the malware is listed');
  assert.equal(await page.getByText(O.bilateral).count(), 0, "another collection's object is not");
  await shot(page, 'collection');

  await row.getByRole('link', { name: O.indicator }).click();
  const pre = page.locator('pre').first();
  await pre.waitFor();
  const object = JSON.parse(await pre.innerText());
  assert.equal(object.id, O.indicator);
  assert.equal(object.name, 'C2 domain of the spring campaign');
  assert.equal(object.pattern, "[domain-name:value = 'c2.spring.example']");
  await shot(page, 'object-json');
});

// ---- journey 2: who can read a collection ---------------------------------------------------

const EXPECTED_RIGHTS = {
  'cert-alpha': { alliance: 'read+write', bilateral: 'read+write', national: 'read+write' },
  'cert-bravo': { alliance: 'read+write', bilateral: 'read', national: 'read' },
  'cert-charlie': { alliance: 'read+write', bilateral: 'none', national: 'read' },
};

journey('journey 2: the operator finds which partners can read a collection', async ({ page }) => {
  await login(page);
  await goNav(page, 'Access', 'Access matrix');
  for (const key of Object.keys(C)) {
    assert.equal(await columnOf(page, C[key].title).count(), 1, `a column for ${C[key].title}`);
  }
  for (const partner of PARTNERS) {
    const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: partner, exact: true }) });
    assert.equal(await row.count(), 1, `a row for ${partner}`);
    for (const [key, rights] of Object.entries(EXPECTED_RIGHTS[partner])) {
      const cell = row.getByRole('link', { name: `${partner} on ${C[key].title}: ${rights}`, exact: true });
      assert.equal(await cell.count(), 1, `cell "${partner} on ${C[key].title}: ${rights}"`);
      assert.equal((await cell.innerText()).trim(), rights, 'the cell says its rights in words');
      const href = new URL(await cell.getAttribute('href'), F.consoleUrl);
      assert.equal(href.pathname, '/console/access/cell');
      assert.equal(href.searchParams.get('partner'), partner);
      assert.equal(href.searchParams.get('collection'), C[key].id);
    }
  }
  await shot(page, 'access-matrix');

  // cert-alpha reads the bilateral collection through alpha-bravo and writes it through alpha-cert.
  await page.getByRole('link', { name: `cert-alpha on ${C.bilateral.title}: read+write`, exact: true }).click();
  await page.getByRole('heading', { level: 2, name: `Groups granting cert-alpha access to ${C.bilateral.title}`, exact: true }).waitFor();
  let region = (await page.locator('#cell-detail').count()) ? page.locator('#cell-detail') : page.locator('body');
  let groups = await region.getByRole('listitem').allInnerTexts();
  assert.ok(groups.some((g) => /\balpha-bravo\b/.test(g)), `alpha-bravo grants it: ${JSON.stringify(groups)}`);
  assert.ok(groups.some((g) => /\balpha-cert\b/.test(g)), `alpha-cert grants it: ${JSON.stringify(groups)}`);
  assert.ok(!groups.some((g) => /^\s*alliance\b/.test(g)), `alliance does not: ${JSON.stringify(groups)}`);
  await shot(page, 'access-cell-groups');

  // cert-charlie: none, and no group listed.
  if (pathname(page) !== '/console/access') await page.goBack();
  await page.getByRole('link', { name: `cert-charlie on ${C.bilateral.title}: none`, exact: true }).click();
  await page.getByRole('heading', { level: 2, name: `Groups granting cert-charlie access to ${C.bilateral.title}`, exact: true }).waitFor();
  region = (await page.locator('#cell-detail').count()) ? page.locator('#cell-detail') : page.locator('body');
  groups = await region.getByRole('listitem').allInnerTexts();
  assert.ok(!groups.some((g) => /\b(alpha-bravo|alpha-cert|alliance)\b/.test(g)), `no group grants cert-charlie anything: ${JSON.stringify(groups)}`);
  await shot(page, 'access-cell-none');

  // One collection's column (its header links there), and who can read it.
  await page.goto('/console/access');
  await columnOf(page, C.bilateral.title).getByRole('link', { name: C.bilateral.title, exact: true }).click();
  await page.waitForURL((url) => url.pathname === '/console/access' && url.searchParams.get('collection') === C.bilateral.id);
  await h1(page, 'Access matrix');
  const readers = await page.getByRole('list', { name: 'Partners who can read', exact: true }).getByRole('listitem').allInnerTexts();
  const named = (p) => readers.some((r) => new RegExp(`\\b${p}\\b`).test(r));
  assert.ok(named('cert-alpha') && named('cert-bravo'), `cert-alpha and cert-bravo can read: ${JSON.stringify(readers)}`);
  assert.ok(!named('cert-charlie'), `cert-charlie cannot: ${JSON.stringify(readers)}`);
  assert.equal(await columnOf(page, C.alliance.title).count(), 0, 'only the chosen column');
  assert.equal(await page.getByRole('link', { name: `cert-charlie on ${C.bilateral.title}: none`, exact: true }).count(), 1);
  await shot(page, 'access-readers');
});

// ---- journey 3: revoke a credential ---------------------------------------------------------

journey("journey 3: the operator revokes a partner's credential; its next TAXII request gets 401", async ({ page }) => {
  const { partner, label, key } = F.apiKeys.revoke;
  assert.equal((await taxiiGet(C.alliance, bearer(key))).status, 200, 'before the revoke, the key reads');

  await login(page);
  await goNav(page, 'Credentials', 'Credentials');
  for (const p of PARTNERS) assert.equal(await page.getByRole('table', { name: p, exact: true }).count(), 1, `a table for ${p}`);
  assert.equal(await credentialState(page, partner, label), 'active');
  assert.ok(!(await page.content()).includes(key), 'no secret on the page');
  await shot(page, 'credentials');

  await control(credentialRow(page, partner, label), /^Revoke\b/).click();
  await h1(page, 'Revoke credential');
  await shot(page, 'revoke-confirm');
  assert.equal((await taxiiGet(C.alliance, bearer(key))).status, 200, 'the confirmation page alone revokes nothing');

  await page.getByRole('button', { name: 'Revoke credential', exact: true }).click();
  await page.waitForURL((url) => url.pathname === '/console/credentials');
  const status = page.getByRole('status');
  await status.waitFor();
  assert.match(await status.innerText(), /\S/);
  assert.equal(await credentialState(page, partner, label), 'revoked');
  await shot(page, 'revoked');

  const after = await taxiiGet(C.alliance, bearer(key));
  assert.equal(after.status, 401, `the next TAXII request with the revoked key gets 401 (got ${after.status}: ${after.text.slice(0, 200)})`);
  assert.equal((await taxiiGet(C.alliance, basic(partner, F.passwords[partner]))).status, 200, "the partner's other credential still works");
});

journey("the operator expires a partner's credential; it stops working", async ({ page }) => {
  const { partner, label, key } = F.apiKeys.expire;
  assert.equal((await taxiiGet(C.alliance, bearer(key))).status, 200, 'before, the key reads');
  await login(page);
  await goNav(page, 'Credentials', 'Credentials');
  assert.equal(await credentialState(page, partner, label), 'active');
  await control(credentialRow(page, partner, label), /^Expire\b/).click();
  await h1(page, 'Expire credential');
  await shot(page, 'expire-confirm');
  assert.equal((await taxiiGet(C.alliance, bearer(key))).status, 200, 'the confirmation page alone expires nothing');
  // (the expiry time may be left empty: now)
  await page.getByRole('button', { name: 'Set expiry', exact: true }).click();
  await page.waitForURL((url) => url.pathname === '/console/credentials');
  await page.getByRole('status').waitFor();
  assert.equal(await credentialState(page, partner, label), 'expired');
  await shot(page, 'expired');
  assert.equal((await taxiiGet(C.alliance, bearer(key))).status, 401, 'the expired key gets 401');
});

journey('the operator creates an API key, shown once, that works at once', async ({ page }) => {
  await login(page);
  await goNav(page, 'Credentials', 'Credentials');
  await setField(page, 'Partner', 'cert-charlie');
  await page.getByLabel('Label', { exact: true }).fill('console-made');
  await page.getByRole('button', { name: 'Create API key', exact: true }).click();
  const shown = page.locator('#new-api-key');
  await shown.waitFor();
  const key = (await shown.innerText()).trim();
  assert.match(key, /^cnc_\S+$/, 'an API key');
  await shot(page, 'api-key-created');
  assert.equal((await taxiiGet(C.alliance, bearer(key))).status, 200, 'the new key reads at once');

  await page.goto('/console/credentials');
  await h1(page, 'Credentials');
  assert.equal(await credentialState(page, 'cert-charlie', 'console-made'), 'active');
  assert.ok(!(await page.content()).includes(key), 'the key is shown only once');
});

// ---- journey 4: recipients of an object -----------------------------------------------------

journey('journey 4: the operator looks up the recipients of an object a partner has just polled', async ({ page, context }) => {
  const polled = await taxiiGet(C.national, basic('cert-charlie', F.passwords['cert-charlie']));
  assert.equal(polled.status, 200);
  assert.ok(polled.json().objects.some((o) => o.id === O.national), 'cert-charlie received the object');

  await login(page);
  await goNav(page, 'Audit', 'Audit trail');
  await shot(page, 'audit');
  await page.getByLabel('Object id', { exact: true }).fill(O.national);
  await page.getByRole('button', { name: 'Find recipients', exact: true }).click();
  await page.waitForURL((url) => url.pathname === '/console/audit/recipients' && url.searchParams.get('object_id') === O.national);
  await page.getByRole('heading', { level: 2, name: `Recipients of ${O.national}`, exact: true }).waitFor();
  // Read records are committed in batches (50 ms): reload until the poll is there.
  const charlie = page.getByRole('row').filter({ hasText: 'cert-charlie' });
  await eventually('cert-charlie among the recipients', async () => {
    if (await charlie.count()) return true;
    await page.reload();
    return false;
  });
  const text = await charlie.first().innerText();
  assert.ok(text.includes(C.national.title) || text.includes(C.national.id), `the row names the collection: ${text}`);
  assert.match(text, /2026-03-01T10:00:00/, `the row names the version: ${text}`);
  assert.equal(await page.getByRole('row').filter({ hasText: 'cert-bravo' }).count(), 0, 'cert-bravo did not receive it');
  await shot(page, 'recipients');

  // Filter by partner.
  await page.goto('/console/audit');
  await h1(page, 'Audit trail');
  await setField(page, 'Partner', 'cert-charlie');
  await page.getByRole('button', { name: 'Filter', exact: true }).click();
  await page.waitForLoadState();
  const rows = page.getByRole('row').filter({ has: page.getByRole('cell') });
  await eventually('filtered audit rows', async () => (await rows.count()) > 0);
  for (const row of await rows.all()) assert.match(await row.innerText(), /cert-charlie/, 'every row is cert-charlie\'s');
  await shot(page, 'audit-filtered');

  // Exports.
  for (const [name, check] of [
    ['Export JSONL', (body) => {
      const lines = body.split('\n').filter((l) => l.trim());
      assert.ok(lines.length > 0, 'JSONL has records');
      for (const l of lines) JSON.parse(l);
      assert.ok(lines.some((l) => l.includes('cert-charlie')), "JSONL names cert-charlie's read");
    }],
    ['Export CSV', (body) => {
      const lines = body.split(/\r?\n/).filter((l) => l.trim());
      assert.ok(lines.length > 1 && lines[0].includes(','), 'CSV has a header and records');
      assert.ok(lines.some((l) => l.includes('cert-charlie')), "CSV names cert-charlie's read");
    }],
  ]) {
    const href = await page.getByRole('link', { name, exact: true }).getAttribute('href');
    const url = new URL(href, F.consoleUrl).href;
    discovered.add(url);
    const res = await context.request.get(url);
    assert.equal(res.status(), 200, `${name}: ${url}`);
    check(await res.text());
  }
});

journey("the operator's own actions through the console are in the audit trail", async ({ page, context }) => {
  await login(page);
  for (const action of ['console_login', 'credential_revoke', 'credential_expire', 'credential_add']) {
    await page.goto('/console/audit');
    await h1(page, 'Audit trail');
    await page.getByLabel('Action', { exact: true }).fill(action);
    await page.getByRole('button', { name: 'Filter', exact: true }).click();
    await page.waitForURL((url) => url.searchParams.get('action') === action);
    const href = await page.getByRole('link', { name: 'Export JSONL', exact: true }).getAttribute('href');
    const res = await context.request.get(new URL(href, F.consoleUrl).href);
    assert.equal(res.status(), 200);
    const records = (await res.text()).split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
    const mine = records.filter((r) => r.action === action && JSON.stringify(r).includes(F.operator.name));
    assert.ok(mine.length > 0, `a ${action} record naming operator ${F.operator.name}: ${JSON.stringify(records).slice(0, 400)}`);
    const rows = page.getByRole('row').filter({ has: page.getByRole('cell') }).filter({ hasText: action });
    assert.ok((await rows.count()) > 0, `the filtered table shows ${action}`);
  }
  await shot(page, 'audit-operator-actions');
});

// ---- journey 5: preview a policy change -----------------------------------------------------

const NEW_COLLECTION = 'Console preview collection';
const ORIGINAL_POLICY = readFileSync(F.policyPath, 'utf8');
const MODIFIED_POLICY = `${ORIGINAL_POLICY}
[[collections]]
id = "3a4b5c6d-7e8f-4091-a2b3-c4d5e6f70819"
api_root = "hub"
title = "${NEW_COLLECTION}"
read = ["alliance"]
write = ["alpha-cert"]
`;

journey('journey 5: the operator previews a policy change', async ({ page }) => {
  await login(page);
  await goNav(page, 'Policy', 'Policy');
  const current = await page.locator('body').innerText();
  for (const s of [C.alliance.title, C.bilateral.title, C.national.title, 'alpha-bravo', 'alpha-cert', 'cert-charlie']) {
    assert.ok(current.includes(s), `the current policy shows ${s}`);
  }
  await shot(page, 'policy');

  const changes = () => page.getByRole('list', { name: 'Changes', exact: true }).getByRole('listitem').allInnerTexts();
  await page.getByLabel('Policy (TOML)', { exact: true }).fill(MODIFIED_POLICY);
  await page.getByRole('button', { name: 'Preview plan', exact: true }).click();
  await page.getByRole('heading', { level: 2, name: 'Plan', exact: true }).waitFor();
  const pasted = await changes();
  assert.ok(pasted.some((c) => c.trim().startsWith('+ collection') && c.includes(NEW_COLLECTION)), `"+ collection ${NEW_COLLECTION}" is listed: ${JSON.stringify(pasted)}`);
  await shot(page, 'policy-plan');

  // The same plan as `concordia apply --dry-run`.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'concordia-policy-'));
  const file = path.join(dir, 'modified.toml');
  writeFileSync(file, MODIFIED_POLICY);
  const dryRun = execFileSync(F.bin, ['--database-url', F.databaseUrl, 'apply', file, '--dry-run'], { encoding: 'utf8' });
  const cliChanges = dryRun.split('\n').map((l) => l.trim()).filter((l) => /^[+~-] /.test(l));
  assert.ok(cliChanges.length > 0, `apply --dry-run lists changes: ${dryRun}`);
  assert.deepEqual(pasted.map((c) => c.trim().replace(/\s+/g, ' ')), cliChanges.map((c) => c.replace(/\s+/g, ' ')), 'the preview is the plan of apply --dry-run');

  // Nothing was applied.
  await page.goto('/console/access');
  await h1(page, 'Access matrix');
  assert.equal(await columnOf(page, NEW_COLLECTION).count(), 0, 'a preview applies nothing');

  // The current policy: no changes.
  await page.goto('/console/policy');
  await page.getByLabel('Policy (TOML)', { exact: true }).fill(ORIGINAL_POLICY);
  await page.getByRole('button', { name: 'Preview plan', exact: true }).click();
  await page.getByRole('heading', { level: 2, name: 'Plan', exact: true }).waitFor();
  await page.getByText(/^No changes\b/).waitFor();
  assert.equal(await page.getByRole('list', { name: 'Changes', exact: true }).getByRole('listitem').count(), 0);
  await shot(page, 'policy-no-changes');

  // The same change from an uploaded file.
  await page.goto('/console/policy');
  await page.getByLabel('Or upload a policy file', { exact: true }).setInputFiles({
    name: 'modified.toml', mimeType: 'application/toml', buffer: Buffer.from(MODIFIED_POLICY),
  });
  await page.getByRole('button', { name: 'Preview plan', exact: true }).click();
  await page.getByRole('heading', { level: 2, name: 'Plan', exact: true }).waitFor();
  assert.deepEqual(await changes(), pasted, 'the uploaded file gives the same plan');
  await shot(page, 'policy-plan-upload');

  // Invalid TOML: the parser's message.
  await page.goto('/console/policy');
  await page.getByLabel('Policy (TOML)', { exact: true }).fill('[[collections]\nid = "unterminated');
  await page.getByRole('button', { name: 'Preview plan', exact: true }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.innerText(), /\S{3,}/, 'the error says what is wrong');
  assert.equal(await page.getByRole('list', { name: 'Changes', exact: true }).count(), 0, 'no plan for an invalid file');
  await shot(page, 'policy-invalid');
});

// ---- journey 6: log out ---------------------------------------------------------------------

journey('journey 6: the operator logs out; the session is gone', async ({ page, context }) => {
  await login(page);
  const cookies = await context.cookies(`${F.consoleUrl}/console/`);
  await signOut(page).click();
  await page.waitForURL((url) => url.pathname === '/console/login');
  await shot(page, 'signed-out');
  await page.goto('/console/');
  assert.equal(pathname(page), '/console/login', 'after signing out, /console/ is the login page');
  await shot(page, 'after-sign-out');

  // The old session cookie, replayed, opens nothing: the session ended on the server too.
  const replay = await browser.newContext({ baseURL: F.consoleUrl });
  try {
    await replay.addCookies(cookies);
    const p = await replay.newPage();
    await p.goto('/console/');
    assert.equal(pathname(p), '/console/login', 'a replayed session cookie is refused after sign-out');
  } finally {
    await replay.close();
  }
});

// ---- partners are not operators -------------------------------------------------------------

journey("a partner's TAXII credentials do not open the console", async ({ page }) => {
  const pw = F.passwords['cert-alpha'];
  assert.equal((await taxiiGet(C.alliance, basic('cert-alpha', pw))).status, 200, 'the password is a good TAXII credential');

  await page.goto('/console/login');
  await fillLogin(page, 'cert-alpha', pw);
  await page.getByRole('alert').waitFor();
  assert.equal(pathname(page), '/console/login');
  await page.goto('/console/');
  assert.equal(pathname(page), '/console/login', 'no session for a partner');
  await shot(page, 'partner-login-refused');

  for (const authorization of [basic('cert-alpha', pw), bearer(F.apiKeys.csrf.key), basic('cert-alpha', F.apiKeys.csrf.key)]) {
    for (const p of ['/console/', '/console/access', '/console/credentials', `/console/collections/${C.alliance.id}`]) {
      const res = await fetch(`${F.taxiiUrl}${p}`, { headers: { Authorization: authorization }, redirect: 'manual' });
      await assertLoginOnly(res, `GET ${p} with ${authorization.split(' ')[0]} partner credentials`);
    }
  }
  const withBasic = await browser.newContext({ baseURL: F.consoleUrl, httpCredentials: { username: 'cert-alpha', password: pw } });
  try {
    const p = await withBasic.newPage();
    await p.goto('/console/credentials');
    assert.equal(pathname(p), '/console/login', 'a browser sending Basic credentials lands on the login page');
  } finally {
    await withBasic.close();
  }
});

// ---- cross-site POSTs -----------------------------------------------------------------------

// A tiny "attacker" site on another port: a form that posts itself to the console at once.
async function attackerSite() {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://attacker');
    const target = url.searchParams.get('target') ?? '';
    const esc = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><title>Totally harmless</title>
<form id="f" method="post" action="${esc(target)}"><input type="hidden" name="csrf" value="forged"></form>
<script>document.getElementById('f').submit()</script>`);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: server.address().port, close: () => new Promise((resolve) => server.close(resolve)) };
}

journey('the console refuses a cross-site POST (forged form, foreign Origin, missing or wrong token)', async ({ page, context }) => {
  const { partner, label, key } = F.apiKeys.csrf;
  await login(page);
  const logoutForm = page.locator('form').filter({ has: signOut(page) });
  const logoutAction = new URL((await logoutForm.getAttribute('action')) ?? page.url(), page.url()).href;
  await goNav(page, 'Credentials', 'Credentials');
  await control(credentialRow(page, partner, label), /^Revoke\b/).click();
  await h1(page, 'Revoke credential');
  const form = page.locator('form').filter({ has: page.getByRole('button', { name: 'Revoke credential', exact: true }) });
  const revokeAction = new URL((await form.getAttribute('action')) ?? page.url(), page.url()).href;
  const token = await form.locator('input[type="hidden"][name="csrf"]').inputValue();
  assert.ok(token.length >= 16, 'the revoke form carries a CSRF token');

  const attacker = await attackerSite();
  try {
    // localhost:OTHER is same-site (the SameSite=Strict cookie goes along) but cross-origin;
    // 127.0.0.1:OTHER is cross-site.
    for (const origin of [`http://localhost:${attacker.port}`, `http://127.0.0.1:${attacker.port}`]) {
      for (const [what, target] of [['revoke', revokeAction], ['logout', logoutAction]]) {
        const answered = page.waitForResponse((r) => r.request().method() === 'POST' && r.url() === target);
        await page.goto(`${origin}/?target=${encodeURIComponent(target)}`);
        const res = await answered;
        if (new URL(origin).hostname === 'localhost') {
          // Same site: the browser sends the session cookie; only the Origin/token check stops it.
          assert.equal(res.status(), 403, `a forged ${what} POST from ${origin} is refused with 403 (got ${res.status()})`);
        } else {
          // Cross-site: SameSite=Strict keeps the cookie home; a 403 or the login page are both refusals.
          const toLogin = res.status() === 303 && new URL(res.headers().location ?? '', F.consoleUrl).pathname === '/console/login';
          assert.ok(res.status() === 403 || toLogin, `a forged ${what} POST from ${origin} is refused (got ${res.status()})`);
        }
        await page.waitForLoadState();
        await shot(page, `csrf-${what}-from-${new URL(origin).hostname}-refused`);
      }
    }
  } finally {
    await attacker.close();
  }

  // The right token from a foreign Origin; the right Origin without or with a wrong token.
  for (const [what, form, headers] of [
    ['the right token, a foreign Origin', { csrf: token }, { Origin: 'http://evil.example' }],
    ['the right Origin, no token', {}, { Origin: F.consoleUrl }],
    ['the right Origin, a wrong token', { csrf: `${token.slice(0, -2)}xx` }, { Origin: F.consoleUrl }],
  ]) {
    const res = await context.request.post(revokeAction, { form, headers, maxRedirects: 0 });
    assert.equal(res.status(), 403, `${what}: 403 (got ${res.status()})`);
  }

  // A login POSTed from another origin (login CSRF) is refused too.
  const foreignLogin = await context.request.post('/console/login', {
    form: { name: F.operator.name, password: F.operator.password }, headers: { Origin: 'http://evil.example' }, maxRedirects: 0,
  });
  assert.equal(foreignLogin.status(), 403, `a login from a foreign Origin: 403 (got ${foreignLogin.status()})`);

  // Nothing changed: still signed in, the credential active and working.
  await page.goto('/console/credentials');
  await h1(page, 'Credentials');
  assert.equal(await credentialState(page, partner, label), 'active', 'the credential was not revoked');
  assert.equal((await taxiiGet(C.alliance, bearer(key))).status, 200, 'the key still reads');

  // Control: the genuine form, from the console itself, does revoke it.
  await control(credentialRow(page, partner, label), /^Revoke\b/).click();
  await h1(page, 'Revoke credential');
  await page.getByRole('button', { name: 'Revoke credential', exact: true }).click();
  await page.waitForURL((url) => url.pathname === '/console/credentials');
  assert.equal(await credentialState(page, partner, label), 'revoked');
  assert.equal((await taxiiGet(C.alliance, bearer(key))).status, 401);
});

// ---- idle timeout ---------------------------------------------------------------------------

journey('a session expires after the idle timeout', async ({ page, context }) => {
  const idleMs = F.idleTimeoutSeconds * 1000;
  await login(page);
  // Activity keeps it alive past the timeout (an idle timeout, not a lifetime)...
  const until = Date.now() + idleMs * 1.5;
  while (Date.now() < until) {
    await sleep(idleMs / 5);
    const res = await context.request.get('/console/', { maxRedirects: 0 });
    assert.equal(res.status(), 200, 'an active session stays open');
  }
  await page.reload();
  await h1(page, 'Overview');
  await shot(page, 'idle-before');
  // ...and idleness ends it (the one deliberate wait of the suite).
  await sleep(idleMs + 1500);
  await page.reload();
  assert.equal(pathname(page), '/console/login', 'after the idle timeout, the console asks for a login again');
  await shot(page, 'idle-expired');
}, { baseURL: F.idleConsoleUrl });

// ---- the console on a listener of its own ---------------------------------------------------

journey('with CONCORDIA_CONSOLE_LISTEN the console has its own port, and only there', async ({ page }) => {
  await login(page);
  await shot(page, 'separate-listener-overview');
  const taxiiPort = await fetch(`${F.idleTaxiiUrl}/console/login`, { redirect: 'manual' });
  assert.equal(taxiiPort.status, 404, `the TAXII listener does not serve the console (got ${taxiiPort.status})`);
  assert.doesNotMatch(await taxiiPort.text(), /name="password"/);
  const taxii = await fetch(`${F.idleTaxiiUrl}/taxii2/`, { headers: { Accept: TAXII, Authorization: basic('cert-alpha', F.passwords['cert-alpha']) } });
  assert.equal(taxii.status, 200, 'TAXII stays on its listener');
}, { baseURL: F.idleConsoleUrl });

// ---- keyboard -------------------------------------------------------------------------------

journey('keyboard: Tab from the top of the login page reaches name, password and Sign in in order', async ({ page }) => {
  const focused = () => page.evaluate(() => {
    const e = document.activeElement;
    return e && e !== document.body
      ? { tag: e.tagName.toLowerCase(), name: e.getAttribute('name'), type: e.getAttribute('type'), text: (e.innerText || e.value || '').trim() }
      : null;
  });
  const isName = (f) => f?.tag === 'input' && f.name === 'name';
  const isPassword = (f) => f?.tag === 'input' && f.name === 'password';
  const isButton = (f) => (f?.tag === 'button' || f?.type === 'submit') && f.text === 'Sign in';
  // Presses Tab (not at all if the field is focused already, e.g. by autofocus) until pred holds.
  const tabTo = async (pred, what) => {
    for (let i = 0; i < 20; i += 1) {
      if (pred(await focused())) return;
      await page.keyboard.press('Tab');
    }
    assert.fail(`Tab never reached ${what}`);
  };

  await page.goto('/console/login');
  const seen = [];
  const first = await focused(); // the page may autofocus a field: that counts as reached
  if (first) seen.push(first);
  for (let i = 0; i < 20 && !isButton(seen.at(-1)); i += 1) {
    await page.keyboard.press('Tab');
    seen.push(await focused());
  }
  const nameAt = seen.findIndex(isName);
  const passwordAt = seen.findIndex(isPassword);
  const buttonAt = seen.findIndex(isButton);
  assert.ok(nameAt >= 0 && passwordAt > nameAt && buttonAt > passwordAt, `Tab order: ${JSON.stringify(seen)}`);

  // Sign in with the keyboard alone, then reach the console's navigation.
  await page.goto('/console/login');
  await tabTo(isName, 'the name field');
  await page.keyboard.type(F.operator.name);
  await page.keyboard.press('Tab');
  assert.ok(isPassword(await focused()), 'Tab goes from the name to the password');
  await page.keyboard.type(F.operator.password);
  await page.keyboard.press('Enter');
  await page.waitForURL((url) => url.pathname === '/console/');
  await h1(page, 'Overview');
  await tabTo((f) => f?.tag === 'a' && f.text === 'Access', 'the Access link');
  await page.keyboard.press('Enter');
  await h1(page, 'Access matrix');
  await shot(page, 'keyboard-navigation');
});

// ---- no data without a login ----------------------------------------------------------------

test('an unauthenticated request for any console page (and export) gets the login page, never data', { timeout: 90_000 }, async (t) => {
  // Crawl the console as a signed-in operator (two levels of links from every page), then ask
  // for every URL found with no cookie at all.
  const context = await browser.newContext({ baseURL: F.consoleUrl });
  const pages = new Set([
    '/console/', '/console/access', `/console/access?collection=${C.bilateral.id}`,
    `/console/access/cell?partner=cert-alpha&collection=${C.bilateral.id}`, '/console/policy',
    '/console/credentials', '/console/audit', '/console/audit?partner=cert-charlie',
    `/console/audit/recipients?object_id=${encodeURIComponent(O.indicator)}`, `/console/collections/${C.alliance.id}`,
  ].map((p) => new URL(p, F.consoleUrl).href));
  for (const u of discovered) pages.add(u);
  const posts = new Set();
  const withoutCsrf = [];
  try {
    const p = await context.newPage();
    await login(p);
    let frontier = [...pages];
    for (let depth = 0; depth < 2; depth += 1) {
      const next = [];
      for (const url of frontier) {
        const res = await context.request.get(url);
        if (!(res.headers()['content-type'] ?? '').includes('text/html')) continue;
        const { links, forms } = linksAndForms(await res.text(), url);
        for (const f of forms) {
          if (f.method === 'post') {
            posts.add(f.action);
            if (!f.hasCsrf) withoutCsrf.push(`${url}: form → ${f.action}`);
          }
        }
        for (const l of links) {
          const u = new URL(l);
          if (u.origin !== new URL(F.consoleUrl).origin || !u.pathname.startsWith('/console') || u.pathname.startsWith('/console/logout')) continue;
          u.hash = '';
          if (!pages.has(u.href) && pages.size < 300) {
            pages.add(u.href);
            next.push(u.href);
          }
        }
      }
      frontier = next;
    }
  } finally {
    await context.close();
  }
  assert.deepEqual(withoutCsrf, [], 'every POST form carries a hidden csrf input');
  assert.ok(pages.size >= 15, `the crawl found the console's pages (${pages.size})`);

  const checked = [];
  for (const url of pages) {
    const u = new URL(url);
    if (/\.(js|css|png|svg|ico|woff2?)$/.test(u.pathname) || u.pathname === '/console/login') continue;
    const res = await fetch(`${F.taxiiUrl}${u.pathname}${u.search}`, { redirect: 'manual' });
    await assertLoginOnly(res, `GET ${u.pathname}${u.search}`);
    checked.push(u.pathname);
  }
  for (const url of posts) {
    const u = new URL(url);
    if (u.pathname === '/console/login') continue;
    const res = await fetch(`${F.taxiiUrl}${u.pathname}${u.search}`, {
      method: 'POST', redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: F.consoleUrl },
      body: 'csrf=forged&policy=x',
    });
    const body = await res.text();
    for (const marker of DATA_MARKERS) assert.ok(!body.includes(marker), `POST ${u.pathname} leaks "${marker}" without a login`);
    assert.ok([303, 302, 401, 403].includes(res.status), `POST ${u.pathname} without a session answered ${res.status}`);
  }
  assert.ok(checked.some((p) => p.startsWith('/console/audit/export') || /export/.test(p)), `the exports were checked: ${JSON.stringify(checked)}`);
  t.diagnostic(`without a session: ${checked.length} GET URLs (${new Set(checked).size} paths) and ${posts.size} POST targets refused`);
  // The POSTs above changed nothing.
  assert.equal((await taxiiGet(C.alliance, basic('cert-bravo', F.passwords['cert-bravo']))).status, 200);
});
