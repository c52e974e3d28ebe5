// Shared logic of the trial pages: the audio engine, transport controls,
// waveform, keyboard, event log, the "next" gate and the ratings submission.
// The page controllers (pages/mushra.js, pages/categorical.js) build their
// rating controls on top of a TrialPage, in a `mount(page)` function that
// runTrials() calls for the first trial and again for every trial that follows
// in place: the answer to a trial carries the next trial's configuration, so the
// next trial is shown without loading a page (the answer is the only request
// between two trials, besides the next trial's audio).

import { AudioEngine } from "./engine.js";
import { EventLogger, el, forgetIdempotencyKey, formatSeconds, idempotencyKey, makeT, postJSON, readConfig } from "./common.js";
import { Waveform, installKeyboard } from "./waveform.js";

/**
 * Show the trials of this page, one after the other.
 * @param {(page: TrialPage) => void} mount  builds the rating controls of one trial
 *   into the page's (fresh) markup and calls page.start()
 */
export function runTrials(mount) {
  const main = document.getElementById("content");
  const pristine = main.cloneNode(true); // the trial markup before any controller touched it
  const show = (config, carried) => {
    const page = new TrialPage(config, carried);
    page.onAdvance = (next, url) => {
      const handOver = page.destroy();
      const nextConfig = Object.assign({}, next, { strings: config.strings });
      main.replaceChildren(...pristine.cloneNode(true).childNodes);
      history.replaceState(null, "", url); // a reload shows this trial again
      renderChrome(nextConfig);
      window.scrollTo(0, 0);
      show(nextConfig, handOver);
      const title = main.querySelector(".trial-title");
      if (title) title.focus({ preventScroll: true });
    };
    mount(page);
  };
  show(readConfig("trial-config"), {});
}

/** The parts of the trial markup that the server renders from the config. */
function renderChrome(cfg) {
  const t = makeT(cfg.strings || {});
  document.getElementById("trial-config").textContent = JSON.stringify(cfg);
  const heading = t("trial.title", { position: cfg.position, total: cfg.total });
  const h1 = document.querySelector(".trial-title");
  h1.textContent = heading;
  h1.setAttribute("tabindex", "-1");
  for (const old of document.querySelectorAll(".banner-training, .target-source")) old.remove();
  if (cfg.is_training) {
    h1.before(el("p", { className: "banner banner-training", text: t("trial.training_banner"), attrs: { role: "status" } }));
  }
  if (cfg.source_name) {
    h1.after(el("p", { className: "target-source", text: t("trial.target_source", { name: cfg.source_name }) }));
  }
  const name = document.querySelector(".topbar-title");
  document.title = name && name.textContent ? `${heading} – ${name.textContent}` : heading;
  const p = cfg.progress;
  const bar = document.querySelector(".progress-bar");
  if (p && bar) {
    const text = t("progress.of", { done: p.done, total: p.total });
    bar.max = p.total;
    bar.value = Math.min(p.done, p.total);
    bar.textContent = text;
    const label = document.querySelector(".progress-text");
    if (label) label.textContent = text;
  }
}

