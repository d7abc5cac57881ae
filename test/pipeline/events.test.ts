import { describe, expect, it } from 'vitest';
import { COMBINED_COUNT_MAX } from '../../agent/events/combine.ts';
import { aggregationKey, eventBody, eventName, rfc3339 } from '../../agent/events/event.ts';
import { EventBook } from '../../agent/events/event-book.ts';
import {
  type CombinedView,
  combinedMessage,
  combinedSubject,
  dropMessage,
  MAX_NOTE_BYTES,
  policyText,
} from '../../agent/events/message.ts';
import type { EventIntent } from '../../agent/types.ts';
import { client, config, drop, icmpDrop, MINUTE, NODE_A, pod, server, T0 } from './fixtures.ts';

const settings = config();

function intent(overrides: Partial<EventIntent> = {}): EventIntent {
  const d = drop();
  const message = overrides.message ?? dropMessage('send', d, 'default');
  return {
    pod: client,
    direction: 'send',
    message,
    subject: message,
    combined: false,
    related: undefined,
    time: d.time,
    host: NODE_A,
    drop: d,
    ...overrides,
  };
}

describe('dropMessage', () => {
  it('words send and receive events with the peer name and IP', () => {
    expect(dropMessage('send', drop(), 'netperf-server-42010a80017f')).toBe(
      'Packet dropped when sending traffic to netperf-server-42010a80017f (10.4.0.16) on port 12865/TCP',
    );
    expect(dropMessage('receive', drop(), 'netperf-client-42010a80017f')).toBe(
      'Packet dropped when receiving traffic from netperf-client-42010a80017f (10.4.1.6) on port 12865/TCP',
    );
  });

  it('ends with the policy the prefix named, when it named one', () => {
    const policy = {
      tier: null,
      kind: 'NetworkPolicy',
      namespace: 'netperf-demo',
      name: 'netperf',
      cut: false,
    };
    expect(dropMessage('send', drop({ policy }), 'netperf-server-42010a80017f')).toBe(
      'Packet dropped when sending traffic to netperf-server-42010a80017f (10.4.0.16) on port 12865/TCP by NetworkPolicy netperf-demo/netperf',
    );
  });

  it('leaves out " (ip)" when the name is the IP itself', () => {
    expect(dropMessage('send', drop(), '10.4.0.16')).toBe(
      'Packet dropped when sending traffic to 10.4.0.16 on port 12865/TCP',
    );
    const v6 = drop({ src: 'fd00:10:244:1::7', dst: 'fd00:10:244::5', ipVersion: 6, dstPort: 80 });
    expect(dropMessage('receive', v6, 'fd00:10:244:1::7')).toBe(
      'Packet dropped when receiving traffic from fd00:10:244:1::7 on port 80/TCP',
    );
  });

  it('says "over" the protocol, with ICMP type and code, for port-less protocols', () => {
    expect(dropMessage('send', icmpDrop(), 'default')).toBe(
      'Packet dropped when sending traffic to default (10.4.0.16) over ICMP (type 8, code 0)',
    );
    const v6 = icmpDrop({ proto: 'ICMPv6', icmpType: 128, icmpCode: null, src: 'fd00::1', dst: 'fd00::2' });
    expect(dropMessage('receive', v6, 'fd00::1')).toBe(
      'Packet dropped when receiving traffic from fd00::1 over ICMPv6 (type 128)',
    );
    const gre = icmpDrop({ proto: '47', icmpType: null, icmpCode: null });
    expect(dropMessage('send', gre, '10.4.0.16')).toBe(
      'Packet dropped when sending traffic to 10.4.0.16 over IP protocol 47',
    );
    const fragment = drop({ srcPort: null, dstPort: null });
    expect(dropMessage('send', fragment, '10.4.0.16')).toBe(
      'Packet dropped when sending traffic to 10.4.0.16 over TCP',
    );
  });
});

