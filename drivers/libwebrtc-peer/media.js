'use strict';
/*
 * Synthetic tracks whose frames say who they are, and the receiver's tally, for libwebrtc
 * (@roamhq/wrtc's nonstandard RTCVideoSource / RTCAudioSource / sinks). The picture is the one
 * squall/media/tracks.py paints, so either stack decodes the other's frames: 320 x 240 I420,
 * an 8 x 4 grid of 40 x 60 blocks, one bit each (luma 220 = 1, 40 = 0), 24 bits of index and
 * 8 bits of check. The tally keeps the fields of squall/media/probe.py's MediaReport.
 *
 * Media runs on the wall clock whatever the driver's timescale: `realMs(ms)` turns a real delay
 * into what the (possibly scaled) setTimeout must be given.
 */

const WIDTH = 320;
const HEIGHT = 240;
const COLS = 8;
const ROWS = 4;
const BLOCK_W = WIDTH / COLS;
const BLOCK_H = HEIGHT / ROWS;
const LIGHT = 220;
const DARK = 40;
const THRESHOLD = (LIGHT + DARK) / 2;
const INDEX_BITS = 24;
const BLACK_LUMA = 20; // testrtc: a frame whose mean luma is below this is black
const AUDIO_RATE = 48000;
const AUDIO_FRAME = AUDIO_RATE / 100; // 10 ms: what RTCAudioSource takes
const SILENCE_RMS = 0.01;

function check(index) {
  return ((index ^ (index >> 8) ^ (index >> 16)) & 0xff) ^ 0xa5;
}

/** The 32 bits painted for frame `index` (as encode_bits in squall/media/tracks.py). */
function encodeBits(index) {
  const i = index & ((1 << INDEX_BITS) - 1);
  return (i | (check(i) << INDEX_BITS)) >>> 0;
}

/** An I420 frame (Y, then U and V at 128) showing `index`. */
function indexedFrame(index) {
  const data = new Uint8Array((WIDTH * HEIGHT * 3) / 2).fill(128);
  const bits = encodeBits(index);
  for (let y = 0; y < HEIGHT; y += 1) {
    const r = Math.floor(y / BLOCK_H);
    for (let c = 0; c < COLS; c += 1) {
      const value = (bits >>> (r * COLS + c)) & 1 ? LIGHT : DARK;
      data.fill(value, y * WIDTH + c * BLOCK_W, y * WIDTH + (c + 1) * BLOCK_W);
    }
  }
  return { width: WIDTH, height: HEIGHT, data };
}

/**
 * The index in a received I420 frame, or null. Blocks are sampled in their middle half at
 * three heights (decode_index's rule), scaled to the frame's size: libwebrtc may send a
 * smaller picture when it adapts to CPU or bandwidth.
 */
function decodeIndex({ width, height, data }) {
  const sx = width / WIDTH;
  const sy = height / HEIGHT;
  let bits = 0;
  for (let i = 0; i < ROWS * COLS; i += 1) {
    const r = Math.floor(i / COLS);
    const c = i % COLS;
    const cy = r * BLOCK_H + BLOCK_H / 2;
    const cx = c * BLOCK_W + BLOCK_W / 2;
    let total = 0;
    let count = 0;
    for (const dy of [-BLOCK_H / 4, 0, BLOCK_H / 4]) {
      const y = Math.floor((cy + dy) * sy);
      const x0 = Math.floor((cx - BLOCK_W / 4) * sx);
      const x1 = Math.max(x0 + 1, Math.floor((cx + BLOCK_W / 4) * sx));
      for (let x = x0; x < x1; x += 1) total += data[y * width + x];
      count += x1 - x0;
    }
    if (total / count > THRESHOLD) bits = (bits | (1 << i)) >>> 0;
  }
  const index = bits & ((1 << INDEX_BITS) - 1);
  return bits >>> INDEX_BITS === check(index) ? index : null;
}

/** Mean luma over every 8th pixel of every 8th line (mean_luma's grid). */
function meanLuma({ width, height, data }) {
  let sum = 0;
  let n = 0;
  for (let y = 0; y < height; y += 8) {
    for (let x = 0; x < width; x += 8) {
      sum += data[y * width + x];
      n += 1;
    }
  }
  return n ? sum / n : 0;
}

/**
 * Calls `tick(n)` for n = 0, 1, ... at `hz`, paced on the real clock. A late timer is caught
 * up gently (ticks at least 3/4 of a period apart) and a debt of more than 3 periods is
 * forgiven, never paid in a burst: libwebrtc's encoder drops frames that come too close
 * together, and each dropped index would read as a missing frame at the receiver.
 */
