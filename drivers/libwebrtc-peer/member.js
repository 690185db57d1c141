'use strict';
/*
 * One member of a signalling room whose WebRTC is libwebrtc: the same rules as squall's aiortc
 * member (squall/media/member.py), so the two stacks meet in one room.
 *
 * - Two peer connections per other member: `outbound` (this member offers; its tracks,
 *   sendonly, and the data channel "squall") and `inbound` (the other member offers).
 * - Offers and answers are `signal` frames, data {type, sdp, tracks: {mid: track_id}}. Unlike
 *   aiortc, libwebrtc trickles: the SDP goes out with no candidate in it, and every candidate
 *   follows as its own `candidate` signal {candidate, sdpMid, sdpMLineIndex, dir}, `dir` being
 *   the sender's connection ("out" or "in"). Only loopback candidates (127.0.0.1, ::1) leave:
 *   libwebrtc gathers every interface, and squall keeps media on 127.0.0.1.
 * - Tracks: defined (track_define), requested by a peer (track_requested) and then sent on a
 *   new sendonly m-line of the outbound connection; removed (track_remove, the m-line goes
 *   inactive); a receiver drops a peer's track by asking the owner over the data channel
 *   ({"t": "stop", "track_id"}). Messages are {"t": "message", "data"} on the data channel.
 * - `peer_left` with reason "disconnected" keeps the media (peer to peer); `peer_sid_reassigned`
 *   re-keys the peer. Reason "left", a `bye` or a failed connection ends it.
 *
 * Events go to `emit(name, ...args)` with RTCCafe's names in snake case, as the aiortc member's.
 */

const { IndexedVideo, ToneAudio } = require('./media');

const CHANNEL = 'squall';
const ANSWER_TIMEOUT_MS = 10000; // real ms: a guard on the remote peer's negotiation
const LOOPBACK = new Set(['127.0.0.1', '::1']);
const STATES = {
  connection: ['connectionstatechange', 'connectionState'],
  ice_connection: ['iceconnectionstatechange', 'iceConnectionState'],
  ice_gathering: ['icegatheringstatechange', 'iceGatheringState'],
  signaling: ['signalingstatechange', 'signalingState'],
};

/** Every state of a connection's four state machines, from its first value on. */
function stateLog(pc) {
  const log = {};
  for (const [key, [event, prop]] of Object.entries(STATES)) {
    log[key] = [pc[prop]];
    pc.addEventListener(event, () => record(log, pc, key));
  }
  return log;
}

function record(log, pc, key) {
  let value;
  try { value = pc[STATES[key][1]]; } catch (err) { return; }
  if (log[key][log[key].length - 1] !== value) log[key].push(value);
}

/** The SDP without candidate lines: candidates travel as their own signals. */
function withoutCandidates(sdp) {
  return sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate:') && l !== 'a=end-of-candidates').join('\r\n');
}

function candidateAddress(candidate) {
  const bits = String(candidate).replace(/^candidate:/, '').split(' ');
  return bits.length >= 8 ? bits[4] : null;
}

class Member {
  /** send(frame): one frame to the server; emit(name, ...args): one event; realMs: see media.js. */
  constructor({ wrtc, send, emit, realMs, log = () => undefined }) {
    this.wrtc = wrtc;
    this.send = send;
    this.emit = emit;
    this.realMs = realMs;
    this.log = log;
    this.sid = null;
    this.room = null;
    this.permanentId = null;
    this.local = new Map(); // id -> {id, kind, description, media}
    this.peers = new Map(); // sid -> peer
    this.candidates = { sent: 0, skipped: 0, received: 0 };
    this.closed = false;
  }

  // --- public API (RTCCafe's) ------------------------------------------------------------------

  addTrack(kind, id, description = {}, fps = 30) {
    if (this.local.has(id)) throw new Error(`a track with id ${JSON.stringify(id)} is already added`);
    const media = kind === 'video' ? new IndexedVideo(this.wrtc, this.realMs, fps) : new ToneAudio(this.wrtc, this.realMs);
    const local = { id, kind, description, media };
    this.local.set(id, local);
    if (this.room !== null) this.send({ type: 'track_define', room: this.room, track: definition(local) });
    return id;
  }