describe('combinedMessage', () => {
  const scan: CombinedView = {
    direction: 'receive',
    peers: 11,
    peersCapped: false,
    ports: null,
    portsCapped: false,
    transport: 'on port 443/TCP',
    examples: ['198.18.0.10', '198.18.0.11', '198.18.0.12'],
  };
  const portScan: CombinedView = {
    ...scan,
    peers: 3,
    ports: 57,
    transport: null,
    examples: ['10.0.0.9 on port 22/TCP'],
  };

  it('counts the sources or destinations on one port and names a few', () => {
    expect(combinedMessage(scan)).toBe(
      'Packet dropped when receiving traffic from 11 sources on port 443/TCP (e.g. 198.18.0.10, 198.18.0.11, 198.18.0.12, …)',
    );
    expect(combinedMessage({ ...scan, direction: 'send', peers: 12, examples: ['web (10.4.0.7)'] })).toBe(
      'Packet dropped when sending traffic to 12 destinations on port 443/TCP (e.g. web (10.4.0.7), …)',
    );
    expect(
      combinedMessage({ ...scan, transport: 'over ICMP (type 8, code 0)', examples: ['198.18.0.10'] }),
    ).toBe(
      'Packet dropped when receiving traffic from 11 sources over ICMP (type 8, code 0) (e.g. 198.18.0.10, …)',
    );
  });

  it(`names fewer examples rather than exceed the ${MAX_NOTE_BYTES} bytes the API takes`, () => {
    // The longest names a peer can have: namespace/name of a pod, and an IPv6 address.
    const longest = (n: number) => `${'n'.repeat(63)}/${String(n).repeat(253)} (fd00:10:244::${n})`;
    const long = { ...portScan, examples: [1, 2, 3].map((n) => `${longest(n)} on port 65535/SCTP`) };
    const message = combinedMessage(long);
    expect(Buffer.byteLength(message)).toBeLessThanOrEqual(MAX_NOTE_BYTES);
    expect(message).toContain(long.examples[1]);
    expect(message).not.toContain(long.examples[2]);
    const one = combinedMessage({ ...long, examples: [long.examples[0]!] });
    expect(one).toContain(long.examples[0]);
    expect(Buffer.byteLength(one)).toBeLessThanOrEqual(MAX_NOTE_BYTES);
  });

  it('counts the ports of a port scan, with one source or destination in the singular', () => {
    expect(combinedMessage(portScan)).toBe(
      'Packet dropped when receiving traffic from 3 sources on 57 ports (e.g. 10.0.0.9 on port 22/TCP, …)',
    );
    expect(combinedMessage({ ...portScan, peers: 1 })).toContain(' from 1 source on 57 ports ');
    expect(combinedMessage({ ...portScan, direction: 'send', peers: 1 })).toContain(
      'sending traffic to 1 destination on 57 ports ',
    );
  });

  it(`writes thousands with separators and says "more than" once counting stopped at ${COMBINED_COUNT_MAX.toLocaleString('en-US')}`, () => {
    expect(combinedMessage({ ...scan, peers: 5000 })).toContain(' from 5,000 sources on port 443/TCP ');
    expect(combinedMessage({ ...portScan, peers: 1234, ports: 56_789 })).toContain(
      ' from 1,234 sources on 56,789 ports ',
    );
    expect(combinedMessage({ ...scan, peers: COMBINED_COUNT_MAX, peersCapped: true })).toContain(
      ' from more than 10,000 sources on port 443/TCP ',
    );
    expect(combinedMessage({ ...portScan, ports: COMBINED_COUNT_MAX, portsCapped: true })).toContain(
      ' from 3 sources on more than 10,000 ports ',
    );
    expect(
      combinedMessage({ ...portScan, direction: 'send', peers: COMBINED_COUNT_MAX, peersCapped: true }),
    ).toContain(' to more than 10,000 destinations on 57 ports ');
  });
});

describe('combinedSubject', () => {
  it('stays the same while the message counts on: one Event per pod side and port, or per pod side', () => {
    expect(combinedSubject('receive', 'on port 443/TCP')).toBe(
      'Packet dropped when receiving traffic from many sources on port 443/TCP',
    );
    expect(combinedSubject('receive', 'over ICMP (type 8, code 0)')).toBe(
      'Packet dropped when receiving traffic from many sources over ICMP (type 8, code 0)',
    );
    expect(combinedSubject('send', null)).toBe(
      'Packet dropped when sending traffic to many destinations on many ports',
    );
  });
});

