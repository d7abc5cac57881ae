import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  COMBINE_THRESHOLD,
  COMBINED_COUNT_MAX,
  Combiner,
  isCombinerState,
  MIN_WINDOW_MS,
} from '../../agent/events/combine.ts';
import { combinedSubject, dropMessage } from '../../agent/events/message.ts';
import { SideEvents } from '../../agent/events/sides.ts';
import type { DropSide, EventIntent, PacketDrop } from '../../agent/types.ts';
import { drop, icmpDrop, MINUTE, pod, RecordingSink, T0 } from '../pipeline/fixtures.ts';

const victim = pod({ name: 'web-0', uid: 'uid-web-0', ips: ['10.4.0.16'] });
const RECEIVE = 'Packet dropped when receiving traffic from';

/** Source n of a scan, 198.18.x.y, distinct for n below 65,536. */
const source = (n: number) => `198.18.${n >> 8}.${n & 255}`;

/** Drop n of a scan: from source n to the victim's port 443, n ms after T0. */
function scan(n: number, overrides: Partial<PacketDrop> = {}): PacketDrop {
  return drop({ src: source(n), dst: '10.4.0.16', dstPort: 443, time: T0 + n, ...overrides });
}

function receive(combiner: Combiner, d: PacketDrop, overloaded = false): EventIntent {
  return combiner.intent(
    { drop: d, pod: victim, direction: 'receive', peerName: d.src, host: 'node-a' },
    overloaded,
  );
}

function send(combiner: Combiner, d: PacketDrop, overloaded = false): EventIntent {
  return combiner.intent(
    { drop: d, pod: victim, direction: 'send', peerName: d.dst, host: 'node-a' },
    overloaded,
  );
}

/** The peer count a combined message states: "from 5,000 sources" is 5000. */
function peers(intent: EventIntent | undefined): number {
  const count = /(?:from|to) (?:more than )?([\d,]+) (?:source|destination)/.exec(intent?.message ?? '')?.[1];
  return Number(count?.replaceAll(',', ''));
}

