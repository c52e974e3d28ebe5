// Main-thread side of the mosplatform audio engine.
//
// AudioEngine fetches and decodes every stimulus of a trial, hands the channel
// data (transferred, not copied) to one AudioWorkletProcessor ("mos-player",
// engine-worklet.js) and drives it with small command messages. The worklet owns
// the single playhead; this side only mirrors what the worklet reports.
//
//   const eng = await AudioEngine.create({ urls, onPosition, onEvent });
//   eng.play(); eng.select(2); eng.setLoop(1.0, 2.5); eng.heardFraction(2);
//
// renderOffline() runs the same processor in an OfflineAudioContext with
// commands scheduled at exact frames; the browser tests use it to check fades.

export const WORKLET_URL = new URL("./engine-worklet.js", import.meta.url).href;
export const FADE_SECONDS = 0.005;
export const MIN_LOOP_SECONDS = 0.5;

/**
 * Fetch and decode audio files in a context (decodeAudioData resamples to the
 * context's rate).
 * @param {BaseAudioContext} ctx
 * @param {string[]} urls
 * @returns {Promise<AudioBuffer[]>}
 */
export async function decodeAll(ctx, urls) {
  return Promise.all(
    urls.map(async (url) => {
      const resp = await fetch(url, { credentials: "same-origin" });
      if (!resp.ok) throw new Error(`audio fetch failed (${resp.status})`);
      const data = await resp.arrayBuffer();
      return ctx.decodeAudioData(data);
    }),
  );
}

/**
 * Copy the channels of decoded buffers, truncated to the shortest one, into
 * fresh Float32Arrays that can be transferred to the worklet.
 * @param {AudioBuffer[]} buffers
 * @returns {{stimuli: Float32Array[][], length: number, transfer: ArrayBuffer[]}}
 */
export function channelData(buffers) {
  const length = Math.min(...buffers.map((b) => b.length));
  const transfer = [];
  const stimuli = buffers.map((b) => {
    const chs = [];
    for (let c = 0; c < Math.min(2, b.numberOfChannels); c++) {
      const arr = new Float32Array(length);
      arr.set(b.getChannelData(c).subarray(0, length));
      chs.push(arr);
      transfer.push(arr.buffer);
    }
    return chs;
  });
  return { stimuli, length, transfer };
}

const ENVELOPE_BINS = 4096;
const GESTURES = ["pointerdown", "keydown", "touchend"];

/** Absolute peak per bin over the first `length` samples of every channel. */
function envelope(buffer, length, bins) {
  const n = Math.min(bins, Math.max(1, length));
  const out = new Float32Array(n);
  const per = length / n;
  for (let c = 0; c < buffer.numberOfChannels; c++) {
    const d = buffer.getChannelData(c);
    for (let k = 0; k < n; k++) {
      const e = Math.min(length, Math.floor((k + 1) * per));
      let m = out[k];
      for (let p = Math.floor(k * per); p < e; p++) {
        const v = d[p] < 0 ? -d[p] : d[p];
        if (v > m) m = v;
      }
      out[k] = m;
    }
  }
  return out;
}

const loadedModules = new WeakMap();

async function ensureModule(ctx) {
  if (!loadedModules.has(ctx)) loadedModules.set(ctx, ctx.audioWorklet.addModule(WORKLET_URL));
  return loadedModules.get(ctx);
}

export class AudioEngine {
  /**
   * @param {object} opts
   * @param {string[]} opts.urls  stimulus URLs; their order defines the indices
   * @param {(pos: {position: number, index: number, playing: boolean}) => void} [opts.onPosition]
   * @param {(ev: {kind: string, stimulus: number|null, position_s: number, data: object}) => void} [opts.onEvent]
   * @param {number} [opts.mustListenFraction]  share of a stimulus that counts as heard
   * @param {boolean} [opts.loopWhole]  without a loop region, wrap at the end (true) or stop (false)
   * @param {AudioContext} [opts.context]
   * @returns {Promise<AudioEngine>}
   */
  static async create(opts) {
    const ctx = opts.context || new AudioContext({ latencyHint: "interactive" });
    await ensureModule(ctx);
    const buffers = await decodeAll(ctx, opts.urls);
    const eng = new AudioEngine(ctx, buffers, opts);
    await eng.ready;
    return eng;
  }