describe('eventBody', () => {
  it('is a core/v1 Warning Event on the pod', () => {
    const body = eventBody(intent(), settings, { count: 3, first: T0 + 123, last: T0 + 4 * MINUTE + 999 });
    expect(body).toEqual({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: eventName(client.name, aggregationKey(intent(), settings)), namespace: 'default' },
      involvedObject: {
        kind: 'Pod',
        apiVersion: 'v1',
        namespace: 'default',
        name: 'netperf-client-42010a80017f',
        uid: 'uid-client',
      },
      type: 'Warning',
      reason: 'PacketDrop',
      action: 'Drop',
      message: 'Packet dropped when sending traffic to default (10.4.0.16) on port 12865/TCP',
      count: 3,
      firstTimestamp: '2024-04-05T20:41:42Z',
      lastTimestamp: '2024-04-05T20:45:42Z',
      eventTime: '2024-04-05T20:41:42.123000Z',
      series: { count: 3, lastObservedTime: '2024-04-05T20:45:42.999000Z' },
      source: { component: 'kube-iptables-tailer', host: NODE_A },
      reportingComponent: 'kube-iptables-tailer',
      reportingInstance: NODE_A,
    });
  });

  it('uses KUBE_EVENT_DISPLAY_REASON and KUBE_EVENT_SOURCE_COMPONENT_NAME', () => {
    const custom = config({
      KUBE_EVENT_DISPLAY_REASON: 'Dropped',
      KUBE_EVENT_SOURCE_COMPONENT_NAME: 'tailer',
    });
    const body = eventBody(intent(), custom, { count: 1, first: T0, last: T0 });
    expect([body.reason, body.source.component, body.reportingComponent]).toEqual([
      'Dropped',
      'tailer',
      'tailer',
    ]);
  });

  it('formats timestamps as RFC 3339 UTC seconds', () => {
    expect(rfc3339(Date.parse('2024-04-05T20:41:42.999Z'))).toBe('2024-04-05T20:41:42Z');
  });
});

describe('eventName', () => {
  const dnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

  it('is <pod name>.<16 hex>, the same for the same key and different for another', () => {
    const key = aggregationKey(intent(), settings);
    const name = eventName(client.name, key);
    expect(name).toMatch(/^netperf-client-42010a80017f\.[0-9a-f]{16}$/);
    expect(eventName(client.name, key)).toBe(name);
    expect(eventName(client.name, aggregationKey(intent({ message: 'other' }), settings))).not.toBe(name);
  });

  it('stays a valid DNS subdomain of at most 253 characters for the longest pod names', () => {
    const longName = `${'a'.repeat(235)}-${'b'.repeat(17)}`;
    for (const podName of [longName, `${'a'.repeat(235)}.b`, 'x']) {
      const name = eventName(podName, 'key');
      expect(name.length).toBeLessThanOrEqual(253);
      expect(name).toMatch(dnsSubdomain);
    }
  });
});

describe('aggregationKey', () => {
  it('separates pods, messages and source hosts, but not drop details', () => {
    const base = aggregationKey(intent(), settings);
    expect(aggregationKey(intent({ time: T0 + MINUTE, drop: drop({ srcPort: 1 }) }), settings)).toBe(base);
    expect(aggregationKey(intent({ pod: pod({ uid: 'uid-other' }) }), settings)).not.toBe(base);
    expect(aggregationKey(intent({ message: 'x' }), settings)).not.toBe(base);
    expect(aggregationKey(intent({ host: 'other-node' }), settings)).not.toBe(base);
  });
});

