'use strict';
// The SDK calls, through ggcore's own aws-greengrass-core-sdk and through the
// published npm aws-greengrass-core-sdk@1.7.0 bundled in the function's
// node_modules: the `call` frames they make and how replies come back.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { FUNCTION_ARN, SDK_DIR, startFunction } = require('./harness');

// Runs event.method of a new GG[event.cls] with event.params and answers with
// every callback it got (event.expect of them, then one more turn of the loop
// to catch extra ones) — or the promise's outcome with event.promise.
const DRIVER = `
const GG = require('aws-greengrass-core-sdk');
function describe(v) {
  if (Buffer.isBuffer(v)) return { buffer: v.toString('utf8') };
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, describe(x)]));
  }
  return v;
}
const outcome = (err, data) => (err ? { err: err.message, code: err.code } : { data: describe(data) });
exports.handler = (event, context, cb) => {
  const params = event.params;
  if (event.bufferHex) params[event.bufferHex.key] = Buffer.from(event.bufferHex.hex, 'hex');
  const client = new GG[event.cls]();
  const sdk = require.resolve('aws-greengrass-core-sdk');
  if (event.promise) {
    client[event.method](params).then((d) => cb(null, { sdk, results: [outcome(null, d)] }),
      (e) => cb(null, { sdk, results: [outcome(e)] }));
    return;
  }
  const results = [];
  let sync = true;
  client[event.method](params, (err, data) => {
    results.push({ ...outcome(err, data), sync });
    if (results.length === (event.expect || 1)) setTimeout(() => cb(null, { sdk, results }), 10);
  });
  sync = false;
};
`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SECRET_DOC = JSON.stringify({ ARN: 'arn:s', Name: 's', VersionId: 'v1', SecretString: 'shh', VersionStages: ['AWSCURRENT'], CreatedDate: 1 });

async function driver(t, npm) {
  const started = await startFunction({ 'index.js': DRIVER }, { npmSdk: npm });
  if (started.skip) {
    t.skip(started.skip);
    return null;
  }
  const { plugin, dir } = started;
  t.after(() => plugin.kill());
  plugin.npm = npm;
  plugin.expectedSdk = npm ? path.join(dir, 'node_modules', 'aws-greengrass-core-sdk', 'index.js')
    : path.join(SDK_DIR, 'node_modules', 'aws-greengrass-core-sdk', 'index.js');
  return plugin;
}

// Runs one SDK call; returns { results, calls } (calls: [{header, payload text}]).
async function run(plugin, event, onCall) {
  if (onCall) plugin.onCall = onCall;
  const before = plugin.calls.length;
  const out = await plugin.invokeJson(event);
  assert.equal(out.sdk, plugin.expectedSdk, 'the expected SDK was loaded');
  // The npm package calls back synchronously on its own argument errors;
  // everything that went through ggcore's runtime modules is asynchronous.
  for (const r of out.results) {
    if (r.sync !== undefined && !(plugin.npm && r.err && r.code === undefined)) {
      assert.equal(r.sync, false, `callbacks run asynchronously: ${JSON.stringify(r)}`);
    }
  }
  const calls = plugin.calls.slice(before).map(({ header, payload }) => {
    const { corr, ...rest } = header;
    assert.equal(typeof corr, 'number');
    return { header: rest, payload: payload.toString('utf8') };
  });
  return { results: out.results.map(({ sync, ...r }) => r), calls };
}

const ok = (fields, payload) => () => ({ ok: true, fields, payload });
const fail = (code, message) => () => ({ ok: false, code, message });

