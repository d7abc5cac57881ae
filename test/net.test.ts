import { isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalIp, ipVersion, ipv4ValueAt } from '../agent/net.ts';
import { Ipv4Texts } from '../agent/parser/values.ts';

describe('canonicalIp', () => {
  const cases: [string, string][] = [
    ['10.4.0.4', '10.4.0.4'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['fd00:0010:0244:0000:0000:0000:0000:0005', 'fd00:10:244::5'],
    ['FD00:0010:0244:0000:0000:0000:0000:0005', 'fd00:10:244::5'],
    ['2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0001:0000:0000:0000:0001', '2001:db8:0:1::1'],
    ['2001:0db8:0000:0001:0001:0001:0001:0001', '2001:db8:0:1:1:1:1:1'],
    ['0000:0000:0000:0000:0000:0000:0000:0000', '::'],
    ['0000:0000:0000:0000:0000:0000:0000:0001', '::1'],
    ['fe80:0000:0000:0000:0000:0000:0000:0000', 'fe80::'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['1::', '1::'],
    ['::', '::'],
    ['0000:0000:0000:0000:0000:ffff:0a04:0004', '::ffff:10.4.0.4'],
    ['::ffff:10.4.0.4', '::ffff:10.4.0.4'],
    ['::FFFF:1.2.3.4', '::ffff:1.2.3.4'],
    ['64:ff9b::1.2.3.4', '64:ff9b::102:304'],
    ['::1.2.3.4', '::102:304'],
  ];
  it.each(cases)('%s → %s', (input, canonical) => {
    expect(canonicalIp(input)).toBe(canonical);
  });

  it.each([
    '',
    '1.2.3',
    '1.2.3.4.5',
    '1.2.3.256',
    '01.2.3.4',
    '1..3.4',
    '1.2.3.4 ',
    '-1.2.3.4',
    ':',
    ':::',
    '1:2',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7::8',
    '12345::1',
    'g::1',
    'fe80::1%eth0',
    '::1.2.3',
    '::1.2.3.4:5',
    '1:2:3:4:5:6:7:1.2.3.4',
    '1:',
    ':1',
    '1:2:3:4:5:6:7:8:',
    'localhost',
  ])('rejects %j', (input) => {
    expect(canonicalIp(input)).toBeNull();
  });

  it('agrees with WHATWG URL serialisation (RFC 5952) on random IPv6 addresses', () => {
    fc.assert(
      fc.property(fc.ipV6(), (address) => {
        const canonical = canonicalIp(address);
        expect(canonical).not.toBeNull();
        expect(isIP(canonical!)).toBe(6);
        // URL prints IPv4-mapped addresses in hex; RFC 5952 section 5 recommends dotted form.
        if (!canonical!.startsWith('::ffff:') || !canonical!.includes('.')) {
          expect(canonical).toBe(new URL(`http://[${address}]/`).hostname.slice(1, -1));
        }
        expect(canonicalIp(canonical!)).toBe(canonical);
      }),
      { numRuns: 5000 },
    );
  });

  it('keeps valid IPv4 text and rejects what node:net rejects', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV4Extended(), fc.string({ maxLength: 20 })), (text) => {
        const canonical = canonicalIp(text);
        if (isIP(text) === 4) expect(canonical).toBe(text);
        if (canonical !== null) expect(isIP(canonical)).toBe(ipVersion(canonical));
      }),
      { numRuns: 5000 },
    );
  });
});

describe('Ipv4Texts', () => {
  it('returns the same text for the same address and the right one after a collision', () => {
    const texts = new Ipv4Texts();
    const line = 'SRC=10.4.0.4 DST=10.4.0.4 X=10.5.0.4';
    const first = texts.at(line, 4, 12, ipv4ValueAt(line, 4, 12));
    expect(first).toBe('10.4.0.4');
    expect(texts.at(line, 17, 25, ipv4ValueAt(line, 17, 25))).toBe(first);
    expect(texts.at(line, 28, 36, ipv4ValueAt(line, 28, 36))).toBe('10.5.0.4');
  });

  it('parses address values', () => {
    expect(ipv4ValueAt('255.255.255.255', 0, 15)).toBe(0xffff_ffff);
    expect(ipv4ValueAt('10.0.0.1', 0, 8)).toBe(0x0a00_0001);
  });
});
