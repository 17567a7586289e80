// Node's fs API on DIR in its sync, callback, promise and stream forms (node.sh runs it on a local
// directory and under the shim on the prefix, then compares the reports and every stored byte).
// Usage: node node_fs.js DIR LOCAL_SOURCE LOCAL_COPY_DIR
// Prints one line per check: what a call returned (lengths, digests, types, listings) or the
// errno code it failed with; paths are shown relative to DIR ("@").
'use strict';
const fs = require('fs');
const fsp = fs.promises;
const path = require('path');
const crypto = require('crypto');
const { pipeline } = require('stream/promises');
const util = require('util');

const [dir, localSource, localCopies] = process.argv.slice(2);
const at = (p) => path.join(dir, p);
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex').slice(0, 16);
const rel = (p) => (p.startsWith(dir) ? '@' + p.slice(dir.length) : p);
const kind = (st) => (st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'link' : 'other');
const statLine = (st) => `${kind(st)} ${st.isFile() ? st.size : '-'} ${(st.mode & 0o777).toString(8)}`;

function report(name, value) {
  console.log(`${name}: ${value}`);
}
async function check(name, fn) {
  try {
    report(name, await fn());
  } catch (e) {
    report(name, `error ${e.code || e.message}`);
  }
}

// Deterministic bytes: the same file under the shim and locally.
function pattern(size, seed) {
  const b = Buffer.allocUnsafe((size + 3) & ~3);
  let x = seed >>> 0;
  for (let i = 0; i < b.length; i += 4) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b.writeUInt32LE(x, i);
  }
  return b.subarray(0, size);
}

