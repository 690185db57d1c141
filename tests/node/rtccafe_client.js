// Two real socket.io-client sockets (4.8.1, or 2.5.0 for Engine.IO v3) run RTCCafe's
// signalling against a server, and print every event they receive as one JSON object.
// Usage: node rtccafe_client.js <server url> <polling|websocket|upgrade> [4|2]
'use strict';
const [url, mode, major = '4'] = process.argv.slice(2);
const io = major === '2' ? require('socket.io-client-2') : require('socket.io-client').io;
const transports = { polling: ['polling'], websocket: ['websocket'], upgrade: ['polling', 'websocket'] }[mode];
const seen = [];
const deadline = setTimeout(() => finish(2, 'deadline reached'), 10000);

function finish(code, error) {
  clearTimeout(deadline);
  process.stdout.write(JSON.stringify({ error, seen }) + '\n');
  process.exit(code);
}

function withAck(socket, event, data) {
  return new Promise((resolve) => socket.emit(event, data, resolve));
}

function next(socket, event) {
  return new Promise((resolve) => socket.once(event, resolve));
}

// Connected, and its sid learnt as RTCCafe clients learn it (socket.io-client 2's socket.id
// is "<namespace>#<engine id>", not the server's sid); then every event is recorded.
async function open(name) {
  const socket = io(url + 'rtc-cafe', { transports, forceNew: true, reconnection: false });
  socket.on('connect_error', (err) => finish(1, `${name}: ${err.message}`));
  await new Promise((resolve) => socket.on('connect', resolve));
  const told = next(socket, 'sid');
  const ack = await withAck(socket, 'request-sid', {});
  const { sid } = await told;
  const record = (event, data) => {
    const shown = data && Buffer.isBuffer(data.blob) ? { ...data, blob: data.blob.toString('hex') } : data;
    seen.push({ who: name, event, data: shown ?? null });
  };
  if (socket.onAny) {
    socket.onAny(record);
  } else { // socket.io-client 2 has no onAny: every event passes through onevent
    const onevent = socket.onevent;
    socket.onevent = function (packet) {
      record(...(packet.data || []));
      onevent.call(this, packet);
    };
  }
  ids[name] = { sid, id: socket.id, ack: ack ?? null };
  return { socket, sid };
}

const ids = {};
(async () => {
  const alice = await open('alice');
  const bob = await open('bob');
  await withAck(alice.socket, 'join', { room: 'node', id: 'alice' });
  const acquired = next(alice.socket, 'acquire-peers');
  bob.socket.emit('join', { room: 'node', id: 'bob' });
  await acquired;
  const answered = next(bob.socket, 'acquire-peers-response');
  alice.socket.emit('acquire-peers-response', { room: 'node', recipient: bob.sid, id: 'alice' });
  await answered;
  const offered = next(alice.socket, 'offer');
  bob.socket.emit('offer', { recipient: alice.sid, blob: Buffer.from([0, 1, 254, 255]) });
  await offered;
  const gone = next(alice.socket, 'peer-disconnection');
  bob.socket.disconnect();
  await gone;
  const again = await open('again');
  const rekeyed = next(alice.socket, 'acquire-peers');
  again.socket.emit('join', { room: 'node', id: 'bob', prevSid: bob.sid });
  await rekeyed;
  seen.push({ who: 'ids', event: 'ids', data: ids });
  alice.socket.disconnect();
  again.socket.disconnect();
  finish(0, null);
})().catch((err) => finish(1, String(err && err.stack || err)));
