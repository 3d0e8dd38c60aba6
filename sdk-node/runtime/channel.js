'use strict';
// The channel to the ggcore Node plugin: frames read from fd 3 (plugin → node)
// and written to fd 4 (node → plugin).
//
// Frame, both directions:
//   u32 LE header_len | u32 LE payload_len | header (UTF-8 JSON, has `t`) | payload (raw bytes)
//
// Writes are synchronous (fs.writeSync loop) so frames stay in order and nothing
// is lost when the function calls process.exit() right after a console.log.
// Reads go through a net.Socket on fd 3 (a non-blocking libuv pipe).

const fs = require('fs');
const net = require('net');

const READ_FD = 3;
const WRITE_FD = 4;
const PREFIX_LEN = 8;
const EMPTY = Buffer.alloc(0);

// A waiting slot for Atomics.wait: sleeping on it is how a blocked write waits
// for the plugin to drain the pipe without spinning.
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function sleepMs(ms) {
  Atomics.wait(sleeper, 0, 0, ms);
}

// Writes all of `buf` to `fd`, retrying partial writes; EAGAIN (a non-blocking
// fd whose pipe is full) waits with a growing back-off, EINTR retries at once.
function writeAll(fd, buf) {
  let off = 0;
  let backoff = 1;
  while (off < buf.length) {
    let n;
    try {
      n = fs.writeSync(fd, buf, off, buf.length - off);
    } catch (err) {
      if (err.code === 'EAGAIN' || err.code === 'EWOULDBLOCK') {
        sleepMs(backoff);
        backoff = Math.min(backoff * 2, 50);
        continue;
      }
      if (err.code === 'EINTR') continue;
      throw err;
    }
    off += n;
    backoff = 1;
  }
}

function asBytes(payload) {
  if (payload === undefined || payload === null) return EMPTY;
  if (Buffer.isBuffer(payload)) return payload;
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  if (ArrayBuffer.isView(payload)) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (payload instanceof ArrayBuffer) return Buffer.from(payload);
  throw new TypeError(`frame payload must be bytes or a string, not ${typeof payload}`);
}

function encodeFrame(header, payload) {
  const head = Buffer.from(JSON.stringify(header), 'utf8');
  const body = asBytes(payload);
  const prefix = Buffer.allocUnsafe(PREFIX_LEN);
  prefix.writeUInt32LE(head.length, 0);
  prefix.writeUInt32LE(body.length, 4);
  return Buffer.concat([prefix, head, body], PREFIX_LEN + head.length + body.length);
}

// Splits a byte stream into frames. push() returns the complete frames seen so
// far; a malformed header throws (a protocol error: the caller stops).
class FrameDecoder {
  constructor() {
    this.chunks = [];
    this.buffered = 0;
  }

  push(chunk) {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames = [];
    for (;;) {
      if (this.buffered < PREFIX_LEN) break;
      const prefix = this.peek(PREFIX_LEN);
      const headerLen = prefix.readUInt32LE(0);
      const payloadLen = prefix.readUInt32LE(4);
      const total = PREFIX_LEN + headerLen + payloadLen;
      if (this.buffered < total) break;
      const frame = this.take(total);
      const headerText = frame.toString('utf8', PREFIX_LEN, PREFIX_LEN + headerLen);
      let header;
      try {
        header = JSON.parse(headerText);
      } catch (err) {
        throw new Error(`frame header is not JSON (${err.message}): ${headerText.slice(0, 200)}`);
      }
      if (header === null || typeof header !== 'object' || typeof header.t !== 'string') {
        throw new Error(`frame header has no message type "t": ${headerText.slice(0, 200)}`);
      }
      frames.push({ header, payload: frame.subarray(PREFIX_LEN + headerLen) });
    }
    return frames;
  }

  // The first `n` buffered bytes, without consuming them.
  peek(n) {
    if (this.chunks[0].length < n) {
      this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    }
    return this.chunks[0].subarray(0, n);
  }

  take(n) {
    if (this.chunks[0].length < n) {
      this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    }
    const head = this.chunks[0];
    const out = head.subarray(0, n);
    if (head.length === n) this.chunks.shift();
    else this.chunks[0] = head.subarray(n);
    this.buffered -= n;
    return out;
  }
}

// An error the host answered a call with; `code` is the host's error code name
// (BadRequest, NotFound, Full, Refused, TooLarge, Unavailable, Internal).
function hostError(header) {
  const err = new Error(header.message || `the core refused the request (${header.code || 'no code'})`);
  err.code = header.code || 'Internal';
  return err;
}

class Channel {
  // onFrame(header, payload) gets every plugin → node frame except `reply`,
  // which completes the call() it answers. onEnd() runs at EOF on fd 3.
  constructor({ onFrame, onEnd, onProtocolError }) {
    this.onFrame = onFrame;
    this.nextCorr = 1;
    this.pending = new Map();
    this.holdOpen = true; // keep the process alive on the reader
    this.decoder = new FrameDecoder();
    this.reader = new net.Socket({ fd: READ_FD, readable: true, writable: false });
    this.reader.on('data', (chunk) => {
      let frames;
      try {
        frames = this.decoder.push(chunk);
      } catch (err) {
        onProtocolError(err);
        return;
      }
      for (const { header, payload } of frames) {
        if (header.t === 'reply') this.complete(header, payload);
        else this.onFrame(header, payload);
      }
    });
    this.reader.on('end', onEnd);
    this.reader.on('error', (err) => onProtocolError(new Error(`reading fd ${READ_FD} failed: ${err.message}`)));
  }

  // Sends one frame; synchronous. A plugin that is gone (EPIPE) ends node.
  send(header, payload) {
    const frame = encodeFrame(header, payload);
    try {
      writeAll(WRITE_FD, frame);
    } catch (err) {
      if (err.code === 'EPIPE' || err.code === 'EBADF') process.exit(0);
      throw err;
    }
  }

  log(level, message) {
    this.send({ t: 'log', level }, String(message));
  }

  // Sends a `call` frame; cb(err, replyHeader, replyPayload) runs on the event
  // loop when the plugin answers (never synchronously).
  call(fields, payload, cb) {
    const corr = this.nextCorr++;
    this.pending.set(corr, cb);
    this.updateRef();
    try {
      this.send({ t: 'call', corr, ...fields }, payload);
    } catch (err) {
      this.pending.delete(corr);
      this.updateRef();
      process.nextTick(cb, err);
    }
  }

  complete(header, payload) {
    const cb = this.pending.get(header.corr);
    if (cb === undefined) {
      this.log(2, `ggcore: a reply for unknown call ${header.corr} was ignored`);
      return;
    }
    this.pending.delete(header.corr);
    this.updateRef();
    if (header.ok) cb(null, header, payload);
    else cb(hostError(header), header, payload);
  }

  // While an invocation runs the reader does not keep the process alive, so
  // 'beforeExit' tells when the handler's work has drained; outstanding calls
  // keep it alive (their replies arrive on the reader).
  setHoldOpen(hold) {
    this.holdOpen = hold;
    this.updateRef();
  }

  updateRef() {
    if (this.holdOpen || this.pending.size > 0) this.reader.ref();
    else this.reader.unref();
  }
}

module.exports = { Channel, FrameDecoder, encodeFrame, writeAll, hostError };
