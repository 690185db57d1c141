'use strict';
/*
 * squall driver for the real genesys-cloud-streaming-client, unchanged: 14.2.1 (`--sdk 14`, the
 * last with the requestReconnect drain) or 19.4.1 (`--sdk 19`, the default; SQUALL_GENESYS_SDK
 * does the same). Commands: docs/driver.md; mapping: drivers/README.md, "genesys-sdk".
 *
 * The SDK is written for browsers: the shim below gives it the few globals it reads in node
 * (window, location, navigator.onLine/userAgent, document, sessionStorage). Nothing in the SDK
 * is patched; the driver only swaps stanza's WebSocket class for a subclass of `ws` that reports
 * each frame (`packet` / `sent`) and each socket's close.
 */
const { Driver, CommandError, redactText, errorName } = require('../common/driver');

// --- the browser globals the SDK reads (seed-protocols.md, "Running each real SDK headless") -----
const store = new Map();
globalThis.window = globalThis;
window.location = { href: 'http://localhost/', protocol: 'http:', host: 'localhost', hostname: 'localhost' };
window.addEventListener = () => {};
window.removeEventListener = () => {};
globalThis.document = globalThis.document || {};
if (!globalThis.navigator) globalThis.navigator = {};
Object.defineProperty(navigator, 'onLine', { value: true, configurable: true });
if (!navigator.userAgent) Object.defineProperty(navigator, 'userAgent', { value: 'node', configurable: true });
globalThis.sessionStorage = {
  getItem: (k) => (store.has(k) ? store.get(k) : null),
  setItem: (k, v) => store.set(k, String(v)),
  removeItem: (k) => store.delete(k),
};

function argValue(name) {
  const argv = process.argv.slice(2);
  const i = argv.indexOf(name);
  if (i >= 0 && i + 1 < argv.length) return argv[i + 1];
  const eq = argv.find((a) => a.startsWith(`${name}=`));
  return eq ? eq.slice(name.length + 1) : undefined;
}

const SDK = String(argValue('--sdk') || process.env.SQUALL_GENESYS_SDK || '19');
if (SDK !== '14' && SDK !== '19') {
  process.stderr.write(`genesys-sdk driver: --sdk must be 14 or 19, got ${JSON.stringify(SDK)}\n`);
  process.exit(2);
}
const PACKAGE = `genesys-cloud-streaming-client-${SDK}`;
const WebSocket = require('ws');
const platform = require('stanza/platform/node');
const Client = require(PACKAGE).default;
const VERSION = require(`${PACKAGE}/package.json`).version;
const softphone = require('./softphone'); // softphone.* commands: a call answered with libwebrtc

// --- frames on the wire --------------------------------------------------------------------------

const AUTH = /(<auth\b[^>]*>)[^<]*(<\/auth>)/g;
function masked(text) {
  return redactText(String(text).replace(AUTH, '$1***$2'));
}
function rootName(text) {
  const m = /^\s*<([A-Za-z_][\w.:-]*)/.exec(text);
  return m ? m[1] : null;
}

let socket = null; // { url, ws, opened, gone }
class ObservedWebSocket extends WebSocket {
  constructor(url, protocols, options) {
    super(url, protocols, options);
    const rec = { url: redactText(String(url)), ws: this, opened: false, gone: false };
    socket = rec;
    driver.event('sdk.socket', { url: rec.url });
    this.on('open', () => { rec.opened = true; });
    this.on('message', (data, isBinary) => {
      const text = isBinary ? `<binary ${data.length} bytes>` : data.toString();
      driver.event('packet', { type: rootName(text), text: masked(text) });
      if (text.includes('urn:xmpp:cxfr')) driver.event('drain_requested', { source: 'wire', sdk_callback: SDK === '14' });
    });
    this.on('close', (code, reason) => {
      rec.gone = true;
      driver.event('socket_closed', { url: rec.url, code, reason: reason.toString(), opened: rec.opened });
    });
  }

