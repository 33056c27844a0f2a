// orderflow web console. Plain ES2020, no build step, no dependencies.
//
// Routing is by hash: #/ overview, #/orders[?filters], #/orders/<id>,
// #/workflows, #/inventory, #/shops. Each view renders into <main id="view"> and sets
// data-view / data-ready (tests wait on data-ready="true").
//
// Every piece of data goes into the DOM through textContent / attributes
// (the el() helper); never innerHTML with data.
//
// Live updates come from the SSE stream /api/v1/live: an `order` event
// carries one order summary; the current view upserts it or refetches
// (throttled to one refetch per second); an `overview` event carries the
// whole overview (at most one a second), which the overview renders as is.

'use strict';
import './push.js'; // "Notify this device": alerts by Web Push (self-contained)

// ---------------------------------------------------------------- constants

const LIFECYCLES = ['pending', 'processing', 'on_hold', 'exception', 'fulfilled', 'delivered', 'completed', 'cancelled'];
const TERMINAL = new Set(['completed', 'cancelled']);
const TIKTOK_STATUSES = ['UNPAID', 'ON_HOLD', 'AWAITING_SHIPMENT', 'PARTIALLY_SHIPPING', 'AWAITING_COLLECTION', 'IN_TRANSIT', 'DELIVERED', 'COMPLETED', 'CANCELLED'];
const DESTRUCTIVE = new Set(['cancel', 'skip', 'reject', 'run_from', 'move', 'approve_cancel_request', 'reject_cancel_request']);
const ACTION_LABELS = {
  resume: 'Resume', retry: 'Retry', skip: 'Skip step', approve: 'Approve', reject: 'Reject',
  hold: 'Hold', release: 'Release', cancel: 'Cancel', run_from: 'Run from step', move: 'Move to workflow', note: 'Add note',
  approve_cancel_request: 'Approve buyer\'s cancel', reject_cancel_request: 'Reject buyer\'s cancel',
};
/** TikTok's cancel reasons as kinds (the server maps each to the key of the shop's market and the order's status). */
const CANCEL_KINDS = [
  ['out_of_stock', 'Out of stock'], ['pricing_error', 'Pricing error'],
  ['address_undeliverable', 'Unable to deliver to buyer address'], ['buyer_requested', 'Buyer requested cancellation'],
  ['buyer_did_not_pay', 'Buyer did not pay on time'], ['potential_fraud', 'High chance of cancellation / refund (JP)'],
];
const REJECT_KINDS = [
  ['packed', 'Product has been packed / shipped'], ['agreement', 'Reached an agreement with the buyer'],
  ['invalid_reason', 'Invalid reason for cancellation'], ['on_schedule', 'Delivery is on schedule'],
];
const ACTION_EXPLAIN = {
  cancel: 'Each order\'s workflow stops and undoes what it did (the stock it reserved released, the labels it bought voided); TikTok is told, with the reason you choose, where it still takes a seller cancellation. A shipped order is refused.',
  approve_cancel_request: 'TikTok will cancel the order as the buyer asked; its workflow undoes what it did (the stock it reserved released, the labels it bought voided).',
  reject_cancel_request: 'The buyer\'s request will be refused with the reason you choose; the order goes on.',
  skip: 'The current step will be skipped without running it; the workflow continues with the next step.',
  reject: 'The approval will be rejected; the workflow takes its rejection path (usually cancelling the order).',
  run_from: 'The workflow will jump to the chosen step and run from there.',
  move: 'The order will move to the chosen workflow version and go on at the step it is at (or from the start if that version lacks it).',
};
const BULK_ACTIONS = ['resume', 'retry', 'skip', 'hold', 'release', 'cancel', 'approve', 'reject'];

// ---------------------------------------------------------------- DOM helpers

/** Creates an element. attrs: class, text, dataset via data-*, on* listeners, other attributes. */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = String(v);
      else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
      else if (v === true) e.setAttribute(k, '');
      else e.setAttribute(k, String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** replaceChildren without the null/false holes conditional children leave. */
function setKids(node, ...kids) {
  node.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
}

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function svgIcon(pathD) {
  const ns = 'http://www.w3.org/2000/svg';
  const s = document.createElementNS(ns, 'svg');
  s.setAttribute('viewBox', '0 0 24 24');
  s.setAttribute('aria-hidden', 'true');
  s.setAttribute('class', 'icon');
  const p = document.createElementNS(ns, 'path');
  p.setAttribute('d', pathD);
  s.append(p);
  return s;
}

// ---------------------------------------------------------------- formatting

function fmtDuration(totalS) {
  const neg = totalS < 0;
  let s = Math.abs(Math.round(totalS));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  let out;
  if (d > 0) out = `${d}d ${h}h`;
  else if (h > 0) out = `${h}h ${m}m`;
  else if (m > 0) out = `${m}m`;
  else out = `${s}s`;
  return neg ? `-${out}` : out;
}

function fmtAbs(ms) {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function fmtRel(ms, now = Date.now()) {
  const diff = Math.round((now - ms) / 1000);
  const a = Math.abs(diff);
  let t;
  if (a < 10) return diff >= 0 ? 'just now' : 'in a moment';
  if (a < 60) t = `${a} s`;
  else if (a < 3600) t = `${Math.round(a / 60)} min`;
  else if (a < 86400) t = `${Math.round(a / 3600)} h`;
  else t = `${Math.round(a / 86400)} d`;
  return diff >= 0 ? `${t} ago` : `in ${t}`;
}

/** A <time> that shows relative time, absolute in title; kept fresh by a timer. */
function timeEl(ms) {
  if (ms === null || ms === undefined) return el('span', { class: 'muted', text: '—' });
  const d = new Date(ms);
  return el('time', { datetime: d.toISOString(), 'data-ts': ms, title: fmtAbs(ms), text: fmtRel(ms) });
}

function refreshTimes() {
  const now = Date.now();
  for (const t of $$('time[data-ts]')) t.textContent = fmtRel(Number(t.dataset.ts), now);
}

function money(v) {
  if (v === null || v === undefined) return '—';
  return Number(v).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function cents(v) {
  if (v === null || v === undefined) return '—';
  return money(Number(v) / 100);
}

function lifecycleChip(lc) {
  return el('span', { class: `chip chip-${lc || 'none'}`, text: lc || '—' });
}

function timeLeftChip(s, lifecycle) {
  if (s === null || s === undefined) return el('span', { class: 'muted', text: '—' });
  const cls = s < 0 ? 'chip chip-late' : (s < 6 * 3600 ? 'chip chip-risk' : 'chip chip-plain');
  const text = s < 0 ? `late ${fmtDuration(-s)}` : fmtDuration(s);
  if (lifecycle && !['pending', 'processing', 'on_hold', 'exception'].includes(lifecycle)) {
    return el('span', { class: 'muted', text: '—', title: 'already shipped or closed' });
  }
  return el('span', { class: cls, text, title: `${s} s left before the ship-by deadline` });
}

/** A workflow key `name@version` shown as its name (and a short version), full key in title. */
function wfLabel(key, withVersion = false) {
  const [name, version] = String(key).split('@');
  const e = el('span', { class: 'mono small wf-key', title: key, text: name });
  if (withVersion && version) e.append(el('span', { class: 'muted', text: `@${version.slice(0, 8)}` }));
  return e;
}

function mono(text, cls = '') {
  return el('span', { class: `mono ${cls}`.trim(), text });
}

// ---------------------------------------------------------------- feedback

let toastTimer = 0;
function toast(message, isError = false) {
  const t = $('#toast');
  t.textContent = message;
  t.classList.toggle('error', !!isError);
  t.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.remove('show'), isError ? 8000 : 4000);
}

/** Opens #confirm; resolves to {ok, reason}. Esc or "Keep it" cancels. */
function confirmDialog(text, { title = 'Are you sure?', yes = 'Confirm', askReason = false, choices = null, choiceLabel = 'TikTok cancel reason' } = {}) {
  const dlg = $('#confirm');
  const opener = document.activeElement;
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-yes').textContent = yes;
  const reasonWrap = $('#confirm-reason-wrap');
  const reason = $('#confirm-reason');
  reasonWrap.hidden = !askReason;
  reason.value = '';
  const choiceWrap = $('#confirm-choice-wrap');
  const choice = $('#confirm-choice');
  choiceWrap.hidden = !choices;
  $('#confirm-choice-label').textContent = choiceLabel;
  choice.replaceChildren(...(choices || []).map(([value, label]) => el('option', { value, text: label })));
  return new Promise((resolve) => {
    let settled = false;
    const finish = (ok) => {
      if (settled) return;
      settled = true;
      cleanup();
      if (dlg.open) dlg.close();
      if (opener && typeof opener.focus === 'function' && document.contains(opener)) opener.focus();
      resolve({ ok, reason: reason.value.trim(), choice: choices ? choice.value : null });
    };
    const onSubmit = (ev) => { ev.preventDefault(); finish(true); };
    const onNo = () => finish(false);
    const onCancel = (ev) => { ev.preventDefault(); finish(false); };
    const onClose = () => finish(false);
    const form = $('#confirm-form');
    function cleanup() {
      form.removeEventListener('submit', onSubmit);
      $('#confirm-no').removeEventListener('click', onNo);
      dlg.removeEventListener('cancel', onCancel);
      dlg.removeEventListener('close', onClose);
    }
    form.addEventListener('submit', onSubmit);
    $('#confirm-no').addEventListener('click', onNo);
    dlg.addEventListener('cancel', onCancel);
    dlg.addEventListener('close', onClose);
    dlg.showModal();
    // Focus the safe choice first; the destructive one is a Tab away.
    $('#confirm-no').focus();
  });
}

// ---------------------------------------------------------------- API

const session = { csrf: '', auth: true, user: '', role: 'admin' };
/** May the signed-in person change anything? (The server refuses a viewer either way.) */
const canAct = () => session.role !== 'viewer';

class ApiError extends Error {
  constructor(status, message, data) { super(message); this.status = status; this.data = data; }
}

/**
 * Fetches an API path. Returns {status, ok, data}; data is parsed JSON when
 * the response is JSON, else text. 401 anywhere sends the browser to /login.
 */
async function api(path, { method = 'GET', json, body, contentType } = {}) {
  const headers = { Accept: 'application/json' };
  let payload;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(json);
  } else if (body !== undefined) {
    headers['Content-Type'] = contentType || 'text/plain; charset=utf-8';
    payload = body;
  }
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = session.csrf;
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin', cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, `network error: ${e.message}`, null);
  }
  if (res.status === 401) {
    location.assign('/login');
    throw new ApiError(401, 'not signed in', null);
  }
  const ct = res.headers.get('Content-Type') || '';
  let data = null;
  if (res.status !== 204) {
    data = ct.includes('json') ? await res.json().catch(() => null) : await res.text().catch(() => '');
  }
  return { status: res.status, ok: res.ok, data };
}

/** Like api() but throws ApiError on non-2xx, with the server's {error} message. */
async function apiOk(path, opts) {
  const r = await api(path, opts);
  if (!r.ok) {
    const msg = (r.data && typeof r.data === 'object' && r.data.error) || (typeof r.data === 'string' && r.data) || `HTTP ${r.status}`;
    throw new ApiError(r.status, msg, r.data);
  }
  return r.data;
}

const enc = encodeURIComponent;

async function loadSession() {
  try {
    const r = await api('/api/v1/console/session');
    if (r.ok && r.data) {
      session.csrf = r.data.csrf || '';
      session.auth = r.data.auth !== false;
      session.user = r.data.user || '';
      session.role = r.data.role || 'viewer';
    }
  } catch (_) { /* keep defaults; the API calls will tell */ }
  $('#logout').hidden = !session.auth;
  const who = $('#whoami');
  if (who && session.auth && session.user) {
    who.hidden = false;
    who.textContent = `${session.user} · ${session.role}`;
  }
  const people = $('[data-nav="people"]');
  if (people) people.hidden = session.role !== 'admin';
}

async function logout() {
  try {
    await fetch('/logout', { method: 'POST', headers: { 'X-CSRF-Token': session.csrf }, credentials: 'same-origin' });
  } catch (_) { /* go to the login page anyway */ }
  location.assign('/login');
}

// ---------------------------------------------------------------- actions

/** The one-tap actions a list row shows: those the server allows now (`actions`) that need no choice but a confirmation. */
const ROW_ACTIONS = ['approve', 'reject', 'release', 'resume', 'skip', 'hold', 'cancel'];
function rowActions(summary) {
  if (!canAct()) return [];
  const allowed = new Set(summary.actions || []);
  return ROW_ACTIONS.filter((a) => allowed.has(a));
}

/** The order page's interventions: exactly those the server offers as allowed (notes have their own form). */
function orderActions(o) {
  if (!canAct()) return [];
  return (o.interventions || []).filter((x) => x.allowed && x.action !== 'note');
}

/** What the cancel dialog offers: the reasons TikTok takes for this order now. */
async function cancelChoices(orderId) {
  const r = await api(`/api/v1/orders/${enc(orderId)}/cancel-reasons`);
  if (!r.ok || !r.data) return { choices: CANCEL_KINDS, note: '' };
  if (!r.data.cancellable_on_tiktok) return { choices: null, note: ` TikTok is not told: ${r.data.why}.` };
  return { choices: r.data.reasons.map((x) => [x.kind, `${x.text} (${x.key})`]), note: '' };
}

/** A button for one intervention: a name, or the server's offer ({action, why, steps, workflows}). */
function actionButton(orderId, offer, onDone, { small = true } = {}) {
  const o = typeof offer === 'string' ? { action: offer } : offer;
  const action = o.action;
  const cls = ['btn', small ? 'btn-sm' : '', DESTRUCTIVE.has(action) ? 'btn-danger-ghost' : '', action === 'approve' ? 'btn-ok' : ''].join(' ').trim();
  const b = el('button', { type: 'button', class: cls, 'data-action': action, text: ACTION_LABELS[action] || action, 'aria-label': `${ACTION_LABELS[action] || action} order ${orderId}` });
  if (o.why) b.title = o.why;
  b.addEventListener('click', () => doAction(orderId, action, b, onDone, {}, o));
  return b;
}

/** The server's offer of `action` for the order as it stands now ({allowed, why, consequence, …}); null when it cannot be read. */
async function currentOffer(orderId, action) {
  const r = await api(`/api/v1/orders/${enc(orderId)}`);
  if (!r.ok || !r.data) return null;
  return (r.data.interventions || []).find((x) => x.action === action) || null;
}