  constructor(ctx, buffers, opts) {
    this.ctx = ctx;
    this.buffers = buffers;
    this.onPosition = opts.onPosition || (() => {});
    this.onEvent = opts.onEvent || (() => {});
    this.mustListenFraction = opts.mustListenFraction || 0;
    this.count = buffers.length;
    this.sampleRate = ctx.sampleRate;
    this.currentIndex = 0; // last selected stimulus
    this.audibleIndex = 0; // stimulus the worklet last reported playing
    this.playing = false;
    this.frame = 0;
    this.reportTime = 0;
    this.loop = null;
    this.plays = new Array(this.count).fill(0);
    this.heardUnique = new Array(this.count).fill(0);
    this.heardTotal = new Array(this.count).fill(0);
    this.heardAnnounced = new Array(this.count).fill(false);
    this.queries = new Map();
    this.queryId = 0;
    const { stimuli, length, transfer } = channelData(buffers);
    this.length = length;
    // Keep only a coarse envelope for drawing; the samples live in the worklet.
    this.envelopes = buffers.map((b) => envelope(b, length, ENVELOPE_BINS));
    this.buffers = null;
    this.node = new AudioWorkletNode(ctx, "mos-player", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [2],
      processorOptions: { loopWhole: opts.loopWhole !== false },
    });
    this.node.connect(ctx.destination);
    this.ready = new Promise((resolve) => {
      this._resolveReady = resolve;
    });
    this.node.port.onmessage = (e) => this._onMessage(e.data);
    this.node.port.postMessage({ type: "load", stimuli }, transfer);
    this._installGestureResume();
  }

  /** Duration in seconds (of the shortest stimulus). */
  get duration() {
    return this.length / this.sampleRate;
  }

  /** Last reported playhead in seconds, extrapolated while playing. */
  get position() {
    let f = this.frame;
    if (this.playing) {
      const end = this.loop && f < this.loop[1] * this.sampleRate ? this.loop[1] * this.sampleRate : this.length;
      f = Math.min(end, f + Math.max(0, (this.ctx.currentTime - this.reportTime) * this.sampleRate));
    }
    return f / this.sampleRate;
  }

  _installGestureResume() {
    const resume = () => {
      if (this.ctx.state === "suspended") this.ctx.resume();
    };
    for (const kind of GESTURES) {
      document.addEventListener(kind, resume, { capture: true, passive: true });
    }
    this._gestureResume = resume;
  }

  _onMessage(msg) {
    if (msg.type === "loaded") {
      this._resolveReady();
      return;
    }
    if (msg.type === "pos" || msg.type === "state") {
      this.frame = msg.frame;
      this.reportTime = msg.time;
      this.audibleIndex = msg.index;
      this.playing = msg.playing;
      this.heardUnique = msg.heardUnique;
      this.heardTotal = msg.heardTotal;
      this._checkHeard();
      this.onPosition({
        position: msg.frame / this.sampleRate,
        index: this.currentIndex,
        audible: msg.index,
        playing: msg.playing,
      });
      if (msg.type === "state" && this.queries.has(msg.id)) {
        this.queries.get(msg.id)(msg);
        this.queries.delete(msg.id);
      }
      return;
    }
    if (msg.type === "event") {
      this.frame = msg.frame;
      this.reportTime = msg.time;
      this.audibleIndex = msg.index;
      if (msg.kind === "paused" || msg.kind === "ended") this.playing = false;
      if (msg.kind === "started") this.playing = true;
      if (msg.kind === "started" || (msg.kind === "switched" && this.playing)) this.plays[msg.index]++;
      if (msg.kind === "ended") this._emit("ended", msg.index, {});
    }
  }

  _checkHeard() {
    if (!this.mustListenFraction) return;
    for (let i = 0; i < this.count; i++) {
      if (!this.heardAnnounced[i] && this.heardFraction(i) >= this.mustListenFraction) {
        this.heardAnnounced[i] = true;
        this._emit("heard", i, { heard_fraction: this.heardFraction(i) });
      }
    }
  }

  _emit(kind, stimulus, data) {
    this.onEvent({ kind, stimulus, position_s: this.position, t_ms: Date.now(), data: data || {} });
  }

  _post(msg) {
    this.node.port.postMessage(msg);
  }

  /** Start (or resume) playback of the current stimulus, with a fade-in. */
  play() {
    if (this.ctx.state !== "running") this.ctx.resume();
    this.playing = true;
    this.reportTime = this.ctx.currentTime;
    this._post({ type: "play" });
    this._emit("play", this.currentIndex);
  }

  /** Pause with a fade-out; the playhead stays where the fade ended. */
  pause() {
    this._post({ type: "pause" });
    this._emit("pause", this.currentIndex);
  }

  toggle() {
    if (this.playing) this.pause();
    else this.play();
  }

  /** Switch to stimulus i at the same sample (5 ms fade-out, then 5 ms fade-in). */
  select(i) {
    if (!(i >= 0 && i < this.count)) return;
    const from = this.currentIndex;
    this.currentIndex = i;
    this._post({ type: "select", index: i });
    if (from !== i) this._emit("switch", i, { from_position: from });
  }

  /** Loop between startS and endS (seconds, at least 0.5 s long). */
  setLoop(startS, endS) {
    let a = Math.max(0, Math.min(startS, endS));
    let b = Math.min(this.duration, Math.max(startS, endS));
    if (b - a < MIN_LOOP_SECONDS) {
      b = Math.min(this.duration, a + MIN_LOOP_SECONDS);
      a = Math.max(0, b - MIN_LOOP_SECONDS);
    }
    this.loop = [a, b];
    this._post({ type: "loop", start: Math.round(a * this.sampleRate), end: Math.round(b * this.sampleRate) });
    this._emit("loop", this.currentIndex, { start_s: a, end_s: b });
    return this.loop;
  }

  clearLoop() {
    this.loop = null;
    this._post({ type: "clearLoop" });
    this._emit("loop", this.currentIndex, { start_s: null, end_s: null });
  }

  /** Move the playhead to s seconds (with fades if playing). */
  seek(s) {
    const frame = Math.max(0, Math.min(this.length - 1, Math.round(s * this.sampleRate)));
    this.frame = frame;
    this.reportTime = this.ctx.currentTime;
    this._post({ type: "seek", frame });
    this._emit("seek", this.currentIndex, { to_s: frame / this.sampleRate });
  }

  /** Ask the worklet for its exact state (playhead frame, heard samples ...). */
  query() {
    const id = ++this.queryId;
    return new Promise((resolve) => {
      this.queries.set(id, resolve);
      this._post({ type: "query", id });
    });
  }

  /** Share (0..1) of stimulus i's samples that have been played at least once. */
  heardFraction(i) {
    return this.length ? (this.heardUnique[i] || 0) / this.length : 0;
  }

  /** Seconds of stimulus i played in total (repeats counted). */
  heardSeconds(i) {
    return (this.heardTotal[i] || 0) / this.sampleRate;
  }

  /** Listening summary in the shape the submit endpoint expects. */
  listening(indices) {
    const idx = indices || [...Array(this.count).keys()];
    return idx.map((i) => ({
      stimulus: i,
      heard_fraction: Math.round(this.heardFraction(i) * 1e4) / 1e4,
      heard_s: Math.round(this.heardSeconds(i) * 1e3) / 1e3,
      plays: this.plays[i],
    }));
  }

  /** Peak envelope of stimulus i (max over channels) in `bins` bins, for drawing. */
  peaks(i, bins) {
    const env = this.envelopes[i];
    const out = new Float32Array(bins);
    const per = env.length / bins;
    for (let k = 0; k < bins; k++) {
      const s = Math.floor(k * per);
      const e = Math.max(s + 1, Math.min(env.length, Math.floor((k + 1) * per)));
      let m = 0;
      for (let p = s; p < e; p++) if (env[p] > m) m = env[p];
      out[k] = m;
    }
    return out;
  }

  /** Stop and let go of the audio, keeping the context for another engine. */
  release() {
    this._post({ type: "stop" });
    this.node.port.onmessage = null;
    this.node.disconnect();
    for (const kind of GESTURES) {
      document.removeEventListener(kind, this._gestureResume, { capture: true });
    }
    this.playing = false;
  }

  close() {
    this.release();
    return this.ctx.close();
  }
}

