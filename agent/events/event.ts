import { createHash } from 'node:crypto';
import type { Config } from '../config.ts';
import type { EventIntent, PodRef } from '../types.ts';

export type EventConfig = Pick<Config, 'eventReason' | 'eventSourceComponent'>;

export interface PodReference {
  kind: 'Pod';
  apiVersion: 'v1';
  namespace: string;
  name: string;
  uid: string;
}

/**
 * A core/v1 Event as created in the API (only the fields this agent sets). It fills both views of an Event:
 * core/v1 readers (kubectl describe, event exporters, the original's users) see involvedObject, message,
 * count, first/lastTimestamp and source; events.k8s.io/v1 readers see the same Event as regarding, note,
 * series, eventTime, related, action and reportingController/Instance. Written through core/v1 because
 * events.k8s.io/v1 refuses a create that sets the deprecated* fields the core view is made of.
 */
export interface CoreEvent {
  apiVersion: 'v1';
  kind: 'Event';
  metadata: { name: string; namespace: string };
  involvedObject: PodReference;
  /** The pod on the other side of the drop, when it is one (never for a combined Event). */
  related?: PodReference;
  type: 'Warning';
  reason: string;
  action: string;
  message: string;
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
  /** The first drop, at the microseconds events.k8s.io/v1 keeps. */
  eventTime: string;
  /** From the second drop on, as events.k8s.io/v1 requires of a series. */
  series?: EventSeries;
  source: { component: string; host: string };
  reportingComponent: string;
  reportingInstance: string;
}

export interface EventSeries {
  count: number;
  lastObservedTime: string;
}

/** What the agent did about the pod, in events.k8s.io/v1's terms: a documented, fixed verb. */
export const EVENT_ACTION = 'Drop';

/** How often and when an aggregated Event was seen, epoch ms. */
export interface Occurrence {
  count: number;
  first: number;
  last: number;
}

/**
 * Events with the same key are one Event whose count grows, as client-go's EventCorrelator aggregates:
 * same involved object, reason, message and source. A combined Event's message counts on, so its fixed
 * subject stands in for it. JSON keeps fields containing separators unambiguous.
 */
export function aggregationKey(intent: EventIntent, config: EventConfig): string {
  const { pod } = intent;
  return JSON.stringify([
    pod.namespace,
    pod.name,
    pod.uid,
    config.eventReason,
    intent.subject,
    config.eventSourceComponent,
    intent.host,
  ]);
}

/** 253 (DNS subdomain limit) minus ".<16 hex>". */
const MAX_POD_PART = 253 - 17;

/**
 * A deterministic Event name, `<pod name>.<16 hex of sha256(key)>`, so that a restarted agent re-creating
 * an Event gets AlreadyExists instead of a duplicate. Pod names are DNS subdomains already; a cut one must
 * still end in an alphanumeric.
 */
export function eventName(podName: string, key: string): string {
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 16);
  const base = podName.slice(0, MAX_POD_PART).replace(/[.-]+$/, '');
  return `${base}.${hash}`;
}

/** RFC 3339 in UTC at whole seconds, the precision the API stores for firstTimestamp/lastTimestamp. */
export function rfc3339(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** RFC 3339 in UTC with exactly six fraction digits: the API refuses a MicroTime with fewer. */
export function microTime(ms: number): string {
  return `${new Date(Math.floor(ms)).toISOString().slice(0, -1)}000Z`;
}

/** The series of an Event counted `count` times, the last at `lastMs`; none for a single drop. */
export function eventSeries(count: number, lastMs: number): EventSeries | undefined {
  return count >= 2 ? { count, lastObservedTime: microTime(lastMs) } : undefined;
}

function podReference(pod: PodRef): PodReference {
  return { kind: 'Pod', apiVersion: 'v1', namespace: pod.namespace, name: pod.name, uid: pod.uid };
}

/** The API limits reportingInstance to 128 characters. */
const MAX_REPORTING_INSTANCE = 128;

export function eventBody(intent: EventIntent, config: EventConfig, seen: Occurrence): CoreEvent {
  const { pod, related } = intent;
  const series = eventSeries(seen.count, seen.last);
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: eventName(pod.name, aggregationKey(intent, config)), namespace: pod.namespace },
    involvedObject: podReference(pod),
    ...(related === undefined ? {} : { related: podReference(related) }),
    type: 'Warning',
    reason: config.eventReason,
    action: EVENT_ACTION,
    message: intent.message,
    count: seen.count,
    firstTimestamp: rfc3339(seen.first),
    lastTimestamp: rfc3339(seen.last),
    eventTime: microTime(seen.first),
    ...(series === undefined ? {} : { series }),
    source: { component: config.eventSourceComponent, host: intent.host },
    reportingComponent: config.eventSourceComponent,
    reportingInstance: (intent.host || config.eventSourceComponent).slice(0, MAX_REPORTING_INSTANCE),
  };
}
