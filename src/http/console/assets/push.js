// orderflow console: alerts on this device (Web Push). Self-contained,
// imported by app.js with one line.
//
// When the daemon defines a web_push channel (GET /api/v1/push/key answers
// {key, channels}) and the browser has the Push API, a "Notify this device"
// toggle goes into the top bar. Turning it on asks for permission,
// subscribes through the browser's push service with the daemon's VAPID
// key, and stores the subscription for every web_push channel
// (POST /api/v1/push/subscriptions); turning it off removes it
// (DELETE) and unsubscribes. The service worker (/console/sw.js, scope /)
// shows each alert and opens its order when tapped.

'use strict';

const SW_URL = '/console/sw.js';

function b64urlToBytes(s) {
  const pad = '='.repeat((4 - (s.length % 4)) % 4);
  const bin = atob((s + pad).replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function sameBytes(a, b) {
  if (!a || !b) return false;
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

async function getJson(path) {
  const r = await fetch(path, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  return r.json();
}

/** Sends a JSON body with the session's CSRF token; the server's {error} on failure. */
async function send(method, path, json) {
  const s = await getJson('/api/v1/console/session');
  const r = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRF-Token': s.csrf || '' },
    body: JSON.stringify(json),
  });
  if (!r.ok) {
    const d = await r.json().catch(() => null);
    throw new Error((d && d.error) || `HTTP ${r.status}`);
  }
  return r.json().catch(() => null);
}

function say(message, isError) {
  const t = document.getElementById('toast');
  if (!t) return;
  t.textContent = message;
  t.classList.toggle('error', !!isError);
  t.classList.add('show');
  setTimeout(() => t.classList.remove('show'), isError ? 8000 : 4000);
}

function bellIcon() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const p = document.createElementNS(ns, 'path');
  p.setAttribute('d', 'M6 16V11a6 6 0 0 1 12 0v5l2 2H4zM10 20a2 2 0 0 0 4 0');
  svg.append(p);
  return svg;
}

async function setup() {
  if (!('serviceWorker' in navigator) || !('PushManager' in window) || !('Notification' in window) || !window.isSecureContext) return;
  let info;
  try {
    info = await getJson('/api/v1/push/key');
  } catch (_) {
    return; // not signed in yet, or no web push: no button
  }
  const channels = Array.isArray(info.channels) ? info.channels : [];
  if (!info.key || channels.length === 0) return;
  const bar = document.querySelector('.topbar-right');
  if (!bar || document.getElementById('push-toggle')) return;

  const key = b64urlToBytes(info.key);
  const reg = await navigator.serviceWorker.register(SW_URL, { scope: '/' });
  await navigator.serviceWorker.ready;

  const label = document.createElement('span');
  label.className = 'push-label';
  label.textContent = 'Notify this device';
  const btn = document.createElement('button');
  btn.id = 'push-toggle';
  btn.type = 'button';
  btn.className = 'btn btn-ghost push-toggle';
  btn.setAttribute('aria-pressed', 'false');
  btn.title = `Alerts of ${channels.join(', ')} on this device`;
  btn.append(bellIcon(), label);
  const logout = document.getElementById('logout');
  bar.insertBefore(btn, logout && logout.parentNode === bar ? logout : null);

  // A toggle: its name stays, aria-pressed (and its look) says whether it is on.
  const show = (on) => { btn.setAttribute('aria-pressed', on ? 'true' : 'false'); };
  const subscribeAll = (sub) => Promise.all(channels.map((channel) =>
    send('POST', '/api/v1/push/subscriptions', { channel, subscription: sub.toJSON() })));

  // A subscription made with another key (the daemon's changed) is useless.
  let sub = await reg.pushManager.getSubscription();
  if (sub && !sameBytes(sub.options && sub.options.applicationServerKey, key)) {
    await sub.unsubscribe().catch(() => {});
    sub = null;
  }
  if (sub) {
    // Keep the daemon's copy in step (it forgets devices their push service calls gone).
    subscribeAll(sub).catch(() => {});
  }
  show(!!sub);
  if (Notification.permission === 'denied') {
    btn.disabled = true;
    btn.title = 'Notifications are blocked for this site: allow them in the browser\'s site settings';
  }

  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      const current = await reg.pushManager.getSubscription();
      if (current) {
        await send('DELETE', '/api/v1/push/subscriptions', { endpoint: current.endpoint }).catch(() => {});
        await current.unsubscribe();
        show(false);
        say('This device will no longer get alerts.');
      } else {
        const permission = await Notification.requestPermission();
        if (permission !== 'granted') {
          say('Notifications were not allowed: alerts cannot reach this device.', true);
          return;
        }
        const fresh = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
        await subscribeAll(fresh);
        show(true);
        say(`This device will get alerts (${channels.join(', ')}).`);
      }
    } catch (e) {
      say(`Could not change this device's alerts: ${e.message}`, true);
    } finally {
      btn.disabled = Notification.permission === 'denied';
    }
  });

  // A tapped alert asks an open console to show its order.
  navigator.serviceWorker.addEventListener('message', (e) => {
    const d = e.data || {};
    if (d.type !== 'orderflow-open' || typeof d.url !== 'string') return;
    const url = new URL(d.url, location.origin);
    if (url.origin === location.origin && url.hash) location.hash = url.hash;
  });
}

setup().catch(() => { /* alerts on this device are optional: the console works without */ });
