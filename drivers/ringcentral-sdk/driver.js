'use strict';
/*
 * squall driver for the real, unchanged RingCentral WebSocket extension (@rc-ex/ws 1.4.2 on
 * @rc-ex/core 1.8.6). Protocol: docs/driver.md; mapping: drivers/README.md.
 * Run: node -r drivers/common/timescale.js drivers/ringcentral-sdk/driver.js
 *
 * The SDK is used as an application would: new RingCentral({server}), rc.token = {access_token},
 * rc.installExtension(new WebSocketExtension({restOverWebSocket: true, autoRecover})), then
 * wse.subscribe(), rc.request() (REST over WebSocket) and wse.revoke(). To see the wire, the driver
 * listens on each raw socket the SDK announces (newWebSocketObject) and wraps its send.
 * No 'error' listener is added to that socket: the SDK adds none, and what that does is the SDK's.
 */

const { Driver, CommandError, redactText, errorName } = require('../common/driver'); // first: installs the time scaling
const { EventEmitter } = require('events');
const RingCentral = require('@rc-ex/core').default;
const RestException = require('@rc-ex/core/RestException').default;
const WebSocketExtension = require('@rc-ex/ws').default;
const ConnectionException = require('@rc-ex/ws/exceptions/ConnectionException').default;
const ClosedException = require('@rc-ex/ws/exceptions/ClosedException').default;
const TimeoutException = require('@rc-ex/ws/exceptions/TimeoutException').default;

const OPEN = 1;
const config = { server: null, token: null, ringcentral: {} };
let rc = null;
let wse = null;
let raw = null; // the latest raw socket: {ws, url, ready}
let closing = false; // the driver asked the SDK to stop
let topics = []; // the filters of the current subscription
const life = new EventEmitter(); // ready / auth_failed, for commands waiting on them

const driver = new Driver({
  name: 'ringcentral-sdk',
  commands: { configure, connect, disconnect, reconnect, subscribe, unsubscribe, call, status },
  quit: () => disconnect(),
});

function frameMeta(text) {
  try {
    const at = text.indexOf(',--Boundary'); // a multipart body: only the meta is JSON
    const meta = at >= 0 ? JSON.parse(text.substring(1, at)) : JSON.parse(text)[0];
    return [meta || {}, at >= 0 ? null : JSON.parse(text)[1]];
  } catch {
    return [{}, null];
  }
}

// --- the raw socket of each attempt ----------------------------------------------------------------

const STATES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];

// one `disconnected` (or `connect_failed`) per raw socket, when it closes or is replaced
function gone(rec, code, reason) {
  if (rec.gone) return;
  rec.gone = true;
  const reconnecting = !closing && wse !== null && wse.enabled && wse.options.autoRecover.enabled === true;
  if (rec.ready) driver.event('disconnected', { code, reason, reconnecting });
  else driver.event('connect_failed', { url: rec.url, code, reason, reconnecting });
}

function observe(ws) {
  // the SDK's check treats a CLOSING socket as dead and may open the next one before the old
  // one's close event: report the old one now, so `disconnected` comes before the new `connected`
  if (raw && !raw.gone) gone(raw, null, `replaced by the SDK while ${STATES[raw.ws.readyState]}`);
  let closed;
  const rec = { ws, url: redactText(ws.url), first: true, closed: new Promise((resolve) => { closed = resolve; }) };
  raw = rec;
  const send = ws.send.bind(ws);
  ws.send = (data, ...rest) => {
    driver.event('sent', { type: frameMeta(String(data))[0].type ?? null, text: redactText(String(data)) });
    return send(data, ...rest);
  };
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? `<binary ${data.length} bytes>` : data.toString();
    const [meta, body] = frameMeta(text);
    driver.event('packet', { type: meta.type ?? null, text: redactText(text) });
    if (rec.first && (meta.type === 'ConnectionDetails' || meta.type === 'Error')) {
      rec.first = false;
      if (meta.type === 'Error' && (meta.status === 401 || meta.status === 403)) {
        const message = `${meta.status} ${(body && body.errorCode) || ''} ${(body && body.message) || ''}`.trim();
        authFailed((body && body.errorCode) || String(meta.status), message);
      }
    }
  });
  ws.on('close', (code, reason) => {
    gone(rec, code, reason.toString());
    closed();
  });
}

