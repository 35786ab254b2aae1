// A stand-in for vigil-web to try the UI in a browser without the Rust server: serves
// crates/web/assets with the real CSP, a small in-memory API (setup, login with 429, CSRF
// check, cameras, recordings, export, events, users, sessions, tokens, system) and the live
// WebSocket protocol fed from a fragmented MP4 made by ffmpeg (one frame per fragment,
// timescale 90 kHz). Not embedded, not shipped.
//
//   node crates/web/assets-tests/mock-server.mjs [port]     (needs ffmpeg)
//   POST /mock/drop closes every live socket (reconnect test); POST /mock/pause?on=1|0 stops
//   and resumes the pictures with the socket open (camera offline, then a new init).

import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, createReadStream } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ASSETS = join(HERE, '..', 'assets');
const WORK = process.env.MOCK_DIR || '/tmp/vigil-ui-mock';
const PORT = Number(process.argv[2] || 8099);
const FPS = 15;
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

// ---------------------------------------------------------------- media fixtures
mkdirSync(WORK, { recursive: true });
const ff = (args) => execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...args]);
const LIVE = join(WORK, 'live.mp4');
const REC = join(WORK, 'rec.mp4');
const SNAP = join(WORK, 'snap.jpg');
if (!existsSync(LIVE)) {
  ff(['-f', 'lavfi', '-i', `testsrc=size=320x180:rate=${FPS}`, '-t', '20', '-c:v', 'libx264', '-profile:v', 'baseline',
    '-pix_fmt', 'yuv420p', '-g', String(FPS), '-keyint_min', String(FPS), '-sc_threshold', '0', '-bf', '0',
    '-video_track_timescale', '90000', '-movflags', 'frag_every_frame+empty_moov+default_base_moof', '-f', 'mp4', LIVE]);
}
if (!existsSync(REC)) {
  ff(['-f', 'lavfi', '-i', `testsrc=size=320x180:rate=${FPS}`, '-t', '600', '-c:v', 'libx264', '-preset', 'ultrafast',
    '-g', '30', '-pix_fmt', 'yuv420p', '-movflags', '+faststart', REC]);
}
if (!existsSync(SNAP)) ff(['-f', 'lavfi', '-i', 'testsrc=size=320x180', '-frames:v', '1', SNAP]);

/** Top-level boxes of an MP4: [{type, start, end}]. */
function boxes(buf, start = 0, end = buf.length) {
  const out = [];
  let p = start;
  while (p + 8 <= end) {
    let size = buf.readUInt32BE(p);
    const type = buf.toString('latin1', p + 4, p + 8);
    if (size === 1) size = Number(buf.readBigUInt64BE(p + 8));
    if (size < 8 || p + size > end) break;
    out.push({ type, start: p, end: p + size });
    p += size;
  }
  return out;
}
function findTfdt(buf, moof) {
  for (const b of boxes(buf, moof.start + 8, moof.end)) {
    if (b.type !== 'traf') continue;
    for (const c of boxes(buf, b.start + 8, b.end)) if (c.type === 'tfdt') return c.start;
  }
  return -1;
}
const liveBuf = readFileSync(LIVE);
const top = boxes(liveBuf);
const initSeg = Buffer.concat(top.filter((b) => b.type === 'ftyp' || b.type === 'moov').map((b) => liveBuf.subarray(b.start, b.end)));
const frags = [];
for (let i = 0; i < top.length; i++) {
  if (top[i].type === 'moof' && top[i + 1] && top[i + 1].type === 'mdat') {
    frags.push(Buffer.from(liveBuf.subarray(top[i].start, top[i + 1].end)));
  }
}
const avcC = liveBuf.indexOf('avcC', 0, 'latin1');
const codec = `avc1.${liveBuf.subarray(avcC + 5, avcC + 8).toString('hex').toUpperCase()}`;
console.log(`live fixture: ${frags.length} fragments, codec ${codec}`);

const T0_US = Date.now() * 1000; // "camera" start
const PTS0 = 90000 * 1000;

/** Fragment n (global frame index): patched tfdt = pts. */
function fragment(n) {
  const f = Buffer.from(frags[n % frags.length]);
  const moof = boxes(f)[0];
  const t = findTfdt(f, moof);
  const pts = PTS0 + Math.round((n * 90000) / FPS);
  if (t >= 0) {
    const version = f[t + 8];
    if (version === 1) f.writeBigUInt64BE(BigInt(pts), t + 12);
    else f.writeUInt32BE(pts >>> 0, t + 12);
  }
  return { data: f, pts, captureUs: T0_US + Math.round((n * 1e6) / FPS) };
}

