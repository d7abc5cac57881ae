import { describe, expect, it } from 'vitest';
import type { Config } from '../../agent/config.ts';
import { EventBook } from '../../agent/events/event-book.ts';
import { SideEvents } from '../../agent/events/sides.ts';
import { MAX_FUTURE_SKEW_MS } from '../../agent/filters/expiry.ts';
import { HeldDrops, type IndexFreshness } from '../../agent/locator/held-drops.ts';
import { LATE_POD_WINDOW_MS, LatePods } from '../../agent/locator/late-pods.ts';
import { PodDirectory } from '../../agent/locator/pod-directory.ts';
import { Metrics } from '../../agent/metrics.ts';
import { Pipeline } from '../../agent/pipeline.ts';
import type { EventSink, PacketDrop } from '../../agent/types.ts';
import {
  calicoNode,
  client,
  config,
  drop,
  indexed,
  MINUTE,
  NODE_A,
  NODE_B,
  notRunning,
  RecordingSink,
  running,
  server,
  T0,
  value,
} from './fixtures.ts';

/** The events room's entrance, as the agent wires it: sides combined into intents for the sink. */
function sides(sink: EventSink, settings: Config): SideEvents {
  return new SideEvents(sink, settings.repeatIntervalMs);
}

function setup(env: Record<string, string> = {}, freshness?: IndexFreshness) {
  const locator = new PodDirectory();
  locator.pods.upsert(running(client, ['10.128.0.2']));
  locator.pods.upsert(running(server, ['10.128.0.3']));
  locator.pods.upsert(running(calicoNode));
  const sink = new RecordingSink();
  const metrics = new Metrics();
  const settings = config(env);
  const pipeline = new Pipeline({
    config: settings,
    locator,
    sink: sides(sink, settings),
    metrics,
    ...(freshness ? { freshness } : {}),
  });
  const summary = () => sink.intents.map((i) => `${i.pod.name} ${i.direction}: ${i.message}`);
  return { locator, sink, metrics, pipeline, summary };
}

