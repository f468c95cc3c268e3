/* persona live dashboard: polls GET /stats every second and draws it with hand-written SVG.
 * Every field may be missing or empty (a worker that just started, an older worker): each panel then
 * says "no data yet" instead of failing.
 */
'use strict';

(() => {
  const POLL_MS = 1000;
  const WINDOW_S = 300; // the events chart: last 5 minutes
  const SMOOTH_S = 5; // event rates are averaged over this many seconds
  const EVENT_NAMES = ['view_item', 'select_item', 'add_to_cart', 'remove_from_cart', 'purchase', 'search', 'view_item_list'];
  const COLORS = {
    view_item: '#4f6d9a', select_item: '#7b2d4e', add_to_cart: '#b8893b', remove_from_cart: '#a0522d',
    purchase: '#2f7d5b', search: '#6b5b95', view_item_list: '#9a9a9a', dead_lettered: '#b3382c',
    content: '#3b64b0', cf: '#6a45a8', covisit: '#2e7d57', 'co-visitation': '#2e7d57', trending: '#d07a2b', collaborative: '#6a45a8',
    companions: '#a33a66', best_sellers: '#9b7d1d', 'best-sellers': '#9b7d1d', recently_viewed: '#6b6b6b',
  };
  const SPARE = ['#1f8a8a', '#c2517a', '#5b7f2a', '#8a5a2b', '#4a4a9a', '#b0463a', '#2b6f9a', '#7a7a2a'];
  const SVGNS = 'http://www.w3.org/2000/svg';

  // ------------------------------------------------------------------ helpers

  const $ = (id) => document.getElementById(id);
  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const arr = (v) => (Array.isArray(v) ? v : []);
  const obj = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});

  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'style') el.style.cssText = v;
      else el.setAttribute(k, String(v));
    }
    for (const c of children.flat(Infinity)) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
    return el;
  }

  function s(tag, attrs, text) {
    const el = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v != null) el.setAttribute(k, String(v));
    if (text != null) el.textContent = text;
    return el;
  }

  const colorMemo = {};
  function color(name) {
    if (COLORS[name]) return COLORS[name];
    if (!colorMemo[name]) colorMemo[name] = SPARE[Object.keys(colorMemo).length % SPARE.length];
    return colorMemo[name];
  }

  const int = (v) => (num(v) == null ? '—' : Math.round(v).toLocaleString('en'));
  const pct = (v, digits = 1) => (num(v) == null ? '—' : `${(v * 100).toFixed(digits)}%`);
  const fixed = (v, digits = 3) => (num(v) == null ? '—' : v.toFixed(digits));
  const money = new Intl.NumberFormat('en-IE', { style: 'currency', currency: 'EUR', maximumFractionDigits: 0 });
  const eur = (v) => (num(v) == null ? '—' : money.format(v));
  function rate(v) {
    if (num(v) == null) return '—';
    if (v === 0) return '0';
    return v >= 10 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2);
  }

  /** A round upper bound for an axis: 1, 2, 2.5, 5 × 10^k. */
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  const clock = (t) => new Date(t * 1000).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });

  // ------------------------------------------------------------------ charts

  /** An SVG that fills the width of its box; "no data yet" when there is nothing to draw. */
  function frame(box, height) {
    const width = Math.max(260, Math.floor(box.clientWidth || 600));
    const svg = s('svg', { class: 'chart', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img' });
    return { svg, width, height };
  }

  function noData(box, height, text) {
    const { svg, width } = frame(box, height);
    svg.setAttribute('aria-label', text || 'no data yet');
    svg.append(s('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'nodata' }, text || 'no data yet'));
    box.replaceChildren(svg);
    box.dataset.empty = 'true';
  }

  /**
   * Lines over time. series: [{name, points: [[t, y], ...]}]; x0..x1 in seconds.
   * opts: yFormat, xLabel(t) for ticks, dots (draw points), gap (seconds that break a line), label (aria),
   * legendValue(series).
   */
  function lineChart(box, series, x0, x1, opts) {
    const height = opts.height || 220;
    const drawn = series.filter((sr) => sr.points.length);
    if (!drawn.length) { noData(box, height, opts.empty); return; }
    const { svg, width } = frame(box, height);
    svg.setAttribute('aria-label', opts.label || 'line chart');
    const m = { l: 46, r: 14, t: 10, b: 24 };
    const iw = width - m.l - m.r;
    const ih = height - m.t - m.b;
    const ymax = niceMax(Math.max(opts.minMax || 0, ...drawn.flatMap((sr) => sr.points.map((p) => p[1]))));
    const X = (t) => m.l + ((t - x0) / Math.max(1e-9, x1 - x0)) * iw;
    const Y = (v) => m.t + ih - (v / ymax) * ih;

    for (let i = 0; i <= 5; i += 1) {
      const v = (ymax * i) / 5;
      svg.append(s('line', { x1: m.l, x2: m.l + iw, y1: Y(v), y2: Y(v), class: 'grid-line' }));
      svg.append(s('text', { x: m.l - 6, y: Y(v) + 4, 'text-anchor': 'end' }, opts.yFormat(v)));
    }
    svg.append(s('line', { x1: m.l, x2: m.l + iw, y1: m.t + ih, y2: m.t + ih, class: 'axis' }));
    for (const t of opts.xTicks(x0, x1)) {
      svg.append(s('line', { x1: X(t), x2: X(t), y1: m.t + ih, y2: m.t + ih + 4, class: 'axis' }));
      svg.append(s('text', { x: X(t), y: height - 6, 'text-anchor': 'middle' }, opts.xLabel(t)));
    }
    const clip = `clip-${box.id}`;
    const defs = s('defs');
    const cp = s('clipPath', { id: clip });
    cp.append(s('rect', { x: m.l - 5, y: m.t - 5, width: iw + 10, height: ih + 10 }));  // room for the dots
    defs.append(cp);
    svg.append(defs);
    const g = s('g', { 'clip-path': `url(#${clip})` });
    for (const sr of drawn) {
      const pts = sr.points.filter((p) => p[0] >= x0 - 60 && p[0] <= x1 + 60);
      if (!pts.length) continue;
      // a gap in the data (no poll, a minute without impressions) breaks the line
      const d = pts.map((p, i) => `${i && p[0] - pts[i - 1][0] <= (opts.gap || Infinity) ? 'L' : 'M'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join('');
      g.append(s('path', { d, fill: 'none', stroke: color(sr.name), 'stroke-width': 2, 'stroke-linejoin': 'round', 'stroke-linecap': 'round' }));
      if (opts.dots || pts.length === 1) {
        for (const p of pts) {
          const c = s('circle', { cx: X(p[0]), cy: Y(p[1]), r: 3, fill: '#fff', stroke: color(sr.name), 'stroke-width': 2 });
          c.append(s('title', {}, `${sr.name} ${clock(p[0])}: ${opts.yFormat(p[1])}`));
          g.append(c);
        }
      }
    }
    svg.append(g);
    const legend = h('div', { class: 'legend' }, drawn.map((sr) => h('span', { dataset: { series: sr.name } },
      h('i', { style: `background:${color(sr.name)}` }), sr.name.replace(/_/g, ' '),
      opts.legendValue ? ` ${opts.legendValue(sr)}` : '')));
    box.replaceChildren(svg, legend);
    box.dataset.empty = 'false';
  }

  function barChart(box, values, labels, opts) {
    const height = opts.height || 220;
    const total = values.reduce((a, v) => a + (num(v) || 0), 0);
    if (!values.length || total <= 0) { noData(box, height, opts.empty); return; }
    const { svg, width } = frame(box, height);
    svg.setAttribute('aria-label', opts.label || 'bar chart');
    const m = { l: 40, r: 8, t: 16, b: 26 };
    const iw = width - m.l - m.r;
    const ih = height - m.t - m.b;
    const ymax = niceMax(Math.max(...values.map((v) => num(v) || 0)));
    const bw = iw / values.length;
    for (let i = 0; i <= 5; i += 1) {
      const v = (ymax * i) / 5;
      const y = m.t + ih - (v / ymax) * ih;
      svg.append(s('line', { x1: m.l, x2: m.l + iw, y1: y, y2: y, class: 'grid-line' }));
      svg.append(s('text', { x: m.l - 6, y: y + 4, 'text-anchor': 'end' }, int(v)));
    }
    values.forEach((raw, i) => {
      const v = num(raw) || 0;
      const bh = (v / ymax) * ih;
      const x = m.l + i * bw + bw * 0.14;
      const r = s('rect', {
        x, y: m.t + ih - bh, width: bw * 0.72, height: Math.max(0, bh), rx: 2,
        fill: opts.color ? opts.color(i) : '#7b2d4e',
      });
      r.append(s('title', {}, `${labels[i]}: ${int(v)} (${pct(v / total, 0)})`));
      svg.append(r);
      if (v > 0) svg.append(s('text', { x: x + bw * 0.36, y: m.t + ih - bh - 4, 'text-anchor': 'middle' }, int(v)));
      if (i % (bw < 34 ? 2 : 1) === 0) svg.append(s('text', { x: x + bw * 0.36, y: height - 8, 'text-anchor': 'middle' }, labels[i]));
    });
    box.replaceChildren(svg);
    box.dataset.empty = 'false';
  }

  // ------------------------------------------------------------------ state from the polls

  const samples = []; // [{t, counters}] for differencing, last WINDOW_S + a little
  const strategySamples = []; // [{t, bySource}] cumulative totals, for CTR when `recent` is absent
  let last = null; // the last /stats answer
  let lastOk = 0;
  let failures = 0;

  // Rows "variant:<name>" count the same items again, per blend variant: keep them out of totals.
  const generatorsOnly = (rows) => rows.filter((r) => !String(r.source || '').startsWith('variant:'));

  function sumBySource(strategies) {
    const out = {};
    for (const r of strategies) {
      const src = r.source || 'unknown';
      const o = out[src] || (out[src] = { impressions: 0, clicks: 0, carts: 0, purchases: 0, revenue: 0 });
      for (const k of Object.keys(o)) o[k] += num(r[k]) || 0;
    }
    return out;
  }

  function remember(stats, t) {
    samples.push({ t, counters: obj(stats.counters) });
    strategySamples.push({ t, bySource: sumBySource(arr(stats.strategies)) });
    while (samples.length && samples[0].t < t - WINDOW_S - 5) samples.shift();
    while (strategySamples.length && strategySamples[0].t < t - 3600) strategySamples.shift();
  }

  /** Per-second rates of each counter, each over the polls of the last SMOOTH_S: {name: [[t, rate], ...]}. */
  function rates() {
    const out = {};
    let j = 0;
    for (let i = 1; i < samples.length; i += 1) {
      const b = samples[i];
      while (j < i - 1 && samples[j + 1].t <= b.t - SMOOTH_S) j += 1;
      const a = samples[j];
      const dt = b.t - a.t;
      if (dt <= 0) continue;
      const keys = new Set([...Object.keys(a.counters), ...Object.keys(b.counters)]);
      for (const k of keys) {
        const d = (num(b.counters[k]) || 0) - (num(a.counters[k]) || 0);
        (out[k] || (out[k] = [])).push([b.t, Math.max(0, d) / dt]);
      }
    }
    return out;
  }

  /** The latest rate of a series (already averaged over SMOOTH_S). */
  function latest(series) {
    return series && series.length ? series[series.length - 1][1] : null;
  }

  // ------------------------------------------------------------------ panels

  function kpi(label, value, hint, opts = {}) {
    return h('div', { class: `kpi${opts.alert ? ' alert' : ''}`, dataset: { kpi: opts.key || label } },
      h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), h('div', { class: 'hint' }, hint || ' '));
  }

  function renderKpis(stats, r) {
    const c = obj(stats.counters);
    const eventRates = EVENT_NAMES.map((n) => latest(r[n])).filter((v) => v != null);
    const perSecond = eventRates.length ? eventRates.reduce((a, b) => a + b, 0) : null;
    const rows = arr(stats.strategies);
    const tot = Object.values(sumBySource(generatorsOnly(rows))).reduce((a, o) => {
      for (const k of Object.keys(o)) a[k] = (a[k] || 0) + o[k];
      return a;
    }, {});
    const shown = tot.impressions || 0;
    const dlq = num(c.dead_lettered);
    $('kpis').replaceChildren(
      kpi('Events / second', samples.length > 1 ? rate(perSecond || 0) : '…', `averaged over ${SMOOTH_S} s, all types`, { key: 'eps' }),
      kpi('Events applied', int(c.applied ?? null), 'since the workers started', { key: 'applied' }),
      kpi('Dead-lettered', int(dlq ?? 0), 'invalid events sent to the DLQ', { key: 'dlq', alert: dlq > 0 }),
      kpi('Items shown', int(rows.length ? shown : null), 'recommendation impressions', { key: 'impressions' }),
      kpi('CTR', shown ? pct((tot.clicks || 0) / shown, 2) : '—', `${int(tot.clicks || 0)} clicks`, { key: 'ctr' }),
      kpi('Conversion', shown ? pct((tot.purchases || 0) / shown, 2) : '—', `${int(tot.purchases || 0)} purchases · ${eur(tot.revenue || 0)}`, { key: 'conversion' }),
      kpi('Workers', String(arr(stats.workers).length || '—'), 'answering /stats', { key: 'workers' }),
    );
  }

  function renderEvents(r, tNow) {
    const names = [...EVENT_NAMES, 'dead_lettered'];
    const extra = Object.keys(r).filter((k) => !names.includes(k) && !['applied', 'repartitioned', 'duplicates'].includes(k) && !k.startsWith('intent_'));
    const series = names.filter((n) => r[n] && r[n].some((p) => p[1] > 0)).map((n) => ({ name: n, points: r[n] }));
    void extra;
    lineChart($('chart-events'), series, tNow - WINDOW_S, tNow, {
      label: 'events per second by type, last 5 minutes',
      empty: samples.length < 2 ? 'no data yet — waiting for a second poll' : 'no data yet — no events in the last 5 minutes',
      yFormat: rate, minMax: 1, gap: 10,
      xTicks: (a, b) => [0, 1, 2, 3, 4, 5].map((k) => b - k * 60).filter((t) => t >= a),
      xLabel: (t) => (Math.round(tNow - t) === 0 ? 'now' : `−${Math.round((tNow - t) / 60)} min`),
      legendValue: (sr) => `${rate(sr.points[sr.points.length - 1][1])}/s`,
    });
  }

  function renderIntent(stats) {
    const hist = arr(obj(stats.intent).histogram).map((v) => num(v) || 0);
    const labels = hist.map((_, i) => `${(i / hist.length).toFixed(1).replace(/^0/, '')}`);
    barChart($('chart-intent'), hist, labels, {
      label: 'distribution of shopper intent', empty: 'no data yet — no personalised list served',
      color: (i) => `hsl(${330 - i * 2} ${30 + i * 4}% ${72 - i * 4}%)`,
    });
  }

  /** Per-minute CTR or conversion per source from `recent`, else from cumulative samples. */
  function rateSeries(stats, kind, tNow) {
    const recent = arr(stats.recent).filter((r) => num(r.minute) != null && r.minute > tNow - 3600 - 60 && r.minute <= tNow + 60);
    if (recent.length) {
      const by = {};
      for (const r of recent) {
        const shown = num(r.impressions) || 0;
        if (!shown) continue;
        // the middle of the minute, or now for the minute still running
        (by[r.source || 'unknown'] || (by[r.source || 'unknown'] = [])).push([Math.min(r.minute + 30, tNow), (num(r[kind]) || 0) / shown]);
      }
      const first = Math.min(...recent.map((r) => r.minute));
      const span = Math.min(3600, Math.max(600, tNow - first + 60));
      return { from: 'recent', x0: tNow - span, series: Object.entries(by).map(([name, points]) => ({ name, points: points.sort((a, b) => a[0] - b[0]) })) };
    }
    // no per-minute windows: the cumulative rate per source, sampled at each poll
    const by = {};
    for (const smp of strategySamples) {
      for (const [src, o] of Object.entries(smp.bySource)) {
        if (o.impressions > 0) (by[src] || (by[src] = [])).push([smp.t, (o[kind] || 0) / o.impressions]);
      }
    }
    const first = strategySamples.length ? strategySamples[0].t : tNow;
    return { from: 'samples', x0: tNow - Math.min(3600, Math.max(300, tNow - first)), series: Object.entries(by).map(([name, points]) => ({ name, points })) };
  }

  function renderRateChart(stats, tNow, kind, boxId, subId, label) {
    const { from, x0, series } = rateSeries(stats, kind, tNow);
    $(subId).textContent = from === 'recent'
      ? `${label} ÷ items shown, per minute (event time).`
      : `${label} ÷ items shown, cumulative, sampled at each poll (no per-minute figures from the worker).`;
    const span = tNow - x0;
    const step = span > 1800 ? 600 : span > 900 ? 300 : span > 300 ? 120 : 60;
    lineChart($(boxId), series, x0, tNow, {
      label: `${label} rate by strategy`, dots: from === 'recent', gap: from === 'recent' ? 90 : 10,
      empty: 'no data yet — no recommendations served',
      yFormat: (v) => pct(v, v > 0 && v < 0.1 ? 1 : 0), minMax: 0.05,
      xTicks: (a, b) => { const out = []; for (let t = Math.floor(b / step) * step; t >= a; t -= step) out.push(t); return out; },
      xLabel: clock,
      legendValue: (sr) => pct(sr.points[sr.points.length - 1][1], 1),
    });
  }

  function renderStrategies(stats) {
    const rows = arr(stats.strategies).slice().sort((a, b) => (num(b.impressions) || 0) - (num(a.impressions) || 0));
    const tbody = $('strategies').tBodies[0];
    const tfoot = $('strategies').tFoot;
    if (!rows.length) {
      tbody.replaceChildren(h('tr', {}, h('td', { colspan: 10, class: 'nodata' }, 'no data yet — no recommendations served')));
      tfoot.replaceChildren();
      return;
    }
    const maxCtr = Math.max(0.0001, ...rows.map((r) => num(r.ctr) || 0));
    const cell = (col, text, extra) => h('td', { dataset: { col }, class: extra }, text);
    tbody.replaceChildren(...rows.map((r) => h('tr', { dataset: { source: r.source || '', slot: r.slot || '' } },
      h('td', { dataset: { col: 'source' } }, h('span', { class: 'source', dataset: { source: r.source || '' } }, r.source || 'unknown')),
      cell('slot', r.slot || '—', 'l'),
      cell('impressions', int(r.impressions)),
      cell('clicks', int(r.clicks)),
      h('td', { dataset: { col: 'ctr' } }, pct(r.ctr), h('span', { class: 'bar', style: `width:${(((num(r.ctr) || 0) / maxCtr) * 36).toFixed(1)}px` })),
      cell('carts', int(r.carts)),
      cell('cart_rate', pct(r.cart_rate)),
      cell('purchases', int(r.purchases)),
      cell('conversion', pct(r.conversion)),
      cell('revenue_per_1000', eur(r.revenue_per_1000)))));
    const t = Object.values(sumBySource(generatorsOnly(rows))).reduce((a, o) => { for (const k of Object.keys(o)) a[k] = (a[k] || 0) + o[k]; return a; }, {});
    const per = (k) => (t.impressions ? t[k] / t.impressions : null);
    tfoot.replaceChildren(h('tr', { style: 'font-weight:600' },
      h('td', {}, 'All'), h('td', { class: 'l' }, ''), h('td', {}, int(t.impressions)), h('td', {}, int(t.clicks)),
      h('td', {}, pct(per('clicks'))), h('td', {}, int(t.carts)), h('td', {}, pct(per('carts'))), h('td', {}, int(t.purchases)),
      h('td', {}, pct(per('purchases'))), h('td', {}, eur(t.impressions ? (1000 * t.revenue) / t.impressions : null))));
  }

  function renderTrending(stats) {
    const items = arr(stats.trending).slice(0, 10);
    const list = $('trending');
    if (!items.length) { list.replaceChildren(h('li', { class: 'nodata' }, 'no data yet — nothing viewed in the last hour')); return; }
    const max = Math.max(1e-9, ...items.map((i) => num(i.score) || 0));
    list.replaceChildren(...items.map((i) => h('li', { dataset: { itemId: i.item_id } },
      h('span', { class: 'nm', title: `${i.brand || ''} ${i.name || i.item_id}` }, i.name || i.item_id, ' ', h('span', {}, i.brand || '')),
      h('span', { class: 'sc' }, h('i', { style: `width:${(((num(i.score) || 0) / max) * 44).toFixed(1)}px` }), fixed(num(i.score), 1)))));
  }

  function renderModels(stats) {
    const models = Object.entries(obj(stats.models));
    const tbody = $('models').tBodies[0];
    if (!models.length) { tbody.replaceChildren(h('tr', {}, h('td', { colspan: 5, class: 'nodata' }, 'no data yet — no model published'))); return; }
    tbody.replaceChildren(...models.sort().map(([name, m]) => {
      const x = obj(m);
      return h('tr', { dataset: { model: name } }, h('td', {}, name), h('td', {}, x.version ?? '—'), h('td', {}, int(num(x.examples))),
        h('td', {}, fixed(num(x.log_loss))), h('td', {}, fixed(num(x.roc_auc))));
    }));
  }

  function renderCounters(stats, r) {
    const workers = arr(stats.workers);
    $('workers').textContent = workers.length ? `${workers.length} worker${workers.length === 1 ? '' : 's'}: ${workers.join(', ')}` : 'no worker listed';
    const c = Object.entries(obj(stats.counters)).filter(([k]) => !k.startsWith('intent_')).sort((a, b) => (num(b[1]) || 0) - (num(a[1]) || 0));
    const tbody = $('counters').tBodies[0];
    if (!c.length) { tbody.replaceChildren(h('tr', {}, h('td', { colspan: 3, class: 'nodata' }, 'no data yet — no event received'))); return; }
    tbody.replaceChildren(...c.map(([k, v]) => h('tr', { dataset: { counter: k } },
      h('td', {}, k === 'dead_lettered' ? 'dead_lettered (DLQ)' : k), h('td', {}, int(num(v))), h('td', {}, rate(latest(r[k]))))));
  }

  function render() {
    const stats = last || {};
    const tNow = samples.length ? samples[samples.length - 1].t : Date.now() / 1000;
    const r = rates();
    const sections = [
      () => renderKpis(stats, r), () => renderEvents(r, tNow), () => renderIntent(stats),
      () => renderRateChart(stats, tNow, 'clicks', 'chart-ctr', 'ctr-sub', 'Clicks'),
      () => renderRateChart(stats, tNow, 'purchases', 'chart-conv', 'conv-sub', 'Purchases'),
      () => renderStrategies(stats), () => renderTrending(stats), () => renderModels(stats), () => renderCounters(stats, r),
    ];
    for (const draw of sections) {
      try { draw(); } catch (err) { console.error('dashboard panel failed', err); }
    }
  }

  function setLive() {
    const el = $('live');
    const ago = lastOk ? (Date.now() - lastOk) / 1000 : null;
    const down = failures > 0;
    el.classList.toggle('ok', !down && !!lastOk);
    el.classList.toggle('down', down);
    $('live-text').textContent = down
      ? `worker unreachable — retrying (${failures})${ago != null ? `, last data ${ago.toFixed(0)} s ago` : ''}`
      : lastOk ? `live · updated ${ago.toFixed(1)} s ago` : 'connecting…';
  }

  async function poll() {
    const started = Date.now();
    try {
      const ctl = new AbortController();
      const timer = setTimeout(() => ctl.abort(), 2500);
      const res = await fetch('/stats', { cache: 'no-store', signal: ctl.signal });
      clearTimeout(timer);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const stats = obj(await res.json());
      const t = num(stats.time) ?? Date.now() / 1000;
      if (!samples.length || t > samples[samples.length - 1].t) remember(stats, t);
      last = stats;
      lastOk = Date.now();
      failures = 0;
      document.body.dataset.polls = String((parseInt(document.body.dataset.polls, 10) || 0) + 1);
      render();
    } catch (err) {
      failures += 1;
    }
    setLive();
    setTimeout(poll, Math.max(100, POLL_MS - (Date.now() - started)));
  }

  setInterval(setLive, 500);
  let resizeTimer = null;
  window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(render, 150); });
  render();
  poll();
})();