function paced(hz, realMs, tick) {
  const period = 1000 / hz;
  const now = () => Number(process.hrtime.bigint()) / 1e6; // real ms, whatever the timescale
  let origin = now();
  let n = 0;
  let timer = null;
  let stopped = false;
  const step = () => {
    if (stopped) return;
    tick(n);
    n += 1;
    const t = now();
    if (t - (origin + n * period) > 3 * period) origin = t - n * period; // forgive the debt
    const due = Math.max(0.75 * period, origin + n * period - t);
    timer = setTimeout(step, realMs(due));
  };
  step();
  return {
    get sent() { return n; },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

/** A video source painting frame indices at `fps`; each sending gets its own track of it. */
class IndexedVideo {
  constructor(wrtc, realMs, fps = 30) {
    this.kind = 'video';
    this.source = new wrtc.nonstandard.RTCVideoSource();
    this.pacer = paced(fps, realMs, (n) => this.source.onFrame(indexedFrame(n)));
  }

  createTrack() { return this.source.createTrack(); }

  get sent() { return this.pacer.sent; }

  stop() { this.pacer.stop(); }
}

/** A 440 Hz tone, 10 ms mono frames at 48 kHz. */
class ToneAudio {
  constructor(wrtc, realMs, frequency = 440, amplitude = 0.3) {
    this.kind = 'audio';
    this.source = new wrtc.nonstandard.RTCAudioSource();
    const samples = new Int16Array(AUDIO_FRAME);
    const stepRad = (2 * Math.PI * frequency) / AUDIO_RATE;
    const peak = Math.round(32767 * amplitude);
    this.pacer = paced(100, realMs, (n) => {
      const start = n * AUDIO_FRAME;
      for (let i = 0; i < AUDIO_FRAME; i += 1) samples[i] = Math.round(peak * Math.sin(stepRad * (start + i)));
      this.source.onData({ samples, sampleRate: AUDIO_RATE, bitsPerSample: 16, channelCount: 1, numberOfFrames: AUDIO_FRAME });
    });
  }

  createTrack() { return this.source.createTrack(); }

  get sent() { return this.pacer.sent; }

  stop() { this.pacer.stop(); }
}

/** Reads a received track with a sink and keeps MediaReport's counts; `wait(n)` for n frames. */
class Probe {
  constructor(wrtc, track) {
    this.kind = track.kind;
    this.track = track;
    this.ended = false;
    this.reset();
    this.waiters = [];
    if (track.kind === 'video') {
      this.sink = new wrtc.nonstandard.RTCVideoSink(track);
      this.sink.onframe = ({ frame }) => this.video(frame);
    } else {
      this.sink = new wrtc.nonstandard.RTCAudioSink(track);
      this.sink.ondata = (data) => this.audio(data);
    }
  }

  reset() {
    this.t = { frames: 0, indexed: 0, first: null, last: null, in_order: 0, out_of_order: 0, frozen: 0, missing: 0, black: 0, silent: 0 };
  }

  video(frame) {
    const t = this.t;
    t.frames += 1;
    if (meanLuma(frame) < BLACK_LUMA) t.black += 1;
    const index = decodeIndex(frame);
    if (index !== null) {
      t.indexed += 1;
      if (t.first === null) t.first = index;
      else if (t.last !== null) {
        if (index === t.last + 1) t.in_order += 1;
        else if (index === t.last) t.frozen += 1;
        else {
          t.out_of_order += 1;
          if (index > t.last) t.missing += index - t.last - 1;
        }
      }
      t.last = index;
    }
    this.wake();
  }

  audio({ samples }) {
    const t = this.t;
    t.frames += 1;
    let sum = 0;
    for (let i = 0; i < samples.length; i += 1) sum += samples[i] * samples[i];
    if (!samples.length || Math.sqrt(sum / samples.length) / 32768 < SILENCE_RMS) t.silent += 1;
    this.wake();
  }

  wake() {
    this.waiters = this.waiters.filter(([n, resolve]) => {
      if (this.t.frames < n && !this.ended) return true;
      resolve();
      return false;
    });
  }

  /** Resolves once `n` frames in all were read, or the track ended. */
  wait(n) {
    if (this.t.frames >= n || this.ended) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push([n, resolve]));
  }

  stop() {
    if (this.ended) return;
    this.ended = true;
    this.sink.stop();
    this.wake();
  }

  report() {
    const t = this.t;
    const steps = t.in_order + t.out_of_order + t.frozen;
    return {
      kind: this.kind,
      frames: t.frames,
      indexed: t.indexed,
      first_index: t.first,
      last_index: t.last,
      in_order: t.in_order,
      out_of_order: t.out_of_order,
      frozen: t.frozen,
      missing: t.missing,
      black: t.black,
      silent: t.silent,
      ended: this.ended,
      in_order_share: steps === 0 ? 1.0 : t.in_order / steps,
    };
  }
}

module.exports = { IndexedVideo, ToneAudio, Probe, indexedFrame, decodeIndex, encodeBits, meanLuma, WIDTH, HEIGHT };