/** Runs one intervention; destructive ones ask first, in the server's words: what it will do, and a button that names it. */
async function doAction(orderId, action, button, onDone, extra = {}, offer = {}) {
  const body = { ...extra };
  if (DESTRUCTIVE.has(action)) {
    // A list row knows the name only: ask the server what it will do now.
    if (!offer.consequence) {
      const now = await currentOffer(orderId, action);
      if (now && !now.allowed) {
        toast(`${ACTION_LABELS[action] || action} is not possible for order ${orderId}: ${now.why}`, true);
        if (onDone) onDone(orderId, action);
        return;
      }
      if (now) offer = { ...offer, ...now };
    }
    const consequence = offer.consequence || null;
    let what = consequence ? `${consequence.summary}.` : (offer.why ? `${offer.why}.` : (ACTION_EXPLAIN[action] || `${action} will be applied.`));
    let choices = null;
    let choiceLabel = 'TikTok cancel reason';
    if (action === 'cancel') {
      const c = await cancelChoices(orderId);
      choices = c.choices;
      // The consequence already says whether TikTok is told.
      if (!consequence) what += c.note;
    } else if (action === 'reject_cancel_request') {
      choices = REJECT_KINDS;
      choiceLabel = 'Reason for TikTok';
    } else if (action === 'run_from') {
      choices = (offer.steps || []).map((x) => [x, x]);
      choiceLabel = 'Step to run from';
    } else if (action === 'move') {
      choices = (offer.workflows || []).map((x) => [x, x]);
      choiceLabel = 'Workflow version';
    }
    const res = await confirmDialog(`Order ${orderId}: ${what}`, {
      title: `${ACTION_LABELS[action] || action} order ${orderId}?`,
      yes: (consequence && consequence.confirm) || ACTION_LABELS[action] || action,
      askReason: action === 'cancel' || action === 'reject',
      choices,
      choiceLabel,
    });
    if (!res.ok) return;
    if (action === 'cancel' && res.choice) body.cancel_reason = res.choice;
    if (action === 'reject_cancel_request' && res.choice) body.reason = res.choice;
    if (action === 'run_from' && res.choice) body.step = res.choice;
    if (action === 'move' && res.choice) body.workflow = res.choice;
    if (res.reason) {
      if (action === 'cancel') body.reason = res.reason;
      else body.note = res.reason;
    }
  }
  if (button) button.disabled = true;
  try {
    const r = await api(`/api/v1/orders/${enc(orderId)}/actions/${enc(action)}`, { method: 'POST', json: body });
    if (r.ok) {
      toast(`${ACTION_LABELS[action] || action}: accepted for order ${orderId}`);
      if (onDone) onDone(orderId, action);
    } else {
      const msg = (r.data && r.data.error) || `HTTP ${r.status}`;
      toast(`${ACTION_LABELS[action] || action} failed: ${msg}`, true);
      // The order moved on since the page drew it: draw what it allows now.
      if (r.status === 409 && onDone) onDone(orderId, action);
    }
  } catch (e) {
    if (e.status !== 401) toast(`${action} failed: ${e.message}`, true);
  } finally {
    if (button && document.contains(button)) button.disabled = false;
  }
}

// ---------------------------------------------------------------- view plumbing

const viewRoot = () => $('#view');
let current = { name: '', token: 0, onOrder: null, onOverview: null, cleanup: null };

function setReady(v) { viewRoot().setAttribute('data-ready', v ? 'true' : 'false'); }