for (const npm of [false, true]) {
  const which = npm ? 'npm aws-greengrass-core-sdk@1.7.0' : "ggcore's SDK";

  test(`${which}: publish → a publish call; the result is an id`, async (t) => {
    const p = await driver(t, npm);
    if (!p) return;
    const { results, calls } = await run(p, {
      cls: 'IotData', method: 'publish', params: { topic: 't/1', payload: 'hello', queueFullPolicy: 'AllOrError' },
    }, ok());
    assert.deepEqual(calls, [{
      header: { t: 'call', op: 'publish', topic: 't/1', queueFullPolicy: 'AllOrError', claimedSource: FUNCTION_ARN },
      payload: 'hello',
    }]);
    assert.equal(results.length, 1);
    assert.match(results[0].data, UUID);
  });

  test(`${which}: publish with a Buffer payload passes the bytes as they are`, async (t) => {
    const p = await driver(t, npm);
    if (!p) return;
    await run(p, { cls: 'IotData', method: 'publish', params: { topic: 'bin' }, bufferHex: { key: 'payload', hex: '00ff10' } }, ok());
    const frame = p.calls[p.calls.length - 1];
    assert.deepEqual([...frame.payload], [0, 255, 16]);
    assert.equal(frame.header.queueFullPolicy, '');
  });

  test(`${which}: a refused publish is an error with the host's code`, async (t) => {
    const p = await driver(t, npm);
    if (!p) return;
    const { results } = await run(p, { cls: 'IotData', method: 'publish', params: { topic: 't', payload: '' } }, fail('Full', 'the queue is full'));
    assert.deepEqual(results, [{ err: 'the queue is full', code: 'Full' }]);
  });

  test(`${which}: an unsupported queueFullPolicy`, async (t) => {
    const p = await driver(t, npm);
    if (!p) return;
    const params = { topic: 't', payload: 'x', queueFullPolicy: 'Sometimes' };
    const { results, calls } = await run(p, { cls: 'IotData', method: 'publish', params, expect: npm ? 2 : 1 }, ok());
    assert.deepEqual(results[0], { err: 'queueFullPolicy "Sometimes" is not supported' });
    if (npm) {
      // The npm package's own behaviour: it publishes anyway and calls back twice.
      assert.equal(calls.length, 1);
      assert.match(results[1].data, UUID);
    } else {
      assert.deepEqual(calls, []);
      assert.equal(results.length, 1);
    }
  });

  for (const [method, operation, params] of [
    ['getThingShadow', 'get', { thingName: 'lamp' }],
    ['updateThingShadow', 'update', { thingName: 'lamp', payload: '{"state":{"desired":{"on":true}}}' }],
    ['deleteThingShadow', 'delete', { thingName: 'lamp' }],
  ]) {
    test(`${which}: ${method} → a shadow call; the reply is the Payload`, async (t) => {
      const p = await driver(t, npm);
      if (!p) return;
      const doc = '{"state":{"reported":{"on":true}},"version":4}';
      const { results, calls } = await run(p, { cls: 'IotData', method, params }, ok({}, doc));
      assert.deepEqual(calls, [{ header: { t: 'call', op: 'shadow', operation, thing: 'lamp' }, payload: params.payload || '' }]);
      assert.deepEqual(results, [{ data: { FunctionError: '', StatusCode: 200, Payload: { buffer: doc } } }]);
    });
  }

  test(`${which}: a shadow service failure is an Unhandled function error of the shadow function`, async (t) => {
    const p = await driver(t, npm);
    if (!p) return;
    const { results } = await run(p, { cls: 'IotData', method: 'getThingShadow', params: { thingName: 'x' } }, fail('NotFound', 'no shadow for x'));
    assert.deepEqual(results, [{ data: { FunctionError: 'Unhandled', StatusCode: 200, Payload: { buffer: '{"errorMessage":"no shadow for x"}' } } }]);
  });

  test(`${which}: Lambda.invoke RequestResponse with ClientContext and Qualifier`, async (t) => {
    const p = await driver(t, npm);
    if (!p) return;
    const cc = Buffer.from('{"custom":{"k":"v"}}').toString('base64');
    const { results, calls } = await run(p, {
      cls: 'Lambda', method: 'invoke',
      params: { FunctionName: 'arn:aws:lambda:us-east-1:123456789012:function:target', Qualifier: '2', ClientContext: cc, Payload: '{"n":1}' },
    }, ok({ invocationId: 'inv-77', functionError: 'Handled' }, '{"errorMessage":"no"}'));
    assert.deepEqual(calls, [{
      header: { t: 'call', op: 'invoke', functionArn: 'arn:aws:lambda:us-east-1:123456789012:function:target:2', qualifier: '', invocationType: 'RequestResponse', clientContext: cc },
      payload: '{"n":1}',
    }]);
    assert.deepEqual(results, [{ data: { FunctionError: 'Handled', StatusCode: 200, Payload: { buffer: '{"errorMessage":"no"}' } } }]);
  });

  test(`${which}: Lambda.invoke Event gives the invocation id`, async (t) => {
    const p = await driver(t, npm);
    if (!p) return;
    const { results, calls } = await run(p, {
      cls: 'Lambda', method: 'invoke', params: { FunctionName: 'arn:aws:lambda:us-east-1:123456789012:function:target:1', InvocationType: 'Event' },
    }, ok({ invocationId: 'inv-5', functionError: '' }));
    assert.equal(calls[0].header.invocationType, 'Event');
    assert.equal(calls[0].header.clientContext, '');
    assert.equal(calls[0].payload, '');
    assert.deepEqual(results, [{ data: 'inv-5' }]);
  });

  test(`${which}: a refused invoke is an error with the host's code`, async (t) => {
    const p = await driver(t, npm);
    if (!p) return;
    const { results } = await run(p, {
      cls: 'Lambda', method: 'invoke', params: { FunctionName: 'arn:aws:lambda:us-east-1:123456789012:function:nope:1' },
    }, fail('Refused', 'no subscription allows this'));
    assert.deepEqual(results, [{ err: 'no subscription allows this', code: 'Refused' }]);
  });

  test(`${which}: Lambda.invoke argument errors`, async (t) => {
    const p = await driver(t, npm);
    if (!p) return;
    const arn = 'arn:aws:lambda:us-east-1:123456789012:function:f:1';
    for (const [params, message] of [
      [{}, '"FunctionName" is a required parameter'],
      [{ FunctionName: 'f' }, 'FunctionName is malformed: Error: Cannot parse given function ARN: f'],
      [{ FunctionName: arn, InvocationType: 'Later' }, "InvocationType 'Later' is incorrect, should be 'Event' or 'RequestResponse'"],
      [{ FunctionName: arn, Qualifier: '2' }, "Qualifier '2' does not match the version in FunctionName"],
      [{ FunctionName: arn, ClientContext: 'not base64!' }, 'Client Context is invalid'],
    ]) {
      const { results, calls } = await run(p, { cls: 'Lambda', method: 'invoke', params });
      assert.deepEqual(results, [{ err: message }]);
      assert.deepEqual(calls, []);
    }
  });

  test(`${which}: IotData argument errors`, async (t) => {
    const p = await driver(t, npm);
    if (!p) return;
    for (const [method, params, message] of [
      ['publish', { payload: 'x' }, '"topic" is a required parameter'],
      ['publish', { topic: 't' }, '"payload" is a required parameter'],
      ['getThingShadow', {}, '"thingName" is a required parameter.'],
      ['updateThingShadow', { thingName: 'x' }, '"payload" is a required parameter.'],
    ]) {
      const { results, calls } = await run(p, { cls: 'IotData', method, params });
      assert.deepEqual(results, [{ err: message }]);
      assert.deepEqual(calls, []);
    }
  });

  test(`${which}: getSecretValue → a secret call; the result is the response text`, async (t) => {
    const p = await driver(t, npm);
    if (!p) return;
    const { results, calls } = await run(p, {
      cls: 'SecretsManager', method: 'getSecretValue', params: { SecretId: 's', VersionStage: 'AWSCURRENT' },
    }, ok({}, SECRET_DOC));
    assert.deepEqual(calls, [{ header: { t: 'call', op: 'secret' }, payload: '{"SecretId":"s","VersionStage":"AWSCURRENT"}' }]);
    assert.deepEqual(results, [{ data: SECRET_DOC }]);
  });

  test(`${which}: getSecretValue with DeStringifyResultFlag`, async (t) => {
    const p = await driver(t, npm);
    if (!p) return;
    const params = { SecretId: 's', DeStringifyResultFlag: true };
    const { results } = await run(p, { cls: 'SecretsManager', method: 'getSecretValue', params, expect: npm ? 2 : 1 }, ok({}, SECRET_DOC));
    assert.deepEqual(results[0], { data: JSON.parse(SECRET_DOC) });
    // The npm package calls back a second time with the text.
    if (npm) assert.deepEqual(results[1], { data: SECRET_DOC });
    else assert.equal(results.length, 1);
  });

  test(`${which}: a secret the core cannot give is an error naming why`, async (t) => {
    const p = await driver(t, npm);
    if (!p) return;
    const { results } = await run(p, { cls: 'SecretsManager', method: 'getSecretValue', params: { SecretId: 'gone' } }, fail('NotFound', 'no secret gone'));
    assert.equal(results.length, 1);
    assert.match(results[0].err, /Status.*500.*Message.*no secret gone/);
    const { results: r2, calls } = await run(p, { cls: 'SecretsManager', method: 'getSecretValue', params: { SecretId: 's', VersionId: 'v' } });
    assert.deepEqual(r2, [{ err: 'Query by VersionId is not yet supported' }]);
    assert.deepEqual(calls, []);
  });
}

