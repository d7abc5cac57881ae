import { describe, expect, it } from 'vitest';
import {
  COMBINE_THRESHOLD,
  COMBINED_COUNT_MAX,
  Combiner,
  isCombinerState,
  MIN_WINDOW_MS,
} from '../../agent/events/combine.ts';
import { combinedMessage, combinedSubject, dropMessage } from '../../agent/events/message.ts';
import type { EventIntent, PacketDrop } from '../../agent/types.ts';
import { drop, icmpDrop, MINUTE, pod, T0 } from '../pipeline/fixtures.ts';

const victim = pod({ name: 'web-0', uid: 'uid-web-0', ips: ['10.4.0.16'] });

/** Drop n of a scan: source 198.18.x.y (distinct per n) to the victim. */
function scan(n: number, overrides: Partial<PacketDrop> = {}): PacketDrop {
  return drop({
    src: `198.18.${n >> 8}.${n & 255}`,
    dst: '10.4.0.16',
    dstPort: 443,
    time: T0 + n,
    ...overrides,
  });
}

function receive(combiner: Combiner, d: PacketDrop, overloaded = false): EventIntent {
  return combiner.intent(d, victim, 'receive', d.src, 'node-a', overloaded);
}

describe('combined Event wording', () => {
  it('counts peers with separators, names a few, and says "more than" once capped', () => {
    const base = { ports: null, transport: 'on port 443/TCP', examples: ['198.18.0.1', '198.18.0.2'] };
    expect(combinedMessage({ ...base, direction: 'receive', peers: 5000, peersCapped: false })).toBe(
      'Packet dropped when receiving traffic from 5,000 sources on port 443/TCP (e.g. 198.18.0.1, 198.18.0.2, …)',
    );
    expect(combinedMessage({ ...base, direction: 'send', peers: 1, peersCapped: false })).toBe(
      'Packet dropped when sending traffic to 1 destination on port 443/TCP (e.g. 198.18.0.1, 198.18.0.2, …)',
    );
    expect(combinedMessage({ ...base, direction: 'receive', peers: 10_000, peersCapped: true })).toContain(
      'from more than 10,000 sources on port',
    );
    expect(
      combinedMessage({
        direction: 'receive',
        peers: 3,
        peersCapped: false,
        ports: 57,
        transport: null,
        examples: ['10.0.0.9 on port 22/TCP'],
      }),
    ).toBe(
      'Packet dropped when receiving traffic from 3 sources on 57 ports (e.g. 10.0.0.9 on port 22/TCP, …)',
    );
  });

  it('gives a combined Event a subject that stays while its message counts on', () => {
    expect(combinedSubject('receive', 'on port 443/TCP')).toBe(
      'Packet dropped when receiving traffic from many sources on port 443/TCP',
    );
    expect(combinedSubject('send', null)).toBe(
      'Packet dropped when sending traffic to many destinations on many ports',
    );
  });
});

