'use strict';
/*
 * squall driver for the real, unchanged Mixer chat socket (@mixer/client-node 3.5.0, whose Socket is
 * @mixer/chat-client-websocket 1.2.0) in node with `ws` 8. Protocol: docs/driver.md; mapping:
 * drivers/README.md. Run: node -r drivers/common/timescale.js drivers/mixer-sdk/driver.js
 *
 * The SDK is used as an application would: new Socket(ws, urls, options).boot(), auth(), call(),
 * on(eventName), close(). The only thing the driver adds is a subclass of `ws` handed to the SDK
 * as its WebSocket constructor, to see the wire text, the URL of each attempt and close codes.
 */

const { Driver, CommandError, errorName } = require('../common/driver'); // first: installs the time scaling
const { EventEmitter } = require('events');
const WebSocket = require('ws');
const { Socket, AuthenticationFailedError, TimeoutError, BadMessageError, NoMethodHandlerError, UnknownCodeError } = require('@mixer/client-node');

const STATUS = { [Socket.IDLE]: 'idle', [Socket.CONNECTED]: 'connected', [Socket.CLOSING]: 'closing', [Socket.CLOSED]: 'closed', [Socket.CONNECTING]: 'connecting' };
const SDK_STATUS = { [Socket.IDLE]: 'IDLE', [Socket.CONNECTED]: 'CONNECTED', [Socket.CLOSING]: 'CLOSING', [Socket.CLOSED]: 'CLOSED', [Socket.CONNECTING]: 'CONNECTING' };
// driver option (protocol seconds where a duration) -> SDK option (ms)
const OPTIONS = {
  ping_interval: ['pingInterval', 1000], ping_timeout: ['pingTimeout', 1000], call_timeout: ['callTimeout', 1000],
  client_id: ['clientId'], protocol_version: ['protocolVersion'], automatically_reconnect: ['automaticallyReconnect'],
};
const AUTH_FIELDS = ['channel_id', 'user_id'];

const config = { urls: null, token: null, user: null, mixer: {} };
let sock = null; // the SDK's Socket
let sockKey = null; // the socket-shaping config it was built with
let raw = null; // the latest raw ws: {ws, url, code, reason}
let ready = false; // `connected` seen since the last drop
let attempt = 0; // reconnects since the last `connected`
let closeReason = null; // set when the driver closes the socket
let authError = null; // the SDK's AuthenticationFailedError, if any
let lastError = null;
const topics = new Map(); // topic -> listener on the Socket
const life = new EventEmitter(); // connected / closed / auth_failed, for commands waiting on them

const driver = new Driver({
  name: 'mixer-sdk',
  commands: { configure, connect, disconnect, reconnect, subscribe, unsubscribe, call, status },
  quit: () => disconnect(),
});

// --- the raw socket the SDK opens: a plain `ws` with listeners added before the SDK's -----------

class ObservedWebSocket extends WebSocket {
  constructor(address, ...rest) {
    super(address, ...rest);
    const rec = { ws: this, url: baseUrl(address), address, code: null, reason: null };
    raw = rec;
    this.on('message', (data, isBinary) => {
      const text = isBinary ? `<binary ${data.length} bytes>` : data.toString();
      driver.event('packet', { type: packetType(text), text });
    });
    this.on('close', (code, reason) => { rec.code = code; rec.reason = reason.toString(); });
  }
}

// the SDK appends ?version=..&Client-ID=.. to every address (Socket.js getAddress)
function baseUrl(address) {
  const i = address.lastIndexOf('?version=');
  return i >= 0 ? address.slice(0, i) : address;
}

function packetType(text) {
  try { return JSON.parse(text).type ?? null; } catch { return null; }
}

// the auth packet carries the authkey (and access key): never print them
function maskAuth(data) {
  if (!data || data.method !== 'auth' || !Array.isArray(data.arguments)) return data;
  const args = data.arguments.map((a, i) => (i >= 2 && a != null ? '***' : a));
  return { ...data, arguments: args };
}

// --- the Socket and its events ---------------------------------------------------------------------

function socketConfig() {
  if (!config.urls || !config.urls.length) throw new CommandError('CommandError', "no server URL: pass 'url' or 'urls' to configure or connect");
  const options = {};
  for (const [key, value] of Object.entries(config.mixer)) {
    if (!OPTIONS[key]) continue;
    const [name, factor] = OPTIONS[key];
    options[name] = factor ? Number(value) * factor : value;
  }
  return { urls: [...config.urls], options };
}

