// The Sluice dashboard: polls GET /admin/overview with the admin key as a
// bearer token and redraws. Every value from the server (plugin names and
// reasons included) is written with textContent, never parsed as HTML.
'use strict';

const POLL_MS = 2000;
const KEY = 'sluice-admin-key';
let previous = null; // { at, requests: {model: n}, total }
let polls = 0;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'class') e.className = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function table(id, head, rows, empty) {
  const t = document.getElementById(id);
  const body = rows.length
    ? rows.map((r) => el('tr', r.attrs || {}, r.cells.map((c) => el('td', {}, c))))
    : [el('tr', {}, el('td', { colspan: head.length, class: 'muted' }, empty || 'none'))];
  t.replaceChildren(el('thead', {}, el('tr', {}, head.map((h) => el('th', {}, h)))), el('tbody', {}, body));
}

const fmtMs = (v) => (v === null || v === undefined ? '–' : v < 1 ? `${(v * 1000).toFixed(0)} µs` : `${v.toFixed(2)} ms`);
const fmtUsd = (v) => `$${v.toFixed(v < 1 ? 4 : 2)}`;
const fmtPct = (v) => `${v.toFixed(1)} %`;
const ago = (ms) => new Date(ms).toLocaleTimeString();

function status(text, kind) {
  const s = document.getElementById('status');
  s.textContent = text;
  s.dataset.kind = kind;
  document.body.dataset.state = kind;
}

function card(label, value, id) {
  return el('div', { class: 'card', id }, el('span', { class: 'muted' }, label), el('b', {}, value));
}

function verdicts(stats) {
  const names = ['pass', 'transform', 'reject', 'flag', 'fail-open', 'fail-closed'];
  return el('div', { class: 'verdicts' },
    names.filter((n) => stats[n] > 0 || n === 'pass' || n === 'reject')
      .map((n) => el('span', { class: 'tag', 'data-verdict': n }, `${n} ${stats[n]}`)));
}

function step(name, role, byName) {
  const p = byName.get(name);
  if (!p) {
    return el('div', { class: 'step', 'data-plugin': name, 'data-state': 'missing' },
      el('div', { class: 'name' }, name), el('div', { class: 'bad' }, 'not loaded: requests fail closed'));
  }
  const failed = p.state === 'failed';
  return el('div', { class: 'step', 'data-plugin': name, 'data-state': p.state, 'data-sha256': p.sha256 || '' },
    el('div', { class: 'name' }, name, ' ', el('span', { class: 'muted' }, role)),
    el('div', {}, el('span', { class: 'tag' }, p.world || p.kind || '?'),
      (p.phases || []).map((ph) => el('span', { class: 'tag' }, ph)),
      el('span', { class: 'tag' }, `fail-${p['failure-mode'] || 'closed'}`),
      (p.grants || []).map((g) => el('span', { class: 'tag', title: 'granted capability' }, typeof g === 'string' ? g : JSON.stringify(g)))),
    el('div', { class: 'mono muted' }, (p.sha256 || '').slice(0, 12)),
    failed ? el('div', { class: 'bad' }, p.serving_previous ? 'new version failed; previous serves' : 'failed') : null,
    verdicts(p.stats));
}

function drawChains(doc) {
  const byName = new Map(doc.plugins.map((p) => [p.name, p]));
  const chains = doc.chains.map((c) => {
    const steps = [];
    const add = (name, role) => {
      if (steps.length) steps.push(el('span', { class: 'arrow' }, '→'));
      steps.push(step(name, role, byName));
    };
    c.input.forEach((n) => add(n, 'input'));
    if (c.cost_policy) add(c.cost_policy, 'cost policy');
    if (c.router) add(c.router, 'router');
    if (steps.length) steps.push(el('span', { class: 'arrow' }, '→'));
    steps.push(el('div', { class: 'step' }, el('div', { class: 'name' }, 'upstream'), el('div', { class: 'muted mono' }, c.routes.join(', '))));
    c.output.forEach((n) => add(n, 'output'));
    return el('div', { class: 'chain', 'data-model': c.model }, el('h3', {}, c.model), el('div', { class: 'steps' }, steps));
  });
  document.getElementById('chains').replaceChildren(...chains);
}

function drawTraffic(doc) {
  const t = doc.traffic;
  const now = doc.generated_at_ms;
  const perModel = Object.fromEntries(t.models.map((m) => [m.model, m.requests]));
  let rate = null;
  if (previous && now > previous.at) rate = ((t.requests - previous.total) * 1000) / (now - previous.at);
  previous = { at: now, total: t.requests, perModel };
  const cards = [
    card('requests / s', rate === null ? '–' : rate.toFixed(1), 'rate'),
    card('requests', t.requests, 'requests'),
    card('overhead p50', fmtMs(t.overhead_p50_ms), 'p50'),
    card('overhead p99', fmtMs(t.overhead_p99_ms), 'p99'),
    card('plugins', doc.plugins.length, 'plugin-count'),
  ];
  if (!t.enabled) cards.push(card('metrics', 'off (server.metrics)', 'metrics-off'));
  document.getElementById('traffic').replaceChildren(...cards);
}

