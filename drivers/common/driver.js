'use strict';
/*
 * The driver protocol (docs/driver.md) for node drivers of real SDKs: JSON-line commands on stdin,
 * events and replies on stdout, debug on stderr. npm-free, shared by every node driver.
 *
 *   const { Driver, CommandError } = require('../common/driver');
 *   const driver = new Driver({ name: 'x', commands: { connect: async (args) => ..., ... },
 *                               quit: async () => disconnectTheSdk() });
 *   driver.start();
 *
 * The SDK's own trouble is reported, never hidden: uncaught exceptions and unhandled rejections
 * become `sdk.uncaught_exception` / `sdk.unhandled_rejection` events and the driver keeps running.
 */

// Loading the time compression here too makes `node driver.js --timescale S` work without -r.
// It must come before any SDK module is required (drivers require this file first).
const { timescale } = require('./timescale');
const readline = require('readline');

const SECRET_KEY = /^(token|access_?token|ws_?access_?token|wsc_?token|refresh_?token|authkey|auth_?key|authorization|password|secret|client_?secret)$/i;
const TEXT_RULES = [
  [/((?:access_token|ws_access_token|wsc|token|authkey)=)[^&#\s"']*/gi, '$1***'],
  [/("(?:token|access_token|ws_access_token|wsc_token|refresh_token|authkey|authorization|password)"\s*:\s*)"(?:[^"\\]|\\.)*"/gi, '$1"***"'],
  [/(Bearer\s+)[^\s"',]+/gi, '$1***'],
];

/** A reply with ok:false and this type, e.g. new CommandError('AuthFailed', 'the server said no'). */
class CommandError extends Error {
  constructor(type, message) {
    super(message);
    this.type = type;
  }
}

function redactText(text) {
  let out = String(text);
  for (const [re, to] of TEXT_RULES) out = out.replace(re, to);
  return out;
}

/** The error's class: SDK errors often keep name "Error" (they do not set it). */
function errorName(err) {
  if (err.name && err.name !== 'Error') return err.name;
  return (err.constructor && err.constructor.name) || 'Error';
}

/** A JSON-safe copy of any value; with `redact`, secret-looking keys and strings are masked. */
function summarize(value, { redact = true, depth = 0, seen = new WeakSet() } = {}) {
  const next = (v) => summarize(v, { redact, depth: depth + 1, seen });
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string': return redact ? redactText(value) : value;
    case 'number': return Number.isFinite(value) ? value : String(value);
    case 'boolean': return value;
    case 'bigint': return String(value);
    case 'symbol': return String(value);
    case 'function': return `[Function ${value.name || 'anonymous'}]`;
    default: break;
  }
  if (value instanceof Error) {
    const out = { name: errorName(value), message: redact ? redactText(value.message) : value.message };
    for (const key of ['code', 'status', 'errno', 'syscall']) {
      if (value[key] !== undefined && typeof value[key] !== 'object') out[key] = value[key];
    }
    return out;
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    return { type: value.constructor.name, length: value.byteLength };
  }
  // a socket object (ws WebSocket): who it is, not its internals
  if (typeof value.readyState === 'number' && typeof value.url === 'string') {
    return { type: 'WebSocket', url: redactText(value.url), readyState: value.readyState };
  }
  if (seen.has(value)) return '[Circular]';
  if (depth > 6) return `[${value.constructor ? value.constructor.name : 'Object'}]`;
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.slice(0, 200).map(next);
    if (value instanceof Map) return next(Object.fromEntries(value));
    if (value instanceof Set) return next([...value]);
    const out = {};
    for (const key of Object.keys(value)) {
      if (key.startsWith('_')) continue; // private state of SDK objects
      out[key] = redact && SECRET_KEY.test(key) && value[key] != null ? '***' : next(value[key]);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

function argValue(argv, name) {
  const i = argv.indexOf(name);
  if (i >= 0 && i + 1 < argv.length) return argv[i + 1];
  const eq = argv.find((a) => a.startsWith(`${name}=`));
  return eq ? eq.slice(name.length + 1) : undefined;
}

// mulberry32: a tiny seeded PRNG so `--seed N` makes an SDK's Math.random jitter reproducible
function seededRandom(seed) {
  let a = seed >>> 0;
  return function random() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Driver {
  /**
   * commands: {name: async (args) => result}; `quit` is added (it calls `quit` then exits 0).
   * argv/env default to the process's; --seed N (or SQUALL_SEED) seeds Math.random.
   */
  constructor({ name, commands, behaviours = [], quit, argv = process.argv.slice(2), env = process.env }) {
    this.name = name;
    this.commands = { ...commands };
    // what the client does that no command shows (a scenario `requires:` it, docs/driver.md)
    this.behaviours = [...behaviours];
    this.quitHook = quit || (async () => undefined);
    this.timescale = timescale;
    this.debugOn = argv.includes('--debug') || Boolean(env.SQUALL_DEBUG);
    const seed = argValue(argv, '--seed') ?? env.SQUALL_SEED;
    this.seed = seed !== undefined && seed !== '' && Number.isFinite(Number(seed)) ? Number(seed) : null;
    if (this.seed !== null) Math.random = seededRandom(this.seed);
    this.secrets = new Set();
    this.pending = new Set(); // ids of commands not yet replied to
    this.quitting = false;
    this.t0 = performance.now(); // protocol ms once timescale.js is loaded
    // stdout carries the protocol: an SDK's console.log/info/debug (RingCentral's debugMode) goes to stderr
    const toStderr = new console.Console({ stdout: process.stderr, stderr: process.stderr });
    for (const level of ['log', 'info', 'debug', 'warn', 'error', 'trace', 'dir', 'table']) console[level] = toStderr[level].bind(toStderr);
  }

  /** Protocol seconds since the driver started. */
  now() {
    return Number(((performance.now() - this.t0) / 1000).toFixed(6));
  }

  debug(...parts) {
    if (this.debugOn) process.stderr.write(`[${this.name} ${this.now()}] ${parts.map(String).join(' ')}\n`);
  }

  /** Never let this value reach stdout (a safety net; drivers also redact where secrets sit). */
  secret(value) {
    if (typeof value === 'string' && value.length >= 8) this.secrets.add(value);
  }

  write(obj, done) {
    let line = JSON.stringify(obj);
    for (const s of this.secrets) line = line.split(s).join('***');
    process.stdout.write(`${line}\n`, done);
  }

  /** A vocabulary event: data is made JSON-safe but otherwise kept as given. */
  event(name, data = {}) {
    this.write({ event: name, data: summarize(data, { redact: false }), t: this.now() });
  }

  /** An SDK event forwarded as it came (masked: its arguments may carry tokens). */
  sdkEvent(name, args) {
    let data = {};
    if (args.length === 1) {
      const one = summarize(args[0]);
      data = one !== null && typeof one === 'object' && !Array.isArray(one) ? one : { value: one };
    } else if (args.length > 1) {
      data = { args: args.map((a) => summarize(a)) };
    }
    this.write({ event: `sdk.${name}`, data, t: this.now() });
  }

  /**
   * Forward every event the emitter emits as `sdk.<prefix><name>`, before its own listeners run
   * (node has no wildcard listener, so the instance's emit is wrapped). `mask(name, args)` may
   * return the args with secrets replaced.
   */
  forward(emitter, prefix = '', mask = null) {
    const emit = emitter.emit;
    const driver = this;
    emitter.emit = function forwardedEmit(name, ...args) {
      if (name !== 'newListener' && name !== 'removeListener') {
        try {
          driver.sdkEvent(`${prefix}${String(name)}`, mask ? mask(String(name), args) : args);
        } catch (err) {
          driver.debug('cannot forward', String(name), err && err.stack);
        }
      }
      return emit.call(this, name, ...args);
    };
    return emitter;
  }

  reply(id, ok, value, type) {
    if (id !== undefined && id !== null) {
      if (!this.pending.has(id)) return; // already answered (quit interrupted it)
      this.pending.delete(id);
    }
    if (ok) this.write({ reply: id ?? null, ok: true, result: summarize(value, { redact: false }) });
    else this.write({ reply: id ?? null, ok: false, error: redactText(value), type });
  }

  async run(line) {
    let command;
    try {
      command = JSON.parse(line);
    } catch (err) {
      this.write({ reply: null, ok: false, error: `not JSON: ${err.message}`, type: 'BadCommand' });
      return;
    }
    if (command === null || typeof command !== 'object' || Array.isArray(command)) {
      this.write({ reply: null, ok: false, error: 'a command is a JSON object', type: 'BadCommand' });
      return;
    }
    const { id = null, cmd } = command;
    const args = command.args && typeof command.args === 'object' ? command.args : {};
    if (id !== null) this.pending.add(id);
    if (cmd === 'quit') {
      await this.quit(id);
      return;
    }
    const handler = Object.prototype.hasOwnProperty.call(this.commands, cmd) ? this.commands[cmd] : null;
    if (!handler) {
      this.reply(id, false, `unknown command ${JSON.stringify(cmd)} (this driver has: ${this.commandNames().join(', ')})`, 'UnknownCommand');
      return;
    }
    this.debug('command', id, cmd);
    try {
      this.reply(id, true, await handler(args));
    } catch (err) {
      if (err instanceof CommandError) this.reply(id, false, err.message, err.type);
      else this.reply(id, false, (err && err.message) || String(err), err instanceof Error ? errorName(err) : 'Error');
    }
  }

  commandNames() {
    return [...Object.keys(this.commands), 'quit'];
  }

  /** Disconnect (bounded to 3 real seconds), reply, answer what is left, exit 0. */
  async quit(id) {
    if (this.quitting) {
      if (id !== null) this.reply(id, true, null);
      return;
    }
    this.quitting = true;
    let timer;
    const limit = new Promise((resolve) => { timer = setTimeout(() => resolve('timeout'), 3000 / this.timescale); });
    try {
      const outcome = await Promise.race([this.quitHook().then(() => 'done'), limit]);
      if (outcome === 'timeout') this.event('driver.warning', { message: 'the SDK did not finish disconnecting within 3 real seconds' });
    } catch (err) {
      this.event('driver.warning', { message: `disconnect on quit failed: ${redactText(err && err.message)}` });
    }
    clearTimeout(timer);
    for (const other of [...this.pending]) {
      if (other !== id) this.reply(other, false, 'the driver quit before this command finished', 'Interrupted');
    }
    this.pending.delete(id);
    // the last line written, then exit once it is flushed
    const bye = () => process.exit(0);
    if (id !== null) this.write({ reply: id, ok: true, result: null }, bye);
    else process.stdout.write('', bye);
  }

  start() {
    // nobody reads stdout any more: nothing to report to, so stop (and never loop on EPIPE)
    process.stdout.on('error', () => process.exit(0));
    process.on('uncaughtException', (err) => {
      this.write({ event: 'sdk.uncaught_exception', data: { message: redactText(err && err.message), stack: redactText(err && err.stack) }, t: this.now() });
    });
    process.on('unhandledRejection', (reason) => {
      const message = reason instanceof Error ? reason.message : JSON.stringify(summarize(reason));
      const data = { message: redactText(message) };
      if (reason instanceof Error) data.stack = redactText(reason.stack);
      this.write({ event: 'sdk.unhandled_rejection', data, t: this.now() });
    });
    this.write({ event: 'driver_ready', data: { commands: this.commandNames(), behaviours: this.behaviours, timescale: this.timescale, seed: this.seed }, t: 0 });
    const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    rl.on('line', (line) => { if (line.trim()) this.run(line); });
    rl.on('close', () => { this.quit(null); });
  }
}

module.exports = { Driver, CommandError, summarize, redactText, errorName };