/** Starts a view: clears #view, returns a token that tells whether the view is still current. */
function beginView(name, title) {
  if (current.cleanup) { try { current.cleanup(); } catch (_) { /* ignore */ } }
  const token = ++current.token;
  current = { name, token, onOrder: null, onOverview: null, cleanup: null };
  const root = viewRoot();
  root.setAttribute('data-view', name);
  setReady(false);
  root.replaceChildren();
  document.title = `${title} · orderflow`;
  for (const a of $$('.nav a')) {
    const on = a.dataset.nav === name || (name === 'order' && a.dataset.nav === 'orders');
    if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  return token;
}

const stillCurrent = (token) => current.token === token;

function pageHeader(title, ...right) {
  return el('div', { class: 'page-head' }, el('h1', { text: title }), el('div', { class: 'page-head-right' }, ...right));
}

function errorBox(message) {
  return el('div', { class: 'panel error-panel', role: 'alert' }, el('strong', { text: 'Could not load: ' }), message);
}

/**
 * Remembers which order row's control has focus inside `root`, so a
 * re-render (live updates) can put keyboard focus back; returns the restorer.
 */
function rememberFocus(root) {
  const a = document.activeElement;
  if (!a || !root.contains(a) || a === root) return () => {};
  const row = a.closest('[data-order-id]');
  const table = a.closest('[id]');
  if (!row) return () => {};
  const id = row.dataset.orderId;
  const action = a.dataset.action;
  const isLink = a.matches('a.order-link');
  const scope = table ? table.id : '';
  return () => {
    if (document.activeElement && document.activeElement !== document.body && document.activeElement !== root) return;
    const sel = `[data-order-id="${CSS.escape(id)}"]`;
    const within = (scope && document.getElementById(scope)) || root;
    const r = within.querySelector(sel) || root.querySelector(sel);
    if (!r) return;
    const target = action ? r.querySelector(`[data-action="${CSS.escape(action)}"]`) : (isLink ? r.querySelector('a.order-link') : null);
    if (target) target.focus();
  };
}

/** Calls fn at most once per `ms`, always running a trailing call. */
function throttle(fn, ms = 1000) {
  let last = 0;
  let timer = 0;
  return (...args) => {
    const now = Date.now();
    const wait = last + ms - now;
    if (wait <= 0 && !timer) {
      last = now;
      fn(...args);
    } else if (!timer) {
      timer = setTimeout(() => { timer = 0; last = Date.now(); fn(...args); }, Math.max(wait, 0));
    }
  };
}

function table(id, headers, cls = '') {
  const t = el('table', { id, class: `table ${cls}`.trim() });
  const tr = el('tr');
  for (const h of headers) {
    const th = typeof h === 'string' ? el('th', { scope: 'col', text: h }) : h;
    tr.append(th);
  }
  t.append(el('thead', null, tr), el('tbody'));
  return t;
}

function td(label, content, cls) {
  return el('td', { 'data-label': label, class: cls }, content);
}

// ---------------------------------------------------------------- overview

async function viewOverview() {
  const token = beginView('overview', 'Overview');
  const root = viewRoot();
  const counts = el('section', { id: 'counts', class: 'counts', 'aria-label': 'Orders per lifecycle state' });
  const atRisk = el('section', { class: 'panel' },
    el('div', { class: 'panel-head' }, el('h2', { text: 'At risk of missing ship-by' }), el('a', { href: '#/orders?at_risk=true', class: 'link-sm', text: 'All at risk' })),
    el('div', { id: 'at-risk-wrap' }));
  const exc = el('section', { class: 'panel' },
    el('div', { class: 'panel-head' }, el('h2', { text: 'Exception queue' }), el('a', { href: '#/orders?state=exception', class: 'link-sm', text: 'Open in orders' })),
    el('div', { id: 'exceptions-wrap' }));
  const thr = el('section', { class: 'panel', id: 'throughput', 'aria-label': 'Throughput and fulfilment time' });
  const printDay = el('a', { id: 'print-today', class: 'btn', href: '/api/v1/labels/print', target: '_blank', rel: 'noopener', text: "Print today's labels" });
  root.append(pageHeader('Overview'), el('div', { class: 'btn-row' }, printDay), counts, el('div', { class: 'grid-2' }, atRisk, exc), thr);

  const errSlot = el('div', { class: 'overview-errors' });
  root.insertBefore(errSlot, counts);
  // One call (GET /api/v1/overview: stats, the most urgent orders at risk
  // and the exceptions), then the live stream's `overview` events, which
  // the server computes once a second for every open tab.
  const render = (ov) => {
    if (!stillCurrent(token) || !ov || !ov.stats) return;
    const restore = rememberFocus(root);
    const st = ov.stats;
    renderCounts(counts, st.by_lifecycle || {}, st.total);
    renderThroughput(thr, st);
    renderAtRisk($('#at-risk-wrap'), ov.at_risk || [], refreshSoon, st.at_risk);
    renderExceptions($('#exceptions-wrap'), ov.exceptions || [], refreshSoon, st.exceptions_open);
    errSlot.replaceChildren();
    restore();
    setReady(true);
  };
  const refresh = async () => {
    try {
      render(await apiOk('/api/v1/overview'));
    } catch (e) {
      if (!stillCurrent(token)) return;
      if (!/not signed in/.test(e.message)) errSlot.replaceChildren(errorBox(`overview: ${e.message}`));
      setReady(true);
    }
  };
  // After an action of this page: the next overview, not a second's wait.
  const refreshSoon = throttle(refresh, 1000);
  current.onOverview = render;
  await refresh();
}

/**
 * Makes `parent`'s children the nodes for `items`, in order, keeping every
 * node whose item did not change (same key and signature): a live update
 * never replaces, moves or blurs what the keyboard is on unless that very
 * order changed. Returns the nodes, in order.
 */
function reconcile(parent, items, keyOf, sigOf, build) {
  const old = new Map();
  for (const n of Array.from(parent.children)) if (n.dataset && n.dataset.key) old.set(n.dataset.key, n);
  const nodes = items.map((it) => {
    const key = keyOf(it);
    const sig = sigOf(it);
    const prev = old.get(key);
    if (prev && prev.dataset.sig === sig) { old.delete(key); return prev; }
    const n = build(it);
    n.dataset.key = key;
    n.dataset.sig = sig;
    return n;
  });
  for (const n of old.values()) n.remove();
  nodes.forEach((n, i) => {
    const at = parent.children[i];
    if (at !== n) parent.insertBefore(n, at || null);
  });
  for (const extra of Array.from(parent.children).slice(nodes.length)) extra.remove();
  return nodes;
}

function renderCounts(box, byLc, total) {
  const states = [...LIFECYCLES, ...Object.keys(byLc).filter((k) => !LIFECYCLES.includes(k))];
  // The same cards as last time: only their numbers change.
  const cards = Array.from(box.querySelectorAll('a.count-card'));
  if (cards.length === states.length && cards.every((c, i) => c.dataset.state === states[i])) {
    for (const c of cards) {
      const n = c.querySelector('.count');
      const v = String(byLc[c.dataset.state] ?? 0);
      if (n.textContent !== v) n.textContent = v;
    }
    const all = box.querySelector('.count-all');
    if (all) all.textContent = String(total ?? 0);
    return;
  }
  box.replaceChildren(
    ...states.map((s) => el('a', { class: `count-card state-${s}`, href: `#/orders?state=${enc(s)}`, 'data-state': s },
      el('span', { class: 'count-label' }, el('span', { class: `dot dot-${s}`, 'aria-hidden': 'true' }), s),
      el('span', { class: 'count', text: String(byLc[s] ?? 0) }))),
    el('div', { class: 'count-card count-total', 'data-total': '' },
      el('span', { class: 'count-label', text: 'total' }), el('span', { class: 'count-all', text: String(total ?? 0) })),
  );
}

function renderAtRisk(wrap, orders, after, total) {
  const list = orders.slice().sort((a, b) => (a.time_left_s ?? Infinity) - (b.time_left_s ?? Infinity)).slice(0, 50);
  let t = wrap.querySelector('table#at-risk');
  if (!list.length) {
    if (!wrap.querySelector('.empty')) wrap.replaceChildren(emptyState('No order is at risk. Nice.'));
    return;
  }
  if (!t) {
    t = table('at-risk', ['Order', 'Time left', 'State', 'Ship by', el('th', { scope: 'col' }, el('span', { class: 'sr-only', text: 'Actions' }))]);
    wrap.replaceChildren(t);
  }
  const canRelease = (o) => canAct() && (o.actions || []).includes('release');
  const rows = reconcile(t.tBodies[0], list, (o) => o.order_id,
    (o) => [o.lifecycle, o.ship_by, o.shop_id, canRelease(o)].join('|'),
    (o) => {
      const acts = canRelease(o) ? [actionButton(o.order_id, 'release', after)] : [];
      return el('tr', { 'data-order-id': o.order_id },
        td('Order', el('div', { class: 'order-cell' },
          el('a', { class: 'order-link mono', href: `#/orders/${enc(o.order_id)}`, text: o.order_id }),
          el('span', { class: 'muted small mono', text: o.shop_id || '' }))),
        td('Time left', timeLeftChip(o.time_left_s), 'time-left'),
        td('State', lifecycleChip(o.lifecycle), 'lifecycle'),
        td('Ship by', o.ship_by ? timeEl(o.ship_by * 1000) : '—', 'nowrap'),
        td('Actions', el('div', { class: 'btn-row' }, acts), acts.length ? 'actions' : 'actions empty-cell'));
    });
  // Time left moves every second: its chip is patched, the row stays.
  rows.forEach((tr, i) => {
    const cell = tr.querySelector('td.time-left');
    const chip = timeLeftChip(list[i].time_left_s);
    if (cell && cell.textContent !== chip.textContent) cell.replaceChildren(chip);
  });
  const all = Math.max(total ?? 0, list.length);
  let note = wrap.querySelector('p.more-note');
  const text = all > list.length ? `Showing the ${list.length} most urgent of ${all}.` : '';
  if (text && !note) { note = el('p', { class: 'muted small more-note' }); wrap.append(note); }
  if (note) { note.textContent = text; note.hidden = !text; }
}

function renderExceptions(wrap, orders, after, total) {
  const list = orders.slice().sort((a, b) => (b.updated_ms || 0) - (a.updated_ms || 0));
  if (!list.length) {
    if (!wrap.querySelector('.empty')) {
      wrap.replaceChildren(emptyState('The exception queue is empty.'));
      wrap.firstChild.id = 'exceptions';
    }
    return;
  }
  let box = wrap.querySelector('div#exceptions');
  if (!box) {
    box = el('div', { id: 'exceptions', class: 'exc-list' });
    wrap.replaceChildren(box);
  }
  reconcile(box, list, (o) => o.order_id,
    (o) => [o.last_error, o.workflow, o.updated_ms, rowActions(o).join(',')].join('|'),
    (o) => el('article', { class: 'exc-item', 'data-order-id': o.order_id },
      el('div', { class: 'exc-top' },
        el('a', { class: 'order-link mono', href: `#/orders/${enc(o.order_id)}`, text: o.order_id }),
        el('span', { class: 'muted small' }, o.workflow ? wfLabel(o.workflow) : '', o.workflow ? ' · ' : '', timeEl(o.updated_ms))),
      el('p', { class: 'error', text: o.last_error || 'no error recorded' }),
      el('div', { class: 'btn-row' }, rowActions(o).map((a) => actionButton(o.order_id, a, after)))));
  let note = wrap.querySelector('p.more-note');
  const text = (total ?? 0) > list.length ? `Showing ${list.length} of ${total}; open them all in orders.` : '';
  if (text && !note) { note = el('p', { class: 'muted small more-note' }); wrap.append(note); }
  if (note) { note.textContent = text; note.hidden = !text; }
}

function renderThroughput(box, st) {
  // Nothing in it takes focus, but a screen reader re-reads what is
  // replaced: only a change rebuilds it.
  const sig = JSON.stringify([st.fulfillment_p50_s, st.fulfillment_p95_s, st.eligible_fulfillment_p95_s, st.late_dispatch_rate, st.at_risk, st.late, st.exceptions_open, st.total, st.orders_per_day, st.top_skus]);
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  const figures = [
    ['Fulfilment p50', st.fulfillment_p50_s != null ? fmtDuration(st.fulfillment_p50_s) : '—', 'receipt → ship call', 'p50'],
    ['Fulfilment p95', st.fulfillment_p95_s != null ? fmtDuration(st.fulfillment_p95_s) : '—', 'receipt → ship call', 'p95'],
    ['SLA p95', st.eligible_fulfillment_p95_s != null ? fmtDuration(st.eligible_fulfillment_p95_s) : '—', st.fulfillment_target_s != null ? `eligible → ship call (target ${fmtDuration(st.fulfillment_target_s)})` : 'eligible → ship call', 'sla-p95'],
    ['Late dispatch', st.late_dispatch_rate != null ? `${(st.late_dispatch_rate * 100).toFixed(1)} %` : '—', 'shipped after ship-by', 'late-rate'],
    ['At risk', String(st.at_risk ?? 0), `${st.late ?? 0} already late`, 'at-risk'],
    ['Exceptions open', String(st.exceptions_open ?? 0), 'need an operator', 'exceptions'],
    ['Orders', String(st.total ?? 0), 'all time', 'total'],
  ];
  const days = Object.entries(st.orders_per_day || {}).sort((a, b) => a[0].localeCompare(b[0])).slice(-14);
  const max = Math.max(1, ...days.map((d) => d[1]));
  const bars = el('ol', { class: 'bars', 'aria-label': 'Orders received per day (UTC), last 14 days' },
    days.map(([day, n]) => {
      const h = el('span', { class: 'bar-fill' });
      h.style.height = `${Math.max(2, Math.round((n / max) * 100))}%`;
      return el('li', { class: 'bar', title: `${day}: ${n} orders`, 'data-day': day },
        el('span', { class: 'bar-n', text: String(n) }), el('span', { class: 'bar-track' }, h), el('span', { class: 'bar-day', text: day.slice(5) }));
    }));
  const top = (st.top_skus || []).slice(0, 5);
  box.replaceChildren(
    el('div', { class: 'panel-head' }, el('h2', { text: 'Throughput and fulfilment' })),
    el('dl', { class: 'figures' }, figures.map(([k, v, sub, key]) => el('div', { class: 'figure', 'data-figure': key },
      el('dt', { text: k }), el('dd', null, el('span', { class: 'figure-v', text: v }), el('span', { class: 'figure-sub', text: sub }))))),
    el('div', { class: 'grid-2 tight' },
      el('div', null, el('h3', { text: 'Orders per day' }), days.length ? bars : emptyState('No orders yet.')),
      el('div', null, el('h3', { text: 'Top SKUs' }), top.length
        ? el('ol', { class: 'top-skus' }, top.map(([sku, n]) => {
          const info = (st.top_sku_names || {})[sku];
          return el('li', null,
            info && info.image_url ? el('img', { class: 'thumb', src: info.image_url, alt: '', width: '32', height: '32', loading: 'lazy', referrerpolicy: 'no-referrer' }) : null,
            el('div', null, info && info.name ? el('div', { class: 'sku-name', text: info.name }) : null, mono(sku)),
            el('span', { class: 'muted', text: `${n} units` }));
        }))
        : emptyState('No SKUs ordered yet.'))),
  );
}

function emptyState(text) {
  return el('p', { class: 'empty', text });
}

// ---------------------------------------------------------------- orders list

const FILTER_KEYS = ['state', 'tiktok_status', 'shop', 'sku', 'q', 'at_risk', 'sort', 'from', 'to'];
const SORTS = [['-received', 'Newest first'], ['received', 'Oldest first'], ['-updated', 'Recently updated'], ['ship_by', 'Ship-by, soonest'], ['-total', 'Total, highest'], ['total', 'Total, lowest']];
const VIEWS_KEY = 'orderflow.savedViews';

/** The list's filters as the API takes them: dates become Unix ms (local midnight; `to` inclusive). */
function apiFilters(f) {
  const out = { ...f };
  delete out.from; delete out.to;
  if (f.from) { const t = new Date(`${f.from}T00:00:00`).getTime(); if (!Number.isNaN(t)) out.created_from = String(t); }
  if (f.to) { const t = new Date(`${f.to}T00:00:00`).getTime(); if (!Number.isNaN(t)) out.created_to = String(t + 86400000 - 1); }
  return out;
}

function savedViews() {
  try { return JSON.parse(localStorage.getItem(VIEWS_KEY) || '[]').filter((v) => v && v.name); } catch (_) { return []; }
}

function parseQuery(qs) {
  const p = new URLSearchParams(qs || '');
  const f = {};
  for (const k of FILTER_KEYS) {
    const v = p.get(k);
    if (v !== null && v !== '') f[k] = v;
  }
  return f;
}

async function viewOrders(query) {
  const token = beginView('orders', 'Orders');
  const root = viewRoot();
  const filters = parseQuery(query);
  const selected = new Set();
  const rows = new Map(); // order_id -> summary
  let next = null;

  // Filters form.
  const stateSel = el('select', { id: 'f-state', name: 'state' }, el('option', { value: '', text: 'Any state' }),
    LIFECYCLES.map((s) => el('option', { value: s, text: s })));
  const ttSel = el('select', { id: 'f-tiktok', name: 'tiktok_status' }, el('option', { value: '', text: 'Any TikTok status' }),
    TIKTOK_STATUSES.map((s) => el('option', { value: s, text: s })));
  const q = el('input', { id: 'f-q', name: 'q', type: 'search', placeholder: 'Order id or buyer', autocomplete: 'off' });
  const shop = el('input', { id: 'f-shop', name: 'shop', type: 'text', placeholder: 'Shop id', autocomplete: 'off' });
  const sku = el('input', { id: 'f-sku', name: 'sku', type: 'text', placeholder: 'SKU id', autocomplete: 'off' });
  const risk = el('input', { id: 'f-risk', name: 'at_risk', type: 'checkbox', value: 'true' });
  const sortSel = el('select', { id: 'f-sort', name: 'sort' }, SORTS.map(([v, t]) => el('option', { value: v, text: t })));
  const from = el('input', { id: 'f-from', name: 'from', type: 'date' });
  const to = el('input', { id: 'f-to', name: 'to', type: 'date' });
  sortSel.value = filters.sort || '-received';
  from.value = filters.from || '';
  to.value = filters.to || '';
  stateSel.value = filters.state || '';
  ttSel.value = filters.tiktok_status || '';
  if (filters.tiktok_status && ttSel.value !== filters.tiktok_status) {
    ttSel.append(el('option', { value: filters.tiktok_status, text: filters.tiktok_status }));
    ttSel.value = filters.tiktok_status;
  }
  q.value = filters.q || '';
  shop.value = filters.shop || '';
  sku.value = filters.sku || '';
  risk.checked = filters.at_risk === 'true';
  const form = el('form', { id: 'filters', class: 'filters', role: 'search' },
    field('f-q', 'Search', q, 'grow'),
    field('f-state', 'State', stateSel),
    field('f-tiktok', 'TikTok status', ttSel),
    field('f-shop', 'Shop', shop),
    field('f-sku', 'SKU', sku),
    field('f-from', 'Received from', from),
    field('f-to', 'Received to', to),
    field('f-sort', 'Sort', sortSel),
    el('div', { class: 'field field-check' }, risk, el('label', { for: 'f-risk', text: 'At risk only' })),
    el('div', { class: 'field field-buttons' },
      el('button', { type: 'submit', class: 'btn btn-primary', text: 'Apply' }),
      el('button', { type: 'reset', class: 'btn btn-ghost', text: 'Clear' })));

  // Bulk bar.
  const bulkAction = el('select', { id: 'bulk-action' }, BULK_ACTIONS.map((a) => el('option', { value: a, text: ACTION_LABELS[a] || a })));
  const bulkCount = el('span', { id: 'bulk-count', class: 'bulk-count' });
  const bulkRun = el('button', { id: 'bulk-run', type: 'button', class: 'btn btn-primary', text: 'Run' });
  const bulkClear = el('button', { type: 'button', class: 'btn btn-ghost', text: 'Clear selection' });
  const bulkProgress = el('div', { id: 'bulk-progress', class: 'bulk-progress', role: 'status', 'aria-live': 'polite', hidden: true });
  const bulk = el('section', { id: 'bulk', class: 'bulk', 'aria-label': 'Bulk actions', hidden: true },
    bulkCount,
    el('label', { for: 'bulk-action', class: 'sr-only', text: 'Action for the selected orders' }),
    bulkAction, bulkRun, bulkClear);

  const selectAll = el('input', { id: 'select-all', type: 'checkbox', 'aria-label': 'Select all orders shown' });
  const t = table('orders', [el('th', { scope: 'col', class: 'col-select' }, selectAll), 'Order', 'State', 'TikTok status', 'Workflow', 'Ship by', 'Updated', 'Error', 'Actions'], 'orders-table');
  const tbody = t.tBodies[0];
  const more = el('button', { id: 'more', type: 'button', class: 'btn', text: 'Load more', hidden: true });
  const countLine = el('p', { class: 'muted small', id: 'orders-count', role: 'status' });
  const empty = el('p', { class: 'empty', text: 'No orders match these filters.', hidden: true });
  const stateCounts = el('nav', { id: 'state-counts', class: 'state-counts', 'aria-label': 'Orders per state' });
  const csv = el('a', { id: 'export-csv', class: 'btn', href: '/api/v1/orders?format=csv', download: 'orders.csv', text: 'Export CSV' });
  const viewSel = el('select', { id: 'saved-views' });
  const saveView = el('button', { id: 'save-view', type: 'button', class: 'btn', text: 'Save view' });
  const dropView = el('button', { id: 'drop-view', type: 'button', class: 'btn btn-ghost', text: 'Delete view' });
  function renderViews() {
    const views = savedViews();
    viewSel.replaceChildren(el('option', { value: '', text: views.length ? 'Saved views…' : 'No saved views' }),
      views.map((v, i) => el('option', { value: String(i), text: v.name })));
    dropView.hidden = !views.length;
  }
  renderViews();
  const tools = el('div', { class: 'list-tools btn-row' },
    el('label', { for: 'saved-views', class: 'sr-only', text: 'Saved views' }), viewSel, saveView, dropView, csv);

  root.append(pageHeader('Orders'), form, tools, stateCounts, bulk, bulkProgress, el('div', { class: 'table-wrap' }, t), empty, el('div', { class: 'more-row' }, countLine, more));

  function field(id, label, input, extra = '') {
    return el('div', { class: `field ${extra}`.trim() }, el('label', { for: id, text: label }), input);
  }

  function currentFilters() {
    const f = {};
    for (const [k, v] of new FormData(form).entries()) if (v !== '') f[k] = String(v);
    return f;
  }

  function syncBulk() {
    for (const id of Array.from(selected)) if (!rows.has(id)) selected.delete(id);
    bulk.hidden = selected.size === 0;
    bulkCount.textContent = `${selected.size} selected`;
    const boxes = $$('input.select', tbody);
    selectAll.checked = boxes.length > 0 && boxes.every((b) => b.checked);
    selectAll.indeterminate = !selectAll.checked && boxes.some((b) => b.checked);
  }

  const afterAction = (id) => {
    // Live events normally update the row; this is the fallback when SSE is down.
    setTimeout(() => patchFromOrder(id), 600);
  };

  async function patchFromOrder(id) {
    if (!stillCurrent(token) || !rows.has(id)) return;
    try {
      const o = await apiOk(`/api/v1/orders/${enc(id)}`);
      if (!stillCurrent(token)) return;
      const s = rows.get(id);
      upsert({ ...s, lifecycle: o.lifecycle, tiktok_status: o.tiktok_status, workflow: o.workflow, last_error: o.last_error, updated_ms: o.updated_ms ?? s.updated_ms });
    } catch (_) { /* the live stream will catch up */ }
  }

  function rowFor(s) {
    const box = el('input', { type: 'checkbox', class: 'select', 'aria-label': `Select order ${s.order_id}` });
    box.checked = selected.has(s.order_id);
    box.addEventListener('change', () => {
      if (box.checked) selected.add(s.order_id); else selected.delete(s.order_id);
      tr.classList.toggle('selected', box.checked);
      syncBulk();
    });
    const tr = el('tr', { 'data-order-id': s.order_id, 'data-lifecycle': s.lifecycle, class: selected.has(s.order_id) ? 'selected' : '' },
      el('td', { class: 'col-select', 'data-label': 'Select' }, el('label', { class: 'select-hit' }, box)),
      td('Order', el('div', { class: 'order-cell' },
        el('a', { class: 'order-link mono', href: `#/orders/${enc(s.order_id)}`, text: s.order_id }),
        el('span', { class: 'muted small' }, mono(s.shop_id || ''), s.items != null ? ` · ${s.items} item${s.items === 1 ? '' : 's'}` : '', s.total != null ? ` · ${money(s.total)}` : '')), 'order'),
      td('State', lifecycleChip(s.lifecycle), 'lifecycle'),
      td('TikTok', el('span', { class: 'mono small', text: s.tiktok_status || '—' }), 'status'),
      td('Workflow', s.workflow ? wfLabel(s.workflow) : el('span', { class: 'muted', text: '—' }), 'workflow'),
      td('Ship by', el('div', { class: 'shipby' }, timeLeftChip(s.time_left_s, s.lifecycle)), 'ship-by'),
      td('Updated', timeEl(s.updated_ms), 'updated'),
      td('Error', s.last_error ? el('span', { class: 'err-text', text: s.last_error, title: s.last_error }) : '', 'error'),
      td('Actions', el('div', { class: 'btn-row' }, rowActions(s).map((a) => actionButton(s.order_id, a, afterAction))), 'actions'),
    );
    if (!s.last_error) tr.querySelector('td.error').classList.add('empty-cell');
    return tr;
  }

  function upsert(s, { isNew = false } = {}) {
    rows.set(s.order_id, s);
    const fresh = rowFor(s);
    const old = tbody.querySelector(`tr[data-order-id="${CSS.escape(s.order_id)}"]`);
    if (old) {
      // Keep keyboard focus where it was if it sat inside the old row.
      const focused = old.contains(document.activeElement) ? document.activeElement : null;
      old.replaceWith(fresh);
      if (focused) {
        const same = focused.dataset.action ? fresh.querySelector(`[data-action="${focused.dataset.action}"]`) : fresh.querySelector(focused.tagName === 'A' ? 'a.order-link' : 'input.select');
        if (same) same.focus();
      }
      fresh.classList.add('flash');
    } else if (isNew) {
      tbody.prepend(fresh);
      fresh.classList.add('flash');
    } else {
      tbody.append(fresh);
    }
    empty.hidden = rows.size > 0;
  }

  /** Can we tell, from a summary alone, that it matches the active filters? */
  function matches(s, f) {
    if (f.state && s.lifecycle !== f.state) return false;
    if (f.tiktok_status && s.tiktok_status !== f.tiktok_status) return false;
    if (f.shop && s.shop_id !== f.shop) return false;
    if (f.sku || f.at_risk) return false; // not knowable from a summary
    if (f.q && !s.order_id.toLowerCase().includes(f.q.toLowerCase())) return false;
    return true;
  }

  let active = filters;
  async function load(append) {
    if (!stillCurrent(token)) return;
    const f = append ? active : currentFilters();
    active = f;
    const p = new URLSearchParams({ ...apiFilters(f), limit: '50' });
    if (append && next) p.set('after', next);
    csv.href = `/api/v1/orders?${new URLSearchParams({ ...apiFilters(f), format: 'csv' }).toString()}`;
    if (!append) {
      setReady(false);
      const qs = new URLSearchParams(f).toString();
      history.replaceState(null, '', qs ? `#/orders?${qs}` : '#/orders');
    }
    more.disabled = true;
    try {
      const data = await apiOk(`/api/v1/orders?${p.toString()}`);
      if (!stillCurrent(token)) return;
      if (!append) { tbody.replaceChildren(); rows.clear(); }
      for (const s of data.orders || []) upsert(s);
      next = data.next || null;
      more.hidden = !next;
      const of = data.matched != null ? ` of ${data.matched}` : (next ? ', more available' : '');
      countLine.textContent = `${rows.size} shown${of}${data.partial ? ' (still looking: load more)' : ''}`;
      if (data.counts) {
        stateCounts.replaceChildren(...LIFECYCLES.filter((lc) => data.counts[lc]).map((lc) => {
          const q = new URLSearchParams({ ...f, state: lc }).toString();
          return el('a', { class: `count-chip chip chip-${lc}`, href: `#/orders?${q}`, 'data-state': lc, 'aria-current': f.state === lc ? 'true' : null },
            el('span', { text: lc.replace('_', ' ') }), el('strong', { text: ` ${data.counts[lc]}` }));
        }));
      }
      empty.hidden = rows.size > 0;
      syncBulk();
    } catch (e) {
      if (!stillCurrent(token) || e.status === 401) return;
      toast(`Could not load orders: ${e.message}`, true);
    } finally {
      more.disabled = false;
      if (stillCurrent(token)) setReady(true);
    }
  }

  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(false); });
  form.addEventListener('reset', () => setTimeout(() => load(false), 0));
  for (const input of [stateSel, ttSel, risk, sortSel, from, to]) input.addEventListener('change', () => load(false));
  saveView.addEventListener('click', async () => {
    const name = (window.prompt('Name this view', '') || '').trim();
    if (!name) return;
    const views = savedViews().filter((v) => v.name !== name);
    views.push({ name, query: new URLSearchParams(currentFilters()).toString() });
    localStorage.setItem(VIEWS_KEY, JSON.stringify(views));
    renderViews();
    toast(`View “${name}” saved in this browser`);
  });
  dropView.addEventListener('click', () => {
    const i = Number(viewSel.value);
    if (viewSel.value === '') return;
    const views = savedViews();
    views.splice(i, 1);
    localStorage.setItem(VIEWS_KEY, JSON.stringify(views));
    renderViews();
  });
  viewSel.addEventListener('change', () => {
    const v = savedViews()[Number(viewSel.value)];
    if (v && viewSel.value !== '') location.hash = v.query ? `#/orders?${v.query}` : '#/orders';
  });
  more.addEventListener('click', () => load(true));
  selectAll.addEventListener('change', () => {
    for (const b of $$('input.select', tbody)) {
      b.checked = selectAll.checked;
      const id = b.closest('tr').dataset.orderId;
      if (b.checked) selected.add(id); else selected.delete(id);
      b.closest('tr').classList.toggle('selected', b.checked);
    }
    syncBulk();
  });
  bulkClear.addEventListener('click', () => {
    selected.clear();
    for (const b of $$('input.select', tbody)) { b.checked = false; b.closest('tr').classList.remove('selected'); }
    syncBulk();
  });
  bulkRun.addEventListener('click', async () => {
    const action = bulkAction.value;
    const ids = Array.from(selected);
    if (!ids.length) return;
    if (DESTRUCTIVE.has(action)) {
      const res = await confirmDialog(`${ACTION_LABELS[action] || action} ${ids.length} order${ids.length === 1 ? '' : 's'}. ${ACTION_EXPLAIN[action] || ''}`, {
        title: `${ACTION_LABELS[action] || action} ${ids.length} order${ids.length === 1 ? '' : 's'}?`,
        yes: `${ACTION_LABELS[action] || action} ${ids.length}`,
        askReason: action === 'cancel' || action === 'reject',
        // One kind for all: each order gets its market's key for it, and an
        // order whose market or status has none fails alone in the job.
        choices: action === 'cancel' ? CANCEL_KINDS : null,
      });
      if (!res.ok) return;
      const extra = {};
      if (res.reason) extra.reason = res.reason;
      if (action === 'cancel' && res.choice) extra.cancel_reason = res.choice;
      return runBulk(action, ids, extra);
    }
    return runBulk(action, ids, {});
  });

  async function runBulk(action, ids, extra) {
    bulkRun.disabled = true;
    bulkProgress.hidden = false;
    bulkProgress.setAttribute('data-state', 'running');
    bulkProgress.classList.remove('error');
    bulkProgress.replaceChildren(el('span', { class: 'bulk-text', text: `Starting ${action} on ${ids.length} orders…` }));
    try {
      const body = { action, ids };
      if (extra.reason) body.reason = extra.reason;
      if (extra.cancel_reason) body.cancel_reason = extra.cancel_reason;
      const { job } = await apiOk('/api/v1/bulk', { method: 'POST', json: body });
      await pollJob(job);
    } catch (e) {
      if (e.status === 401) return;
      bulkProgress.setAttribute('data-state', 'finished');
      bulkProgress.classList.add('error');
      bulkProgress.replaceChildren(el('span', { class: 'bulk-text', text: `Bulk ${action} failed: ${e.message}` }));
      toast(`Bulk ${action} failed: ${e.message}`, true);
    } finally {
      bulkRun.disabled = false;
    }
  }

  async function pollJob(jobId) {
    for (;;) {
      const j = await apiOk(`/api/v1/bulk/${enc(jobId)}`);
      if (!stillCurrent(token)) return;
      renderJob(j);
      if (j.state === 'finished') {
        toast(`Bulk ${j.action}: ${j.succeeded} ok, ${j.failed} failed`, j.failed > 0);
        // Rows update through the live stream; refresh the affected ones as a fallback.
        for (const r of j.results || []) setTimeout(() => patchFromOrder(r.order_id), 700);
        return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  function renderJob(j) {
    bulkProgress.setAttribute('data-state', j.state);
    bulkProgress.setAttribute('data-job', j.id);
    const pct = j.total ? Math.round((j.done / j.total) * 100) : 100;
    const bar = el('progress', { max: String(j.total || 1), value: String(j.done), 'aria-label': 'Bulk job progress' });
    const text = el('span', { class: 'bulk-text', text: `${j.done}/${j.total} done, ${j.succeeded} ok, ${j.failed} failed` });
    const failures = (j.results || []).filter((r) => !r.ok);
    const details = failures.length
      ? el('details', { class: 'bulk-failures' }, el('summary', { text: `${failures.length} failed` }),
        el('ul', null, failures.slice(0, 200).map((r) => el('li', null, mono(r.order_id), ': ', r.message))))
      : null;
    bulkProgress.classList.toggle('error', j.state === 'finished' && j.failed > 0);
    setKids(bulkProgress, el('div', { class: 'bulk-line' }, el('strong', { text: `${ACTION_LABELS[j.action] || j.action} · ${pct}%` }), text), bar, details);
  }

  current.onOrder = (s) => {
    if (rows.has(s.order_id)) upsert({ ...rows.get(s.order_id), ...s });
    // A new order goes to the top when it visibly matches the filters (ids
    // already shown are updated in place, so a later page never duplicates it).
    else if (matches(s, active)) upsert(s, { isNew: true });
    syncBulk();
  };

  await load(false);
}

// ---------------------------------------------------------------- order page

async function viewOrder(id) {
  const token = beginView('order', `Order ${id}`);
  const root = viewRoot();
  const box = el('div', { id: 'order', 'data-order-id': id });
  root.append(el('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, el('a', { href: '#/orders', text: 'Orders' }), el('span', { 'aria-hidden': 'true', text: ' / ' }), mono(id)), box);

  const refresh = async (markBusy) => {
    // A refresh scheduled by an action can fire after the user has moved
    // on: it must not touch another view's readiness.
    if (!stillCurrent(token)) return;
    if (markBusy) setReady(false);
    try {
      const [o, audit] = await Promise.all([apiOk(`/api/v1/orders/${enc(id)}`), apiOk(`/api/v1/orders/${enc(id)}/audit`)]);
      if (!stillCurrent(token)) return;
      renderOrder(box, o, audit, () => { setTimeout(() => refresh(true), 400); });
    } catch (e) {
      if (!stillCurrent(token) || e.status === 401) return;
      box.replaceChildren(errorBox(e.status === 404 ? `There is no order ${id}.` : e.message));
    }
    if (stillCurrent(token)) setReady(true);
  };
  const refreshSoon = throttle(() => refresh(false), 1000);
  current.onOrder = (s) => { if (s.order_id === id) refreshSoon(); };
  await refresh(true);
}

/** The carrier's own public tracking page for a number, when we know the carrier. */
function trackingUrl(carrier, number) {
  const c = String(carrier || '').toLowerCase();
  const n = encodeURIComponent(number);
  if (c.includes('usps')) return `https://tools.usps.com/go/TrackConfirmAction?tLabels=${n}`;
  if (c.includes('ups')) return `https://www.ups.com/track?tracknum=${n}`;
  if (c.includes('fedex')) return `https://www.fedex.com/fedextrack/?trknbr=${n}`;
  if (c.includes('dhl')) return `https://www.dhl.com/global-en/home/tracking/tracking-express.html?tracking-id=${n}`;
  if (c.includes('royal')) return `https://www.royalmail.com/track-your-item#/tracking-results/${n}`;
  return null;
}

function trackingEl(carrier, number) {
  const url = trackingUrl(carrier, number);
  return url
    ? el('a', { id: 'tracking-number', class: 'mono', href: url, target: '_blank', rel: 'noopener noreferrer', text: number, 'aria-label': `Track ${number} on the carrier's site` })
    : el('span', { id: 'tracking-number', class: 'mono', text: number });
}

/** The buyer and where it goes, as TikTok gives them; masked fields say so. */
function buyerPanel(o) {
  const b = o.buyer || {};
  const masked = new Set(b.masked || []);
  const show = (k, v) => (masked.has(k) ? el('span', null, el('span', { class: 'mono', text: v }), el('span', { class: 'muted small', text: ' (masked by TikTok)' })) : v);
  const address = b.full_address || [b.address_line1, b.address_line2, (b.districts || []).slice().reverse().join(', '), b.postal_code, b.region_code].filter(Boolean).join(', ');
  const pay = o.payment;
  return el('section', { id: 'buyer', class: 'panel', 'aria-labelledby': 'buyer-h' },
    el('h2', { id: 'buyer-h', text: 'Buyer' }),
    el('dl', { class: 'kv' },
      kv('Name', b.name ? el('span', { id: 'buyer-name' }, show('name', b.name)) : el('span', { class: 'muted', text: 'not given' })),
      b.email ? kv('Email', show('email', b.email)) : null,
      b.phone_number ? kv('Phone', show('phone_number', b.phone_number)) : null,
      kv('Ship to', address ? el('span', { id: 'buyer-address' }, show('full_address', address)) : el('span', { class: 'muted', text: 'not given' })),
      b.message ? kv('Message', el('q', { text: b.message })) : null,
      pay ? kv('Total', el('span', { id: 'order-total', text: `${pay.total} ${pay.currency}` })) : null));
}

/** The order's label: carrier, tracking, its documents to print, the parcel's scans. */
function shippingPanel(sh, tiktokTracking) {
  const label = sh && sh.label;
  const docs = (sh && sh.documents) || [];
  const names = { label: 'Print label', tiktok_shipping_document: 'Print TikTok label and packing slip' };
  const dl = el('dl', { class: 'kv' },
    kv('Label', label ? el('span', { id: 'label-state', text: `${label.carrier}${label.service ? ' ' + label.service : ''} (${label.provider})` }) : el('span', { id: 'label-state', class: 'muted', text: sh && sh.state === 'purchase_started' ? 'purchase started' : 'none' })),
    label && label.tracking_number ? kv('Tracking', trackingEl(label.carrier, label.tracking_number))
      : (tiktokTracking ? kv('Tracking', trackingEl('', tiktokTracking)) : null),
    sh && (sh.scans || []).length ? kv('Last scan', el('span', { id: 'last-scan', text: sh.scans[sh.scans.length - 1].status.replace(/_/g, ' ') })) : null,
    sh && (sh.voided || []).length ? kv('Voided', `${sh.voided.length} label(s)`) : null);
  const print = el('div', { class: 'btn-row', role: 'group', 'aria-label': 'Documents' },
    docs.map((d) => el('a', { class: 'btn print', 'data-doc': d.name, href: d.url, target: '_blank', rel: 'noopener', text: docs.length > 1 ? `${names[d.kind] || 'Print'} (${d.name})` : (names[d.kind] || 'Print') })));
  return el('section', { id: 'shipping', class: 'panel', 'aria-labelledby': 'shipping-h' },
    el('h2', { id: 'shipping-h', text: 'Shipping' }), dl, docs.length ? print : null);
}

function renderOrder(box, o, audit, afterAction) {
  const focusedAction = box.contains(document.activeElement) ? document.activeElement.dataset.action : null;
  const deadlines = o.deadlines || {};
  const shipBy = ['rts_sla_time', 'shipping_due_time', 'cancel_order_sla_time'].map((k) => deadlines[k]).filter((v) => v != null);
  const shipBySec = shipBy.length ? Math.min(...shipBy) : null;
  const left = shipBySec != null ? shipBySec - Math.floor(Date.now() / 1000) : null;

  // Head: id, chips, error, actions.
  const actions = el('div', { id: 'actions', class: 'btn-row actions-bar', role: 'group', 'aria-label': 'Interventions' },
    orderActions(o).map((a) => actionButton(o.order_id, a, afterAction, { small: false })));
  if (!actions.childElementCount) actions.append(el('span', { class: 'muted', text: 'No intervention applies to this order now.' }));

  const head = el('section', { class: 'panel order-head' },
    el('div', { class: 'order-title' },
      el('h1', null, el('span', { class: 'muted title-kicker', text: 'Order ' }), mono(o.order_id, 'order-id')),
      el('div', { class: 'chips' },
        el('span', { id: 'order-lifecycle', class: `chip chip-${o.lifecycle}`, text: o.lifecycle }),
        el('span', { class: 'chip chip-plain', title: 'Workflow instance state' }, el('span', { class: 'sr-only', text: 'Instance state: ' }), el('span', { id: 'order-state', text: o.instance_state || 'none' })),
        o.tiktok_status ? el('span', { class: 'chip chip-outline mono', title: 'TikTok status', text: o.tiktok_status }) : null,
        left != null && !['fulfilled', 'delivered', 'completed', 'cancelled'].includes(o.lifecycle) ? timeLeftChip(left) : null)),
    el('dl', { class: 'kv' },
      kv('Shop', mono(o.shop_id || '—')),
      kv('Workflow', o.workflow ? wfLabel(o.workflow, true) : '—'),
      kv('Step', o.step ? mono(o.step) : '—'),
      kv('Received', timeEl(o.received_ms)),
      kv('Updated', timeEl(o.updated_ms)),
      o.waiting ? kv('Waiting', waitingText(o.waiting)) : null,
      (o.in_flight || []).length ? kv('In flight', (o.in_flight || []).map((f) => `${f.action} (attempt ${f.attempt})`).join(', ')) : null,
      (o.tags || []).length ? kv('Tags', el('span', { class: 'tags' }, o.tags.map((t) => el('span', { class: 'tag', text: t })))) : null,
      o.fulfillment_type && o.fulfillment_type !== 'FULFILLMENT_BY_SELLER' ? kv('Fulfilled by', mono(o.fulfillment_type)) : null,
      (o.returns || []).length ? kv('Returns', el('span', { id: 'returns' }, o.returns.map((r) => el('span', { class: 'tag mono', text: `${r.return_id}: ${r.return_type} ${r.return_status}` })))) : null,
      o.cancel_request ? kv('Buyer asks to cancel', el('span', { id: 'cancel-request' },
        `${o.cancel_request.reason_text || o.cancel_request.reason} `,
        o.cancel_request.respond_by ? el('span', { class: 'muted', text: `(answer by ${new Date(o.cancel_request.respond_by * 1000).toLocaleString()})` }) : null)) : null),
    el('div', { class: o.last_error ? 'order-error' : 'order-error none' },
      el('span', { class: 'order-error-label', text: 'Last error' }),
      el('p', { id: 'order-error', class: o.last_error ? 'error' : 'muted', text: o.last_error || '' })),
    actions,
    canAct() ? noteForm(o.order_id, afterAction) : null,
  );
  if (!o.last_error) head.querySelector('.order-error').hidden = true;

  // Path through the workflow.
  const pathList = el('ol', { id: 'path', class: 'path' });
  const steps = Array.isArray(o.path) ? o.path : [];
  for (const [i, p] of steps.entries()) {
    const li = el('li', { 'data-step': p.step, 'data-status': p.status, 'data-kind': p.kind, class: `path-step ${p.status}` },
      el('span', { class: 'path-marker', 'aria-hidden': 'true', text: p.status === 'done' ? '✓' : String(i + 1) }),
      el('span', { class: 'path-body' }, mono(p.step, 'path-name'), el('span', { class: 'path-kind', text: p.kind })),
      el('span', { class: 'sr-only', text: ` — ${p.status}` }));
    if (p.status === 'current') li.setAttribute('aria-current', 'step');
    pathList.append(li);
  }
  const pathPanel = el('section', { class: 'panel path-panel', 'aria-labelledby': 'path-h' },
    el('h2', { id: 'path-h', text: 'Workflow path' }),
    steps.length ? pathList : el('div', null, pathList, emptyState(o.workflow ? 'The workflow path is not available.' : 'No workflow runs for this order.')),
    el('p', { class: 'legend small muted' },
      el('span', { class: 'lg lg-done', text: 'done' }), el('span', { class: 'lg lg-current', text: 'current' }), el('span', { class: 'lg lg-pending', text: 'pending' })));

  // Line items.
  const items = Array.isArray(o.line_items) ? o.line_items : [];
  const li = table('line-items', ['SKU', 'Product', 'Seller SKU', 'Price', 'Package']);
  for (const it of items) {
    li.tBodies[0].append(el('tr', { 'data-sku': it.sku_id },
      td('SKU', mono(it.sku_id || '')),
      td('Product', el('div', { class: 'product' },
        it.image_url ? el('img', { class: 'thumb', src: it.image_url, alt: '', width: '40', height: '40', loading: 'lazy', referrerpolicy: 'no-referrer' }) : null,
        el('div', null, el('div', { text: it.product_name || it.product_id || '' }), it.variant ? el('div', { class: 'muted small', text: it.variant }) : null))),
      td('Seller SKU', mono(it.seller_sku || '')),
      td('Price', cents(it.sale_price), 'num'),
      td('Package', it.package_id ? mono(it.package_id) : '—')));
  }
  const itemsPanel = el('section', { class: 'panel', 'aria-labelledby': 'items-h' },
    el('h2', { id: 'items-h', text: `Line items (${items.length})` }), items.length ? el('div', { class: 'table-wrap' }, li) : el('div', null, li, emptyState('No line items known.')));

  // Deadlines (Unix seconds).
  const dlNames = {
    rts_sla_time: 'Ready to ship by', shipping_due_time: 'Shipping due', cancel_order_sla_time: 'Auto-cancel at',
    tts_sla_time: 'TikTok SLA', collection_due_time: 'Collection due', delivery_due_time: 'Delivery due',
  };
  const dl = el('dl', { id: 'deadlines', class: 'kv deadlines' });
  for (const [k, label] of Object.entries(dlNames)) {
    const v = deadlines[k];
    if (v == null) continue;
    const isShipBy = v === shipBySec;
    dl.append(el('div', { class: isShipBy ? 'kv-row ship-by' : 'kv-row', 'data-deadline': k },
      el('dt', { text: label }), el('dd', null, timeEl(v * 1000), isShipBy ? el('span', { class: 'badge', text: 'ship-by' }) : null)));
  }
  if (!dl.childElementCount) dl.append(el('div', { class: 'kv-row' }, el('dt', { text: 'Deadlines' }), el('dd', { class: 'muted', text: 'none known' })));
  const dlPanel = el('section', { class: 'panel', 'aria-labelledby': 'dl-h' }, el('h2', { id: 'dl-h', text: 'Deadlines' }), dl);

  // Audit timeline: oldest first, newest last (a timeline reads downwards).
  const auditList = el('ol', { id: 'audit', class: 'timeline' });
  for (const a of (audit || []).slice().sort((x, y) => x.seq - y.seq)) {
    auditList.append(el('li', { 'data-seq': a.seq, 'data-source': a.source, class: `tl-item src-${a.source}` },
      el('div', { class: 'tl-head' }, el('span', { class: `src src-${a.source}`, text: a.source }), el('strong', { class: 'tl-kind', text: a.kind }), timeEl(a.at_ms)),
      a.detail ? el('p', { class: 'tl-detail', text: a.detail }) : null));
  }
  const auditPanel = el('section', { class: 'panel', 'aria-labelledby': 'audit-h' },
    el('h2', { id: 'audit-h', text: `Audit timeline (${(audit || []).length})` }), auditList);

  box.replaceChildren(head, el('div', { class: 'order-grid' },
    el('div', { class: 'order-main' }, buyerPanel(o), itemsPanel, auditPanel),
    el('div', { class: 'order-side' }, shippingPanel(o.shipping, o.tiktok_tracking_number), pathPanel, dlPanel)));
  if (focusedAction) {
    const b = box.querySelector(`#actions [data-action="${focusedAction}"]`);
    if (b) b.focus();
  }
}

function waitingText(w) {
  const parts = [];
  if (w.approval) parts.push(`approval: ${w.approval}`);
  if (w.timer) parts.push(`${w.timer}${w.step ? ` on ${w.step}` : ''}`);
  const wrap = el('span', null, parts.join(' · '));
  if (w.due_ms) wrap.append(' · due ', timeEl(w.due_ms));
  return wrap;
}

function kv(k, v) {
  return el('div', { class: 'kv-row' }, el('dt', { text: k }), el('dd', null, v));
}

function noteForm(orderId, after) {
  const input = el('input', { id: 'note-text', type: 'text', name: 'note', autocomplete: 'off', placeholder: 'Add a note to the audit trail' });
  const f = el('form', { class: 'note-form' },
    el('label', { for: 'note-text', class: 'sr-only', text: 'Note' }), input,
    el('button', { type: 'submit', class: 'btn', 'data-action': 'note', text: 'Add note' }));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) { input.focus(); return; }
    await doAction(orderId, 'note', f.querySelector('button'), after, { note: text });
    input.value = '';
  });
  return f;
}

// ---------------------------------------------------------------- approvals

/** Orders waiting for a decision, soonest deadline first: approve in one tap, reject with a reason. */
async function viewApprovals() {
  const token = beginView('approvals', 'Approvals');
  const root = viewRoot();
  const list = el('ul', { id: 'approvals', class: 'cards' });
  const empty = el('p', { class: 'empty', text: 'Nothing waits for a decision.', hidden: true });
  root.append(pageHeader('Approvals'), el('p', { class: 'muted', text: 'Orders a workflow holds for a person, the soonest deadline first. When the deadline passes, the workflow applies its default.' }), list, empty);
  const load = async () => {
    if (!stillCurrent(token)) return;
    setReady(false);
    try {
      const data = await apiOk('/api/v1/approvals?limit=100');
      if (!stillCurrent(token)) return;
      const focused = list.contains(document.activeElement) ? [document.activeElement.closest('li')?.dataset.orderId, document.activeElement.dataset.action] : null;
      list.replaceChildren(...(data.approvals || []).map((a) => approvalCard(a, load)));
      empty.hidden = list.childElementCount > 0;
      if (focused && focused[0]) {
        const b = list.querySelector(`li[data-order-id="${CSS.escape(focused[0])}"] [data-action="${focused[1]}"]`);
        if (b) b.focus();
      }
    } catch (e) {
      if (stillCurrent(token) && e.status !== 401) list.replaceChildren(errorBox(e.message));
    }
    if (stillCurrent(token)) setReady(true);
  };
  const soon = throttle(load, 1000);
  current.onOrder = () => soon();
  await load();
}

function approvalCard(a, after) {
  const left = a.decide_by_ms ? Math.round((a.decide_by_ms - Date.now()) / 1000) : null;
  const done = () => setTimeout(after, 400);
  const buttons = canAct()
    ? el('div', { class: 'btn-row', role: 'group', 'aria-label': `Decide order ${a.order_id}` },
      actionButton(a.order_id, { action: 'approve' }, done, { small: false }),
      actionButton(a.order_id, { action: 'reject' }, done, { small: false }))
    : null;
  return el('li', { class: 'panel card', 'data-order-id': a.order_id },
    el('div', { class: 'card-head' },
      el('a', { class: 'order-link mono', href: `#/orders/${enc(a.order_id)}`, text: a.order_id }),
      left != null ? el('span', { class: 'muted small' }, 'decide by ', timeEl(a.decide_by_ms)) : null),
    el('p', { class: 'question', text: a.question }),
    el('p', { class: 'muted small', text: [a.buyer_name, a.total != null ? `${a.total} ${a.currency || ''}`.trim() : null, a.items != null ? `${a.items} item${a.items === 1 ? '' : 's'}` : null].filter(Boolean).join(' · ') }),
    buttons);
}

// ---------------------------------------------------------------- people

async function viewPeople() {
  const token = beginView('people', 'People');
  const root = viewRoot();
  const t = table('people', ['Name', 'Role', 'Status', 'API tokens', 'Added by', '']);
  const name = el('input', { id: 'p-name', name: 'name', type: 'text', autocomplete: 'off', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const role = el('select', { id: 'p-role', name: 'role' }, ['viewer', 'operator', 'admin'].map((r) => el('option', { value: r, text: r })));
  role.value = 'operator';
  const pw = el('input', { id: 'p-password', name: 'password', type: 'password', autocomplete: 'new-password', minlength: '10', required: true });
  const form = el('form', { id: 'add-person', class: 'filters' },
    el('div', { class: 'field' }, el('label', { for: 'p-name', text: 'Name' }), name),
    el('div', { class: 'field' }, el('label', { for: 'p-role', text: 'Role' }), role),
    el('div', { class: 'field' }, el('label', { for: 'p-password', text: 'Password (10+ characters)' }), pw),
    el('div', { class: 'field field-buttons' }, el('button', { type: 'submit', class: 'btn btn-primary', text: 'Add person' })));
  const tokenOut = el('p', { id: 'new-token', class: 'notice', role: 'status', hidden: true });
  root.append(pageHeader('People'), el('p', { class: 'muted', text: 'Viewers read; operators work orders, approvals and stock; admins also manage people, workflows and shops. Every action is recorded under the person’s name.' }), form, tokenOut, el('div', { class: 'table-wrap' }, t));
  const load = async () => {
    if (!stillCurrent(token)) return;
    setReady(false);
    try {
      const data = await apiOk('/api/v1/users');
      if (!stillCurrent(token)) return;
      t.tBodies[0].replaceChildren(...(data.users || []).map((u) => {
        const tok = el('button', { type: 'button', class: 'btn btn-sm', 'data-action': 'token', text: 'New API token', 'aria-label': `New API token for ${u.name}` });
        tok.addEventListener('click', async () => {
          try {
            const r = await apiOk(`/api/v1/users/${enc(u.name)}/tokens`, { method: 'POST', json: { label: 'console' } });
            tokenOut.hidden = false;
            tokenOut.replaceChildren('Token for ', el('strong', { text: u.name }), ' (shown once): ', mono(r.token));
            load();
          } catch (e) { toast(e.message, true); }
        });
        return el('tr', { 'data-user': u.name },
          td('Name', mono(u.name)), td('Role', u.role), td('Status', u.disabled ? 'disabled' : 'active'),
          td('API tokens', String((u.tokens || []).length)), td('Added by', u.created_by || '—'), td('', tok));
      }));
    } catch (e) {
      if (stillCurrent(token) && e.status !== 401) t.replaceWith(errorBox(e.message));
    }
    if (stillCurrent(token)) setReady(true);
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await apiOk('/api/v1/users', { method: 'POST', json: { name: name.value.trim(), role: role.value, password: pw.value } });
      toast(`Added ${name.value.trim()} (${role.value})`);
      form.reset();
      role.value = 'operator';
      load();
    } catch (e) { toast(`Could not add: ${e.message}`, true); }
  });
  await load();
}

// ---------------------------------------------------------------- workflows

async function viewWorkflows() {
  const token = beginView('workflows', 'Workflows');
  const root = viewRoot();
  const t = table('workflows', ['Workflow', 'Versions', el('th', { scope: 'col', class: 'num', text: 'Running' })]);
  const listPanel = el('section', { class: 'panel', 'aria-labelledby': 'wf-list-h' },
    el('div', { class: 'panel-head' }, el('h2', { id: 'wf-list-h', text: 'Loaded workflows' }),
      el('button', { id: 'wf-reload', type: 'button', class: 'btn btn-sm', text: 'Reload from disk' })),
    el('div', { class: 'table-wrap' }, t));

  const name = el('input', { id: 'wf-name', name: 'name', type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. standard' });
  const file = el('input', { id: 'wf-file', type: 'file', accept: '.yaml,.yml,text/yaml,application/yaml,text/plain' });
  const yaml = el('textarea', { id: 'wf-yaml', name: 'yaml', rows: '18', spellcheck: 'false', autocomplete: 'off', wrap: 'off', placeholder: 'Paste a workflow YAML here, or choose a file.' });
  const caret = el('span', { class: 'muted small caret-pos', 'aria-live': 'off', text: 'Ln 1, Col 1' });
  const errors = el('ul', { id: 'wf-errors', class: 'diagnostics', 'aria-live': 'polite' });
  const ok = el('p', { id: 'wf-ok', class: 'ok-msg', role: 'status', hidden: true });
  const validate = el('button', { id: 'wf-validate', type: 'button', class: 'btn', text: 'Validate' });
  const save = el('button', { id: 'wf-save', type: 'button', class: 'btn btn-primary', text: 'Save and reload' });

  const orderId = el('input', { id: 'wf-order', type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'Order id' });
  const approval = el('select', { id: 'wf-approval' },
    el('option', { value: '', text: 'none' }), el('option', { value: 'approve', text: 'approve' }), el('option', { value: 'reject', text: 'reject' }));
  const dryrun = el('button', { id: 'wf-dryrun', type: 'button', class: 'btn', text: 'Dry-run' });
  const dryResult = el('div', { id: 'wf-dryrun-result', class: 'dryrun', 'aria-live': 'polite' });

  const editing = el('p', { id: 'wf-editing', class: 'muted small', role: 'status' });
  const diffBox = el('details', { id: 'wf-diff', class: 'wf-diff' }, el('summary', { text: 'Changes against the running version: none' }), el('pre', { class: 'diff' }));
  const historyList = el('ol', { id: 'wf-history', class: 'wf-history' });
  let running = null; // { name, key, source } of the version in force being edited
  const editor = el('section', { class: 'panel', 'aria-labelledby': 'wf-edit-h' },
    el('h2', { id: 'wf-edit-h', text: 'Edit a workflow' }),
    el('p', { class: 'muted small', text: 'Choose a workflow to open its YAML, or paste or upload one. It is checked as you type; the changes against the running version are shown; dry-run it against an order, then save: the file is written and reloaded, and the save is kept in the history. Running orders keep their version.' }),
    editing,
    el('div', { class: 'form-row' },
      el('div', { class: 'field' }, el('label', { for: 'wf-name', text: 'Workflow name' }), name),
      el('div', { class: 'field' }, el('label', { for: 'wf-file', text: 'Load from a file' }), file)),
    el('div', { class: 'field' }, el('label', { for: 'wf-yaml', text: 'Workflow YAML' }), yaml, caret),
    el('div', { class: 'btn-row' }, validate, save),
    ok, errors, diffBox,
    el('h3', { text: 'Dry-run against an order' }),
    el('p', { class: 'muted small', text: 'Runs the YAML above against a copy of the order with simulated calls; nothing is changed.' }),
    el('div', { class: 'form-row' },
      el('div', { class: 'field' }, el('label', { for: 'wf-order', text: 'Order id' }), orderId),
      el('div', { class: 'field' }, el('label', { for: 'wf-approval', text: 'Approval answer' }), approval),
      el('div', { class: 'field field-buttons' }, dryrun)),
    dryResult,
    el('h3', { text: 'Saves' }),
    historyList);

  root.append(pageHeader('Workflows'), el('div', { class: 'wf-grid' }, listPanel, editor));

  /** Lines removed (-) and added (+) between the running text and the editor's, with a little context. */
  function lineDiff(a, b) {
    const x = a.split('\n');
    const y = b.split('\n');
    if (x.length * y.length > 4e6) return { text: '(too large to compare here)', changed: -1 };
    const n = x.length; const m = y.length;
    const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    const out = []; let i = 0; let j = 0; let changed = 0;
    while (i < n || j < m) {
      if (i < n && j < m && x[i] === y[j]) { out.push(`  ${x[i]}`); i++; j++; } else if (j < m && (i >= n || lcs[i][j + 1] >= lcs[i + 1][j])) { out.push(`+ ${y[j]}`); j++; changed++; } else { out.push(`- ${x[i]}`); i++; changed++; }
    }
    // Context: three lines around each change.
    const keep = new Set();
    out.forEach((l, k) => { if (l[0] !== ' ') for (let d = -3; d <= 3; d++) keep.add(k + d); });
    const lines = []; let last = -2;
    out.forEach((l, k) => { if (keep.has(k)) { if (k !== last + 1) lines.push('…'); lines.push(l); last = k; } });
    return { text: lines.join('\n'), changed };
  }
  function showDiff() {
    if (!running || running.name !== name.value.trim()) {
      diffBox.hidden = true;
      return;
    }
    diffBox.hidden = false;
    const d = lineDiff(running.source, yaml.value);
    diffBox.querySelector('summary').textContent = d.changed === 0 ? `Changes against ${running.key}: none` : `Changes against ${running.key}: ${d.changed < 0 ? 'many' : `${d.changed} line${d.changed === 1 ? '' : 's'}`}`;
    diffBox.querySelector('pre').textContent = d.text;
    return d;
  }
  async function loadHistory(n) {
    try {
      const h = await apiOk(`/api/v1/workflows/history?limit=20${n ? `&name=${enc(n)}` : ''}`);
      if (!stillCurrent(token)) return;
      historyList.replaceChildren(...(h.saves || []).map((x) => el('li', null, timeEl(x.at_ms), ' ', mono(x.key), x.replaced ? el('span', { class: 'muted', text: ` over ${x.replaced}` }) : null, el('span', { text: ` by ${x.by}` }))));
      if (!historyList.childElementCount) historyList.append(el('li', { class: 'muted', text: 'No saves yet.' }));
    } catch (_) { /* the list is a convenience */ }
  }
  // Checked as you type (half a second after the last key).
  let typing = 0;
  async function checkNow() {
    if (!yaml.value.trim()) { errors.replaceChildren(); ok.hidden = true; return; }
    try {
      const r = await apiOk('/api/v1/workflows/validate', { method: 'POST', body: yaml.value, contentType: 'application/yaml' });
      if (!stillCurrent(token)) return;
      if (r.valid) showOk(`Valid: ${r.name} version ${r.version}, ${r.steps} step${r.steps === 1 ? '' : 's'}.`);
      else showDiagnostics(r.diagnostics);
    } catch (_) { /* the Validate button says why */ }
  }
  yaml.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => { checkNow(); showDiff(); }, 500);
  });
  async function openWorkflow(n) {
    try {
      const src = await apiOk(`/api/v1/workflows/${enc(n)}/source`);
      if (!stillCurrent(token)) return;
      running = { name: src.name, key: src.key, source: src.source };
      name.value = src.name;
      yaml.value = src.source;
      editing.textContent = `Editing ${src.key} (${src.path})${src.writable ? '' : ` — read-only: ${src.why_not}`}`;
      save.disabled = !src.writable;
      save.title = src.writable ? '' : src.why_not;
      ok.hidden = true;
      errors.replaceChildren();
      updateCaret();
      showDiff();
      loadHistory(src.name);
    } catch (e) {
      if (e.status !== 401) toast(`Could not open ${n}: ${e.message}`, true);
    }
  }

  function showDiagnostics(diags) {
    ok.hidden = true;
    errors.replaceChildren(...(diags || []).map((d) => {
      const text = `${d.line}:${d.col}: ${d.message}`;
      const b = el('button', { type: 'button', class: 'diag', text, title: 'Go to this position' });
      b.addEventListener('click', () => goTo(d.line, d.col));
      return el('li', null, b);
    }));
  }
  function showOk(text) {
    errors.replaceChildren();
    ok.textContent = text;
    ok.hidden = false;
  }
  function goTo(line, col) {
    const lines = yaml.value.split('\n');
    let pos = 0;
    for (let i = 0; i < Math.min(line - 1, lines.length); i++) pos += lines[i].length + 1;
    pos += Math.max(0, col - 1);
    yaml.focus();
    yaml.setSelectionRange(pos, pos);
    // Scroll the line into view: approximate by line height.
    const lh = parseFloat(getComputedStyle(yaml).lineHeight) || 18;
    yaml.scrollTop = Math.max(0, (line - 3) * lh);
    updateCaret();
  }
  function updateCaret() {
    const before = yaml.value.slice(0, yaml.selectionStart);
    const ln = before.split('\n').length;
    const col = before.length - before.lastIndexOf('\n');
    caret.textContent = `Ln ${ln}, Col ${col}`;
  }
  for (const ev of ['keyup', 'click', 'select', 'input']) yaml.addEventListener(ev, updateCaret);
  // Tab inserts two spaces in the editor (YAML is indentation); Esc then Tab leaves it.
  let escaped = false;
  yaml.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') { escaped = true; return; }
    if (ev.key === 'Tab' && !ev.shiftKey && !escaped && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
      ev.preventDefault();
      yaml.setRangeText('  ', yaml.selectionStart, yaml.selectionEnd, 'end');
    }
    if (ev.key !== 'Tab') escaped = false;
  });

  file.addEventListener('change', async () => {
    const f = file.files && file.files[0];
    if (!f) return;
    yaml.value = await f.text();
    if (!name.value) name.value = f.name.replace(/\.ya?ml$/i, '');
    ok.hidden = true;
    errors.replaceChildren();
    updateCaret();
    toast(`Loaded ${f.name} (${yaml.value.length} characters)`);
  });

  validate.addEventListener('click', async () => {
    if (!yaml.value.trim()) { showDiagnostics([{ line: 1, col: 1, message: 'the workflow is empty' }]); return; }
    validate.disabled = true;
    try {
      const r = await apiOk('/api/v1/workflows/validate', { method: 'POST', body: yaml.value, contentType: 'application/yaml' });
      if (r.valid) {
        showOk(`Valid: ${r.name} version ${r.version}, ${r.steps} step${r.steps === 1 ? '' : 's'}.`);
        if (!name.value && r.name) name.value = r.name;
      } else showDiagnostics(r.diagnostics);
    } catch (e) {
      if (e.status !== 401) toast(`Validation failed: ${e.message}`, true);
    } finally { validate.disabled = false; }
  });

  save.addEventListener('click', async () => {
    const n = name.value.trim();
    if (!n) { name.focus(); toast('Give the workflow a name first.', true); return; }
    if (!yaml.value.trim()) { showDiagnostics([{ line: 1, col: 1, message: 'the workflow is empty' }]); return; }
    // Checked first: an invalid text is never offered for saving.
    try {
      const v = await apiOk('/api/v1/workflows/validate', { method: 'POST', body: yaml.value, contentType: 'application/yaml' });
      if (!v.valid) { showDiagnostics(v.diagnostics); toast('The workflow has errors; nothing was saved.', true); return; }
    } catch (e) {
      if (e.status !== 401) toast(`Validation failed: ${e.message}`, true);
      return;
    }
    const d = showDiff();
    if (d && d.changed === 0) { toast('Nothing changed against the running version.'); return; }
    const sure = await confirmDialog(d ? `${d.changed < 0 ? 'Many' : d.changed} changed line${d.changed === 1 ? '' : 's'} against ${running.key} (shown under the editor). Orders already running keep their version; new orders take this one.` : `Save ${n} as a new workflow.`, { title: `Save ${n} and put it in force?`, yes: `Save ${n} and reload` });
    if (!sure.ok) return;
    save.disabled = true;
    try {
      const r = await api(`/api/v1/workflows/${enc(n)}`, { method: 'PUT', body: yaml.value, contentType: 'application/yaml' });
      const d = r.data && typeof r.data === 'object' ? r.data : {};
      if (r.ok && d.valid !== false) {
        showOk(`Saved and reloaded: ${d.name || n} is now version ${d.version ?? '?'}.`);
        toast(`Workflow ${d.name || n} saved: version ${d.version ?? '?'}`);
        loadList();
        openWorkflow(d.name || n);
      } else if (Array.isArray(d.diagnostics)) {
        showDiagnostics(d.diagnostics);
        toast('The workflow has errors; nothing was saved.', true);
      } else {
        const msg = d.error || (typeof r.data === 'string' ? r.data : `HTTP ${r.status}`);
        showDiagnostics([]);
        errors.append(el('li', { class: 'plain-error', text: msg }));
        toast(`Save failed: ${msg}`, true);
      }
    } catch (e) {
      if (e.status !== 401) toast(`Save failed: ${e.message}`, true);
    } finally { save.disabled = false; }
  });

  dryrun.addEventListener('click', async () => {
    const oid = orderId.value.trim();
    if (!oid) { orderId.focus(); toast('Give an order id to dry-run against.', true); return; }
    if (!yaml.value.trim()) { showDiagnostics([{ line: 1, col: 1, message: 'the workflow is empty' }]); return; }
    dryrun.disabled = true;
    dryResult.replaceChildren(el('p', { class: 'muted', text: 'Running…' }));
    try {
      const r = await api('/api/v1/workflows/dry-run', { method: 'POST', json: { yaml: yaml.value, order_id: oid, approval: approval.value || null } });
      const d = r.data && typeof r.data === 'object' ? r.data : {};
      if (!r.ok) {
        const msg = d.error || `HTTP ${r.status}`;
        dryResult.replaceChildren(el('p', { class: 'error', text: msg }));
        toast(`Dry-run failed: ${msg}`, true);
      } else if (d.valid === false) {
        showDiagnostics(d.diagnostics);
        dryResult.replaceChildren(el('p', { class: 'error', text: 'The workflow is invalid; see the errors above.' }));
      } else {
        renderDryRun(dryResult, d);
      }
    } catch (e) {
      if (e.status !== 401) { dryResult.replaceChildren(el('p', { class: 'error', text: e.message })); toast(`Dry-run failed: ${e.message}`, true); }
    } finally { dryrun.disabled = false; }
  });

  $('#wf-reload').addEventListener('click', async (ev) => {
    const b = ev.currentTarget;
    b.disabled = true;
    try {
      const r = await apiOk('/api/v1/workflows/reload', { method: 'POST' });
      toast(`Reloaded: ${(r.loaded || []).join(', ') || 'no change'}`);
      loadList();
    } catch (e) {
      if (e.status !== 401) toast(`Reload rejected: ${e.message}`, true);
    } finally { b.disabled = false; }
  });

  async function loadList() {
    try {
      const list = await apiOk('/api/v1/workflows');
      if (!stillCurrent(token)) return;
      const byName = new Map();
      for (const w of list || []) {
        if (!byName.has(w.name)) byName.set(w.name, []);
        byName.get(w.name).push(w);
      }
      const tb = t.tBodies[0];
      tb.replaceChildren();
      for (const [n, versions] of [...byName.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
        versions.sort((a, b) => (b.current ? 1 : 0) - (a.current ? 1 : 0) || String(b.version).localeCompare(String(a.version)));
        const total = versions.reduce((s, v) => s + (v.orders || 0), 0);
        const cur = versions.find((v) => v.current);
        const pick = el('button', { type: 'button', class: 'linklike mono wf-pick', text: n, title: `Edit ${n}${cur && cur.path ? ` (${cur.path})` : ''}` });
        const tr = el('tr', { 'data-workflow': n, class: 'clickable' },
          td('Workflow', pick, 'wf-cell'),
          td('Versions', el('ul', { class: 'versions' }, versions.map((v) => el('li', { 'data-version': v.version, class: v.current ? 'current' : '' },
            el('span', { class: 'mono', title: v.key || String(v.version), text: shortVersion(v.version) }), v.current ? el('span', { class: 'badge', text: 'current' }) : null,
            el('span', { class: 'muted nowrap', text: `${v.orders || 0} running` }))))),
          td('Running', el('span', { class: 'num-big', text: String(total) }), 'orders num'));
        const choose = async () => {
          for (const r of $$('tr.chosen', tb)) r.classList.remove('chosen');
          tr.classList.add('chosen');
          await openWorkflow(n);
          yaml.focus();
        };
        pick.addEventListener('click', (ev) => { ev.stopPropagation(); choose(); });
        tr.addEventListener('click', choose);
        tb.append(tr);
      }
      if (!byName.size) tb.append(el('tr', null, el('td', { colspan: '3', class: 'empty', text: 'No workflows loaded.' })));
    } catch (e) {
      if (!stillCurrent(token) || e.status === 401) return;
      listPanel.append(errorBox(e.message));
    }
  }

  await loadList();
  await loadHistory(null);
  if (stillCurrent(token)) setReady(true);
}

