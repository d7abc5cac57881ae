// Calico's log prefix placeholders, read back from lines as the kernel prints them: whole (nftables keeps
// 127 characters), or cut at iptables' 29 (iptables 1.8.9 (nf_tables) here stores "calico-packet gnp
// default.net" for --log-prefix "calico-packet gnp default.netperf-policy: ", silently).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createParser, NOT_PREFIXED, type ParseResult } from '../../agent/parser/parse.ts';
import { readPolicy } from '../../agent/parser/policy.ts';
import { type PrefixTemplate, parseTemplate } from '../../agent/prefix-template.ts';
import { fileLineParser, TCP4 } from './samples.ts';

const IPTABLES_PREFIX_MAX = 29;
const NFTABLES_PREFIX_MAX = 127;
const FIELDS = 'IN=cali1234 OUT=eth0 SRC=10.4.1.9 DST=10.4.0.16 LEN=60 PROTO=TCP SPT=41234 DPT=12865';

interface Rendered {
  tier: string;
  kind: string;
  namespace: string;
  name: string;
}

/** What Felix writes into the rule for `logPrefix` and one policy: placeholders replaced, ": " appended. */
function render(template: string, p: Rendered): string {
  const replaced = template.replace(/%[tknp]/g, (s) => {
    if (s === '%t') return p.tier;
    if (s === '%k') return p.kind;
    if (s === '%n') return p.name;
    return p.namespace === '' ? p.name : `${p.namespace}/${p.name}`;
  });
  return `${replaced}: `;
}

/** The policy as read from a kernel line: the prefix kept up to `max` characters, then the fields. */
function read(template: string, p: Rendered, max: number) {
  const t = parseTemplate(template) as PrefixTemplate;
  const line = `kernel: ${render(template, p).slice(0, max)}${FIELDS}`;
  const from = line.indexOf(t.core) + t.core.length;
  return readPolicy(t, line, from, line.indexOf('IN='));
}

const gnp = { tier: 'default', kind: 'gnp', namespace: '', name: 'default.netperf-policy' };
const np = { tier: 'security', kind: 'np', namespace: 'netperf', name: 'allow-client' };

describe('parseTemplate', () => {
  it('leaves a plain prefix to the plain matcher', () => {
    expect(parseTemplate('calico-packet')).toBeNull();
    expect(parseTemplate(' calico-packet: ')).toBeNull();
  });

  it('splits a template into its leading text, literals and placeholders', () => {
    expect(parseTemplate('calico-packet %k %p:')).toEqual({
      core: 'calico-packet',
      tokens: [{ literal: ' ' }, { placeholder: 'k' }, { literal: ' ' }, { placeholder: 'p' }],
    });
    expect(parseTemplate('drop %t:%k:%n')?.tokens).toEqual([
      { literal: ' ' },
      { placeholder: 't' },
      { literal: ':' },
      { placeholder: 'k' },
      { literal: ':' },
      { placeholder: 'n' },
    ]);
  });

  it.each([
    ['%k calico-packet', /start with text/],
    ['calico-packet %k%n', /placeholders need text between them/],
    ['calico-packet %k|%n', /only letters, digits/],
  ])('refuses %j', (template, why) => {
    expect(() => parseTemplate(template)).toThrow(why);
  });
});

