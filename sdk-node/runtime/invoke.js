'use strict';
// One invocation: the event, the context, the handler call and how it completes.
//
// Completion, the first one wins (later ones are logged and ignored):
//   1. callback(err, result) / context.succeed/fail/done — posted on nextTick,
//      without waiting for the event loop (Greengrass semantics); err wins.
//   2. the handler returns a thenable — fulfilment is the result, rejection the error.
//   3. neither — when the event loop drains ('beforeExit'), result null.
// Kinds: callback errors are Handled; a synchronous throw or a rejected returned
// promise is Unhandled. The instance stays up either way.

const util = require('util');
const { isUtf8 } = require('buffer');
const { WARN, ERROR } = require('./console');

const fatalDecoder = new TextDecoder('utf-8', { fatal: true });

function validUtf8(buf) {
  if (typeof isUtf8 === 'function') return isUtf8(buf);
  try {
    fatalDecoder.decode(buf);
    return true;
  } catch (_) {
    return false;
  }
}

function isError(x) {
  return x instanceof Error || util.types.isNativeError(x);
}

// The error document the core returns to the caller.
function errorDocument(err) {
  if (err === null || err === undefined) return { errorMessage: null };
  if (!isError(err)) return { errorMessage: String(err) };
  const stack = typeof err.stack === 'string' ? err.stack.split('\n') : [];
  return {
    errorMessage: err.message,
    errorType: err.name,
    stackTrace: stack.filter((line) => /^\s+at /.test(line)).map((line) => line.replace(/^\s+at /, '')),
  };
}

// Result bytes: Buffers and typed arrays as they are, strings as UTF-8 in
// binary mode, everything else as JSON (undefined → null). Throws when the
// value cannot be serialised.
function resultBytes(result, binary) {
  if (Buffer.isBuffer(result)) return result;
  if (ArrayBuffer.isView(result)) return Buffer.from(result.buffer, result.byteOffset, result.byteLength);
  if (binary && typeof result === 'string') return Buffer.from(result, 'utf8');
  let text;
  try {
    text = JSON.stringify(result === undefined ? null : result);
  } catch (err) {
    throw new Error(`the handler's result cannot be serialised to JSON: ${err.message}`);
  }
  // JSON.stringify gives undefined for functions and symbols.
  if (text === undefined) throw new Error(`the handler's result (a ${typeof result}) cannot be serialised to JSON`);
  return Buffer.from(text, 'utf8');
}

class Invoker {
  // fn/self: the handler and its module; start: the `start` message.
  constructor(channel, start, fn, self) {
    this.channel = channel;
    this.fn = fn;
    this.self = self;
    this.binary = start.encoding === 'binary';
    this.functionArn = String(start.functionArn || '');
    const parts = this.functionArn.split(':');
    this.functionName = parts[6] || this.functionArn;
    this.functionVersion = parts[7] || '$LATEST';
    this.logGroupName = `/aws/greengrass/Lambda/${parts[3] || ''}/${parts[4] || ''}/${this.functionName}`;
    // A string, as cloud Lambda's Node runtime gives it.
    this.memoryLimitInMB = String(start.memoryLimitMb);
    this.running = new Map(); // id → settle(kind, value)
    process.on('beforeExit', () => this.drained());
  }

  event(payload) {
    if (this.binary) return payload;
    if (payload.length === 0) return {};
    const text = validUtf8(payload) ? payload.toString('utf8') : null;
    if (text !== null) {
      try {
        return JSON.parse(text);
      } catch (_) {
        // fall through
      }
    }
    this.channel.log(
      WARN,
      `ggcore: EncodingType is json but the payload is not JSON; passing it as ${text === null ? 'a Buffer' : 'a string'}`,
    );
    return text === null ? payload : text;
  }

  clientContext(text) {
    let cc = {};
    if (text) {
      try {
        cc = JSON.parse(text);
      } catch (err) {
        this.channel.log(WARN, `ggcore: the client context is not JSON (${err.message}); using {}`);
      }
      if (cc === null || typeof cc !== 'object') cc = {};
    }
    return { client: {}, Custom: cc.custom || cc.Custom || {}, env: {} };
  }