function shortVersion(v) {
  const t = String(v);
  return /^\d+$/.test(t) ? `v${t}` : t.slice(0, 10);
}

function renderDryRun(box, d) {
  const trace = Array.isArray(d.trace) ? d.trace : [];
  const effects = Array.isArray(d.effects) ? d.effects : [];
  setKids(box,
    el('p', { class: 'dry-outcome' }, el('span', { text: 'Outcome: ' }), el('strong', { class: 'outcome', text: String(d.outcome ?? '—') })),
    el('ol', { class: 'trace' }, trace.map((t) => el('li', { 'data-step': t.step ?? '' },
      t.step ? mono(t.step, 'trace-step') : null, t.step ? ' ' : null, el('span', { class: 'trace-what', text: t.what ?? JSON.stringify(t) })))),
    effects.length ? el('div', null, el('h4', { text: 'Effects' }),
      el('ul', { class: 'effects' }, effects.map((e) => el('li', { class: 'mono small', text: typeof e === 'string' ? e : JSON.stringify(e) })))) : null,
  );
}

// ---------------------------------------------------------------- inventory

async function viewInventory() {
  const token = beginView('inventory', 'Inventory');
  const root = viewRoot();
  const search = el('input', { id: 'inv-search', type: 'search', autocomplete: 'off', placeholder: 'Filter SKUs' });
  const t = table('inventory', ['SKU', 'Warehouses', 'On hand', 'Reserved', 'Available', '']);
  const tb = t.tBodies[0];
  const csv = el('textarea', { id: 'inv-csv', rows: '8', spellcheck: 'false', placeholder: 'sku_id,warehouse_id,on_hand,product_id\nSKU-1,WH-1,120,' });
  const file = el('input', { id: 'inv-file', type: 'file', accept: '.csv,text/csv,text/plain' });
  const importBtn = el('button', { id: 'inv-import', type: 'button', class: 'btn btn-primary', text: 'Import' });
  const result = el('div', { id: 'inv-result', role: 'status', 'aria-live': 'polite' });
  const msg = el('div');

  root.append(pageHeader('Inventory'),
    el('div', { class: 'inv-grid' },
      el('section', { class: 'panel', 'aria-labelledby': 'inv-h' },
        el('div', { class: 'panel-head' }, el('h2', { id: 'inv-h', text: 'Stock per SKU' }),
          el('div', { class: 'field inline' }, el('label', { for: 'inv-search', class: 'sr-only', text: 'Filter SKUs' }), search)),
        msg, el('div', { class: 'table-wrap' }, t)),
      el('section', { class: 'panel', 'aria-labelledby': 'inv-imp-h' },
        el('h2', { id: 'inv-imp-h', text: 'Import CSV' }),
        el('p', { class: 'muted small' }, 'Columns ', el('code', { text: 'sku_id,warehouse_id,on_hand[,product_id]' }), ', header first. All or nothing: every problem is reported with its line.'),
        el('div', { class: 'field' }, el('label', { for: 'inv-file', text: 'CSV file' }), file),
        el('div', { class: 'field' }, el('label', { for: 'inv-csv', text: 'CSV text' }), csv),
        el('div', { class: 'btn-row' }, importBtn), result)));

  function applySearch() {
    const q = search.value.trim().toLowerCase();
    for (const tr of $$('tr[data-sku]', tb)) tr.hidden = !!q && !tr.dataset.sku.toLowerCase().includes(q);
  }
  search.addEventListener('input', applySearch);

  function whLabel(w) { return w.warehouse == null || w.warehouse === '' ? '(default)' : w.warehouse; }

  function rowFor(s) {
    const whs = Array.isArray(s.warehouses) ? s.warehouses : [];
    const onHand = el('td', { class: 'on-hand num', 'data-label': 'On hand', text: String(s.on_hand) });
    const editBtn = el('button', { type: 'button', class: 'btn btn-sm edit', text: 'Edit', 'aria-label': `Edit on-hand stock of ${s.sku}` });
    const tr = el('tr', { 'data-sku': s.sku, class: s.available === 0 ? 'out' : '' },
      td('SKU', el('div', { class: 'product' },
        s.image_url ? el('img', { class: 'thumb', src: s.image_url, alt: '', width: '40', height: '40', loading: 'lazy', referrerpolicy: 'no-referrer' }) : null,
        el('div', null, s.name ? el('div', { class: 'sku-name', text: s.name }) : null, mono(s.sku, 'sku'), s.product_id ? el('div', { class: 'muted small mono', text: `product ${s.product_id}` }) : null)), 'sku-cell'),
      td('Warehouses', el('ul', { class: 'wh-list' }, whs.map((w) => el('li', null, mono(whLabel(w)), el('span', { class: 'muted', text: ` ${w.on_hand} / ${w.reserved} / ${w.available}`, title: 'on hand / reserved / available' }))))),
      onHand,
      el('td', { class: 'reserved num', 'data-label': 'Reserved', text: String(s.reserved) }),
      el('td', { class: `available num ${s.available === 0 ? 'zero' : ''}`.trim(), 'data-label': 'Available', text: String(s.available) }),
      el('td', { class: 'actions', 'data-label': 'Edit' }, el('div', { class: 'btn-row' }, editBtn)));
    editBtn.addEventListener('click', () => startEdit(tr, s, onHand, editBtn));
    return tr;
  }

  function startEdit(tr, s, cell, editBtn) {
    const whs = (Array.isArray(s.warehouses) && s.warehouses.length) ? s.warehouses : [{ warehouse: null, on_hand: s.on_hand, reserved: s.reserved }];
    const inputs = whs.map((w, i) => {
      const id = `edit-${cssId(s.sku)}-${i}`;
      const input = el('input', { id, type: 'number', class: 'edit-on-hand', min: String(w.reserved || 0), step: '1', inputmode: 'numeric', value: String(w.on_hand), 'data-warehouse': w.warehouse ?? '' });
      return el('div', { class: 'edit-line' }, el('label', { for: id, class: whs.length > 1 ? 'small' : 'sr-only', text: whs.length > 1 ? whLabel(w) : `On hand of ${s.sku}` }), input);
    });
    const saveBtn = el('button', { type: 'button', class: 'btn btn-sm btn-primary save', text: 'Save' });
    const cancelBtn = el('button', { type: 'button', class: 'btn btn-sm btn-ghost cancel-edit', text: 'Cancel' });
    cell.replaceChildren(el('div', { class: 'edit-box' }, inputs, el('div', { class: 'btn-row' }, saveBtn, cancelBtn)));
    editBtn.hidden = true;
    const first = cell.querySelector('input');
    first.focus();
    first.select();
    const cancel = () => { const fresh = rowFor(s); tr.replaceWith(fresh); fresh.querySelector('button.edit').focus(); };
    cancelBtn.addEventListener('click', cancel);
    cell.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') cancel();
      if (ev.key === 'Enter' && ev.target.matches('input')) { ev.preventDefault(); saveBtn.click(); }
    });
    saveBtn.addEventListener('click', async () => {
      saveBtn.disabled = true;
      let latest = s;
      try {
        for (const input of $$('input.edit-on-hand', cell)) {
          const v = Number(input.value);
          if (!Number.isInteger(v) || v < 0) throw new ApiError(400, `on hand must be a whole number ≥ 0 (got "${input.value}")`);
          const wh = input.dataset.warehouse;
          const orig = whs.find((w) => (w.warehouse ?? '') === wh);
          if (orig && orig.on_hand === v) continue;
          const body = { on_hand: v };
          if (wh) body.warehouse_id = wh;
          latest = await apiOk(`/api/v1/inventory/${enc(s.sku)}`, { method: 'POST', json: body });
        }
        const fresh = rowFor(latest);
        tr.replaceWith(fresh);
        fresh.classList.add('flash');
        fresh.querySelector('button.edit').focus();
        toast(`${s.sku}: on hand ${latest.on_hand}, available ${latest.available}`);
      } catch (e) {
        if (e.status !== 401) toast(`Could not save ${s.sku}: ${e.message}`, true);
        saveBtn.disabled = false;
      }
    });
  }

  async function load() {
    try {
      const r = await api('/api/v1/inventory');
      if (!stillCurrent(token)) return;
      if (!r.ok) {
        msg.replaceChildren(el('p', { class: 'panel-note error', text: (r.data && r.data.error) || `HTTP ${r.status}` }));
        return;
      }
      msg.replaceChildren();
      const skus = (r.data && r.data.skus) || [];
      tb.replaceChildren(...skus.map(rowFor));
      if (!skus.length) tb.append(el('tr', null, el('td', { colspan: '6', class: 'empty', text: 'No stock recorded yet. Import a CSV to start.' })));
      applySearch();
    } catch (e) {
      if (!stillCurrent(token) || e.status === 401) return;
      msg.replaceChildren(errorBox(e.message));
    }
  }

  file.addEventListener('change', async () => {
    const f = file.files && file.files[0];
    if (!f) return;
    csv.value = await f.text();
    toast(`Loaded ${f.name}`);
  });
  importBtn.addEventListener('click', async () => {
    if (!csv.value.trim()) { csv.focus(); toast('Paste CSV text or choose a file first.', true); return; }
    importBtn.disabled = true;
    result.className = '';
    result.textContent = 'Importing…';
    try {
      const r = await api('/api/v1/inventory/import', { method: 'POST', body: csv.value, contentType: 'text/csv' });
      const d = r.data && typeof r.data === 'object' ? r.data : {};
      if (r.ok) {
        result.className = 'ok-msg';
        result.textContent = `Imported ${d.rows ?? 0} row${d.rows === 1 ? '' : 's'} for ${d.skus ?? 0} SKU${d.skus === 1 ? '' : 's'} (${d.created ?? 0} new, ${d.products ?? 0} with a product id).`;
        toast('Import done');
        await load();
      } else {
        const m = d.error || (typeof r.data === 'string' ? r.data : `HTTP ${r.status}`);
        result.className = 'error-block';
        result.replaceChildren(el('strong', { text: 'Nothing imported. ' }), el('span', { class: 'pre', text: m }));
        toast('Import rejected', true);
      }
    } catch (e) {
      if (e.status !== 401) { result.className = 'error-block'; result.textContent = e.message; }
    } finally { importBtn.disabled = false; }
  });

  const mappings = mappingsPanel(token, load);
  root.append(mappings.el);
  await Promise.all([load(), mappings.load()]);
  if (stillCurrent(token)) setReady(true);
}

