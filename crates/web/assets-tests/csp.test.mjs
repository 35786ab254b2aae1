// The UI must run under `script-src 'self'; style-src 'self'` and render user text as text:
// no inline scripts, styles or event handlers in the HTML, no HTML-string sinks in the JS,
// every module the page imports exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ASSETS = join(dirname(fileURLToPath(import.meta.url)), '..', 'assets');
const files = (dir) => readdirSync(dir).flatMap((n) => {
  const p = join(dir, n);
  return statSync(p).isDirectory() ? files(p) : [p];
});
const all = files(ASSETS);

test('index.html: only external module script and stylesheet, no inline code or style', () => {
  const html = readFileSync(join(ASSETS, 'index.html'), 'utf8');
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
  assert.equal(scripts.length, 1);
  assert.match(scripts[0][1], /type="module"/);
  assert.match(scripts[0][1], /src="\/assets\/app\.js"/);
  assert.equal(scripts[0][2].trim(), '');
  assert.doesNotMatch(html, /<style\b/i);
  assert.doesNotMatch(html, /\sstyle\s*=/i);
  assert.doesNotMatch(html, /\son[a-z]+\s*=/i);
  assert.doesNotMatch(html, /javascript:/i);
  assert.match(html, /<link rel="stylesheet" href="\/assets\/app\.css">/);
  assert.match(html, /<link rel="manifest" href="\/manifest\.webmanifest">/);
});

test('scripts use no HTML-string sinks or eval', () => {
  for (const f of all.filter((p) => p.endsWith('.js'))) {
    const src = readFileSync(f, 'utf8').replace(/^\s*\/\/.*$/gm, '');
    for (const bad of [/\.innerHTML\b/, /\.outerHTML\b/, /insertAdjacentHTML/, /document\.write/, /\beval\(/, /new Function\(/, /setAttribute\(\s*['"]style['"]/, /setAttribute\(\s*['"]on/]) {
      assert.doesNotMatch(src, bad, `${f}: ${bad}`);
    }
  }
});

test('every relative import and every /assets/ reference resolves to a file', () => {
  for (const f of all.filter((p) => p.endsWith('.js'))) {
    const src = readFileSync(f, 'utf8');
    for (const m of src.matchAll(/(?:from\s+|import\()\s*['"`](\.[^'"`$]+)['"`]/g)) {
      assert.ok(existsSync(resolve(dirname(f), m[1])), `${f} imports missing ${m[1]}`);
    }
  }
  const refs = [readFileSync(join(ASSETS, 'index.html'), 'utf8'), readFileSync(join(ASSETS, 'manifest.webmanifest'), 'utf8')].join('\n');
  for (const m of refs.matchAll(/\/assets\/([A-Za-z0-9_./-]+)/g)) {
    assert.ok(existsSync(join(ASSETS, m[1])), `missing /assets/${m[1]}`);
  }
  // Pages loaded by name from the router table.
  const app = readFileSync(join(ASSETS, 'app.js'), 'utf8');
  for (const m of app.matchAll(/module: '([a-z]+)'/g)) {
    assert.ok(existsSync(join(ASSETS, 'pages', `${m[1]}.js`)), `missing page ${m[1]}`);
  }
});

test('the manifest is valid JSON with an icon and a start URL in scope', () => {
  const m = JSON.parse(readFileSync(join(ASSETS, 'manifest.webmanifest'), 'utf8'));
  assert.equal(m.display, 'standalone');
  assert.ok(m.start_url.startsWith(m.scope));
  assert.ok(m.icons.length >= 1);
});