  context(header, callback, finish) {
    const deadline = Number(header.deadlineUnixMs) || 0;
    return {
      invokedFunctionArn: this.functionArn,
      awsRequestId: String(header.invocationId || ''),
      functionName: this.functionName,
      functionVersion: this.functionVersion,
      clientContext: this.clientContext(header.clientContext),
      memoryLimitInMB: this.memoryLimitInMB,
      logGroupName: this.logGroupName,
      logStreamName: 'ggcore',
      identity: undefined,
      // Kept for compatibility; the callback never waits for the event loop
      // (Greengrass semantics), whatever this says.
      callbackWaitsForEmptyEventLoop: true,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      succeed: (result) => finish(false, undefined, result),
      fail: (err) => finish(true, err),
      done: (err, result) => callback(err, result),
    };
  }

  invoke(header, payload) {
    const id = header.id;
    const requestId = String(header.invocationId || '');
    let settled = false;
    const settle = (kind, value) => {
      if (settled) {
        const what = kind === 'result' ? 'a result' : `an error (${util.inspect(value)})`;
        this.channel.log(WARN, `ggcore: request ${requestId} already completed; ${what} that came later was ignored`);
        return false;
      }
      settled = true;
      this.running.delete(id);
      if (this.running.size === 0) this.channel.setHoldOpen(true);
      return true;
    };
    this.running.set(id, settle);
    this.channel.setHoldOpen(false);

    // failed: an error (Handled) even when err itself is null or undefined.
    const finish = (failed, err, result) => {
      if (!settle(failed ? 'error' : 'result', err)) return;
      process.nextTick(() => {
        if (failed) this.sendError(id, err, false);
        else this.sendResult(id, result);
      });
    };
    const callback = (err, result) => finish(err !== null && err !== undefined, err, result);

    let returned;
    try {
      const event = this.event(payload);
      const context = this.context(header, callback, finish);
      returned = this.fn.call(this.self, event, context, callback);
    } catch (err) {
      if (settle('error', err)) {
        this.logUnhandled(requestId, 'threw', err);
        this.sendError(id, err, true);
      }
      return;
    }
    if (returned !== null && (typeof returned === 'object' || typeof returned === 'function') &&
        typeof returned.then === 'function') {
      try {
        returned.then(
          (result) => {
            if (settled) return; // a callback came first: the usual async-handler pattern
            settle('result', result);
            this.sendResult(id, result);
          },
          (err) => {
            if (!settle('error', err)) return;
            this.logUnhandled(requestId, 'rejected', err);
            this.sendError(id, err, true);
          },
        );
      } catch (err) {
        if (settle('error', err)) this.sendError(id, err, true);
      }
    }
  }

  // The event loop is empty: invocations that neither called back nor returned
  // a promise complete with null.
  drained() {
    for (const [id, settle] of [...this.running]) {
      if (settle('result', null)) this.sendResult(id, null);
    }
  }

  sendResult(id, result) {
    let bytes;
    try {
      bytes = resultBytes(result, this.binary);
    } catch (err) {
      this.channel.log(ERROR, `ggcore: ${err.message}`);
      this.sendError(id, err, false);
      return;
    }
    this.channel.send({ t: 'result', id }, bytes);
  }

  sendError(id, err, unhandled) {
    let doc;
    try {
      doc = JSON.stringify(errorDocument(err));
    } catch (e) {
      doc = JSON.stringify({ errorMessage: `an error that cannot be described (${e.message})` });
    }
    this.channel.send({ t: 'error', id, unhandled }, doc);
  }

  logUnhandled(requestId, how, err) {
    const detail = isError(err) && err.stack ? err.stack : util.inspect(err);
    this.channel.log(ERROR, `ggcore: the handler ${how} for request ${requestId}: ${detail}`);
  }
}

module.exports = { Invoker, errorDocument, resultBytes };
