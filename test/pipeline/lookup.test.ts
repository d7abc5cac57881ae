// POD_WATCH_SCOPE=node in the pipeline and the pod index: a drop with an address no local pod or node has
// waits for its lookup, and pods found on demand go through the index's rules (start time, watch first).
// The lookup itself is scripted here; PodLookup is tested in test/locator.

import { describe, expect, it } from 'vitest';
import { SideEvents } from '../../agent/events/sides.ts';
import { PodDirectory } from '../../agent/locator/pod-directory.ts';
import type { LookupState, PeerLookup } from '../../agent/locator/pod-lookup.ts';
import { Metrics } from '../../agent/metrics.ts';
import { LOOKUP_WAIT_MS, Pipeline } from '../../agent/pipeline.ts';
import { client, config, drop, indexed, MINUTE, pod, RecordingSink, running, T0, value } from './fixtures.ts';

/** A lookup answering what the test says: 'settled' for addresses it was not told about. */
class ScriptedLookup implements PeerLookup {
  answers = 0;
  readonly asked: string[] = [];
  private readonly states = new Map<string, LookupState>();

  ask(ip: string): LookupState {
    this.asked.push(ip);
    return this.states.get(ip) ?? 'settled';
  }

  /** A lookup of `ip` ended, leaving it in `state`. */
  ended(ip: string, state: LookupState = 'settled'): void {
    this.states.set(ip, state);
    this.answers++;
  }

  set(ip: string, state: LookupState): void {
    this.states.set(ip, state);
  }
}

const remoteServer = pod({
  name: 'remote-server',
  uid: 'uid-remote',
  nodeName: 'node-b',
  ips: ['10.9.0.16'],
});
const toRemote = (sport = 40000) => drop({ dst: '10.9.0.16', srcPort: sport });

function setup() {
  const directory = new PodDirectory();
  directory.pods.upsert(running(client));
  const lookup = new ScriptedLookup();
  const sink = new RecordingSink();
  const metrics = new Metrics();
  const settings = config({ POD_IDENTIFIER: 'name', REPEATED_EVENTS_INTERVAL_MINUTES: '0' });
  const pipeline = new Pipeline({
    config: settings,
    locator: directory,
    sink: new SideEvents(sink, settings.repeatIntervalMs),
    metrics,
    freshness: { current: () => true },
    lookup,
  });
  directory.onRunning((found) => pipeline.podRunning(found, T0));
  const summary = () => sink.intents.map((i) => `${i.pod.name} ${i.direction}: ${i.message}`);
  return { directory, lookup, sink, metrics, pipeline, summary };
}