  removeTrack(id) {
    const local = this.local.get(id);
    if (!local) return null;
    this.local.delete(id);
    if (this.room !== null) this.send({ type: 'track_remove', room: this.room, track_id: id });
    for (const peer of this.peers.values()) this.stopSending(peer, id);
    local.media.stop();
    return id;
  }

  requestPeerTrack(sid, id) {
    if (this.room === null) throw new Error('not in a room: join one first');
    this.send({ type: 'track_request', room: this.room, to: sid, track_id: id });
  }

  removePeerTrack(sid, id) {
    const peer = this.peers.get(sid);
    if (!peer || !peer.tracks.has(id)) return null;
    this.channelSend(peer, { t: 'stop', track_id: id });
    this.forgetPeerTrack(peer, id);
    return id;
  }

  sendMessage(message, to = null) {
    let targets;
    if (to === null) targets = [...this.peers.values()];
    else if (this.peers.has(to)) targets = [this.peers.get(to)];
    else throw new Error(`no peer ${JSON.stringify(to)} (peers: ${[...this.peers.keys()].join(', ') || 'none'})`);
    for (const peer of targets) {
      if (!this.channelSend(peer, { t: 'message', data: message })) this.signal(peer.sid, 'message', message);
    }
  }

  get connectedPeers() { return [...this.peers.values()].filter((p) => p.connected).map((p) => p.sid); }

  // --- signalling in -----------------------------------------------------------------------------

  handle(frame) {
    const kind = frame.type;
    if (this.closed || !kind) return;
    if (frame.room !== undefined && frame.room !== null && frame.room !== this.room && kind !== 'joined') return;
    const handler = this[`on_${kind}`];
    if (typeof handler === 'function') handler.call(this, frame);
  }

  on_joined(frame) {
    this.sid = frame.sid;
    this.room = frame.room;
    this.permanentId = frame.permanent_id || this.permanentId;
    // the server forgot our tracks with our old connection: define them again
    for (const local of this.local.values()) this.send({ type: 'track_define', room: this.room, track: definition(local) });
    for (const info of frame.peers || []) {
      const peer = this.known(info.sid, info.permanent_id);
      for (const d of info.tracks || []) this.define(peer, d);
    }
    this.emit('joined', this.sid, this.room);
  }

  on_peer_joined(frame) {
    const peer = this.known(frame.peer.sid, frame.peer.permanent_id);
    for (const d of frame.peer.tracks || []) this.define(peer, d);
  }

  on_peer_sid_reassigned(frame) {
    if (this.peers.has(frame.old_sid)) {
      this.rekey(frame.old_sid, frame.new_sid);
      this.peers.get(frame.new_sid).detached = false;
    } else this.known(frame.new_sid, frame.permanent_id);
  }

  on_peer_left(frame) {
    const peer = this.peers.get(frame.sid);
    if (!peer) return;
    if (frame.reason === 'disconnected') peer.detached = true; // media is peer to peer
    else this.endPeer(peer);
  }