  send(data, ...rest) {
    const text = String(data);
    driver.event('sent', { type: rootName(text), text: masked(text) });
    return super.send(data, ...rest);
  }
}
platform.WebSocket = ObservedWebSocket;

// --- state -----------------------------------------------------------------------------------------

const config = { url: null, server: null, token: null, jwt: null, genesys: {} };
let client = null;
let connected = false;
let closing = false;
let topics = [];
let drainAnswer = 'none'; // the standing answer to requestReconnect (v14)
let drainCallback = null; // an unanswered requestReconnect callback
const handlers = new Map(); // topic -> handler given to subscribe

// answer_drain is v14's only: v19 has no requestReconnect to answer (it reconnects on a new
// channel at the cxfr iq: connection-transfer.js:12-17), so a scenario that `requires:
// [answer_drain]` (a deferred drain) is UNIMPLEMENTED for v19 rather than judged on a no-op
const drainCommands = SDK === '14' ? { answer_drain: answerDrain } : {};
// What each generation does that no command shows: v19 answers the cxfr iq on a new channel
// (connection-transfer.js:12-17) and keeps alive by server pings (client.js:521-541); v14 does
// neither (reconnector.js:75-95, ping.js), so the scenarios of those behaviours are not its
const BEHAVIOURS = SDK === '19' ? ['drain:new_channel', 'keepalive:server_pings'] : [];
const driver = new Driver({
  name: `genesys-sdk-${SDK}`,
  commands: { configure, connect, disconnect, reconnect, subscribe, unsubscribe, ...drainCommands, status, ...softphone.commands },
  behaviours: BEHAVIOURS,
  quit: () => disconnect(),
});

function httpOrigin(url) {
  const u = new URL(url);
  const scheme = u.protocol === 'ws:' ? 'http:' : u.protocol === 'wss:' ? 'https:' : u.protocol;
  return `${scheme}//${u.host}`;
}
function wsOrigin(url) {
  const u = new URL(url);
  const scheme = u.protocol === 'http:' ? 'ws:' : u.protocol === 'https:' ? 'wss:' : u.protocol;
  return `${scheme}//${u.host}`;
}

async function configure(args) {
  const ignored = [];
  for (const [key, value] of Object.entries(args)) {
    if (key === 'url' || key === 'urls') config.url = wsOrigin(String(Array.isArray(value) ? value[0] : value));
    else if (key === 'server') config.server = httpOrigin(String(value));
    else if (key === 'token') config.token = value ?? null;
    else if (key === 'jwt') config.jwt = value ?? null;
    else if (key === 'genesys') Object.assign(config.genesys, value || {});
    else if (key !== 'timeout' && key !== 'user') ignored.push(key);
  }
  driver.secret(config.token);
  driver.secret(config.jwt);
  return { url: config.url, server: config.server, token: config.token == null ? null : '***', jwt: config.jwt == null ? null : '***', genesys: config.genesys, sdk: VERSION, ignored };
}

