'use strict';
// Invocations: events, context, the ways a handler completes, results, errors
// and the console.

const test = require('node:test');
const assert = require('node:assert/strict');
const { FUNCTION_ARN, startFunction } = require('./harness');

// One function exporting several handlers; each test picks one with `handler`.
const HANDLERS = `
exports.callback = (event, context, cb) => cb(null, event);
exports.asyncFn = async (event) => { await new Promise((r) => setTimeout(r, 5)); return { async: event }; };
exports.promise = (event) => new Promise((resolve) => setImmediate(() => resolve({ promised: true })));
exports.drain = (event) => { setTimeout(() => { globalThis.drained = true; }, 20); };
exports.wasDrained = (event, context, cb) => cb(null, globalThis.drained === true);
exports.nothing = () => {};
exports.callbackErr = (event, context, cb) => { const e = new TypeError('bad input'); cb(e); };
exports.callbackString = (event, context, cb) => cb('plain failure');
exports.fail = (event, context) => context.fail();
exports.succeed = (event, context) => context.succeed({ ok: 1 });
exports.done = (event, context) => context.done(new Error('done err'), 'ignored');
exports.throws = () => { throw new RangeError('thrown'); };
exports.rejects = async () => { throw new Error('rejected'); };
exports.throwsValue = () => { throw 42; };
exports.twice = (event, context, cb) => { cb(null, 'first'); cb(null, 'second'); throw new Error('after'); };
exports.asyncWithCallback = async (event, context, cb) => { cb(null, 'from callback'); return 'from promise'; };
exports.context = (event, context, cb) => cb(null, {
  arn: context.invokedFunctionArn, id: context.awsRequestId, name: context.functionName,
  version: context.functionVersion, clientContext: context.clientContext, mem: context.memoryLimitInMB,
  group: context.logGroupName, stream: context.logStreamName, identity: context.identity === undefined,
  waits: context.callbackWaitsForEmptyEventLoop, remaining: context.getRemainingTimeInMillis(),
});
exports.eventType = (event, context, cb) => cb(null, { buffer: Buffer.isBuffer(event), type: typeof event, event: Buffer.isBuffer(event) ? event.toString('hex') : event });
exports.bufferResult = (event, context, cb) => cb(null, Buffer.from([0, 255, 1]));
exports.typedResult = (event, context, cb) => cb(null, new Uint8Array([9, 8, 7]));
exports.stringResult = (event, context, cb) => cb(null, 'héllo');
exports.undefinedResult = (event, context, cb) => cb(null);
exports.bigint = (event, context, cb) => cb(null, { n: 1n });
exports.console = (event, context, cb) => {
  console.debug('d %s', 'x'); console.log('l', 1, { a: 2 }); console.info('i');
  console.warn('w'); console.error('e %d', 3); console.trace('t');
  cb(null, 1);
};
exports.crashLater = (event, context, cb) => { setTimeout(() => { throw new Error('late crash'); }, 1); cb(null, 'answered'); };
exports.exitAfterLog = (event, context, cb) => { console.log('last words'); process.exit(3); };
exports.unhandledRejection = (event, context, cb) => { Promise.reject(new Error('nobody catches')); setTimeout(() => cb(null, 'survived'), 20); };
`;

async function fn(t, handler, start = {}) {
  const { plugin } = await startFunction({ 'index.js': HANDLERS }, { start: { handler: `index.${handler}`, ...start } });
  t.after(() => plugin.kill());
  return plugin;
}

function errorOf(frame) {
  assert.equal(frame.header.t, 'error', `expected an error, got ${JSON.stringify(frame.header)} ${frame.payload}`);
  return { unhandled: frame.header.unhandled, doc: JSON.parse(frame.payload.toString('utf8')) };
}

test('callback result', async (t) => {
  const p = await fn(t, 'callback');
  assert.deepEqual(await p.invokeJson({ a: [1, 2] }), { a: [1, 2] });
});

