'use strict';
/*
 * Softphone commands for the genesys-sdk driver: the SDK's own webrtcSessions extension answers
 * a call, with libwebrtc (npm @roamhq/wrtc, its Linux binary shipped as the registry package
 * @roamhq/wrtc-linux-x64) as the browser's RTCPeerConnection, so real media flows between the
 * SDK's process and the simulator's aiortc peer. The SDK is not patched: this file only puts
 * wrtc's classes where a browser has them (globalThis) and plays the app's part (what
 * genesys-cloud-webrtc-sdk does on top of the streaming client): proceed, add a microphone
 * track (a tone from RTCAudioSource), accept, count what it hears (RTCAudioSink).
 *
 * Both SDKs: the jingle-message part (propose, proceed, reject, retract: v14 webrtc.js:224-317,
 * v19 the same API). Media is v19's only: v14 proceeds, then expects a standard Jingle
 * session-initiate (urn:xmpp:jingle:1), not a genesys-webrtc offer, which it does not read
 * (docs/dialects/genesys.md, "Softphone").
 *
 * Events: softphone.proposed {sessionId, conversationId, sessionType, autoAnswer, fromJid},
 * softphone.retracted {sessionId}, softphone.handled {sessionId}, softphone.answered {sessionId},
 * softphone.ice {state}, softphone.media {frames_received, audible_frames, frames_sent},
 * softphone.ended {sessionId, reason}, softphone.error {message}.
 */
const { CommandError } = require('../common/driver');

let wrtc = null;
let loadError = null;
try {
  wrtc = require('@roamhq/wrtc');
} catch (err) {
  loadError = err;
}
if (wrtc) {
  // Browsers take a candidate with an sdpMid and no sdpMLineIndex (what the SDK builds:
  // genesys-cloud-media-session.js:187-191); wrtc 0.10 throws "Expected a 32-bit integer".
  // Resolve the index from the mid, as a browser does; nothing else changes.
  const addIceCandidate = wrtc.RTCPeerConnection.prototype.addIceCandidate;
  wrtc.RTCPeerConnection.prototype.addIceCandidate = function browserAddIceCandidate(c, ...rest) {
    if (c && c.candidate && (c.sdpMLineIndex === null || c.sdpMLineIndex === undefined)) {
      const index = this.getTransceivers().findIndex((t) => t.mid === c.sdpMid);
      c = { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: index >= 0 ? index : 0 };
    }
    return addIceCandidate.call(this, c, ...rest);
  };
  for (const name of ['RTCPeerConnection', 'RTCIceCandidate', 'RTCSessionDescription', 'MediaStream', 'MediaStreamTrack']) {
    if (!globalThis[name]) globalThis[name] = wrtc[name];
  }
}

const RATE = 48000;
const FRAME = RATE / 100; // 10 ms, what RTCAudioSource takes
const REPORT_EVERY = 25; // sink frames (10 ms each) between softphone.media events
const AUDIBLE_RMS = 0.01;

const state = {
  driver: null,
  client: null,
  answer: 'auto', // auto | manual | reject: what to do with a propose
  toneHz: 440,
  pending: new Map(), // sessionId -> propose info, not yet proceeded
  call: null, // { session, source, track, sink, timer, framesSent, framesReceived, audible }
};

function requireWrtc() {
  if (!wrtc) throw new CommandError('Unsupported', `no RTCPeerConnection in node: @roamhq/wrtc did not load (${loadError && loadError.message})`);
}

function info(p) {
  return {
    sessionId: p.sessionId, conversationId: p.conversationId || null, sessionType: p.sessionType || null,
    autoAnswer: Boolean(p.autoAnswer), sdpOverXmpp: Boolean(p.sdpOverXmpp), fromJid: p.fromJid || null,
  };
}

/** Called by the driver for each new SDK client (v19: client.webrtcSessions is the extension's API). */
function attach(driver, client, sdk) {
  state.driver = driver;
  state.client = client;
  const phone = client.webrtcSessions;
  if (!phone) return;
  phone.on('requestIncomingRtcSession', (p) => {
    state.pending.set(p.sessionId, p);
    driver.event('softphone.proposed', info(p));
    if (state.answer === 'auto') proceed(p.sessionId).catch((err) => driver.event('softphone.error', { message: err.message }));
    else if (state.answer === 'reject') phone.rejectRtcSession(p.sessionId).catch((err) => driver.event('softphone.error', { message: err.message }));
  });
  phone.on('cancelIncomingRtcSession', (sessionId) => {
    state.pending.delete(sessionId);
    driver.event('softphone.retracted', { sessionId });
  });
  phone.on('handledIncomingRtcSession', (sessionId) => driver.event('softphone.handled', { sessionId }));
  phone.on('rtcSessionError', (message) => driver.event('softphone.error', { message: String(message) }));
  phone.on('incomingRtcSession', (session) => {
    if (sdk !== '19') {
      // v14's incoming session is a standard Jingle one (stanza's jingle, webrtc.js:247-248):
      // it never comes from a genesys-webrtc offer, which v14 does not read
      driver.event('softphone.error', { message: 'v14: a Jingle session, not answered by this driver', sessionId: session.sid || null });
      return;
    }
    answer(session).catch((err) => driver.event('softphone.error', { message: err.message, sessionId: session.id }));
  });
}

async function proceed(sessionId) {
  requireWrtc();
  if (!state.pending.has(sessionId)) throw new CommandError('CommandError', `no pending call ${JSON.stringify(sessionId)}`);
  state.pending.delete(sessionId);
  await state.client.webrtcSessions.acceptRtcSession(sessionId);
}

