'use strict';
/*
 * squall driver for a second WebRTC stack: a reference-protocol client (signalling.js) whose
 * room member (member.js) is libwebrtc from npm @roamhq/wrtc 0.10.0, not aiortc. It answers the
 * reference driver's room and webrtc.* commands (docs/driver.md), so scenarios/webrtc/* run
 * against it, and the media it exchanges with aiortc is counted frame by frame at both ends
 * (media.js paints and reads the frame index squall/media/tracks.py uses).
 *
 *   node drivers/libwebrtc-peer/driver.js [--timescale S] [--seed N] [--debug]
 *
 * Media runs on the wall clock whatever the timescale: `over` and `timeout` are real seconds.
 */
const { Driver, CommandError } = require('../common/driver');

let wrtc = null;
let loadError = null;
try {
  wrtc = require('@roamhq/wrtc');
} catch (err) {
  loadError = err;
}
const { Signalling } = require('./signalling');
const { Member } = require('./member');
const { Probe } = require('./media');

const DEFAULT_TIMEOUT_S = 10;
const WEBRTC_EVENTS = [
  'connect_to_peer', 'disconnect_from_peer', 'peer_track_defined', 'peer_track_identified', 'peer_track_removed',
  'peer_track_definition_removed', 'reassign_peer_sid', 'message', 'joined', 'signalling_error', 'negotiation_failed',
  'webrtc_error',
];
const STAT_NAMES = ['packetsSent', 'bytesSent', 'packetsReceived', 'bytesReceived', 'packetsLost'];

const state = {
  driver: null,
  signalling: null,
  member: null, // after webrtc.enable
  permanentId: null,
  known: new Map(), // permanent id -> the latest peer object (kept after it has gone)
  sids: new Map(), // every sid seen -> permanent id
  probes: new Map(), // `${permanent id}\u0000${track id}` -> {owner, id, probe}
  changed: [], // resolvers woken when a probe is added
};

/** A real delay in ms as what the (time-scaled) setTimeout must be given. */
function realMs(ms) {
  return ms / state.driver.timescale;
}

function realDelay(seconds) {
  return new Promise((resolve) => setTimeout(resolve, realMs(seconds * 1000)));
}

function need(args, key) {
  if (args[key] === undefined) throw new CommandError('CommandError', `missing argument ${JSON.stringify(key)}`);
  return args[key];
}

function rtc() {
  if (!state.member) throw new CommandError('CommandError', 'WebRTC is not enabled: send webrtc.enable before join_room');
  return state.member;
}

// --- events ----------------------------------------------------------------------------------

function remember(sid) {
  const peer = state.member && state.member.peers.get(sid);
  if (peer) {
    state.known.set(peer.permanentId, peer);
    state.sids.set(sid, peer.permanentId);
  }
  return state.sids.get(sid) ?? null;
}

function probeKey(owner, id) {
  return `${owner}\u0000${id}`;
}

function onMemberEvent(name, args) {
  const driver = state.driver;
  if (name === 'signalling_error' || name === 'webrtc_error') {
    driver.event(`webrtc.${name}`, { error: args[0] });
    return;
  }
  if (name === 'joined') {
    driver.event('webrtc.joined', { sid: args[0], room: args[1] });
    return;
  }
  if (name === 'reassign_peer_sid') {
    const [old, sid] = args;
    const pid = remember(sid);
    state.sids.set(old, pid || state.sids.get(old) || '');
    driver.event('webrtc.reassign_peer_sid', { old_sid: old, sid, permanent_id: pid });
    return;
  }
  const sid = args[0];
  const out = { peer: sid, permanent_id: remember(sid) };
  const owner = out.permanent_id || sid;
  if (name === 'peer_track_defined') out.track = args[1];
  else if (name === 'peer_track_identified') {
    const [, id, track] = args;
    Object.assign(out, { id, kind: track.kind });
    const key = probeKey(owner, id);
    const old = state.probes.get(key);
    if (old) old.probe.stop();
    state.probes.set(key, { owner, id, probe: new Probe(wrtc, track) });
    for (const wake of state.changed.splice(0)) wake();
  } else if (name === 'peer_track_removed') {
    out.id = args[1];
    const held = state.probes.get(probeKey(owner, args[1]));
    if (held) held.probe.stop(); // the track ended for this reader, as aiortc's does
  } else if (name === 'peer_track_definition_removed') Object.assign(out, { id: args[1], kind: args[2], description: args[3] });
  else if (name === 'message') out.message = args[1];
  else if (name === 'negotiation_failed') out.error = args[1];
  driver.event(`webrtc.${name}`, out);
}

// --- peers by sid or permanent id -----------------------------------------------------------------

