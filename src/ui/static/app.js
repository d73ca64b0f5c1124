// rf ui: the page. Plain browser JavaScript, no build step; it reads the JSON endpoints of
// `rf ui` (the same data as rf info, rf restore --dry-run and rf log --json) and writes nothing.

const SVG = 'http://www.w3.org/2000/svg';
const MIN_SPAN = 60_000;
const LEFT = 92;
const RIGHT = 14;
const LANES = {
  timelines: 10,
  restorable: 36,
  bases: 66,
  activity: 84,
  activityHeight: 72,
  axis: 172,
};

const token = new URLSearchParams(location.hash.slice(1)).get('token');
const state = {
  info: null,
  source: null,
  view: { from: 0, until: 0 },
  extent: { from: 0, until: 0 },
  moment: null,
  activity: null,
  activityTimer: 0,
  activitySeq: 0,
};

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text: nothing is parsed as HTML). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

async function api(path, params = {}) {
  const query = new URLSearchParams(params).toString();
  const res = await fetch(`/api/${path}${query === '' ? '' : `?${query}`}`, {
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
  });
  const body = await res.json();
  if (!res.ok) {
    const err = new Error(body?.error?.message ?? `HTTP ${res.status}`);
    err.rf = body?.error ?? null;
    throw err;
  }
  return body;
}

const iso = (ms) => new Date(ms).toISOString();
const ms = (text) => Date.parse(text);

function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

