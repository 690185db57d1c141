'use strict';
/*
 * Time compression for an unchanged SDK: `node -r /abs/drivers/common/timescale.js driver.js`.
 *
 * S = `--timescale S` on the command line, else env SQUALL_TIMESCALE, else 1 (then nothing is
 * touched). One protocol second lasts S real seconds: S = 0.01 runs protocol time 100x faster.
 *
 * What it changes (installed once, before any SDK module loads, so modules that capture
 * `const {setTimeout} = require('timers')` at load time get the scaled versions too):
 *  - setTimeout / setInterval, global and `timers`: the delay is multiplied by S. Node's rules
 *    hold on both sides: a delay that is not a number >= 1 means 1 ms, the scaled delay is at
 *    least 1 real ms, and one past 2^31-1 real ms gets node's overflow treatment (1 ms, a warning).
 *  - `timers/promises` setTimeout / setInterval / scheduler.wait (and so util.promisify(setTimeout)),
 *    AbortSignal.timeout.
 *  - Date.now(), `new Date()` with no arguments, `Date()`: they advance at 1/S the real rate from
 *    the moment this file loaded (their value at that moment is the real wall-clock time).
 *  - performance.now() (global and perf_hooks): the same, so elapsed-time arithmetic is protocol time.
 *
 * What it cannot change:
 *  - socket-level timeouts of `net`/`http` (socket.setTimeout, request `timeout`, server timeouts):
 *    node arms them on internal timers. So ws's `handshakeTimeout` is NOT scaled (ws 8 passes it as
 *    the http request's `timeout`, lib/websocket.js `opts.timeout = opts.handshakeTimeout`), nor is
 *    axios' `timeout` option. ws's closeTimeout (30 s wait for the peer's close frame) uses the
 *    global setTimeout, so it IS scaled.
 *  - timers inside native addons, worker threads, child processes, and libuv/DNS timeouts.
 *  - process.hrtime(), process.uptime(), performance.timeOrigin, performance marks/measures,
 *    `new Date(x)` with arguments (an explicit time is kept as given).
 *  - delays shorter than 1 real ms collapse to 1 ms: under strong compression, timers due less
 *    than 1 real ms apart may fire in creation order instead of due order.
 */

const MARK = Symbol.for('squall.timescale');
const TIMEOUT_MAX = 2 ** 31 - 1;

function readScale(argv, env) {
  let raw;
  const i = argv.indexOf('--timescale');
  if (i >= 0) raw = argv[i + 1];
  const eq = argv.find((a) => a.startsWith('--timescale='));
  if (eq) raw = eq.slice('--timescale='.length);
  if (raw === undefined) raw = env.SQUALL_TIMESCALE;
  if (raw === undefined || raw === '') return 1;
  const s = Number(raw);
  if (!(s > 0) || !Number.isFinite(s)) {
    throw new Error(`timescale must be a positive number, got ${JSON.stringify(raw)}`);
  }
  return s;
}

function install(S) {
  if (globalThis[MARK]) return globalThis[MARK];
  const state = { timescale: S };
  globalThis[MARK] = state;
  if (S === 1) return state;

  // node's rules, on both sides of the scaling: a protocol delay that is not a number >= 1 means
  // 1 ms; the real delay is at least 1 ms; a real delay past node's maximum is left to node
  // (which warns and uses 1 ms), so a long protocol delay that fits once scaled still works
  const scale = (delay) => {
    let ms = Number(delay);
    if (!(ms >= 1)) ms = 1;
    const real = ms * S;
    return real > TIMEOUT_MAX ? real : Math.max(1, real);
  };

  const timers = require('timers');
  const promises = require('timers/promises');
  const util = require('util');
  const realSetTimeout = timers.setTimeout;
  const realSetInterval = timers.setInterval;

  const pSetTimeout = promises.setTimeout;
  const pSetInterval = promises.setInterval;
  promises.setTimeout = function setTimeout(delay, ...rest) { return pSetTimeout(scale(delay), ...rest); };
  promises.setInterval = function setInterval(delay, ...rest) { return pSetInterval(scale(delay), ...rest); };
  if (promises.scheduler && typeof promises.scheduler.wait === 'function') {
    const wait = promises.scheduler.wait.bind(promises.scheduler);
    promises.scheduler.wait = (delay, options) => wait(scale(delay), options);
  }

  function setTimeout(fn, delay, ...args) { return realSetTimeout(fn, scale(delay), ...args); }
  function setInterval(fn, delay, ...args) { return realSetInterval(fn, scale(delay), ...args); }
  setTimeout[util.promisify.custom] = promises.setTimeout;
  timers.setTimeout = globalThis.setTimeout = setTimeout;
  timers.setInterval = globalThis.setInterval = setInterval;

  if (typeof AbortSignal !== 'undefined' && typeof AbortSignal.timeout === 'function') {
    const realAbortTimeout = AbortSignal.timeout.bind(AbortSignal);
    AbortSignal.timeout = (delay) => realAbortTimeout(scale(delay));
  }

  // protocol clock: real elapsed time since now, divided by S
  const { performance } = require('perf_hooks');
  const realPerfNow = performance.now.bind(performance);
  const RealDate = Date;
  const perf0 = realPerfNow();
  const date0 = RealDate.now();
  const protocolPerf = () => perf0 + (realPerfNow() - perf0) / S;
  const protocolNow = () => Math.floor(date0 + (realPerfNow() - perf0) / S);
  Object.defineProperty(performance, 'now', {
    value: function now() { return protocolPerf(); }, configurable: true, writable: true,
  });

  function ScaledDate(...args) {
    if (!new.target) return new RealDate(protocolNow()).toString();
    return Reflect.construct(RealDate, args.length ? args : [protocolNow()], new.target);
  }
  Object.setPrototypeOf(ScaledDate, RealDate); // Date.parse, Date.UTC
  ScaledDate.prototype = RealDate.prototype; // instanceof Date keeps working
  ScaledDate.now = protocolNow;
  Object.defineProperty(ScaledDate, 'name', { value: 'Date' });
  Object.defineProperty(ScaledDate, 'length', { value: 7 });
  globalThis.Date = ScaledDate;

  // `import {setTimeout} from 'timers/promises'` in ESM sees the patched exports too
  require('module').syncBuiltinESMExports();
  return state;
}

module.exports = { timescale: install(readScale(process.argv.slice(2), process.env)).timescale, readScale };