function authFailed(reason, message) {
  driver.event('auth_failed', { reason, message });
  life.emit('auth_failed', message);
}

// --- the SDK ---------------------------------------------------------------------------------------------

function extensionOptions() {
  const o = config.ringcentral;
  const autoRecover = { enabled: o.auto_recover !== false };
  if (o.check_interval != null) autoRecover.checkInterval = () => Number(o.check_interval) * 1000;
  if (o.ping_server_interval != null) autoRecover.pingServerInterval = Number(o.ping_server_interval) * 1000;
  const options = { restOverWebSocket: o.rest_over_websocket !== false, autoRecover, debugMode: Boolean(o.debug_mode) };
  if (o.wsc_token) options.wscToken = o.wsc_token;
  return options;
}

function build() {
  if (!config.server) throw new CommandError('CommandError', "no server: pass 'server' (the http:// base of the REST prelude) to configure or connect");
  rc = new RingCentral({ server: config.server });
  rc.token = { access_token: config.token };
  wse = new WebSocketExtension(extensionOptions());
  const ee = driver.forward(wse.eventEmitter);
  ee.on('newWebSocketObject', observe);
  ee.on('connectionReady', (ws) => {
    if (raw && raw.ws === ws) raw.ready = true;
    driver.event('connected', { url: wse.wsToken && wse.wsToken.uri, recovery_state: wse.connectionDetails.recoveryState ?? null });
    life.emit('ready');
  });
  ee.on('autoRecoverSuccess', () => driver.event('recovered', { recovery_state: wse.connectionDetails.recoveryState }));
  ee.on('autoRecoverFailed', () => {
    const details = wse.connectionDetails || {};
    driver.event('recovery_failed', {
      reason: details.recoveryErrorCode ?? (details.recoveryState ? details.recoveryState : 'reconnected without recovery'),
      recovery_state: details.recoveryState ?? null,
    });
  });
  ee.on('autoRecoverError', (err) => driver.event('error', { kind: 'recover', name: err instanceof Error ? errorName(err) : null, message: sdkError(err, 'recover').message }));
}

function isReady() {
  return Boolean(wse && raw && raw.ready && raw.ws.readyState === OPEN);
}

/** Resolves at the next connectionReady; AuthFailed on a 401; ConnectionFailed on `timeout`. */
function untilReady(what, timeout) {
  let cancel;
  const promise = new Promise((resolve, reject) => {
    let timer = null;
    const done = (fn, value) => {
      life.off('ready', ok); life.off('auth_failed', failed);
      clearTimeout(timer);
      fn(value);
    };
    const ok = () => done(resolve);
    const failed = (message) => done(reject, new CommandError('AuthFailed', `authentication failed: ${message}`));
    cancel = (err) => done(reject, err);
    life.on('ready', ok); life.on('auth_failed', failed);
    if (timeout != null) timer = setTimeout(() => done(reject, new CommandError('ConnectionFailed', `${what}: not ready within ${timeout}s (the SDK keeps retrying)`)), timeout * 1000);
  });
  return { promise, cancel };
}