describe('Pipeline', () => {
  it('posts a send event on the source pod and a receive event on the destination pod', async () => {
    const { pipeline, sink, metrics, summary } = setup();
    expect(pipeline.handle(drop(), T0)).toBe('posted');
    expect(summary()).toEqual([
      'netperf-client-42010a80017f send: Packet dropped when sending traffic to default (10.4.0.16) on port 12865/TCP',
      'netperf-server-42010a80017f receive: Packet dropped when receiving traffic from default (10.4.1.6) on port 12865/TCP',
    ]);
    expect(sink.intents.every((i) => i.time === T0 && i.host === NODE_A)).toBe(true);
    expect(await value(metrics.packetDrops, { src: 'default', dst: 'default' })).toBe(1);
  });

  it('names peers by POD_IDENTIFIER', () => {
    const { pipeline, summary } = setup({ POD_IDENTIFIER: 'name_with_namespace' });
    pipeline.handle(drop(), T0);
    expect(summary()).toEqual([
      'netperf-client-42010a80017f send: Packet dropped when sending traffic to default/netperf-server-42010a80017f (10.4.0.16) on port 12865/TCP',
      'netperf-server-42010a80017f receive: Packet dropped when receiving traffic from default/netperf-client-42010a80017f (10.4.1.6) on port 12865/TCP',
    ]);
  });

  it('gives a hostNetwork peer no event and names it by its node', async () => {
    const { pipeline, metrics, summary } = setup({ POD_IDENTIFIER: 'name' });
    pipeline.handle(drop({ src: '10.128.0.2', dst: '10.4.0.16' }), T0);
    pipeline.handle(drop({ src: '10.4.1.6', dst: '10.128.0.3', dstPort: 10250 }), T0);
    expect(summary()).toEqual([
      `netperf-server-42010a80017f receive: Packet dropped when receiving traffic from ${NODE_A} (10.128.0.2) on port 12865/TCP`,
      `netperf-client-42010a80017f send: Packet dropped when sending traffic to ${NODE_B} (10.128.0.3) on port 10250/TCP`,
    ]);
    expect(await value(metrics.packetDrops, { src: NODE_A, dst: 'netperf-server-42010a80017f' })).toBe(1);
  });

  it('names an unknown peer by IP, or by a cached reverse DNS name', () => {
    const { locator, sink, summary } = setup();
    new Pipeline({ config: config(), locator, sink: sides(sink, config()), metrics: new Metrics() }).handle(
      drop({ src: '203.0.113.5' }),
      T0,
    );
    const dns = { lookup: (ip: string) => (ip === '203.0.113.6' ? 'scanner.example' : undefined) };
    const withDns = new Pipeline({
      config: config(),
      locator,
      sink: sides(sink, config()),
      metrics: new Metrics(),
      dns,
    });
    withDns.handle(drop({ src: '203.0.113.6' }), T0);
    expect(summary()).toEqual([
      'netperf-server-42010a80017f receive: Packet dropped when receiving traffic from 203.0.113.5 on port 12865/TCP',
      'netperf-server-42010a80017f receive: Packet dropped when receiving traffic from scanner.example (203.0.113.6) on port 12865/TCP',
    ]);
  });

  it('counts drops with no Running pod on either side as unmatched and does not remember them', async () => {
    const { pipeline, locator, metrics, sink } = setup();
    const unknown = drop({ src: '10.4.2.1', dst: '10.4.2.2' });
    expect(pipeline.handle(unknown, T0)).toBe('unmatched');
    expect(pipeline.handle(drop({ src: '203.0.113.50', dst: '10.128.0.2' }), T0)).toBe('unmatched');
    expect(await value(metrics.dropsUnmatched)).toBe(2);
    locator.pods.upsert(running({ ...client, uid: 'uid-late', name: 'late', ips: ['10.4.2.2'] }));
    expect(pipeline.handle({ ...unknown, time: T0 + 1000 }, T0 + 1000)).toBe('posted');
    expect(sink.intents.map((i) => i.pod.name)).toEqual(['late']);
  });

  it('suppresses repeats by log time and counts them', async () => {
    const { pipeline, metrics } = setup();
    const at = (offset: number) => pipeline.handle(drop({ time: T0 + offset }), T0 + offset);
    expect(at(0)).toBe('posted');
    expect(at(2 * MINUTE - 1)).toBe('suppressed');
    expect(at(2 * MINUTE)).toBe('posted');
    expect(at(4 * MINUTE + 1)).toBe('posted');
    expect(await value(metrics.dropsSuppressed)).toBe(1);
    expect(await value(metrics.packetDrops, { src: 'default', dst: 'default' })).toBe(3);
  });

  it('honours REPEATED_EVENTS_INTERVAL_MINUTES', () => {
    const { pipeline } = setup({ REPEATED_EVENTS_INTERVAL_MINUTES: '5' });
    pipeline.handle(drop(), T0);
    expect(pipeline.handle(drop({ time: T0 + 4 * MINUTE }), T0 + 4 * MINUTE)).toBe('suppressed');
    expect(pipeline.handle(drop({ time: T0 + 5 * MINUTE }), T0 + 5 * MINUTE)).toBe('posted');
  });

  it('ignores drops older than PACKET_DROP_EXPIRATION_MINUTES relative to now', async () => {
    const { pipeline, metrics, sink } = setup({ PACKET_DROP_EXPIRATION_MINUTES: '3' });
    expect(pipeline.handle(drop(), T0 + 3 * MINUTE + 1)).toBe('expired');
    expect(pipeline.handle(drop(), T0 + 3 * MINUTE)).toBe('posted');
    expect(await value(metrics.dropsExpired)).toBe(1);
    expect(sink.intents).toHaveLength(2);
  });

  it('sets source.host to NODE_NAME when configured, else to the logged host', () => {
    const named = setup({ NODE_NAME: 'node-from-downward-api' });
    named.pipeline.handle(drop({ host: 'short-hostname' }), T0);
    expect(named.sink.intents.map((i) => i.host)).toEqual([
      'node-from-downward-api',
      'node-from-downward-api',
    ]);
    const unnamed = setup();
    unnamed.pipeline.handle(drop({ host: 'short-hostname' }), T0);
    expect(unnamed.sink.intents.map((i) => i.host)).toEqual(['short-hostname', 'short-hostname']);
  });

  it('feeds an EventBook that aggregates repeats past the interval into one Event per pod and message', () => {
    const locator = new PodDirectory();
    locator.pods.upsert(running(client));
    locator.pods.upsert(running(server));
    const book = new EventBook(config());
    const pipeline = new Pipeline({
      config: config(),
      locator,
      sink: sides(book, config()),
      metrics: new Metrics(),
    });
    for (const offset of [0, MINUTE, 2 * MINUTE, 3 * MINUTE, 4 * MINUTE]) {
      pipeline.handle(drop({ time: T0 + offset }), T0 + offset);
    }
    pipeline.handle(drop({ time: T0 + 4 * MINUTE, dstPort: 41725 }), T0 + 4 * MINUTE);
    expect(
      book
        .list()
        .map((e) => `${e.involvedObject.name} ${e.count} ${e.message}`)
        .sort(),
    ).toEqual([
      'netperf-client-42010a80017f 1 Packet dropped when sending traffic to default (10.4.0.16) on port 41725/TCP',
      'netperf-client-42010a80017f 3 Packet dropped when sending traffic to default (10.4.0.16) on port 12865/TCP',
      'netperf-server-42010a80017f 1 Packet dropped when receiving traffic from default (10.4.1.6) on port 41725/TCP',
      'netperf-server-42010a80017f 3 Packet dropped when receiving traffic from default (10.4.1.6) on port 12865/TCP',
    ]);
  });
});

