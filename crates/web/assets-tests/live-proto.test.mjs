// Unit tests of the live protocol parsing and the player's pure logic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ClockOffset, HEADER_LEN, KIND_MEDIA, PtsMap, backoffMs, encodeBinary, findBox, fragmentDecodeTime,
  initTimescale, liveEdgeAction, mimeOf,
  parseBinary, parseText, percentile,
} from '../assets/live-proto.js';

test('binary header: kind, capture µs and pts are big-endian i64, payload follows', () => {
  const payload = new Uint8Array([0xde, 0xad, 0xbe, 0xef]);
  // 1_764_100_000_123_456 µs is a 2025 date: needs more than 32 bits.
  const msg = encodeBinary(1, 1_764_100_000_123_456, 8_100_000_000, payload);
  assert.equal(msg.byteLength, HEADER_LEN + 4);
  assert.equal(msg[0], 1);
  // 1_764_100_000_123_456 = 0x0006447089DB0A40 (big-endian on the wire).
  assert.deepEqual([...msg.slice(1, 9)], [0x00, 0x06, 0x44, 0x70, 0x89, 0xdb, 0x0a, 0x40]);
  const p = parseBinary(msg.buffer);
  assert.equal(p.kind, KIND_MEDIA);
  assert.equal(p.captureUs, 1_764_100_000_123_456);
  assert.equal(p.pts, 8_100_000_000);
  assert.deepEqual([...p.payload], [0xde, 0xad, 0xbe, 0xef]);
});

test('binary header bytes are exactly big-endian', () => {
  const bytes = new Uint8Array(HEADER_LEN + 1);
  bytes[0] = 0;
  bytes[8] = 0x01; // capture = 1
  bytes[16] = 0x02; // pts = 2
  bytes[15] = 0x01; // pts += 256
  bytes[17] = 0x42;
  const p = parseBinary(bytes.buffer);
  assert.equal(p.kind, 0);
  assert.equal(p.captureUs, 1);
  assert.equal(p.pts, 258);
  assert.equal(p.payload.length, 1);
  assert.equal(p.payload[0], 0x42);
});

test('a view into a larger buffer is parsed at its own offset', () => {
  const big = new Uint8Array(100);
  const msg = encodeBinary(1, 5, 6, new Uint8Array([9]));
  big.set(msg, 40);
  const p = parseBinary(big.subarray(40, 40 + msg.length));
  assert.equal(p.captureUs, 5);
  assert.equal(p.pts, 6);
  assert.deepEqual([...p.payload], [9]);
});

test('short or empty binary messages are rejected, not thrown on', () => {
  assert.equal(parseBinary(new ArrayBuffer(0)), null);
  assert.equal(parseBinary(new ArrayBuffer(16)), null);
  assert.notEqual(parseBinary(new ArrayBuffer(17)), null);
});

test('text messages: init and ping; garbage and hostile codecs ignored', () => {
  const init = parseText('{"type":"init","codec":"avc1.42C01E","width":640,"height":360,"server_time_us":1700000000000000}');
  assert.deepEqual(init, { type: 'init', codec: 'avc1.42C01E', width: 640, height: 360, serverTimeUs: 1700000000000000 });
  assert.equal(mimeOf(init.codec), 'video/mp4; codecs="avc1.42C01E"');
  assert.deepEqual(parseText('{"type":"ping","server_time_us":5}'), { type: 'ping', serverTimeUs: 5 });
  assert.equal(parseText('not json'), null);
  assert.equal(parseText('{"type":"init","codec":"avc1\\"; foo"}'), null);
  assert.equal(parseText('{"type":"other"}'), null);
  assert.equal(parseText('null'), null);
});

test('clock offset takes the largest sample (least transit delay)', () => {
  const c = new ClockOffset(3);
  assert.equal(c.ms, 0);
  c.add(10_000_000, 9_000); // server 10 000 ms, client 9 000 ms → +1000
  c.add(11_000_000, 10_050); // 50 ms transit → +950
  assert.equal(c.ms, 1000);
  c.add(12_000_000, 11_020);
  c.add(13_000_000, 12_010); // the +1000 sample has left the window
  assert.equal(c.ms, 990);
});