describe('readPolicy', () => {
  it('reads every placeholder of a whole prefix (nftables keeps 127 characters)', () => {
    expect(read('calico-packet %t %k %p', np, NFTABLES_PREFIX_MAX)).toEqual({
      tier: 'security',
      kind: 'NetworkPolicy',
      namespace: 'netperf',
      name: 'allow-client',
      cut: false,
    });
    expect(read('calico-packet %k %n', gnp, NFTABLES_PREFIX_MAX)).toEqual({
      tier: null,
      kind: 'GlobalNetworkPolicy',
      namespace: null,
      name: 'default.netperf-policy',
      cut: false,
    });
  });

  it('names every kind Felix abbreviates; global kinds and profiles have no namespace', () => {
    const kinds = {
      np: 'NetworkPolicy',
      gnp: 'GlobalNetworkPolicy',
      snp: 'StagedNetworkPolicy',
      sgnp: 'StagedGlobalNetworkPolicy',
      sknp: 'StagedKubernetesNetworkPolicy',
      knp: 'KubernetesNetworkPolicy',
      kcnp: 'KubernetesClusterNetworkPolicy',
      pro: 'Profile',
    };
    for (const [short, kind] of Object.entries(kinds)) {
      const policy = read('x %k %p', { ...np, kind: short }, NFTABLES_PREFIX_MAX);
      expect(policy?.kind).toBe(kind);
    }
    expect(read('x %k %p', { ...np, kind: 'pro', namespace: '', name: 'kns.netperf' }, 127)).toMatchObject({
      kind: 'Profile',
      namespace: null,
      name: 'kns.netperf',
    });
    expect(read('x %k %p', { ...np, kind: 'SomeNewKind' }, 127)).toMatchObject({
      kind: null,
      name: 'allow-client',
    });
  });

  it('marks a name the kernel cut at 29 characters, keeping what came before it', () => {
    expect(read('calico-packet %k %p', gnp, IPTABLES_PREFIX_MAX)).toEqual({
      tier: null,
      kind: 'GlobalNetworkPolicy',
      namespace: null,
      name: 'default.net',
      cut: true,
    });
    expect(read('calico-packet %k %p', np, IPTABLES_PREFIX_MAX)).toMatchObject({
      namespace: 'netperf',
      name: 'allo',
      cut: true,
    });
  });

  it('knows a name complete when only the ": " was cut, and nothing of a name cut before its slash', () => {
    const short = { ...np, namespace: 'a', name: 'b' };
    const whole = render('calico-packet %k %p', short).length;
    for (const max of [whole, whole - 1, whole - 2]) {
      const policy = read('calico-packet %k %p', short, max);
      expect(policy).toMatchObject({ namespace: 'a', name: 'b' });
      expect(policy?.cut).toBe(max < whole - 1);
    }
    expect(read('calico-packet %k %p', { ...np, namespace: 'a-very-long-namespace' }, 29)).toMatchObject({
      kind: 'NetworkPolicy',
      namespace: null,
      name: null,
    });
  });

  it('does not read a line that does not fit the template', () => {
    const t = parseTemplate('calico-packet %k %p') as PrefixTemplate;
    for (const rest of [': ', ' np: ', ' np app/foo bar: ', ' np app/f%o: ', '-np app/foo: ']) {
      const line = `calico-packet${rest}${FIELDS}`;
      expect(readPolicy(t, line, 'calico-packet'.length, line.indexOf('IN='))).toBeNull();
    }
  });

  it('reads any rendering cut anywhere after the leading text: a name read is a start of the real one, whole unless marked cut', () => {
    const name = fc.stringMatching(/^[a-z0-9]([-a-z0-9.]{0,40}[a-z0-9])?$/);
    fc.assert(
      fc.property(
        fc.constantFrom('calico-packet %k %p', 'calico-packet %t %k %n', 'cp %k:%p:%t', 'calico-packet %p'),
        fc.record({
          tier: name,
          kind: fc.constantFrom('np', 'gnp', 'knp', 'pro', 'kcnp'),
          namespace: name,
          name,
        }),
        fc.nat(200),
        (template, drawn, cutAt) => {
          const global = drawn.kind === 'gnp' || drawn.kind === 'pro' || drawn.kind === 'kcnp';
          const p = { ...drawn, namespace: global ? '' : drawn.namespace };
          const core = (parseTemplate(template) as PrefixTemplate).core;
          const policy = read(template, p, core.length + cutAt);
          expect(policy).not.toBeNull();
          if (policy === null) return;
          if (policy.name !== null) {
            expect(p.name.startsWith(policy.name)).toBe(true);
            if (!policy.cut) expect(policy.name).toBe(p.name);
          }
          if (policy.namespace !== null) expect(policy.namespace).toBe(p.namespace);
          if (policy.tier !== null) expect(policy.tier).toBe(p.tier);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('the parser with a template IPTABLES_LOG_PREFIX', () => {
  const parse = createParser({ prefix: 'calico-packet %k %p' });
  const journal = (text: string): ParseResult => parse({ text, time: Date.UTC(2026, 3, 6), host: 'node-1' });
  const dropOf = (result: ParseResult) => {
    if (result.kind !== 'drop') throw new Error(`expected a drop, got ${JSON.stringify(result)}`);
    return result.drop;
  };

  it('puts the policy on the drop, from whole and cut prefixes, and the fields after it as before', () => {
    const whole = dropOf(journal(`calico-packet np netperf-demo/netperf: ${TCP4}`));
    expect(whole).toMatchObject({
      prefix: 'calico-packet',
      src: '10.4.0.4',
      dst: '10.4.1.6',
      dstPort: 12865,
    });
    expect(whole.policy).toEqual({
      tier: null,
      kind: 'NetworkPolicy',
      namespace: 'netperf-demo',
      name: 'netperf',
      cut: false,
    });
    const cut = dropOf(journal(`calico-packet gnp default.net${TCP4}`));
    expect(cut.policy).toMatchObject({ kind: 'GlobalNetworkPolicy', name: 'default.net', cut: true });
    expect(cut.in).toBe('cali6e7bb88b982');
    const file = fileLineParser({
      prefix: 'calico-packet %k %p',
      timeLayout: null,
      now: () => Date.UTC(2026, 3, 6),
    })(`2026-04-05T20:41:42Z node-1 kernel: calico-packet knp web/deny: ${TCP4}`);
    expect(dropOf(file).policy).toMatchObject({
      kind: 'KubernetesNetworkPolicy',
      namespace: 'web',
      name: 'deny',
    });
  });

  it('still reads lines of the plain prefix, without a policy', () => {
    const drop = dropOf(journal(`calico-packet: ${TCP4}`));
    expect(drop.policy).toBeUndefined();
    expect(drop.dstPort).toBe(12865);
  });

  it('reports a prefixed line that does not fit the template, and skips other lines', () => {
    expect(journal(`calico-packet np web/deny extra: ${TCP4}`)).toEqual({
      kind: 'invalid',
      reason: 'bad_prefix',
      detail: '" np web/deny extra: " does not fit the prefix template',
    });
    expect(journal(`calico-packets np web/deny: ${TCP4}`)).toBe(NOT_PREFIXED);
    expect(journal('eth0: link becomes ready')).toBe(NOT_PREFIXED);
  });
});