function ensureSocket() {
  const wanted = socketConfig();
  const key = JSON.stringify(wanted);
  if (sock && key === sockKey) return sock;
  if (sock) {
    const idle = sock.status === Socket.IDLE || sock.status === Socket.CLOSED;
    if (!idle) throw new CommandError('InvalidState', `cannot change urls or mixer options while the socket is ${STATUS[sock.status]}; disconnect first`);
    if (sock.getSpoolLength()) throw new CommandError('InvalidState', `cannot change urls or mixer options: ${sock.getSpoolLength()} calls are spooled on the current socket`);
    sock.removeAllListeners();
  }
  const s = new Socket(ObservedWebSocket, wanted.urls, wanted.options);
  driver.forward(s, '', (name, args) => (name === 'sent' || name === 'spooled' ? [maskAuth(args[0]), ...args.slice(1)] : args));
  s.on('error', onError); // without it an 'error' emit ends the process
  s.on('connected', onConnected);
  s.on('reconnecting', onReconnecting);
  s.on('closed', onClosed);
  s.on('authresult', (result) => driver.event('authenticated', { ...(result && typeof result === 'object' ? result : { result }) }));
  s.on('spooled', (data) => driver.event('spooled', { type: data.type, id: data.id, method: data.method }));
  s.on('sent', (data) => driver.event('sent', { type: data.type, text: JSON.stringify(maskAuth(data)) }));
  for (const [topic, listener] of topics) s.on(topic, listener);
  sock = s;
  sockKey = key;
  return s;
}

function onConnected() {
  ready = true;
  attempt = 0;
  driver.event('connected', { url: raw && raw.url, user: config.user });
  life.emit('connected');
}

function onReconnecting({ interval }) {
  const code = raw ? raw.code : null;
  const reason = (raw && raw.reason) || (lastError ? lastError.message : '');
  if (ready) driver.event('disconnected', { code, reason, reconnecting: true });
  else driver.event('connect_failed', { url: raw && raw.url, code, reason });
  ready = false;
  attempt += 1;
  // the SDK takes the next address round-robin at boot (Socket.js getAddress)
  const next = sock._addresses[(sock._addressOffset + 1) % sock._addresses.length];
  driver.event('reconnecting', { attempt, delay: interval / 1000, url: next });
}

function onClosed() {
  const code = raw ? raw.code : null;
  const reason = closeReason || (authError ? authError.message : (raw && raw.reason) || 'closed');
  driver.event('disconnected', { code, reason, reconnecting: false });
  driver.event('closed', { reason, error: authError ? 'AuthFailed' : null });
  ready = false;
  life.emit('closed', reason);
}

function errorKind(err) {
  if (err instanceof AuthenticationFailedError) return 'auth_failed';
  if (err instanceof BadMessageError) return 'bad_frame';
  if (err instanceof NoMethodHandlerError) return 'unexpected';
  if (err instanceof TimeoutError) return 'ping_timeout';
  if (err instanceof UnknownCodeError) return 'opt_out';
  return 'socket';
}

function onError(err) {
  lastError = err;
  const kind = errorKind(err);
  if (kind === 'auth_failed') {
    authError = err;
    driver.event('auth_failed', { reason: err.code ?? 'auth_failed', message: err.message });
  }
  driver.event('error', { kind, name: err instanceof Error ? errorName(err) : null, message: err && err.message, code: err && err.code });
  if (kind === 'auth_failed') life.emit('auth_failed', err);
}

/** Resolves at `connected`; AuthFailed / ConnectionFailed as the SDK reports them. */
function untilConnected(what, timeout) {
  return new Promise((resolve, reject) => {
    let timer = null;
    const done = (fn, value) => {
      life.off('connected', ok); life.off('closed', closed); life.off('auth_failed', failed);
      clearTimeout(timer);
      fn(value);
    };
    const ok = () => done(resolve);
    const closed = (reason) => done(reject, new CommandError('ConnectionFailed', `the SDK closed the socket before ${what} (${reason})`));
    const failed = (err) => done(reject, new CommandError('AuthFailed', `authentication failed: ${err.message}${err.code ? ` (${err.code})` : ''}`));
    life.on('connected', ok); life.on('closed', closed); life.on('auth_failed', failed);
    if (timeout != null) timer = setTimeout(() => done(reject, new CommandError('ConnectionFailed', `not connected within ${timeout}s (the SDK keeps retrying)`)), timeout * 1000);
  });
}

function snapshot() {
  if (!sock) return { status: 'idle', sdk_status: Socket.IDLE, sdk_status_name: 'IDLE', subscriptions: [...topics.keys()] };
  return {
    status: STATUS[sock.status] ?? String(sock.status),
    sdk_status: sock.status,
    sdk_status_name: SDK_STATUS[sock.status] ?? null,
    url: raw && raw.url,
    user: config.user,
    attempt,
    spooled: sock.getSpoolLength(),
    subscriptions: [...topics.keys()],
  };
}

// --- commands ----------------------------------------------------------------------------------------

