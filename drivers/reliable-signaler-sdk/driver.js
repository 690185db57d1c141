'use strict';
/*
 * squall driver for the real, unchanged Reliable Signaler browser client (reliable-signaler 1.0.2,
 * signaler.js) on socket.io-client 2.5.0, in node. Protocol: docs/driver.md; mapping:
 * drivers/README.md and docs/dialects/reliable-signaler.md.
 * Run: node -r drivers/common/timescale.js drivers/reliable-signaler-sdk/driver.js
 *
 * signaler.js is a browser script: it is run as it is in a vm context whose globals are what it
 * reads (`io`, `window.addEventListener`, `window.crypto`, `navigator`). The `io` it gets is
 * socket.io-client's, wrapped only to see each socket it opens: signaler.js opens a new one on
 * every `disconnect` or `error` (signaler.js:25-33) and keeps no handle on the old ones.
 */

const { Driver, CommandError } = require('../common/driver'); // first: installs the time scaling
const fs = require('fs');
const vm = require('vm');
const { webcrypto } = require('crypto');
const realIo = require('socket.io-client');

const SCRIPT = require.resolve('reliable-signaler/signaler.js');
const config = { url: null, token: null, user: null };
let signaler = null; // what initReliableSignaler returned
let connection = null; // the RTCMultiConnection-like object signaler.js decorates
const sockets = []; // every socket signaler.js opened, oldest first
let closing = false; // `disconnect`: no new socket may open
const channels = new Map(); // channel -> the object openSignalingChannel returned

const driver = new Driver({
  name: 'reliable-signaler-sdk',
  commands: {
    configure, connect, disconnect, reconnect, status,
    create_room: createRoom, get_room: getRoom, join_room: joinRoom,
    open_channel: openChannel, send_message: sendMessage,
  },
  quit: () => disconnect(),
});

// --- socket.io-client, as signaler.js's global `io` ---------------------------------------------

function observedConnect(url, opts) {
  if (closing) return realIo.connect(url, { ...opts, autoConnect: false, forceNew: true });
  const socket = realIo.connect(url, opts);
  const n = sockets.length;
  sockets.push(socket);
  observe(socket, n);
  socket.on('connect', () => driver.event('connected', { socket: n, sid: socket.id, url: config.url }));
  socket.on('disconnect', (reason) => driver.event('disconnected', { socket: n, reason }));
  socket.on('error', (error) => driver.event('error', { socket: n, error: String(error) }));
  socket.on('connect_error', (error) => driver.event('connect_error', { socket: n, error: String(error && error.message || error) }));
  socket.on('squall-error', (body) => driver.event('server_error', body));
  driver.event('connecting', { socket: n, url: config.url });
  return socket;
}
// socket.io-client 2's reserved events are the socket's own (lifecycle); any other emit is sent
const RESERVED = new Set(['connect', 'connect_error', 'connect_timeout', 'connecting', 'disconnect', 'error',
  'reconnect', 'reconnect_attempt', 'reconnect_failed', 'reconnect_error', 'reconnecting', 'ping', 'pong']);

/** `sdk.socketN.<lifecycle>`, `sdk.socketN.sent.<event>` and `sdk.socketN.received.<event>`. */
function observe(socket, n) {
  const emit = socket.emit;
  socket.emit = function observedEmit(name, ...args) {
    const sent = !RESERVED.has(name);
    driver.sdkEvent(`socket${n}.${sent ? 'sent.' : ''}${name}`, args);
    return emit.call(this, name, ...args);
  };
  const onevent = socket.onevent; // every event from the server passes here (socket.js onevent)
  socket.onevent = function observedEvent(packet) {
    const [name, ...args] = packet.data || [];
    driver.sdkEvent(`socket${n}.received.${name}`, args);
    return onevent.call(this, packet);
  };
}
const io = Object.assign((url, opts) => observedConnect(url, opts), realIo, { connect: observedConnect });

function loadSignaler() {
  const context = {
    io,
    console, // the driver sends console.* to stderr
    setTimeout,
    Uint32Array,
    navigator: { onLine: true, userAgent: 'node' },
    window: { addEventListener() {}, removeEventListener() {}, crypto: webcrypto },
  };
  vm.createContext(context);
  vm.runInContext(fs.readFileSync(SCRIPT, 'utf8'), context, { filename: SCRIPT });
  return context.initReliableSignaler;
}
const initReliableSignaler = loadSignaler();

// --- commands -----------------------------------------------------------------------------------

