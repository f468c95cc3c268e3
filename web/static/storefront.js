/* Maison Persona: the storefront demo of persona.
 *
 * Everything a shopper does is POSTed to /events as GA4-shaped events; the widgets ask the worker
 * again as soon as the worker has applied the event (its key shows up in GET /users/{visitor}), so
 * the page shows how fast the recommendations react. Routes live in the hash:
 *   #/?q=&category=&page=   the catalog        #/item/<id>   a product
 */
'use strict';

(() => {
  const FAMILIES = ['woody', 'floral', 'fresh', 'oriental', 'citrusy', 'fruity', 'spicy', 'aromatic', 'gourmand'];
  const GENDERS = ['Women', 'Men', 'Unisex'];
  const CONCENTRATIONS = ['Eau de Parfum', 'Eau de Toilette', 'Parfum'];
  const PAGE_SIZE = 24;
  const SESSION_IDLE_MS = 30 * 60 * 1000;
  const APPLY_WAIT_MS = 3000; // refresh anyway after this long without seeing the event applied...
  const APPLY_GIVE_UP_MS = 20000; // ...and once more when it shows up, until this long

  // ------------------------------------------------------------------ small helpers

  /** An element: h('a', {class: 'x', href: '#', onclick: fn, dataset: {id: 1}}, child, 'text', ...). */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }
  const $ = (id) => document.getElementById(id);
  const cap = (t) => (t ? t.charAt(0).toUpperCase() + t.slice(1) : '');
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const now = () => performance.now();

  function randomId(n) {
    const bytes = new Uint8Array(n);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => 'abcdefghijklmnopqrstuvwxyz0123456789'[b % 36]).join('');
  }

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const x = Array.from(b, (v) => v.toString(16).padStart(2, '0')).join('');
    return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
  }

  const store = {
    get(area, key, fallback) {
      try { const v = window[area].getItem(key); return v == null ? fallback : JSON.parse(v); } catch { return fallback; }
    },
    set(area, key, value) {
      try { window[area].setItem(key, JSON.stringify(value)); } catch { /* private mode: memory only */ }
    },
  };

  const money = new Intl.NumberFormat('en-IE', { style: 'currency', currency: 'EUR' });
  function price(value, { perLitre = false } = {}) {
    if (typeof value !== 'number') return h('span', { class: 'price' }, '—');
    return h('span', { class: 'price', title: perLitre ? 'price per litre' : null },
      money.format(value), perLitre ? h('small', {}, ' per litre') : null);
  }

  function stars(rating, reviews, long) {
    if (!rating) return h('span', { class: 'stars' }, h('span', {}, 'no ratings yet'));
    const count = (reviews || 0).toLocaleString('en');
    const full = Math.round(rating);
    return h('span', { class: 'stars', role: 'img', 'aria-label': `rated ${rating} of 5 by ${count} reviewers` },
      long ? '★★★★★'.slice(0, full) + '☆☆☆☆☆'.slice(0, 5 - full) + ' ' : '★ ', String(rating),
      h('span', {}, long ? ` · ${count} review${reviews === 1 ? '' : 's'}` : ` (${count})`));
  }

  /** One sentence about a perfume, from its family, gender, concentration and notes. */
  function describe(p) {
    const notes = p.notes || [];
    const who = { Women: 'for women', Men: 'for men', Unisex: 'for everyone' }[p.gender] || '';
    const family = p.family ? `${/^[aeiou]/i.test(p.family) ? 'An' : 'A'} ${p.family} fragrance` : 'A fragrance';
    const some = notes.slice(0, 4);
    const list = some.length > 1 ? `${some.slice(0, -1).join(', ')} and ${some[some.length - 1]}` : some[0];
    const withNotes = some.length ? ` with notes of ${list}` : '';
    const kind = p.category ? ` ${p.category} by ${p.brand}.` : '';
    return `${family} ${who}${withNotes}.${kind}`.replace(/\s+/g, ' ').replace(' .', '.');
  }

  async function getJSON(url) {
    const res = await fetch(url, { headers: { accept: 'application/json' } });
    let body = null;
    try { body = await res.json(); } catch { /* not JSON */ }
    if (!res.ok) {
      const err = new Error((body && body.error) || `${res.status} ${res.statusText}`);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  // ------------------------------------------------------------------ who is shopping

  function visitorId() {
    const fromUrl = new URLSearchParams(location.search).get('visitor');
    if (fromUrl) store.set('localStorage', 'persona.visitor', fromUrl);
    let id = store.get('localStorage', 'persona.visitor', null);
    if (!id) {
      id = `v-${randomId(10)}`;
      store.set('localStorage', 'persona.visitor', id);
    }
    return id;
  }
  const visitor = visitorId();

  /** One session per tab, renewed after 30 minutes without an event. */
  function sessionId() {
    const t = Date.now();
    let s = store.get('sessionStorage', 'persona.session', null);
    if (!s || !s.id || t - (s.last || 0) > SESSION_IDLE_MS || s.visitor !== visitor) {
      s = { id: `s-${randomId(10)}`, visitor };
    }
    s.last = t;
    store.set('sessionStorage', 'persona.session', s);
    return s.id;
  }

  // ------------------------------------------------------------------ cart and attribution

  const CART_KEY = `persona.cart.${visitor}`;
  let cart = store.get('localStorage', CART_KEY, []);
  const saveCart = () => { store.set('localStorage', CART_KEY, cart); renderCart(); };

  /** item id -> rec_id of the recommendation it was opened from (this tab). */
  const attribution = store.get('sessionStorage', 'persona.attribution', {});
  const remember = (itemId, recId) => { attribution[itemId] = recId; store.set('sessionStorage', 'persona.attribution', attribution); };

  // ------------------------------------------------------------------ events

  function itemOf(p, extra) {
    const out = { item_id: String(p.item_id) };
    if (p.name) out.item_name = p.name;
    if (p.brand) out.item_brand = p.brand;
    if (p.category) out.item_category = p.category;
    if (typeof p.price === 'number') out.price = p.price;
    return Object.assign(out, extra || {});
  }

  function makeEvent(name, items, extra) {
    const e = {
      event_id: uuid(), event_name: name, user_id: visitor, session_id: sessionId(),
      timestamp: Date.now(), items,
    };
    for (const [k, v] of Object.entries(extra || {})) if (v != null) e[k] = v;
    return e;
  }

  let queue = Promise.resolve();
  let health = 'unknown';

  /** POST events in order; once the worker has applied the last one, refresh every widget. */
  function send(events) {
    const run = async () => {
      const t0 = now();
      const last = events[events.length - 1];
      let res, body = {};
      try {
        res = await fetch('/events', {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ events }), keepalive: true,
        });
        try { body = await res.json(); } catch { /* empty */ }
      } catch (err) {
        setPulse(`<b>${last.event_name}</b> not sent: the worker is unreachable`, true);
        toast('Could not reach the shop server. Please try again.', true);
        return false;
      }
      const took = Math.round(now() - t0);
      if (res.status !== 202) {
        const why = (body.rejected || []).map((r) => r.reason).join('; ') || body.error || res.status;
        setPulse(`<b>${last.event_name}</b> rejected: ${escapeHtml(String(why))}`, true);
        toast(`The shop did not accept this ${last.event_name}: ${why}`, true);
        return false;
      }
      const names = events.map((e) => e.event_name).join(' + ');
      setPulse(`<b>${names}</b> accepted in ${took} ms · waiting for the worker…`);
      const report = (applied) => {
        setPulse(`<b>${names}</b> accepted in ${took} ms · ` +
          (applied ? `applied after ${Math.round(applied)} ms` : 'not seen applied yet') +
          ` · widgets refreshed ${Math.round(now() - t0)} ms after the click`);
      };
      const applied = await waitApplied(last.event_id, t0, APPLY_WAIT_MS);
      await refreshWidgets(last.event_name, t0);
      report(applied);
      if (!applied) {
        // a slow worker: keep watching in the background, and show the lists again once it has caught up
        waitApplied(last.event_id, t0, APPLY_GIVE_UP_MS).then(async (late) => {
          if (late) { await refreshWidgets(last.event_name, t0); report(late); }
        });
      }
      return true;
    };
    queue = queue.then(run, run);
    return queue;
  }

  /** How a profile lists an applied event (persona.profile.event_key): the first 8 bytes of the
   * SHA-256 of its id, base64url; null where the page has no WebCrypto (served neither from localhost
   * nor over https): the widgets then refresh after the wait. */
  async function eventKey(eventId) {
    if (!crypto.subtle) return null;
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(eventId));
    const b64 = btoa(String.fromCharCode(...new Uint8Array(digest, 0, 8)));
    return b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  /** Milliseconds until the worker lists the event as applied in the profile, or 0 after a timeout. */
  async function waitApplied(eventId, t0, limit) {
    const url = `/users/${encodeURIComponent(visitor)}`;
    const key = await eventKey(eventId);
    if (key === null) {
      await sleep(Math.max(0, limit - (now() - t0)));
      return 0;
    }
    while (now() - t0 < limit) {
      try {
        const res = await fetch(url, { cache: 'no-store' });
        if (res.ok) {
          const profile = await res.json();
          if ((profile.applied || []).includes(key)) return now() - t0;
        }
      } catch { /* keep trying */ }
      await sleep(now() - t0 < 1000 ? 40 : 150);
    }
    return 0;
  }

  function escapeHtml(s) {
    return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  }

  function setPulse(html, bad) {
    const el = $('pulse');
    el.innerHTML = `<span class="dot"></span>${html}`;
    el.classList.toggle('down', !!bad);
  }

  function toast(text, bad) {
    const el = h('div', { class: `toast${bad ? ' bad' : ''}` }, text);
    $('toasts').append(el);
    setTimeout(() => el.remove(), bad ? 6000 : 3200);
  }

  // ------------------------------------------------------------------ images with a placeholder

  function hash(text) {
    let x = 2166136261;
    for (const ch of text || '') x = Math.imul(x ^ ch.codePointAt(0), 16777619) >>> 0;
    return x;
  }
  // rose, plum, amber, sage, teal, slate blue, sand, terracotta, lilac, olive: [hue, saturation]
  const TONES = [[345, 42], [318, 24], [36, 52], [105, 16], [178, 24], [214, 30], [32, 26], [14, 44], [258, 28], [58, 22]];
  const tone = (brand) => TONES[hash(brand) % TONES.length];

  function initials(brand) {
    const words = (brand || '?').replace(/[^\p{L}\p{N} ]/gu, ' ').split(/\s+/).filter(Boolean);
    if (!words.length) return '?';
    if (words.length === 1) return words[0].slice(0, 2).toUpperCase();
    return words.slice(0, 3).map((w) => w[0]).join('').toUpperCase();
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    return el;
  }

  /** A perfume bottle in the brand's colour with the brand's initials on the label. */
  function bottle(brand) {
    const [hue, sat] = tone(brand);
    const s = svg('svg', { viewBox: '0 0 100 100', 'aria-hidden': 'true', focusable: 'false' });
    s.append(
      svg('rect', { x: 41, y: 12, width: 18, height: 13, rx: 2.5, fill: `hsl(${hue} ${sat}% 24%)` }),
      svg('rect', { x: 45, y: 25, width: 10, height: 7, fill: `hsl(${hue} ${sat}% 50%)` }),
      svg('rect', { x: 24, y: 32, width: 52, height: 57, rx: 11, fill: `hsl(${hue} ${sat}% 72%)` }),
      svg('rect', { x: 29, y: 36, width: 7, height: 46, rx: 3.5, fill: 'rgba(255,255,255,.28)' }),
      svg('rect', { x: 33, y: 50, width: 34, height: 24, rx: 3, fill: 'rgba(255,255,255,.85)' }),
    );
    const t = svg('text', {
      x: 50, y: 66.5, 'text-anchor': 'middle', 'font-size': initials(brand).length > 2 ? 10.5 : 12.5,
      'font-family': 'Georgia, "DejaVu Serif", serif', 'font-weight': 600, fill: `hsl(${hue} ${sat}% 22%)`, 'letter-spacing': '.5',
    });
    t.textContent = initials(brand);
    s.append(t);
    return s;
  }

  /** A fixed-size box: the bottle is drawn first, the photo fades in over it if it loads. */
  function picture(p, big) {
    const alt = `${p.brand || ''} ${p.name || ''} ${p.category || ''}`.trim();
    const box = h('div', { class: big ? 'ph big' : 'ph' });
    const [hue, sat] = tone(p.brand);
    box.style.setProperty('--ph-bg', `hsl(${hue} ${sat}% 94%)`);
    box.append(bottle(p.brand));
    const fallback = () => { box.setAttribute('role', 'img'); box.setAttribute('aria-label', alt); };
    if (p.image && /^(https?:)?\/\//.test(p.image)) {
      const img = h('img', { alt, loading: big ? 'eager' : 'lazy', decoding: 'async', referrerpolicy: 'no-referrer' });
      img.addEventListener('load', () => { if (img.naturalWidth > 1) img.classList.add('loaded'); else { img.remove(); fallback(); } });
      img.addEventListener('error', () => { img.remove(); fallback(); });
      img.src = p.image;
      box.append(img);
    } else {
      fallback();
    }
    return box;
  }

  // ------------------------------------------------------------------ widgets

  const widgets = new Set();
  let pendingSelect = null;

  const TITLES = { recs: 'Recommended for you', related: 'Goes well with', trending: 'Trending now' };

  /**
   * A box that asks the worker for a list and shows it.
   * kind: recs (slot, item_id, category) | related (item_id) | trending (category).
   * layout: strip (cards in a row) | ranked (a numbered list).
   */
  class Widget {
    constructor(el, opts) {
      this.el = el;
      this.opts = Object.assign({ n: 8, layout: 'strip' }, opts);
      this.seq = 0;
      this.sig = null;
      this.data = null;
      this.loads = 0;
      el.classList.add('widget');
      el.dataset.widget = this.opts.kind;
      if (this.opts.slot) el.dataset.slot = this.opts.slot;
      el.setAttribute('aria-labelledby', `${el.id}-title`);
      el.setAttribute('aria-busy', 'true');
      this.head(this.opts.title || TITLES[this.opts.kind], 'loading…');
      widgets.add(this);
    }

    get live() { return this.el.isConnected && !this.el.closest('[hidden]') && !this.el.closest('.drawer:not(.open)'); }

    url() {
      const o = this.opts;
      const q = new URLSearchParams({ n: String(o.n + (o.exclude ? 1 : 0)) });
      if (o.kind === 'recs') {
        if (o.slot) q.set('slot', o.slot);
        if (o.itemId) q.set('item_id', o.itemId);
        if (o.category) q.set('category', o.category);
        return `/recommendations/${encodeURIComponent(visitor)}?${q}`;
      }
      if (o.kind === 'related') return `/items/${encodeURIComponent(o.itemId)}/related?${q}`;
      if (o.category) q.set('category', o.category);
      return `/trending?${q}`;
    }

    head(title, meta) {
      const m = h('div', { class: 'meta' });
      if (meta instanceof Node) m.append(meta); else m.textContent = meta || '';
      const head = h('div', { class: 'section-head' }, h('h2', { id: `${this.el.id}-title` }, title), m);
      const old = this.el.querySelector(':scope > .section-head');
      if (old) old.replaceWith(head); else this.el.prepend(head);
      return head;
    }

    /** Ask again; cause/t0 say which event this follows (for the "updated … after" label). */
    async load(cause, t0) {
      const seq = ++this.seq;
      let data;
      try {
        data = await getJSON(this.url());
      } catch (err) {
        if (seq !== this.seq) return;
        if (err.status === 503) { setTimeout(() => this.live && this.load(cause, t0), 1000); }
        this.renderError(err);
        return;
      }
      if (seq !== this.seq || !this.el.isConnected) return;
      if (this.opts.exclude && Array.isArray(data.items)) {
        data.items = data.items.filter((i) => i.item_id !== this.opts.exclude).slice(0, this.opts.n);
      }
      const sig = (data.items || []).map((i) => i.item_id).join(',');
      const changed = this.sig !== null && sig !== this.sig;
      this.sig = sig;
      this.data = data;
      this.loads += 1;
      this.render(data, { cause, t0, changed });
    }

    renderError(err) {
      this.el.removeAttribute('aria-busy');
      this.body(h('p', { class: 'empty' }, err.status === 503 ? 'The shop is warming up…' : `Could not load this list (${err.message}).`));
    }

    body(node) {
      const head = this.el.querySelector(':scope > .section-head');
      while (head && head.nextSibling) head.nextSibling.remove();
      this.el.append(node);
    }

    render(data, { cause, t0, changed }) {
      const o = this.opts;
      const el = this.el;
      el.removeAttribute('aria-busy');
      el.dataset.loads = String(this.loads);
      if (data.rec_id) el.dataset.recId = data.rec_id; else delete el.dataset.recId;
      if (cause) el.dataset.after = cause; else delete el.dataset.after;
      el.dataset.first = (data.items && data.items[0] && data.items[0].item_id) || '';

      const meta = h('span');
      if (o.kind === 'recs' && data.strategy) {
        const bits = [data.strategy.replace(/_/g, ' ') + (data.fallback ? ' (fallback)' : '')];
        if (data.stage) bits.push(`stage ${data.stage}`);
        if (typeof data.intent === 'number') bits.push(`intent ${Math.round(data.intent * 100)}%`);
        meta.append(bits.join(' · '));
        if (data.rules_fired && data.rules_fired.length) meta.title = `rules: ${data.rules_fired.join(', ')}`;
      }
      if (cause && t0 != null) {
        const ms = Math.round(now() - t0);
        meta.append(meta.childNodes.length ? ' · ' : '',
          h('span', { class: changed ? 'fresh' : null }, changed ? `updated ${ms} ms after ${cause}` : `checked after ${cause}`));
      }
      this.head(o.title || TITLES[o.kind], meta);

      const items = data.items || [];
      if (!items.length) {
        this.body(h('p', { class: 'empty' }, o.empty || 'Nothing to show yet — browse a little and this fills up.'));
        return;
      }
      const list = o.layout === 'ranked'
        ? h('ol', { class: 'ranked' }, items.map((it, i) => h('li', {}, this.row(it, i, data))))
        : h('div', { class: 'strip', role: 'list' }, items.map((it, i) => h('div', { role: 'listitem' }, this.card(it, i, data))));
      this.body(list);
      if (changed) { el.classList.remove('flash'); void el.offsetWidth; el.classList.add('flash'); }
    }

    open(it, index, data) {
      return (ev) => {
        if (ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
        if (data.rec_id) {
          ev.preventDefault();
          pendingSelect = { it, index, recId: data.rec_id, slot: this.opts.slot || null };
          remember(it.item_id, data.rec_id);
          if (this.opts.closeDrawer) closeCart();
          go(`#/item/${encodeURIComponent(it.item_id)}`);
        } else if (this.opts.closeDrawer) {
          closeCart();
        }
      };
    }

    card(it, index, data) {
      return h('a', {
        class: 'card', href: `#/item/${encodeURIComponent(it.item_id)}`,
        dataset: { itemId: it.item_id, source: it.source || '' }, onclick: this.open(it, index, data),
      },
      picture(it),
      h('div', { class: 'brand' }, it.brand),
      h('div', { class: 'name' }, it.name),
      h('div', { class: 'sub' }, [it.category, it.gender].filter(Boolean).join(' · ')),
      price(it.price),
      reasons(it),
      it.source ? h('span', { class: 'source', dataset: { source: it.source }, title: 'the generator that proposed it' }, it.source) : null);
    }

    row(it, index, data) {
      return h('a', {
        href: `#/item/${encodeURIComponent(it.item_id)}`, dataset: { itemId: it.item_id, source: it.source || '' },
        onclick: this.open(it, index, data),
      },
      picture(it),
      h('span', { class: 't' },
        h('b', {}, it.name),
        h('span', {}, `${it.brand} · ${it.category || ''}`),
        h('span', {}, (it.reasons || []).join('; ') || ' ', ' ',
          it.source ? h('span', { class: 'source', dataset: { source: it.source } }, it.source) : null)));
    }
  }

  function reasons(it) {
    const r = it.reasons || [];
    if (!r.length) return null;
    return h('ul', { class: 'reasons', 'aria-label': 'why' }, r.slice(0, 2).map((x) => h('li', {}, x)));
  }

  function liveWidgets() {
    for (const w of widgets) if (!w.el.isConnected) widgets.delete(w);
    return [...widgets].filter((w) => w.live);
  }

  function refreshWidgets(cause, t0) {
    return Promise.all(liveWidgets().map((w) => w.load(cause, t0)));
  }

  // ------------------------------------------------------------------ routing

  function parseRoute() {
    const raw = location.hash.replace(/^#/, '') || '/';
    const [path, query = ''] = raw.split('?');
    const m = path.match(/^\/item\/([^/]+)$/);
    if (m) return { name: 'item', id: decodeURIComponent(m[1]) };
    const p = new URLSearchParams(query);
    return { name: 'home', q: (p.get('q') || '').trim(), category: p.get('category') || '', page: Math.max(1, parseInt(p.get('page'), 10) || 1) };
  }

  function homeHash({ q = '', category = '', page = 1 }) {
    const p = new URLSearchParams();
    if (q) p.set('q', q);
    if (category) p.set('category', category);
    if (page > 1) p.set('page', String(page));
    const s = p.toString();
    return s ? `#/?${s}` : '#/';
  }

  function go(hash) {
    if (location.hash === hash) route(); else location.hash = hash;
  }

  let current = null; // {name, ...} of the view on screen

  function route() {
    const r = parseRoute();
    if (r.name === 'item') {
      current = r;
      showItem(r.id);
    } else if (current && current.name === 'home' && $('catalog-grid')) {
      const categoryChanged = current.category !== r.category;
      current = r;
      syncHomeControls(r);
      loadCatalog(r);
      if (categoryChanged) homeTrending(r);
    } else {
      current = r;
      showHome(r);
    }
  }

  // ------------------------------------------------------------------ the catalog page

  function showHome(r) {
    const view = $('view');
    const search = h('form', { class: 'search', role: 'search', onsubmit: onSearch },
      h('label', { class: 'visually-hidden', for: 'q' }, 'Search perfumes'),
      h('input', { id: 'q', type: 'search', name: 'q', placeholder: 'Search brand, name or note — e.g. oud, vanilla', value: r.q, autocomplete: 'off' }),
      h('button', { class: 'btn btn-dark', type: 'submit' }, 'Search'));

    const label = (text, ...kids) => h('div', { class: 'chip-group', role: 'group', 'aria-label': text }, h('span', { class: 'chip-label', 'aria-hidden': 'true' }, text), kids);
    const chip = (label, value) => h('button', {
      type: 'button', class: 'chip', 'aria-pressed': String(r.category === value), dataset: { category: value },
      onclick: () => go(homeHash({ q: current.q, category: current.category === value ? '' : value })),
    }, label);
    const chips = h('div', { class: 'chips' },
      label('Family', chip('All', ''), FAMILIES.map((f) => chip(cap(f), f))),
      label('For', GENDERS.map((g) => chip(g, g))),
      label('Type', CONCENTRATIONS.map((c) => chip(c, c))));

    const recs = h('section', { id: 'w-home' });
    const trending = h('section', { id: 'w-trending' });
    view.replaceChildren(
      h('div', { class: 'hero' },
        h('div', {}, h('h1', { id: 'page-title', tabindex: '-1' }, 'Find your signature scent'),
          h('p', {}, 'Every click teaches the shop a little more about you — watch the recommendations follow along.')),
        search),
      chips,
      recs,
      h('div', { class: 'shop' },
        h('section', { 'aria-labelledby': 'catalog-title' },
          h('h2', { id: 'catalog-title', class: 'visually-hidden' }, 'Catalog'),
          h('p', { class: 'result-line', id: 'result-line', 'aria-live': 'polite' }, 'Loading the catalog…'),
          h('div', { class: 'grid', id: 'catalog-grid' }),
          h('nav', { class: 'pager', id: 'pager', 'aria-label': 'Pages' })),
        h('aside', {}, trending)));
    new Widget(recs, { kind: 'recs', slot: 'home', n: 8 }).load();
    homeTrending(r);
    loadCatalog(r);
  }

  function homeTrending(r) {
    const el = $('w-trending');
    if (!el) return;
    const fresh = h('section', { id: 'w-trending' });
    el.replaceWith(fresh);
    new Widget(fresh, {
      kind: 'trending', layout: 'ranked', n: 8, category: r.category || null,
      title: r.category ? `Trending in ${r.category}` : 'Trending now',
      empty: 'Nothing is trending yet — it fills up as shoppers browse.',
    }).load();
  }

  function syncHomeControls(r) {
    const q = $('q');
    if (q && document.activeElement !== q) q.value = r.q;
    for (const b of document.querySelectorAll('.chip')) b.setAttribute('aria-pressed', String(b.dataset.category === r.category));
  }

  function onSearch(ev) {
    ev.preventDefault();
    const q = $('q').value.trim();
    if (q && q !== (current && current.q)) send([makeEvent('search', [], { search_term: q.slice(0, 100) })]);
    go(homeHash({ q, category: current ? current.category : '' }));
  }

  let catalogSeq = 0;
  async function loadCatalog(r) {
    const seq = ++catalogSeq;
    const q = new URLSearchParams({ offset: String((r.page - 1) * PAGE_SIZE), limit: String(PAGE_SIZE) });
    if (r.q) q.set('q', r.q);
    if (r.category) q.set('category', r.category);
    let data;
    try {
      data = await getJSON(`/catalog?${q}`);
    } catch (err) {
      if (seq !== catalogSeq) return;
      $('result-line').textContent = err.status === 503 ? 'The shop is warming up — one moment…' : `Could not load the catalog: ${err.message}`;
      if (err.status === 503 || err.status === undefined) setTimeout(() => seq === catalogSeq && loadCatalog(r), 1000);
      return;
    }
    if (seq !== catalogSeq || !$('catalog-grid')) return;
    const total = data.total || 0;
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    const what = [r.q && `“${r.q}”`, r.category].filter(Boolean).join(' in ');
    $('result-line').textContent = total
      ? `${total.toLocaleString('en')} perfume${total === 1 ? '' : 's'}${what ? ` for ${what}` : ''} · page ${r.page} of ${pages}`
      : `No perfume matches ${what || 'this'} — try another note or category.`;
    $('catalog-grid').replaceChildren(...(data.items || []).map(productCard));
    const pager = $('pager');
    pager.replaceChildren();
    if (pages > 1) {
      pager.append(
        h('button', { type: 'button', class: 'btn', disabled: r.page <= 1, onclick: () => go(homeHash({ ...r, page: r.page - 1 })) }, '← Previous'),
        h('span', {}, `Page ${r.page} of ${pages}`),
        h('button', { type: 'button', class: 'btn', disabled: r.page >= pages, onclick: () => go(homeHash({ ...r, page: r.page + 1 })) }, 'Next →'));
    }
  }

  function productCard(p) {
    return h('a', { class: 'card', href: `#/item/${encodeURIComponent(p.item_id)}`, dataset: { itemId: p.item_id } },
      picture(p),
      h('div', { class: 'brand' }, p.brand),
      h('div', { class: 'name' }, p.name),
      h('div', { class: 'sub' }, [p.category, p.gender].filter(Boolean).join(' · ')),
      h('div', { class: 'row' }, stars(p.rating, p.reviews), price(p.price)));
  }

  // ------------------------------------------------------------------ the product page

  let productSeq = 0;
  async function showItem(id) {
    const seq = ++productSeq;
    const view = $('view');
    view.replaceChildren(h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← All perfumes')), h('p', { class: 'muted' }, 'Loading…'));
    window.scrollTo(0, 0);
    let p;
    try {
      p = await getJSON(`/items/${encodeURIComponent(id)}`);
    } catch (err) {
      if (seq !== productSeq) return;
      view.replaceChildren(
        h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← All perfumes')),
        h('h1', { id: 'page-title', tabindex: '-1' }, err.status === 404 ? 'We could not find this perfume' : 'This perfume could not be loaded'),
        h('p', { class: 'muted' }, err.status === 404 ? `There is no item ${id} in the catalog.` : err.message));
      if (err.status === 503) setTimeout(() => seq === productSeq && showItem(id), 1000);
      return;
    }
    if (seq !== productSeq) return;
    document.title = `${p.brand} ${p.name} · Maison Persona`;

    const recId = attribution[p.item_id];
    const addToCart = () => {
      const line = cart.find((l) => l.item_id === p.item_id);
      if (line) line.quantity += 1; else cart.push({ ...itemOf(p), image: p.image, quantity: 1 });
      saveCart();
      toast(`Added ${p.brand} ${p.name} to your cart`);
      send([makeEvent('add_to_cart', [itemOf(p, { quantity: 1 })], { rec_id: recId })]);
    };
    const buyNow = () => {
      const tx = `T-${randomId(8).toUpperCase()}`;
      toast(`Thank you! Order ${tx} is placed.`);
      send([makeEvent('purchase', [itemOf(p, { quantity: 1 })], { transaction_id: tx, rec_id: recId })]);
    };

    const noteLink = (n) => h('a', { class: 'note', href: homeHash({ q: n }) }, n);
    const pyramid = h('dl', { class: 'pyramid' });
    const levels = [['Top', p.top_notes], ['Heart', p.heart_notes], ['Base', p.base_notes]].filter(([, v]) => v && v.length);
    if (levels.length) {
      for (const [label, notes] of levels) pyramid.append(h('div', {}, h('dt', {}, label), h('dd', {}, notes.map(noteLink))));
    } else if (p.notes && p.notes.length) {
      pyramid.append(h('div', {}, h('dt', {}, 'Notes'), h('dd', {}, p.notes.map(noteLink))));
    }

    const family = p.family || '';
    const related = h('section', { id: 'w-related' });
    const recs = h('section', { id: 'w-product' });
    const trending = h('section', { id: 'w-trending' });
    view.replaceChildren(
      h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← All perfumes'),
        family ? [' / ', h('a', { href: homeHash({ category: family }) }, cap(family))] : null,
        ' / ', h('a', { href: homeHash({ q: p.brand }) }, p.brand)),
      h('article', { class: 'product', dataset: { itemId: p.item_id } },
        picture(p, true),
        h('div', {},
          h('div', { class: 'brand' }, p.brand),
          h('h1', { id: 'page-title', tabindex: '-1' }, p.name),
          h('div', { class: 'facts' },
            p.category ? h('a', { class: 'tag', href: homeHash({ category: p.category }) }, p.category) : null,
            p.gender ? h('a', { class: 'tag', href: homeHash({ category: p.gender }) }, p.gender) : null,
            family ? h('a', { class: 'tag', href: homeHash({ category: family }) }, cap(family)) : null),
          stars(p.rating, p.reviews, true),
          h('p', { class: 'blurb' }, describe(p)),
          h('div', { class: 'buy' },
            price(p.price, { perLitre: true }),
            h('button', { type: 'button', class: 'btn btn-primary', id: 'add-to-cart', onclick: addToCart }, 'Add to cart'),
            h('button', { type: 'button', class: 'btn btn-dark', id: 'buy-now', onclick: buyNow }, 'Buy now')),
          h('h2', { class: 'visually-hidden' }, 'Fragrance notes'),
          pyramid,
          h('p', { class: 'muted mono', style: 'margin-top:1rem' }, `item ${p.item_id}${recId ? ` · opened from recommendation ${recId.slice(0, 8)}` : ''}`))),
      related, recs, trending);
    focusTitle();

    const widgetsHere = [
      new Widget(related, { kind: 'related', itemId: p.item_id, exclude: p.item_id, n: 8, empty: 'No companions known for this one yet.' }),
      new Widget(recs, { kind: 'recs', slot: 'product', itemId: p.item_id, n: 8 }),
      new Widget(trending, {
        kind: 'trending', category: family || null, exclude: p.item_id, n: 8, title: family ? `Trending in ${family}` : 'Trending now',
        empty: 'Nothing is trending here yet.',
      }),
    ];
    // What was shown before the view: the page reacts to the view_item below.
    widgetsHere.forEach((w) => w.load());

    const events = [];
    if (pendingSelect && pendingSelect.it.item_id === p.item_id) {
      const s = pendingSelect;
      events.push(makeEvent('select_item', [itemOf(s.it, { index: s.index, item_list_id: s.it.source, item_list_name: s.slot || undefined })],
        { rec_id: s.recId }));
    }
    pendingSelect = null;
    events.push(makeEvent('view_item', [itemOf(p)], { rec_id: recId }));
    send(events);
  }

  function focusTitle() {
    const t = $('page-title');
    if (t) t.focus({ preventScroll: true });
  }

  // ------------------------------------------------------------------ the cart drawer

  let cartWidget = null;

  function renderCart() {
    const n = cart.reduce((a, l) => a + l.quantity, 0);
    const count = $('cart-count');
    count.textContent = String(n);
    count.dataset.n = String(n);
    $('open-cart').setAttribute('aria-label', `Cart, ${n} item${n === 1 ? '' : 's'}`);
    $('cart-lines').replaceChildren(...cart.map((l) => h('li', { dataset: { itemId: l.item_id } },
      picture({ brand: l.item_brand, name: l.item_name, category: l.item_category, image: l.image }),
      h('div', {}, h('b', {}, l.item_name || l.item_id), h('span', {}, `${l.item_brand || ''} · ${l.quantity} × `, price(l.price))),
      h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Remove ${l.item_name || l.item_id}`, onclick: () => removeLine(l.item_id) }, 'Remove'))));
    $('cart-empty').hidden = cart.length > 0;
    $('checkout').disabled = cart.length === 0;
    $('cart-total').textContent = money.format(cart.reduce((a, l) => a + (l.price || 0) * l.quantity, 0));
  }

  function removeLine(itemId) {
    const line = cart.find((l) => l.item_id === itemId);
    if (!line) return;
    cart = cart.filter((l) => l.item_id !== itemId);
    saveCart();
    const { image, ...item } = line;
    send([makeEvent('remove_from_cart', [item])]);
  }

  function checkout() {
    if (!cart.length) return;
    const tx = `T-${randomId(8).toUpperCase()}`;
    const items = cart.map(({ image, ...item }) => item);
    const recId = items.map((i) => attribution[i.item_id]).find(Boolean);
    cart = [];
    saveCart();
    closeCart();
    toast(`Thank you! Order ${tx} is placed.`);
    send([makeEvent('purchase', items, { transaction_id: tx, rec_id: recId })]);
  }

  let lastFocus = null;
  function openCart() {
    lastFocus = document.activeElement;
    $('scrim').hidden = false;
    $('cart').classList.add('open');
    $('open-cart').setAttribute('aria-expanded', 'true');
    if (!cartWidget) {
      cartWidget = new Widget($('w-cart'), {
        kind: 'recs', slot: 'cart', n: 6, title: 'Complete your order', closeDrawer: true, layout: 'strip',
      });
    }
    cartWidget.load();
    $('close-cart').focus();
  }

  function closeCart() {
    if (!$('cart').classList.contains('open')) return;
    $('cart').classList.remove('open');
    $('scrim').hidden = true;
    $('open-cart').setAttribute('aria-expanded', 'false');
    if (lastFocus && lastFocus.isConnected) lastFocus.focus({ preventScroll: true });
  }

  // ------------------------------------------------------------------ start

  async function watchHealth() {
    try {
      const hl = await getJSON('/health');
      const starting = hl.status !== 'ok';
      $('banner').hidden = !starting;
      if (starting) $('banner').textContent = 'The shop is starting up (loading the catalog) — lists fill in by themselves in a moment.';
      if (health !== 'ok' && !starting && health !== 'unknown') refreshWidgets();
      if (health === 'unknown' || health === 'down') setPulse(`connected as <b>${escapeHtml(visitor)}</b> · every click is an event`);
      health = starting ? 'starting' : 'ok';
    } catch {
      if (health !== 'down') setPulse('the shop server is unreachable — retrying', true);
      health = 'down';
    }
    setTimeout(watchHealth, health === 'ok' ? 10000 : 1500);
  }

  function start() {
    $('visitor-id').textContent = visitor;
    document.body.dataset.visitor = visitor;
    $('new-visitor').addEventListener('click', () => {
      store.set('localStorage', 'persona.visitor', `v-${randomId(10)}`);
      try { sessionStorage.removeItem('persona.session'); sessionStorage.removeItem('persona.attribution'); } catch { /* ignore */ }
      history.replaceState(null, '', '/storefront#/');
      location.reload();
    });
    $('open-cart').addEventListener('click', openCart);
    $('open-cart').setAttribute('aria-expanded', 'false');
    $('close-cart').addEventListener('click', closeCart);
    $('scrim').addEventListener('click', closeCart);
    $('checkout').addEventListener('click', checkout);
    document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') closeCart(); });
    window.addEventListener('hashchange', route);
    renderCart();
    route();
    watchHealth();
    window.persona = { visitor, session: () => store.get('sessionStorage', 'persona.session', {}).id, widgets };
  }

  start();
})();
