// Unit tests of the router's hash parsing, formatting and zone validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchRoute, parseHash } from '../assets/router.js';
import { dayRange, fmtBitrate, fmtBytes, fmtDuration, fromLocalInput, toLocalInput } from '../assets/format.js';
import { norm, validateZones } from '../assets/zones.js';

const ROUTES = [{ path: '' }, { path: 'camera/:name' }, { path: 'setup/:token' }, { path: 'events' }];

test('hash routes: params are decoded, the query is split off', () => {
  const { parts, query } = parseHash('#/camera/front%20door?t=123');
  assert.deepEqual(parts, ['camera', 'front door']);
  assert.equal(query.get('t'), '123');
  assert.deepEqual(matchRoute(ROUTES, parts).params, { name: 'front door' });
  assert.equal(matchRoute(ROUTES, parseHash('#/').parts).route.path, '');
  assert.equal(matchRoute(ROUTES, parseHash('').parts).route.path, '');
  assert.equal(matchRoute(ROUTES, parseHash('#/nope').parts), null);
  assert.deepEqual(matchRoute(ROUTES, parseHash('#/setup/AbC-12_x').parts).params, { token: 'AbC-12_x' });
  // A malformed escape is kept as is, not thrown.
  assert.deepEqual(parseHash('#/camera/%E0%A4%A').parts, ['camera', '%E0%A4%A']);
});

test('datetime-local values round-trip in local time', () => {
  const us = new Date(2026, 10, 25, 23, 41, 39).getTime() * 1000;
  assert.equal(toLocalInput(us), '2026-11-25T23:41:39');
  assert.equal(fromLocalInput('2026-11-25T23:41:39'), us);
  assert.equal(fromLocalInput('2026-11-25T23:41'), us - 39e6);
  assert.ok(Number.isNaN(fromLocalInput('')));
  assert.ok(Number.isNaN(fromLocalInput('garbage')));
  const [a, b] = dayRange('2026-11-25');
  assert.equal(a, new Date(2026, 10, 25).getTime() * 1000);
  assert.equal(b, new Date(2026, 10, 26).getTime() * 1000);
  assert.equal(dayRange('x'), null);
});

test('formatting of sizes, rates and durations', () => {
  assert.equal(fmtBytes(999), '999 B');
  assert.equal(fmtBytes(1_500_000_000), '1.50 GB');
  assert.equal(fmtBitrate(1_234_000), '1.23 Mbit/s');
  assert.equal(fmtBitrate(64_000), '64 kbit/s');
  assert.equal(fmtDuration(59), '59 s');
  assert.equal(fmtDuration(3725), '1 h 02 min');
  assert.equal(fmtDuration(90000), '1 d 1 h');
});

test('zones: names, duplicates and point counts are checked; coordinates clamped', () => {
  const ok = { name: 'drive_way-1', points: [[0, 0], [1, 0], [1, 1]] };
  assert.deepEqual(validateZones([ok]), []);
  assert.equal(validateZones([ok, ok]).length, 1);
  assert.equal(validateZones([{ name: 'bad name', points: ok.points }]).length, 1);
  assert.equal(validateZones([{ name: 'x', points: [[0, 0]] }]).length, 1);
  assert.equal(norm(-0.2), 0);
  assert.equal(norm(1.3), 1);
  assert.equal(norm(0.123456), 0.1235);
});
