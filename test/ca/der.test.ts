import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import {
  bitString, boolean, explicit, generalizedTime, ia5String, implicit, integer, name, namedBits, nullValue,
  octetString, oid, printableString, sequence, set, time, tlv, utcTime, utf8String,
} from '../../protocol/der.ts';
import { openssl, TmpDir } from './helpers.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('protocol/der.ts', () => {
  describe('exact encodings', () => {
    it('INTEGER: minimal two\'s complement for numbers, bigints and unsigned buffers', () => {
      assert.equal(hex(integer(0)), '020100');
      assert.equal(hex(integer(127)), '02017f');
      assert.equal(hex(integer(128)), '02020080');
      assert.equal(hex(integer(256)), '02020100');
      assert.equal(hex(integer(-1)), '0201ff');
      assert.equal(hex(integer(-128)), '020180');
      assert.equal(hex(integer(-129)), '0202ff7f');
      assert.equal(hex(integer(-32768)), '02028000');
      assert.equal(hex(integer(2n ** 64n)), '0209010000000000000000');
      assert.equal(hex(integer(Buffer.from('000080', 'hex'))), '02020080');
      assert.equal(hex(integer(Buffer.from('00007f', 'hex'))), '02017f');
      assert.equal(hex(integer(Buffer.alloc(0))), '020100');
      assert.equal(hex(integer(Buffer.from('ff', 'hex'))), '020200ff');
      assert.throws(() => integer(2 ** 60), RangeError);
    });

    it('OBJECT IDENTIFIER: base-128 arcs, big arcs, cached, rejects malformed', () => {
      assert.equal(hex(oid('2.5.4.3')), '0603550403');
      assert.equal(hex(oid('1.2.840.113549.1.1.11')), '06092a864886f70d01010b');
      assert.equal(hex(oid('1.2.840.10045.4.3.2')), '06082a8648ce3d040302');
      assert.equal(hex(oid('2.999.3')), '0603883703');
      assert.equal(oid('2.5.4.3'), oid('2.5.4.3'));
      for (const bad of ['', '1', '3.1', '1.40', '1.2.', '1..2', '1.02', 'a.b']) assert.throws(() => oid(bad), RangeError, bad);
    });

    it('strings: UTF8String, PrintableString, IA5String with alphabet checks', () => {
      assert.equal(hex(utf8String('Grüße')), '0c074772c3bcc39f65');
      assert.equal(hex(printableString('Fleet Root')), '130a466c65657420526f6f74');
      assert.equal(hex(ia5String('a.b')), '1603612e62');
      assert.throws(() => printableString('printer_1'), RangeError);
      assert.throws(() => printableString('a@b'), RangeError);
      assert.throws(() => ia5String('ü'), RangeError);
      assert.throws(() => utf8String('\ud800x'), RangeError);
    });

    it('BIT STRING and named bits: unused-bit count, trailing zero bits removed', () => {
      assert.equal(hex(bitString(Buffer.from([0xca, 0xfe]))), '030300cafe');
      assert.equal(hex(bitString(Buffer.from([0x80]), 7)), '03020780');
      assert.throws(() => bitString(Buffer.from([0x81]), 7), RangeError);
      assert.throws(() => bitString(Buffer.alloc(0), 1), RangeError);
      assert.equal(hex(namedBits([0])), '03020780');
      assert.equal(hex(namedBits([0, 2])), '030205a0');
      assert.equal(hex(namedBits([5, 6, 0])), '03020186');
      assert.equal(hex(namedBits([8])), '0303070080');
      assert.equal(hex(namedBits([])), '030100');
    });

    it('BOOLEAN, NULL, OCTET STRING, context tags', () => {
      assert.equal(hex(boolean(true)), '0101ff');
      assert.equal(hex(boolean(false)), '010100');
      assert.equal(hex(nullValue()), '0500');
      assert.equal(hex(octetString(Buffer.from('00ff', 'hex'))), '040200ff');
      assert.equal(hex(explicit(0, integer(2))), 'a003020102');
      assert.equal(hex(implicit(2, ia5String('a.b'))), '8203612e62');
      assert.equal(hex(implicit(0, sequence(integer(1)))), 'a003020101');
      assert.throws(() => explicit(31, integer(1)), RangeError);
    });

    it('lengths: short form up to 127, long form with minimal octets beyond', () => {
      assert.equal(hex(octetString(Buffer.alloc(127))).slice(0, 4), '047f');
      assert.equal(hex(octetString(Buffer.alloc(128))).slice(0, 6), '048180');
      assert.equal(hex(octetString(Buffer.alloc(255))).slice(0, 6), '0481ff');
      assert.equal(hex(octetString(Buffer.alloc(256))).slice(0, 8), '04820100');
      assert.equal(hex(octetString(Buffer.alloc(65536))).slice(0, 10), '0483010000');
      assert.equal(tlv(0x04, Buffer.alloc(300)).length, 304);
    });

    it('SET OF sorts its elements by encoding', () => {
      assert.equal(hex(set(integer(2), integer(1))), '3106020101020102');
    });

    it('times: UTCTime through 2049, GeneralizedTime from 2050, no fractions', () => {
      assert.equal(hex(time(new Date('2049-12-31T23:59:59.999Z'))), `170d${Buffer.from('491231235959Z').toString('hex')}`);
      assert.equal(hex(time(new Date('2050-01-01T00:00:00Z'))), `180f${Buffer.from('20500101000000Z').toString('hex')}`);
      assert.equal(hex(time(new Date('1950-01-01T00:00:00Z'))), `170d${Buffer.from('500101000000Z').toString('hex')}`);
      assert.equal(hex(time(new Date('1949-12-31T23:59:59Z'))), `180f${Buffer.from('19491231235959Z').toString('hex')}`);
      assert.throws(() => utcTime(new Date('2050-01-01T00:00:00Z')), RangeError);
      assert.throws(() => generalizedTime(new Date(Number.NaN)), RangeError);
    });
  });

  describe('Name', () => {
    it('matches @peculiar/x509 byte for byte (PrintableString when possible, else UTF8String)', () => {
      const cases: Array<[Parameters<typeof name>[0], Array<Record<string, string[]>>]> = [
        [[['CN', 'Fleet Root 2026'], ['O', 'Example']], [{ CN: ['Fleet Root 2026'] }, { O: ['Example'] }]],
        [[['CN', 'printer_1'], ['O', 'Ex']], [{ CN: ['printer_1'] }, { O: ['Ex'] }]],
        [[['CN', 'Drucker Büro 3'], ['OU', 'Etage 2'], ['L', 'Köln'], ['ST', 'NRW'], ['C', 'DE']], [{ CN: ['Drucker Büro 3'] }, { OU: ['Etage 2'] }, { L: ['Köln'] }, { ST: ['NRW'] }, { C: ['DE'] }]],
      ];
      for (const [rdns, json] of cases) {
        assert.equal(hex(name(rdns)), hex(new Uint8Array(new x509.Name(json).toArrayBuffer())));
      }
    });

    it('encodes serialNumber and C as PrintableString', () => {
      assert.equal(hex(name([['serialNumber', 'SN-0042']])), '30123110300e06035504051307534e2d30303432');
      assert.equal(hex(name([['C', 'JP']])), '300d310b3009060355040613024a50');
    });

    it('rejects values outside the profile', () => {
      assert.throws(() => name([['C', 'Germany']]), RangeError);
      assert.throws(() => name([['C', 'de']]), RangeError);
      assert.throws(() => name([['serialNumber', 'SN_1']]), RangeError);
      assert.throws(() => name([['CN', '']]), RangeError);
      assert.throws(() => name([['CN', 'a\0b']]), RangeError);
      assert.throws(() => name([['CN', 'x'.repeat(65)]]), RangeError);
      assert.doesNotThrow(() => name([['CN', 'ü'.repeat(64)]]));
      assert.throws(() => name([['E' as 'CN', 'x']]), RangeError);
    });
  });

  describe('against openssl asn1parse -genconf', () => {
    const tmp = new TmpDir();
    after(() => tmp.remove());

    it('produces the same bytes as OpenSSL for a structure using every encoder', () => {
      const long = Buffer.alloc(300, 0xab);
      const conf = [
        'asn1=SEQUENCE:top',
        '[top]',
        'i0=INTEGER:0', 'i1=INTEGER:127', 'i2=INTEGER:128', 'i3=INTEGER:-129', 'i4=INTEGER:0x0102030405060708090a',
        'o1=OID:2.5.4.3', 'o2=OID:1.2.840.113549.1.1.11', 'o3=OID:2.25.329800735698586629295641978511506172918',
        'b1=BOOLEAN:TRUE', 'b2=BOOLEAN:FALSE', 'n=NULL',
        'u=FORMAT:UTF8,UTF8String:Grüße aus Köln', 'p=PRINTABLESTRING:Fleet Root 2026', 'ia=IA5STRING:printer-1.example',
        't1=UTCTIME:491231235959Z', 't2=GENTIME:20500101000000Z',
        'x=EXPLICIT:3,INTEGER:2', 'im=IMPLICIT:2,IA5STRING:a.b',
        'os=FORMAT:HEX,OCTETSTRING:00ff10', 'bs=FORMAT:HEX,BITSTRING:cafe', 'bl=FORMAT:BITLIST,BITSTRING:0,2',
        'st=SET:s', `long=FORMAT:HEX,OCTETSTRING:${long.toString('hex')}`,
        '[s]', 'a=INTEGER:2', 'b=INTEGER:1', '',
      ].join('\n');
      const out = `${tmp.path}/g.der`;
      const r = openssl('asn1parse', '-genconf', tmp.file('g.cnf', conf), '-noout', '-out', out);
      assert.ok(r.ok, r.stderr);
      const mine = sequence(
        integer(0), integer(127), integer(128), integer(-129), integer(Buffer.from('0102030405060708090a', 'hex')),
        oid('2.5.4.3'), oid('1.2.840.113549.1.1.11'), oid('2.25.329800735698586629295641978511506172918'),
        boolean(true), boolean(false), nullValue(),
        utf8String('Grüße aus Köln'), printableString('Fleet Root 2026'), ia5String('printer-1.example'),
        time(new Date('2049-12-31T23:59:59Z')), time(new Date('2050-01-01T00:00:00Z')),
        explicit(3, integer(2)), implicit(2, ia5String('a.b')),
        octetString(Buffer.from('00ff10', 'hex')), bitString(Buffer.from('cafe', 'hex')), namedBits([0, 2]),
        set(integer(2), integer(1)), octetString(long),
      );
      assert.equal(hex(mine), hex(readFileSync(out)));
    });
  });
});