test('async handler result', async (t) => {
  const p = await fn(t, 'asyncFn');
  assert.deepEqual(await p.invokeJson({ v: 1 }), { async: { v: 1 } });
});

test('returned promise result', async (t) => {
  const p = await fn(t, 'promise');
  assert.deepEqual(await p.invokeJson({}), { promised: true });
});

test('no callback, no promise: completes with null when the event loop drains', async (t) => {
  const { plugin } = await startFunction({ 'index.js': HANDLERS }, { start: { handler: 'index.drain' } });
  t.after(() => plugin.kill());
  assert.equal(await plugin.invokeJson({}), null);
  // The timer ran before the result: the invocation waited for it. The
  // instance is still up for the next one.
  assert.equal(await plugin.invokeJson({}), null);
});

test('the event loop drains after a timer: the timer ran first', async (t) => {
  const { plugin } = await startFunction({
    'index.js': HANDLERS + "exports.both = (e, c, cb) => { if (e.check) return cb(null, globalThis.drained === true); exports.drain(e); };\n",
  }, { start: { handler: 'index.both' } });
  t.after(() => plugin.kill());
  assert.equal(await plugin.invokeJson({}), null);
  assert.equal(await plugin.invokeJson({ check: true }), true);
});

test('a handler that returns nothing synchronously completes with null', async (t) => {
  const p = await fn(t, 'nothing');
  assert.equal(await p.invokeJson({}), null);
  assert.equal(await p.invokeJson({}), null);
});

test('callback(err) is a Handled error with errorType and stack frames', async (t) => {
  const p = await fn(t, 'callbackErr');
  const { unhandled, doc } = errorOf(await p.invoke({}));
  assert.equal(unhandled, false);
  assert.equal(doc.errorMessage, 'bad input');
  assert.equal(doc.errorType, 'TypeError');
  assert.ok(doc.stackTrace.length > 0);
  assert.ok(doc.stackTrace.every((f) => !f.startsWith('at ') && !f.startsWith(' ')), JSON.stringify(doc.stackTrace));
  assert.match(doc.stackTrace[0], /index\.js/);
});

test('callback with a non-Error value', async (t) => {
  const p = await fn(t, 'callbackString');
  const { unhandled, doc } = errorOf(await p.invoke({}));
  assert.equal(unhandled, false);
  assert.deepEqual(doc, { errorMessage: 'plain failure' });
});

test('context.fail() without an error', async (t) => {
  const p = await fn(t, 'fail');
  const { unhandled, doc } = errorOf(await p.invoke({}));
  assert.equal(unhandled, false);
  assert.deepEqual(doc, { errorMessage: null });
});

test('context.succeed and context.done', async (t) => {
  const p = await fn(t, 'succeed');
  assert.deepEqual(await p.invokeJson({}), { ok: 1 });
  const q = await fn(t, 'done');
  const { unhandled, doc } = errorOf(await q.invoke({}));
  assert.equal(unhandled, false);
  assert.equal(doc.errorMessage, 'done err');
});

test('a synchronous throw is Unhandled and the instance stays up', async (t) => {
  const p = await fn(t, 'throws');
  for (let i = 0; i < 2; i++) {
    const { unhandled, doc } = errorOf(await p.invoke({}));
    assert.equal(unhandled, true);
    assert.equal(doc.errorMessage, 'thrown');
    assert.equal(doc.errorType, 'RangeError');
  }
  assert.ok(p.logs.some((l) => l.level === 3 && /threw for request inv-1: RangeError: thrown/.test(l.text)));
});

test('a rejected promise is Unhandled', async (t) => {
  const p = await fn(t, 'rejects');
  const { unhandled, doc } = errorOf(await p.invoke({}));
  assert.equal(unhandled, true);
  assert.equal(doc.errorMessage, 'rejected');
  assert.equal(doc.errorType, 'Error');
});