test("ggcore's SDK returns a Promise without a callback", async (t) => {
  const p = await driver(t, false);
  const published = await run(p, { cls: 'IotData', method: 'publish', params: { topic: 't', payload: 'x' }, promise: true }, ok());
  assert.match(published.results[0].data, UUID);
  const refused = await run(p, { cls: 'IotData', method: 'publish', params: { topic: 't', payload: 'x' }, promise: true }, fail('Refused', 'not allowed'));
  assert.deepEqual(refused.results, [{ err: 'not allowed', code: 'Refused' }]);
  const secret = await run(p, { cls: 'SecretsManager', method: 'getSecretValue', params: { SecretId: 's' }, promise: true }, ok({}, SECRET_DOC));
  assert.deepEqual(secret.results, [{ data: SECRET_DOC }]);
});

test("ggcore's SDK: StreamManager is not provided; the interface version is 1.5", async (t) => {
  const { plugin } = await startFunction({
    'index.js': "const GG = require('aws-greengrass-core-sdk');\n" +
      "exports.handler = (e, c, cb) => cb(null, { sm: GG.StreamManager === undefined, v: GG.GreengrassInterfaceVersion });\n",
  });
  t.after(() => plugin.kill());
  assert.deepEqual(await plugin.invokeJson({}), { sm: true, v: '1.5' });
});

test('npm aws-greengrass-core-sdk@1.7.0: its log lines reach the function log with levels', async (t) => {
  const p = await driver(t, true);
  if (!p) return;
  await run(p, { cls: 'IotData', method: 'publish', params: { topic: 't/log', payload: 'pp' } }, ok());
  assert.ok(p.logs.some((l) => l.level === 1 && l.text === 'Publishing message on topic "t/log" with Payload "pp"'), JSON.stringify(p.logs));
  assert.ok(p.logs.some((l) => l.level === 0 && /^Invoking local lambda arn:aws:lambda:::function:GGRouter/.test(l.text)));
  assert.ok(!p.logs.some((l) => l.level >= 3), `no ERROR lines (StreamManager loads): ${JSON.stringify(p.logs)}`);
});