describe('EventBook', () => {
  it('increments the count and moves lastTimestamp for the same message on the same pod', () => {
    const book = new EventBook(settings);
    expect(book.record(intent())).toBe('created');
    expect(book.record(intent({ time: T0 + 2 * MINUTE }))).toBe('incremented');
    expect(book.record(intent({ time: T0 + 5 * MINUTE }))).toBe('incremented');
    const [event, ...rest] = book.list();
    expect(rest).toEqual([]);
    expect(event).toMatchObject({
      count: 3,
      firstTimestamp: '2024-04-05T20:41:42Z',
      lastTimestamp: '2024-04-05T20:46:42Z',
    });
  });

  it('keeps different ports, directions and pods apart', () => {
    const book = new EventBook(settings);
    const other = drop({ dstPort: 41725 });
    book.submit(intent());
    book.submit(intent({ message: dropMessage('send', other, 'default'), drop: other }));
    book.submit(
      intent({ pod: server, direction: 'receive', message: dropMessage('receive', drop(), 'default') }),
    );
    expect(
      book
        .list()
        .map((e) => `${e.involvedObject.name} ${e.count} ${e.message}`)
        .sort(),
    ).toEqual([
      'netperf-client-42010a80017f 1 Packet dropped when sending traffic to default (10.4.0.16) on port 12865/TCP',
      'netperf-client-42010a80017f 1 Packet dropped when sending traffic to default (10.4.0.16) on port 41725/TCP',
      'netperf-server-42010a80017f 1 Packet dropped when receiving traffic from default (10.4.1.6) on port 12865/TCP',
    ]);
  });

  it('keeps one combined Event by its subject while its message counts on, showing the latest message', () => {
    const book = new EventBook(settings);
    const subject = combinedSubject('send', 'on port 12865/TCP');
    const counting = (peers: number, time: number) =>
      intent({
        subject,
        combined: true,
        time,
        message: `Packet dropped when sending traffic to ${peers} destinations`,
      });
    book.submit(counting(11, T0));
    book.submit(counting(12, T0 + 1000));
    const [event, ...rest] = book.list();
    expect(rest).toEqual([]);
    expect(event).toMatchObject({
      count: 2,
      message: 'Packet dropped when sending traffic to 12 destinations',
    });
    expect(event?.metadata.name).toBe(eventName(client.name, aggregationKey(counting(11, T0), settings)));
  });

  it('lists by firstTimestamp, then namespace, then name, and never shrinks the time range', () => {
    const book = new EventBook(settings);
    book.submit(intent({ pod: pod({ namespace: 'web', name: 'web', uid: 'w' }), time: T0 }));
    book.submit(intent({ pod: pod({ namespace: 'batch', name: 'zz', uid: 'z' }), time: T0 + 500 }));
    book.submit(intent({ time: T0 - MINUTE }));
    book.submit(intent({ time: T0 - 2 * MINUTE }));
    expect(book.list().map((e) => [e.metadata.namespace, e.firstTimestamp, e.lastTimestamp])).toEqual([
      ['default', '2024-04-05T20:39:42Z', '2024-04-05T20:40:42Z'],
      ['batch', '2024-04-05T20:41:42Z', '2024-04-05T20:41:42Z'],
      ['web', '2024-04-05T20:41:42Z', '2024-04-05T20:41:42Z'],
    ]);
  });
});

describe('policyText', () => {
  const policy = {
    tier: null,
    kind: 'GlobalNetworkPolicy',
    namespace: null,
    name: 'default.netperf',
    cut: false,
  };

  it('names the policy by kind and name, namespaced kinds with their namespace', () => {
    expect(policyText(policy)).toBe(' by GlobalNetworkPolicy default.netperf');
    expect(policyText({ ...policy, kind: 'NetworkPolicy', namespace: 'netperf-demo', name: 'netperf' })).toBe(
      ' by NetworkPolicy netperf-demo/netperf',
    );
    expect(policyText({ ...policy, kind: 'KubernetesNetworkPolicy', namespace: 'web', name: 'deny' })).toBe(
      ' by Kubernetes NetworkPolicy web/deny',
    );
    expect(policyText({ ...policy, kind: 'Profile', name: 'kns.web' })).toBe(' by profile kns.web');
    expect(policyText({ ...policy, kind: null })).toBe(' by policy default.netperf');
  });

  it('marks a cut name, says what is known when the cut left none, and adds nothing without a policy', () => {
    expect(policyText({ ...policy, name: 'default.net', cut: true })).toBe(
      ' by GlobalNetworkPolicy default.net…',
    );
    expect(policyText({ ...policy, kind: 'NetworkPolicy', namespace: 'netperf-demo', name: null })).toBe(
      ' by a NetworkPolicy in netperf-demo',
    );
    expect(policyText({ ...policy, name: null })).toBe(' by a GlobalNetworkPolicy');
    expect(policyText({ ...policy, kind: null, name: null })).toBe('');
    expect(policyText(undefined)).toBe('');
  });
});