test('pts map finds the capture time from a media time with rounding slack', () => {
  const m = new PtsMap(3);
  m.set(90_000 * 100, 111); // 100 s
  m.set(90_000 * 100 + 6000, 222); // +66.7 ms
  assert.equal(m.lookup(100), 111);
  assert.equal(m.lookup(100.0666), 222);
  assert.equal(m.lookup(100.0675), 222);
  assert.equal(m.lookup(100.5), undefined);
  m.set(90_000 * 101, 333);
  m.set(90_000 * 102, 444); // evicts the oldest
  assert.equal(m.lookup(100), undefined);
  assert.equal(m.lookup(102), 444);
});

test('percentile is nearest-rank', () => {
  assert.ok(Number.isNaN(percentile([], 50)));
  const v = [];
  for (let i = 1; i <= 100; i++) v.push(101 - i);
  assert.equal(percentile(v, 50), 50);
  assert.equal(percentile(v, 95), 95);
  assert.equal(percentile(v, 100), 100);
  assert.equal(percentile([7], 95), 7);
  assert.equal(percentile([10, 20, 30, 40], 50), 20);
});

test('live edge: near → rate 1, behind → a bit faster, far → jump', () => {
  assert.deepEqual(liveEdgeAction(10.2, 10.0).rate, 1);
  assert.equal(liveEdgeAction(10.2, 10.0).jump, false);
  const slow = liveEdgeAction(10.5, 10.0);
  assert.equal(slow.jump, false);
  assert.ok(slow.rate > 1 && slow.rate < 1.2);
  assert.equal(liveEdgeAction(12.0, 10.0).jump, true);
});

test('reconnect back-off grows to 10 s with jitter', () => {
  assert.equal(backoffMs(0, () => 0.5), 500);
  assert.equal(backoffMs(1, () => 0.5), 1000);
  assert.equal(backoffMs(20, () => 0.5), 10000);
  assert.ok(backoffMs(0, () => 0) >= 400 && backoffMs(0, () => 1) <= 600);
});

// ISO BMFF helpers: box(type, ...bodies) with a 32-bit size.
function box(type, ...bodies) {
  const len = 8 + bodies.reduce((a, b) => a + b.length, 0);
  const out = new Uint8Array(len);
  new DataView(out.buffer).setUint32(0, len);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  let p = 8;
  for (const b of bodies) {
    out.set(b, p);
    p += b.length;
  }
  return out;
}
const bytes = (...xs) => new Uint8Array(xs);
const u32 = (v) => bytes(v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);

test('init segment timescale from moov/trak/mdia/mdhd (versions 0 and 1)', () => {
  const mdhd0 = box('mdhd', bytes(0, 0, 0, 0), u32(1), u32(2), u32(90000), u32(0), bytes(0, 0, 0, 0));
  const init = new Uint8Array([...box('ftyp', bytes(105, 115, 111, 109)), ...box('moov', box('mvhd', new Uint8Array(20)), box('trak', box('tkhd', new Uint8Array(8)), box('mdia', mdhd0)))]);
  assert.equal(initTimescale(init), 90000);
  const mdhd1 = box('mdhd', bytes(1, 0, 0, 0), new Uint8Array(16), u32(15360), new Uint8Array(8));
  assert.equal(initTimescale(box('moov', box('trak', box('mdia', mdhd1)))), 15360);
  assert.equal(initTimescale(box('moov', box('trak'))), null);
});

test('fragment decode time from moof/traf/tfdt (32 and 64 bit)', () => {
  const frag = new Uint8Array([...box('moof', box('mfhd', new Uint8Array(8)), box('traf', box('tfhd', new Uint8Array(8)), box('tfdt', bytes(1, 0, 0, 0), u32(1), u32(5)))), ...box('mdat', bytes(1, 2, 3))]);
  assert.equal(fragmentDecodeTime(frag), 2 ** 32 + 5);
  assert.equal(fragmentDecodeTime(box('moof', box('traf', box('tfdt', bytes(0, 0, 0, 0), u32(900000))))), 900000);
  assert.equal(findBox(frag, ['mdat'])[1] - findBox(frag, ['mdat'])[0], 3);
});

test('hostile box sizes never read out of bounds', () => {
  const bad = box('moof', box('traf'));
  new DataView(bad.buffer).setUint32(8, 0xffffff); // inner size far too big
  assert.equal(fragmentDecodeTime(bad), null);
  const tiny = box('moof');
  new DataView(tiny.buffer).setUint32(0, 3); // size below the header
  assert.equal(fragmentDecodeTime(tiny), null);
  assert.equal(fragmentDecodeTime(new Uint8Array(5)), null);
  const truncated = box('moof', box('traf', box('tfdt', bytes(1, 0, 0, 0))));
  assert.equal(fragmentDecodeTime(truncated), null);
});
