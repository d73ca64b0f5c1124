import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { waitFor } from '../helpers/load.js';
import { PROMETHEUS_DEPLOY, PrometheusServer } from '../helpers/prometheus.js';
import { freePort } from '../helpers/redis.js';
import { testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * A real prometheus scrapes a real `rf listen --metrics` archiving a real redis-server, with the
 * shipped alert rules loaded; the shipped Grafana dashboard's queries run against it, and every
 * series they (and the rules) name is one rf serves, read from its live /metrics.
 */
const scope = testScope();
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RULES = path.join(PROMETHEUS_DEPLOY, 'rf-alerts.yml');
/** Grafana's import asks for the datasource and puts its uid where this stands. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's placeholder, not a template
const DATASOURCE = '${DS_PROMETHEUS}';

interface Panel {
  id: number;
  title: string;
  datasource: { type: string; uid: string };
  targets: Array<{ expr: string; datasource: { uid: string } }>;
}
interface Dashboard {
  __inputs: Array<{ name: string; type: string; pluginId: string }>;
  panels: Panel[];
  templating: { list: Array<{ name: string; definition: string; datasource: { uid: string } }> };
}

/** The names after `# TYPE` in a scrape: every series rf registers, with a value now or not. */
function exportedNames(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
}

/** rf's series an expression names. */
function rfNames(expr: string): string[] {
  return [...expr.matchAll(/\brf_[a-z0-9_]+/g)].map((m) => m[0]);
}

/** A panel query as Prometheus sees it once Grafana has filled in its variables. */
function asGrafanaSends(expr: string): string {
  const filled = expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__range', '1h')
    .replaceAll('$instance', '.*')
    .replaceAll('$shard', '.*');
  expect(filled, `a variable left in ${expr}`).not.toContain('$');
  return filled;
}

async function alertExprs(): Promise<Array<{ alert: string; expr: string }>> {
  const doc = parse(await readFile(RULES, 'utf8')) as {
    groups: Array<{ rules: Array<{ alert: string; expr: string }> }>;
  };
  return doc.groups.flatMap((g) => g.rules);
}

describe('Prometheus scraping rf listen --metrics', () => {
  it('serves rf_replication_lag_seconds, runs the alert rules and the dashboard queries', async () => {
    const master = await scope.master();
    const store = await scope.storeDir();
    const port = await freePort();
    const d = scope.daemon([
      '--source',
      master.url,
      '--store',
      store,
      '--metrics',
      `127.0.0.1:${port}`,
      '--base-every',
      '1h',
    ]);
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    const c = await master.client();
    for (let i = 0; i < 100; i++) await c.call('SET', `k:${i}`, String(i));

    const scrape = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const exported = exportedNames(scrape);
    expect(exported.has('rf_replication_lag_seconds')).toBe(true);

    const dir = await makeTempDir('rf-prometheus-');
    scope.defer(() => removeTempDir(dir));
    const prom = await PrometheusServer.start(dir, [`127.0.0.1:${port}`], [RULES]);
    scope.defer(() => prom.stop());

    let lag: Awaited<ReturnType<PrometheusServer['query']>> = [];
    await waitFor(
      async () => {
        lag = await prom.query('rf_replication_lag_seconds');
        return lag.length > 0;
      },
      'prometheus to scrape rf_replication_lag_seconds',
      30_000,
      250,
    );
    expect(lag).toHaveLength(1);
    expect(lag[0]!.metric).toMatchObject({
      __name__: 'rf_replication_lag_seconds',
      job: 'rf',
      instance: `127.0.0.1:${port}`,
    });
    // A standalone daemon's series carry no shard label.
    expect(lag[0]!.metric.shard).toBeUndefined();
    const [, value] = lag[0]!.value as [number, string];
    expect(Number(value)).toBeGreaterThanOrEqual(0);
    expect((await prom.query('up{job="rf"}'))[0]!.value).toEqual([expect.any(Number), '1']);

    // The rule file as shipped, loaded and evaluated: every alert there, every one healthy.
    const alerts = await alertExprs();
    type Rules = {
      groups: Array<{ rules: Array<{ name: string; health: string; lastEvaluation: string }> }>;
    };
    let rules: Rules['groups'][number]['rules'] = [];
    await waitFor(
      async () => {
        rules = ((await prom.api('rules')).data as Rules).groups.flatMap((g) => g.rules);
        return rules.length > 0 && rules.every((r) => !r.lastEvaluation.startsWith('0001'));
      },
      'the rules to be evaluated',
      30_000,
      250,
    );
    expect(rules.map((r) => r.name).sort()).toEqual(alerts.map((a) => a.alert).sort());
    expect(rules.filter((r) => r.health !== 'ok')).toEqual([]);
    for (const a of alerts)
      for (const name of rfNames(a.expr)) expect(exported, `${a.alert}: ${name}`).toContain(name);

    // The dashboard: importable (datasource as an input), every query valid PromQL that
    // Prometheus runs, every series it names one rf exports.
    const dash = JSON.parse(
      await readFile(path.join(root, 'deploy/grafana/rf.json'), 'utf8'),
    ) as Dashboard;
    expect(dash.__inputs).toEqual([
      expect.objectContaining({
        name: 'DS_PROMETHEUS',
        type: 'datasource',
        pluginId: 'prometheus',
      }),
    ]);
    expect(new Set(dash.panels.map((p) => p.id)).size).toBe(dash.panels.length);
    const queries = [
      ...dash.panels.flatMap((p) => {
        expect(p.datasource.uid, p.title).toBe(DATASOURCE);
        expect(p.targets.length, p.title).toBeGreaterThan(0);
        return p.targets.map((t) => {
          expect(t.datasource.uid, p.title).toBe(DATASOURCE);
          return { where: p.title, expr: t.expr };
        });
      }),
      // A variable's label_values(selector, label): its selector is the query.
      ...dash.templating.list.map((v) => ({
        where: `variable ${v.name}`,
        expr: /^label_values\((.*), \w+\)$/.exec(v.definition)?.[1] ?? v.definition,
      })),
    ];
    const named = new Set<string>();
    for (const q of queries) {
      const names = rfNames(q.expr);
      expect(names.length, `${q.where} names no rf series`).toBeGreaterThan(0);
      for (const name of names) {
        expect(exported, `${q.where}: ${name}`).toContain(name);
        named.add(name);
      }
      const body = await prom.api(`query?query=${encodeURIComponent(asGrafanaSends(q.expr))}`);
      expect({ where: q.where, status: body.status, error: body.error }).toEqual({
        where: q.where,
        status: 'success',
        error: undefined,
      });
    }
    for (const topic of [
      'rf_replication_lag_seconds',
      'rf_replication_lag_bytes',
      'rf_stream_written_bytes_total',
      'rf_repo_backlog_bytes',
      'rf_base_age_seconds',
      'rf_bases_total',
      'rf_timeline',
      'rf_last_durable_write_timestamp_seconds',
      'rf_restorable_from_timestamp_seconds',
      'rf_restorable_until_timestamp_seconds',
      'rf_gaps',
      'rf_errors_total',
    ])
      expect(named, topic).toContain(topic);

    // An alert seen through: the master goes away, RfDisconnected becomes pending (its `for: 2m`
    // keeps it from firing within a test).
    await master.stop();
    await waitFor(
      async () => {
        const body = (await prom.api('alerts')).data as {
          alerts: Array<{ labels: Record<string, string>; state: string }>;
        };
        return body.alerts.some(
          (a) => a.labels.alertname === 'RfDisconnected' && a.state === 'pending',
        );
      },
      'RfDisconnected to be pending',
      30_000,
      250,
    );
    expect((await d.stop()).code).toBe(0);
  });
});