test('throwing a non-Error value', async (t) => {
  const p = await fn(t, 'throwsValue');
  const { unhandled, doc } = errorOf(await p.invoke({}));
  assert.equal(unhandled, true);
  assert.deepEqual(doc, { errorMessage: '42' });
});

test('the first completion wins; later ones are logged', async (t) => {
  const p = await fn(t, 'twice');
  assert.equal(await p.invokeJson({}), 'first');
  assert.equal(p.logs.filter((l) => l.level === 2 && /already completed/.test(l.text)).length, 2);
});

test('an async handler that calls back: the callback wins, quietly', async (t) => {
  const p = await fn(t, 'asyncWithCallback');
  assert.equal(await p.invokeJson({}), 'from callback');
  assert.equal(await p.invokeJson({}), 'from callback');
  assert.deepEqual(p.logs.filter((l) => l.level >= 2), []);
});

test('context fields', async (t) => {
  const p = await fn(t, 'context');
  const out = await p.invokeJson({}, { invocationId: 'req-9', clientContext: '{"custom":{"subject":"t/1","x":2}}' });
  assert.deepEqual(out, {
    arn: FUNCTION_ARN,
    id: 'req-9',
    name: 'nodeFn',
    version: '3',
    clientContext: { client: {}, Custom: { subject: 't/1', x: 2 }, env: {} },
    mem: '64',
    group: '/aws/greengrass/Lambda/us-east-1/123456789012/nodeFn',
    stream: 'ggcore',
    identity: true,
    waits: true,
    remaining: out.remaining,
  });
  assert.ok(out.remaining > 0 && out.remaining <= 60000, String(out.remaining));
});

test('context: unqualified ARN is $LATEST, Custom is {} without a client context, a past deadline leaves 0 ms', async (t) => {
  const p = await fn(t, 'context', { functionArn: 'arn:aws:lambda:eu-west-1:1:function:other' });
  const out = await p.invokeJson({}, { deadlineUnixMs: Date.now() - 1000 });
  assert.equal(out.name, 'other');
  assert.equal(out.version, '$LATEST');
  assert.deepEqual(out.clientContext, { client: {}, Custom: {}, env: {} });
  assert.equal(out.remaining, 0);
  const capital = await p.invokeJson({}, { clientContext: '{"Custom":{"subject":"cap"}}' });
  assert.deepEqual(capital.clientContext.Custom, { subject: 'cap' });
  const bad = await p.invokeJson({}, { clientContext: 'not json' });
  assert.deepEqual(bad.clientContext.Custom, {});
  assert.ok(p.logs.some((l) => l.level === 2 && /client context is not JSON/.test(l.text)));
});

test('json events: empty → {}, not JSON → the string with a WARN, not UTF-8 → a Buffer', async (t) => {
  const p = await fn(t, 'eventType');
  assert.deepEqual(await p.invokeJson(Buffer.alloc(0)), { buffer: false, type: 'object', event: {} });
  assert.deepEqual(await p.invokeJson('hello there'), { buffer: false, type: 'string', event: 'hello there' });
  assert.deepEqual(await p.invokeJson(Buffer.from([0xff, 0xfe])), { buffer: true, type: 'object', event: 'fffe' });
  const warns = p.logs.filter((l) => l.level === 2 && /not JSON/.test(l.text));
  assert.deepEqual(warns.map((l) => /a Buffer$/.test(l.text)), [false, true]);
});

test('binary events are Buffers; Buffer, typed array and string results are raw bytes', async (t) => {
  const p = await fn(t, 'eventType', { encoding: 'binary' });
  assert.deepEqual(await p.invokeJson(Buffer.from([1, 2, 255])), { buffer: true, type: 'object', event: '0102ff' });
  for (const [handler, bytes] of [['bufferResult', [0, 255, 1]], ['typedResult', [9, 8, 7]], ['stringResult', [...Buffer.from('héllo')]]]) {
    const q = await fn(t, handler, { encoding: 'binary' });
    const frame = await q.invoke(Buffer.from('x'));
    assert.equal(frame.header.t, 'result');
    assert.deepEqual([...frame.payload], bytes, handler);
  }
});

