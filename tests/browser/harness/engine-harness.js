// Test harness: exposes the engine to Playwright as window.harness.
import { AudioEngine, renderOffline, decodeAll, channelData } from "/static/js/engine.js";
import { Waveform } from "/static/js/waveform.js";

const positions = [];
const events = [];
let engine = null;

async function startRealtime(urls, opts = {}) {
  engine = await AudioEngine.create({
    urls,
    mustListenFraction: opts.mustListenFraction || 0.8,
    loopWhole: opts.loopWhole !== false,
    onPosition: (p) => positions.push({ ...p, wall: performance.now() }),
    onEvent: (e) => events.push(e),
  });
  const canvas = document.getElementById("waveform");
  const wf = new Waveform(canvas, engine, { peaksIndex: 0 });
  wf.start();
  document.getElementById("status").textContent = `ready ${engine.duration.toFixed(3)} s`;
  return { duration: engine.duration, sampleRate: engine.sampleRate, count: engine.count };
}

async function offline({ urls, sampleRate, frames, schedule, loopWhole, from, to }) {
  const buf = await renderOffline({ urls, sampleRate, frames, schedule, loopWhole });
  const a = from || 0;
  const b = to || buf.length;
  return {
    sampleRate: buf.sampleRate,
    length: buf.length,
    left: Array.from(buf.getChannelData(0).subarray(a, b)),
    right: Array.from(buf.getChannelData(1).subarray(a, b)),
  };
}

async function decodeLengths(urls, sampleRate) {
  const ctx = new OfflineAudioContext(2, 128, sampleRate);
  const bufs = await decodeAll(ctx, urls);
  return { lengths: bufs.map((b) => b.length), common: channelData(bufs).length };
}

window.harness = {
  startRealtime,
  offline,
  decodeLengths,
  positions,
  events,
  get engine() {
    return engine;
  },
};
document.getElementById("status").textContent = "harness loaded";

document.getElementById("start").addEventListener("click", () => {
  if (engine) engine.play();
});

// Benchmark: offline render time of the worklet (switching every `switchEvery`
// seconds among n stereo stimuli) or of a plain AudioBufferSourceNode (anchor).
async function benchRender({ n, seconds, sampleRate, switchEvery, mode }) {
  const frames = Math.round(seconds * sampleRate);
  const stimuli = [...Array(n)].map((_, i) =>
    [0, 1].map((c) => {
      const a = new Float32Array(frames);
      const w = (2 * Math.PI * (200 + 50 * i + 3 * c)) / sampleRate;
      for (let k = 0; k < frames; k++) a[k] = 0.3 * Math.sin(w * k);
      return a;
    }),
  );
  const t0 = performance.now();
  if (mode === "worklet") {
    const schedule = [{ frame: 0, type: "play" }];
    const step = Math.round(switchEvery * sampleRate);
    for (let f = step, i = 1; f < frames; f += step, i++) schedule.push({ frame: f, type: "select", index: i % n });
    await renderOffline({ stimuli, sampleRate, frames, schedule });
  } else {
    const ctx = new OfflineAudioContext(2, frames, sampleRate);
    const buf = ctx.createBuffer(2, frames, sampleRate);
    buf.copyToChannel(stimuli[0][0], 0);
    buf.copyToChannel(stimuli[0][1], 1);
    const src = new AudioBufferSourceNode(ctx, { buffer: buf });
    const gain = new GainNode(ctx, { gain: 1 });
    src.connect(gain).connect(ctx.destination);
    src.start(0);
    await ctx.startRendering();
  }
  return performance.now() - t0;
}
window.harness.benchRender = benchRender;