async function configure(args) {
  const before = structuredClone(config);
  const ignored = [];
  for (const [key, value] of Object.entries(args)) {
    if (key === 'url') config.urls = [value];
    else if (key === 'urls') config.urls = Array.isArray(value) ? [...value] : [value];
    else if (key === 'token') config.token = value ?? null;
    else if (key === 'user') config.user = value ?? null;
    else if (key === 'mixer') Object.assign(config.mixer, value || {});
    else if (key !== 'timeout') ignored.push(key);
  }
  if (typeof config.token === 'string') driver.secret(config.token);
  try {
    if (config.urls) ensureSocket(); // a new Socket only when urls/options changed and it is idle
  } catch (err) {
    Object.assign(config, before); // refused: keep what the current socket was built with
    throw err;
  }
  const mixer = { ...config.mixer };
  return { urls: config.urls, user: config.user, token: config.token == null ? null : '***', mixer, ignored };
}

async function connect(args) {
  if (Object.keys(args).length) await configure(args);
  const s = ensureSocket();
  if (s.status === Socket.CONNECTED) return snapshot();
  const connected = untilConnected('authenticating', args.timeout);
  // anonymous: auth(channel, null, null); the SDK remembers the packet and sends it after WelcomeEvent
  const userId = config.token == null ? null : (config.mixer.user_id ?? config.user ?? null);
  s.auth(config.mixer.channel_id ?? 1, userId, config.token ?? null).catch(() => undefined);
  if (s.status === Socket.IDLE || s.status === Socket.CLOSED) {
    closeReason = null;
    authError = null;
    try {
      s.boot();
    } catch (err) {
      life.emit('closed', err.message); // e.g. an invalid URL: ws throws synchronously
    }
  }
  await connected;
  return snapshot();
}

async function disconnect() {
  if (!sock || sock.status === Socket.IDLE || sock.status === Socket.CLOSED) return snapshot();
  closeReason = 'client disconnect';
  const closed = new Promise((resolve) => life.once('closed', resolve));
  sock.close();
  if (sock.status === Socket.CLOSED) {
    // between attempts there is no socket: the SDK cancels its timer and emits nothing
    driver.event('closed', { reason: closeReason, error: null, sdk_event: false });
    life.emit('closed', closeReason);
  }
  await closed;
  return snapshot();
}

async function reconnect(args) {
  const s = ensureSocket();
  if (s.status === Socket.IDLE || s.status === Socket.CLOSED) return connect(args);
  const back = untilConnected('reconnecting', args.timeout);
  // close the raw socket only: the SDK sees an unexpected close and reconnects with its backoff
  if (s.ws) s.ws.close(1000, 'client reconnect');
  await back;
  return snapshot();
}

function topicList(args) {
  const list = args.topics ?? args.topic;
  if (typeof list === 'string') return [list];
  if (!Array.isArray(list) || !list.length) throw new CommandError('CommandError', "'topics' must be a non-empty list of event names");
  return list.map(String);
}

async function subscribe(args) {
  const list = topicList(args);
  for (const topic of list) {
    if (topics.has(topic)) continue;
    // Mixer has no server-side subscription: an app listens for the event name
    const listener = (payload) => driver.event('notification', { topic, payload });
    topics.set(topic, listener);
    if (sock) sock.on(topic, listener);
  }
  return list;
}

async function unsubscribe(args) {
  const list = topicList(args);
  for (const topic of list) {
    const listener = topics.get(topic);
    if (listener && sock) sock.removeListener(topic, listener);
    topics.delete(topic);
  }
  return list;
}

async function call(args) {
  if (!args.method) throw new CommandError('CommandError', "call needs 'method'");
  const s = ensureSocket();
  const given = args.params ?? args.args;
  const params = given === undefined || given === null ? [] : Array.isArray(given) ? given : [given];
  const options = {};
  if (args.timeout != null) options.timeout = Math.max(1, Number(args.timeout) * 1000);
  if (args.no_reply) options.noReply = true;
  try {
    const result = await s.call(String(args.method), params, options);
    return result === undefined ? null : result;
  } catch (err) {
    if (err instanceof TimeoutError) {
      throw new CommandError('CallTimeout', `no reply to ${args.method} within ${(options.timeout || s.options.callTimeout) / 1000}s`);
    }
    // a reply's `error` is rejected as it came: a string ("UNOTFOUND") or {code, message}
    if (typeof err === 'string') throw new CommandError('RemoteError', `Mixer error ${err} from ${args.method}`);
    if (err && typeof err === 'object' && !(err instanceof Error)) {
      throw new CommandError('RemoteError', `Mixer error ${err.code ?? '?'}: ${err.message ?? JSON.stringify(err)} from ${args.method}`);
    }
    throw err;
  }
}

async function status() {
  return snapshot();
}

driver.start();