test('json results: strings are JSON, Buffers raw, undefined is null', async (t) => {
  const p = await fn(t, 'stringResult');
  assert.equal((await p.invoke({})).payload.toString(), '"héllo"');
  const q = await fn(t, 'bufferResult');
  assert.deepEqual([...(await q.invoke({})).payload], [0, 255, 1]);
  const r = await fn(t, 'undefinedResult');
  assert.equal((await r.invoke({})).payload.toString(), 'null');
});

test('a result that cannot be serialised is a Handled error', async (t) => {
  const p = await fn(t, 'bigint');
  const { unhandled, doc } = errorOf(await p.invoke({}));
  assert.equal(unhandled, false);
  assert.match(doc.errorMessage, /cannot be serialised to JSON/);
});

test('console levels and formatting', async (t) => {
  const p = await fn(t, 'console');
  await p.invokeJson({});
  const lines = p.logs.map((l) => [l.level, l.text.split('\n')[0]]);
  assert.deepEqual(lines, [[0, 'd x'], [1, 'l 1 { a: 2 }'], [1, 'i'], [2, 'w'], [3, 'e 3'], [3, 'Trace: t']]);
  assert.match(p.logs[5].text, /\n    at exports\.console .*index\.js/);
});

test('an exception thrown later from a timer crashes node with 1 and its stack on stderr', async (t) => {
  const p = await fn(t, 'crashLater');
  assert.equal(await p.invokeJson({}), 'answered');
  const { code } = await p.exited;
  assert.equal(code, 1);
  assert.match(p.stderr, /Error: late crash/);
});

test('a log line written right before process.exit is not lost', async (t) => {
  const p = await fn(t, 'exitAfterLog');
  await assert.rejects(p.invoke({}), /node exited \(3\)/);
  assert.deepEqual(p.logs.map((l) => l.text), ['last words']);
});

test('legacy runtimes: --unhandled-rejections=warn keeps the instance up', async (t) => {
  const { codeDir, FakePlugin, functionEnv } = require('./harness');
  const dir = codeDir({ 'index.js': HANDLERS });
  const p = new FakePlugin({ cwd: dir, env: functionEnv(), nodeArgs: ['--unhandled-rejections=warn'] });
  t.after(() => p.kill());
  await p.ready({ codeDir: dir, handler: 'index.unhandledRejection', runtime: 'nodejs8.10' });
  assert.equal(await p.invokeJson({}), 'survived');
  assert.equal(await p.invokeJson({}), 'survived');
  // Node writes the warning with console.error: an ERROR line in the log.
  assert.ok(p.logs.some((l) => l.level === 3 && /UnhandledPromiseRejectionWarning: Error: nobody catches/.test(l.text)),
    JSON.stringify(p.logs));
});

test('legacy runtimes in a spare node: start says unhandledRejections warn, the instance stays up', async (t) => {
  const { codeDir, FakePlugin, functionEnv } = require('./harness');
  const dir = codeDir({ 'index.js': HANDLERS });
  const p = new FakePlugin({ cwd: dir, env: functionEnv() });
  t.after(() => p.kill());
  await p.ready({ codeDir: dir, handler: 'index.unhandledRejection', runtime: 'nodejs8.10', unhandledRejections: 'warn' });
  assert.equal(await p.invokeJson({}), 'survived');
  assert.equal(await p.invokeJson({}), 'survived');
  assert.ok(p.logs.some((l) => l.level === 3 && /UnhandledPromiseRejectionWarning: Error: nobody catches/.test(l.text)),
    JSON.stringify(p.logs));
});
