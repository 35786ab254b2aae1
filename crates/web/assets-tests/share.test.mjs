// Unit tests of the share links' pure parts (expiry choices per kind, the fragment token,
// "2 of 5 views", the viewer's error outcomes, the create request) and of share.html's
// hygiene (no inline code, noindex, no referrer, only /assets/ files).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DEFAULT_LIMITS, expiryOptions, maxExpiry, offsiteBlocker, parseMaxViews, rangeText, shareRequest, viewsText,
} from '../assets/share-dialog.js';
import {
  isFinalReason, liveEndedText, openOutcome, parseShareToken, reasonHeading, shareRangeText, shareUrls,
} from '../assets/share.js';
import { CLOSE_ENDED, closeAction } from '../assets/live-proto.js';

const ASSETS = join(dirname(fileURLToPath(import.meta.url)), '..', 'assets');
const H = 3600;
const D = 86400;

test('expiry choices: filtered by the kind’s maximum, the default preselected', () => {
  const secs = (r) => r.options.map(([s]) => s);
  const clip = expiryOptions('clip', DEFAULT_LIMITS);
  assert.deepEqual(secs(clip), [H, 6 * H, D, 3 * D, 7 * D, 30 * D]);
  assert.equal(clip.selected, D);
  const live = expiryOptions('live', DEFAULT_LIMITS);
  assert.deepEqual(secs(live), [H, 6 * H, D]);
  assert.equal(live.selected, D);
  const off = expiryOptions('offsite', DEFAULT_LIMITS);
  assert.deepEqual(secs(off), [H, 6 * H, D, 3 * D, 7 * D]);
  // The current choice is kept when still allowed, else the default.
  assert.equal(expiryOptions('offsite', DEFAULT_LIMITS, 3 * D).selected, 3 * D);
  assert.equal(expiryOptions('offsite', DEFAULT_LIMITS, 30 * D).selected, D);
  // Other limits from the server: the minimum and a default that is not a choice.
  const l = { ...DEFAULT_LIMITS, min_expires_s: 6 * H, max_live_expires_s: 12 * H, default_expires_s: 2 * D };
  assert.deepEqual(secs(expiryOptions('live', l)), [6 * H]);
  assert.equal(expiryOptions('live', l).selected, 6 * H);
  assert.equal(expiryOptions('clip', l).selected, D);
  // Missing limits fall back to the defaults; the offsite maximum never exceeds the general one.
  assert.equal(maxExpiry('clip', null), 30 * D);
  assert.equal(maxExpiry('offsite', { max_expires_s: 3 * D }), 3 * D);
  assert.deepEqual(expiryOptions('live', { max_live_expires_s: 60 }), { options: [], selected: null });
});

test('views and ranges are formatted for people', () => {
  assert.equal(viewsText(2, 5), '2 of 5 views');
  assert.equal(viewsText(0, 1), '0 of 1 view');
  assert.equal(viewsText(1, null), '1 view');
  assert.equal(viewsText(3, undefined), '3 views');
  const fmt = (us) => new Date(us / 1000).toISOString().slice(0, 19).replace('T', ' ');
  const a = Date.UTC(2026, 10, 25, 23, 41, 39) * 1000;
  assert.equal(rangeText(a, a + 60e6, fmt), '2026-11-25 23:41:39 – 23:42:39');
  assert.equal(rangeText(a, a + 3600e6, fmt), '2026-11-25 23:41:39 – 2026-11-26 00:41:39');
  assert.equal(rangeText(null, null, fmt), 'live');
  assert.equal(shareRangeText({ kind: 'clip', start_us: a, end_us: a + 60e6 }, fmt), 'Recorded 2026-11-25 23:41:39 – 23:42:39');
  assert.equal(shareRangeText({ kind: 'live', start_us: null, end_us: null }, fmt), 'Live view');
});

test('an offsite clip is at most max_offsite_span_s long', () => {
  const t = (s) => ({ start_us: 0, end_us: s * 1e6 });
  assert.equal(offsiteBlocker(t(1800), DEFAULT_LIMITS), null);
  assert.match(offsiteBlocker(t(1801), DEFAULT_LIMITS), /at most 30 minutes/);
  assert.equal(offsiteBlocker(t(7200), { max_offsite_span_s: 7200 }), null);
});

test('the view limit must be a whole number of at least 1', () => {
  assert.equal(parseMaxViews(''), null);
  assert.equal(parseMaxViews('  '), null);
  assert.equal(parseMaxViews('5'), 5);
  assert.ok(Number.isNaN(parseMaxViews('0')));
  assert.ok(Number.isNaN(parseMaxViews('-1')));
  assert.ok(Number.isNaN(parseMaxViews('1.5')));
  assert.ok(Number.isNaN(parseMaxViews('1e3')));
});

test('the create request follows the API contract per kind', () => {
  const form = { expires_s: D, password: '', max_views: null, allow_download: true, label: ' insurer ', offsite: false };
  assert.deepEqual(shareRequest({ kind: 'clip', camera: 'front', stream: 'main', start_us: 1.4, end_us: 60e6 }, form), {
    kind: 'clip', camera: 'front', stream: 'main', start_us: 1, end_us: 60e6, expires_s: D,
    password: null, max_views: null, allow_download: true, label: 'insurer',
  });
  const off = shareRequest({ kind: 'clip', camera: 'front', stream: 'main', start_us: 1, end_us: 2 },
    { ...form, offsite: true, password: 'pw', max_views: 3 });
  assert.equal(off.kind, 'offsite');
  assert.equal(off.password, 'pw');
  assert.equal(off.max_views, 3);
  const live = shareRequest({ kind: 'live', camera: 'yard', stream: 'sub' }, { ...form, offsite: true });
  assert.deepEqual(live, {
    kind: 'live', camera: 'yard', stream: 'sub', expires_s: D, password: null, max_views: null, allow_download: false, label: 'insurer',
  });
});

