import type { Counter } from 'prom-client';
import { type Config, loadConfig } from '../../agent/config.ts';
import type { PodState } from '../../agent/locator/pod-index.ts';
import type { EventIntent, EventSink, PacketDrop, PodRef } from '../../agent/types.ts';

export const T0 = Date.parse('2024-04-05T20:41:42Z');
export const MINUTE = 60_000;
export const NODE_A = 'gke-cluster-k8s-default-pool-d4371b02-9s00';
export const NODE_B = 'gke-cluster-k8s-default-pool-d4371b02-jx7q';

/** A TCP SYN from the netperf client to the server, as the parser would produce it. */
export function drop(overrides: Partial<PacketDrop> = {}): PacketDrop {
  return {
    time: T0,
    host: NODE_A,
    prefix: 'calico-packet',
    src: '10.4.1.6',
    dst: '10.4.0.16',
    ipVersion: 4,
    proto: 'TCP',
    srcPort: 60353,
    dstPort: 12865,
    in: 'cali6e7bb88b982',
    out: 'eth0',
    mac: null,
    ttl: 63,
    length: 60,
    icmpType: null,
    icmpCode: null,
    ...overrides,
  };
}

export function icmpDrop(overrides: Partial<PacketDrop> = {}): PacketDrop {
  return drop({ proto: 'ICMP', srcPort: null, dstPort: null, icmpType: 8, icmpCode: 0, ...overrides });
}

export function pod(overrides: Partial<PodRef> = {}): PodRef {
  return {
    namespace: 'default',
    name: 'netperf-client-42010a80017f',
    uid: 'uid-client',
    nodeName: NODE_A,
    hostNetwork: false,
    label: null,
    ips: ['10.4.1.6'],
    ...overrides,
  };
}

export const client = pod();
export const server = pod({
  name: 'netperf-server-42010a80017f',
  uid: 'uid-server',
  nodeName: NODE_B,
  ips: ['10.4.0.16'],
  label: 'netperf-server',
});
export const calicoNode = pod({
  namespace: 'kube-system',
  name: 'calico-node-7xk2p',
  uid: 'uid-calico',
  hostNetwork: true,
  ips: ['10.128.0.2'],
});

/** A pod's state as the index keeps it; no start or creation time unless given (a hand-written pods file). */
export function indexed(ref: PodRef, overrides: Partial<PodState> = {}): PodState {
  const unknown = Number.NEGATIVE_INFINITY;
  return { pod: ref, running: true, hostIps: [], started: unknown, created: unknown, ...overrides };
}

export function running(ref: PodRef, hostIps: readonly string[] = []): PodState {
  return indexed(ref, { hostIps });
}

export function notRunning(ref: PodRef): PodState {
  return indexed(ref, { running: false });
}

export function config(env: Record<string, string> = {}): Config {
  return loadConfig(env);
}

export async function value(counter: Counter, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await counter.get();
  const match = values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return match?.value ?? 0;
}

/** The sink of Events in pipeline tests: keeps every intent; `busy` plays an overloaded writer. */
export class RecordingSink implements EventSink {
  readonly intents: EventIntent[] = [];
  busy = false;
  submit(intent: EventIntent): void {
    this.intents.push(intent);
  }
  overloaded(): boolean {
    return this.busy;
  }
}
