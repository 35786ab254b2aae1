// Drives headless Chromium (chromedriver, W3C WebDriver over HTTP) through the UI served by
// mock-server.mjs: setup → grid playing with latency stats → camera drop and recovery →
// timeline playback and download link → other pages → logout → login throttling.
// Screenshots and a JSON report go to $OUT (default /tmp/vigil-ui-mock/shots).
//
//   node crates/web/assets-tests/mock-server.mjs 8099 &
//   node crates/web/assets-tests/drive.mjs http://127.0.0.1:8099

import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import assert from 'node:assert/strict';

const BASE = process.argv[2] || 'http://127.0.0.1:8099';
const OUT = process.env.OUT || '/tmp/vigil-ui-mock/shots';
const WD = 'http://127.0.0.1:9517';
mkdirSync(OUT, { recursive: true });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const EL = 'element-6066-11e4-a52e-4f735466cecf';

const driver = spawn('chromedriver', ['--port=9517'], { stdio: 'ignore' });
process.on('exit', () => driver.kill());
await sleep(800);

async function wd(method, path, body) {
  const r = await fetch(`${WD}${path}`, { method, headers: { 'Content-Type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
  const j = await r.json();
  if (!r.ok) throw new Error(`${method} ${path}: ${JSON.stringify(j.value).slice(0, 400)}`);
  return j.value;
}
const s = await wd('POST', '/session', {
  capabilities: {
    alwaysMatch: {
      browserName: 'chrome',
      'goog:chromeOptions': { args: ['--headless=new', '--no-sandbox', `--window-size=${process.env.WINDOW || '1280,900'}`, '--autoplay-policy=no-user-gesture-required'] },
      'goog:loggingPrefs': { browser: 'ALL' },
    },
  },
});
const sid = s.sessionId;
const S = (p) => `/session/${sid}${p}`;
const go = (hash) => wd('POST', S('/url'), { url: `${BASE}/${hash}` });
const js = (script, ...args) => wd('POST', S('/execute/sync'), { script, args });
const find = async (css, timeout = 8000) => {
  const end = Date.now() + timeout;
  for (;;) {
    try {
      return (await wd('POST', S('/element'), { using: 'css selector', value: css }))[EL];
    } catch (e) {
      if (Date.now() > end) throw new Error(`not found: ${css}`);
      await sleep(100);
    }
  }
};
const type = async (css, text) => wd('POST', S(`/element/${await find(css)}/value`), { text });
const click = async (css) => wd('POST', S(`/element/${await find(css)}/click`), {});
const shot = async (name) => {
  const b64 = await wd('GET', S('/screenshot'));
  writeFileSync(`${OUT}/${name}.png`, Buffer.from(b64, 'base64'));
};
const logs = async () => {
  try {
    return await wd('POST', S('/se/log'), { type: 'browser' });
  } catch {
    return [];
  }
};
const report = {};
let failed = false;
const check = (name, cond, detail) => {
  report[name] = { ok: !!cond, detail };
  if (!cond) failed = true;
  console.log(`${cond ? 'ok  ' : 'FAIL'} ${name} ${detail === undefined ? '' : JSON.stringify(detail)}`);
};

try {
  // Setup.
  await go('#/setup/TESTTOKEN');
  await type('#setup-form [name=username]', '');
  await type('#setup-form [name=password]', 'correct horse');
  await type('#setup-form [name=password2]', 'correct horse');
  await click('#setup-form button[type=submit]');
  await find('#grid .tile[data-camera="front"] video');
  check('setup → grid', true);

  // Grid plays: video time advances, stats fill up.
  await sleep(6000);
  const g = await js(`return [...document.querySelectorAll('#grid .tile')].map(t => ({
      cam: t.dataset.camera, t: t.querySelector('video').currentTime, paused: t.querySelector('video').paused,
      stats: t.querySelector('.stats').textContent, msg: t.querySelector('.player-msg').textContent,
      videoCam: t.querySelector('video').getAttribute('data-camera')}))`);
  const st = await js('return JSON.parse(JSON.stringify(window.__vigil.stats))');
  console.log(JSON.stringify(g, null, 1));
  const front = st.front || {};
  const sorted = [...(front.latencies || [])].sort((a, b) => a - b);
  const p = (q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  check('front playing', g.find((x) => x.cam === 'front')?.t > 1, g.find((x) => x.cam === 'front'));
  check('yard playing', g.find((x) => x.cam === 'yard')?.t > 1);
  check('hostile name shown as text', g.some((x) => x.cam === '<img src=x onerror=alert(1)>'));
  check('stats object', front.frames > 30 && front.firstFrameMs > 0 && front.latencies.length > 30,
    { frames: front.frames, firstFrameMs: Math.round(front.firstFrameMs), n: (front.latencies || []).length, p50: p(0.5), p95: p(0.95) });
  check('latency p95 < 500 ms', p(0.95) < 500, p(0.95));
  await shot('grid');

  // Drop every live socket: players reconnect by themselves.
  const before = (await js('return window.__vigil.stats.front.frames'));
  await fetch(`${BASE}/mock/drop`, { method: 'POST' });
  await sleep(400);
  const msgDuring = await js(`return document.querySelector('.tile[data-camera="front"] .player-msg').textContent`);
  await sleep(4000);
  const after = await js('return window.__vigil.stats.front.frames');
  const msgAfter = await js(`return document.querySelector('.tile[data-camera="front"] .player-msg').textContent`);
  check('reconnect after drop', after > before + 20 && msgAfter === '', { before, after, msgDuring, msgAfter });

  // Pictures stop with the socket open: "waiting for the camera…", then a new init resumes.
  await fetch(`${BASE}/mock/pause?on=1`, { method: 'POST' });
  await sleep(4500);
  const waiting = await js(`return document.querySelector('.tile[data-camera="front"] .player-msg').textContent`);
  await fetch(`${BASE}/mock/pause?on=0`, { method: 'POST' });
  const f0 = await js('return window.__vigil.stats.front.frames');
  await sleep(3000);
  const f1 = await js('return window.__vigil.stats.front.frames');
  const resumed = await js(`return document.querySelector('.tile[data-camera="front"] .player-msg').textContent`);
  check('stall shown, then resumes after a new init', /waiting/.test(waiting) && f1 > f0 + 20 && resumed === '', { waiting, f0, f1, resumed });
  const st2 = await js('return window.__vigil.stats.front.latencies.slice(-30)');
  const s2 = [...st2].sort((a, b) => a - b);
  check('latency after resume', s2.length > 20 && s2[Math.floor(s2.length * 0.95)] < 500, s2[Math.floor(s2.length * 0.95)]);

  // Camera page.
  await go('#/camera/front');
  await find('.player video[data-camera="front"]');
  await sleep(3000);
  const cam = await js(`const v = document.querySelector('.player video'); return {t: v.currentTime, w: v.videoWidth, stats: document.querySelector('.player .stats').textContent}`);
  check('camera page plays', cam.t > 0.5 && cam.w === 320, cam);
  await shot('camera');

  // Timeline: click 3/4 of the way → plays from there.
  await go('#/timeline/front');
  const tl = await find('#timeline');
  await sleep(800);
  const attrs = await js(`const c = document.getElementById('timeline'); const r = c.getBoundingClientRect(); return {s: +c.dataset.startUs, e: +c.dataset.endUs, w: r.width}`);
  check('timeline window attrs', attrs.e > attrs.s, attrs);
  await wd('POST', S('/actions'), { actions: [{ type: 'pointer', id: 'm', parameters: { pointerType: 'mouse' }, actions: [
    { type: 'pointerMove', origin: { [EL]: tl }, x: Math.round(attrs.w * 0.25), y: 0 },
    { type: 'pointerDown', button: 0 }, { type: 'pointerUp', button: 0 }] }] });
  await sleep(2500);
  const pb = await js(`const v = document.getElementById('playback'); return {src: v.currentSrc, t: v.currentTime, paused: v.paused, err: v.error && v.error.code}`);
  const q = new URL(pb.src || 'http://x/').searchParams;
  const expect = attrs.s + 0.75 * (attrs.e - attrs.s);
  check('playback from click', pb.t > 0.5 && Math.abs(Number(q.get('start_us')) - expect) < (attrs.e - attrs.s) * 0.01, { pb, expect });
  await js(`const s = document.getElementById('speed'); s.value = '4'; s.dispatchEvent(new Event('change'))`);
  await sleep(300);
  const rate = await js(`return document.getElementById('playback').playbackRate`);
  check('speed 4x', rate === 4, rate);
  const dl = await js(`return {href: document.getElementById('download').href, a: document.getElementById('range-start').value, b: document.getElementById('range-end').value}`);
  check('download link', /export\.mp4\?.*download=1/.test(dl.href), dl);
  await shot('timeline');

  for (const page of ['events', 'cameras', 'system', 'account', 'users']) {
    await go(`#/${page}`);
    await sleep(1200);
    await shot(page);
    if (page === 'system') {
      const cloud = await js(`return document.getElementById('cloud-status').textContent`);
      check('cloud status shows the backlog and the loss', /3 parts/.test(cloud) && /2 files/.test(cloud), cloud);
    }
  }
  // Cameras: open the editor of yard, save unchanged (password key absent).
  await go('#/cameras');
  await click('tr[data-camera="yard"] td.actions button');
  await sleep(800);
  await shot('camera-edit');
  await js(`document.querySelector('.zones-editor').scrollIntoView()`);
  await sleep(500);
  await shot('zones');
  // Draw a mask: three clicks on the snapshot, then save; the PUT carries it (and no password).
  await js(`[...document.querySelectorAll('.zones-editor button')].find(b => b.textContent === 'Add mask').click()`);
  const zc = await find('.zones-editor canvas');
  const zr = await js(`const r = document.querySelector('.zones-editor canvas').getBoundingClientRect(); return {w: r.width, h: r.height}`);
  for (const [fx, fy] of [[0.6, 0.6], [0.9, 0.6], [0.9, 0.9]]) {
    await wd('POST', S('/actions'), { actions: [{ type: 'pointer', id: 'z', parameters: { pointerType: 'mouse' }, actions: [
      { type: 'pointerMove', origin: { [EL]: zc }, x: Math.round((fx - 0.5) * zr.w), y: Math.round((fy - 0.5) * zr.h) },
      { type: 'pointerDown', button: 0 }, { type: 'pointerUp', button: 0 }] }] });
  }
  await shot('zones-drawn');
  await click('#camera-form button[type=submit]');
  await sleep(800);
  const put = await (await fetch(`${BASE}/mock/last-put`)).json();
  const mask = put && put.motion.zones.find((z) => z.kind === 'mask');
  check('zone drawn and saved', put && !('password' in put) && mask && mask.points.length === 3
    && Math.abs(mask.points[0][0] - 0.6) < 0.02 && Math.abs(mask.points[2][1] - 0.9) < 0.02, put && put.motion.zones);

  // Logout, then throttled login.
  await click('#logout');
  await find('#login-form');
  for (let i = 0; i < 4; i++) {
    await type('#login-form [name=username]', 'admin');
    await type('#login-form [name=password]', 'wrong');
    await click('#login-form button[type=submit]');
    await sleep(300);
  }
  const loginErr = await js(`return document.getElementById('login-error').textContent`);
  check('429 message', /too many attempts, wait \d+ s/i.test(loginErr), loginErr);
  await shot('login');

  const l = await logs();
  const bad = l.filter((x) => x.level === 'SEVERE' && !/ 40[13] | 429 |favicon/.test(x.message));
  check('no console errors', bad.length === 0, bad.slice(0, 5));
} catch (e) {
  failed = true;
  console.error(e);
  try {
    await shot('failure');
  } catch {
    // no screenshot
  }
} finally {
  writeFileSync(`${OUT}/report.json`, JSON.stringify(report, null, 1));
  await wd('DELETE', S('')).catch(() => {});
  driver.kill();
}
process.exit(failed ? 1 : 0);
