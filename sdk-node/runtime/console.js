'use strict';
// console.* → `log` frames with levels, written synchronously.
// console.debug → DEBUG, log/info → INFO, warn → WARN, error/trace → ERROR.
// Every argument is formatted (util.format), unlike Greengrass, which kept only
// the first. Other console methods (dir, table, ...) write to stdout, which the
// core also puts in the function's log.

const util = require('util');

const DEBUG = 0;
const INFO = 1;
const WARN = 2;
const ERROR = 3;

function install(channel) {
  const emit = (level) => (...args) => channel.log(level, util.format(...args));
  console.debug = emit(DEBUG);
  console.log = emit(INFO);
  console.info = emit(INFO);
  console.warn = emit(WARN);
  console.error = emit(ERROR);
  console.trace = (...args) => {
    const holder = { name: 'Trace', message: util.format(...args) };
    Error.captureStackTrace(holder, console.trace);
    channel.log(ERROR, holder.stack);
  };
}

module.exports = { install, DEBUG, INFO, WARN, ERROR };
