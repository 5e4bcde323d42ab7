// Interop test: upstream's own client SDK, `@objectstack/client` 17.4.0,
// imported unchanged, against a served objectos.
//
// Run by tests/it/sdk.rs with the project-local Node 22 that scripts/setup
// installs into target/interop/node/ (see tests/interop/sdk/package.json). It
// expects a fresh data dir with the CRM fixture applied and the users, keys and
// canaries tests/it/sdk.rs sets up; every value it needs comes from the
// environment:
//
//   OBJECTOS_SDK_BASE_URL        http://127.0.0.1:PORT (no path)
//   OBJECTOS_SDK_KEY             API key of the main user (sales_manager + sales_rep)
//   OBJECTOS_SDK_RESTRICTED_KEY  API key of the restricted user (sales_rep only)
//   OBJECTOS_SDK_LOGIN_EMAIL     the restricted user's email ...
//   OBJECTOS_SDK_LOGIN_PASSWORD  ... and password, for auth.login
//   OBJECTOS_SDK_HIDDEN_ID       an opportunity the restricted user owns ...
//   OBJECTOS_SDK_HIDDEN_NAME     ... its name ...
//   OBJECTOS_SDK_HIDDEN_CANARY   ... and the canary in its discount_approval_note,
//                                a field the restricted user may not read
//   OBJECTOS_SDK_PRIVATE_ID      another user's private opportunity ...
//   OBJECTOS_SDK_PRIVATE_CANARY  ... whose name is this canary
//   OBJECTOS_SDK_DEBUG=1         print every HTTP exchange to stderr
//
// Each check prints one line, `ok <name>` or `FAIL <name>: <details>` (the
// exchanges of a failed check go to stderr), then a summary line. Exit status:
// 0 when every check passed, 1 when one failed, 2 on a usage error.
//
// The checks assert exact shapes and values, as upstream's server answers them
// (bare REST bodies for discovery/data/meta, `{success, data}` for actions, a
// bare better-auth body for sign-in), not merely that the SDK did not throw:
// the SDK accepts several shapes, so a wrong one would often pass silently.
// A recording `fetch` (the SDK's documented `fetch` option) keeps every
// exchange so the checks can look at the wire as well as at what the SDK made
// of it.

import { ObjectStackClient, createQuery } from '@objectstack/client';

const OBJECT = 'crm_opportunity';
const TIMEOUT_MS = 20_000;
const WELL_KNOWN_CAPABILITY_KEYS = [
  'comments', 'automation', 'cron', 'search', 'export', 'chunkedUpload',
  'transactionalBatch', 'websockets', 'files', 'analytics', 'ai', 'notifications', 'i18n',
];

// ---------------------------------------------------------------- config

const REQUIRED = [
  'OBJECTOS_SDK_BASE_URL', 'OBJECTOS_SDK_KEY', 'OBJECTOS_SDK_RESTRICTED_KEY',
  'OBJECTOS_SDK_LOGIN_EMAIL', 'OBJECTOS_SDK_LOGIN_PASSWORD',
  'OBJECTOS_SDK_HIDDEN_ID', 'OBJECTOS_SDK_HIDDEN_NAME', 'OBJECTOS_SDK_HIDDEN_CANARY',
  'OBJECTOS_SDK_PRIVATE_ID', 'OBJECTOS_SDK_PRIVATE_CANARY',
];
const missing = REQUIRED.filter((name) => !process.env[name]);
if (missing.length > 0) {
  console.log(`FAIL config: missing environment variables: ${missing.join(', ')}`);
  process.exit(2);
}
const cfg = Object.fromEntries(REQUIRED.map((name) => [name.replace('OBJECTOS_SDK_', ''), process.env[name]]));
const BASE = cfg.BASE_URL.replace(/\/$/, '');
const DEBUG = process.env.OBJECTOS_SDK_DEBUG === '1';

// ---------------------------------------------------------------- the wire

/** Every HTTP exchange any client made, in order. */
const wire = [];

function headersObject(h) {
  const out = {};
  for (const [k, v] of new Headers(h || {})) out[k] = v;
  return out;
}

/** A `fetch` for one client that records each exchange, tagged with `who`. */
function recordingFetch(who) {
  return async (input, init = {}) => {
    const url = new URL(typeof input === 'string' ? input : input.url);
    const entry = {
      who,
      method: (init.method || 'GET').toUpperCase(),
      url: url.href,
      path: url.pathname,
      params: [...url.searchParams.entries()],
      reqHeaders: headersObject(init.headers),
      reqBody: init.body === undefined ? undefined : String(init.body),
    };
    wire.push(entry);
    const res = await fetch(input, { ...init, signal: AbortSignal.timeout(TIMEOUT_MS) });
    entry.status = res.status;
    entry.resHeaders = headersObject(res.headers);
    entry.text = await res.clone().text();
    try {
      entry.json = JSON.parse(entry.text);
    } catch {
      entry.json = undefined;
    }
    if (DEBUG) process.stderr.write(`${describe(entry)}\n`);
    return res;
  };
}