describe('Combiner', () => {
  it(`gives the first ${COMBINE_THRESHOLD} peers on a port Events of their own and counts every peer in one combined Event after them`, () => {
    const combiner = new Combiner(2 * MINUTE);
    const intents = Array.from({ length: 5000 }, (_, n) => receive(combiner, scan(n)));
    const own = intents.slice(0, COMBINE_THRESHOLD);
    expect(own.map((i) => [i.combined, i.message, i.subject])).toEqual(
      own.map((_, n) => [
        false,
        dropMessage('receive', scan(n), source(n)),
        dropMessage('receive', scan(n), source(n)),
      ]),
    );
    const rest = intents.slice(COMBINE_THRESHOLD);
    expect(rest.every((i) => i.combined)).toBe(true);
    expect(new Set(rest.map((i) => i.subject))).toEqual(
      new Set([combinedSubject('receive', 'on port 443/TCP')]),
    );
    expect(rest[0]?.message).toBe(`${RECEIVE} 11 sources on port 443/TCP (e.g. 198.18.0.10, …)`);
    expect(rest.map(peers)).toEqual(rest.map((_, n) => COMBINE_THRESHOLD + 1 + n));
    expect(rest.at(-1)?.message).toBe(
      `${RECEIVE} 5,000 sources on port 443/TCP (e.g. 198.18.0.10, 198.18.0.11, 198.18.0.12, …)`,
    );
  });

  it('keeps a peer that has its own Event on it after the scan started, without counting it twice', () => {
    const combiner = new Combiner(2 * MINUTE);
    const first = Array.from({ length: 20 }, (_, n) => receive(combiner, scan(n)));
    const again = receive(combiner, scan(3, { srcPort: 1, time: T0 + 100 }));
    expect([again.combined, again.subject]).toEqual([false, first[3]?.subject]);
    expect(peers(receive(combiner, scan(20)))).toBe(21);
  });

  it('combines a scan of destinations and one over ICMP the same way', () => {
    const combiner = new Combiner(2 * MINUTE);
    const out = Array.from({ length: 12 }, (_, n) =>
      send(combiner, drop({ src: '10.4.0.16', dst: source(n) })),
    );
    expect(out.at(-1)?.message).toBe(
      'Packet dropped when sending traffic to 12 destinations on port 12865/TCP (e.g. 198.18.0.10, 198.18.0.11, …)',
    );
    const pings = Array.from({ length: 11 }, (_, n) =>
      receive(combiner, icmpDrop({ src: source(n), dst: '10.4.0.16' })),
    );
    expect([pings.at(-1)?.subject, pings.at(-1)?.message]).toEqual([
      `${RECEIVE} many sources over ICMP (type 8, code 0)`,
      `${RECEIVE} 11 sources over ICMP (type 8, code 0) (e.g. 198.18.0.10, …)`,
    ]);
  });

  it('keeps ports, protocols and directions apart, also while one of them is combining', () => {
    const combiner = new Combiner(2 * MINUTE);
    for (let n = 0; n < 2 * COMBINE_THRESHOLD; n++) receive(combiner, scan(n));
    expect(receive(combiner, scan(100, { dstPort: 80 })).combined).toBe(false);
    expect(receive(combiner, scan(101, { proto: 'UDP' })).combined).toBe(false);
    expect(receive(combiner, icmpDrop({ src: source(102), dst: '10.4.0.16' })).combined).toBe(false);
    expect(send(combiner, drop({ src: '10.4.0.16', dst: source(103), dstPort: 443 })).combined).toBe(false);
    expect(peers(receive(combiner, scan(104)))).toBe(2 * COMBINE_THRESHOLD + 1);
  });

  it(`combines for the repeat interval, at least ${MIN_WINDOW_MS / 1000} s, after the last drop, then counts from the start`, () => {
    for (const [interval, window] of [
      [0, MIN_WINDOW_MS],
      [5 * MINUTE, 5 * MINUTE],
    ] as const) {
      const combiner = new Combiner(interval);
      for (let n = 0; n < 20; n++) receive(combiner, scan(n));
      const last = T0 + 19;
      expect(peers(receive(combiner, scan(20, { time: last + window - 1 })))).toBe(21);
      const restart = last + window - 1 + window;
      const again = Array.from({ length: 11 }, (_, n) =>
        receive(combiner, scan(500 + n, { time: restart + n })),
      );
      expect(again.map((i) => i.combined)).toEqual([...Array(10).fill(false), true]);
      expect(peers(again.at(-1))).toBe(11);
    }
  });

  it(`combines a port scan past ${COMBINE_THRESHOLD} ports into one Event for the pod side, counting every port and source`, () => {
    const single = new Combiner(2 * MINUTE);
    const fromOne = Array.from({ length: 200 }, (_, n) =>
      receive(single, drop({ src: '198.18.0.7', dst: '10.4.0.16', dstPort: 1000 + n, time: T0 + n })),
    );
    expect(fromOne.filter((i) => !i.combined)).toHaveLength(COMBINE_THRESHOLD);
    expect(new Set(fromOne.filter((i) => i.combined).map((i) => i.subject))).toEqual(
      new Set([combinedSubject('receive', null)]),
    );
    expect(fromOne.at(-1)?.message).toBe(
      `${RECEIVE} 1 source on 200 ports (e.g. 198.18.0.7 on port 1010/TCP, 198.18.0.7 on port 1011/TCP, 198.18.0.7 on port 1012/TCP, …)`,
    );

    const three = new Combiner(2 * MINUTE);
    const sources = ['10.0.0.7', '10.0.0.9', '10.0.0.8'];
    let last: EventIntent | undefined;
    for (let port = 12; port <= 68; port++) {
      last = receive(
        three,
        drop({ src: sources[port % 3], dst: '10.4.0.16', dstPort: port, time: T0 + port }),
      );
    }
    expect(last?.message).toBe(
      `${RECEIVE} 3 sources on 57 ports (e.g. 10.0.0.9 on port 22/TCP, 10.0.0.8 on port 23/TCP, 10.0.0.7 on port 24/TCP, …)`,
    );

    // The sources of the ports that had Events of their own count too.
    const two = new Combiner(2 * MINUTE);
    for (let port = 0; port < 20; port++) {
      last = receive(
        two,
        drop({ src: port < 10 ? '10.0.0.1' : '10.0.0.2', dst: '10.4.0.16', dstPort: port }),
      );
    }
    expect(last?.message).toMatch(new RegExp(`^${RECEIVE} 2 sources on 20 ports `));
  });

  it('while overloaded, combines the second peer of a port, and the second port of a pod side, at once', () => {
    const calm = new Combiner(2 * MINUTE);
    expect([scan(0), scan(1)].map((d) => receive(calm, d).combined)).toEqual([false, false]);

    const busy = new Combiner(2 * MINUTE);
    expect(receive(busy, scan(0), true).combined).toBe(false);
    expect(receive(busy, scan(1), true).message).toBe(
      `${RECEIVE} 2 sources on port 443/TCP (e.g. 198.18.0.1, …)`,
    );
    expect(receive(busy, scan(2, { dstPort: 80 }), true).message).toBe(
      `${RECEIVE} 3 sources on 2 ports (e.g. 198.18.0.2 on port 80/TCP, …)`,
    );
  });

  it(`stays bounded under 100,000 random peers: counts stop at ${COMBINED_COUNT_MAX.toLocaleString('en-US')}, old groups are forgotten`, () => {
    const onePort = new Combiner(2 * MINUTE);
    const ips = fc.sample(fc.ipV4(), { numRuns: 100_000, seed: 1 });
    const counts = ips.map((src, n) => peers(receive(onePort, scan(0, { src, time: T0 + n }))));
    const stated = counts.filter((count) => !Number.isNaN(count));
    expect(Math.max(...stated)).toBe(COMBINED_COUNT_MAX);
    expect(stated.every((count, i) => i === 0 || count >= (stated[i - 1] ?? 0))).toBe(true);
    const last = receive(onePort, scan(0, { src: '203.0.113.1', time: T0 + 100_000 }));
    expect(last.message).toContain(
      `from more than ${COMBINED_COUNT_MAX.toLocaleString('en-US')} sources on port 443/TCP`,
    );

    // 2,000 pod sides with 10 ports each are 20,000 (pod side, port) groups: past what is remembered, so the
    // group filled first is forgotten and its 11th peer gets an Event of its own.
    const many = new Combiner(2 * MINUTE);
    for (let n = 0; n < COMBINE_THRESHOLD; n++) receive(many, scan(n));
    const flood = fc.sample(fc.tuple(fc.ipV4(), fc.nat(1999), fc.nat(9)), { numRuns: 100_000, seed: 2 });
    flood.forEach(([src, uid, port], n) => {
      const target = { ...victim, uid: `uid-${uid}` };
      const d = drop({ src, dstPort: port, time: T0 + n });
      many.intent({ drop: d, pod: target, direction: 'receive', peerName: src, host: 'node-a' }, false);
    });
    expect(receive(many, scan(COMBINE_THRESHOLD, { time: T0 + 100_000 })).combined).toBe(false);
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
    expect(peers(again[1])).toBe(20);
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

describe('SideEvents', () => {
  const side = (d: PacketDrop): DropSide => ({
    drop: d,
    pod: victim,
    direction: 'receive',
    peerName: d.src,
    host: 'node-a',
  });

  it('hands each side to the sink as an intent, combining sooner while the sink is overloaded', () => {
    const sink = new RecordingSink();
    const sides = new SideEvents(sink, 2 * MINUTE);
    sides.submit(side(scan(0)));
    sides.submit(side(scan(1)));
    sink.busy = true;
    sides.submit(side(scan(2)));
    expect(sink.intents.map((i) => [i.pod.uid, i.direction, i.host, i.time, i.combined])).toEqual([
      [victim.uid, 'receive', 'node-a', T0, false],
      [victim.uid, 'receive', 'node-a', T0 + 1, false],
      [victim.uid, 'receive', 'node-a', T0 + 2, true],
    ]);
    expect(sink.intents[0]?.message).toBe(dropMessage('receive', scan(0), source(0)));
  });

  it('saves what it combined, and a successor restored from it sends re-read sides to the same Events', () => {
    const before = new RecordingSink();
    const first = new SideEvents(before, 2 * MINUTE);
    for (let n = 0; n < 20; n++) first.submit(side(scan(n)));
    const saved: unknown = JSON.parse(JSON.stringify(first.combining()));
    if (!isCombinerState(saved)) throw new Error('saved state not recognised');
    const after = new RecordingSink();
    const second = new SideEvents(after, 2 * MINUTE, saved);
    second.submit(side(scan(15, { time: T0 + 115 })));
    expect(after.intents.map((i) => [i.combined, i.subject])).toEqual([[true, before.intents[15]?.subject]]);
  });
});