function header(kind, captureUs, pts, payload) {
  const h = Buffer.alloc(17);
  h[0] = kind;
  h.writeBigInt64BE(BigInt(captureUs), 1);
  h.writeBigInt64BE(BigInt(pts), 9);
  return Buffer.concat([h, payload]);
}

// ---------------------------------------------------------------- websocket (RFC 6455)
function wsFrame(opcode, payload) {
  const len = payload.length;
  let head;
  if (len < 126) head = Buffer.from([0x80 | opcode, len]);
  else if (len < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | opcode;
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, payload]);
}
const liveSockets = new Set();
const mock = { paused: false };

function serveLive(req, socket, camera) {
  const key = req.headers['sec-websocket-key'];
  const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  socket.setNoDelay(true);
  liveSockets.add(socket);
  const send = (op, p) => { if (!socket.destroyed) socket.write(wsFrame(op, p)); };
  send(1, Buffer.from(JSON.stringify({ type: 'init', codec, width: 320, height: 180, server_time_us: Date.now() * 1000 })));
  send(2, header(0, Date.now() * 1000, PTS0, initSeg));
  // The newest key frame and the rest of its GOP at once, then live.
  const now = Math.floor(((Date.now() * 1000 - T0_US) * FPS) / 1e6);
  let n = now - (now % FPS);
  for (; n <= now; n++) {
    const f = fragment(n);
    send(2, header(1, f.captureUs, f.pts, f.data));
  }
  let wasPaused = false;
  const timer = setInterval(() => {
    const upto = Math.floor(((Date.now() * 1000 - T0_US) * FPS) / 1e6);
    if (mock.paused) {
      wasPaused = true;
      return;
    }
    if (wasPaused) {
      // Like a camera reconnect: the timeline jumped, so a new init, from a key frame.
      wasPaused = false;
      send(1, Buffer.from(JSON.stringify({ type: 'init', codec, width: 320, height: 180, server_time_us: Date.now() * 1000 })));
      send(2, header(0, Date.now() * 1000, PTS0, initSeg));
      n = upto - (upto % FPS);
    }
    for (; n <= upto; n++) {
      const f = fragment(n);
      send(2, header(1, f.captureUs, f.pts, f.data));
    }
  }, 5);
  const ping = setInterval(() => send(1, Buffer.from(JSON.stringify({ type: 'ping', server_time_us: Date.now() * 1000 }))), 2000);
  const end = () => {
    clearInterval(timer);
    clearInterval(ping);
    liveSockets.delete(socket);
  };
  socket.on('close', end);
  socket.on('error', end);
  socket.on('data', () => {}); // client frames ignored
  void camera;
}

// ---------------------------------------------------------------- API state
const state = {
  setupToken: 'TESTTOKEN',
  users: [],
  sessions: new Map(), // id → {username, csrf, created_us, last_seen_us}
  fails: 0,
  lockUntil: 0,
  cameras: [
    { name: 'front', url: 'rtsp://127.0.0.1:8554/front', sub_url: 'rtsp://127.0.0.1:8554/front_sub', username: 'cam', has_password: true, transport: 'tcp', audio: true, max_age_s: null, event_max_age_s: null, record: { mode: 'continuous' }, motion: { enabled: true, fps: 5, sensitivity: 50, min_area_pct: 0.5, min_duration_s: 0.4, cooldown_s: 2, zones: [] }, source: 'ui' },
    { name: 'yard', url: 'rtsp://127.0.0.1:8554/yard', sub_url: null, username: null, has_password: false, transport: 'tcp', audio: true, max_age_s: 604800, event_max_age_s: null, record: { mode: 'motion', pre_roll_s: 5, post_roll_s: 10 }, motion: { enabled: true, fps: 5, sensitivity: 60, min_area_pct: 0.5, min_duration_s: 0.4, cooldown_s: 2, zones: [{ name: 'gate', kind: 'zone', points: [[0.1, 0.1], [0.5, 0.1], [0.5, 0.6]] }] }, source: 'ui' },
    { name: '<img src=x onerror=alert(1)>', url: 'rtsp://127.0.0.1:8554/x', sub_url: null, username: null, has_password: false, transport: 'tcp', audio: false, max_age_s: null, event_max_age_s: null, record: { mode: 'continuous' }, motion: { enabled: false, fps: 5, sensitivity: 50, min_area_pct: 0.5, min_duration_s: 0.4, cooldown_s: 2, zones: [] }, source: 'config' },
  ],
  tokens: [],
  audit: [],
};
const status = (name) => ({
  name,
  streams: [
    { stream: 'main', state: name.startsWith('<') ? 'offline' : 'streaming', reason: name.startsWith('<') ? 'connection refused' : null, codec: 'h264', width: 320, height: 180, fps: 15, bitrate_bps: 250000, last_frame_us: Date.now() * 1000 - 50000 },
  ],
  motion_active: name === 'yard',
});
const camJson = (c) => ({ ...c, status: status(c.name) });
const nowUs = () => Date.now() * 1000;

