/** Number formatting and the printed table. */

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return 'n/a';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Math.abs(n);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const sign = n < 0 ? '-' : '';
  return `${sign}${v >= 100 || u === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

export function fmtRate(n, unit = 'ops/s') {
  if (!Number.isFinite(n)) return 'n/a';
  const suffix = unit === '' ? '' : ` ${unit}`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M${suffix}`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k${suffix}`;
  return `${n.toFixed(0)}${suffix}`;
}

export function fmtSeconds(s) {
  if (!Number.isFinite(s)) return 'n/a';
  if (s === 0) return '0 ms';
  if (s < 0.01) return `${(s * 1000).toFixed(2)} ms`;
  if (s < 1) return `${(s * 1000).toFixed(0)} ms`;
  return `${s.toFixed(2)} s`;
}

export function fmtMs(ms) {
  return fmtSeconds(ms / 1000);
}

export function fmtCount(n) {
  if (!Number.isFinite(n)) return 'n/a';
  if (n >= 1e6 && n % 1e5 === 0) return `${n / 1e6}M`;
  if (n >= 1e3 && n % 100 === 0 && n < 1e6) return `${n / 1e3}k`;
  return String(n);
}

export function fmtRatio(r, digits = 2) {
  return Number.isFinite(r) ? `${r.toFixed(digits)}×` : 'n/a';
}

/**
 * A row of the table. `met` is true/false against the target, or null where the row has
 * no target (or could not be measured).
 */
export function row(fields) {
  return {
    id: fields.id,
    name: fields.name,
    workload: fields.workload,
    rf: fields.rf,
    reference: fields.reference,
    ratio: fields.ratio ?? null,
    ratioText: fields.ratioText ?? (fields.ratio == null ? 'n/a' : fmtRatio(fields.ratio)),
    target: fields.target ?? '',
    met: fields.met ?? null,
    notes: fields.notes ?? [],
    data: fields.data ?? {},
  };
}

const cell = (s) => String(s).replace(/\|/g, '\\|');

/** The table as Markdown (it goes into README.md as is), then the notes under it. */
export function renderTable(rows) {
  const lines = [
    '| # | measure | workload | rf | reference (same run) | ratio | target | met |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const met = r.met === null ? '–' : r.met ? 'yes' : '**no**';
    lines.push(
      `| ${r.id} | ${cell(r.name)} | ${cell(r.workload)} | ${cell(r.rf)} | ${cell(r.reference)} | ${cell(r.ratioText)} | ${cell(r.target)} | ${met} |`,
    );
  }
  const notes = rows.filter((r) => r.notes.length > 0);
  if (notes.length > 0) {
    lines.push('', 'Notes:');
    for (const r of notes) for (const n of r.notes) lines.push(`- ${r.id}: ${n}`);
  }
  return lines.join('\n');
}
