'use strict';
// Framing: the decoder on split and joined chunks, and writes that meet a
// full pipe.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('child_process');
const path = require('path');
const { FrameDecoder, encodeFrame } = require('../runtime/channel');
const { startFunction } = require('./harness');

test('a frame is u32 LE header length, u32 LE payload length, JSON header, raw payload', () => {
  const frame = encodeFrame({ t: 'log', level: 1 }, Buffer.from([0, 1, 2]));
  const head = '{"t":"log","level":1}';
  assert.equal(frame.readUInt32LE(0), head.length);
  assert.equal(frame.readUInt32LE(4), 3);
  assert.equal(frame.toString('utf8', 8, 8 + head.length), head);
  assert.deepEqual([...frame.subarray(8 + head.length)], [0, 1, 2]);
});

test('the decoder reassembles frames split at every byte and splits joined ones', () => {
  const frames = [
    encodeFrame({ t: 'invoke', id: 1 }, 'é event'),
    encodeFrame({ t: 'reply', corr: 2, ok: true }),
    encodeFrame({ t: 'invoke', id: 3 }, Buffer.alloc(70000, 7)),
  ];
  const all = Buffer.concat(frames);
  const decoder = new FrameDecoder();
  const got = [];
  for (let i = 0; i < all.length; i += i < 200 ? 1 : 4096) got.push(...decoder.push(all.subarray(i, Math.min(all.length, i + (i < 200 ? 1 : 4096)))));
  const joined = new FrameDecoder().push(all);
  for (const list of [got, joined]) {
    assert.deepEqual(list.map((f) => f.header), [{ t: 'invoke', id: 1 }, { t: 'reply', corr: 2, ok: true }, { t: 'invoke', id: 3 }]);
    assert.equal(list[0].payload.toString('utf8'), 'é event');
    assert.equal(list[1].payload.length, 0);
    assert.ok(list[2].payload.equals(Buffer.alloc(70000, 7)));
  }
});

test('the decoder refuses a header that is not JSON or has no type', () => {
  const raw = (text) => {
    const head = Buffer.from(text);
    const prefix = Buffer.alloc(8);
    prefix.writeUInt32LE(head.length, 0);
    return Buffer.concat([prefix, head]);
  };
  assert.throws(() => new FrameDecoder().push(raw('{nope')), /frame header is not JSON/);
  assert.throws(() => new FrameDecoder().push(raw('{"id":1}')), /frame header has no message type "t"/);
});

test('writes to a non-blocking fd that fills up (EAGAIN) still deliver every byte in order', async () => {
  // The child makes its fd 3 non-blocking (a net.Socket does), then writes
  // frames much larger than the pipe holds while the parent is not reading.
  const script = `
    const net = require('net');
    const { writeAll, encodeFrame } = require(${JSON.stringify(path.resolve(__dirname, '../runtime/channel.js'))});
    new net.Socket({ fd: 3, readable: false, writable: true });
    for (let i = 0; i < 4; i++) writeAll(3, encodeFrame({ t: 'result', id: i }, Buffer.alloc(2 * 1024 * 1024, i)));
    process.exit(0);
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'inherit', 'inherit', 'pipe'] });
  const pipe = child.stdio[3];
  pipe.pause();
  await new Promise((r) => setTimeout(r, 200)); // let the child meet a full pipe
  const decoder = new FrameDecoder();
  const frames = [];
  pipe.on('data', (chunk) => frames.push(...decoder.push(chunk)));
  pipe.resume();
  const code = await new Promise((resolve) => child.on('exit', resolve));
  await new Promise((resolve) => (pipe.readableEnded ? resolve() : pipe.on('end', resolve)));
  assert.equal(code, 0);
  assert.deepEqual(frames.map((f) => f.header.id), [0, 1, 2, 3]);
  for (const f of frames) assert.ok(f.payload.equals(Buffer.alloc(2 * 1024 * 1024, f.header.id)));
});

test('a large event and a large result cross whole', async (t) => {
  const { plugin } = await startFunction(
    { 'index.js': "exports.handler = (e, c, cb) => cb(null, Buffer.concat([e, e]));\n" },
    { start: { encoding: 'binary' } },
  );
  t.after(() => plugin.kill());
  const event = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < event.length; i++) event[i] = i % 251;
  const frame = await plugin.invoke(event);
  assert.equal(frame.header.t, 'result');
  assert.ok(frame.payload.equals(Buffer.concat([event, event])));
});