function send(res, code, body, headers = {}) {
  const data = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', ...headers });
  res.end(data);
}
function cookieSession(req) {
  const m = /(?:^|;\s*)vigil_session=([^;]+)/.exec(req.headers.cookie || '');
  return m ? state.sessions.get(m[1]) : undefined;
}
function newSession(res, username) {
  const id = randomBytes(12).toString('hex');
  state.sessions.set(id, { id, username, csrf: randomBytes(12).toString('hex'), created_us: nowUs(), last_seen_us: nowUs() });
  const u = state.users.find((x) => x.username === username);
  send(res, 200, { username, role: u.role }, { 'Set-Cookie': `vigil_session=${id}; HttpOnly; SameSite=Strict; Path=/` });
}
async function body(req) {
  let s = '';
  for await (const c of req) s += c;
  return s ? JSON.parse(s) : {};
}

async function api(req, res, url) {
  const p = url.pathname;
  const m = req.method;
  if (p === '/api/setup' && m === 'GET') return send(res, 200, { needed: state.users.length === 0 });
  if (p === '/api/setup' && m === 'POST') {
    const b = await body(req);
    if (state.users.length) return send(res, 409, { error: 'already set up' });
    if (b.token !== state.setupToken) return send(res, 403, { error: 'bad token' });
    state.users.push({ username: b.username, password: b.password, role: 'admin', cameras: null });
    return newSession(res, b.username);
  }
  if (p === '/api/login' && m === 'POST') {
    const b = await body(req);
    if (Date.now() < state.lockUntil) {
      return send(res, 429, { error: 'too many attempts' }, { 'Retry-After': String(Math.ceil((state.lockUntil - Date.now()) / 1000)) });
    }
    const u = state.users.find((x) => x.username === b.username && x.password === b.password);
    if (!u) {
      state.fails++;
      if (state.fails >= 3) state.lockUntil = Date.now() + 5000;
      return send(res, 401, { error: 'wrong user name or password' });
    }
    state.fails = 0;
    return newSession(res, u.username);
  }
  const sess = cookieSession(req);
  if (!sess) return send(res, 401, { error: 'login required' });
  const user = state.users.find((x) => x.username === sess.username);
  if (m !== 'GET' && req.headers['x-csrf-token'] !== sess.csrf) return send(res, 403, { error: 'bad CSRF token' });
  sess.last_seen_us = nowUs();
  if (p === '/api/session') return send(res, 200, { username: user.username, role: user.role, cameras: user.cameras, csrf_token: sess.csrf });
  if (p === '/api/logout') {
    state.sessions.delete(sess.id);
    return send(res, 204);
  }
  if (p === '/api/cameras' && m === 'GET') return send(res, 200, state.cameras.map(camJson));
  if (p === '/api/cameras' && m === 'POST') {
    const b = await body(req);
    if (b.status || b.has_password !== undefined) return send(res, 400, { error: 'unknown field' });
    state.cameras.push({ ...b, has_password: !!b.password, password: undefined, source: 'ui' });
    return send(res, 201, {});
  }
  if (p === '/api/cameras/test') {
    const b = await body(req);
    return b.url.includes('bad') ? send(res, 422, { error: 'connection refused' }) : send(res, 200, { codec: 'h264', width: 1920, height: 1080, audio: true });
  }
  let mm = /^\/api\/cameras\/([^/]+)(\/.*)?$/.exec(p);
  if (mm) {
    const name = decodeURIComponent(mm[1]);
    const cam = state.cameras.find((c) => c.name === name);
    if (!cam) return send(res, 404, { error: 'no such camera' });
    const sub = mm[2] || '';
    if (sub === '' && m === 'GET') return send(res, 200, camJson(cam));
    if (sub === '' && m === 'PUT') {
      const b = await body(req);
      if (b.status || b.has_password !== undefined) return send(res, 400, { error: 'unknown field' });
      Object.assign(cam, b, { has_password: b.password ? true : cam.has_password, password: undefined });
      mock.lastPut = b;
      return send(res, 200, {});
    }
    if (sub === '' && m === 'DELETE') {
      state.cameras = state.cameras.filter((c) => c !== cam);
      return send(res, 204);
    }
    if (sub === '/snapshot.jpg') {
      res.writeHead(200, { 'Content-Type': 'image/jpeg' });
      return res.end(readFileSync(SNAP));
    }
    if (sub === '/recordings') {
      const n = nowUs();
      return send(res, 200, {
        ranges: [{ start_us: n - 7200e6, end_us: n - 1800e6 }, { start_us: n - 1200e6, end_us: n - 2e6 }],
        gaps: [{ start_us: n - 1800e6, end_us: n - 1200e6, reason: 'camera offline' }],
      });
    }
    if (sub === '/export.mp4') return serveFile(req, res, REC, 'video/mp4', url.searchParams.get('download') === '1');
  }
  if (p === '/api/events') {
    const n = nowUs();
    const cam = url.searchParams.get('camera');
    const evs = [0, 1, 2, 3].map((i) => ({ id: 10 + i, camera: i % 2 ? 'yard' : 'front', zones: i % 2 ? ['gate'] : [], start_us: n - (300 + i * 400) * 1e6, end_us: n - (290 + i * 400) * 1e6, peak_score: 0.12 * (i + 1), bbox: { x: 0.1, y: 0.2, w: 0.3, h: 0.3 }, has_thumbnail: i !== 3 }));
    return send(res, 200, evs.filter((e) => !cam || e.camera === cam));
  }
  if ((mm = /^\/api\/events\/(\d+)\/thumbnail.jpg$/.exec(p))) {
    res.writeHead(200, { 'Content-Type': 'image/jpeg' });
    return res.end(readFileSync(SNAP));
  }
  if (p === '/api/system') {
    return send(res, 200, { version: '0.0.0-mock', uptime_s: 4242, storage: { used_bytes: 12e9, free_bytes: 80e9, total_bytes: 120e9, max_bytes: 50e9 }, cameras: state.cameras.map((c) => status(c.name)), alerts: { mqtt: { connected: false, error: 'connection refused', queued: 3 }, webhooks: [{ url: 'https://example/hook', ok: 12, failed: 1 }] }, cloud: { endpoint: 'https://s3.eu-central-003.backblazeb2.com', bucket: 'vigil-home', prefix: 'house', recipients: 2, streams: ['front/main', 'yard/main'], pending_parts: 3, pending_bytes: 41e6, oldest_pending_us: Date.now() * 1000 - 95e6, uploaded_parts: 2880, uploaded_bytes: 41e9, last_upload_us: Date.now() * 1000 - 4e6, last_error: null, lost_files: 2, lost_bytes: 60e6, max_upload_rate: 2e6, retention_s: 90 * 86400 } });
  }
  if (p === '/api/sessions') return send(res, 200, [...state.sessions.values()].map((s) => ({ id: s.id, created_us: s.created_us, last_seen_us: s.last_seen_us, address: '127.0.0.1', user_agent: 'Chromium', current: s === sess, username: s.username })));
  if ((mm = /^\/api\/sessions\/(.+)$/.exec(p))) {
    state.sessions.delete(mm[1]);
    return send(res, 204);
  }
  if (p === '/api/account/password') {
    const b = await body(req);
    if (b.current !== user.password) return send(res, 403, { error: 'the current password is wrong' });
    user.password = b.new;
    return send(res, 204);
  }
  if (p === '/api/users' && m === 'GET') return send(res, 200, state.users.map((u) => ({ username: u.username, role: u.role, cameras: u.cameras })));
  if (p === '/api/users' && m === 'POST') {
    const b = await body(req);
    state.users.push({ ...b });
    return send(res, 201, b);
  }
  if ((mm = /^\/api\/users\/(.+)$/.exec(p))) {
    const u = state.users.find((x) => x.username === decodeURIComponent(mm[1]));
    if (m === 'DELETE') state.users = state.users.filter((x) => x !== u);
    else Object.assign(u, await body(req));
    return send(res, 200, {});
  }
  if (p === '/api/tokens' && m === 'GET') return send(res, 200, state.tokens);
  if (p === '/api/tokens' && m === 'POST') {
    const b = await body(req);
    const t = { id: randomBytes(4).toString('hex'), name: b.name, username: b.username || user.username, created_us: nowUs(), last_used_us: null };
    state.tokens.push(t);
    return send(res, 201, { ...t, token: `vigil_${randomBytes(16).toString('hex')}` });
  }
  if (p.startsWith('/api/tokens/')) {
    state.tokens = state.tokens.filter((t) => t.id !== p.split('/').pop());
    return send(res, 204);
  }
  if (p === '/api/audit') return send(res, 200, [{ time_us: nowUs(), username: 'admin', address: '127.0.0.1', action: 'login', detail: '' }]);
  return send(res, 404, { error: 'not found' });
}

