// AudioWorkletProcessor of the mosplatform audio engine.
//
// One processor holds every stimulus of a trial and plays them through a single
// playhead (a sample index shared by all stimuli). ITU-R BS.1534-3 asks that a
// switch between signals, a loop jump, and start/stop keep playback at the same
// sample and use a 5 ms raised-cosine fade-out followed by a 5 ms fade-in (no
// cross-fade, no restart, no gap). Everything here is sample accurate: commands
// scheduled with a frame number (offline rendering in tests) take effect at that
// exact output frame, and live commands at the start of the next render quantum.
//
// Gain during a fade of F samples, for k = 0 .. F-1:
//   fade-out  g = 0.5 * (1 + cos(pi * k / F))     (1 -> ~0)
//   fade-in   g = 0.5 * (1 - cos(pi * k / F))     (0 -> ~1)
// The playhead advances during both fades, so the new stimulus starts at the
// sample index where the old one was faded out.

const FADE_SECONDS = 0.005;
const MIN_LOOP_SECONDS = 0.5;

// Envelope phases.
const IDLE = 0; // paused, silent
const FADE_IN = 1;
const STEADY = 2;
const FADE_OUT = 3;

class MosPlayerProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const po = (options && options.processorOptions) || {};
    this.fadeLen = Math.max(1, Math.round(FADE_SECONDS * sampleRate));
    this.loopWhole = po.loopWhole !== false;
    this.postEvery = Math.max(128, Math.round(sampleRate * (po.postIntervalS || 0.05)));
    this.schedule = (po.schedule || []).slice().sort((a, b) => a.frame - b.frame);
    this.scheduleIndex = 0;
    this.stimuli = [];
    this.length = 0;
    this.playhead = 0;
    this.current = 0;
    this.phase = IDLE;
    this.k = 0;
    this.pendingIndex = null;
    this.pendingSeek = null;
    this.pendingPause = false;
    this.pendingLoop = false;
    this.pendingEnd = false;
    this.loopStart = 0;
    this.loopEnd = 0; // 0: no loop region
    this.frame = 0; // output frames rendered so far
    this.sincePost = 0;
    this.alive = true;
    this.heardMarks = [];
    this.heardUnique = [];
    this.heardTotal = [];
    if (po.stimuli) this.load(po.stimuli);
    this.port.onmessage = (e) => this.command(e.data);
  }

  load(stimuli) {
    // stimuli: [[Float32Array per channel], ...]; the shortest one sets the length.
    this.stimuli = stimuli.map((chs) => (chs.length >= 2 ? [chs[0], chs[1]] : [chs[0], chs[0]]));
    this.length = Math.min(...this.stimuli.map((chs) => Math.min(chs[0].length, chs[1].length)));
    this.heardMarks = this.stimuli.map(() => new Uint8Array(this.length));
    this.heardUnique = this.stimuli.map(() => 0);
    this.heardTotal = this.stimuli.map(() => 0);
    this.playhead = 0;
    this.current = 0;
    this.phase = IDLE;
    this.port.postMessage({ type: "loaded", length: this.length, sampleRate, fadeLen: this.fadeLen });
  }

  emit(kind, extra) {
    this.port.postMessage(
      Object.assign({ type: "event", kind, frame: this.playhead, index: this.current, time: currentTime }, extra || {}),
    );
  }

  state(type, id) {
    return {
      type,
      id,
      frame: this.playhead,
      index: this.current,
      playing: this.phase !== IDLE && !this.pendingPause,
      time: currentTime,
      renderedFrames: this.frame,
      heardUnique: this.heardUnique.slice(),
      heardTotal: this.heardTotal.slice(),
      length: this.length,
      loopStart: this.loopStart,
      loopEnd: this.loopEnd,
    };
  }

  // Start a fade-out that ends in the pending actions; keeps the gain continuous
  // when a fade-in is still running.
  beginFadeOut() {
    if (this.phase === STEADY) {
      this.phase = FADE_OUT;
      this.k = 0;
    } else if (this.phase === FADE_IN) {
      this.phase = FADE_OUT;
      this.k = this.fadeLen - this.k;
    }
  }

  finishFadeOut() {
    if (this.pendingEnd) {
      this.pendingEnd = false;
      this.pendingPause = true;
      if (this.pendingSeek === null) this.pendingSeek = this.loopEnd > 0 ? this.loopStart : 0;
      this.emit("ended");
    }
    if (this.pendingLoop) {
      this.pendingLoop = false;
      this.playhead = this.loopEnd > 0 ? this.loopStart : 0;
      this.emit("looped");
    }
    if (this.pendingSeek !== null) {
      this.playhead = this.pendingSeek;
      this.pendingSeek = null;
      this.emit("sought");
    }
    if (this.pendingIndex !== null) {
      const from = this.current;
      this.current = this.pendingIndex;
      this.pendingIndex = null;
      this.emit("switched", { from });
    }
    if (this.pendingPause) {
      this.pendingPause = false;
      this.phase = IDLE;
      this.k = 0;
      this.emit("paused");
    } else {
      this.phase = FADE_IN;
      this.k = 0;
    }
  }

  clampFrame(f) {
    f = Math.floor(Number(f) || 0);
    return Math.max(0, Math.min(Math.max(0, this.length - 1), f));
  }

  command(msg) {
    switch (msg.type) {
      case "load":
        this.load(msg.stimuli);
        break;
      case "play":
        if (!this.length) break;
        if (this.phase === IDLE) {
          const end = this.loopEnd > 0 ? this.loopEnd : this.length;
          if (this.playhead >= end - this.fadeLen) this.playhead = this.loopEnd > 0 ? this.loopStart : 0;
          this.phase = FADE_IN;
          this.k = 0;
          this.emit("started");
        } else {
          this.pendingPause = false;
        }
        break;
      case "pause":
        if (this.phase !== IDLE) {
          this.pendingPause = true;
          this.beginFadeOut();
        }
        break;
      case "select": {
        const i = Math.floor(msg.index);
        if (!(i >= 0 && i < this.stimuli.length)) break;
        if (this.phase === IDLE) {
          if (i !== this.current) {
            const from = this.current;
            this.current = i;
            this.emit("switched", { from });
          }
        } else if (i !== this.current || this.pendingIndex !== null) {
          this.pendingIndex = i;
          this.beginFadeOut();
        }
        break;
      }
      case "seek": {
        // Live: {frame}; scheduled (offline): {frame: when, to: where}.
        const f = this.clampFrame(msg.to !== undefined ? msg.to : msg.frame);
        if (this.phase === IDLE) {
          this.playhead = f;
          this.emit("sought");
        } else {
          this.pendingSeek = f;
          this.beginFadeOut();
        }
        break;
      }
      case "loop": {
        let start = this.clampFrame(msg.start);
        let end = Math.min(this.length, Math.floor(msg.end));
        const minLen = Math.round(MIN_LOOP_SECONDS * sampleRate);
        if (end - start < minLen) {
          end = Math.min(this.length, start + minLen);
          start = Math.max(0, end - minLen);
        }
        this.loopStart = start;
        this.loopEnd = end;
        const outside = this.playhead < start || this.playhead >= end - this.fadeLen;
        if (outside) {
          if (this.phase === IDLE) this.playhead = start;
          else {
            this.pendingSeek = start;
            this.beginFadeOut();
          }
        }
        this.emit("loop", { loopStart: start, loopEnd: end });
        break;
      }
      case "clearLoop":
        this.loopStart = 0;
        this.loopEnd = 0;
        this.emit("loop", { loopStart: 0, loopEnd: 0 });
        break;
      case "query":
        this.port.postMessage(this.state("state", msg.id));
        break;
      case "stop":
        this.alive = false;
        break;
      default:
        break;
    }
  }

  process(inputs, outputs) {
    const out = outputs[0];
    const left = out[0];
    const right = out.length > 1 ? out[1] : null;
    const n = left.length;
    const F = this.fadeLen;
    for (let j = 0; j < n; j++) {
      while (this.scheduleIndex < this.schedule.length && this.schedule[this.scheduleIndex].frame <= this.frame) {
        this.command(this.schedule[this.scheduleIndex++]);
      }
      // Fast path: steady playback up to the next fade, command or block end.
      if (this.phase === STEADY && this.length) {
        const end = this.loopEnd > 0 ? this.loopEnd : this.length;
        let run = Math.min(n - j, end - F - this.playhead);
        if (this.scheduleIndex < this.schedule.length) {
          run = Math.min(run, this.schedule[this.scheduleIndex].frame - this.frame);
        }
        if (run > 0) {
          const i = this.current;
          const c0 = this.stimuli[i][0];
          const c1 = this.stimuli[i][1];
          const marks = this.heardMarks[i];
          let p = this.playhead;
          let fresh = 0;
          for (let r = 0; r < run; r++, p++) {
            left[j + r] = c0[p];
            if (right) right[j + r] = c1[p];
            if (marks[p] === 0) {
              marks[p] = 1;
              fresh++;
            }
          }
          this.heardUnique[i] += fresh;
          this.heardTotal[i] += run;
          this.playhead = p;
          this.frame += run;
          j += run - 1;
          continue;
        }
      }
      this.frame++;
      if (this.phase === IDLE || !this.length) {
        left[j] = 0;
        if (right) right[j] = 0;
        continue;
      }
      // Reaching the end of the loop region (or of the signal): fade out so that
      // the fade ends exactly on the boundary, then jump (or stop).
      const end = this.loopEnd > 0 ? this.loopEnd : this.length;
      if (this.playhead >= end - F && !this.pendingLoop && !this.pendingEnd && this.pendingSeek === null) {
        if (this.loopEnd > 0 || this.loopWhole) this.pendingLoop = true;
        else this.pendingEnd = true;
        this.beginFadeOut();
      }
      let g = 1;
      if (this.phase === FADE_IN) g = 0.5 * (1 - Math.cos((Math.PI * this.k) / F));
      else if (this.phase === FADE_OUT) g = 0.5 * (1 + Math.cos((Math.PI * this.k) / F));
      const p = this.playhead;
      const i = this.current;
      if (p < this.length) {
        const chs = this.stimuli[i];
        left[j] = chs[0][p] * g;
        if (right) right[j] = chs[1][p] * g;
        if (this.heardMarks[i][p] === 0) {
          this.heardMarks[i][p] = 1;
          this.heardUnique[i]++;
        }
        this.heardTotal[i]++;
      } else {
        left[j] = 0;
        if (right) right[j] = 0;
      }
      this.playhead++;
      this.k++;
      if (this.phase === FADE_IN && this.k >= F) {
        this.phase = STEADY;
      } else if (this.phase === FADE_OUT && this.k >= F) {
        this.finishFadeOut();
      }
    }
    for (let c = 2; c < out.length; c++) out[c].fill(0);
    this.sincePost += n;
    if (this.sincePost >= this.postEvery) {
      this.sincePost = 0;
      this.port.postMessage(this.state("pos"));
    }
    return this.alive;
  }
}

registerProcessor("mos-player", MosPlayerProcessor);
