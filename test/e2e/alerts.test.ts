import { copyFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { PROMETHEUS_DEPLOY, runTool } from '../helpers/prometheus.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * deploy/prometheus/rf-alerts.yml, checked by Prometheus's own promtool: the rules parse, and
 * their unit tests (rf-alerts.test.yml: input series, when each alert fires, its labels and its
 * rendered annotations) pass. Every alert must have a case where it fires and one where it must
 * not, so an alert added without a test fails here.
 */

interface Rule {
  alert?: string;
  expr: string;
  annotations?: Record<string, string>;
}
interface RuleTest {
  alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }>;
}

async function loadYaml<T>(file: string): Promise<T> {
  return parse(await readFile(path.join(PROMETHEUS_DEPLOY, file), 'utf8')) as T;
}

async function alertRules(): Promise<Rule[]> {
  const doc = await loadYaml<{ groups: Array<{ rules: Rule[] }> }>('rf-alerts.yml');
  return doc.groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined);
}

describe('the shipped Prometheus alert rules', () => {
  it('pass promtool check rules', async () => {
    const r = await runTool('promtool', ['check', 'rules', 'rf-alerts.yml'], {
      cwd: PROMETHEUS_DEPLOY,
    });
    expect(r.output).toContain('SUCCESS');
    expect(r.code, r.output).toBe(0);
  });

  it('pass their promtool unit tests', async () => {
    const r = await runTool('promtool', ['test', 'rules', 'rf-alerts.test.yml'], {
      cwd: PROMETHEUS_DEPLOY,
    });
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('SUCCESS');
  });

  it('have, for every alert, a unit test where it fires and one where it stays quiet', async () => {
    const names = (await alertRules()).map((r) => r.alert!);
    expect(names.length).toBeGreaterThanOrEqual(10);
    const doc = await loadYaml<{ tests: RuleTest[] }>('rf-alerts.test.yml');
    const cases = doc.tests.flatMap((t) => t.alert_rule_test ?? []);
    const firing = new Set(
      cases.filter((c) => (c.exp_alerts ?? []).length > 0).map((c) => c.alertname),
    );
    const quiet = new Set(
      cases.filter((c) => (c.exp_alerts ?? []).length === 0).map((c) => c.alertname),
    );
    expect(names.filter((n) => !firing.has(n))).toEqual([]);
    expect(names.filter((n) => !quiet.has(n))).toEqual([]);
    // A test of an alert that does not exist tests nothing.
    expect([...firing, ...quiet].filter((n) => !names.includes(n))).toEqual([]);
  });

  it('say in each description which rf command to run', async () => {
    for (const rule of await alertRules()) {
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toMatch(
        /`rf (info|verify|doctor|log)\b[^`]*`/,
      );
    }
  });

  it('are checked for real: a unit test expecting the wrong thing fails promtool', async () => {
    const dir = await makeTempDir('rf-alerts-');
    try {
      await copyFile(
        path.join(PROMETHEUS_DEPLOY, 'rf-alerts.yml'),
        path.join(dir, 'rf-alerts.yml'),
      );
      const tests = await readFile(path.join(PROMETHEUS_DEPLOY, 'rf-alerts.test.yml'), 'utf8');
      // The lag alert is made to expect a firing at 5m, before its `for: 5m` has passed.
      const wrong = tests.replace(
        /(eval_time: )5m(\n\s+alertname: RfCaptureLagHigh\n\s+exp_alerts: )\[\]/,
        '$15m$2\n          - exp_labels: {severity: warning, job: rf, instance: "backup:9187"}',
      );
      expect(wrong).not.toBe(tests);
      await writeFile(path.join(dir, 'rf-alerts.test.yml'), wrong);
      const r = await runTool('promtool', ['test', 'rules', 'rf-alerts.test.yml'], { cwd: dir });
      expect(r.code).not.toBe(0);
      expect(r.output).toContain('RfCaptureLagHigh');
    } finally {
      await removeTempDir(dir);
    }
  });
});