async function main() {
  // Reading, four ways.
  await check('readFileSync', () => { const b = fs.readFileSync(at('in/small.txt')); return `${b.length} ${sha(b)}`; });
  await check('readFile callback', () => util.promisify(fs.readFile)(at('in/small.txt')).then((b) => `${b.length} ${sha(b)}`));
  await check('readFile promise', () => fsp.readFile(at('in/big.bin')).then((b) => `${b.length} ${sha(b)}`));
  await check('readFile utf8', () => fsp.readFile(at('in/small.txt'), 'utf8').then((s) => s.length));
  await check('createReadStream', async () => {
    const h = crypto.createHash('sha256');
    let n = 0;
    for await (const chunk of fs.createReadStream(at('in/big.bin'), { highWaterMark: 65536 })) {
      n += chunk.length;
      h.update(chunk);
    }
    return `${n} ${h.digest('hex').slice(0, 16)}`;
  });
  await check('createReadStream range', async () => {
    const parts = [];
    for await (const c of fs.createReadStream(at('in/big.bin'), { start: 1000, end: 70000 })) parts.push(c);
    const b = Buffer.concat(parts);
    return `${b.length} ${sha(b)}`;
  });
  await check('open+read positioned', () => {
    const fd = fs.openSync(at('in/big.bin'), 'r');
    const b = Buffer.alloc(5000);
    const n = fs.readSync(fd, b, 0, 5000, 123456);
    const st = fs.fstatSync(fd);
    fs.closeSync(fd);
    return `${n} ${sha(b.subarray(0, n))} fstat ${statLine(st)}`;
  });
  await check('filehandle read', async () => {
    const fh = await fsp.open(at('in/small.txt'), 'r');
    const st = await fh.stat();
    const { bytesRead, buffer } = await fh.read(Buffer.alloc(20000), 0, 20000, 0);
    await fh.close();
    return `${bytesRead} ${sha(buffer.subarray(0, bytesRead))} ${statLine(st)}`;
  });

  // Writing: several files, every form, one of 20 MB.
  fs.mkdirSync(at('out/deep/er'), { recursive: true });
  await check('writeFileSync x5', () => {
    for (let i = 0; i < 5; ++i) fs.writeFileSync(at(`out/w${i}.txt`), `file ${i}\n`.repeat(100 * (i + 1)));
    return 'done';
  });
  await check('writeFileSync 20MB', () => { fs.writeFileSync(at('out/big20.bin'), pattern(20 << 20, 7)); return 'done'; });
  await check('writeFile callback', () => util.promisify(fs.writeFile)(at('out/cb.bin'), pattern(300000, 3)).then(() => 'done'));
  await check('writeFile promise', () => fsp.writeFile(at('out/deep/er/p.txt'), 'promised\n').then(() => 'done'));
  await check('createWriteStream', async () => {
    const w = fs.createWriteStream(at('out/stream.bin'));
    for (let i = 0; i < 80; ++i) if (!w.write(pattern(65536 + i, i))) await new Promise((r) => w.once('drain', r));
    await new Promise((resolve, reject) => { w.on('error', reject); w.end(resolve); });
    return `${w.bytesWritten}`;
  });
  await check('pipeline copy', () =>
    pipeline(fs.createReadStream(at('in/big.bin')), fs.createWriteStream(at('out/piped.bin'))).then(() => 'done'));
  await check('filehandle write', async () => {
    const fh = await fsp.open(at('out/fh.txt'), 'w');
    await fh.write('first line\n');
    await fh.writeFile('rest\n');
    await fh.close();
    return 'done';
  });

  // Copies: into the prefix, out of it, within it.
  await check('copyFileSync in', () => { fs.copyFileSync(localSource, at('out/from-local.bin')); return 'done'; });
  await check('copyFileSync out', () => { fs.copyFileSync(at('in/small.txt'), path.join(localCopies, 'small.txt')); return 'done'; });
  await check('copyFileSync within', () => { fs.copyFileSync(at('in/big.bin'), at('out/within.bin')); return 'done'; });
  await check('copyFile callback', () => util.promisify(fs.copyFile)(at('in/data.json'), at('out/data-copy.json')).then(() => 'done'));
  await check('copyFile promise out', () => fsp.copyFile(at('in/big.bin'), path.join(localCopies, 'big.bin')).then(() => 'done'));
  await check('copyFile EXCL exists', () => { fs.copyFileSync(at('in/small.txt'), at('out/w0.txt'), fs.constants.COPYFILE_EXCL); return 'done'; });

  // Renames.
  await check('renameSync', () => { fs.renameSync(at('out/w1.txt'), at('out/renamed.txt')); return fs.existsSync(at('out/w1.txt')); });
  await check('rename promise', () => fsp.rename(at('out/w2.txt'), at('out/deep/moved.txt')).then(() => 'done'));

  // Attributes.
  for (const p of ['in/small.txt', 'in/sub', 'out/big20.bin', 'out/stream.bin', 'out/renamed.txt', 'in']) {
    await check(`statSync ${p}`, () => statLine(fs.statSync(at(p))));
    await check(`lstatSync ${p}`, () => statLine(fs.lstatSync(at(p))));
  }
  await check('stat callback', () => util.promisify(fs.stat)(at('in/big.bin')).then(statLine));
  await check('stat promise', () => fsp.stat(at('out/piped.bin')).then(statLine));
  await check('fstatSync dir', () => { const fd = fs.openSync(at('in/sub'), 'r'); const s = statLine(fs.fstatSync(fd)); fs.closeSync(fd); return s; });
  await check('existsSync', () => [fs.existsSync(at('in/small.txt')), fs.existsSync(at('in/nope'))].join(' '));
  await check('accessSync', () => { fs.accessSync(at('in/small.txt'), fs.constants.R_OK); return 'ok'; });

  // Listings.
  await check('readdirSync', () => fs.readdirSync(at('in')).sort().join(','));
  await check('readdirSync recursive', () => fs.readdirSync(at('in'), { recursive: true }).sort().join(','));
  await check('readdirSync types', () =>
    fs.readdirSync(at('in'), { withFileTypes: true }).map((d) => `${d.name}:${d.isDirectory() ? 'd' : d.isFile() ? 'f' : '?'}`).sort().join(','));
  await check('readdir promise recursive', () => fsp.readdir(at('out'), { recursive: true }).then((l) => l.sort().join(',')));
  await check('opendir', async () => { const names = []; for await (const d of await fsp.opendir(at('in/sub'))) names.push(d.name); return names.sort().join(','); });

  // Names.
  await check('realpathSync', () => rel(fs.realpathSync(at('in/sub/../small.txt'))));
  await check('realpathSync.native', () => rel(fs.realpathSync.native(at('in/sub/a'))));
  await check('realpath promise', () => fsp.realpath(at('in/./data.json')).then(rel));
  await check('require json', () => JSON.stringify(require(at('in/data.json'))));

  // Failures: the same errno as locally.
  await check('readFileSync missing', () => fs.readFileSync(at('in/nope')).length);
  await check('readFileSync dir', () => fs.readFileSync(at('in/sub')).length);
  await check('statSync missing', () => statLine(fs.statSync(at('in/nope/deeper'))));
  await check('openSync dir for writing', () => fs.openSync(at('in/sub'), 'w'));
  await check('readdirSync file', () => fs.readdirSync(at('in/small.txt')).length);

  // Changing files in place; temporary directories; recursive copies.
  await check('appendFileSync', () => { fs.writeFileSync(at('out/ap.txt'), 'a\n'); fs.appendFileSync(at('out/ap.txt'), 'b\n'); return JSON.stringify(fs.readFileSync(at('out/ap.txt'), 'utf8')); });
  await check('truncateSync', () => { fs.truncateSync(at('out/ap.txt'), 3); return fs.statSync(at('out/ap.txt')).size; });
  await check('open r+ writeSync', () => {
    const fd = fs.openSync(at('out/ap.txt'), 'r+');
    fs.writeSync(fd, 'Q', 0);
    fs.closeSync(fd);
    return JSON.stringify(fs.readFileSync(at('out/ap.txt'), 'utf8'));
  });
  await check('fsyncSync', () => { const fd = fs.openSync(at('out/synced.txt'), 'w'); fs.writeSync(fd, 'synced\n'); fs.fsyncSync(fd); fs.closeSync(fd); return 'done'; });
  await check('mkdtempSync', () => {
    const t = fs.mkdtempSync(at('out/tmp-'));
    fs.writeFileSync(path.join(t, 'x'), 'y');
    const names = fs.readdirSync(t).join(',');
    fs.rmSync(t, { recursive: true });
    return names;
  });
  await check('cpSync recursive', () => { fs.cpSync(at('in/sub'), at('out/sub-copy'), { recursive: true }); return fs.readdirSync(at('out/sub-copy'), { recursive: true }).sort().join(','); });

  // Everything written reads back as written (in a fresh listing and read).
  for (const name of fs.readdirSync(at('out'), { recursive: true }).sort()) {
    const p = at(path.join('out', name));
    if (fs.statSync(p).isFile()) {
      await check(`read back ${name}`, () => { const b = fs.readFileSync(p); return `${b.length} ${sha(b)}`; });
    }
  }
  await check('unlinkSync', () => { fs.unlinkSync(at('out/w4.txt')); return fs.existsSync(at('out/w4.txt')); });
  await check('rmSync recursive', () => { fs.rmSync(at('out/deep/er'), { recursive: true }); return fs.existsSync(at('out/deep/er')); });
}

main().catch((e) => {
  console.log(`uncaught: ${e.stack}`);
  process.exitCode = 1;
});