  on_signal(frame) {
    const { from, kind, data } = frame;
    if (kind === 'message') {
      this.emit('message', from, data);
      return;
    }
    const peer = this.peers.get(from) || this.known(from, frame.from_permanent_id);
    if (kind === 'bye') {
      this.endPeer(peer);
      return;
    }
    if (!['offer', 'answer', 'candidate'].includes(kind)) return;
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      this.emit('webrtc_error', `${kind} from ${from}: data is not an object`);
      return;
    }
    if (kind === 'offer') this.inboundTask(peer, () => this.answerOffer(peer, data));
    else if (kind === 'answer') {
      if (peer.answer) peer.answer(data);
    } else this.addCandidate(peer, data);
  }

  on_track_defined(frame) {
    const peer = this.peers.get(frame.sid);
    if (peer) this.define(peer, frame.track);
  }

  on_track_removed(frame) {
    const peer = this.peers.get(frame.sid);
    if (!peer) return;
    const id = frame.track_id;
    if (peer.tracks.has(id)) this.forgetPeerTrack(peer, id);
    const d = peer.definitions.get(id);
    if (d) {
      peer.definitions.delete(id);
      this.emit('peer_track_definition_removed', peer.sid, id, d.kind, d.description || {});
    }
  }

  on_track_requested(frame) {
    const peer = this.peers.get(frame.from);
    const local = this.local.get(frame.track_id);
    if (!peer || !local || peer.wanted.has(local.id)) return;
    peer.wanted.add(local.id);
    this.negotiate(peer);
  }

  on_left(frame) {
    if (frame.room === this.room) this.leftRoom();
  }

  on_error(frame) {
    this.emit('signalling_error', frame);
  }

  // --- peers -------------------------------------------------------------------------------------

  known(sid, permanentId) {
    let peer = this.peers.get(sid);
    if (!peer) {
      const old = [...this.peers.values()].find((p) => p.permanentId === permanentId);
      if (old) {
        this.rekey(old.sid, sid);
        peer = old;
      } else peer = this.newPeer(sid, permanentId);
    }
    peer.detached = false;
    return peer;
  }

  newPeer(sid, permanentId) {
    const pc = this.connection();
    const peer = {
      sid, permanentId, outbound: pc, outChannel: pc.createDataChannel(CHANNEL), outStates: stateLog(pc),
      inbound: null, inChannel: null, inStates: null,
      definitions: new Map(), tracks: new Map(), identifiedMids: new Map(), sending: new Map(), wanted: new Set(),
      detached: false, connected: false, closed: false, negotiating: false, dirty: false, offers: 0, answer: null,
      inboundChain: Promise.resolve(),
    };
    this.peers.set(sid, peer);
    this.trickle(peer, pc, 'out');
    pc.addEventListener('connectionstatechange', () => this.checkConnection(peer));
    peer.outChannel.addEventListener('open', () => this.checkConnection(peer));
    this.negotiate(peer);
    return peer;
  }

  connection() {
    // no ICE servers: nothing but host candidates, and only loopback ones are signalled
    const pc = new this.wrtc.RTCPeerConnection({ iceServers: [] });
    pc.pendingRemote = []; // candidates that came before the description they belong to
    pc.pendingLocal = []; // candidates gathered before their description was signalled
    pc.signalled = false;
    return pc;
  }

  inbound(peer) {
    if (peer.inbound) return peer.inbound;
    const pc = this.connection();
    peer.inbound = pc;
    peer.inStates = stateLog(pc);
    this.trickle(peer, pc, 'in');
    pc.addEventListener('datachannel', (ev) => {
      peer.inChannel = ev.channel;
      ev.channel.addEventListener('message', (m) => this.onChannelMessage(peer, m.data));
      this.checkConnection(peer);
    });
    pc.addEventListener('connectionstatechange', () => this.checkConnection(peer));
    return pc;
  }

  /** Every loopback candidate of `pc` goes out as its own signal, after its description. */
  trickle(peer, pc, dir) {
    pc.addEventListener('icecandidate', (ev) => {
      const c = ev.candidate;
      if (!c || !c.candidate) return; // end of gathering: aiortc takes no end-of-candidates signal
      if (!LOOPBACK.has(candidateAddress(c.candidate))) {
        this.candidates.skipped += 1;
        return;
      }
      const data = { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex, dir };
      if (pc.signalled) this.sendCandidate(peer, data);
      else pc.pendingLocal.push(data);
    });
  }

  sendCandidate(peer, data) {
    this.candidates.sent += 1;
    this.signal(peer.sid, 'candidate', data);
  }

  /** The description of `pc` has been signalled: the candidates held for it follow. */
  signalled(peer, pc) {
    pc.signalled = true;
    for (const data of pc.pendingLocal.splice(0)) this.sendCandidate(peer, data);
  }

  addCandidate(peer, data) {
    this.candidates.received += 1;
    // "dir" is the sender's view: its outbound connection is our inbound one
    const pc = (data.dir || 'out') === 'out' ? this.inbound(peer) : peer.outbound;
    if (!data.candidate) return;
    const candidate = { candidate: data.candidate, sdpMid: data.sdpMid ?? null, sdpMLineIndex: data.sdpMLineIndex ?? 0 };
    if (!pc.remoteDescription || pc.applyingRemote) pc.pendingRemote.push(candidate);
    else this.applyCandidate(pc, candidate);
  }

  applyCandidate(pc, candidate) {
    pc.addIceCandidate(candidate).catch((err) => this.emit('webrtc_error', `candidate ${candidate.candidate}: ${err.message}`));
  }

  async setRemote(pc, description) {
    pc.applyingRemote = true;
    try {
      await pc.setRemoteDescription(description);
    } finally {
      pc.applyingRemote = false;
    }
    for (const c of pc.pendingRemote.splice(0)) this.applyCandidate(pc, c);
  }

  checkConnection(peer) {
    if (peer.closed) return;
    const pcs = [peer.outbound, peer.inbound];
    if (pcs.some((pc) => pc && pc.connectionState === 'failed')) {
      this.endPeer(peer);
      return;
    }
    const ready = pcs.every((pc) => pc && pc.connectionState === 'connected')
      && peer.outChannel.readyState === 'open' && peer.inChannel !== null;
    if (ready && !peer.connected) {
      peer.connected = true;
      this.emit('connect_to_peer', peer.sid);
    }
  }

  rekey(old, sid) {
    const peer = this.peers.get(old);
    this.peers.delete(old);
    peer.sid = sid;
    this.peers.set(sid, peer);
    this.emit('reassign_peer_sid', old, sid);
  }

  endPeer(peer) {
    if (peer.closed) return;
    peer.closed = true;
    if (this.peers.get(peer.sid) === peer) this.peers.delete(peer.sid);
    for (const id of [...peer.tracks.keys()]) this.forgetPeerTrack(peer, id);
    for (const [id, d] of peer.definitions) this.emit('peer_track_definition_removed', peer.sid, id, d.kind, d.description || {});
    peer.definitions.clear();
    if (peer.answer) peer.answer(null);
    for (const { track } of peer.sending.values()) track.stop();
    for (const [pc, log] of [[peer.outbound, peer.outStates], [peer.inbound, peer.inStates]]) {
      if (!pc) continue;
      pc.close();
      // libwebrtc fires no state events on close() (as the spec says): record where it ended
      for (const key of Object.keys(STATES)) record(log, pc, key);
    }
    if (peer.connected) this.emit('disconnect_from_peer', peer.sid);
  }

  define(peer, d) {
    const def = { id: d.id, kind: d.kind, description: d.description || {} };
    const old = peer.definitions.get(def.id);
    if (old && JSON.stringify(old) === JSON.stringify(def)) return; // redefined after a rejoin
    peer.definitions.set(def.id, def);
    this.emit('peer_track_defined', peer.sid, { ...def });
  }

  forgetPeerTrack(peer, id) {
    const track = peer.tracks.get(id);
    if (!track) return;
    peer.tracks.delete(id);
    for (const [mid, tid] of peer.identifiedMids) if (tid === id) peer.identifiedMids.delete(mid);
    this.emit('peer_track_removed', peer.sid, id);
  }

  // --- media out ---------------------------------------------------------------------------------

  stopSending(peer, id) {
    if (peer.wanted.has(id) || peer.sending.has(id)) {
      peer.wanted.delete(id);
      this.negotiate(peer);
    }
  }

  /** Attach and detach tracks to match `peer.wanted`; a new m-line for every sending. */
  applyWanted(peer) {
    for (const [id, sending] of [...peer.sending]) {
      if (peer.wanted.has(id)) continue;
      peer.sending.delete(id);
      sending.transceiver.sender.replaceTrack(null);
      sending.transceiver.direction = 'inactive';
      sending.track.stop();
    }
    for (const id of peer.wanted) {
      if (peer.sending.has(id)) continue;
      const local = this.local.get(id);
      if (!local) {
        peer.wanted.delete(id);
        continue;
      }
      const track = local.media.createTrack();
      const transceiver = peer.outbound.addTransceiver(track, { direction: 'sendonly' });
      peer.sending.set(id, { transceiver, track });
    }
  }

  /** (Re)negotiate the outbound connection; calls while one is in flight coalesce. */
  negotiate(peer) {
    peer.dirty = true;
    if (peer.negotiating) return;
    peer.negotiating = true;
    this.negotiationLoop(peer)
      .catch((err) => {
        if (!peer.closed) this.emit('negotiation_failed', peer.sid, String(err && err.message));
      })
      .finally(() => { peer.negotiating = false; });
  }

  async negotiationLoop(peer) {
    const pc = peer.outbound;
    while (peer.dirty && !peer.closed) {
      peer.dirty = false;
      this.applyWanted(peer);
      const offer = await pc.createOffer();
      pc.signalled = false;
      await pc.setLocalDescription(offer);
      const tracks = {};
      for (const [id, { transceiver }] of peer.sending) if (transceiver.mid !== null) tracks[transceiver.mid] = id;
      peer.offers += 1;
      const answer = this.nextAnswer(peer);
      this.signal(peer.sid, 'offer', { type: 'offer', sdp: withoutCandidates(pc.localDescription.sdp), tracks });
      this.signalled(peer, pc);
      const data = await answer;
      if (data === null || peer.closed) return;
      await this.setRemote(pc, { type: 'answer', sdp: data.sdp });
    }
  }

  nextAnswer(peer) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        peer.answer = null;
        reject(new Error(`no answer within ${ANSWER_TIMEOUT_MS / 1000}s`));
      }, this.realMs(ANSWER_TIMEOUT_MS));
      peer.answer = (data) => {
        clearTimeout(timer);
        peer.answer = null;
        resolve(data);
      };
    });
  }

  // --- media in ----------------------------------------------------------------------------------

  /** Offers and their candidates, one after another (the inbound connection's lock). */
  inboundTask(peer, task) {
    peer.inboundChain = peer.inboundChain.then(() => (peer.closed ? undefined : task())).catch((err) => {
      if (!peer.closed) this.emit('webrtc_error', `answering ${peer.sid}: ${err && err.message}`);
    });
  }

  async answerOffer(peer, data) {
    const pc = this.inbound(peer);
    await this.setRemote(pc, { type: 'offer', sdp: data.sdp });
    const answer = await pc.createAnswer();
    pc.signalled = false;
    await pc.setLocalDescription(answer);
    this.signal(peer.sid, 'answer', { type: 'answer', sdp: withoutCandidates(pc.localDescription.sdp) });
    this.signalled(peer, pc);
    this.identify(peer, pc, data.tracks || {});
  }

  /** Match the offer's {mid: track_id} with the receivers; announce what changed. */
  identify(peer, pc, tracks) {
    const receivers = new Map();
    for (const t of pc.getTransceivers()) if (t.mid !== null) receivers.set(t.mid, t.receiver.track);
    for (const [mid, old] of [...peer.identifiedMids]) if (tracks[mid] !== old) this.forgetPeerTrack(peer, old);
    for (const [mid, id] of Object.entries(tracks)) {
      const track = receivers.get(mid);
      if (!track || peer.identifiedMids.get(mid) === id) continue;
      peer.identifiedMids.set(mid, id);
      peer.tracks.set(id, track);
      this.emit('peer_track_identified', peer.sid, id, track);
    }
  }

  // --- data channel ------------------------------------------------------------------------------

  channelSend(peer, envelope) {
    if (peer.outChannel.readyState !== 'open') return false;
    peer.outChannel.send(JSON.stringify(envelope));
    return true;
  }

  onChannelMessage(peer, raw) {
    let envelope;
    try {
      envelope = JSON.parse(raw);
    } catch (err) {
      this.emit('message', peer.sid, String(raw));
      return;
    }
    const kind = envelope && typeof envelope === 'object' ? envelope.t : undefined;
    if (kind === 'message') this.emit('message', peer.sid, envelope.data ?? null);
    else if (kind === 'stop') this.stopSending(peer, envelope.track_id || '');
    else this.emit('message', peer.sid, envelope);
  }

  // --- plumbing ----------------------------------------------------------------------------------

  signal(to, kind, data) {
    if (this.room !== null) this.send({ type: 'signal', room: this.room, to, kind, data });
  }

  /** The member left the room on purpose: every peer ends, tracks stay added. */
  leftRoom() {
    for (const peer of [...this.peers.values()]) this.endPeer(peer);
    this.room = null;
  }

  close() {
    if (this.closed) return;
    for (const peer of [...this.peers.values()]) this.endPeer(peer);
    for (const local of this.local.values()) local.media.stop();
    this.closed = true;
  }
}

function definition(local) {
  return { id: local.id, kind: local.kind, description: local.description };
}

module.exports = { Member, withoutCandidates, candidateAddress };