/**
 * The live pod watch answers `current()` (ListWatch, proven against a real API server in
 * test/locator/list-watch.test.ts and end to end in test/e2e/faults.test.ts); here a flag stands in for it.
 */
describe('Pipeline under a flood', () => {
  it('turns a scan of 5,000 sources at one pod into 10 Events of their own and one combined Event', async () => {
    const { pipeline, sink, metrics } = setup();
    const source = (n: number) => `198.18.${n >> 8}.${n & 255}`;
    for (let n = 0; n < 5000; n++) pipeline.handle(drop({ src: source(n), time: T0 + n }), T0 + n);
    // The sources are outside the cluster: only the victim's receive sides.
    expect(sink.intents.every((i) => i.pod.uid === server.uid && i.direction === 'receive')).toBe(true);
    const subjects = [...new Set(sink.intents.map((i) => i.subject))];
    expect(subjects).toEqual([
      ...Array.from(
        { length: 10 },
        (_, n) => `Packet dropped when receiving traffic from ${source(n)} on port 12865/TCP`,
      ),
      'Packet dropped when receiving traffic from many sources on port 12865/TCP',
    ]);
    expect(sink.intents.filter((i) => i.combined)).toHaveLength(4990);
    expect(sink.intents.at(-1)?.message).toBe(
      'Packet dropped when receiving traffic from 5,000 sources on port 12865/TCP (e.g. 198.18.0.10, 198.18.0.11, 198.18.0.12, …)',
    );
    expect(await value(metrics.dropsPosted)).toBe(5000);
  });

  it('combines the second peer of a port at once while the sink is overloaded', () => {
    const { pipeline, sink } = setup();
    sink.busy = true;
    pipeline.handle(drop({ src: '198.18.0.1' }), T0);
    pipeline.handle(drop({ src: '198.18.0.2' }), T0);
    expect(sink.intents.map((i) => i.combined)).toEqual([false, true]);
  });

  it('counts every drop read exactly once: expired, suppressed, unmatched or posted', async () => {
    const { pipeline, metrics } = setup();
    const drops = [
      drop(),
      drop({ srcPort: 1 }),
      drop({ time: T0 - 20 * MINUTE }),
      drop({ src: '203.0.113.1', dst: '203.0.113.2' }),
      drop({ src: '198.18.0.1' }),
    ];
    for (const d of drops) pipeline.handle(d, T0);
    const outcomes = await Promise.all(
      [metrics.dropsExpired, metrics.dropsSuppressed, metrics.dropsUnmatched, metrics.dropsPosted].map((c) =>
        value(c),
      ),
    );
    expect(outcomes).toEqual([1, 1, 1, 2]);
  });

  it('takes a drop dated beyond the skew as happening now, so it never marks its flow in the future', async () => {
    const { pipeline, sink, metrics } = setup();
    const future = Date.parse('2035-01-01T00:00:00Z');
    expect(pipeline.handle(drop({ time: future }), T0)).toBe('posted');
    expect(sink.intents.map((i) => i.time)).toEqual([T0, T0]);
    expect(await value(metrics.dropsFutureDated)).toBe(1);
    // Its flow is remembered at T0, not in 2035: repeats within the interval are suppressed, later ones post.
    expect(pipeline.handle(drop({ time: T0 + MINUTE }), T0 + MINUTE)).toBe('suppressed');
    expect(pipeline.handle(drop({ time: T0 + 2 * MINUTE }), T0 + 2 * MINUTE)).toBe('posted');
    // Up to the skew ahead of the node clock is believed.
    const now = T0 + 5 * MINUTE;
    expect(pipeline.handle(drop({ time: now + MAX_FUTURE_SKEW_MS }), now)).toBe('posted');
    expect(sink.intents.at(-1)?.time).toBe(now + MAX_FUTURE_SKEW_MS);
    expect(await value(metrics.dropsFutureDated)).toBe(1);
    expect(pipeline.handle(drop({ dstPort: 1, time: now + MAX_FUTURE_SKEW_MS + 1 }), now)).toBe('posted');
    expect(sink.intents.at(-1)?.time).toBe(now);
    expect(await value(metrics.dropsFutureDated)).toBe(2);
  });
});