function serveFile(req, res, file, type, download) {
  const size = statSync(file).size;
  const headers = { 'Content-Type': type, 'Accept-Ranges': 'bytes' };
  if (download) headers['Content-Disposition'] = 'attachment; filename="export.mp4"';
  const r = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range || '');
  if (r) {
    const start = r[1] ? Number(r[1]) : size - Number(r[2]);
    const end = r[1] && r[2] ? Math.min(Number(r[2]), size - 1) : size - 1;
    res.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${size}`, 'Content-Length': end - start + 1 });
    createReadStream(file, { start, end }).pipe(res);
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Length': size });
  createReadStream(file).pipe(res);
}

const TYPES = { html: 'text/html; charset=utf-8', js: 'text/javascript', css: 'text/css', svg: 'image/svg+xml', webmanifest: 'application/manifest+json' };

const server = createServer(async (req, res) => {
  res.setHeader('Content-Security-Policy', CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  const url = new URL(req.url, 'http://localhost');
  try {
    if (url.pathname === '/mock/pause' && req.method === 'POST') {
      mock.paused = url.searchParams.get('on') === '1';
      return send(res, 200, mock);
    }
    if (url.pathname === '/mock/last-put') return send(res, 200, mock.lastPut || null);
    if (url.pathname === '/mock/drop' && req.method === 'POST') {
      for (const s of liveSockets) s.destroy();
      return send(res, 200, { dropped: true });
    }
    if (url.pathname.startsWith('/api/')) {
      // As vigil-web: state changes only from our own origin (a page under
      // `Referrer-Policy: no-referrer` sends `Origin: null` unless the request says otherwise).
      if (req.method !== 'GET' && req.method !== 'HEAD' && req.headers.origin !== `http://${req.headers.host}`) {
        return send(res, 403, { error: `cross-origin request refused (Origin ${req.headers.origin})` });
      }
      return await api(req, res, url);
    }
    let rel = null;
    if (url.pathname === '/' || url.pathname === '/index.html') rel = 'index.html';
    else if (url.pathname === '/manifest.webmanifest') rel = 'manifest.webmanifest';
    else if (url.pathname.startsWith('/assets/')) rel = normalize(decodeURIComponent(url.pathname.slice(8)));
    if (!rel || rel.startsWith('..')) return send(res, 404, { error: 'not found' });
    const file = join(ASSETS, rel);
    if (!existsSync(file)) return send(res, 404, { error: 'not found' });
    res.writeHead(200, { 'Content-Type': TYPES[rel.split('.').pop()] || 'application/octet-stream', 'Cache-Control': 'no-cache' });
    res.end(readFileSync(file));
  } catch (e) {
    console.error(e);
    send(res, 500, { error: String(e) });
  }
});
server.on('upgrade', (req, socket) => {
  const url = new URL(req.url, 'http://localhost');
  const m = /^\/api\/cameras\/([^/]+)\/live$/.exec(url.pathname);
  if (!m || !cookieSession(req) || req.headers.origin !== `http://${req.headers.host}`) {
    socket.end('HTTP/1.1 401 Unauthorized\r\n\r\n');
    return;
  }
  serveLive(req, socket, decodeURIComponent(m[1]));
});
server.listen(PORT, '127.0.0.1', () => console.log(`listening http 127.0.0.1:${PORT}`));