describe('Pipeline with pods looked up by address', () => {
  it('holds a drop to an unknown address until its lookup settles, then names the pod found on both sides', async () => {
    const { directory, lookup, pipeline, summary, metrics } = setup();
    lookup.set('10.9.0.16', 'pending');
    expect(pipeline.handle(toRemote(), T0)).toBe('held');
    expect(lookup.asked).toEqual(['10.9.0.16']);
    expect(summary()).toEqual([]);
    directory.remote.upsert(running(remoteServer));
    lookup.ended('10.9.0.16');
    pipeline.release(T0 + 50);
    expect(summary()).toEqual([
      'netperf-client-42010a80017f send: Packet dropped when sending traffic to remote-server (10.9.0.16) on port 12865/TCP',
      'remote-server receive: Packet dropped when receiving traffic from netperf-client-42010a80017f (10.4.1.6) on port 12865/TCP',
    ]);
    expect(await value(metrics.dropsHeld)).toBe(1);
    expect(await value(metrics.dropsPostedLate)).toBe(0);
  });

  it('asks nothing about local pods and nodes, and names an address no pod has once its lookup settled', () => {
    const { lookup, pipeline, summary } = setup();
    expect(pipeline.handle(drop({ dst: '10.9.0.99' }), T0)).toBe('posted');
    expect(lookup.asked).toEqual(['10.9.0.99']);
    expect(summary()).toEqual([
      'netperf-client-42010a80017f send: Packet dropped when sending traffic to 10.9.0.99 on port 12865/TCP',
    ]);
  });

  it('asks about both unknown sides at once, and holds until both settled', () => {
    const { lookup, pipeline, summary } = setup();
    lookup.set('10.9.0.1', 'pending');
    lookup.set('10.9.0.2', 'pending');
    expect(pipeline.handle(drop({ src: '10.9.0.1', dst: '10.9.0.2' }), T0)).toBe('held');
    expect(lookup.asked).toEqual(['10.9.0.1', '10.9.0.2']);
    lookup.ended('10.9.0.1');
    pipeline.release(T0 + 10);
    expect(summary()).toEqual([]);
    lookup.ended('10.9.0.2');
    pipeline.release(T0 + 20);
    expect(lookup.asked.slice(-2)).toEqual(['10.9.0.1', '10.9.0.2']);
  });

  it('waits at most LOOKUP_WAIT_MS for a lookup that is not made or answered (rate-limited), then names what it knows', () => {
    const { lookup, pipeline, summary } = setup();
    lookup.set('10.9.0.16', 'pending');
    expect(pipeline.handle(toRemote(), T0)).toBe('held');
    pipeline.release(T0 + LOOKUP_WAIT_MS - 1);
    expect(summary()).toEqual([]);
    // The next look after that, with no lookup ended meanwhile, is the poll's.
    pipeline.release(T0 + LOOKUP_WAIT_MS + 199);
    expect(summary()).toEqual([
      'netperf-client-42010a80017f send: Packet dropped when sending traffic to 10.9.0.16 on port 12865/TCP',
    ]);
  });

  it('while the API server fails, keeps the drop past LOOKUP_WAIT_MS and posts it when the lookup answers: nothing lost', () => {
    const { directory, lookup, pipeline, summary } = setup();
    lookup.set('10.9.0.16', 'unavailable');
    expect(pipeline.handle(toRemote(1), T0)).toBe('held');
    expect(pipeline.handle(toRemote(2), T0 + 1000)).toBe('held');
    pipeline.release(T0 + 3 * LOOKUP_WAIT_MS);
    expect(summary()).toEqual([]);
    directory.remote.upsert(running(remoteServer));
    lookup.ended('10.9.0.16');
    pipeline.release(T0 + 3 * LOOKUP_WAIT_MS + 1);
    expect(summary().map((line) => line.split(':')[0])).toEqual([
      'netperf-client-42010a80017f send',
      'remote-server receive',
      'netperf-client-42010a80017f send',
      'remote-server receive',
    ]);
  });

  it('locates held drops again only when a lookup ended or after a pause, not on every line', () => {
    const { lookup, pipeline } = setup();
    lookup.set('10.9.0.16', 'pending');
    pipeline.handle(toRemote(1), T0);
    const asks = () => lookup.asked.length;
    const local = (sport: number) => drop({ dst: client.ips[0], srcPort: sport });
    pipeline.handle(local(7), T0 + 1);
    expect(asks()).toBe(2);
    pipeline.handle(local(8), T0 + 2);
    pipeline.release(T0 + 3);
    expect(asks()).toBe(2);
    lookup.ended('10.9.0.5', 'settled');
    pipeline.release(T0 + 4);
    expect(asks()).toBe(3);
    pipeline.release(T0 + 5);
    expect(asks()).toBe(3);
    pipeline.release(T0 + 204);
    expect(asks()).toBe(4);
  });

  it('posts the waiting side when a later lookup finds the pod Running there (within the late-pod window)', async () => {
    const { directory, pipeline, summary, metrics } = setup();
    expect(pipeline.handle(toRemote(), T0)).toBe('posted');
    expect(summary()).toHaveLength(1);
    directory.remote.upsert(running(remoteServer));
    expect(summary()[1]).toBe(
      'remote-server receive: Packet dropped when receiving traffic from netperf-client-42010a80017f (10.4.1.6) on port 12865/TCP',
    );
    expect(await value(metrics.dropsPostedLate)).toBe(1);
  });

  it('at shutdown posts what it holds without waiting', () => {
    const { lookup, pipeline, summary } = setup();
    lookup.set('10.9.0.16', 'unavailable');
    pipeline.handle(toRemote(), T0);
    pipeline.release(T0 + 1, true);
    expect(summary()).toHaveLength(1);
  });
});

describe('PodDirectory with pods found on demand', () => {
  it('keeps them through a relist of the watch, and lets them go when the lookup does', () => {
    const directory = new PodDirectory();
    directory.remote.upsert(running(remoteServer));
    directory.pods.replace([running(client)]);
    expect(directory.locate('10.9.0.16', T0).pod?.name).toBe('remote-server');
    directory.remote.remove(running(remoteServer));
    expect(directory.locate('10.9.0.16', T0).pod).toBeUndefined();
  });

  it("never lets a lookup replace or remove a pod the watch reports: the watch's word is the latest", () => {
    const directory = new PodDirectory();
    directory.pods.upsert(running(client));
    directory.remote.upsert(indexed(client, { running: false }));
    expect(directory.locate('10.4.1.6', T0).pod?.name).toBe(client.name);
    directory.remote.remove(running(client));
    expect(directory.locate('10.4.1.6', T0).pod?.name).toBe(client.name);
  });

  describe('IP reuse: a finished pod and a new Running one with its address, both found', () => {
    const old = pod({ name: 'old', uid: 'uid-old', nodeName: 'node-b', ips: ['10.9.0.6'] });
    const reused = pod({ name: 'reused', uid: 'uid-reused', nodeName: 'node-b', ips: ['10.9.0.6'] });
    const directory = new PodDirectory();
    directory.remote.upsert(indexed(old, { running: false, started: T0 - 10 * MINUTE }));
    directory.remote.upsert(indexed(reused, { started: T0 - MINUTE }));

    it('names the new pod for a drop after it started', () => {
      expect(directory.locate('10.9.0.6', T0).pod?.name).toBe('reused');
    });

    it('names no pod for a drop while the finished one had the address: it gets no Event, and the new one was not Running', () => {
      expect(directory.locate('10.9.0.6', T0 - 5 * MINUTE)).toEqual({ pod: undefined, node: undefined });
    });

    it('a finished pod from a pods file (replay) changes nothing: replay names what it always named', () => {
      const replayed = new PodDirectory();
      replayed.pods.replace([
        indexed(old, { running: false, started: T0 - 10 * MINUTE }),
        indexed(reused, { started: T0 - MINUTE }),
      ]);
      expect(replayed.locate('10.9.0.6', T0 - 5 * MINUTE).pod?.name).toBe('reused');
    });
  });
});