// Which items each TikTok SKU takes: the SKUs mapped to none (orders held
// for them first), each with a form to map it; the recorded mappings; and
// a CSV import. `reloadStock` refreshes the stock table after a mapping.
function mappingsPanel(token, reloadStock) {
  const unmapped = table('unmapped', ['SKU', 'Seller SKU', 'Orders held', 'Map to item']);
  const unmappedBody = unmapped.tBodies[0];
  const maps = table('mappings', ['SKU', 'Takes', 'Source', '']);
  const mapsBody = maps.tBodies[0];
  const csv = el('textarea', { id: 'map-csv', rows: '5', spellcheck: 'false', placeholder: 'sku_id,item,units\n1729…01,MUG-BLUE,1\n1729…02,MUG-BLUE,3' });
  const importBtn = el('button', { id: 'map-import', type: 'button', class: 'btn btn-primary', text: 'Import mappings' });
  const result = el('div', { id: 'map-result', role: 'status', 'aria-live': 'polite' });
  const msg = el('div');
  const box = el('section', { class: 'panel', id: 'mappings-panel', 'aria-labelledby': 'map-h' },
    el('h2', { id: 'map-h', text: 'SKU mappings' }),
    el('p', { class: 'muted small' }, 'Stock belongs to your items. A TikTok SKU takes 1 unit of the item named by its seller SKU, unless mapped here: N units for a multipack, several items for a bundle. Orders held for an unmapped SKU go on by themselves once it is mapped.'),
    msg,
    el('h3', { text: 'Not mapped' }), el('div', { class: 'table-wrap' }, unmapped),
    el('h3', { text: 'Mapped' }), el('div', { class: 'table-wrap' }, maps),
    el('div', { class: 'field' }, el('label', { for: 'map-csv', text: 'Mapping CSV (several rows of one SKU make a bundle)' }), csv),
    el('div', { class: 'btn-row' }, importBtn), result);

  const takes = (m) => (m.components || []).map((c) => c.units === 1 ? c.item : `${c.item} × ${c.units}`).join(' + ');

  function unmappedRow(u) {
    const id = `map-item-${cssId(u.sku_id)}`;
    const item = el('input', { id, class: 'map-item', type: 'text', autocomplete: 'off', placeholder: 'item', value: u.seller_sku || '' });
    const units = el('input', { class: 'map-units', type: 'number', min: '1', step: '1', value: '1', 'aria-label': `Units of the item one ${u.sku_id} takes` });
    const btn = el('button', { type: 'button', class: 'btn btn-sm btn-primary map-btn', text: 'Map' });
    btn.addEventListener('click', async () => {
      const n = Number(units.value);
      if (!item.value.trim() || !Number.isInteger(n) || n < 1) { toast('Give an item and whole units ≥ 1', true); return; }
      btn.disabled = true;
      try {
        await apiOk(`/api/v1/mappings/${enc(u.sku_id)}`, { method: 'PUT', json: { components: [{ item: item.value.trim(), units: n }] } });
        toast(`${u.sku_id} now takes ${n} × ${item.value.trim()}`);
        await Promise.all([load(), reloadStock()]);
      } catch (e) {
        if (e.status !== 401) toast(`Could not map ${u.sku_id}: ${e.message}`, true);
        btn.disabled = false;
      }
    });
    return el('tr', { 'data-sku': u.sku_id },
      td('SKU', el('div', { class: 'product' },
        u.image_url ? el('img', { class: 'thumb', src: u.image_url, alt: '', width: '40', height: '40', loading: 'lazy', referrerpolicy: 'no-referrer' }) : null,
        el('div', null, u.name ? el('div', { class: 'sku-name', text: u.name }) : null, mono(u.sku_id, 'sku')))),
      td('Seller SKU', u.seller_sku ? mono(u.seller_sku) : el('span', { class: 'muted', text: 'none' })),
      el('td', { class: 'num', 'data-label': 'Orders held', text: String(u.orders_waiting ?? 0) }),
      td('Map to item', el('div', { class: 'edit-line' }, el('label', { for: id, class: 'sr-only', text: `Item ${u.sku_id} takes` }), item, units, btn)));
  }

  function mappingRow(m) {
    const btn = el('button', { type: 'button', class: 'btn btn-sm btn-ghost unmap', text: 'Unmap', 'aria-label': `Unmap ${m.sku_id}` });
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      try {
        await apiOk(`/api/v1/mappings/${enc(m.sku_id)}`, { method: 'DELETE' });
        toast(`${m.sku_id} unmapped`);
        await load();
      } catch (e) {
        if (e.status !== 401) toast(`Could not unmap ${m.sku_id}: ${e.message}`, true);
        btn.disabled = false;
      }
    });
    return el('tr', { 'data-sku': m.sku_id },
      td('SKU', mono(m.sku_id, 'sku')),
      td('Takes', el('span', { class: 'takes', text: takes(m) })),
      td('Source', el('span', { class: 'muted', text: m.source === 'manual' ? 'set by hand' : 'seller SKU' })),
      el('td', { class: 'actions', 'data-label': 'Unmap' }, btn));
  }

  async function load() {
    try {
      const [u, m] = await Promise.all([api('/api/v1/mappings/unmapped?limit=200'), api('/api/v1/mappings?limit=500')]);
      if (!stillCurrent(token)) return;
      if (!u.ok || !m.ok) {
        const bad = !u.ok ? u : m;
        msg.replaceChildren(el('p', { class: 'panel-note error', text: (bad.data && bad.data.error) || `HTTP ${bad.status}` }));
        return;
      }
      msg.replaceChildren();
      const us = (u.data && u.data.unmapped) || [];
      unmappedBody.replaceChildren(...us.map(unmappedRow));
      if (!us.length) unmappedBody.append(el('tr', null, el('td', { colspan: '4', class: 'empty', text: 'Every SKU seen maps to an item.' })));
      const ms = (m.data && m.data.mappings) || [];
      mapsBody.replaceChildren(...ms.map(mappingRow));
      if (!ms.length) mapsBody.append(el('tr', null, el('td', { colspan: '4', class: 'empty', text: 'No mappings recorded yet.' })));
    } catch (e) {
      if (!stillCurrent(token) || e.status === 401) return;
      msg.replaceChildren(errorBox(e.message));
    }
  }

  importBtn.addEventListener('click', async () => {
    if (!csv.value.trim()) { csv.focus(); toast('Paste mapping CSV first.', true); return; }
    importBtn.disabled = true;
    try {
      const r = await api('/api/v1/mappings/import', { method: 'POST', body: csv.value, contentType: 'text/csv' });
      const d = r.data && typeof r.data === 'object' ? r.data : {};
      if (r.ok) {
        result.className = 'ok-msg';
        result.textContent = `Mapped ${(d.mapped || []).length} SKUs.`;
        await Promise.all([load(), reloadStock()]);
      } else {
        result.className = 'error-block';
        result.replaceChildren(el('strong', { text: 'Nothing mapped. ' }), el('span', { class: 'pre', text: d.error || `HTTP ${r.status}` }));
      }
    } catch (e) {
      if (e.status !== 401) { result.className = 'error-block'; result.textContent = e.message; }
    } finally { importBtn.disabled = false; }
  });

  return { el: box, load };
}

