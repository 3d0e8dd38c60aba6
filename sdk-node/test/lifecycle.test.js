'use strict';
// Start, start failures, spare mode with `become`, and the ways node ends.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { FakePlugin, SDK_DIR, codeDir, functionEnv, startFunction } = require('./harness');

const ECHO = "exports.handler = (event, context, cb) => cb(null, event);\n";

async function startFailure(t, files, start = {}) {
  const dir = codeDir(files);
  const plugin = new FakePlugin({ cwd: dir });
  t.after(() => plugin.kill());
  const frame = await plugin.start({ codeDir: dir, ...start });
  assert.equal(frame.header.t, 'startFailed', `expected startFailed, got ${JSON.stringify(frame.header)}`);
  const { code } = await plugin.exited;
  assert.notEqual(code, 0);
  return frame.header.message;
}

test('start → ready, and module-level code runs once', async (t) => {
  const { plugin } = await startFunction({
    'index.js': "let loads = (globalThis.loads || 0) + 1; globalThis.loads = loads;\n" +
      "exports.handler = (e, c, cb) => cb(null, { loads, cwd: process.cwd() });\n",
  });
  t.after(() => plugin.kill());
  assert.equal((await plugin.invokeJson({})).loads, 1);
  assert.equal((await plugin.invokeJson({})).loads, 1);
  assert.deepEqual(await plugin.close(), { code: 0, signal: null });
});

test('a handler in a subdirectory (lib/app.handler) is found in the code directory', async (t) => {
  const { plugin } = await startFunction(
    { 'lib/app.js': "exports.run = (e, c, cb) => cb(null, 'app:' + e.x);\n" },
    { start: { handler: 'lib/app.run' } },
  );
  t.after(() => plugin.kill());
  assert.equal(await plugin.invokeJson({ x: 7 }), 'app:7');
});

test('a handler module name with dots keeps all but the last part', async (t) => {
  const { plugin } = await startFunction(
    { 'my.module.js': "exports.go = (e, c, cb) => cb(null, 'dotted');\n" },
    { start: { handler: 'my.module.go' } },
  );
  t.after(() => plugin.kill());
  assert.equal(await plugin.invokeJson({}), 'dotted');
});

test('handler `this` is its module', async (t) => {
  const { plugin } = await startFunction({
    'index.js': "exports.tag = 'mine';\nexports.handler = function (e, c, cb) { cb(null, this.tag); };\n",
  });
  t.after(() => plugin.kill());
  assert.equal(await plugin.invokeJson({}), 'mine');
});

test('start fails: missing module', async (t) => {
  const message = await startFailure(t, { 'other.js': ECHO });
  assert.match(message, /cannot find module 'index'/);
});

test('start fails: the export is missing', async (t) => {
  const message = await startFailure(t, { 'index.js': 'exports.other = () => {};\n' });
  assert.equal(message, "module 'index' has no function 'handler'");
});

test('start fails: the export is not a function', async (t) => {
  const message = await startFailure(t, { 'index.js': 'exports.handler = 42;\n' });
  assert.match(message, /module 'index' exports 'handler' as a number, not a function/);
});

test('start fails: module-level code throws (the stack is in the message)', async (t) => {
  const message = await startFailure(t, { 'index.js': "throw new Error('boom at load');\n" });
  assert.match(message, /loading module 'index' .* failed: Error: boom at load/);
  assert.match(message, /index\.js:1/);
});

test('start fails: the module requires something missing', async (t) => {
  const message = await startFailure(t, { 'index.js': "require('no-such-package-xyz');\n" });
  assert.match(message, /loading module 'index'.*no-such-package-xyz/s);
});

test('start fails: handler is not module.function', async (t) => {
  const message = await startFailure(t, { 'index.js': ECHO }, { handler: 'index' });
  assert.match(message, /handler 'index' is not <module>.<function>/);
});

test('an ES module handler is imported', async (t) => {
  const { plugin } = await startFunction({
    'package.json': '{"type": "module"}',
    'index.js': "export const handler = async (event) => ({ esm: event.v });\n",
  });
  t.after(() => plugin.kill());
  assert.deepEqual(await plugin.invokeJson({ v: 2 }), { esm: 2 });
});

test('invoke before start is answered with an error', async (t) => {
  const plugin = new FakePlugin();
  t.after(() => plugin.kill());
  const frame = await plugin.invoke({});
  assert.equal(frame.header.t, 'error');
  assert.equal(frame.header.unhandled, true);
  assert.match(JSON.parse(frame.payload).errorMessage, /has not started/);
});