function formatSpan(span) {
  const s = span / 1000;
  if (s < 120) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

function errorBox(err) {
  const rf = err.rf;
  const box = el('div', { class: 'error', 'data-code': rf?.code ?? '' });
  box.append(rf ? `${rf.code}: ${rf.message}` : String(err.message ?? err));
  if (rf?.hint) box.append(`\nnext: ${rf.hint}`);
  return box;
}

function showError(err) {
  const p = $('error');
  p.hidden = false;
  p.replaceChildren(errorBox(err));
}

// ---- the archive summary ----

function renderSummary() {
  const s = state.source;
  const first = s.restorable[0];
  const last = s.restorable[s.restorable.length - 1];
  const rows = [
    [
      'restorable',
      first ? [`from  ${first.from}`, el('br'), `until ${last.until}`] : 'nothing yet',
    ],
    ['ranges', `${s.restorable.length} (${s.gaps.length} gap${s.gaps.length === 1 ? '' : 's'})`],
    ['timelines', String(s.timelines.length)],
    ['bases', `${s.bases.length} (${formatBytes(s.sizes.bases)})`],
    ['last write', s.lastWrite ?? 'none'],
    ['stream', formatBytes(s.sizes.stream)],
    ['server', s.server ? `${s.server.name} ${s.server.version}` : 'unknown'],
  ];
  $('summary').replaceChildren(
    ...rows.map(([k, v]) =>
      el(
        'div',
        { class: k === 'restorable' ? 'wide' : null },
        el('dt', {}, k),
        el('dd', { class: 'mono' }, v),
      ),
    ),
  );
  const d = state.info.sources.find((x) => x.name === s.name)?.daemon;
  const daemon = $('daemon');
  daemon.textContent = d ? `rf listen running (pid ${d.pid})` : 'rf listen not running';
  daemon.classList.toggle('live', Boolean(d));
}

// ---- the time axis ----

function plotWidth() {
  return Math.max(100, $('chart').clientWidth - LEFT - RIGHT);
}

function x(t) {
  const { from, until } = state.view;
  return LEFT + ((t - from) / (until - from)) * plotWidth();
}

function timeAt(px) {
  const { from, until } = state.view;
  const f = Math.min(1, Math.max(0, (px - LEFT) / plotWidth()));
  return Math.round(from + f * (until - from));
}

/** Tick steps a person reads easily, smallest first (ms). */
const STEPS = [
  100, 250, 500, 1e3, 2e3, 5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3,
  7200e3, 10800e3, 21600e3, 43200e3, 86400e3, 172800e3, 604800e3,
];

function tickLabel(t, step) {
  const s = iso(t);
  if (step < 1000) return s.slice(11, 23);
  if (step < 60_000) return s.slice(11, 19);
  if (step < 86_400_000) return s.slice(11, 16);
  return s.slice(0, 10);
}

function clampRect(a, b) {
  const x0 = Math.max(LEFT - 2, x(a));
  const x1 = Math.min(LEFT + plotWidth() + 2, x(b));
  return { x: x0, width: Math.max(1.5, x1 - x0) };
}

function draw() {
  const chart = $('chart');
  const s = state.source;
  const w = plotWidth();
  const { from, until } = state.view;
  chart.replaceChildren();
  const defs = svg('defs');
  const hatch = svg('pattern', {
    id: 'hatch',
    width: 6,
    height: 6,
    patternUnits: 'userSpaceOnUse',
    patternTransform: 'rotate(45)',
  });
  hatch.append(svg('rect', { width: 6, height: 6, fill: '#fdeeee' }));
  hatch.append(svg('line', { x1: 0, y1: 0, x2: 0, y2: 6, stroke: '#d64545', 'stroke-width': 3 }));
  const clip = svg('clipPath', { id: 'plot' });
  clip.append(svg('rect', { x: LEFT, y: 0, width: w, height: LANES.axis }));
  defs.append(hatch, clip);
  chart.append(defs);

  for (const [label, y] of [
    ['timelines', LANES.timelines + 12],
    ['restorable', LANES.restorable + 15],
    ['bases', LANES.bases + 4],
    ['writes', LANES.activity + 40],
  ]) {
    chart.append(svg('text', { class: 'lane-label', x: 8, y }, label));
  }

  // The axis: ticks at a readable step, about every 110 px.
  const step = STEPS.find((st) => (st / (until - from)) * w >= 110) ?? STEPS[STEPS.length - 1];
  const axis = svg('g', { class: 'axis' });
  for (let t = Math.ceil(from / step) * step; t <= until; t += step) {
    const tx = x(t);
    axis.append(svg('line', { class: 'tick', x1: tx, x2: tx, y1: 4, y2: LANES.axis }));
    axis.append(
      svg(
        'text',
        { class: 'tick-label', x: tx, y: LANES.axis + 16, 'text-anchor': 'middle' },
        tickLabel(t, step),
      ),
    );
  }
  chart.append(axis);

  const plot = svg('g', { 'clip-path': 'url(#plot)' });
  chart.append(plot);

  s.timelines.forEach((t, i) => {
    const r = clampRect(ms(t.from), ms(t.until));
    const g = svg('g');
    g.append(
      svg('rect', {
        class: 'timeline',
        'data-kind': 'timeline',
        'data-id': t.id,
        'data-from': t.from,
        'data-until': t.until,
        'data-reason': t.reason,
        x: r.x,
        y: LANES.timelines,
        width: r.width,
        height: 18,
        rx: 3,
        opacity: i % 2 === 0 ? 0.85 : 0.65,
      }),
    );
    if (r.width > 24)
      g.append(
        svg('text', { class: 'timeline-label', x: r.x + 5, y: LANES.timelines + 13 }, `#${t.id}`),
      );
    g.append(
      svg(
        'title',
        {},
        `timeline ${t.id} (${t.reason}): ${t.from} .. ${t.until}, replid ${t.replid}`,
      ),
    );
    plot.append(g);
    if (t.reason !== 'initial' || i > 0) {
      const fx = x(ms(t.from));
      plot.append(
        svg('line', {
          class: 'fork',
          'data-kind': 'fork',
          'data-at': t.from,
          'data-reason': t.reason,
          x1: fx,
          x2: fx,
          y1: LANES.timelines - 6,
          y2: LANES.activity + LANES.activityHeight,
        }),
      );
      plot.append(svg('text', { class: 'fork-label', x: fx + 4, y: LANES.bases + 12 }, t.reason));
    }
  });

  /** A range of the archive drawn as a band, with its bounds in data-* for a reader. */
  const band = (kind, range, y, height, title, extra = {}) => {
    const c = clampRect(ms(range.from), ms(range.until));
    const rect = svg('rect', {
      class: kind,
      'data-kind': kind,
      'data-from': range.from,
      'data-until': range.until,
      ...extra,
      x: c.x,
      y,
      width: c.width,
      height,
    });
    rect.append(svg('title', {}, title));
    plot.append(rect);
  };
  for (const r of s.restorable) {
    band('restorable', r, LANES.restorable, 22, `restorable ${r.from} .. ${r.until}`, { rx: 2 });
  }
  for (const g of s.gaps) {
    band(
      'gap',
      g,
      LANES.restorable,
      22,
      `gap ${g.from} .. ${g.until} (${g.reason}): not restorable`,
      {
        'data-reason': g.reason,
      },
    );
  }
  for (const w of s.imprecise) {
    band(
      'imprecise',
      w,
      LANES.restorable + 16,
      6,
      `imprecise ${w.from} .. ${w.until} (${w.precision})`,
    );
  }
  for (const b of s.bases) {
    const bx = x(ms(b.takenAt));
    const y = LANES.bases;
    const d = svg('path', {
      class: 'base',
      'data-kind': 'base',
      'data-taken-at': b.takenAt,
      'data-timeline': b.timeline,
      'data-offset': b.offset,
      d: `M${bx} ${y - 6} L${bx + 6} ${y} L${bx} ${y + 6} L${bx - 6} ${y} Z`,
    });
    d.append(
      svg(
        'title',
        {},
        `base of timeline ${b.timeline} at offset ${b.offset}, ${b.takenAt} (${formatBytes(b.bytes)}${b.via ? `, ${b.via}` : ''})`,
      ),
    );
    plot.append(d);
  }

  drawActivity(plot);

  if (state.moment !== null) {
    const mx = x(state.moment);
    plot.append(
      svg('line', {
        class: 'cursor',
        'data-kind': 'moment',
        'data-at': iso(state.moment),
        x1: mx,
        x2: mx,
        y1: 2,
        y2: LANES.axis,
      }),
    );
  }
  plot.append(
    svg('line', { id: 'hover-line', class: 'hover-line', x1: -10, x2: -10, y1: 2, y2: LANES.axis }),
  );
  $('view').textContent = `${iso(from)} .. ${iso(until)}  (${formatSpan(until - from)})`;
}

function drawActivity(plot) {
  const a = state.activity;
  if (a === null) return;
  const peak = Math.max(1, ...a.values);
  const start = ms(a.from);
  const g = svg('g', {
    'data-kind': 'activity',
    'data-unit': a.unit,
    'data-bin-ms': a.binMs,
    'data-from': a.from,
  });
  a.values.forEach((v, i) => {
    if (v === 0) return;
    const t0 = start + i * a.binMs;
    const x0 = x(t0);
    const x1 = x(t0 + a.binMs);
    const h = Math.max(1.5, (v / peak) * LANES.activityHeight);
    const bar = svg('rect', {
      class: a.covered[i] ? 'activity' : 'activity uncovered',
      'data-from': iso(t0),
      'data-value': v,
      x: x0,
      y: LANES.activity + LANES.activityHeight - h,
      width: Math.max(1, x1 - x0 - 0.5),
      height: h,
    });
    bar.append(svg('title', {}, `${iso(t0)}: ${v} ${a.unit} in ${formatSpan(a.binMs)}`));
    g.append(bar);
  });
  plot.append(g);
}

/** The activity of the part in view, at about 3 px a bin, fetched once zooming settles. */
function loadActivity() {
  clearTimeout(state.activityTimer);
  state.activityTimer = setTimeout(async () => {
    const seq = ++state.activitySeq;
    const { from, until } = state.view;
    try {
      const a = await api('activity', {
        name: state.source.name,
        from: String(Math.floor(from)),
        until: String(Math.ceil(until)),
        bins: String(Math.max(10, Math.floor(plotWidth() / 3))),
      });
      if (seq !== state.activitySeq) return;
      state.activity = a;
      draw();
      $('chart').dataset.activityLoaded = String(seq);
    } catch (err) {
      showError(err);
    }
  }, 120);
}

function setView(from, until) {
  const span = Math.max(MIN_SPAN, until - from);
  const mid = (from + until) / 2;
  const ext = state.extent;
  const pad = Math.max(MIN_SPAN, ext.until - ext.from) * 0.5;
  let f = mid - span / 2;
  let u = mid + span / 2;
  // Never further out than half the archive again on either side.
  if (f < ext.from - pad) {
    u += ext.from - pad - f;
    f = ext.from - pad;
  }
  if (u > ext.until + pad) {
    f -= u - (ext.until + pad);
    u = ext.until + pad;
  }
  state.view = { from: f, until: u };
  draw();
  loadActivity();
}

function fitAll() {
  const { from, until } = state.extent;
  const pad = Math.max(1000, (until - from) * 0.03);
  setView(from - pad, until + pad);
}

function zoom(factor, around) {
  const { from, until } = state.view;
  const c = around ?? (from + until) / 2;
  setView(c - (c - from) * factor, c + (until - c) * factor);
}

function zoomTo(span) {
  const c = state.moment ?? (state.view.from + state.view.until) / 2;
  setView(c - span / 2, c + span / 2);
}

function wireChart() {
  const chart = $('chart');
  const hover = $('hover');
  let drag = null;
  chart.addEventListener('wheel', (e) => {
    e.preventDefault();
    const rect = chart.getBoundingClientRect();
    zoom(e.deltaY > 0 ? 1.25 : 0.8, timeAt(e.clientX - rect.left));
  });
  chart.addEventListener('mousedown', (e) => {
    drag = { x: e.clientX, view: { ...state.view }, moved: false };
  });
  window.addEventListener('mouseup', (e) => {
    if (drag === null) return;
    const d = drag;
    drag = null;
    if (d.moved) return;
    const rect = chart.getBoundingClientRect();
    const px = e.clientX - rect.left;
    if (px < LEFT || px > LEFT + plotWidth()) return;
    pick(timeAt(px));
  });
  chart.addEventListener('mousemove', (e) => {
    const rect = chart.getBoundingClientRect();
    const px = e.clientX - rect.left;
    if (drag !== null && Math.abs(e.clientX - drag.x) > 3) {
      drag.moved = true;
      const dt = ((e.clientX - drag.x) / plotWidth()) * (drag.view.until - drag.view.from);
      state.view = { from: drag.view.from - dt, until: drag.view.until - dt };
      draw();
      loadActivity();
    }
    const line = $('hover-line');
    if (px < LEFT || px > LEFT + plotWidth()) {
      hover.hidden = true;
      line?.setAttribute('x1', '-10');
      line?.setAttribute('x2', '-10');
      return;
    }
    hover.hidden = false;
    hover.textContent = iso(timeAt(px));
    hover.style.left = `${Math.min(px + 8, rect.width - 190)}px`;
    line?.setAttribute('x1', String(px));
    line?.setAttribute('x2', String(px));
  });
  chart.addEventListener('mouseleave', () => {
    hover.hidden = true;
  });
  $('zoom-fit').addEventListener('click', fitAll);
  $('zoom-in').addEventListener('click', () => zoom(0.5, state.moment ?? undefined));
  $('zoom-out').addEventListener('click', () => zoom(2, state.moment ?? undefined));
  $('zoom-hour').addEventListener('click', () => zoomTo(3_600_000));
  $('zoom-minute').addEventListener('click', () => zoomTo(MIN_SPAN));
  window.addEventListener('resize', () => {
    draw();
    loadActivity();
  });
}

// ---- the plan of a restore to a moment ----

function pick(t) {
  state.moment = t;
  $('moment').value = iso(t);
  draw();
  plan(iso(t));
}

function copyButton(text) {
  const b = el('button', { type: 'button', title: 'copy to the clipboard' }, 'Copy');
  b.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      b.textContent = 'Copied';
    } catch {
      b.textContent = 'Select it';
    }
    setTimeout(() => {
      b.textContent = 'Copy';
    }, 1500);
  });
  return b;
}