// ---------------------------------------------------------------- shops

const SHOP_STATUS_CHIP = { connected: 'chip-completed', disconnected: 'chip-plain', deauthorized: 'chip-exception' };

async function viewShops() {
  const token = beginView('shops', 'Shops');
  const root = viewRoot();
  const connectBtn = el('button', { id: 'shops-connect', type: 'button', class: 'btn btn-primary', text: 'Connect a shop' });
  const linkBox = el('div', { id: 'shops-link', role: 'status', 'aria-live': 'polite' });
  const code = el('input', { id: 'shops-code', type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'code from the address bar' });
  const codeBtn = el('button', { id: 'shops-code-connect', type: 'button', class: 'btn', text: 'Connect with code' });
  const hooks = el('p', { id: 'shops-webhooks', class: 'panel-note' });
  const msg = el('div');
  const t = table('shops', ['Shop', 'Status', 'Tokens', 'Last call', 'Last webhook', 'Orders today', 'Webhooks', '']);
  const tb = t.tBodies[0];

  root.append(pageHeader('Shops', connectBtn),
    el('section', { class: 'panel', 'aria-labelledby': 'shops-connect-h' },
      el('h2', { id: 'shops-connect-h', text: 'Connect a TikTok shop' }),
      el('p', { class: 'muted small', text: 'Connect a shop gives a link for the seller: they log in to TikTok Shop, authorize the app, and TikTok sends them back here. The shop is live at once, with no restart.' }),
      linkBox,
      el('div', { class: 'field' }, el('label', { for: 'shops-code', text: 'TikTok cannot reach this server? Paste the code from the address TikTok sent the browser to:' }), code),
      el('div', { class: 'btn-row' }, codeBtn)),
    el('section', { class: 'panel', 'aria-labelledby': 'shops-h' },
      el('div', { class: 'panel-head' }, el('h2', { id: 'shops-h', text: 'Shops' })),
      hooks, msg, el('div', { class: 'table-wrap' }, t)));

  const when = (unixS) => (unixS ? timeEl(unixS * 1000) : el('span', { class: 'muted', text: 'never' }));

  function rowFor(s) {
    const actions = el('div', { class: 'btn-row' });
    const act = (label, path, cls) => {
      const b = el('button', { type: 'button', class: `btn btn-sm ${cls || ''}`.trim(), text: label, 'aria-label': `${label} ${s.name || s.id}` });
      b.addEventListener('click', async () => {
        if (label === 'Disconnect' && !(await confirmDialog(`Stop calling TikTok for ${s.name || s.id}? Its orders stay; Reconnect starts it again.`, { title: 'Disconnect the shop?', yes: 'Disconnect' }))) return;
        b.disabled = true;
        try {
          const r = await api(`/api/v1/shops/${enc(s.id)}/${path}`, { method: 'POST', json: {} });
          if (r.ok) { toast(`${s.name || s.id}: ${r.data.status}`); await load(); return; }
          const d = r.data || {};
          if (d.link) showLink(d.link, d.error);
          toast(d.error || `HTTP ${r.status}`, true);
        } catch (e) { if (e.status !== 401) toast(e.message, true); }
        b.disabled = false;
      });
      actions.append(b);
    };
    if (s.status === 'connected') act('Disconnect', 'disconnect', 'btn-ghost');
    else act('Reconnect', 'reconnect', 'btn-primary');
    const tokens = el('div', null,
      el('div', { text: s.token_source ? `from ${s.token_source}` : '—' }),
      s.access_expires_at ? el('div', { class: 'muted small' }, 'access expires ', timeEl(s.access_expires_at * 1000)) : null,
      s.refresh_expires_at ? el('div', { class: 'muted small' }, 'authorization ends ', timeEl(s.refresh_expires_at * 1000)) : null);
    return el('tr', { 'data-shop': s.id, 'data-status': s.status },
      td('Shop', el('div', null, el('strong', { text: s.name || s.id }), el('div', { class: 'muted small mono', text: `${s.id}${s.region ? ` · ${s.region}` : ''}` }))),
      td('Status', el('div', null, el('span', { class: `chip ${SHOP_STATUS_CHIP[s.status] || 'chip-plain'}`, text: s.status }), el('div', { class: 'small shop-health', text: s.health }))),
      td('Tokens', tokens),
      td('Last call', when(s.last_call)),
      td('Last webhook', s.last_webhook_ms ? timeEl(s.last_webhook_ms) : el('span', { class: 'muted', text: 'none yet' })),
      td('Orders today', String(s.orders_today), 'num'),
      td('Webhooks', el('span', { class: 'small', text: s.webhooks })),
      el('td', { class: 'actions', 'data-label': 'Actions' }, actions));
  }

  function showLink(url, why) {
    linkBox.replaceChildren(
      why ? el('p', { class: 'small', text: why }) : null,
      el('p', null, 'Open this link as the seller (once, within an hour): ', el('a', { id: 'shops-auth-link', href: url, rel: 'noopener noreferrer', text: 'authorize on TikTok Shop' })),
      el('p', { class: 'muted small mono break', text: url }));
  }

  async function load() {
    try {
      const r = await api('/api/v1/shops');
      if (!stillCurrent(token)) return;
      if (!r.ok) {
        msg.replaceChildren(el('p', { class: 'panel-note error', text: (r.data && r.data.error) || `HTTP ${r.status}` }));
        return;
      }
      msg.replaceChildren();
      hooks.textContent = r.data.webhooks || '';
      const list = r.data.shops || [];
      tb.replaceChildren(...list.map(rowFor));
      if (!list.length) tb.append(el('tr', null, el('td', { colspan: '8', class: 'empty', text: 'No shop connected yet. Connect a shop to start.' })));
    } catch (e) {
      if (!stillCurrent(token) || e.status === 401) return;
      msg.replaceChildren(errorBox(e.message));
    }
  }

  connectBtn.addEventListener('click', async () => {
    connectBtn.disabled = true;
    try {
      const r = await api('/api/v1/shops/connect', { method: 'POST', json: {} });
      if (r.ok) showLink(r.data.url);
      else linkBox.replaceChildren(el('p', { class: 'error-block', text: (r.data && r.data.error) || `HTTP ${r.status}` }));
    } catch (e) { if (e.status !== 401) toast(e.message, true); }
    connectBtn.disabled = false;
  });
  codeBtn.addEventListener('click', async () => {
    const c = code.value.trim();
    if (!c) { code.focus(); toast('Paste the code first.', true); return; }
    codeBtn.disabled = true;
    try {
      const r = await api('/api/v1/shops/connect', { method: 'POST', json: { code: c } });
      if (r.ok) {
        const names = (r.data.connected || []).map((x) => x.name || x.id).join(', ');
        toast(`Connected: ${names}`);
        code.value = '';
        await load();
      } else toast((r.data && r.data.error) || `HTTP ${r.status}`, true);
    } catch (e) { if (e.status !== 401) toast(e.message, true); }
    codeBtn.disabled = false;
  });

  await load();
  if (stillCurrent(token)) setReady(true);
}