function describe(e) {
  const query = e.params.length ? `?${new URLSearchParams(e.params)}` : '';
  const body = e.reqBody === undefined ? '' : ` ${clip(e.reqBody, 300)}`;
  return `  [${e.who}] ${e.method} ${e.path}${query}${body}\n    -> ${e.status} ${clip(e.text ?? "", 3000)}`;
}

const quietLogger = { debug() {}, info() {}, warn() {}, error() {} };

function client(who, token) {
  return new ObjectStackClient({
    baseUrl: BASE,
    ...(token ? { token } : {}),
    fetch: recordingFetch(who),
    logger: quietLogger,
  });
}

// ---------------------------------------------------------------- assertions

class CheckFailure extends Error {}

function clip(s, n = 400) {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

function show(v) {
  if (v === undefined) return 'undefined';
  try {
    return clip(JSON.stringify(v));
  } catch {
    return String(v);
  }
}

function fail(msg) {
  throw new CheckFailure(msg);
}

function assert(cond, msg) {
  if (!cond) fail(msg);
}

function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return deepEqual(ka, kb) && ka.every((k) => deepEqual(a[k], b[k]));
}

function eq(actual, expected, what) {
  if (!deepEqual(actual, expected)) fail(`${what}: expected ${show(expected)}, got ${show(actual)}`);
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function keysExactly(obj, keys, what) {
  assert(isPlainObject(obj), `${what}: expected an object, got ${show(obj)}`);
  eq(Object.keys(obj).sort(), [...keys].sort(), `${what}: keys`);
}

function keysWithin(obj, allowed, required, what) {
  assert(isPlainObject(obj), `${what}: expected an object, got ${show(obj)}`);
  const extra = Object.keys(obj).filter((k) => !allowed.includes(k));
  assert(extra.length === 0, `${what}: unexpected keys ${show(extra)} in ${show(obj)}`);
  const absent = required.filter((k) => !(k in obj));
  assert(absent.length === 0, `${what}: missing keys ${show(absent)} in ${show(obj)}`);
}

function nonEmptyString(v, what) {
  assert(typeof v === 'string' && v.length > 0, `${what}: expected a non-empty string, got ${show(v)}`);
}

/** `total` is optional in a list response (upstream sends it unless asked not
 * to); when present it must be exact. */
function totalIs(res, n) {
  if ('total' in res) eq(res.total, n, 'total');
}

/** The exchanges since `mark`, asserting there was exactly one, to `method path`. */
function oneCall(mark, method, path, status) {
  const calls = wire.slice(mark);
  assert(calls.length === 1, `expected exactly one HTTP request, saw ${calls.length}: ${show(calls.map((c) => `${c.method} ${c.path} ${c.status}`))}`);
  const [c] = calls;
  eq(`${c.method} ${c.path}`, `${method} ${path}`, 'request');
  eq(c.status, status, `HTTP status of ${method} ${path} (body ${clip(c.text ?? '')})`);
  return c;
}

/** A 2xx body upstream's REST server answers bare: no `{success, data}` envelope. */
function assertBare(call) {
  assert(isPlainObject(call.json), `response is not a JSON object: ${clip(call.text ?? '')}`);
  assert(!('success' in call.json) && !('data' in call.json),
    `response is wrapped in an envelope; upstream answers this route bare: ${clip(call.text)}`);
}

/** The request carried the client's credential as upstream's SDK sends it. */
function assertBearer(call, token) {
  eq(call.reqHeaders.authorization, `Bearer ${token}`, 'Authorization request header');
}

/** Await a promise that must reject with the SDK's HTTP error; returns it. */
async function rejects(promise, status, code, what) {
  let value;
  try {
    value = await promise;
  } catch (err) {
    if (err instanceof CheckFailure) throw err;
    eq(err.httpStatus, status, `${what}: the SDK error's httpStatus (message ${show(err.message)}, code ${show(err.code)})`);
    if (code !== undefined) eq(err.code, code, `${what}: the SDK error's code`);
    return err;
  }
  return fail(`${what}: expected the SDK to throw an HTTP ${status} error, it returned ${show(value)}`);
}

// ---------------------------------------------------------------- runner

const results = [];
const state = {};

async function check(name, fn) {
  const mark = wire.length;
  try {
    await fn(mark);
    results.push([name, true]);
    console.log(`ok ${name}`);
  } catch (err) {
    results.push([name, false]);
    const detail = err instanceof CheckFailure ? err.message : `unexpected ${err?.stack || err}`;
    console.log(`FAIL ${name}: ${detail.replace(/\n/g, ' | ')}`);
    const calls = wire.slice(mark);
    if (calls.length > 0 && !DEBUG) {
      process.stderr.write(`exchanges of ${name}:\n${calls.map(describe).join('\n')}\n`);
    }
  }
}

/** A value an earlier check produced; a missing one fails this check by name. */
function need(key) {
  if (state[key] === undefined) fail(`needs ${key}, which an earlier check did not produce`);
  return state[key];
}

// ---------------------------------------------------------------- clients

const main = client('main', cfg.KEY);
const restricted = client('restricted', cfg.RESTRICTED_KEY);
const anonymous = client('anonymous');
const session = client('session');

const DEALS = [
  { name: 'SDK deal 1', amount: 5000, stage: 'proposal', region: 'emea', discount_approval_note: 'sdk note 1' },
  { name: 'SDK deal 2', amount: 7000, stage: 'negotiation', region: 'emea', discount_approval_note: 'sdk note 2' },
  { name: 'SDK deal 3', amount: 9000.5, stage: 'proposal', region: 'emea', discount_approval_note: 'sdk note 3' },
];

function assertRecordHas(record, fields, what) {
  for (const [k, v] of Object.entries(fields)) eq(record[k], v, `${what}.${k}`);
}

// ---------------------------------------------------------------- checks

// Discovery: GET /api/v1/discovery, anonymous, bare document (not the
// .well-known fallback, which the SDK tries silently when this fails).
await check('connect', async (mark) => {
  const doc = await main.connect();
  const c = oneCall(mark, 'GET', '/api/v1/discovery', 200);
  assert(c.reqHeaders.authorization === undefined, 'connect() sends no credentials; the request had an Authorization header');
  assertBare(c);
  eq(doc, c.json, 'connect() result');
  nonEmptyString(doc.name, 'discovery.name');
  nonEmptyString(doc.version, 'discovery.version');
  assert(['production', 'sandbox', 'development'].includes(doc.environment),
    `discovery.environment: expected production|sandbox|development, got ${show(doc.environment)}`);
  assert(isPlainObject(doc.routes), `discovery.routes: ${show(doc.routes)}`);
  eq(doc.routes.data, '/api/v1/data', 'discovery.routes.data');
  eq(doc.routes.metadata, '/api/v1/meta', 'discovery.routes.metadata');
  if ('auth' in doc.routes) eq(doc.routes.auth, '/api/v1/auth', 'discovery.routes.auth');
  assert(isPlainObject(doc.locale), `discovery.locale: ${show(doc.locale)}`);
  nonEmptyString(doc.locale.default, 'discovery.locale.default');
  assert(Array.isArray(doc.locale.supported), `discovery.locale.supported: ${show(doc.locale.supported)}`);
  assert(isPlainObject(doc.services), `discovery.services: ${show(doc.services)}`);
  assert(isPlainObject(doc.capabilities), `discovery.capabilities: ${show(doc.capabilities)}`);
  for (const key of WELL_KNOWN_CAPABILITY_KEYS) {
    const cap = doc.capabilities[key];
    assert(isPlainObject(cap) && typeof cap.enabled === 'boolean',
      `discovery.capabilities.${key}: expected {enabled: boolean}, got ${show(cap)}`);
  }
  const flags = main.capabilities;
  eq(Object.keys(flags ?? {}).sort(), [...WELL_KNOWN_CAPABILITY_KEYS].sort(), 'client.capabilities keys');
  for (const key of WELL_KNOWN_CAPABILITY_KEYS) {
    eq(flags[key], doc.capabilities[key].enabled, `client.capabilities.${key}`);
  }
  // The other clients discover too, as an application would.
  await restricted.connect();
  await session.connect();
  await anonymous.connect();
});

await check('data.create', async (mark) => {
  const created = [];
  for (const [i, deal] of DEALS.entries()) {
    const at = wire.length;
    const res = await main.data.create(OBJECT, deal);
    const c = oneCall(at, 'POST', `/api/v1/data/${OBJECT}`, 201);
    assertBearer(c, cfg.KEY);
    eq(JSON.parse(c.reqBody), deal, 'request body');
    assertBare(c);
    eq(res, c.json, 'data.create() result');
    keysExactly(res, ['object', 'id', 'record'], `create #${i + 1} response`);
    eq(res.object, OBJECT, 'object');
    nonEmptyString(res.id, 'id');
    eq(res.record.id, res.id, 'record.id');
    assertRecordHas(res.record, deal, 'record');
    nonEmptyString(res.record.created_at, 'record.created_at');
    nonEmptyString(res.record.updated_at, 'record.updated_at');
    created.push(res);
  }
  assert(new Set(created.map((r) => r.id)).size === 3, `ids are not distinct: ${show(created.map((r) => r.id))}`);
  state.created = created;
  [state.d1, state.d2, state.d3] = created.map((r) => r.id);
  assert(wire.length - mark === 3, 'expected three requests');
});

await check('data.get', async (mark) => {
  const [first] = need('created');
  const res = await main.data.get(OBJECT, first.id);
  const c = oneCall(mark, 'GET', `/api/v1/data/${OBJECT}/${first.id}`, 200);
  eq(c.params, [], 'query parameters');
  assertBearer(c, cfg.KEY);
  assertBare(c);
  keysExactly(res, ['object', 'id', 'record'], 'response');
  eq(res.object, OBJECT, 'object');
  eq(res.id, first.id, 'id');
  eq(res.record.id, first.id, 'record.id');
  assertRecordHas(res.record, DEALS[0], 'record');
  eq(res.record.created_at, first.record.created_at, 'record.created_at');
  eq(res.record.updated_at, first.record.updated_at, 'record.updated_at');
});

await check('data.update', async (mark) => {
  const d1 = need('d1');
  const patch = { stage: 'negotiation', amount: 5500 };
  const res = await main.data.update(OBJECT, d1, patch);
  const c = oneCall(mark, 'PATCH', `/api/v1/data/${OBJECT}/${d1}`, 200);
  eq(JSON.parse(c.reqBody), patch, 'request body');
  assertBare(c);
  keysExactly(res, ['object', 'id', 'record'], 'response');
  eq(res.object, OBJECT, 'object');
  eq(res.id, d1, 'id');
  eq(res.record.id, d1, 'record.id');
  // The whole record comes back, patched.
  assertRecordHas(res.record, { ...DEALS[0], ...patch }, 'record');
  const again = await main.data.get(OBJECT, d1);
  assertRecordHas(again.record, { ...DEALS[0], ...patch }, 'record read back');
});

// The canonical options: where (a plain object: one implicit-equality query
// parameter per key), fields, orderBy, limit.
await check('data.find.canonical', async (mark) => {
  const [, d2, d3] = [need('d1'), need('d2'), need('d3')];
  const res = await main.data.find(OBJECT, {
    where: { region: 'emea' },
    fields: ['name', 'amount', 'stage'],
    orderBy: ['-amount'],
    limit: 2,
  });
  const c = oneCall(mark, 'GET', `/api/v1/data/${OBJECT}`, 200);
  eq(c.params, [['top', '2'], ['sort', '-amount'], ['select', 'name,amount,stage'], ['region', 'emea']], 'query parameters the SDK sent');
  assertBare(c);
  eq(res, c.json, 'data.find() result');
  keysWithin(res, ['object', 'records', 'total', 'hasMore'], ['object', 'records', 'hasMore'], 'response');
  eq(res.object, OBJECT, 'object');
  assert(Array.isArray(res.records), `records: ${show(res.records)}`);
  for (const r of res.records) keysWithin(r, ['id', 'name', 'amount', 'stage'], ['name', 'amount', 'stage'], 'a selected record');
  eq(res.records.map((r) => [r.name, r.amount, r.stage]), [['SDK deal 3', 9000.5, 'proposal'], ['SDK deal 2', 7000, 'negotiation']], 'records (name, amount, stage)');
  for (const [r, id] of res.records.map((r, i) => [r, [d3, d2][i]])) if ('id' in r) eq(r.id, id, 'record id');
  totalIs(res, 3);
  eq(res.hasMore, true, 'hasMore');
});

// The legacy options: a filter AST (sent as `filter=<JSON>`), top, sort.
await check('data.find.legacy', async (mark) => {
  const [d2, d3] = [need('d2'), need('d3')];
  const filter = ['and', ['region', '=', 'emea'], ['amount', '>=', 7000]];
  const res = await main.data.find(OBJECT, { filter, top: 10, sort: 'amount' });
  const c = oneCall(mark, 'GET', `/api/v1/data/${OBJECT}`, 200);
  eq(c.params, [['top', '10'], ['sort', 'amount'], ['filter', JSON.stringify(filter)]], 'query parameters the SDK sent');
  assertBare(c);
  keysWithin(res, ['object', 'records', 'total', 'hasMore'], ['object', 'records', 'hasMore'], 'response');
  eq(res.object, OBJECT, 'object');
  eq(res.records.map((r) => r.id), [d2, d3], 'record ids, by amount ascending');
  assertRecordHas(res.records[0], DEALS[1], 'records[0]');
  assertRecordHas(res.records[1], DEALS[2], 'records[1]');
  totalIs(res, 2);
  eq(res.hasMore, false, 'hasMore');
});

// POST /api/v1/data/:object/query with the QueryAST the SDK's builder makes
// (where as a filter AST, orderBy as [{field, order}]).
await check('data.query.builder', async (mark) => {
  const [d2, d3] = [need('d2'), need('d3')];
  const ast = createQuery(OBJECT)
    .select('name', 'amount')
    .where((f) => f.equals('region', 'emea').greaterThan('amount', 6000))
    .orderBy('amount', 'desc')
    .limit(10)
    .build();
  const res = await main.data.query(OBJECT, ast);
  const c = oneCall(mark, 'POST', `/api/v1/data/${OBJECT}/query`, 200);
  eq(JSON.parse(c.reqBody), {
    object: OBJECT,
    fields: ['name', 'amount'],
    where: ['and', ['region', '=', 'emea'], ['amount', '>', 6000]],
    orderBy: [{ field: 'amount', order: 'desc' }],
    limit: 10,
  }, 'request body');
  assertBare(c);
  keysWithin(res, ['object', 'records', 'total', 'hasMore'], ['object', 'records', 'hasMore'], 'response');
  eq(res.object, OBJECT, 'object');
  for (const r of res.records) keysWithin(r, ['id', 'name', 'amount'], ['name', 'amount'], 'a selected record');
  eq(res.records.map((r) => [r.name, r.amount]), [['SDK deal 3', 9000.5], ['SDK deal 2', 7000]], 'records (name, amount)');
  for (const [r, id] of res.records.map((r, i) => [r, [d3, d2][i]])) if ('id' in r) eq(r.id, id, 'record id');
  totalIs(res, 2);
  eq(res.hasMore, false, 'hasMore');
});

// The same route with a FilterCondition object ($and/$or/$gte), offset and a
// page that ends exactly at the last match.
await check('data.query.filter-object', async (mark) => {
  need('d1');
  const query = {
    object: OBJECT,
    where: { $and: [{ region: 'emea' }, { $or: [{ stage: 'negotiation' }, { amount: { $gte: 9000 } }] }] },
    fields: ['name', 'stage'],
    orderBy: [{ field: 'name', order: 'asc' }],
    limit: 2,
    offset: 1,
  };
  const res = await main.data.query(OBJECT, query);
  const c = oneCall(mark, 'POST', `/api/v1/data/${OBJECT}/query`, 200);
  eq(JSON.parse(c.reqBody), query, 'request body');
  assertBare(c);
  keysWithin(res, ['object', 'records', 'total', 'hasMore'], ['object', 'records', 'hasMore'], 'response');
  for (const r of res.records) keysWithin(r, ['id', 'name', 'stage'], ['name', 'stage'], 'a selected record');
  eq(res.records.map((r) => [r.name, r.stage]), [['SDK deal 2', 'negotiation'], ['SDK deal 3', 'proposal']], 'records (name, stage)');
  totalIs(res, 3);
  eq(res.hasMore, false, 'hasMore');
});

// POST /api/v1/actions/:object/:action {recordId, params}; upstream answers
// {success: true, data: <the handler's result>}.
await check('actions.invoke', async (mark) => {
  const d2 = need('d2');
  const res = await main.actions.invoke(OBJECT, 'mark_won', { recordId: d2 });
  const c = oneCall(mark, 'POST', `/api/v1/actions/${OBJECT}/mark_won`, 200);
  eq(JSON.parse(c.reqBody), { recordId: d2, params: {} }, 'request body');
  assertBearer(c, cfg.KEY);
  assert(isPlainObject(c.json) && c.json.success === true && 'data' in c.json,
    `response: expected the {success: true, data} envelope, got ${clip(c.text)}`);
  eq(res.success, true, 'invoke() success');
  eq(res.data, c.json.data, 'invoke() data');
  // The action's result is the updated record, bare or as {object, id, record}.
  const record = isPlainObject(res.data?.record) ? res.data.record : res.data;
  assert(isPlainObject(record), `data: expected the updated record, got ${show(res.data)}`);
  if (isPlainObject(res.data?.record)) {
    eq(res.data.object, OBJECT, 'data.object');
    eq(res.data.id, d2, 'data.id');
  }
  eq(record.id, d2, 'the record id in data');
  eq(record.stage, 'closed_won', 'the record stage in data');
  const after = await main.data.get(OBJECT, d2);
  assertRecordHas(after.record, { ...DEALS[1], stage: 'closed_won' }, 'record read back');
});

await check('actions.invoke.unknown', async (mark) => {
  const d3 = need('d3');
  const res = await main.actions.invoke(OBJECT, 'no_such_action', { recordId: d3 });
  oneCall(mark, 'POST', `/api/v1/actions/${OBJECT}/no_such_action`, 404);
  keysExactly(res, ['success', 'error'], 'invoke() result');
  eq(res.success, false, 'invoke() success');
  nonEmptyString(res.error, 'invoke() error');
});

await check('data.delete', async (mark) => {
  const d1 = need('d1');
  const res = await main.data.delete(OBJECT, d1);
  const c = oneCall(mark, 'DELETE', `/api/v1/data/${OBJECT}/${d1}`, 200);
  eq(c.reqBody, undefined, 'request body');
  // Bare, like the other data routes; its own `success` is no envelope.
  eq(c.json, { object: OBJECT, id: d1, success: true }, 'response body');
  eq(res, c.json, 'data.delete() result');
});

// A missing record: the SDK throws an Error carrying the HTTP status and code.
await check('data.get.missing', async (mark) => {
  const d1 = need('d1');
  await rejects(main.data.get(OBJECT, d1), 404, undefined, 'get of a deleted record');
  const c = oneCall(mark, 'GET', `/api/v1/data/${OBJECT}/${d1}`, 404);
  assert(isPlainObject(c.json), `error body is not JSON: ${clip(c.text ?? '')}`);
  assert(!c.text.includes(DEALS[0].name), 'the error body echoes the deleted record');
  const at = wire.length;
  await rejects(main.data.delete(OBJECT, d1), 404, undefined, 'delete of a deleted record');
  oneCall(at, 'DELETE', `/api/v1/data/${OBJECT}/${d1}`, 404);
  const at2 = wire.length;
  await rejects(main.data.update(OBJECT, d1, { stage: 'proposal' }), 404, undefined, 'update of a deleted record');
  oneCall(at2, 'PATCH', `/api/v1/data/${OBJECT}/${d1}`, 404);
});

await check('data.find.unknown-object', async (mark) => {
  await rejects(main.data.find('crm_no_such_object', { limit: 1 }), 404, undefined, 'find on an unknown object');
  oneCall(mark, 'GET', '/api/v1/data/crm_no_such_object', 404);
});

const CRM_OBJECTS = ['crm_account', 'crm_contact', 'crm_fx_rate', 'crm_note', 'crm_opportunity', 'crm_opportunity_line', 'crm_product'];

await check('meta.getItems', async (mark) => {
  const res = await main.meta.getItems('object');
  const c = oneCall(mark, 'GET', '/api/v1/meta/object', 200);
  assertBare(c);
  eq(res, c.json, 'getItems() result');
  keysExactly(res, ['type', 'items'], 'response');
  eq(res.type, 'object', 'type');
  assert(Array.isArray(res.items), `items: ${show(res.items)}`);
  const names = res.items.map((item) => item?.name);
  for (const n of names) nonEmptyString(n, 'an item name');
  eq(new Set(names).size, names.length, 'item names are distinct');
  const absent = CRM_OBJECTS.filter((n) => !names.includes(n));
  assert(absent.length === 0, `items lack ${show(absent)}; names: ${show(names)}`);
  const opp = res.items.find((item) => item.name === OBJECT);
  eq(opp.label, 'Opportunity', `${OBJECT}.label`);
  assert(isPlainObject(opp.fields), `${OBJECT}.fields: expected a record keyed by field name, got ${show(opp.fields)}`);
  for (const f of ['name', 'amount', 'stage', 'region']) assert(isPlainObject(opp.fields[f]), `${OBJECT}.fields.${f}: ${show(opp.fields[f])}`);
  eq(opp.fields.stage.type, 'select', `${OBJECT}.fields.stage.type`);
});

await check('meta.getItem', async (mark) => {
  const res = await main.meta.getItem('object', OBJECT);
  const c = oneCall(mark, 'GET', `/api/v1/meta/object/${OBJECT}`, 200);
  assertBare(c);
  eq(res, c.json, 'getItem() result');
  eq(res.type, 'object', 'type');
  eq(res.name, OBJECT, 'name');
  assert(isPlainObject(res.item), `item: expected the object definition under "item", got ${show(res.item)}`);
  assert(!('fields' in res) && !('label' in res), 'the definition is spread at the top level; upstream puts it under "item" only');
  eq(res.item.name, OBJECT, 'item.name');
  eq(res.item.label, 'Opportunity', 'item.label');
  assert(isPlainObject(res.item.fields), `item.fields: expected a record keyed by field name, got ${show(res.item.fields)}`);
  eq(res.item.fields.amount?.type, 'currency', 'item.fields.amount.type');
  eq(res.item.fields.stage?.type, 'select', 'item.fields.stage.type');
  eq(res.item.fields.stage?.options?.map((o) => o.value), ['prospecting', 'proposal', 'negotiation', 'closed_won', 'closed_lost'], 'item.fields.stage.options values');
});

// ---- canaries: what the restricted user must never see, and the main user does.

await check('control.main-reads-hidden-field', async (mark) => {
  const res = await main.data.get(OBJECT, cfg.HIDDEN_ID);
  oneCall(mark, 'GET', `/api/v1/data/${OBJECT}/${cfg.HIDDEN_ID}`, 200);
  eq(res.record?.name, cfg.HIDDEN_NAME, 'record.name');
  eq(res.record?.discount_approval_note, cfg.HIDDEN_CANARY, 'record.discount_approval_note (the canary, readable by the main user)');
});

await check('control.main-sees-private-record', async (mark) => {
  const [d2, d3] = [need('d2'), need('d3')];
  const res = await main.data.find(OBJECT, { limit: 100 });
  oneCall(mark, 'GET', `/api/v1/data/${OBJECT}`, 200);
  eq(res.records.map((r) => r.id).sort(), [cfg.HIDDEN_ID, cfg.PRIVATE_ID, d2, d3].sort(), 'record ids');
  totalIs(res, 4);
  eq(res.records.find((r) => r.id === cfg.PRIVATE_ID).name, cfg.PRIVATE_CANARY, 'the private record name');
});

await check('restricted.get.hidden-field', async (mark) => {
  const res = await restricted.data.get(OBJECT, cfg.HIDDEN_ID);
  const c = oneCall(mark, 'GET', `/api/v1/data/${OBJECT}/${cfg.HIDDEN_ID}`, 200);
  assertBearer(c, cfg.RESTRICTED_KEY);
  assertBare(c);
  keysExactly(res, ['object', 'id', 'record'], 'response');
  eq(res.id, cfg.HIDDEN_ID, 'id');
  eq(res.record.id, cfg.HIDDEN_ID, 'record.id');
  eq(res.record.name, cfg.HIDDEN_NAME, 'record.name');
  assert(!('discount_approval_note' in res.record), `record carries the unreadable field: ${show(res.record)}`);
  assert(!c.text.includes(cfg.HIDDEN_CANARY), 'the response carries the canary');
});

await check('restricted.find', async (mark) => {
  need('d2');
  const res = await restricted.data.find(OBJECT, { limit: 100 });
  const c = oneCall(mark, 'GET', `/api/v1/data/${OBJECT}`, 200);
  assertBearer(c, cfg.RESTRICTED_KEY);
  assertBare(c);
  eq(res.records.map((r) => r.id), [cfg.HIDDEN_ID], 'record ids (only the restricted user\'s own)');
  totalIs(res, 1);
  eq(res.hasMore, false, 'hasMore');
  assert(!('discount_approval_note' in res.records[0]), `record carries the unreadable field: ${show(res.records[0])}`);
});

// Selecting the unreadable field: refused, or answered without it. The same
// request without it must work, so that a refusal is about that field.
await check('restricted.find.select-hidden', async (mark) => {
  const control = await restricted.data.find(OBJECT, { fields: ['name'], limit: 100 });
  eq(control.records.map((r) => r.name), [cfg.HIDDEN_NAME], 'records selecting only name (control)');
  mark = wire.length;
  let res;
  try {
    res = await restricted.data.find(OBJECT, { fields: ['name', 'discount_approval_note'], limit: 100 });
  } catch (err) {
    assert([400, 403].includes(err.httpStatus), `refused with HTTP ${err.httpStatus} (expected 400 or 403): ${err.message}`);
    oneCall(mark, 'GET', `/api/v1/data/${OBJECT}`, err.httpStatus);
    return;
  }
  oneCall(mark, 'GET', `/api/v1/data/${OBJECT}`, 200);
  eq(res.records.length, 1, 'number of records');
  const [r] = res.records;
  keysWithin(r, ['id', 'name'], ['name'], 'the selected record');
  eq(r.name, cfg.HIDDEN_NAME, 'record.name');
  if ('id' in r) eq(r.id, cfg.HIDDEN_ID, 'record.id');
});

// Filtering on the unreadable field must not work as an oracle for its value.
// The same filter on a readable field must work, so that a refusal is about
// that field.
await check('restricted.query.hidden-field-filter', async (mark) => {
  const control = await restricted.data.query(OBJECT, { object: OBJECT, where: { name: cfg.HIDDEN_NAME } });
  eq(control.records.map((r) => r.id), [cfg.HIDDEN_ID], 'records filtered on name (control)');
  mark = wire.length;
  let res;
  try {
    res = await restricted.data.query(OBJECT, { object: OBJECT, where: { discount_approval_note: cfg.HIDDEN_CANARY } });
  } catch (err) {
    assert([400, 403].includes(err.httpStatus), `refused with HTTP ${err.httpStatus} (expected 400 or 403): ${err.message}`);
    oneCall(mark, 'POST', `/api/v1/data/${OBJECT}/query`, err.httpStatus);
    return;
  }
  oneCall(mark, 'POST', `/api/v1/data/${OBJECT}/query`, 200);
  eq(res.records, [], 'records matched by a filter on the unreadable field');
  totalIs(res, 0);
});

await check('restricted.query.private-record', async (mark) => {
  const res = await restricted.data.query(OBJECT, { object: OBJECT, where: { name: cfg.PRIVATE_CANARY } });
  oneCall(mark, 'POST', `/api/v1/data/${OBJECT}/query`, 200);
  eq(res.records, [], 'records');
  totalIs(res, 0);
  eq(res.hasMore, false, 'hasMore');
});

// Another user's private record reads exactly like a missing one.
await check('restricted.get.private-record', async (mark) => {
  const d1 = need('d1');
  const privateErr = await rejects(restricted.data.get(OBJECT, cfg.PRIVATE_ID), 404, undefined, 'get of another user\'s private record');
  oneCall(mark, 'GET', `/api/v1/data/${OBJECT}/${cfg.PRIVATE_ID}`, 404);
  const missingErr = await rejects(restricted.data.get(OBJECT, d1), 404, undefined, 'get of a deleted record');
  eq(privateErr.code, missingErr.code, 'error code, private vs missing');
  eq(privateErr.message.replaceAll(cfg.PRIVATE_ID, '<id>'), missingErr.message.replaceAll(d1, '<id>'), 'error message, private vs missing');
  // Another user's record the main user made (also private to them).
  await rejects(restricted.data.get(OBJECT, need('d3')), 404, undefined, 'get of the main user\'s record');
});

await check('restricted.write.private-record', async (mark) => {
  await rejects(restricted.data.update(OBJECT, cfg.PRIVATE_ID, { stage: 'closed_lost' }), 404, undefined, 'update');
  await rejects(restricted.data.delete(OBJECT, cfg.PRIVATE_ID), 404, undefined, 'delete');
  const at = wire.length;
  const res = await restricted.actions.invoke(OBJECT, 'mark_won', { recordId: cfg.PRIVATE_ID });
  oneCall(at, 'POST', `/api/v1/actions/${OBJECT}/mark_won`, 404);
  eq(res.success, false, 'invoke() success');
  const calls = wire.slice(mark).map((c) => `${c.method} ${c.status}`);
  eq(calls, ['PATCH 404', 'DELETE 404', 'POST 404'], 'requests');
  // Nothing changed: the main user reads it as it was.
  const after = await main.data.get(OBJECT, cfg.PRIVATE_ID);
  eq(after.record.name, cfg.PRIVATE_CANARY, 'name read back by the main user');
  eq(after.record.stage, 'negotiation', 'stage read back by the main user');
});

await check('anonymous.rejected', async (mark) => {
  await rejects(anonymous.data.find(OBJECT, { limit: 1 }), 401, undefined, 'anonymous find');
  const c = oneCall(mark, 'GET', `/api/v1/data/${OBJECT}`, 401);
  assert(c.reqHeaders.authorization === undefined, 'the anonymous client sent credentials');
  await rejects(anonymous.data.get(OBJECT, cfg.HIDDEN_ID), 401, undefined, 'anonymous get');
  await rejects(anonymous.meta.getItems('object'), 401, undefined, 'anonymous meta');
});

// The error codes upstream's REST server answers (the SDK exposes them as
// `error.code`; applications branch on them).
// objectos keeps its own error codes in upstream's `{error: {code, message}}`
// shape (the SDK reads both); its documentation maps them to upstream's
// (not_found: RECORD_NOT_FOUND / OBJECT_NOT_FOUND, unauthenticated: UNAUTHENTICATED).
await check('errors.codes', async () => {
  const d1 = need('d1');
  await rejects(main.data.get(OBJECT, d1), 404, 'not_found', 'get of a deleted record');
  await rejects(restricted.data.get(OBJECT, cfg.PRIVATE_ID), 404, 'not_found', 'get of another user\'s private record');
  await rejects(main.data.find('crm_no_such_object', { limit: 1 }), 404, 'not_found', 'find on an unknown object');
  await rejects(anonymous.data.find(OBJECT, { limit: 1 }), 401, 'unauthenticated', 'anonymous find');
});

// better-auth's POST /api/v1/auth/sign-in/email, bare {token, user, ...}; the
// SDK keeps the token and sends it as a Bearer credential from then on.
await check('auth.login', async (mark) => {
  const res = await session.auth.login({ email: cfg.LOGIN_EMAIL, password: cfg.LOGIN_PASSWORD });
  const c = oneCall(mark, 'POST', '/api/v1/auth/sign-in/email', 200);
  eq(JSON.parse(c.reqBody), { email: cfg.LOGIN_EMAIL, password: cfg.LOGIN_PASSWORD }, 'request body');
  eq(c.reqHeaders.origin, BASE, 'Origin request header');
  eq(c.reqHeaders['content-type'], 'application/json', 'Content-Type request header');
  assert(c.reqHeaders.authorization === undefined, 'sign-in sent credentials');
  assert(isPlainObject(c.json), `response is not a JSON object: ${clip(c.text ?? '')}`);
  assert(!('success' in c.json), `response is wrapped in an envelope; better-auth answers bare: ${clip(c.text)}`);
  nonEmptyString(c.json.token, 'token (top level of the response)');
  assert(isPlainObject(c.json.user), `user: ${show(c.json.user)}`);
  nonEmptyString(c.json.user.id, 'user.id');
  eq(c.json.user.email, cfg.LOGIN_EMAIL, 'user.email');
  for (const secret of ['password', 'password_hash', 'passwordHash', 'hash']) {
    assert(!(secret in c.json.user), `user carries ${secret}`);
  }
  assert(!c.text.includes(cfg.LOGIN_PASSWORD), 'the response echoes the password');
  eq(res.token, c.json.token, 'login() token');
  eq(res.data, { token: c.json.token, user: c.json.user }, 'login() data');
  eq(session.token, c.json.token, 'the token the SDK keeps');
  assert(res.token !== cfg.RESTRICTED_KEY, 'the session token is the API key');
  state.sessionToken = res.token;
});

await check('auth.login.session', async (mark) => {
  const token = need('sessionToken');
  const res = await session.data.find(OBJECT, { limit: 100 });
  const c = oneCall(mark, 'GET', `/api/v1/data/${OBJECT}`, 200);
  assertBearer(c, token);
  eq(res.records.map((r) => r.id), [cfg.HIDDEN_ID], 'record ids (only the signed-in user\'s own)');
  totalIs(res, 1);
  assert(!('discount_approval_note' in res.records[0]), `record carries the unreadable field: ${show(res.records[0])}`);
  const one = await session.data.get(OBJECT, cfg.HIDDEN_ID);
  eq(one.record?.name, cfg.HIDDEN_NAME, 'record.name via get');
  await rejects(session.data.get(OBJECT, cfg.PRIVATE_ID), 404, undefined, 'get of another user\'s private record');
});

await check('auth.login.wrong-password', async (mark) => {
  const fresh = client('session');
  await rejects(fresh.auth.login({ email: cfg.LOGIN_EMAIL, password: `${cfg.LOGIN_PASSWORD}-wrong` }), 401, undefined, 'sign-in with a wrong password');
  oneCall(mark, 'POST', '/api/v1/auth/sign-in/email', 401);
  eq(fresh.token, undefined, 'the token the SDK keeps');
});

// Last: nothing the restricted user (by key or by session) received, in any
// check above, carries a canary.
await check('restricted.no-canary-anywhere', async () => {
  const theirs = wire.filter((c) => c.who === 'restricted' || c.who === 'session');
  assert(theirs.length >= 10, `only ${theirs.length} exchanges of the restricted user were recorded`);
  for (const c of theirs) {
    for (const canary of [cfg.HIDDEN_CANARY, cfg.PRIVATE_CANARY]) {
      assert(!(c.text ?? '').includes(canary), `${c.method} ${c.path} (${c.status}) answered the canary ${canary}: ${clip(c.text)}`);
    }
  }
});

const failed = results.filter(([, ok]) => !ok).map(([name]) => name);
console.log(`summary: ${results.length - failed.length} ok, ${failed.length} failed${failed.length ? ` (${failed.join(', ')})` : ''}`);
process.exit(failed.length === 0 ? 0 : 1);