describe('Pipeline while the pod index is behind', () => {
  const late = { ...server, uid: 'uid-late', name: 'late-server', ips: ['10.4.2.2'] };
  const toLate = (overrides = {}) => drop({ dst: '10.4.2.2', ...overrides });

  function behind(env: Record<string, string> = {}) {
    const index = { isCurrent: false, current: () => index.isCurrent };
    return { index, ...setup(env, index) };
  }

  it('holds a drop with an unknown address, then locates it once the index is current', async () => {
    const { index, locator, pipeline, metrics, summary } = behind();
    expect(pipeline.handle(toLate(), T0)).toBe('held');
    locator.pods.upsert(running(late));
    pipeline.release(T0 + 500);
    expect(summary()).toEqual([]);
    index.isCurrent = true;
    pipeline.release(T0 + 1000);
    expect(summary()).toEqual([
      'netperf-client-42010a80017f send: Packet dropped when sending traffic to default (10.4.2.2) on port 12865/TCP',
      'late-server receive: Packet dropped when receiving traffic from default (10.4.1.6) on port 12865/TCP',
    ]);
    expect(await value(metrics.dropsHeld)).toBe(1);
    expect(await value(metrics.dropsUnmatched)).toBe(0);
  });

  it('does not hold a drop between known addresses', async () => {
    const { pipeline, metrics } = behind();
    expect(pipeline.handle(drop(), T0)).toBe('posted');
    expect(pipeline.handle(drop({ dst: '10.128.0.3' }), T0)).toBe('posted');
    expect(await value(metrics.dropsHeld)).toBe(0);
  });

  it('releases held drops before a newer one, so the newer is the repeat', async () => {
    const { index, locator, pipeline, sink, metrics } = behind();
    pipeline.handle(toLate(), T0);
    locator.pods.upsert(running(late));
    index.isCurrent = true;
    expect(pipeline.handle(toLate({ time: T0 + 1000 }), T0 + 1000)).toBe('suppressed');
    expect(sink.intents.map((i) => i.time)).toEqual([T0, T0]);
    expect(await value(metrics.dropsSuppressed)).toBe(1);
  });

  it('counts a held drop that expired meanwhile as expired, and one still unknown as unmatched', async () => {
    const { index, pipeline, metrics } = behind({ PACKET_DROP_EXPIRATION_MINUTES: '1' });
    pipeline.handle(toLate({ src: '10.4.2.1' }), T0);
    pipeline.handle(toLate({ src: '10.4.2.1', time: T0 + MINUTE }), T0 + MINUTE);
    index.isCurrent = true;
    pipeline.release(T0 + MINUTE + 1);
    expect(await value(metrics.dropsExpired)).toBe(1);
    expect(await value(metrics.dropsUnmatched)).toBe(1);
  });

  it('counts every drop read exactly once, held ones once they end', async () => {
    const { index, locator, pipeline, metrics } = behind({ PACKET_DROP_EXPIRATION_MINUTES: '1' });
    // Mixed on purpose: posted, repeats, a scan, outside traffic, old lines, future lines, unknown pods.
    const kinds = [
      (n: number) => drop({ time: T0 + n }),
      (n: number) => drop({ src: `198.18.0.${n % 50}`, time: T0 + n }),
      (n: number) => drop({ src: '203.0.113.1', dst: '203.0.113.2', time: T0 + n }),
      (n: number) => drop({ time: T0 + n - 5 * MINUTE }),
      (n: number) => drop({ time: Date.parse('2035-01-01T00:00:00Z'), dstPort: n }),
      (n: number) => toLate({ time: T0 + n }),
      (n: number) => toLate({ src: `10.4.9.${n % 7}`, time: T0 + n }),
    ];
    const lines = 700;
    for (let n = 0; n < lines; n++) {
      if (n === 300) locator.pods.upsert(running(late));
      if (n === 500) index.isCurrent = true;
      pipeline.handle(kinds[n % kinds.length]!(n), T0 + n);
    }
    const outcomes = [
      metrics.dropsExpired,
      metrics.dropsSuppressed,
      metrics.dropsUnmatched,
      metrics.dropsPosted,
    ];
    const counted = await Promise.all(outcomes.map((c) => value(c)));
    expect(await value(metrics.dropsHeld)).toBeGreaterThan(0);
    expect(counted.every((count) => count > 0)).toBe(true);
    expect(counted.reduce((a, b) => a + b)).toBe(lines);
  });

  it('locates what it holds with what it knows when forced, at shutdown', async () => {
    const { pipeline, sink } = behind();
    pipeline.handle(toLate(), T0);
    pipeline.release(T0, true);
    expect(sink.intents.map((i) => i.pod.name)).toEqual(['netperf-client-42010a80017f']);
  });
});

