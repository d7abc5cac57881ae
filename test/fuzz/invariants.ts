/**
 * What must hold of everything the parser and the journal reader emit, whatever their input: shared by
 * the property tests and the fuzz runs. Each check returns the first rule broken, or null.
 */

import { isIP } from 'node:net';
import { canonicalIp } from '../../agent/net.ts';
import { INVALID_REASONS, type ParseResult } from '../../agent/parser/parse.ts';
import { type ExportEntry, MAX_FIELD_BYTES, NOT_A_FACILITY } from '../../agent/sources/journal-export.ts';
import type { Direction, PacketDrop } from '../../agent/types.ts';

const SAFE_NAME = /^[A-Za-z0-9_.@+-]{0,15}$/;
const SAFE_HOST = /^[A-Za-z0-9._:-]{0,253}$/;
const PRINTABLE = /^[\x20-\x7e]*$/;

function isPort(value: number | null): boolean {
  return value === null || (Number.isInteger(value) && value >= 0 && value <= 65_535);
}

function isByte(value: number | null): boolean {
  return value === null || (Number.isInteger(value) && value >= 0 && value <= 255);
}

/** The first rule a drop breaks, or null: every value as strictly as the kernel could have printed it. */
export function dropViolation(drop: PacketDrop): string | null {
  const rules: [string, boolean][] = [
    ['src is an address of ipVersion', isIP(drop.src) === drop.ipVersion],
    ['dst is an address of ipVersion', isIP(drop.dst) === drop.ipVersion],
    ['src is canonical', canonicalIp(drop.src) === drop.src],
    ['dst is canonical', canonicalIp(drop.dst) === drop.dst],
    ['ports are 0-65535 or null', isPort(drop.srcPort) && isPort(drop.dstPort)],
    ['ports come in pairs', (drop.srcPort === null) === (drop.dstPort === null)],
    ['ttl and ICMP fields are bytes', isByte(drop.ttl) && isByte(drop.icmpType) && isByte(drop.icmpCode)],
    ['length is a count', drop.length === null || (Number.isInteger(drop.length) && drop.length >= 0)],
    ['proto is a name or number', /^[A-Za-z0-9]{1,16}$/.test(drop.proto)],
    ['interfaces are safe names', SAFE_NAME.test(drop.in) && SAFE_NAME.test(drop.out)],
    ['host is a safe name', SAFE_HOST.test(drop.host)],
    ['mac is hex pairs', drop.mac === null || /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2})*$/.test(drop.mac)],
    ['time is a date', Number.isFinite(drop.time) && Math.abs(drop.time) <= 8.64e15],
  ];
  return rules.find(([, holds]) => !holds)?.[0] ?? null;
}

/** A drop's violation, or for an invalid line one of the known reasons with a printable detail. */
export function resultViolation(result: ParseResult): string | null {
  if (result.kind === 'drop') return dropViolation(result.drop);
  if (
    result.kind === 'invalid' &&
    (!INVALID_REASONS.includes(result.reason) || !PRINTABLE.test(result.detail))
  ) {
    return 'invalid report is not a known reason with a printable detail';
  }
  return null;
}

/**
 * The message read back into its parts. Anything the template does not account for, a control character
 * or text from the raw line, makes it fail to match or to agree with the drop.
 */
const MESSAGE =
  /^Packet dropped when (sending traffic to|receiving traffic from) ([^ ()]+)(?: \(([^ ()]+)\))? (?:on port (\d+)\/([A-Za-z0-9]+)|over (IP protocol )?([A-Za-z0-9]+)(?: \(type (\d+)(?:, code (\d+))?\))?)$/;

const optionalNumber = (text: string | undefined): number | null =>
  text === undefined ? null : Number(text);

/** The first way an Event message is not exactly the template filled with the drop's validated values. */
export function messageViolation(
  message: string,
  direction: Direction,
  drop: PacketDrop,
  peerName: string,
): string | null {
  if (!PRINTABLE.test(message)) return 'message has a character that is not printable ASCII';
  const m = MESSAGE.exec(message);
  if (m === null) return 'message does not have the shape of the template';
  const [, verb, name, ip, port, portProto, numbered, proto, type, code] = m;
  const peerIp = direction === 'send' ? drop.dst : drop.src;
  const rules: [string, boolean][] = [
    ['direction', verb === (direction === 'send' ? 'sending traffic to' : 'receiving traffic from')],
    ['peer', ip === undefined ? name === peerIp && peerName === peerIp : name === peerName && ip === peerIp],
    [
      'port',
      port === undefined
        ? drop.dstPort === null &&
          proto === drop.proto &&
          (numbered !== undefined) === /^\d+$/.test(drop.proto)
        : Number(port) === drop.dstPort && portProto === drop.proto,
    ],
    [
      'icmp',
      port !== undefined ||
        (optionalNumber(type) === drop.icmpType &&
          (type === undefined || optionalNumber(code) === drop.icmpCode)),
    ],
  ];
  return rules.find(([, holds]) => !holds)?.[0] ?? null;
}

const isText = (value: unknown, max: number): boolean =>
  value === null || (typeof value === 'string' && value.length <= max);

/** An entry as ExportReader promises it: the five fields, each null or a bounded value of its type. */
export function entryViolation(entry: ExportEntry): string | null {
  const rules: [string, boolean][] = [
    [
      'exactly the five fields',
      Object.keys(entry).sort().join() === 'facility,hostname,message,realtimeUs,transport',
    ],
    [
      'facility is a whole number, or NOT_A_FACILITY',
      entry.facility === null || (Number.isSafeInteger(entry.facility) && entry.facility >= NOT_A_FACILITY),
    ],
    [
      'realtime is a whole number of microseconds',
      entry.realtimeUs === null || (Number.isSafeInteger(entry.realtimeUs) && entry.realtimeUs >= 0),
    ],
    ['hostname is bounded text', isText(entry.hostname, MAX_FIELD_BYTES)],
    ['transport is bounded text', isText(entry.transport, MAX_FIELD_BYTES)],
    ['message is bounded text', isText(entry.message, MAX_FIELD_BYTES)],
  ];
  return rules.find(([, holds]) => !holds)?.[0] ?? null;
}