function command(text, kind) {
  return el(
    'div',
    { class: 'command' },
    el('code', { 'data-command': kind }, text),
    copyButton(text),
  );
}

async function plan(until) {
  const box = $('plan');
  box.dataset.state = 'loading';
  box.dataset.until = until;
  const local = new Date(ms(until));
  $('moment-local').textContent = Number.isNaN(local.getTime())
    ? ''
    : `${local.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'long' })} in this browser's time zone`;
  try {
    const { plan: p, commands } = await api('plan', { name: state.source.name, until });
    if (box.dataset.until !== until) return;
    const rows = [
      [
        'moment',
        p.until.input === p.until.utc
          ? p.until.utc
          : `${p.until.utc}  (as given: ${p.until.input})`,
      ],
      [
        'record',
        p.from === 'stream'
          ? `timeline ${p.timeline}, the stream (${p.precision} precision)`
          : `the AOF chunks (${p.precision} precision)`,
      ],
      [
        'base',
        p.base.file === null
          ? 'none: the AOF starts empty'
          : `${p.base.file} (${p.base.offset === null ? '' : `offset ${p.base.offset}, `}taken ${p.base.takenAt}, ${formatBytes(p.base.bytes)}${p.base.rolled ? ', rolled by rf' : ''})`,
      ],
      [
        'replay',
        `${p.replay.fromOffset === null ? '' : `offsets ${p.replay.fromOffset}..${p.replay.cutOffset}: `}${p.replay.writes} writes in ${p.replay.segments} ${p.from === 'stream' ? 'segments' : 'chunks'} (${formatBytes(p.replay.bytes)})`,
      ],
      [
        'last write',
        p.lastWrite === null
          ? 'none after the base'
          : `${p.lastWrite.time}  offset ${p.lastWrite.offset}  ${p.lastWrite.command.toUpperCase()}`,
      ],
    ];
    const notes = [];
    if (p.droppedTransaction !== null) {
      const d = p.droppedTransaction;
      notes.push(
        el(
          'p',
          { class: 'warn', 'data-note': 'dropped' },
          `A transaction is dropped: MULTI at offset ${d.multiAt}${d.time ? ` (${d.time})` : ''}, ${d.commands} commands (${d.reason === 'open-at-archive-end' ? 'the archive ends inside it' : 'the moment falls inside it'}).`,
        ),
      );
    }
    if (p.chosenBecause !== null) {
      notes.push(
        el(
          'p',
          { class: 'warn' },
          `Restored from the AOF chunks: ${p.chosenBecause === 'stream-gap' ? 'the moment falls in a gap of the stream' : 'the stream received these writes late'}.`,
        ),
      );
    }
    if (p.imprecise !== null) {
      notes.push(
        el(
          'p',
          { class: 'warn' },
          `The moment falls in an imprecise window (${p.imprecise.from} .. ${p.imprecise.until}).`,
        ),
      );
    }
    box.replaceChildren(
      el(
        'table',
        {},
        rows.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', { class: 'mono' }, v))),
      ),
      ...notes,
      el('p', { class: 'muted' }, 'To restore, run on the backup host (this page never does):'),
      command(commands.out, 'out'),
      el('p', { class: 'muted' }, 'The same plan, as this page shows it:'),
      command(commands.dryRun, 'dry-run'),
      el(
        'details',
        {},
        el('summary', {}, 'rf restore --dry-run --json'),
        el('pre', { id: 'plan-json' }, JSON.stringify(p, null, 2)),
      ),
    );
    box.dataset.state = 'ready';
  } catch (err) {
    if (box.dataset.until !== until) return;
    box.replaceChildren(errorBox(err));
    box.dataset.state = 'error';
  }
}