describe('Pipeline locating addresses', () => {
  it('looks each address of a drop up once, at the drop time, and names and posts from that answer', () => {
    const { locator } = setup();
    const recorder = new RecordingSink();
    const asked: string[] = [];
    const counting = {
      locate: (ip: string, at: number) => {
        asked.push(`${ip} ${at - T0}`);
        return locator.locate(ip, at);
      },
    };
    const counted = new Pipeline({
      config: config({ POD_IDENTIFIER: 'name' }),
      locator: counting,
      sink: sides(recorder, config()),
      metrics: new Metrics(),
    });
    counted.handle(drop({ time: T0 - 1000 }), T0);
    counted.handle(drop({ src: '10.128.0.2', dstPort: 1, time: T0 - 1000 }), T0);
    expect(asked).toEqual(['10.4.1.6 -1000', '10.4.0.16 -1000', '10.128.0.2 -1000', '10.4.0.16 -1000']);
    expect(recorder.intents.map((i) => `${i.pod.name} ${i.direction}: ${i.message}`)).toEqual([
      'netperf-client-42010a80017f send: Packet dropped when sending traffic to netperf-server-42010a80017f (10.4.0.16) on port 12865/TCP',
      'netperf-server-42010a80017f receive: Packet dropped when receiving traffic from netperf-client-42010a80017f (10.4.1.6) on port 12865/TCP',
      `netperf-server-42010a80017f receive: Packet dropped when receiving traffic from ${NODE_A} (10.128.0.2) on port 1/TCP`,
    ]);
  });

  it('posts to the pod that was Running at the drop time when two claim its address', () => {
    const { locator, pipeline, summary } = setup({ POD_IDENTIFIER: 'name' });
    const stale = { ...server, uid: 'uid-stale', name: 'stale-server' };
    locator.pods.upsert(indexed(stale, { started: T0 - 10 * MINUTE }));
    locator.pods.upsert(indexed(server, { started: T0 + 30_000 }));
    pipeline.handle(drop(), T0);
    pipeline.handle(drop({ time: T0 + MINUTE, dstPort: 1 }), T0 + MINUTE);
    expect(summary()).toEqual([
      'netperf-client-42010a80017f send: Packet dropped when sending traffic to stale-server (10.4.0.16) on port 12865/TCP',
      'stale-server receive: Packet dropped when receiving traffic from netperf-client-42010a80017f (10.4.1.6) on port 12865/TCP',
      'netperf-client-42010a80017f send: Packet dropped when sending traffic to netperf-server-42010a80017f (10.4.0.16) on port 1/TCP',
      'netperf-server-42010a80017f receive: Packet dropped when receiving traffic from netperf-client-42010a80017f (10.4.1.6) on port 1/TCP',
    ]);
  });
});