export class TrialPage {
  /**
   * @param {object} config  the trial's configuration (see templates/participant/trial_mushra.html)
   * @param {object} [carried]  from the trial shown before in this document
   * @param {AudioContext} [carried.context]  its audio context, to play this trial's audio
   * @param {object[]} [carried.events]  its events not sent yet
   */
  constructor(config, carried = {}) {
    this.config = config;
    this.context = carried.context || null;
    const cfg = this.config;
    this.t = makeT(cfg.strings || {});
    this.count = cfg.stimuli.length;
    this.referenceIndex = cfg.reference ? this.count : null;
    this.urls = cfg.stimuli.map((s) => s.url);
    if (cfg.reference) this.urls.push(cfg.reference.url);
    this.logger = new EventLogger(cfg.events_url, cfg.csrf_token, cfg.trial);
    this.idemKey = idempotencyKey(cfg.submit_url);
    this.engine = null;
    this.waveform = null;
    this.listeners = { position: [], select: [], event: [] };
    this.submitting = false;
    this.missing = ["loading"];
    this.els = {
      play: document.getElementById("play"),
      loop: document.getElementById("loop"),
      time: document.getElementById("time"),
      canvas: document.getElementById("waveform"),
      player: document.getElementById("player"),
      status: document.getElementById("load-status"),
      next: document.getElementById("next"),
      hint: document.getElementById("hint"),
      submitStatus: document.getElementById("submit-status"),
    };
    this.logger.putBack(carried.events);
    this.removeKeyboard = null;
    this.onAdvance = null;
    this.logger.add({
      kind: "page_load",
      stimulus: null,
      data: { position: cfg.position, training: !!cfg.is_training, in_place: !!carried.context },
    });
  }

  /**
   * Let go of this trial: stop the audio and the page's listeners.
   * @returns {{context: AudioContext|null, events: object[]}}  what the next trial takes over
   */
  destroy() {
    if (this.waveform) this.waveform.destroy();
    if (this.removeKeyboard) this.removeKeyboard();
    let context = this.context;
    if (this.engine) {
      this.engine.release();
      context = this.engine.ctx;
    }
    return { context, events: this.logger.close() };
  }

  on(kind, fn) {
    this.listeners[kind].push(fn);
  }

  _fire(kind, arg) {
    for (const fn of this.listeners[kind]) fn(arg);
  }

  /** Page stimulus index for the event log: the open reference is logged as null. */
  logIndex(i) {
    return i === this.referenceIndex ? null : i;
  }

  /**
   * Load and decode the audio, then wire the controls.
   * @param {object} opts
   * @param {boolean} [opts.loopWhole]  wrap at the end (MUSHRA) or stop (P.800 kinds)
   */
  async start(opts = {}) {
    const cfg = this.config;
    try {
      this.engine = await AudioEngine.create({
        context: this.context || undefined,
        urls: this.urls,
        mustListenFraction: cfg.must_listen_fraction,
        loopWhole: opts.loopWhole !== false,
        onPosition: (p) => this._onPosition(p),
        onEvent: (e) => this._onEngineEvent(e),
      });
    } catch (err) {
      this.els.status.textContent = this.t("trial.load_error");
      this.els.status.classList.add("notice-error");
      this.logger.add({ kind: "error", stimulus: null, data: { message: String(err && err.message ? err.message : err).slice(0, 200) } });
      this.logger.flush();
      throw err;
    }
    this.els.status.hidden = true;
    this.els.player.hidden = false;
    this.waveform = new Waveform(this.els.canvas, this.engine, {
      peaksIndex: this.referenceIndex !== null ? this.referenceIndex : 0,
      onLoopChange: (r) => this._updateTransport(r),
    });
    this.waveform.start();
    this.els.play.addEventListener("click", () => this.toggle());
    this.els.loop.addEventListener("click", () => this.waveform.toggleLoop());
    this.els.next.addEventListener("click", () => this._onNext());
    this.removeKeyboard = installKeyboard({
      count: this.count,
      select: (i) => this.select(i, true),
      reference: this.referenceIndex !== null ? () => this.select(this.referenceIndex, true) : null,
      toggle: () => this.toggle(),
      loop: () => this.waveform.toggleLoop(),
      nudge: (d) => this.engine.seek(this.engine.position + d),
    });
    this._updateTransport();
    this._fire("select", this.engine.currentIndex);
    return this.engine;
  }

  toggle() {
    this.engine.toggle();
    this._updateTransport();
  }

  /** Select stimulus i (engine index; the reference is `referenceIndex`), optionally starting playback. */
  select(i, play = false) {
    this.engine.select(i);
    if (play && !this.engine.playing) this.engine.play();
    this._fire("select", i);
    this._updateTransport();
  }