function build() {
  if (!config.url) throw new CommandError('CommandError', "no url: pass 'url' (the simulator's ws:// endpoint) to configure or connect");
  const g = config.genesys;
  const options = {
    host: config.url,
    apiHost: config.server || httpOrigin(config.url),
    authToken: config.token || undefined,
    jwt: config.jwt || undefined,
    optOutOfWebrtcStatsTelemetry: true, // no log upload to https://api.<apiHost>
  };
  if (g.jid) options.jid = g.jid;
  if (g.jid_resource) options.jidResource = g.jid_resource;
  if (g.use_server_side_pings === false) options.useServerSidePings = false;
  if (g.reconnect_on_no_longer_subscribed === false) options.reconnectOnNoLongerSubscribed = false;
  client = new Client(options);
  softphone.attach(driver, client, SDK);
  // v19's Client is an EventEmitter; v14's passes on() to its stanza client (client.js:233-259)
  const emitter = SDK === '19' ? client : client._stanzaio;
  const emit = emitter.emit;
  emitter.emit = function forwardedEmit(name, ...args) {
    const n = String(name);
    if (!n.startsWith('raw') && n !== '*' && !n.startsWith('--') && n !== 'stream:data' && n !== 'newListener' && n !== 'removeListener') {
      try { driver.sdkEvent(n, args.filter((a) => typeof a !== 'function').map(brief)); } catch (err) { driver.debug('cannot forward', n, err && err.stack); }
    }
    return emit.call(this, name, ...args);
  };
  client.on('connected', () => {
    connected = true;
    driver.event('connected', { url: config.url, channel: client.config.channelId || null, jid: client.config.jid || null });
  });
  client.on('disconnected', (info) => {
    const was = connected;
    connected = false;
    const reconnecting = SDK === '19' ? Boolean(info && info.reconnecting) : client.autoReconnect === true && !closing;
    if (was || SDK === '19') driver.event('disconnected', { reconnecting });
  });
  client.on('notify', ({ topic, data }) => {
    const envelope = data && typeof data === 'object' && 'eventBody' in data;
    driver.event('notification', { topic, payload: envelope ? data.eventBody : data, body: data });
  });
  client.on('sasl', (sasl) => {
    if (sasl && sasl.type === 'failure') driver.event('auth_failed', { reason: sasl.condition, message: sasl.text || sasl.condition });
  });
  if (SDK === '14') {
    client.on('requestReconnect', (callback) => {
      drainCallback = callback;
      driver.event('drain_requested', { source: 'sdk', standing: drainAnswer });
      if (drainAnswer !== 'none') answerNow(drainAnswer);
    });
  }
}

/** An emitter (a whole stanza client: sessionManagerChange) as who it is, not its insides. */
function brief(value) {
  if (value && typeof value === 'object' && typeof value.on === 'function' && typeof value.emit === 'function') {
    return { type: (value.constructor && value.constructor.name) || 'EventEmitter', id: value.id ?? null };
  }
  return value;
}

function answerNow(answer) {
  const cb = drainCallback;
  if (!cb) return false;
  if (answer === 'done') drainCallback = null;
  cb(answer === 'done' ? { done: true } : { pending: true });
  driver.event('drain_answered', { with: answer });
  return true;
}

function snapshot() {
  return {
    status: !client ? 'idle' : closing ? 'closed' : connected ? 'connected' : 'connecting',
    sdk: VERSION,
    url: config.url,
    channel: client ? client.config.channelId || null : null,
    jid: client ? client.config.jid || null : null,
    subscriptions: [...topics],
    drain: drainCallback ? 'requested' : null,
  };
}

function sdkError(err, what) {
  if (err instanceof CommandError) return err;
  const type = err && err.type;
  const status = err && err.response ? err.response.status : err && err.details && err.details.response ? err.details.response.status : null;
  const message = `${what}: ${(err && err.message) || String(err)}${status ? ` (HTTP ${status})` : ''}`;
  if (type === 'invalid_token' || status === 401 || status === 403) return new CommandError('AuthFailed', message);
  return new CommandError('ConnectionFailed', message.replace(/\s+/g, ' '));
}

/** Resolves at the SDK's next `connected`; AuthFailed at a SASL failure; ConnectionFailed at `timeout`. */
function untilConnected(what, timeout) {
  return new Promise((resolve, reject) => {
    let timer = null;
    const done = (fn, value) => {
      client.off('connected', ok);
      client.off('sasl', sasl);
      clearTimeout(timer);
      fn(value);
    };
    const ok = () => done(resolve);
    const sasl = (s) => { if (s && s.type === 'failure') done(reject, new CommandError('AuthFailed', `${what}: SASL failure ${s.condition}`)); };
    client.on('connected', ok);
    client.on('sasl', sasl);
    if (timeout != null) timer = setTimeout(() => done(reject, new CommandError('ConnectionFailed', `${what}: not connected within ${timeout}s`)), Number(timeout) * 1000);
  });
}