function wirePlan() {
  $('moment-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('moment').value.trim();
    if (text === '') return;
    const t = ms(text);
    if (!Number.isNaN(t)) {
      state.moment = t;
      if (t < state.view.from || t > state.view.until) zoomTo(state.view.until - state.view.from);
      else draw();
    }
    plan(text);
  });
}

// ---- the history of a key ----

async function keyLog(key) {
  const box = $('key-log');
  box.dataset.state = 'loading';
  box.dataset.key = key;
  try {
    const r = await api('log', { name: state.source.name, key });
    if (box.dataset.key !== key) return;
    const head = el(
      'tr',
      {},
      ['time', 'db', 'tl', 'offset', 'command', ''].map((h) => el('th', {}, h)),
    );
    const rows = r.records.map((w) => {
      const before = el(
        'button',
        { type: 'button', title: 'plan a restore to just before this write' },
        'before',
      );
      before.addEventListener('click', () => pickAndShow(ms(w.time) - 1));
      const after = el(
        'button',
        { type: 'button', title: 'plan a restore to just after this write' },
        'after',
      );
      after.addEventListener('click', () => pickAndShow(ms(w.time)));
      const args = w.args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
      return el(
        'tr',
        { 'data-time': w.time, 'data-offset': w.offset, 'data-timeline': w.timeline },
        el('td', { class: 'mono nowrap' }, w.time),
        el('td', { class: 'mono nowrap' }, w.db),
        el('td', { class: 'mono nowrap' }, w.timeline),
        el('td', { class: 'mono nowrap' }, w.offset),
        el(
          'td',
          { class: 'mono' },
          `${w.command} ${args.length > 160 ? `${args.slice(0, 160)}…` : args}`,
        ),
        el('td', { class: 'nowrap' }, before, ' ', after),
      );
    });
    box.replaceChildren(
      el(
        'p',
        { class: 'muted', 'data-count': r.records.length },
        r.records.length === 0
          ? 'No write in the archive touched a matching key.'
          : `${r.records.length} write${r.records.length === 1 ? '' : 's'}${r.truncated ? ' (the first ones; the command shows all)' : ''}`,
      ),
      r.records.length === 0 ? '' : el('div', { class: 'scroll' }, el('table', {}, head, rows)),
      command(r.command, 'log'),
    );
    box.dataset.state = 'ready';
  } catch (err) {
    if (box.dataset.key !== key) return;
    box.replaceChildren(errorBox(err));
    box.dataset.state = 'error';
  }
}