function draw(doc) {
  drawTraffic(doc);
  drawChains(doc);
  table('plugins', ['plugin', 'state', 'world', 'sha-256', 'limits', 'calls', 'failures', 'mean'],
    doc.plugins.map((p) => ({
      attrs: { 'data-plugin': p.name },
      cells: [p.name,
        el('span', { class: p.state === 'loaded' ? 'ok' : 'bad' }, p.state === 'loaded' ? 'loaded' : (p.serving_previous ? 'failed, serving previous' : 'failed')),
        p.world || '–',
        el('span', { class: 'mono' }, (p.sha256 || '–').slice(0, 16)),
        p.limits ? `${p.limits['deadline-ms']} ms, ${p.limits['memory-mb']} MiB` : '–',
        p.stats.calls, p.stats.failures,
        p.stats.calls ? fmtMs(p.stats['total-time-us'] / p.stats.calls / 1000) : '–'],
    })));
  const spend = (rows) => rows.map((s) => ({ cells: [s.name, fmtUsd(s.cost_usd), `${s.tokens_in} / ${s.tokens_out}`] }));
  table('spend-model', ['model', 'cost', 'tokens in / out'], spend(doc.traffic.spend_by_model));
  table('spend-feature', ['feature', 'cost', 'tokens in / out'], spend(doc.traffic.spend_by_feature));
  table('breakers', ['provider', 'state', 'opened', 'refused'],
    doc.breakers.map((b) => ({ cells: [b.provider, el('span', { class: b.state === 'closed' ? 'ok' : 'bad' }, b.state), b.opened, b.rejected] })));
  table('quality', ['model', 'requests', 'errors', 'rejects', 'alert'],
    doc.quality.models.map((q) => ({
      attrs: { 'data-model': q.model },
      cells: [q.model, q.requests, fmtPct(q.error_rate_pct), fmtPct(q.reject_rate_pct),
        q.firing.length ? el('span', { class: 'bad' }, q.firing.join(', ')) : el('span', { class: 'ok' }, 'ok')],
    })));
  table('reloads', ['#', 'time', 'trigger', 'added', 'changed', 'removed', 'failed'],
    doc.reloads.map((r) => ({
      attrs: { 'data-seq': r.seq },
      cells: [r.seq, ago(r['at-ms']), r.trigger, r.added.join(', '), r.changed.join(', '), r.removed.join(', '),
        el('span', { class: r.failed.length ? 'bad' : '' }, r.failed.map((f) => `${f.plugin}: ${f.error}`).join('; '))],
    })));
  table('rejections', ['time', 'model', 'plugin', 'code', 'reason', 'request'],
    doc.quality.rejections.map((r) => ({
      attrs: { class: 'rejection' },
      cells: [ago(r.at_ms), r.model, r.plugin, r.code, r.reason, el('span', { class: 'mono' }, r.request_id)],
    })), 'no rejection since start');
  document.body.dataset.reloadSeq = doc.reloads.length ? doc.reloads[0].seq : 0;
  polls += 1;
  document.body.dataset.polls = polls;
  document.getElementById('updated').textContent = `updated ${ago(doc.generated_at_ms)}`;
}

function askKey(message) {
  sessionStorage.removeItem(KEY);
  document.getElementById('main').hidden = true;
  document.getElementById('forget').hidden = true;
  document.getElementById('key-form').hidden = false;
  status(message, 'need-key');
}

async function poll() {
  const key = sessionStorage.getItem(KEY);
  if (!key) return askKey('admin key needed');
  let res;
  try {
    res = await fetch('/admin/overview', { headers: { Authorization: `Bearer ${key}` }, cache: 'no-store' });
  } catch (e) {
    return status(`gateway unreachable: ${e}`, 'error');
  }
  if (res.status === 401) return askKey('admin key refused');
  if (!res.ok) return status(`overview: HTTP ${res.status}`, 'error');
  const doc = await res.json();
  document.getElementById('key-form').hidden = true;
  document.getElementById('main').hidden = false;
  document.getElementById('forget').hidden = false;
  status(doc.ready ? 'live' : 'plugins loading', 'ok');
  draw(doc);
}

function start() {
  // `#key=...`: never sent to the server; taken out of the address bar.
  const m = /^#key=(.+)$/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname);
  }
  document.getElementById('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById('key').value);
    document.getElementById('key').value = '';
    poll();
  });
  document.getElementById('forget').addEventListener('click', () => askKey('key forgotten'));
  poll();
  setInterval(poll, POLL_MS);
}

start();