describe('HeldDrops', () => {
  it('keeps the newest drops up to its capacity and hands back the oldest', () => {
    const held = new HeldDrops(2);
    const [a, b, c] = [1, 2, 3].map((port) => drop({ srcPort: port }));
    expect(held.hold(a!)).toBeUndefined();
    expect(held.hold(b!)).toBeUndefined();
    expect(held.hold(c!)).toBe(a);
    expect(held.takeAll()).toEqual([b, c]);
    expect(held.size).toBe(0);
  });
});

/** A live pipeline whose index is current (a flag stands in for the pod watch, as above). */
describe('Pipeline when a pod is reported Running after its first drop', () => {
  const newClient = { ...client, uid: 'uid-new-client', name: 'new-client', ips: ['10.4.3.3'] };
  const newServer = { ...server, uid: 'uid-new-server', name: 'new-server', ips: ['10.4.3.4'] };
  const current = { current: () => true };

  function live(env: Record<string, string> = {}) {
    const parts = setup({ POD_IDENTIFIER: 'name', ...env }, current);
    const startsRunning = (ref: typeof client, now: number): void => {
      parts.locator.pods.upsert(running(ref));
      parts.pipeline.podRunning(ref, now);
    };
    return { ...parts, startsRunning };
  }

  it('posts the new pod its side of a drop posted for the other side, counted once', async () => {
    const { pipeline, metrics, summary, startsRunning } = live();
    expect(pipeline.handle(drop({ src: '10.4.3.3' }), T0)).toBe('posted');
    expect(summary()).toEqual([
      'netperf-server-42010a80017f receive: Packet dropped when receiving traffic from 10.4.3.3 on port 12865/TCP',
    ]);
    // Its retransmission is a repeat, as before: only the late side can give the client its event.
    expect(pipeline.handle(drop({ src: '10.4.3.3', time: T0 + 1000 }), T0 + 1000)).toBe('suppressed');
    startsRunning(newClient, T0 + 2000);
    expect(summary().slice(1)).toEqual([
      'new-client send: Packet dropped when sending traffic to netperf-server-42010a80017f (10.4.0.16) on port 12865/TCP',
    ]);
    expect(await value(metrics.dropsPostedLate)).toBe(1);
    expect(await value(metrics.packetDrops, { src: '10.4.3.3', dst: 'netperf-server-42010a80017f' })).toBe(1);
    expect(await value(metrics.packetDrops, { src: 'new-client' })).toBe(0);
    // Taken: a second Running report of the same pod posts nothing more.
    startsRunning(newClient, T0 + 3000);
    expect(summary()).toHaveLength(2);
  });

  it('posts each side of an unmatched drop as its pod appears, and counts the drop once', async () => {
    const { pipeline, sink, metrics, summary, startsRunning } = live();
    const between = drop({ src: '10.4.3.3', dst: '10.4.3.4' });
    expect(pipeline.handle(between, T0)).toBe('unmatched');
    expect(pipeline.handle({ ...between, srcPort: 60354, time: T0 + 1000 }, T0 + 1000)).toBe('unmatched');
    startsRunning(newServer, T0 + 1500);
    startsRunning(newClient, T0 + 2000);
    expect(summary()).toEqual([
      'new-server receive: Packet dropped when receiving traffic from 10.4.3.3 on port 12865/TCP',
      'new-client send: Packet dropped when sending traffic to new-server (10.4.3.4) on port 12865/TCP',
    ]);
    // The first drop of the flow, by its own log time; the retransmission waits no more than it posts.
    expect(sink.intents.map((intent) => intent.time)).toEqual([T0, T0]);
    const counted = (await metrics.packetDrops.get()).values.map((sample) => sample.value);
    expect(counted).toEqual([1]);
    expect(pipeline.handle({ ...between, time: T0 + 3000 }, T0 + 3000)).toBe('suppressed');
  });

  it('posts nothing for a drop that expired, waited too long, or whose flow was posted meanwhile', async () => {
    const { pipeline, summary, startsRunning } = live({ PACKET_DROP_EXPIRATION_MINUTES: '1' });
    pipeline.handle(drop({ src: '10.4.3.3' }), T0);
    startsRunning(newClient, T0 + MINUTE);
    expect(summary()).toHaveLength(1);

    const other = live();
    other.pipeline.handle(drop({ src: '10.4.3.3' }), T0);
    other.startsRunning(newClient, T0 + LATE_POD_WINDOW_MS + 1);
    expect(other.summary()).toHaveLength(1);

    const again = live();
    again.pipeline.handle(drop({ src: '10.4.3.3', dst: '10.4.3.4' }), T0);
    again.locator.pods.upsert(running(newClient));
    again.locator.pods.upsert(running(newServer));
    expect(again.pipeline.handle(drop({ src: '10.4.3.3', dst: '10.4.3.4', time: T0 + 500 }), T0 + 500)).toBe(
      'posted',
    );
    again.pipeline.podRunning(newClient, T0 + 600);
    again.pipeline.podRunning(newServer, T0 + 600);
    expect(again.sink.intents.map((intent) => intent.time)).toEqual([T0 + 500, T0 + 500]);
  });

  it('gives a hostNetwork pod no late side, and waits for nothing in replay', () => {
    const { pipeline, summary, startsRunning } = live();
    // 10.128.0.2 is the hostNetwork calico-node pod's (its node's) address.
    pipeline.handle(drop({ src: '10.128.0.2', dst: '10.4.3.4' }), T0);
    startsRunning({ ...newServer, ips: ['10.4.3.4'] }, T0 + 500);
    expect(summary()).toEqual([
      'new-server receive: Packet dropped when receiving traffic from gke-cluster-k8s-default-pool-d4371b02-9s00 (10.128.0.2) on port 12865/TCP',
    ]);
    startsRunning({ ...calicoNode, uid: 'uid-calico-2' }, T0 + 600);
    expect(summary()).toHaveLength(1);

    const replay = setup({ POD_IDENTIFIER: 'name' });
    replay.pipeline.handle(drop({ src: '10.4.3.3' }), T0);
    replay.locator.pods.upsert(running(newClient));
    replay.pipeline.podRunning(newClient, T0 + 500);
    expect(replay.sink.intents).toHaveLength(1);
  });
});

