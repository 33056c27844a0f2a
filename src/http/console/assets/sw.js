// orderflow console: the service worker (served at /console/sw.js with
// Service-Worker-Allowed: /, registered by push.js with scope /).
//
// It only does alerts: no fetch handler, nothing cached. A push (JSON from
// the daemon: {title, body, kind, order_id, url, tag, at}) becomes a
// notification; tapping it focuses an open console and shows the order, or
// opens the console at the order.

'use strict';

self.addEventListener('install', () => { self.skipWaiting(); });
self.addEventListener('activate', (event) => { event.waitUntil(self.clients.claim()); });

/** A same-origin URL to open, or the console's front page. */
function safeUrl(u) {
  try {
    const url = new URL(u || '/#/', self.location.origin);
    if (url.origin === self.location.origin) return url.href;
  } catch (_) { /* fall through */ }
  return new URL('/#/', self.location.origin).href;
}

self.addEventListener('push', (event) => {
  let d = {};
  if (event.data) {
    try { d = event.data.json(); } catch (_) { d = { body: event.data.text() }; }
  }
  const title = typeof d.title === 'string' && d.title ? d.title : 'orderflow';
  const options = {
    body: typeof d.body === 'string' ? d.body : '',
    data: { url: safeUrl(d.url) },
    timestamp: typeof d.at === 'number' ? d.at * 1000 : Date.now(),
  };
  if (typeof d.tag === 'string' && d.tag) {
    options.tag = d.tag;
    options.renotify = true;
  }
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = safeUrl(event.notification.data && event.notification.data.url);
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const w of windows) {
      if (new URL(w.url).origin === self.location.origin) {
        await w.focus();
        w.postMessage({ type: 'orderflow-open', url });
        return;
      }
    }
    await self.clients.openWindow(url);
  })());
});

// The push service replaced the subscription: subscribe again with the
// daemon's key and tell the daemon, for the same channels.
self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil((async () => {
    const get = async (path) => {
      const r = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      return r.json();
    };
    const info = await get('/api/v1/push/key');
    const session = await get('/api/v1/console/session');
    const pad = '='.repeat((4 - (info.key.length % 4)) % 4);
    const bin = atob((info.key + pad).replace(/-/g, '+').replace(/_/g, '/'));
    const key = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const sub = await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    const headers = { 'Content-Type': 'application/json', 'X-CSRF-Token': session.csrf || '' };
    if (event.oldSubscription) {
      await fetch('/api/v1/push/subscriptions', {
        method: 'DELETE', credentials: 'same-origin', headers,
        body: JSON.stringify({ endpoint: event.oldSubscription.endpoint }),
      }).catch(() => {});
    }
    for (const channel of info.channels || []) {
      await fetch('/api/v1/push/subscriptions', {
        method: 'POST', credentials: 'same-origin', headers,
        body: JSON.stringify({ channel, subscription: sub.toJSON() }),
      });
    }
  })().catch(() => { /* the console re-subscribes on its next visit */ }));
});