function sidOf(ref) {
  if (typeof ref !== 'string' || !ref) throw new CommandError('CommandError', "'peer' must be a peer's sid or permanent id");
  const peers = rtc().peers;
  if (peers.has(ref)) return ref;
  for (const [sid, peer] of peers) if (peer.permanentId === ref) return sid;
  const known = [...peers].map(([s, p]) => `${s} (${p.permanentId})`).join(', ') || 'none';
  throw new CommandError('CommandError', `no peer ${JSON.stringify(ref)} (peers: ${known})`);
}

function ownerOf(ref) {
  if (state.sids.has(ref)) return state.sids.get(ref);
  const peer = state.member && state.member.peers.get(ref);
  return peer ? peer.permanentId : ref;
}

// --- commands ---------------------------------------------------------------------------------------

async function waitFrames(owner, id, frames, timeoutS) {
  const key = probeKey(owner, id);
  let timer;
  const deadline = new Promise((resolve) => { timer = setTimeout(resolve, realMs(timeoutS * 1000)); });
  const read = (async () => {
    while (!state.probes.has(key)) await new Promise((resolve) => state.changed.push(resolve));
    // a re-identified track gets a new probe: wait on the newest one
    for (;;) {
      const held = state.probes.get(key);
      await held.probe.wait(frames);
      if (state.probes.get(key) === held) return;
    }
  })();
  await Promise.race([read, deadline]);
  clearTimeout(timer);
  const held = state.probes.get(key);
  return Boolean(held && held.probe.report().frames >= frames);
}

async function snapshot(pc) {
  const out = {};
  (await pc.getStats()).forEach((s) => {
    const kind = s.kind || s.mediaType || '-';
    for (const name of STAT_NAMES) {
      if (Number.isInteger(s[name])) {
        const key = `${s.type}.${kind}.${name}`;
        out[key] = (out[key] || 0) + s[name];
      }
    }
  });
  return out;
}

const webrtcCommands = {
  'webrtc.enable': async (args) => {
    if (!wrtc) throw new CommandError('Unsupported', `libwebrtc did not load: @roamhq/wrtc: ${loadError && loadError.message}`);
    if (state.signalling.rooms.size) throw new CommandError('InvalidState', 'webrtc.enable comes before join_room');
    if (!state.member) {
      state.member = new Member({
        wrtc,
        send: (frame) => state.signalling.send(frame),
        emit: (name, ...args) => onMemberEvent(name, args),
        realMs,
        log: (...parts) => state.driver.debug(...parts),
      });
    }
    state.permanentId = args.permanent_id || state.permanentId;
    return { enabled: true, commands: Object.keys(webrtcCommands), stack: 'libwebrtc (@roamhq/wrtc 0.10.0)' };
  },
  'webrtc.add_track': async (args) => {
    const kind = need(args, 'kind');
    if (kind !== 'video' && kind !== 'audio') throw new CommandError('CommandError', `'kind' must be 'video' or 'audio', got ${JSON.stringify(kind)}`);
    const member = rtc();
    let id = args.id;
    if (!id) {
      let n = member.local.size + 1;
      while (member.local.has(`${kind}-${n}`)) n += 1;
      id = `${kind}-${n}`;
    }
    try {
      member.addTrack(kind, String(id), args.description || {}, Number(args.fps || 30));
    } catch (err) {
      throw new CommandError('CommandError', err.message);
    }
    return { id, kind };
  },
  'webrtc.remove_track': async (args) => ({ removed: rtc().removeTrack(need(args, 'id')) }),
  'webrtc.request_peer_track': async (args) => {
    const sid = sidOf(need(args, 'peer'));
    rtc().requestPeerTrack(sid, need(args, 'id'));
    return { peer: sid };
  },
  'webrtc.remove_peer_track': async (args) => {
    const sid = sidOf(need(args, 'peer'));
    return { peer: sid, removed: rtc().removePeerTrack(sid, need(args, 'id')) };
  },
  'webrtc.send_message': async (args) => {
    const sid = args.to !== undefined && args.to !== null ? sidOf(args.to) : null;
    try {
      rtc().sendMessage(args.message ?? null, sid);
    } catch (err) {
      throw new CommandError('CommandError', err.message);
    }
    return { to: sid };
  },
  'webrtc.status': async () => {
    const member = rtc();
    const definitions = {};
    const tracks = {};
    for (const [sid, peer] of member.peers) {
      definitions[sid] = Object.fromEntries(peer.definitions);
      tracks[sid] = [...peer.tracks.keys()].sort();
    }
    return {
      sid: member.sid,
      permanent_id: member.permanentId,
      tracks: [...member.local.values()].map((t) => ({ id: t.id, kind: t.kind, description: t.description })),
      peer_track_definitions: definitions,
      peer_tracks: tracks,
      connected_peers: member.connectedPeers,
      discovered_peers: [...member.peers.keys()],
      candidates: { ...member.candidates },
    };
  },
  'webrtc.media_report': async (args) => {
    const member = rtc();
    for (const sid of member.peers.keys()) remember(sid);
    let reached = null;
    if (args.frames !== undefined) {
      reached = await waitFrames(ownerOf(need(args, 'peer')), need(args, 'track'), Number(args.frames), Number(args.timeout ?? DEFAULT_TIMEOUT_S));
    }
    const tracks = [...state.probes.values()].map(({ owner, id, probe }) => ({ permanent_id: owner, id, ...probe.report() }));
    const peers = [...state.known].map(([pid, peer]) => ({
      sid: peer.sid,
      permanent_id: pid,
      connected: peer.connected && !peer.closed,
      closed: peer.closed,
      outbound: peer.outStates,
      inbound: peer.inStates,
    }));
    const out = { tracks, peers };
    if (reached !== null) out.reached = reached;
    return out;
  },
  'webrtc.stats': async (args) => {
    const peer = rtc().peers.get(sidOf(need(args, 'peer')));
    const direction = args.direction || 'outbound';
    const pc = direction === 'outbound' ? peer.outbound : peer.inbound;
    if (!pc) throw new CommandError('CommandError', `no ${direction} connection to ${peer.sid} yet`);
    const before = await snapshot(pc);
    if (args.over === undefined) return { peer: peer.sid, direction, counters: before };
    const over = Number(args.over);
    await realDelay(over); // a measurement window, not a wait for an event
    const after = await snapshot(pc);
    const delta = {};
    for (const [key, value] of Object.entries(after)) delta[key] = value - (before[key] || 0);
    return { peer: peer.sid, direction, over, delta, counters: after };
  },
};