/** A sentence and a driver error type for what the SDK threw. */
function sdkError(err, what) {
  if (err instanceof CommandError) return err;
  if (err instanceof RestException) {
    const r = err.response || {};
    let body = r.data;
    try { body = typeof body === 'string' ? body : JSON.stringify(body); } catch { body = String(body); }
    // not err.message: it quotes the request headers, Authorization included
    return new CommandError('RemoteError', `${what}: HTTP ${r.status} ${r.statusText || ''} ${redactText(body)}`.replace(/\s+/g, ' ').trim());
  }
  if (err instanceof TimeoutException) return new CommandError('CallTimeout', `${what}: ${err.message}`);
  if (err instanceof ClosedException) return new CommandError('CallInterrupted', `${what}: ${err.message}`);
  if (err instanceof ConnectionException) return new CommandError('ConnectionFailed', `${what}: ${err.message.replace(/\s+/g, ' ')}`);
  return new CommandError(err instanceof Error ? errorName(err) : 'Error', `${what}: ${(err && err.message) || String(err)}`);
}

function snapshot() {
  let state = 'idle';
  if (wse) state = closing ? 'closed' : isReady() ? 'connected' : 'connecting';
  const details = (wse && wse.connectionDetails) || {};
  return {
    status: state,
    url: wse && wse.wsToken ? wse.wsToken.uri : null,
    ws_ready_state: raw ? raw.ws.readyState : null,
    enabled: wse ? wse.enabled : false,
    subscription: wse && wse.subscription && wse.subscription.subscriptionInfo ? wse.subscription.subscriptionInfo.id ?? null : null,
    subscriptions: [...topics],
    recovery_state: details.recoveryState ?? null,
    wsc_sequence: wse && wse.wsc ? wse.wsc.sequence ?? null : null,
  };
}

// --- commands ----------------------------------------------------------------------------------------

function httpOrigin(url) {
  const u = new URL(url);
  if (u.protocol === 'ws:' || u.protocol === 'wss:') return `${u.protocol === 'ws:' ? 'http:' : 'https:'}//${u.host}`;
  return url.replace(/\/+$/, '');
}

async function configure(args) {
  const ignored = [];
  for (const [key, value] of Object.entries(args)) {
    if (key === 'server') config.server = httpOrigin(String(value));
    else if (key === 'url' || key === 'urls') config.server = httpOrigin(String(Array.isArray(value) ? value[0] : value));
    else if (key === 'token') config.token = value ?? null;
    else if (key === 'ringcentral') Object.assign(config.ringcentral, value || {});
    else if (key !== 'timeout') ignored.push(key);
  }
  driver.secret(config.token);
  driver.secret(config.ringcentral.wsc_token);
  const rcOptions = { ...config.ringcentral };
  if (rcOptions.wsc_token) rcOptions.wsc_token = '***';
  return { server: config.server, token: config.token == null ? null : '***', ringcentral: rcOptions, ignored };
}

async function connect(args) {
  if (Object.keys(args).length) await configure(args);
  if (wse && !closing) {
    if (isReady()) return snapshot();
    await untilReady('connect', args.timeout).promise; // the SDK is already retrying
    return snapshot();
  }
  closing = false;
  topics = [];
  build();
  const ready = untilReady('connect', args.timeout);
  // installExtension resolves after the first attempt even when it failed (the SDK retries on its
  // interval); it rejects on a RestException such as a 401 from /restapi/oauth/wstoken
  rc.installExtension(wse).catch((err) => {
    const status = err instanceof RestException && err.response ? err.response.status : null;
    // the SDK rethrows it before arming its recovery interval: nothing retries after this
    closing = true;
    const message = sdkError(err, 'installExtension').message;
    if (status === 401 || status === 403) {
      authFailed(`HTTP ${status}`, `POST /restapi/oauth/wstoken answered ${status}`);
    } else {
      driver.event('error', { kind: 'install', name: err instanceof Error ? errorName(err) : null, message });
      ready.cancel(new CommandError('ConnectionFailed', message));
    }
    driver.event('closed', { reason: message, error: status === 401 || status === 403 ? 'AuthFailed' : 'ConnectionFailed' });
  });
  await ready.promise;
  return snapshot();
}

