// node --test: the pure parts of the WebRTC live player (crates/web/assets/webrtc-proto.js).
import assert from 'node:assert/strict';
import test from 'node:test';

import {
  RtpCaptureMap, chooseTransport, cleanOffer, inboundVideo, lossPercent, overlayText,
  parseCaptureMessage, parseIceLinks, whepOutcome,
} from '../assets/webrtc-proto.js';

const H264 = [{ mimeType: 'video/VP8' }, { mimeType: 'video/H264' }];

test('transport: WebRTC only with RTCPeerConnection and H.264, never for share links', () => {
  assert.deepEqual(chooseTransport({ hasPeerConnection: true, videoCodecs: H264 }), { transport: 'webrtc', reason: '' });
  assert.equal(chooseTransport({ hasPeerConnection: false, videoCodecs: H264 }).transport, 'mse');
  const noH264 = chooseTransport({ hasPeerConnection: true, videoCodecs: [{ mimeType: 'video/VP8' }] });
  assert.equal(noH264.transport, 'mse');
  assert.match(noH264.reason, /H\.264/);
  assert.equal(chooseTransport({ hasPeerConnection: true, videoCodecs: null }).transport, 'mse');
  assert.equal(chooseTransport({ hasPeerConnection: true, videoCodecs: H264, shareLink: true }).transport, 'mse');
  assert.equal(chooseTransport({ hasPeerConnection: true, videoCodecs: H264, forceMse: true }).transport, 'mse');
});

test('WHEP answers: 422/501/503 fall back to MSE with the reason, others retry', () => {
  assert.deepEqual(whepOutcome(201, null), { action: 'play' });
  const h265 = whepOutcome(422, { error: 'H.265 cannot be passed through', reason: 'h265' });
  assert.equal(h265.action, 'fallback');
  assert.match(h265.reason, /\(h265\): H\.265/);
  assert.deepEqual(whepOutcome(501, { error: 'x' }), { action: 'fallback', reason: 'WebRTC is off on the server' });
  assert.equal(whepOutcome(503, null).action, 'fallback');
  assert.equal(whepOutcome(401, null).action, 'login');
  assert.equal(whepOutcome(500, null).action, 'retry');
  assert.equal(whepOutcome(0, null).action, 'retry');
});

test('offer: mDNS candidates removed, others kept', () => {
  const sdp = [
    'v=0', 'm=video 9 UDP/TLS/RTP/SAVPF 96',
    'a=candidate:1 1 udp 2113937151 3f1c2b4e-1111.local 54400 typ host generation 0',
    'a=candidate:2 1 udp 1677729535 198.51.100.7 54400 typ srflx raddr 0.0.0.0 rport 0',
    'a=mid:0', '',
  ].join('\r\n');
  const out = cleanOffer(sdp);
  assert.doesNotMatch(out, /\.local/);
  assert.match(out, /198\.51\.100\.7/);
  assert.ok(out.endsWith('a=mid:0\r\n'));
});

test('capture-time messages and the RTP timestamp map', () => {
  assert.deepEqual(parseCaptureMessage('{"rtp":4294967295,"capture_us":1700000000000000,"server_time_us":1700000000050000}'),
    { rtp: 4294967295, captureUs: 1700000000000000, serverTimeUs: 1700000000050000 });
  assert.equal(parseCaptureMessage('{"rtp":-1,"capture_us":1}'), null);
  assert.equal(parseCaptureMessage('{"rtp":4294967296,"capture_us":1}'), null);
  assert.equal(parseCaptureMessage('not json'), null);
  assert.equal(parseCaptureMessage('{"rtp":1}'), null);
  assert.equal(parseCaptureMessage('{"rtp":1,"capture_us":5}').serverTimeUs, null);

  const m = new RtpCaptureMap(3);
  m.set(0xfffff000, 1);
  m.set(0x00000100, 2); // wrapped past 2^32
  assert.equal(m.lookup(0xfffff000), 1);
  assert.equal(m.lookup(0x100), 2);
  assert.equal(m.lookup(7), undefined);
  assert.equal(m.lookup(undefined), undefined);
  m.set(3000, 3);
  m.set(6000, 4); // beyond max: the oldest goes
  assert.equal(m.size, 3);
  assert.equal(m.lookup(0xfffff000), undefined);
  assert.equal(m.lookup(6000), 4);
});

test('inbound-rtp figures and packet loss over the window', () => {
  const report = new Map([
    ['a', { type: 'inbound-rtp', kind: 'audio', packetsLost: 9, packetsReceived: 1 }],
    ['v', { type: 'inbound-rtp', kind: 'video', packetsLost: 2, packetsReceived: 198, framesPerSecond: 15, framesDecoded: 30 }],
  ]);
  const cur = inboundVideo(report);
  assert.deepEqual(cur, { packetsLost: 2, packetsReceived: 198, framesPerSecond: 15, framesDecoded: 30 });
  assert.equal(inboundVideo(new Map()), null);
  assert.equal(lossPercent(null, cur), 1);
  assert.equal(lossPercent(cur, { ...cur, packetsReceived: 298 }), 0);
  assert.equal(lossPercent(cur, { ...cur, packetsLost: 12, packetsReceived: 288 }), 10);
  // Nothing new in the window: the session's figure, not 0/0.
  assert.equal(lossPercent(cur, cur), 1);
  assert.ok(Number.isNaN(lossPercent(null, null)));
  // packetsLost going down (late packets) never makes the loss negative.
  assert.equal(lossPercent(cur, { ...cur, packetsLost: 1, packetsReceived: 298 }), 0);
});

test('overlay text names the transport first', () => {
  assert.equal(overlayText({ transport: 'webrtc', p50: 61.2, p95: 90, fps: 15, loss: 0, size: '320×180' }),
    'WebRTC · p50 61 ms · p95 90 ms · 15.0 fps · loss 0.0 % · 320×180');
  assert.equal(overlayText({ transport: 'mse', reason: 'WebRTC is off on the server', p50: NaN, p95: NaN, fps: 0 }),
    'MSE (WebRTC is off on the server) · p50 — · p95 — · 0.0 fps');
});

test('ICE servers from WHEP Link headers', () => {
  const h = '<stun:stun.example.net>; rel="ice-server", '
    + '<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="1700000000:alice"; credential="a+b/c="; credential-type="password", '
    + '<https://example.net/x>; rel="next"';
  assert.deepEqual(parseIceLinks(h), [
    { urls: 'stun:stun.example.net' },
    { urls: 'turn:turn.example.net:3478?transport=udp', username: '1700000000:alice', credential: 'a+b/c=' },
  ]);
  assert.deepEqual(parseIceLinks(null), []);
});