test('the token comes from the fragment only', () => {
  const tok = 'Qx7_-abcDEF0123456789abcdefghijk';
  assert.equal(parseShareToken(`#${tok}`), tok);
  assert.equal(parseShareToken(`#/${tok}`), tok);
  assert.equal(parseShareToken(`#token=${tok}`), tok);
  assert.equal(parseShareToken(`#${tok}%20`), tok);
  assert.equal(parseShareToken(''), null);
  assert.equal(parseShareToken('#'), null);
  assert.equal(parseShareToken('#short'), null);
  assert.equal(parseShareToken('#<img src=x>'), null);
  assert.equal(parseShareToken('#%E0%A4%A'), null);
});

test('open/info outcomes: the server’s reason and message, a heading for each', () => {
  const ok = openOutcome(200, { id: 'abc', kind: 'clip' });
  assert.equal(ok.ok, true);
  assert.equal(ok.data.id, 'abc');
  assert.deepEqual(openOutcome(401, { error: 'this link needs a password', reason: 'password_required' }),
    { ok: false, reason: 'password_required', message: 'this link needs a password', retryAfter: null });
  assert.equal(openOutcome(410, { error: 'gone', reason: 'revoked' }).reason, 'revoked');
  assert.equal(openOutcome(410, null).reason, 'expired');
  assert.equal(openOutcome(404, null).reason, 'invalid');
  const rl = openOutcome(429, { error: 'too many attempts' }, 30);
  assert.equal(rl.reason, 'rate_limited');
  assert.equal(rl.retryAfter, 30);
  assert.equal(openOutcome(500, null).message, 'The recorder answered 500.');
  for (const r of ['invalid', 'password_required', 'wrong_password', 'expired', 'revoked', 'used_up', 'footage_deleted', 'rate_limited']) {
    assert.notEqual(reasonHeading(r), reasonHeading('something-else'), r);
  }
  assert.equal(reasonHeading('__proto__'), reasonHeading('x'));
  assert.ok(isFinalReason('revoked'));
  assert.ok(!isFinalReason('wrong_password'));
  assert.deepEqual(shareUrls('a b'), {
    clip: '/api/share/a%20b/clip.mp4', download: '/api/share/a%20b/clip.mp4?download=1', live: '/api/share/a%20b/live', info: '/api/share/a%20b/info',
  });
});

test('a live socket closed with 4410 is not reopened', () => {
  assert.equal(CLOSE_ENDED, 4410);
  assert.equal(closeAction(4410), 'end');
  assert.equal(closeAction(4404), 'slow');
  assert.equal(closeAction(1006), 'retry');
  assert.equal(closeAction(1000), 'retry');
  assert.equal(liveEndedText('share revoked'), 'This live view was ended by its owner.');
  assert.equal(liveEndedText('expired'), 'This live view has expired.');
  assert.equal(liveEndedText(''), 'This live view was ended by its owner or has expired.');
});

test('share.html: only /assets/ module and stylesheet, noindex, no referrer, no app links', () => {
  const html = readFileSync(join(ASSETS, 'share.html'), 'utf8');
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
  assert.equal(scripts.length, 1);
  assert.match(scripts[0][1], /type="module"/);
  assert.match(scripts[0][1], /src="\/assets\/share\.js"/);
  assert.equal(scripts[0][2].trim(), '');
  assert.doesNotMatch(html, /<style\b/i);
  assert.doesNotMatch(html, /\sstyle\s*=/i);
  assert.doesNotMatch(html, /\son[a-z]+\s*=/i);
  assert.doesNotMatch(html, /javascript:/i);
  assert.match(html, /<meta name="robots" content="noindex, nofollow">/);
  assert.match(html, /<meta name="referrer" content="no-referrer">/);
  // Every src/href is an /assets/ file that exists; no link into the app, no nav.
  for (const m of html.matchAll(/\s(?:src|href)="([^"]*)"/g)) {
    assert.match(m[1], /^\/assets\/[A-Za-z0-9_./-]+$/, m[1]);
    assert.ok(existsSync(join(ASSETS, m[1].slice(8))), m[1]);
  }
  assert.doesNotMatch(html, /<nav\b|<a\b/i);
  for (const id of ['share-title', 'share-message', 'share-valid', 'share-content']) assert.match(html, new RegExp(`id="${id}"`));
});

test('a reload finds the share id under a hash of the token, never the token itself', async () => {
  const { sessionKey } = await import('../assets/share.js');
  const tok = 'Qx7_-abcDEF0123456789abcdefghijk';
  const k = await sessionKey(tok);
  assert.match(k, /^vigil\.share\.[0-9a-f]{32}$/);
  assert.equal(k, await sessionKey(tok));
  assert.notEqual(k, await sessionKey(`${tok}x`));
  assert.ok(!k.includes(tok));
  assert.equal(await sessionKey(tok, null), null);
});
