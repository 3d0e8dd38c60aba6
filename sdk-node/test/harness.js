'use strict';
// A fake ggcore Node plugin for the tests: spawns `node bootstrap.js <mode>`
// with fd 3 (plugin → node) and fd 4 (node → plugin), writes and reads frames,
// and answers `call` frames through a test-supplied function.

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { FrameDecoder, encodeFrame } = require('../runtime/channel');

const SDK_DIR = path.resolve(__dirname, '..');
const BOOTSTRAP = path.join(SDK_DIR, 'bootstrap.js');
const FUNCTION_ARN = 'arn:aws:lambda:us-east-1:123456789012:function:nodeFn:3';
const NPM_MODULES = path.join(process.env.GGCORE_TEST_NPM || path.join(os.homedir(), '.cache', 'ggcore', 'npm'), 'node_modules');
const NPM_SDK_PACKAGES = ['aws-greengrass-core-sdk', 'cbor', 'bignumber.js', 'nofilter'];

// The environment ggcore gives a function.
function functionEnv(extra = {}) {
  return {
    PATH: process.env.PATH || '/usr/bin:/bin',
    MY_FUNCTION_ARN: FUNCTION_ARN,
    AWS_CONTAINER_AUTHORIZATION_TOKEN: 'token-1',
    ROUTER_FUNCTION_ARN: 'arn:aws:lambda:::function:GGRouter',
    SHADOW_FUNCTION_ARN: 'arn:aws:lambda:::function:GGShadowService',
    SECRETS_MANAGER_FUNCTION_ARN: 'arn:aws:lambda:::function:GGSecretManager:1',
    ENCODING_TYPE: 'json',
    GGC_MAX_INTERFACE_VERSION: '1.5',
    AWS_GREENGRASS_GROUP_NAME: 'testGroup',
    ...extra,
  };
}

// A fresh code directory holding `files` (relative path → text).
function codeDir(files) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ggcore-node-test-'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

// Copies the npm aws-greengrass-core-sdk@1.7.0 (and its dependencies) into
// <dir>/node_modules, the way users ship it. Returns a reason to skip when the
// npm cache directory is missing.
function installNpmSdk(dir) {
  if (!fs.existsSync(path.join(NPM_MODULES, 'aws-greengrass-core-sdk', 'package.json'))) {
    return `the npm aws-greengrass-core-sdk is not installed in ${NPM_MODULES} (scripts/test installs it; or set GGCORE_TEST_NPM)`;
  }
  for (const name of NPM_SDK_PACKAGES) {
    const from = path.join(NPM_MODULES, name);
    if (fs.existsSync(from)) fs.cpSync(from, path.join(dir, 'node_modules', name), { recursive: true });
  }
  return null;
}

