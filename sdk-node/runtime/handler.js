'use strict';
// Loads a function's handler the way Greengrass does: the Executable
// `lib/app.handler` names module `lib/app` and function `handler` (the module is
// everything before the last '.'). The module is looked for relative to the code
// directory first (`index` → <codeDir>/index.js), then as a bare name through
// the module paths (the code's node_modules, then NODE_PATH). Its module-level
// code runs here, once.

const Module = require('module');
const path = require('path');
const url = require('url');

class StartError extends Error {}

function splitHandler(handler) {
  const text = String(handler || '');
  const dot = text.lastIndexOf('.');
  if (dot <= 0 || dot === text.length - 1) {
    throw new StartError(`handler '${text}' is not <module>.<function> (for example 'index.handler')`);
  }
  return { moduleName: text.slice(0, dot), functionName: text.slice(dot + 1) };
}

function resolveModule(codeDir, moduleName) {
  const codeRequire = Module.createRequire(path.join(codeDir, 'noop.js'));
  const attempts = [];
  if (!path.isAbsolute(moduleName)) attempts.push(path.resolve(codeDir, moduleName));
  attempts.push(moduleName);
  const reasons = [];
  for (const request of attempts) {
    try {
      return { filename: codeRequire.resolve(request), codeRequire };
    } catch (err) {
      if (err.code !== 'MODULE_NOT_FOUND') throw err;
      reasons.push(request);
    }
  }
  throw new StartError(
    `cannot find module '${moduleName}' for the handler (looked for ${reasons.map((r) => `'${r}'`).join(' and ')}` +
      ` from ${codeDir})`,
  );
}

// Returns { fn, self } where self is the module's exports (the handler's
// `this`, as in Greengrass). ES modules are imported when require() refuses them.
async function loadHandler(codeDir, handler) {
  const { moduleName, functionName } = splitHandler(handler);
  const { filename, codeRequire } = resolveModule(codeDir, moduleName);
  let exportsObj;
  try {
    exportsObj = codeRequire(filename);
  } catch (err) {
    if (err && err.code === 'ERR_REQUIRE_ESM') {
      const ns = await import(url.pathToFileURL(filename).href);
      exportsObj = typeof ns[functionName] === 'function' ? ns : ns.default || ns;
    } else {
      const detail = err && err.stack ? err.stack : String(err);
      throw new StartError(`loading module '${moduleName}' (${filename}) failed: ${detail}`);
    }
  }
  const fn = exportsObj == null ? undefined : exportsObj[functionName];
  if (typeof fn !== 'function') {
    if (fn === undefined) throw new StartError(`module '${moduleName}' has no function '${functionName}'`);
    throw new StartError(`module '${moduleName}' exports '${functionName}' as a ${fn === null ? 'null' : typeof fn}, not a function`);
  }
  return { fn, self: exportsObj };
}

module.exports = { loadHandler, splitHandler, StartError };