function cssId(s) { return String(s).replace(/[^A-Za-z0-9_-]/g, '_'); }

// ---------------------------------------------------------------- live stream

let es = null;
function setLive(on) {
  const l = $('#live');
  l.setAttribute('data-connected', on ? 'true' : 'false');
  l.querySelector('.live-text').textContent = on ? 'Live' : 'Offline';
  l.title = on ? 'Live: updates arrive as they happen' : 'Not connected; reconnecting…';
}

function connectLive() {
  if (es) es.close();
  es = new EventSource('/api/v1/live');
  es.addEventListener('open', () => setLive(true));
  es.addEventListener('hello', () => setLive(true));
  es.addEventListener('order', (ev) => {
    setLive(true);
    let s;
    try { s = JSON.parse(ev.data); } catch (_) { return; }
    if (!s || typeof s.order_id !== 'string') return;
    if (current.onOrder) {
      try { current.onOrder(s); } catch (e) { console.error(e); }
    }
  });
  es.addEventListener('overview', (ev) => {
    setLive(true);
    if (!current.onOverview) return;
    let ov;
    try { ov = JSON.parse(ev.data); } catch (_) { return; }
    try { current.onOverview(ov); } catch (e) { console.error(e); }
  });
  es.addEventListener('error', () => {
    setLive(false);
    // The browser reconnects by itself unless the stream was refused
    // (e.g. 401): then check the session and start again later.
    if (es.readyState === EventSource.CLOSED) {
      setTimeout(async () => {
        await api('/api/v1/console/session').catch(() => null);
        connectLive();
      }, 5000);
    }
  });
}

