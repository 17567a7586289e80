// The official OSS client (ali-oss, from npm) against the emulator, signing with V1 and with V4:
// put, multipart upload, list with prefix/delimiter, get (compared), head, copy, delete, and a wrong
// secret rejected with SignatureDoesNotMatch.
'use strict';
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const OSS = require('ali-oss');
const { startEmulator } = require('./emulator');

async function exercise(emu, label, options) {
  const client = new OSS({ endpoint: emu.endpoint, accessKeyId: 'test-ak', accessKeySecret: 'test-sk',
                           bucket: 'bkt', secure: false, timeout: 60000, ...options });
  const small = crypto.randomBytes(1000);
  await client.put(`${label}/dir/small one.bin`, small);
  const big = crypto.randomBytes(1536 * 1024 + 77);
  const file = path.join(os.tmpdir(), `alioss-${label}-${process.pid}.bin`);
  fs.writeFileSync(file, big);
  await client.multipartUpload(`${label}/big.bin`, file, { partSize: 256 * 1024, parallel: 3 });
  fs.unlinkSync(file);

  const got = await client.get(`${label}/dir/small one.bin`);
  assert(Buffer.compare(got.content, small) === 0, `${label}: small object differs`);
  const gotBig = await client.get(`${label}/big.bin`);
  assert(Buffer.compare(gotBig.content, big) === 0, `${label}: multipart object differs`);
  assert.strictEqual(Number(gotBig.res.headers['content-length']), big.length);

  const listed = await client.listV2({ prefix: `${label}/`, delimiter: '/', 'max-keys': 100 });
  assert.deepStrictEqual((listed.objects || []).map((o) => o.name), [`${label}/big.bin`]);
  assert.deepStrictEqual(listed.prefixes, [`${label}/dir/`]);
  const listedV1 = await client.list({ prefix: `${label}/dir/` });
  assert.deepStrictEqual(listedV1.objects.map((o) => o.name), [`${label}/dir/small one.bin`]);

  const head = await client.head(`${label}/big.bin`);
  assert.strictEqual(head.status, 200);
  await client.copy(`${label}/copy.bin`, `${label}/dir/small one.bin`);
  const copied = await client.get(`${label}/copy.bin`);
  assert(Buffer.compare(copied.content, small) === 0, `${label}: copy differs`);

  await client.delete(`${label}/copy.bin`);
  await assert.rejects(client.head(`${label}/copy.bin`), (e) => e.status === 404);

  const wrong = new OSS({ endpoint: emu.endpoint, accessKeyId: 'test-ak', accessKeySecret: 'wrong',
                          bucket: 'bkt', secure: false, ...options });
  await assert.rejects(wrong.get(`${label}/big.bin`), (e) => e.status === 403 && e.code === 'SignatureDoesNotMatch');
  console.log(`ali-oss ${label}: put, multipart, listV2, list, get, head, copy, delete, wrong secret: ok`);
}

(async () => {
  const emu = await startEmulator();
  try {
    await exercise(emu, 'v1', { region: 'oss-cn-hangzhou' });
    await exercise(emu, 'v4', { region: 'oss-cn-hangzhou', authorizationV4: true });
  } finally {
    emu.stop();
  }
  console.log('1 passed, 0 failed');
})().catch((e) => { console.error(`ali-oss interop FAILED: ${e.stack || e}`); process.exit(1); });