function pickAndShow(t) {
  if (t < state.view.from || t > state.view.until) {
    const span = state.view.until - state.view.from;
    state.moment = t;
    setView(t - span / 2, t + span / 2);
  }
  pick(t);
}

function wireKey() {
  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const key = $('key').value;
    if (key !== '') keyLog(key);
  });
}

// ---- start ----

function selectSource(name) {
  state.source = state.info.sources.find((s) => s.name === name) ?? state.info.sources[0];
  const s = state.source;
  const times = [
    ...s.timelines.flatMap((t) => [ms(t.from), ms(t.until)]),
    ...s.restorable.flatMap((r) => [ms(r.from), ms(r.until)]),
  ];
  const now = Date.now();
  state.extent =
    times.length === 0
      ? { from: now - 3_600_000, until: now }
      : { from: Math.min(...times), until: Math.max(...times) };
  state.activity = null;
  state.moment = null;
  renderSummary();
  fitAll();
}

async function start() {
  wireChart();
  wirePlan();
  wireKey();
  try {
    state.info = await api('info');
  } catch (err) {
    showError(err);
    return;
  }
  $('store').textContent = state.info.store;
  if (state.info.sources.length === 0) {
    showError(new Error('the store holds no source yet: start rf listen on it'));
    return;
  }
  const select = $('source');
  select.replaceChildren(...state.info.sources.map((s) => el('option', { value: s.name }, s.name)));
  select.addEventListener('change', () => selectSource(select.value));
  selectSource(state.info.sources[0].name);
  document.body.dataset.ready = 'true';
}

start();
