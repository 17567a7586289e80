// Starts the real oss-emulator ($OSSSHIM_EMULATOR) on a temporary root for a node test.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

async function startEmulator(extraArgs = []) {
  const binary = process.env.OSSSHIM_EMULATOR;
  if (!binary) throw new Error('OSSSHIM_EMULATOR is not set (run through meson test)');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ossshim-interop-'));
  fs.mkdirSync(path.join(root, 'bkt'));
  const child = spawn(binary, ['--root', root, '--listen', '127.0.0.1:0', '--quiet', ...extraArgs],
                      { stdio: ['ignore', 'pipe', 'inherit'] });
  const endpoint = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('emulator did not start within 10 s')), 10000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on('exit', (code) => reject(new Error(`emulator exited with ${code}`)));
  });
  return {
    endpoint, root,
    stop() { child.kill('SIGTERM'); fs.rmSync(root, { recursive: true, force: true }); },
  };
}

module.exports = { startEmulator };
