// Decryption of a Vigil offsite share (format VGS1: crates/cloud/src/share.rs, docs/cloud.md
// "Offsite shares") with WebCrypto. A plain script, not a module: share.rs inlines it in the
// viewer page, whose CSP allows exactly this text by hash; Node's tests load it with require().
//
// Layout: "VGS1", then chunks of 1 MiB of plaintext (the last shorter, or a lone empty one),
// each AES-256-GCM sealed (ciphertext ‖ 16-byte tag) under IV = 8-byte big-endian chunk index
// ‖ 4-byte big-endian flag (1 on the final chunk), no AAD.
'use strict';

const VIGIL_SHARE_MAGIC = [0x56, 0x47, 0x53, 0x31]; // "VGS1"
const VIGIL_SHARE_CHUNK = 1048576;
const VIGIL_SHARE_TAG = 16;
const VIGIL_SHARE_SEALED = VIGIL_SHARE_CHUNK + VIGIL_SHARE_TAG;

/** An Error whose `reason` is what the page shows ("corrupt"). */
function vigilShareError(message) {
  const e = new Error(message);
  e.reason = 'corrupt';
  return e;
}

/** The 12-byte IV of chunk `index` (a Number below 2^53), final or not. */
function vigilShareIv(index, final) {
  const iv = new Uint8Array(12);
  const v = new DataView(iv.buffer);
  v.setUint32(0, Math.floor(index / 4294967296));
  v.setUint32(4, index >>> 0);
  v.setUint32(8, final ? 1 : 0);
  return iv;
}

/** The AES-256-GCM key of 32 raw bytes, usable only to decrypt. */
async function vigilImportShareKey(keyBytes) {
  if (!(keyBytes instanceof Uint8Array) || keyBytes.length !== 32) {
    const e = new Error('the key must be 32 bytes');
    e.reason = 'missing-key';
    throw e;
  }
  return crypto.subtle.importKey('raw', keyBytes, { name: 'AES-GCM' }, false, ['decrypt']);
}

/**
 * Streaming decryption: push() the bytes as they arrive, get the plaintext chunks known not
 * to be the last; finish() at the end of the stream gives the final one. Holds at most one
 * sealed chunk (1 MiB + 16) besides what it returns. A chunk is known not to be the last only
 * once a byte after it has arrived, because a final chunk may be a full 1 MiB.
 */
class VigilShareOpener {
  constructor(key) {
    this.key = key;
    this.magic = 0;
    this.index = 0;
    this.pending = new Uint8Array(VIGIL_SHARE_SEALED);
    this.fill = 0;
  }

  async push(data) {
    const out = [];
    let at = 0;
    while (this.magic < 4 && at < data.length) {
      if (data[at] !== VIGIL_SHARE_MAGIC[this.magic]) throw vigilShareError('not a Vigil share (no VGS1 magic)');
      this.magic++;
      at++;
    }
    while (at < data.length) {
      if (this.fill === VIGIL_SHARE_SEALED) {
        // More bytes follow a full chunk: it is not the final one.
        out.push(await this.open(this.pending, false));
        this.fill = 0;
      }
      const n = Math.min(VIGIL_SHARE_SEALED - this.fill, data.length - at);
      this.pending.set(data.subarray(at, at + n), this.fill);
      this.fill += n;
      at += n;
    }
    return out;
  }

  async finish() {
    if (this.magic < 4 || this.fill < VIGIL_SHARE_TAG) throw vigilShareError('the file ends early');
    return this.open(this.pending.subarray(0, this.fill), true);
  }

  async open(sealed, final) {
    const index = this.index;
    try {
      // decrypt() copies its input before returning, so `pending` may be refilled at once.
      const plain = await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: vigilShareIv(index, final), tagLength: 128 },
        this.key,
        sealed,
      );
      this.index++;
      return new Uint8Array(plain);
    } catch {
      throw vigilShareError(`chunk ${index} does not decrypt: a wrong key, or the file was altered or cut short`);
    }
  }
}

/** Decrypts a whole share held in memory: the plaintext as a list of chunks (for a Blob). */
async function vigilDecryptShare(bytes, keyBytes) {
  const opener = new VigilShareOpener(await vigilImportShareKey(keyBytes));
  const chunks = await opener.push(bytes);
  chunks.push(await opener.finish());
  return chunks;
}

if (typeof module !== 'undefined') {
  module.exports = { vigilDecryptShare, vigilImportShareKey, VigilShareOpener, VIGIL_SHARE_CHUNK };
}
