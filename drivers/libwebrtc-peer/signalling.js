'use strict';
/*
 * A reference-protocol signalling connection (docs/protocol.md §2 auth by URL token, §3 pings
 * both ways, §7 the recovery token on every reconnect, §8 rooms), over `ws`. Every server frame
 * goes to `onFrame`; answers to requests (frames sent with an `id`) also resolve them.
 *
 * After an unexpected close it reconnects with backoff (not after `auth_failed`, §2: final) and
 * rejoins its rooms with `prev_sid` and the same permanent id, so the room re-keys it
 * (`peer_sid_reassigned`). Durations are protocol seconds: node's timers run at the driver's
 * timescale (drivers/common/timescale.js).
 */
const WebSocket = require('ws');

const REQUEST_TIMEOUT_S = 10;
const SERVICE_RESTART = 1012; // a drain (§6): reconnect at once, no backoff
/** The reference client's defaults (docs/client.md, "Behaviours and their defaults"). */
const POLICY = {
  ping_interval: null, // the server's heartbeat
  pong_timeout: 10,
  max_missed_pongs: 2,
  backoff_initial: 0.5,
  backoff_multiplier: 2,
  backoff_max: 30,
  jitter: 0.2,
  immediate_first_retry: false,
  open_timeout: 10,
  reconnect: true,
};
/** Room frames become the reference client's events (squall/client/core.py, §8 fields). */
const ROOM_EVENTS = {
  joined: (f) => ({ room: f.room, sid: f.sid, permanent_id: f.permanent_id, peers: f.peers || [] }),
  left: (f) => ({ room: f.room }),
  peer_joined: (f) => ({ room: f.room, ...f.peer }),
  peer_left: (f) => ({ room: f.room, sid: f.sid, permanent_id: f.permanent_id, reason: f.reason }),
  peer_sid_reassigned: (f) => ['reassign_peer_sid', { room: f.room, permanent_id: f.permanent_id, old_sid: f.old_sid, new_sid: f.new_sid }],
  signal: (f) => ({ room: f.room, from: f.from, from_permanent_id: f.from_permanent_id, to: f.to ?? null, kind: f.kind, data: f.data ?? null }),
  track_defined: (f) => ({ room: f.room, sid: f.sid, track: f.track }),
  track_removed: (f) => ({ room: f.room, sid: f.sid, track_id: f.track_id }),
  track_requested: (f) => ({ room: f.room, sender: f.from, track_id: f.track_id }),
};