function to(args) {
  return args.to ? { to: args.to } : {};
}

/** One §8 frame to `room` (the only room joined when none is named). */
function roomFrame(args, frame) {
  const rooms = [...state.signalling.rooms.keys()];
  const room = args.room ?? (rooms.length === 1 ? rooms[0] : undefined);
  if (room === undefined) throw new CommandError('CommandError', `name a 'room' (joined: ${rooms.join(', ') || 'none'})`);
  if (!state.signalling.send({ ...frame, room })) throw new CommandError('NotConnected', 'not connected');
  return null;
}

const commands = {
  configure: async (args) => {
    if (typeof args.token === 'string') state.driver.secret(args.token);
    return state.signalling.configure(args);
  },
  connect: async (args) => {
    state.signalling.configure(args);
    try {
      return await state.signalling.connect();
    } catch (err) {
      throw new CommandError(err.type || 'ConnectionFailed', err.message);
    }
  },
  disconnect: async () => state.signalling.disconnect(),
  reconnect: async () => {
    try {
      return await state.signalling.reconnect();
    } catch (err) {
      throw new CommandError(err.type || 'ConnectionFailed', err.message);
    }
  },
  join_room: async (args) => {
    const room = need(args, 'room');
    const permanentId = args.permanent_id || state.permanentId;
    try {
      return await state.signalling.join(room, permanentId);
    } catch (err) {
      throw new CommandError(err.type || 'RemoteError', err.message);
    }
  },
  leave_room: async (args) => {
    try {
      return await state.signalling.leave(need(args, 'room'));
    } catch (err) {
      throw new CommandError(err.type || 'RemoteError', err.message);
    }
  },
  answer_drain: async (args) => {
    try {
      return state.signalling.answerDrain(args.with ?? 'none');
    } catch (err) {
      throw new CommandError('CommandError', err.message);
    }
  },
  send_signal: async (args) => roomFrame(args, { type: 'signal', kind: need(args, 'kind'), data: args.data ?? null, ...to(args) }),
  send_message: async (args) => roomFrame(args, { type: 'signal', kind: 'message', data: args.message ?? null, ...to(args) }),
  define_track: async (args) => roomFrame(args, { type: 'track_define', track: need(args, 'track') }),
  remove_track: async (args) => roomFrame(args, { type: 'track_remove', track_id: need(args, 'track_id') }),
  request_track: async (args) => roomFrame(args, { type: 'track_request', to: need(args, 'to'), track_id: need(args, 'track_id') }),
  status: async () => ({ ...state.signalling.snapshot(), webrtc: Boolean(state.member) }),
  ...webrtcCommands,
};

function main() {
  const driver = new Driver({
    name: 'libwebrtc-peer',
    commands,
    quit: async () => {
      if (state.member) state.member.close();
      for (const { probe } of state.probes.values()) probe.stop();
      await state.signalling.disconnect();
    },
  });
  state.driver = driver;
  state.signalling = new Signalling({
    onFrame: (frame) => {
      if (state.member) state.member.handle(frame);
    },
    events: (name, data) => driver.event(name, data),
    log: (...parts) => driver.debug(...parts),
  });
  driver.start();
}

main();