async function disconnect() {
  if (!wse || closing) return snapshot();
  closing = true;
  const w = wse;
  const closed = raw && raw.ws.readyState <= OPEN ? raw.closed : null;
  try {
    await w.revoke(); // DELETE the subscription, stop recovering, close the socket, disable
  } catch (err) {
    // revoke stops at a failed DELETE, before it closes anything: report it, then stop the SDK
    driver.event('error', { kind: 'revoke', name: err instanceof Error ? errorName(err) : null, message: sdkError(err, 'revoke').message });
    w.disable();
    if (w.ws) w.ws.close();
  }
  if (closed) await closed;
  topics = [];
  driver.event('closed', { reason: 'client disconnect', error: null });
  return snapshot();
}

async function reconnect(args) {
  if (!wse || closing) return connect(args);
  const back = untilReady('reconnect', args.timeout);
  // close the raw socket only: the SDK's recovery check notices and reconnects with its wsc token
  if (raw && raw.ws.readyState <= OPEN) raw.ws.close(1000, 'client reconnect');
  await back.promise;
  return snapshot();
}

function topicList(args) {
  const list = args.topics ?? args.topic;
  if (typeof list === 'string') return [list];
  if (!Array.isArray(list) || !list.length) throw new CommandError('CommandError', "'topics' must be a non-empty list of event filters");
  return list.map(String);
}

function requireExtension(what) {
  if (!wse || closing) throw new CommandError('NotConnected', `${what} needs a connected extension: send connect first`);
}

function onNotification(body) {
  driver.event('notification', { topic: body.event, payload: body.body, subscription: body.subscriptionId, uuid: body.uuid });
}

// One subscription per extension: a change of topics revokes it and subscribes to the new set.
async function resubscribe(filters, what) {
  try {
    if (wse.subscription) await wse.subscription.revoke();
    topics = [];
    if (filters.length) {
      const sub = await wse.subscribe(filters, onNotification);
      topics = [...filters];
      return sub.subscriptionInfo || {};
    }
    return {};
  } catch (err) {
    throw sdkError(err, what);
  }
}

async function subscribe(args) {
  const list = topicList(args);
  requireExtension('subscribe');
  const info = await resubscribe([...new Set([...topics, ...list])], 'subscribe');
  const confirmed = Array.isArray(info.eventFilters) ? list.filter((t) => info.eventFilters.includes(t)) : list;
  return confirmed;
}

async function unsubscribe(args) {
  const list = topicList(args);
  requireExtension('unsubscribe');
  await resubscribe(topics.filter((t) => !list.includes(t)), 'unsubscribe');
  return list;
}

async function call(args) {
  const match = /^\s*([A-Za-z]+)\s+(\/\S*)\s*$/.exec(String(args.method || ''));
  if (!match) throw new CommandError('CommandError', "call 'method' is \"VERB /path\", e.g. \"GET /restapi/v1.0/account/~\"");
  requireExtension('call');
  const verb = match[1].toUpperCase();
  const path = match[2];
  const params = args.params ?? null;
  const withBody = verb === 'POST' || verb === 'PUT' || verb === 'PATCH';
  const body = args.body ?? (withBody ? params : undefined);
  const query = args.query ?? (!withBody && params && typeof params === 'object' && !Array.isArray(params) ? params : undefined);
  // rc.request goes over the WebSocket (restOverWebSocket); the SDK waits 60 s for the answer
  let request = rc.request(verb, path, body ?? undefined, query).then((r) => (r.data === undefined ? null : r.data));
  if (args.timeout != null) {
    let timer;
    const limit = new Promise((_, reject) => { timer = setTimeout(() => reject(new CommandError('CallTimeout', `${verb} ${path}: no answer within ${args.timeout}s (driver deadline)`)), Number(args.timeout) * 1000); });
    request = Promise.race([request, limit]).finally(() => clearTimeout(timer));
  }
  try {
    return await request;
  } catch (err) {
    throw sdkError(err, `${verb} ${path}`);
  }
}

async function status() {
  return snapshot();
}

driver.start();