class FakePlugin {
  // mode: 'direct' | 'spare'; env: the process environment; cwd.
  constructor({ mode = 'direct', env = functionEnv(), cwd = os.tmpdir(), nodeArgs = [] } = {}) {
    this.child = spawn(process.execPath, [...nodeArgs, BOOTSTRAP, mode], {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'],
    });
    this.toNode = this.child.stdio[3];
    this.fromNode = this.child.stdio[4];
    this.frames = []; // frames not yet taken by next()
    this.waiters = [];
    this.logs = []; // {level, text}
    this.calls = []; // every `call` frame
    this.stdout = '';
    this.stderr = '';
    this.nextId = 1;
    // Answers a call: (header, payload) → {ok: true, fields?, payload?} |
    // {ok: false, code, message} | undefined (no answer).
    this.onCall = () => ({ ok: false, code: 'Internal', message: 'this test answers no calls' });
    const decoder = new FrameDecoder();
    this.fromNode.on('data', (chunk) => {
      for (const frame of decoder.push(chunk)) this.receive(frame);
    });
    this.toNode.on('error', () => {}); // node may be gone when a test writes
    this.child.stdout.on('data', (d) => { this.stdout += d; });
    this.child.stderr.on('data', (d) => { this.stderr += d; });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => resolve({ code, signal }));
    });
    this.exited.then(() => this.flushWaiters());
  }

  receive(frame) {
    const { header, payload } = frame;
    if (header.t === 'log') {
      this.logs.push({ level: header.level, text: payload.toString('utf8') });
      return;
    }
    if (header.t === 'call') {
      this.calls.push(frame);
      const answer = this.onCall(header, payload);
      if (answer) this.reply(header.corr, answer);
      return;
    }
    this.frames.push(frame);
    this.flushWaiters();
  }

  flushWaiters() {
    while (this.waiters.length > 0 && (this.frames.length > 0 || this.child.exitCode !== null || this.child.signalCode !== null)) {
      const waiter = this.waiters.shift();
      if (this.frames.length > 0) waiter.resolve(this.frames.shift());
      else waiter.reject(new Error(`node exited (${this.child.exitCode ?? this.child.signalCode}) before sending a frame; stderr: ${this.stderr}`));
    }
  }

  reply(corr, answer) {
    if (answer.ok) this.send({ t: 'reply', corr, ok: true, ...(answer.fields || {}) }, answer.payload);
    else this.send({ t: 'reply', corr, ok: false, code: answer.code, message: answer.message });
  }

  send(header, payload) {
    this.toNode.write(encodeFrame(header, payload));
  }

  // The next frame that is not a log or a call.
  next() {
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.flushWaiters();
    });
  }

  async start(fields) {
    this.send({
      t: 'start',
      functionArn: FUNCTION_ARN,
      handler: 'index.handler',
      encoding: 'json',
      memoryLimitMb: 64,
      timeoutMs: 3000,
      pinned: false,
      runtime: 'nodejs12.x',
      sdkDir: SDK_DIR,
      ...fields,
    });
    return this.next();
  }

  // Starts and checks `ready`; returns this.
  async ready(fields) {
    const frame = await this.start(fields);
    if (frame.header.t !== 'ready') {
      throw new Error(`expected ready, got ${JSON.stringify(frame.header)}; stderr: ${this.stderr}`);
    }
    return this;
  }

  // Sends an invoke; the answer frame (result/error) with the same id.
  async invoke(event, fields = {}) {
    const id = this.nextId++;
    let payload = event;
    if (event !== undefined && !Buffer.isBuffer(event) && typeof event !== 'string') payload = JSON.stringify(event);
    this.send({
      t: 'invoke',
      id,
      invocationId: `inv-${id}`,
      clientContext: '',
      deadlineUnixMs: Date.now() + 60000,
      event: false,
      ...fields,
    }, payload);
    const frame = await this.next();
    if (frame.header.id !== id) throw new Error(`answer for ${frame.header.id}, expected ${id}`);
    return frame;
  }

  // Invokes and returns the parsed JSON result; throws on an error frame.
  async invokeJson(event, fields) {
    const frame = await this.invoke(event, fields);
    if (frame.header.t !== 'result') {
      throw new Error(`expected a result, got ${JSON.stringify(frame.header)} ${frame.payload}`);
    }
    return JSON.parse(frame.payload.toString('utf8'));
  }

  // Closes fd 3 (EOF for node) and waits for the exit.
  async close() {
    this.toNode.end();
    return this.exited;
  }

  kill() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

// Starts a function in direct mode with `files` as its code; the caller closes it.
async function startFunction(files, { start = {}, env = {}, npmSdk = false } = {}) {
  const dir = codeDir(files);
  if (npmSdk) {
    const reason = installNpmSdk(dir);
    if (reason) return { skip: reason };
  }
  const plugin = new FakePlugin({ env: functionEnv(env), cwd: dir });
  await plugin.ready({ codeDir: dir, ...start });
  return { plugin, dir };
}

module.exports = {
  FakePlugin,
  FUNCTION_ARN,
  SDK_DIR,
  codeDir,
  functionEnv,
  installNpmSdk,
  startFunction,
};