class Signalling {
  /** events(name, data): a driver event (connected, disconnected, reconnecting, recovered, ...). */
  constructor({ onFrame, events, log = () => undefined }) {
    this.onFrame = onFrame;
    this.events = events;
    this.log = log;
    this.urls = [];
    this.token = null;
    this.policy = { ...POLICY };
    this.standing = 'none'; // the standing answer to a reconnect_request (answer_drain)
    this.drain = null; // the reconnect_request outstanding
    this.ws = null;
    this.status = 'idle'; // idle, connecting, connected, reconnecting, closed
    this.session = null;
    this.sid = null;
    this.user = null;
    this.url = null;
    this.recoveryToken = null;
    this.heartbeat = 30;
    this.rooms = new Map(); // room -> permanent id
    this.attempt = 0;
    this.connections = 0;
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, reject, timer}
    this.waiters = []; // resolved at the next `connected`, rejected at a final close
    this.wanted = false; // the application wants to be connected
    this.authFailed = false;
    this.pingTimer = null;
    this.pongTimer = null;
    this.missed = 0;
    this.lastError = null;
  }

  configure(args) {
    if (args.urls !== undefined || args.url !== undefined) {
      const urls = args.urls !== undefined ? args.urls : [args.url];
      if (!Array.isArray(urls) || !urls.length || urls.some((u) => typeof u !== 'string' || !/^wss?:\/\//.test(u))) {
        throw new TypeError(`'urls' must be a list of ws:// or wss:// URLs, got ${JSON.stringify(urls)}`);
      }
      this.urls = urls;
    }
    if (args.token !== undefined) this.token = args.token === null ? null : String(args.token);
    for (const key of Object.keys(this.policy)) if (args[key] !== undefined) this.policy[key] = args[key];
    return { urls: this.urls, token: this.token ? '***' : null, ...this.policy };
  }

  snapshot() {
    return {
      status: this.status, url: this.url, session: this.session, sid: this.sid, user: this.user,
      attempt: this.attempt, rooms: Object.fromEntries(this.rooms),
    };
  }

  /** Connect (or wait for the reconnect in progress); resolves with the status once connected. */
  async connect() {
    if (!this.urls.length) throw new TypeError("no server: configure 'url' or 'urls' first");
    this.wanted = true;
    this.authFailed = false;
    if (this.status === 'connected') return this.snapshot();
    const ready = this.nextConnected();
    if (this.status !== 'connecting' && this.status !== 'reconnecting') this.open();
    await ready;
    return this.snapshot();
  }

  nextConnected() {
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  open() {
    const url = this.urls[this.connections % this.urls.length];
    this.connections += 1;
    this.url = url;
    this.status = this.status === 'reconnecting' ? 'reconnecting' : 'connecting';
    const target = new URL(url);
    if (this.token) target.searchParams.set('token', this.token);
    if (this.recoveryToken) target.searchParams.set('recovery_token', this.recoveryToken);
    const ws = new WebSocket(target.toString(), { perMessageDeflate: false });
    this.ws = ws;
    this.lastError = null;
    let opened = false;
    // open_timeout: the socket and its `authenticated`, or the attempt has failed
    const openTimer = setTimeout(() => {
      if (!opened && ws === this.ws) {
        this.lastError = `no authenticated within ${this.policy.open_timeout}s`;
        ws.terminate();
      }
    }, Number(this.policy.open_timeout) * 1000);
    ws.on('message', (raw, binary) => {
      if (ws !== this.ws || binary) return;
      let frame;
      try {
        frame = JSON.parse(String(raw));
      } catch (err) {
        this.events('error', { kind: 'bad_frame', message: `not JSON: ${err.message}` });
        return;
      }
      if (frame.type === 'authenticated') {
        opened = true;
        clearTimeout(openTimer);
      }
      this.dispatch(frame);
    });
    ws.on('error', (err) => {
      this.lastError = err.message; // "Unexpected server response: 503", ECONNREFUSED, ...
      this.log('socket error', err.message);
    });
    ws.on('close', (code, reason) => {
      clearTimeout(openTimer);
      if (ws !== this.ws) return;
      this.ws = null;
      this.lost(code, String(reason) || (opened ? '' : this.lastError || ''), opened);
    });
  }

  dispatch(frame) {
    const kind = frame.type;
    if (kind === 'authenticated') {
      const first = this.session === null;
      this.session = frame.session;
      this.sid = frame.sid;
      this.user = frame.user;
      const presented = this.recoveryToken !== null;
      this.recoveryToken = frame.recovery_token || this.recoveryToken;
      this.heartbeat = Number(frame.heartbeat) || this.heartbeat;
      this.status = 'connected';
      this.attempt = 0;
      this.missed = 0;
      this.keepalive();
      // with a recovery token the server always answers `recovery` next (§7): report it first
      if (presented && !first) this.afterRecovery = () => this.ready(first);
      else this.ready(first);
    } else if (kind === 'auth_failed') {
      this.authFailed = true; // §2: final
      this.events('auth_failed', { reason: frame.reason, message: frame.message });
    } else if (kind === 'recovery') {
      const data = { replayed: frame.replayed, session: this.session };
      if (frame.recovered) this.events('recovered', data);
      else this.events('recovery_failed', { ...data, lost: frame.lost, reason: frame.reason });
      const next = this.afterRecovery;
      this.afterRecovery = null;
      if (next) next();
    } else if (kind === 'ping') {
      this.send({ type: 'pong', id: frame.id });
    } else if (kind === 'pong') {
      this.missed = 0;
      clearTimeout(this.pongTimer);
    } else if (kind === 'reconnect_request') {
      this.drain = frame;
      this.events('request_reconnect', { deadline: frame.deadline, answer_within: frame.answer_within, reason: frame.reason });
      if (this.standing !== 'none') this.send({ type: 'reconnect_response', status: this.standing });
    } else if (ROOM_EVENTS[kind]) {
      const out = ROOM_EVENTS[kind](frame);
      const [name, data] = Array.isArray(out) ? out : [kind, out];
      this.events(name, data);
      if (kind === 'signal' && frame.kind === 'message') {
        this.events('message', { room: frame.room, sender: frame.from, from_permanent_id: frame.from_permanent_id, message: frame.data ?? null });
      }
    }
    const pending = frame.id !== undefined && kind !== 'ping' && kind !== 'pong' ? this.pending.get(frame.id) : undefined;
    if (pending) {
      this.pending.delete(frame.id);
      clearTimeout(pending.timer);
      if (kind === 'error') pending.reject(Object.assign(new Error(`${frame.code}: ${frame.message}`), { type: 'RemoteError' }));
      else pending.resolve(frame);
      if (kind === 'error') return; // answered a request: the requester reports it
    }
    this.onFrame(frame);
  }

  /** Connected: report it, rejoin the rooms, and resolve whoever waits for it. */
  ready(first) {
    this.events('connected', { session: this.session, sid: this.sid, user: this.user, url: this.url, first });
    this.rejoin().then(() => {
      for (const w of this.waiters.splice(0)) w.resolve();
    }, (err) => this.events('error', { kind: 'rejoin', message: err.message }));
  }

  /** §3: a ping every interval; no pong within pong_timeout is a miss; max misses in a row
   * and the socket is dead (closed, then reconnected). */
  keepalive() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    const every = Number(this.policy.ping_interval) || this.heartbeat;
    this.pingTimer = setInterval(() => {
      const ws = this.ws;
      if (this.status !== 'connected' || !ws) return;
      this.send({ type: 'ping', id: `k${this.nextId++}` });
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => {
        if (ws !== this.ws) return;
        this.missed += 1;
        this.events('pong_missed', { missed: this.missed });
        if (this.missed >= Number(this.policy.max_missed_pongs)) ws.terminate();
      }, Number(this.policy.pong_timeout) * 1000);
    }, every * 1000);
  }

  /** answer_drain: the standing answer to reconnect requests; an outstanding one is answered now. */
  answerDrain(answer) {
    if (!['pending', 'done', 'none'].includes(answer)) throw new TypeError(`'with' must be pending, done or none, got ${JSON.stringify(answer)}`);
    this.standing = answer;
    const now = this.drain !== null && answer !== 'none' && this.status === 'connected';
    if (now) this.send({ type: 'reconnect_response', status: answer });
    return { standing: answer, answered_now: now };
  }

  async rejoin() {
    const prevSid = this.previousSid;
    for (const [room, permanentId] of this.rooms) {
      if (prevSid === undefined || prevSid === this.sid) continue;
      const frame = { type: 'join', room, prev_sid: prevSid };
      if (permanentId) frame.permanent_id = permanentId;
      await this.request(frame);
    }
    this.previousSid = this.sid;
  }

  lost(code, reason, opened) {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.drain = null;
    this.afterRecovery = null;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(Object.assign(new Error(`the connection closed (${code}) before the answer`), { type: 'CallInterrupted' }));
      this.pending.delete(id);
    }
    const again = this.wanted && !this.authFailed && this.policy.reconnect !== false;
    if (opened) this.events('disconnected', { code, reason, reconnecting: again });
    else this.events('connect_failed', { url: this.url, code, reason, reconnecting: again });
    if (!again) {
      this.status = 'closed';
      const why = this.authFailed ? 'AuthFailed' : (this.wanted ? 'ConnectionFailed' : null);
      for (const w of this.waiters.splice(0)) w.reject(Object.assign(new Error(`connection closed (${code} ${reason})`), { type: why || 'ConnectionFailed' }));
      this.events('closed', { reason, error: why });
      return;
    }
    this.status = 'reconnecting';
    this.attempt += 1;
    this.events('reconnecting', { attempt: this.attempt, delay: this.backoff(code), url: this.urls[this.connections % this.urls.length] });
    this.retry = setTimeout(() => { if (this.wanted) this.open(); }, this.lastDelay * 1000);
  }

  /** The delay before the next attempt: none after a drain close, else exponential with jitter. */
  backoff(code) {
    const p = this.policy;
    let delay;
    if (code === SERVICE_RESTART || (this.attempt === 1 && p.immediate_first_retry)) delay = 0;
    else {
      const base = Math.min(Number(p.backoff_max), Number(p.backoff_initial) * Number(p.backoff_multiplier) ** (this.attempt - 1));
      delay = Number((base * (1 + Number(p.jitter) * (2 * Math.random() - 1))).toFixed(6));
    }
    this.lastDelay = delay;
    return delay;
  }

  /** Close the socket as a network failure would, and reconnect at once. */
  async reconnect() {
    if (this.status !== 'connected' || !this.ws) throw Object.assign(new Error('not connected'), { type: 'NotConnected' });
    const ready = this.nextConnected();
    const saved = this.policy.immediate_first_retry;
    this.policy.immediate_first_retry = true;
    this.attempt = 0;
    this.ws.close(1000, 'client reconnect');
    try {
      await ready;
    } finally {
      this.policy.immediate_first_retry = saved;
    }
    return this.snapshot();
  }

  async disconnect() {
    this.wanted = false;
    clearTimeout(this.retry);
    const ws = this.ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      const closed = new Promise((resolve) => ws.once('close', resolve));
      ws.close(1000, 'client disconnect');
      await closed;
    } else if (this.status !== 'closed') {
      this.status = 'closed';
      this.events('closed', { reason: 'client disconnect', error: null });
    }
    return this.snapshot();
  }

  send(frame) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.status !== 'connected') {
      this.log('signalling offline, dropped', frame.type);
      return false;
    }
    ws.send(JSON.stringify(frame));
    return true;
  }

  /** Send with a fresh id; resolves with the answer carrying it (rejects on an `error`). */
  request(frame) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(Object.assign(new Error(`no answer to ${frame.type} within ${REQUEST_TIMEOUT_S}s`), { type: 'CallTimeout' }));
      }, REQUEST_TIMEOUT_S * 1000);
      this.pending.set(id, { resolve, reject, timer });
      if (!this.send({ ...frame, id })) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(Object.assign(new Error(`not connected: ${frame.type} not sent`), { type: 'NotConnected' }));
      }
    });
  }

  async join(room, permanentId) {
    const frame = { type: 'join', room };
    if (permanentId) frame.permanent_id = permanentId;
    const joined = await this.request(frame);
    this.rooms.set(room, joined.permanent_id || permanentId || null);
    this.previousSid = this.sid;
    return { room, sid: joined.sid, peers: joined.peers || [] };
  }

  async leave(room) {
    await this.request({ type: 'leave', room });
    this.rooms.delete(room);
    return room;
  }

  close() {
    this.wanted = false;
    clearTimeout(this.retry);
    clearInterval(this.pingTimer);
    if (this.ws) this.ws.close(1000, 'client disconnect');
  }
}

module.exports = { Signalling };