// ---------------------------------------------------------------- demo banner

/**
 * Demo mode (GET /api/v1/about names it): a banner saying TikTok is
 * simulated and how much faster its clock runs. Hidden otherwise.
 */
async function showDemoBanner() {
  const r = await api('/api/v1/about').catch(() => null);
  const demo = r && r.ok && r.data ? r.data.demo : null;
  const box = $('#demo-banner');
  if (!box || !demo) return;
  const scale = Number(demo.time_scale) || 1;
  setKids(box,
    el('strong', { text: 'DEMO' }),
    ` Simulated TikTok Shop at ${scale.toLocaleString('en-US')}× speed: a 2-day ship-by window `
      + `lasts ${fmtDuration((2 * 86400) / scale)} here. Orders and buyers are made up.`);
  box.hidden = false;
}

// ---------------------------------------------------------------- router

function route() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query] = raw.split('?');
  const parts = path.split('/').filter(Boolean);
  if (parts.length === 0) return viewOverview();
  if (parts[0] === 'orders' && parts.length === 1) return viewOrders(query);
  if (parts[0] === 'orders' && parts.length >= 2) return viewOrder(decodeURIComponent(parts.slice(1).join('/')));
  if (parts[0] === 'approvals') return viewApprovals();
  if (parts[0] === 'people') return viewPeople();
  if (parts[0] === 'workflows') return viewWorkflows();
  if (parts[0] === 'inventory') return viewInventory();
  if (parts[0] === 'shops') return viewShops();
  location.replace('#/');
  return undefined;
}

let lastPath = null;
function onHashChange() {
  route();
  // Move focus to the new view for keyboard and screen-reader users
  // (not on the first load, and not when only the query changed).
  const path = location.hash.split('?')[0];
  if (lastPath !== null && path !== lastPath) viewRoot().focus({ preventScroll: true });
  lastPath = path;
  window.scrollTo(0, 0);
}

async function main() {
  $('#logout').addEventListener('click', logout);
  await loadSession();
  showDemoBanner();
  window.addEventListener('hashchange', onHashChange);
  onHashChange();
  connectLive();
  setInterval(refreshTimes, 15000);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', main);
else main();