/** The app's part once the offer is in: a microphone (a tone), the answer, then count the far end. */
async function answer(session) {
  requireWrtc();
  const driver = state.driver;
  const source = new wrtc.nonstandard.RTCAudioSource();
  const track = source.createTrack();
  const call = { session, source, track, sink: null, timer: null, framesSent: 0, framesReceived: 0, audible: 0 };
  state.call = call;
  const samples = new Int16Array(FRAME);
  let phase = 0;
  call.timer = setInterval(() => {
    const step = (2 * Math.PI * state.toneHz) / RATE;
    for (let i = 0; i < FRAME; i += 1) samples[i] = Math.round(0.3 * 32767 * Math.sin(step * (phase + i)));
    phase += FRAME;
    source.onData({ samples, sampleRate: RATE, bitsPerSample: 16, channelCount: 1, numberOfFrames: FRAME });
    call.framesSent += 1;
  }, 10);
  await session.addTrack(track);
  // addTrack reuses the offer's transceiver with replaceTrack (genesys-cloud-media-session.js:
  // 249-258), whose direction stays recvonly: the app makes it sendrecv so the answer sends.
  for (const t of session.peerConnection.getTransceivers()) {
    if (t.sender.track === track && t.direction === 'recvonly') t.direction = 'sendrecv';
  }
  const receiver = session.peerConnection.getReceivers().find((r) => r.track && r.track.kind === 'audio');
  if (receiver) {
    call.sink = new wrtc.nonstandard.RTCAudioSink(receiver.track);
    call.sink.ondata = (data) => {
      call.framesReceived += 1;
      const s = data.samples;
      let sum = 0;
      for (let i = 0; i < s.length; i += 1) sum += s[i] * s[i];
      if (s.length && Math.sqrt(sum / s.length) / 32768 >= AUDIBLE_RMS) call.audible += 1;
      if (call.framesReceived % REPORT_EVERY === 0) driver.event('softphone.media', counts(call));
    };
  }
  session.peerConnection.addEventListener('iceconnectionstatechange', () => {
    driver.event('softphone.ice', { sessionId: session.id, state: session.peerConnection.iceConnectionState });
  });
  session.on('terminated', (reason) => {
    stop(call);
    driver.event('softphone.ended', { sessionId: session.id, reason: reason && reason.condition, ...counts(call) });
  });
  await session.accept(); // the answer (genesys-webrtc), acknowledged by the server
  await state.client.webrtcSessions.rtcSessionAccepted(session.id); // <accept/> to its bare jid
  driver.event('softphone.answered', { sessionId: session.id });
}

function counts(call) {
  return { sessionId: call.session.id, frames_sent: call.framesSent, frames_received: call.framesReceived, audible_frames: call.audible };
}

function stop(call) {
  if (call.timer) clearInterval(call.timer);
  call.timer = null;
  if (call.sink) call.sink.stop();
  call.sink = null;
  call.track.stop();
}

function current() {
  const call = state.call;
  if (!call || call.session.state === 'ended') throw new CommandError('CommandError', 'no call in progress');
  return call;
}

const commands = {
  'softphone.configure': async (args) => {
    if (args.answer !== undefined) {
      if (!['auto', 'manual', 'reject'].includes(args.answer)) throw new CommandError('CommandError', `answer must be auto, manual or reject, got ${JSON.stringify(args.answer)}`);
      state.answer = args.answer;
    }
    if (args.tone_hz !== undefined) {
      const hz = Number(args.tone_hz);
      if (!(hz >= 50 && hz <= 4000)) throw new CommandError('CommandError', `tone_hz must be 50..4000, got ${JSON.stringify(args.tone_hz)}`);
      state.toneHz = hz;
    }
    return { answer: state.answer, tone_hz: state.toneHz, rtc: wrtc ? '@roamhq/wrtc' : null, rtc_error: loadError ? loadError.message : null };
  },
  'softphone.accept': async (args) => {
    const id = args.sessionId || [...state.pending.keys()].pop();
    await proceed(id);
    return { sessionId: id };
  },
  'softphone.reject': async (args) => {
    const id = args.sessionId || [...state.pending.keys()].pop();
    if (!state.pending.has(id)) throw new CommandError('CommandError', `no pending call ${JSON.stringify(id)}`);
    state.pending.delete(id);
    await state.client.webrtcSessions.rejectRtcSession(id);
    return { sessionId: id };
  },
  'softphone.mute': async () => {
    const call = current();
    call.track.enabled = false;
    await call.session.mute(undefined, 'audio');
    return counts(call);
  },
  'softphone.unmute': async () => {
    const call = current();
    call.track.enabled = true;
    await call.session.unmute(undefined, 'audio');
    return counts(call);
  },
  'softphone.hangup': async () => {
    const call = current();
    await call.session.end('success');
    return counts(call);
  },
  'softphone.status': async () => {
    const call = state.call;
    if (!call) return { pending: [...state.pending.keys()], call: null };
    const pc = call.session.peerConnection;
    let packetsReceived = 0;
    let packetsSent = 0;
    if (pc.connectionState !== 'closed') {
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') packetsReceived += s.packetsReceived || 0;
        if (s.type === 'outbound-rtp' && s.kind === 'audio') packetsSent += s.packetsSent || 0;
      });
    }
    return {
      pending: [...state.pending.keys()],
      call: { ...counts(call), state: call.session.state, ice: pc.iceConnectionState, packets_received: packetsReceived, packets_sent: packetsSent },
    };
  },
};

module.exports = { attach, commands };
