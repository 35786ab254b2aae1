// Unit tests of the timeline's time ↔ x mapping, zoom and ticks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_SPAN_US, MIN_SPAN_US, panWindow, playableFrom, tickStep, ticks, timeToX, xToTime, zoomWindow,
} from '../assets/timeline-math.js';

const S = 1_700_000_000_000_000;
const E = S + 3600e6;

test('x ↔ time is linear over the width and round-trips', () => {
  assert.equal(xToTime(0, 1000, S, E), S);
  assert.equal(xToTime(1000, 1000, S, E), E);
  assert.equal(xToTime(250, 1000, S, E), S + 900e6);
  for (const x of [0, 1, 333, 999.5]) {
    assert.ok(Math.abs(timeToX(xToTime(x, 1000, S, E), 1000, S, E) - x) < 1e-6);
  }
  assert.equal(xToTime(10, 0, S, E), S);
});

test('zoom keeps the anchor in place and clamps the span', () => {
  const anchor = S + 900e6; // a quarter in
  const [s, e] = zoomWindow(S, E, 0.5, anchor);
  assert.equal(e - s, 1800e6);
  assert.ok(Math.abs((anchor - s) / (e - s) - 0.25) < 1e-9);
  const [s2, e2] = zoomWindow(S, S + 2 * MIN_SPAN_US, 0.01, S);
  assert.equal(e2 - s2, MIN_SPAN_US);
  const [s3, e3] = zoomWindow(S, E, 1e9);
  assert.equal(e3 - s3, MAX_SPAN_US);
});

test('pan moves by a fraction of the span', () => {
  assert.deepEqual(panWindow(S, E, 0.5), [S + 1800e6, E + 1800e6]);
  assert.deepEqual(panWindow(S, E, -0.1), [S - 360e6, E - 360e6]);
});

test('tick steps keep labels apart and ticks align on local time', () => {
  assert.equal(tickStep(3600e6, 1000, 90), 600e6); // 1 h over 1000 px → 10 min
  assert.equal(tickStep(600e6, 1000, 90), 60e6);
  assert.equal(tickStep(86400e6, 800, 90), 3 * 3600e6);
  assert.equal(tickStep(7 * 86400e6, 800, 90), 86400e6);
  // UTC+2 (offset −120 min): hour ticks at local whole hours.
  const t = ticks(0, 3 * 3600e6, 3600e6, -120);
  assert.deepEqual(t, [0, 3600e6, 7200e6, 10800e6]);
  const d = ticks(0, 2 * 86400e6, 86400e6, -120); // local midnight = 22:00 UTC
  assert.deepEqual(d, [86400e6 - 7200e6, 2 * 86400e6 - 7200e6]);
});

test('a click in a gap plays from the next recorded range', () => {
  const ranges = [{ start_us: 100, end_us: 200 }, { start_us: 500, end_us: 900 }];
  assert.equal(playableFrom(ranges, 150), 150);
  assert.equal(playableFrom(ranges, 300), 500);
  assert.equal(playableFrom(ranges, 50), 100);
  assert.equal(playableFrom(ranges, 950), null);
});