test('spare mode: become replaces env, sets umask and cwd; uid/gid null stay', async (t) => {
  const dir = codeDir({
    'index.js': "const sdk = require('aws-greengrass-core-sdk');\n" +
      "exports.handler = (e, c, cb) => cb(null, { env: process.env, cwd: process.cwd(), umask: process.umask(),\n" +
      "  uid: process.getuid(), sdk: require.resolve('aws-greengrass-core-sdk'), preloaded: Object.keys(require.cache).length });\n",
  });
  // A spare starts somewhere else with a minimal environment.
  const plugin = new FakePlugin({ mode: 'spare', env: { PATH: process.env.PATH, SPARE_ONLY: '1' }, cwd: '/' });
  t.after(() => plugin.kill());
  const env = functionEnv({ FUNCTION_VAR: 'hello' });
  await plugin.ready({ codeDir: dir, become: { uid: null, gid: null, env, umask: 0o027 } });
  const out = await plugin.invokeJson({});
  assert.equal(out.env.FUNCTION_VAR, 'hello');
  assert.equal(out.env.MY_FUNCTION_ARN, env.MY_FUNCTION_ARN);
  assert.equal(out.env.SPARE_ONLY, undefined, 'the spare environment is replaced');
  assert.equal(out.env.NODE_PATH.split(path.delimiter)[0], dir);
  assert.equal(out.cwd, fs.realpathSync(dir));
  assert.equal(out.umask, 0o027);
  assert.equal(out.uid, process.getuid());
  assert.equal(out.sdk, path.join(SDK_DIR, 'node_modules', 'aws-greengrass-core-sdk', 'index.js'));
});

test('spare mode: a failing become step fails the start with the step named', async (t) => {
  const dir = codeDir({ 'index.js': ECHO });
  const plugin = new FakePlugin({ mode: 'spare', env: { PATH: process.env.PATH }, cwd: '/' });
  t.after(() => plugin.kill());
  const frame = await plugin.start({
    codeDir: dir,
    become: { uid: null, gid: null, env: functionEnv(), umask: 18, armPath: path.join(dir, 'missing-arm.node') },
  });
  assert.equal(frame.header.t, 'startFailed');
  assert.match(frame.header.message, /becoming the function failed at loading .*missing-arm\.node/);
});

test('EOF on fd 3 ends node with 0 even with a live interval (pinned function)', async (t) => {
  const { plugin } = await startFunction({
    'index.js': "setInterval(() => {}, 1000);\nexports.handler = (e, c, cb) => cb(null, 1);\n",
  });
  t.after(() => plugin.kill());
  assert.deepEqual(await plugin.close(), { code: 0, signal: null });
});

test('a stop message ends node with 0', async (t) => {
  const { plugin } = await startFunction({ 'index.js': "setInterval(() => {}, 1000);\n" + ECHO });
  t.after(() => plugin.kill());
  plugin.send({ t: 'stop' });
  assert.deepEqual(await plugin.exited, { code: 0, signal: null });
});

test('SIGTERM ends node with 0', async (t) => {
  const { plugin } = await startFunction({ 'index.js': ECHO });
  t.after(() => plugin.kill());
  plugin.child.kill('SIGTERM');
  assert.deepEqual(await plugin.exited, { code: 0, signal: null });
});

test('an unknown message type is logged, not fatal', async (t) => {
  const { plugin } = await startFunction({ 'index.js': ECHO });
  t.after(() => plugin.kill());
  plugin.send({ t: 'mystery' });
  assert.deepEqual(await plugin.invokeJson({ a: 1 }), { a: 1 });
  assert.ok(plugin.logs.some((l) => l.level === 2 && /unknown type 'mystery'/.test(l.text)));
});

test('a malformed frame header is a protocol error: node says so and exits', async (t) => {
  const plugin = new FakePlugin();
  t.after(() => plugin.kill());
  const head = Buffer.from('not json');
  const prefix = Buffer.alloc(8);
  prefix.writeUInt32LE(head.length, 0);
  plugin.toNode.write(Buffer.concat([prefix, head]));
  const { code } = await plugin.exited;
  assert.equal(code, 2);
  assert.match(plugin.stderr, /protocol error from the plugin: frame header is not JSON/);
});

test('a bad mode argument is refused', async (t) => {
  const plugin = new FakePlugin({ mode: 'bogus' });
  t.after(() => plugin.kill());
  const { code } = await plugin.exited;
  assert.equal(code, 2);
  assert.match(plugin.stderr, /mode must be 'direct' or 'spare', not 'bogus'/);
});