describe('PodDirectory.onRunning', () => {
  it('reports each pod upserted Running, after indexing it, and no other', () => {
    const directory = new PodDirectory();
    const seen: string[] = [];
    directory.onRunning((ref) => seen.push(`${ref.name} ${directory.locate(ref.ips[0]!, T0).pod?.name}`));
    directory.pods.upsert(notRunning(client));
    directory.pods.upsert(running(server));
    directory.pods.replace([running(client)]);
    expect(seen).toEqual([
      'netperf-server-42010a80017f netperf-server-42010a80017f',
      'netperf-client-42010a80017f netperf-client-42010a80017f',
    ]);
  });
});

describe('LatePods', () => {
  const side = (overrides: Partial<PacketDrop>, direction: 'send' | 'receive' = 'send') => ({
    waiting: { drop: drop(overrides), posted: false, seenAt: T0 },
    direction,
  });

  it('keeps one side per flow and direction, and a few flows per address', () => {
    const late = new LatePods();
    late.wait('10.4.3.3', side({ srcPort: 1 }));
    late.wait('10.4.3.3', side({ srcPort: 2 }));
    late.wait('10.4.3.3', side({ srcPort: 3 }, 'receive'));
    for (let port = 1; port <= 20; port++) late.wait('10.4.3.3', side({ dstPort: 1000 + port }));
    const taken = late.take(['10.4.3.3'], T0);
    expect(taken).toHaveLength(8);
    expect(taken.slice(0, 2).map((s) => `${s.direction} ${s.waiting.drop.srcPort}`)).toEqual([
      'send 1',
      'receive 3',
    ]);
    expect(late.take(['10.4.3.3'], T0)).toEqual([]);
  });

  it('forgets the least recently seen address first, past its bound', () => {
    const late = new LatePods();
    for (let i = 0; i < 5000; i++) late.wait(`10.5.${i >> 8}.${i & 255}`, side({}));
    expect(late.take(['10.5.0.0'], T0)).toEqual([]);
    expect(late.take(['10.5.19.135'], T0)).toHaveLength(1);
  });
});