/**
 * Render the processor offline with commands at exact output frames.
 * @param {object} opts
 * @param {string[]} [opts.urls]  decoded in the offline context (resampled to its rate)
 * @param {Float32Array[][]} [opts.stimuli]  or raw channel data instead of urls
 * @param {number} opts.sampleRate
 * @param {number} opts.frames  output length
 * @param {{frame: number, type: string}[]} opts.schedule  commands at output frames:
 *   {frame, type: "play"|"pause"}, {frame, type: "select", index}, {frame, type: "seek", to},
 *   {frame, type: "loop", start, end} (sample frames), {frame, type: "clearLoop"}
 * @param {boolean} [opts.loopWhole]
 * @returns {Promise<AudioBuffer>}
 */
export async function renderOffline(opts) {
  const ctx = new OfflineAudioContext(2, opts.frames, opts.sampleRate);
  await ctx.audioWorklet.addModule(WORKLET_URL);
  let stimuli = opts.stimuli;
  if (!stimuli) stimuli = channelData(await decodeAll(ctx, opts.urls)).stimuli;
  const node = new AudioWorkletNode(ctx, "mos-player", {
    numberOfInputs: 0,
    numberOfOutputs: 1,
    outputChannelCount: [2],
    processorOptions: { stimuli, schedule: opts.schedule || [], loopWhole: opts.loopWhole !== false },
  });
  node.connect(ctx.destination);
  return ctx.startRendering();
}
