// One multipart upload with the official OSS Node.js client (ali-oss, installed under
// tests/interop/node_modules), for tools/bench/write_bench.py's baseline rows.
//   node tools/bench/alioss_upload.js ENDPOINT BUCKET KEY FILE PART_SIZE PARALLEL
// Credentials come from OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET (default test-ak / test-sk).
// Prints "alioss: BYTES bytes in SECONDS s" (the multipartUpload call only, not node's start-up).
'use strict';
const fs = require('fs');
const path = require('path');

const OSS = require(path.join(__dirname, '..', '..', 'tests', 'interop', 'node_modules', 'ali-oss'));

async function main() {
  const [endpoint, bucket, key, file, partSize, parallel] = process.argv.slice(2);
  if (!parallel) {
    console.error('usage: alioss_upload.js ENDPOINT BUCKET KEY FILE PART_SIZE PARALLEL');
    process.exit(2);
  }
  const client = new OSS({
    endpoint, bucket, secure: false, region: 'oss-cn-hangzhou',
    accessKeyId: process.env.OSS_ACCESS_KEY_ID || 'test-ak',
    accessKeySecret: process.env.OSS_ACCESS_KEY_SECRET || 'test-sk',
    timeout: 600000,
  });
  const bytes = fs.statSync(file).size;
  const start = process.hrtime.bigint();
  const r = await client.multipartUpload(key, file, { partSize: Number(partSize), parallel: Number(parallel) });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (!r || !r.res || r.res.status !== 200) throw new Error(`multipartUpload: unexpected result ${JSON.stringify(r && r.res)}`);
  console.log(`alioss: ${bytes} bytes in ${seconds.toFixed(3)} s`);
}

main().catch((e) => { console.error(`alioss_upload.js: ${e.stack || e}`); process.exit(1); });