  _onPosition(p) {
    this._updateTransport();
    this._fire("position", p);
  }

  _onEngineEvent(e) {
    const stimulus = e.stimulus === null || e.stimulus === undefined ? null : this.logIndex(e.stimulus);
    const data = Object.assign({}, e.data || {});
    if (e.stimulus === this.referenceIndex && this.referenceIndex !== null) data.reference = true;
    if (data.from_position !== undefined) {
      data.from_position = this.logIndex(data.from_position);
      if (data.from_position === null) data.from_reference = true;
    }
    this.logger.add({ kind: e.kind, stimulus, t_ms: e.t_ms, position_s: e.position_s, data });
    this._fire("event", e);
    this._updateTransport();
  }

  _updateTransport(region) {
    const eng = this.engine;
    if (!eng) return;
    const playing = eng.playing;
    this.els.play.textContent = playing ? this.t("trial.pause") : this.t("trial.play");
    this.els.play.setAttribute("aria-pressed", String(playing));
    const looping = region === undefined ? !!eng.loop : !!region;
    this.els.loop.textContent = looping ? this.t("trial.loop_off") : this.t("trial.loop");
    this.els.loop.setAttribute("aria-pressed", String(looping));
    this.els.time.textContent = `${formatSeconds(eng.position)} / ${formatSeconds(eng.duration)} s`;
  }

  /** Indices (engine) whose heard share is below the must-listen fraction. */
  unheard(indices) {
    const f = this.config.must_listen_fraction || 0;
    return indices.filter((i) => this.engine.heardFraction(i) + 1e-9 < f);
  }

  /** Show what is still missing; `missing` is a list of UI string keys (empty: ready). */
  setMissing(missing) {
    this.missing = missing;
    const pct = Math.round((this.config.must_listen_fraction || 0) * 100);
    const text = missing.map((k) => this.t(k, { percent: pct })).join(" ");
    this.els.hint.textContent = missing.length ? text : this.t("trial.ready");
    this.els.next.disabled = missing.length > 0 || this.submitting;
  }

  /** Provided by the controller: returns the ratings array to submit. */
  collectRatings() {
    return [];
  }

  listening() {
    return this.engine.listening([...Array(this.count).keys()]);
  }

  async _onNext() {
    if (this.missing.length || this.submitting) return;
    this.submitting = true;
    this.els.next.disabled = true;
    this.els.next.textContent = this.t("trial.submitting");
    this.els.submitStatus.hidden = true;
    if (this.engine.playing) this.engine.pause();
    // Pending events ride along with the answer: one request, stored in one transaction.
    // A batch already on its way goes first, but never holds the answer up for long.
    if (this.logger.sending) {
      await Promise.race([this.logger.sending, new Promise((r) => setTimeout(r, 2000))]);
    }
    const cfg = this.config;
    const events = this.logger.take();
    const payload = {
      ratings: this.collectRatings(),
      listening: this.listening(),
      events,
      shown: cfg.shown,
      client_time_ms: Date.now(),
    };
    const res = await postJSON(cfg.submit_url, payload, {
      csrfToken: cfg.csrf_token,
      idemKey: this.idemKey,
      onRetry: () => {
        this.els.submitStatus.textContent = this.t("trial.retrying");
        this.els.submitStatus.hidden = false;
      },
    });
    if (res.ok && res.body && res.body.next_url) {
      forgetIdempotencyKey(cfg.submit_url);
      if (res.body.next_config && this.onAdvance) {
        this.onAdvance(res.body.next_config, res.body.next_url);
      } else {
        window.location.assign(res.body.next_url);
      }
      return;
    }
    this.logger.putBack(events);
    this.submitting = false;
    this.els.next.textContent = this.t("trial.next");
    this.els.next.disabled = false;
    this.els.submitStatus.textContent = res.status >= 400 && res.status < 500 && res.body && res.body.error ? res.body.error : this.t("trial.failed");
    this.els.submitStatus.hidden = false;
  }
}
