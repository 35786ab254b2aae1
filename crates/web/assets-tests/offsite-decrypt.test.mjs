// The offsite share page's decryptor (crates/cloud/src/share_decrypt.js, inlined in the page)
// against the vector the Rust sealer makes (crates/cloud/src/share.rs,
// `browser_vector_matches` regenerates it, so the two cannot drift).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { vigilDecryptShare, vigilImportShareKey, VigilShareOpener } = require('../../cloud/src/share_decrypt.js');
const dataDir = new URL('../../cloud/tests/data/', import.meta.url);
const vector = JSON.parse(readFileSync(new URL('share-vector.json', dataDir), 'utf8'));
const sealed = new Uint8Array(readFileSync(new URL('share-vector.bin', dataDir)));
const key = Uint8Array.from(Buffer.from(vector.key_hex, 'hex'));

function concat(chunks) {
  return Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.length)));
}

test('decrypts the Rust-made vector to the expected plaintext', async () => {
  assert.equal(sealed.length, vector.sealed_len);
  const plain = concat(await vigilDecryptShare(sealed, key));
  assert.equal(plain.length, vector.plaintext_len);
  assert.equal(createHash('sha256').update(plain).digest('hex'), vector.plaintext_sha256);
  // The documented pattern, regenerated here.
  for (let i = 0; i < plain.length; i += 4099) assert.equal(plain[i], i % 251);
});

test('streaming in network-sized pieces gives the same bytes', async () => {
  const opener = new VigilShareOpener(await vigilImportShareKey(key));
  const chunks = [];
  for (let at = 0; at < sealed.length; at += 65536) {
    chunks.push(...(await opener.push(sealed.subarray(at, at + 65536))));
  }
  assert.equal(chunks.length, 1, 'the first chunk is out once a byte after it arrived');
  chunks.push(await opener.finish());
  assert.equal(createHash('sha256').update(concat(chunks)).digest('hex'), vector.plaintext_sha256);
});

test('a flipped bit, a cut, a wrong key or a bad magic fail as corrupt', async () => {
  const rejects = (bytes, k = key) =>
    assert.rejects(vigilDecryptShare(bytes, k), (e) => e.reason === 'corrupt');
  for (const at of [4, 1048580 + 7, sealed.length - 1]) {
    const bad = sealed.slice();
    bad[at] ^= 0x01;
    await rejects(bad);
  }
  await rejects(sealed.subarray(0, 4 + 1048576 + 16)); // final chunk dropped
  await rejects(sealed.subarray(0, sealed.length - 1));
  await rejects(sealed.subarray(0, 3));
  const wrong = key.slice();
  wrong[0] ^= 1;
  await rejects(sealed, wrong);
  const magic = sealed.slice();
  magic[0] = 0x41;
  await rejects(magic);
  await assert.rejects(vigilDecryptShare(sealed, key.subarray(0, 16)), (e) => e.reason === 'missing-key');
});
