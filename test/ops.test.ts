// The operator's files in ops/: the Prometheus alert rules (promtool check
// and promtool's unit tests) and the Grafana dashboard (validated against
// JSON Schemas derived from Grafana's own published types, @grafana/schema);
// and every metric they name is one the real daemon exposes, so a typo cannot
// leave an alert that never fires or a panel that stays empty.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { createGenerator } from 'ts-json-schema-generator';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { ROOT, startDaemon } from './helpers/daemon.js';
import { NATS_SERVER, type NatsNode, startNats, stopNats } from './helpers/nats.js';

const RULES = join(ROOT, 'daemon', 'ops', 'prometheus', 'evbridge-alerts.yml');
const RULE_TESTS = join(ROOT, 'daemon', 'ops', 'prometheus', 'evbridge-alerts.test.yml');
const DASHBOARD = join(ROOT, 'daemon', 'ops', 'grafana', 'evbridge.json');
const SCHEMA_TYPES = join(ROOT, 'node_modules', '@grafana', 'schema', 'dist', 'types', 'raw');

interface Target {
  expr: string;
  refId: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: Target[];
  options?: unknown;
  fieldConfig?: { defaults?: { custom?: unknown } };
}
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[]; templating: { list: { query?: string | { query?: string } }[] } };
const rules = parseYaml(readFileSync(RULES, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };

function promtool(args: string[]) {
  const r = spawnSync('promtool', args, { encoding: 'utf8', cwd: join(ROOT, 'daemon', 'ops', 'prometheus') });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

t.test('promtool checks the alert rules and their unit tests pass', async (t) => {
  if (spawnSync('promtool', ['--version']).status !== 0) {
    t.fail('promtool is missing (.ci/run installs Debian package prometheus)');
    return;
  }
  const check = promtool(['check', 'rules', RULES]);
  t.ok(check.ok, 'promtool check rules', { output: check.out });
  const test = promtool(['test', 'rules', RULE_TESTS]);
  t.ok(test.ok, 'promtool test rules', { output: test.out });
  // Every alert has at least one test case in which it fires.
  const tests = parseYaml(readFileSync(RULE_TESTS, 'utf8')) as {
    tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
  };
  const fired = new Set(tests.tests.flatMap((c) => (c.alert_rule_test ?? []).filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)));
  const silent = new Set(tests.tests.flatMap((c) => (c.alert_rule_test ?? []).filter((a) => a.exp_alerts.length === 0).map((a) => a.alertname)));
  for (const r of rules.groups.flatMap((g) => g.rules)) {
    t.ok(fired.has(r.alert), `${r.alert} is tested firing`);
    t.ok(silent.has(r.alert), `${r.alert} is tested silent`);
  }
});

t.test('the dashboard matches Grafana\'s dashboard schema and each panel its plugin\'s options', async (t) => {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const compiled = new Map<string, ValidateFunction>();
  /** The validator of one exported type of a @grafana/schema declaration file. */
  const schemaOf = (file: string, type: string): ValidateFunction => {
    const key = `${file}#${type}`;
    let v = compiled.get(key);
    if (!v) {
      v = ajv.compile(createGenerator({ path: join(SCHEMA_TYPES, file), type, skipTypeCheck: true, expose: 'all', topRef: true }).createSchema(type));
      compiled.set(key, v);
    }
    return v;
  };
  const validate = (what: string, v: ValidateFunction, value: unknown) => {
    const ok = v(value);
    t.ok(ok, what, { errors: ajv.errorsText(v.errors, { separator: '\n' }) });
  };
  validate('dashboard: Dashboard (raw/dashboard/x)', schemaOf('dashboard/x/types.gen.d.ts', 'Dashboard'), dashboard);
  const plugins: Record<string, string> = { timeseries: 'timeseries', stat: 'stat', heatmap: 'heatmap' };
  const types = new Set<string>();
  for (const p of dashboard.panels) {
    types.add(p.type);
    if (p.type === 'row') continue;
    const dir = plugins[p.type];
    if (!dir) {
      t.fail(`panel "${p.title}" has type ${p.type}, which this test does not know`);
      continue;
    }
    validate(`"${p.title}" options: ${p.type} Options`, schemaOf(`composable/${dir}/panelcfg/x/types.gen.d.ts`, 'Options'), p.options ?? {});
    if (p.fieldConfig?.defaults?.custom !== undefined) {
      validate(`"${p.title}" field config: ${p.type} FieldConfig`, schemaOf(`composable/${dir}/panelcfg/x/types.gen.d.ts`, 'FieldConfig'), p.fieldConfig.defaults.custom);
    }
  }
  t.same([...types].sort(), ['heatmap', 'row', 'stat', 'timeseries'], 'panel types');
  const ids = dashboard.panels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
    t.ok((p.targets ?? []).length > 0, `"${p.title}" has queries`);
    const refs = (p.targets ?? []).map((x) => x.refId);
    t.equal(new Set(refs).size, refs.length, `"${p.title}" refIds are unique`);
  }
});

t.test('every metric the dashboard and the rules name is exposed by the daemon', async (t) => {
  // A plain daemon, an ingest publishing to NATS and an edge: together
  // they expose every metric (the NATS and edge ones only exist there).
  if (!existsSync(NATS_SERVER)) {
    t.fail(`${NATS_SERVER} is missing (.ci/run installs Debian package nats-server)`);
    return;
  }
  const nodes = await startNats(1);
  t.teardown(() => stopNats(nodes));
  const nats = ['--nats-servers', (nodes[0] as NatsNode).url];
  const daemons = [await startDaemon([]), await startDaemon(nats), await startDaemon(['--role', 'edge', ...nats])];
  t.teardown(() => Promise.all(daemons.map((d) => d.stop())));
  const exposed = new Set<string>();
  for (const d of daemons) {
    const text = await (await fetch(`${d.base}/metrics`)).text();
    for (const l of text.split('\n')) if (l && !l.startsWith('#')) exposed.add(/^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)?.[0] ?? '');
  }
  const exprs = [
    ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((x) => ({ where: `panel "${p.title}"`, expr: x.expr }))),
    ...dashboard.templating.list.flatMap((v) => (typeof v.query === 'object' && v.query.query ? [{ where: 'variable', expr: v.query.query }] : [])),
    ...rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr }))),
  ];
  let names = 0;
  let patterns = 0;
  for (const { where, expr } of exprs) {
    // Name patterns ({__name__=~"..."}) must match at least one exposed name.
    const rest = expr.replace(/__name__=~"([^"]+)"/g, (_m, re: string) => {
      const r = new RegExp(`^(?:${re})$`);
      t.ok([...exposed].some((n) => r.test(n)), `${where}: {__name__=~"${re}"} matches an exposed metric`);
      patterns++;
      return '';
    });
    for (const name of rest.match(/\bevbridge_[a-z0-9_]+\b/g) ?? []) {
      t.ok(exposed.has(name), `${where}: ${name} is exposed`);
      names++;
    }
  }
  t.ok(names > 60 && patterns >= 3, `checked ${names} metric names and ${patterns} name patterns`);
});
