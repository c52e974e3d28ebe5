// Waveform view with a moving playhead, click-to-seek and drag-to-loop, plus the
// keyboard shortcuts of the listening pages.

import { MIN_LOOP_SECONDS } from "./engine.js";

const DRAG_THRESHOLD_PX = 4;

export class Waveform {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {import("./engine.js").AudioEngine} engine
   * @param {object} [opts]
   * @param {number} [opts.peaksIndex]  stimulus whose envelope is drawn (the reference or first one)
   * @param {(region: [number, number]|null) => void} [opts.onLoopChange]
   */
  constructor(canvas, engine, opts = {}) {
    this.canvas = canvas;
    this.engine = engine;
    this.peaksIndex = opts.peaksIndex || 0;
    this.onLoopChange = opts.onLoopChange || (() => {});
    this.peaks = null;
    this.drag = null;
    this.lastRegion = null;
    this.running = false;
    this._resize = () => this.layout();
    window.addEventListener("resize", this._resize);
    canvas.addEventListener("pointerdown", (e) => this._down(e));
    canvas.addEventListener("pointermove", (e) => this._move(e));
    canvas.addEventListener("pointerup", (e) => this._up(e));
    canvas.addEventListener("pointercancel", () => {
      this.drag = null;
    });
    canvas.style.touchAction = "none";
    this.layout();
  }

  layout() {
    const rect = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(100, Math.round((rect.width || this.canvas.width) * dpr));
    const h = Math.max(40, Math.round((rect.height || this.canvas.height) * dpr));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.peaks = this.engine.peaks(this.peaksIndex, Math.max(50, Math.floor(w / 2)));
    this.draw();
  }

  start() {
    if (this.running) return;
    this.running = true;
    const tick = () => {
      if (!this.running) return;
      this.draw();
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  stop() {
    this.running = false;
  }

  /** Stop drawing and stop following the window size (the canvas may be discarded). */
  destroy() {
    this.stop();
    window.removeEventListener("resize", this._resize);
  }

  _seconds(e) {
    const rect = this.canvas.getBoundingClientRect();
    const x = Math.min(Math.max(0, e.clientX - rect.left), rect.width);
    return (x / Math.max(1, rect.width)) * this.engine.duration;
  }

  _down(e) {
    this.canvas.setPointerCapture(e.pointerId);
    this.drag = { x0: e.clientX, s0: this._seconds(e), s1: this._seconds(e), moved: false };
  }

  _move(e) {
    if (!this.drag) return;
    if (Math.abs(e.clientX - this.drag.x0) > DRAG_THRESHOLD_PX) this.drag.moved = true;
    this.drag.s1 = this._seconds(e);
  }

  _up(e) {
    if (!this.drag) return;
    const d = this.drag;
    this.drag = null;
    d.s1 = this._seconds(e);
    if (!d.moved) {
      // A click outside the loop region means "go there": drop the loop.
      const loop = this.engine.loop;
      if (loop && (d.s0 < loop[0] || d.s0 >= loop[1])) {
        this.engine.clearLoop();
        this.onLoopChange(null);
      }
      this.engine.seek(d.s0);
      return;
    }
    const a = Math.min(d.s0, d.s1);
    const b = Math.max(d.s0, d.s1);
    this.lastRegion = this.engine.setLoop(a, Math.max(b, a + MIN_LOOP_SECONDS));
    this.onLoopChange(this.lastRegion);
  }

  /** L key: clear the loop, or restore the last one (or 2 s from the playhead). */
  toggleLoop() {
    if (this.engine.loop) {
      this.engine.clearLoop();
      this.onLoopChange(null);
      return;
    }
    if (!this.lastRegion) {
      const p = this.engine.position;
      this.lastRegion = [p, Math.min(this.engine.duration, p + 2)];
    }
    this.lastRegion = this.engine.setLoop(this.lastRegion[0], this.lastRegion[1]);
    this.onLoopChange(this.lastRegion);
  }

  draw() {
    const c = this.canvas;
    const g = c.getContext("2d");
    const w = c.width;
    const h = c.height;
    const style = getComputedStyle(c);
    const wave = style.getPropertyValue("--wave-color").trim() || "#4a6fa5";
    const head = style.getPropertyValue("--playhead-color").trim() || "#d33";
    const region = style.getPropertyValue("--loop-color").trim() || "rgba(255, 196, 0, 0.25)";
    g.clearRect(0, 0, w, h);
    const dur = this.engine.duration || 1;
    const loop = this.drag && this.drag.moved ? [Math.min(this.drag.s0, this.drag.s1), Math.max(this.drag.s0, this.drag.s1)] : this.engine.loop;
    if (loop) {
      g.fillStyle = region;
      g.fillRect((loop[0] / dur) * w, 0, ((loop[1] - loop[0]) / dur) * w, h);
    }
    if (this.peaks) {
      g.fillStyle = wave;
      const n = this.peaks.length;
      const bw = w / n;
      for (let k = 0; k < n; k++) {
        const a = Math.min(1, this.peaks[k]) * (h / 2 - 2);
        g.fillRect(k * bw, h / 2 - a, Math.max(1, bw - 0.5), Math.max(1, 2 * a));
      }
    }
    const x = (this.engine.position / dur) * w;
    g.fillStyle = head;
    g.fillRect(Math.round(x) - 1, 0, 2, h);
  }
}

/**
 * Keyboard shortcuts of the listening pages: 1-9 select a stimulus, space
 * play/pause, R reference, L loop toggle, arrows move the playhead (1 s, 0.1 s
 * with Shift).
 * @param {object} h
 * @param {(i: number) => void} h.select  called with a 0-based stimulus position
 * @param {number} h.count  number of selectable stimuli
 * @param {() => void} [h.reference]
 * @param {() => void} h.toggle
 * @param {() => void} [h.loop]
 * @param {(deltaS: number) => void} [h.nudge]
 * @returns {() => void}  removes the shortcuts again
 */
export function installKeyboard(h) {
  const onKey = (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    const tag = t && t.tagName;
    if (tag === "TEXTAREA" || (tag === "INPUT" && !["range", "radio", "checkbox", "button"].includes(t.type))) return;
    const k = e.key;
    if (k >= "1" && k <= "9") {
      const i = Number(k) - 1;
      if (i < h.count) {
        h.select(i);
        e.preventDefault();
      }
    } else if (k === " " || k === "Spacebar") {
      h.toggle();
      e.preventDefault();
    } else if ((k === "r" || k === "R") && h.reference) {
      h.reference();
      e.preventDefault();
    } else if ((k === "l" || k === "L") && h.loop) {
      h.loop();
      e.preventDefault();
    } else if ((k === "ArrowLeft" || k === "ArrowRight") && h.nudge && !(tag === "INPUT" && t.type === "range")) {
      const step = e.shiftKey ? 0.1 : 1;
      h.nudge(k === "ArrowLeft" ? -step : step);
      e.preventDefault();
    }
  };
  document.addEventListener("keydown", onKey);
  return () => document.removeEventListener("keydown", onKey);
}