describe('Combiner', () => {
  it(`gives the first ${COMBINE_THRESHOLD} peers on a port Events of their own and combines the rest into one`, () => {
    const combiner = new Combiner(2 * MINUTE);
    const intents = Array.from({ length: 5000 }, (_, n) => receive(combiner, scan(n)));
    const own = intents.slice(0, COMBINE_THRESHOLD);
    expect(own.map((i) => i.combined)).toEqual(own.map(() => false));
    expect(own[0]?.message).toBe(dropMessage('receive', scan(0), scan(0).src));
    const rest = intents.slice(COMBINE_THRESHOLD);
    expect(new Set(rest.map((i) => i.subject))).toEqual(
      new Set([combinedSubject('receive', 'on port 443/TCP')]),
    );
    expect(rest.every((i) => i.combined)).toBe(true);
    expect(rest[0]?.message).toBe(
      'Packet dropped when receiving traffic from 1 source on port 443/TCP (e.g. 198.18.0.10, …)',
    );
    expect(rest.at(-1)?.message).toBe(
      'Packet dropped when receiving traffic from 4,990 sources on port 443/TCP (e.g. 198.18.0.10, 198.18.0.11, 198.18.0.12, …)',
    );
  });

  it('keeps a peer that has its own Event on it, also after the scan started', () => {
    const combiner = new Combiner(2 * MINUTE);
    for (let n = 0; n <= COMBINE_THRESHOLD; n++) receive(combiner, scan(n));
    const again = receive(combiner, scan(3, { srcPort: 1, time: T0 + 100 }));
    expect(again.combined).toBe(false);
  });

  it('keeps ports, protocols and directions apart', () => {
    const combiner = new Combiner(2 * MINUTE);
    for (let n = 0; n < COMBINE_THRESHOLD; n++) receive(combiner, scan(n));
    expect(receive(combiner, scan(100, { dstPort: 80 })).combined).toBe(false);
    const ping = icmpDrop({ src: '198.18.9.9', dst: '10.4.0.16' });
    expect(receive(combiner, ping).combined).toBe(false);
    const out = scan(200);
    expect(combiner.intent(out, victim, 'send', out.dst, 'node-a', false).combined).toBe(false);
  });

  it('counts again from the start once the window passes without a drop', () => {
    const combiner = new Combiner(0);
    for (let n = 0; n < 20; n++) receive(combiner, scan(n));
    const later = T0 + MIN_WINDOW_MS + 100;
    const first = receive(combiner, scan(500, { time: later }));
    expect(first.combined).toBe(false);
  });

  it(`combines a port scan past ${COMBINE_THRESHOLD} ports into one Event for the pod side`, () => {
    const combiner = new Combiner(2 * MINUTE);
    const intents = Array.from({ length: 200 }, (_, port) =>
      receive(combiner, drop({ src: '198.18.0.7', dst: '10.4.0.16', dstPort: 1000 + port, time: T0 + port })),
    );
    expect(intents.filter((i) => !i.combined)).toHaveLength(COMBINE_THRESHOLD);
    expect(new Set(intents.filter((i) => i.combined).map((i) => i.subject))).toEqual(
      new Set([combinedSubject('receive', null)]),
    );
    expect(intents.at(-1)?.message).toBe(
      'Packet dropped when receiving traffic from 1 source on 190 ports (e.g. 198.18.0.7 on port 1010/TCP, 198.18.0.7 on port 1011/TCP, 198.18.0.7 on port 1012/TCP, …)',
    );
  });

  it('while overloaded, combines the second peer of a port at once', () => {
    const combiner = new Combiner(2 * MINUTE);
    expect(receive(combiner, scan(0), true).combined).toBe(false);
    expect(receive(combiner, scan(1), true).combined).toBe(true);
  });

  it(`stops counting peers exactly at ${COMBINED_COUNT_MAX.toLocaleString('en-US')}`, () => {
    const combiner = new Combiner(2 * MINUTE);
    let last: EventIntent | undefined;
    for (let n = 0; n < COMBINED_COUNT_MAX + 500; n++) {
      last = receive(combiner, scan(n, { src: `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}` }));
    }
    expect(last?.message).toContain(`from more than ${COMBINED_COUNT_MAX.toLocaleString('en-US')} sources`);
  });

  it('combines re-read drops as before once restored from its saved state, which is checked on load', () => {
    const before = new Combiner(2 * MINUTE);
    const first = Array.from({ length: 20 }, (_, n) => receive(before, scan(n)));
    const saved: unknown = JSON.parse(JSON.stringify(before.state()));
    expect(isCombinerState(saved)).toBe(true);
    const after = new Combiner(2 * MINUTE, saved as ReturnType<Combiner['state']>);
    const again = [3, 15].map((n) => receive(after, scan(n, { time: T0 + 100 + n })));
    expect(again.map((i) => [i.combined, i.subject])).toEqual([
      [false, first[3]?.subject],
      [true, first[15]?.subject],
    ]);
    expect(again[1]?.message).toContain('from 10 sources');
    expect(receive(new Combiner(2 * MINUTE), scan(15)).combined).toBe(false);

    for (const garbage of [
      null,
      {},
      { sides: [], groups: [], combined: [['k', { peers: ['x'] }]] },
      'text',
    ]) {
      expect(isCombinerState(garbage)).toBe(false);
    }
  });
});
