'use strict';
// ggcore's Node.js runtime: one process per function instance, started by the
// ggcore Node plugin as `node [flags] bootstrap.js direct|spare`, talking to it
// over fd 3 (plugin → node) and fd 4 (node → plugin). See the protocol document.
//
//   direct: the plugin already gave this process the function's environment,
//           working directory and user; it waits for `start`.
//   spare:  started ahead of need with a minimal environment; it preloads the
//           SDK and common builtins, then on `start` applies `become` (env,
//           umask, cwd, groups, gid, uid) before loading the function.

const Module = require('module');
const path = require('path');
const { Channel } = require('./runtime/channel');
const consoleLevels = require('./runtime/console');
const { loadHandler, StartError } = require('./runtime/handler');
const { Invoker } = require('./runtime/invoke');

const CHANNEL_KEY = Symbol.for('ggcore.channel');
const SDK_MODULES = ['aws-greengrass-common-js', 'aws-greengrass-ipc-sdk-js', 'aws-greengrass-core-sdk'];
const PRELOAD_BUILTINS = ['util', 'events', 'stream', 'buffer', 'crypto', 'net', 'http', 'https', 'os', 'path', 'url', 'zlib'];

const mode = process.argv[2];
if (mode !== 'direct' && mode !== 'spare') {
  process.stderr.write(`ggcore bootstrap: mode must be 'direct' or 'spare', not '${mode || ''}'\n`);
  process.exit(2);
}

let phase = 'waiting'; // waiting → starting → running
let invoker = null;

const channel = new Channel({
  onFrame: dispatch,
  // The plugin is gone or asks us to stop: end at once, timers or not.
  onEnd: () => process.exit(0),
  onProtocolError: (err) => {
    process.stderr.write(`ggcore bootstrap: protocol error from the plugin: ${err.message}\n`);
    process.exit(2);
  },
});

// What the shims (aws-greengrass-common-js, aws-greengrass-ipc-sdk-js) use to
// reach the plugin; process-global so a second copy of a shim finds it too.
Object.defineProperty(globalThis, CHANNEL_KEY, {
  value: Object.freeze({
    log: (level, message) => channel.log(level, message),
    call: (fields, payload, cb) => channel.call(fields, payload, cb),
  }),
  enumerable: false,
  configurable: false,
  writable: false,
});

process.on('SIGTERM', () => process.exit(0));

if (mode === 'spare') {
  for (const name of PRELOAD_BUILTINS) require(name);
  // ggcore's SDK reads the environment at call time, so loading it before the
  // function's environment is in place is safe.
  for (const name of SDK_MODULES) require(path.join(__dirname, 'node_modules', name));
}

function dispatch(header, payload) {
  switch (header.t) {
    case 'start':
      if (phase !== 'waiting') {
        channel.log(consoleLevels.ERROR, `ggcore: a second 'start' was ignored (the function is ${phase})`);
        return;
      }
      phase = 'starting';
      start(header).then(
        () => {
          phase = 'running';
          channel.send({ t: 'ready' });
        },
        (err) => {
          // Our own start errors say what went wrong; anything else keeps its stack.
          const message = err instanceof StartError ? err.message : err && err.stack ? err.stack : String(err);
          channel.send({ t: 'startFailed', message });
          process.exit(1);
        },
      );
      return;
    case 'invoke':
      if (invoker === null) {
        const doc = { errorMessage: `the function has not started (invoke ${header.id} came while ${phase})` };
        channel.send({ t: 'error', id: header.id, unhandled: true }, JSON.stringify(doc));
        return;
      }
      invoker.invoke(header, payload);
      return;
    case 'stop':
      process.exit(0);
      return;
    default:
      channel.log(consoleLevels.WARN, `ggcore: a message of unknown type '${header.t}' from the plugin was ignored`);
  }
}

async function start(header) {
  const codeDir = String(header.codeDir || '');
  if (!path.isAbsolute(codeDir)) throw new StartError(`codeDir must be an absolute path, not '${codeDir}'`);
  const sdkDir = header.sdkDir ? String(header.sdkDir) : __dirname;
  if (header.become) become(header.become, codeDir);
  // Node 14 and older only warned about an unhandled rejection; functions
  // written for those runtimes may rely on it. (A direct node gets the
  // --unhandled-rejections=warn flag instead; a spare was started without.)
  if (header.unhandledRejections === 'warn') {
    process.on('unhandledRejection', (reason) => {
      const text = reason && reason.stack ? reason.stack : String(reason);
      console.error(`(node) UnhandledPromiseRejectionWarning: ${text}`);
    });
  }
  // Direct: the plugin's library, loaded as a native module, marks node's
  // pipes to the plugin close-on-exec (a process the function starts must
  // not hold them) — the spare did this in become().
  // Best effort: the function's user may not be allowed to read the library
  // (then only that hardening is missing; node still dies with its worker).
  if (!header.become && header.armPath) {
    try {
      process.dlopen({ exports: {} }, header.armPath);
    } catch (err) {
      // Nothing to do.
    }
  }
  setModulePaths(codeDir, sdkDir);
  consoleLevels.install(channel);
  const { fn, self } = await loadHandler(codeDir, header.handler);
  invoker = new Invoker(channel, header, fn, self);
}

// Becomes the function (spare mode), in the protocol's order.
function become(b, codeDir) {
  const env = b.env && typeof b.env === 'object' ? b.env : {};
  for (const key of Object.keys(process.env)) delete process.env[key];
  for (const [key, value] of Object.entries(env)) process.env[key] = String(value);
  step('umask', () => {
    if (b.umask !== null && b.umask !== undefined) process.umask(b.umask);
  });
  step(`chdir to ${codeDir}`, () => process.chdir(codeDir));
  // Loaded once while still allowed to read it (the new user may not be);
  // loading it again after the change of user finds it already mapped and
  // runs its init again, which is what re-arms the parent-death signal.
  if (b.armPath) step(`loading ${b.armPath}`, () => process.dlopen({ exports: {} }, b.armPath));
  if (b.gid !== null && b.gid !== undefined) {
    step(`setgroups([${b.gid}])`, () => process.setgroups([b.gid]));
    step(`setgid(${b.gid})`, () => process.setgid(b.gid));
  }
  if (b.uid !== null && b.uid !== undefined) step(`setuid(${b.uid})`, () => process.setuid(b.uid));
  if (b.armPath) step(`arming the parent-death signal (${b.armPath})`, () => process.dlopen({ exports: {} }, b.armPath));
  // Armed after the worker may already have gone: then nobody would end us.
  if (b.parentPid && process.ppid !== b.parentPid) {
    throw new StartError(`the worker (pid ${b.parentPid}) ended while node became the function`);
  }
}

function step(what, fn) {
  try {
    fn();
  } catch (err) {
    throw new StartError(`becoming the function failed at ${what}: ${err.message}`);
  }
}

// NODE_PATH = the code directory, ggcore's SDK modules, the code's node_modules
// (as Greengrass), then whatever the environment had; re-read by the loader.
function setModulePaths(codeDir, sdkDir) {
  const ours = [codeDir, path.join(sdkDir, 'node_modules'), path.join(codeDir, 'node_modules')];
  const existing = (process.env.NODE_PATH || '').split(path.delimiter).filter((p) => p && !ours.includes(p));
  process.env.NODE_PATH = ours.concat(existing).join(path.delimiter);
  Module._initPaths();
}