async function connect(args) {
  if (Object.keys(args).length) await configure(args);
  if (client && !closing) {
    if (connected) return snapshot();
    await untilConnected('connect', args.timeout);
    return snapshot();
  }
  closing = false;
  topics = [];
  build();
  const waiting = untilConnected('connect', args.timeout);
  // v14 rejects a SASL failure only at its own 10 s timeout (client.js:344-349): the driver
  // answers at the failure itself and leaves the SDK to do what it does
  const attempt = client.connect().then(() => null, (err) => err);
  const first = await Promise.race([attempt, waiting.then(() => null, (err) => err)]);
  if (first) {
    const error = sdkError(first, 'connect');
    if (!(first instanceof CommandError)) {
      driver.event('connect_failed', { url: config.url, name: errorName(first), message: masked(first.message || String(first)) });
      // a 401/403 of the prelude: both SDKs stop there (v19 client.js:467-470, v14 client.js:289)
      if (error.type === 'AuthFailed') driver.event('auth_failed', { reason: 'invalid_token', message: error.message });
    }
    throw error;
  }
  return snapshot();
}

async function disconnect() {
  if (!client || closing) return snapshot();
  closing = true;
  const last = socket;
  try {
    await client.disconnect();
  } catch (err) {
    driver.event('error', { kind: 'disconnect', name: errorName(err), message: masked(err.message || String(err)) });
  }
  if (last && !last.gone && last.ws.readyState <= WebSocket.OPEN) last.ws.terminate();
  topics = [];
  driver.event('closed', { reason: 'client disconnect', error: null });
  return snapshot();
}

async function reconnect(args) {
  if (!client || closing) return connect(args);
  const back = untilConnected('reconnect', args.timeout);
  if (SDK === '14') client.reconnect().catch(() => {}); // v14's own reconnect (removed in 15.0)
  else if (socket && socket.ws.readyState <= WebSocket.OPEN) socket.ws.close(1000, 'client reconnect');
  await back;
  return snapshot();
}

function topicList(args) {
  const list = args.topics ?? args.topic;
  if (typeof list === 'string') return [list];
  if (!Array.isArray(list) || !list.length) throw new CommandError('CommandError', "'topics' must be a non-empty list of topics");
  return list.map(String);
}

function handlerFor(topic) {
  if (!handlers.has(topic)) handlers.set(topic, () => {});
  return handlers.get(topic);
}

async function subscribe(args) {
  const list = topicList(args);
  if (!client || closing) throw new CommandError('NotConnected', 'subscribe needs a client: send connect first');
  // immediate: an XMPP pubsub subscribe; otherwise the SDK's debounced HTTP PUT (notifications.js:300-318)
  const immediate = Boolean(args.immediate ?? config.genesys.immediate);
  try {
    await Promise.all(list.map((t) => client.notifications.subscribe(t, handlerFor(t), immediate)));
  } catch (err) {
    throw new CommandError('RemoteError', `subscribe: ${masked((err && err.message) || String(err))}`);
  }
  topics = [...new Set([...topics, ...list])];
  return list;
}

async function unsubscribe(args) {
  const list = topicList(args);
  if (!client || closing) throw new CommandError('NotConnected', 'unsubscribe needs a client: send connect first');
  const immediate = Boolean(args.immediate ?? config.genesys.immediate);
  try {
    await Promise.all(list.map((t) => client.notifications.unsubscribe(t, handlerFor(t), immediate)));
  } catch (err) {
    throw new CommandError('RemoteError', `unsubscribe: ${masked((err && err.message) || String(err))}`);
  }
  topics = topics.filter((t) => !list.includes(t));
  return list;
}

async function answerDrain(args) {
  const answer = String(args.with || 'none');
  if (!['none', 'pending', 'done'].includes(answer)) throw new CommandError('CommandError', "answer_drain 'with' is none, pending or done");
  drainAnswer = answer;
  const now = answer !== 'none' ? answerNow(answer) : false;
  return { standing: answer, answered_now: now };
}

async function status() {
  return snapshot();
}

driver.start();