function configure(args = {}) {
  if (args.url !== undefined) config.url = String(args.url);
  if (args.urls !== undefined) config.url = String(args.urls[0]);
  if (args.token !== undefined) config.token = args.token === null ? null : String(args.token);
  if (args.user !== undefined) config.user = String(args.user);
  if (config.token) driver.secret(config.token);
  return { url: config.url, user: config.user };
}

/** The URL signaler.js is given: the server's, with the token as a query parameter. */
function socketUrl() {
  if (!config.url) throw new CommandError('CommandError', "no server URL: pass 'url' to configure or connect");
  const url = new URL(config.url.replace(/^ws(s?):/, 'http$1:'));
  if (config.token) url.searchParams.set('token', config.token);
  return url.toString();
}

function current() {
  return sockets[sockets.length - 1] || null;
}

/** Resolves when the newest socket connects; rejects on its first refusal. */
function whenConnected() {
  return new Promise((resolve, reject) => {
    const socket = current();
    if (socket && socket.connected) return resolve(snapshot());
    const onConnect = () => { cleanup(); resolve(snapshot()); };
    const onError = (error) => {
      cleanup();
      const text = String(error && error.message || error);
      if (/auth/i.test(text)) reject(new CommandError('AuthFailed', `the server refused the connection: ${text}`));
      else reject(new CommandError('ConnectionFailed', `cannot connect to ${config.url}: ${text} (signaler.js keeps retrying)`));
    };
    const cleanup = () => { socket.off('connect', onConnect); socket.off('connect_error', onError); socket.off('error', onError); };
    socket.on('connect', onConnect);
    socket.on('connect_error', onError);
    socket.on('error', onError);
  });
}

async function connect(args = {}) {
  configure(args);
  if (signaler && current() && current().connected) return snapshot();
  closing = false;
  connection = { userid: config.user || undefined };
  signaler = initReliableSignaler(connection, socketUrl());
  return whenConnected();
}

/** signaler.js has no close: every socket is closed, and no new one may open (it would). */
async function disconnect() {
  closing = true;
  for (const socket of sockets) socket.close();
  return snapshot();
}

async function reconnect() {
  await disconnect();
  signaler = null;
  return connect();
}

function needSignaler() {
  if (!signaler) throw new CommandError('NotConnected', 'connect first');
}

function timed(what, promise, seconds) {
  if (seconds === undefined || seconds === null) return promise;
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CommandError('CallTimeout', `${what} not answered within ${seconds} s`)), seconds * 1000);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function createRoom(args = {}) {
  needSignaler();
  const room = args.room;
  await timed(`keep-in-server ${JSON.stringify(room)}`, new Promise((resolve) => signaler.createNewRoomOnServer(room, resolve)), args.timeout);
  return { room, created: true, userid: connection.userid };
}

async function getRoom(args = {}) {
  needSignaler();
  const answered = new Promise((resolve) => signaler.getRoomFromServer(args.room, resolve));
  const room = await timed(`get-session-info ${JSON.stringify(args.room)}`, answered, args.timeout);
  return { room, userid: connection.userid };
}

/** The vocabulary's join_room: the owner creates the room (`create: true`), the others ask for it. */
async function joinRoom(args = {}) {
  const result = args.create ? await createRoom(args) : await getRoom(args);
  openChannel({ channel: String(result.room) });
  return { room: result.room, sid: current() && current().id, peers: [] };
}

function openChannel(args = {}) {
  needSignaler();
  const channel = args.channel === undefined ? undefined : String(args.channel);
  const opened = connection.openSignalingChannel({
    channel,
    onmessage: (message) => driver.event('message', { channel: opened.channel, message }),
  });
  channels.set(opened.channel, opened);
  return { channel: opened.channel };
}

function sendMessage(args = {}) {
  needSignaler();
  const name = args.channel === undefined ? (args.room === undefined ? undefined : String(args.room)) : String(args.channel);
  const opened = (name !== undefined && channels.get(name)) || openChannel({ channel: name });
  opened.send(args.message);
  return null;
}

function snapshot() {
  const socket = current();
  return {
    status: socket && socket.connected ? 'connected' : (closing || !socket ? 'disconnected' : 'connecting'),
    url: config.url,
    sid: socket ? socket.id || null : null,
    user: connection ? connection.userid || null : null,
    sockets: sockets.length,
    open_sockets: sockets.filter((s) => s.connected).length,
    channels: [...channels.keys()],
    room: connection ? connection.roomid ?? null : null,
  };
}

function status() {
  return snapshot();
}

driver.start();
