// Helpers shared by the participant pages: page config, UI strings, JSON
// submission with retries and an idempotency key, and the event log.

/** Parse the JSON config the server embedded in <script type="application/json" id=...>. */
export function readConfig(id = "trial-config") {
  const el = document.getElementById(id);
  if (!el) return null;
  return JSON.parse(el.textContent || "null");
}

/** Translate `key` with `{name}` placeholders filled from `vars`; falls back to the key. */
export function makeT(strings) {
  return (key, vars) => {
    let s = (strings && strings[key]) || key;
    if (vars) {
      for (const [k, v] of Object.entries(vars)) s = s.split(`{${k}}`).join(String(v));
    }
    return s;
  };
}

export function uuid() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * The idempotency key of one submission target: made once, kept in
 * sessionStorage so that a retry after a reload reuses it.
 */
export function idempotencyKey(submitUrl) {
  const name = `mos-idem:${submitUrl}`;
  let key = null;
  try {
    key = sessionStorage.getItem(name);
    if (!key) {
      key = uuid();
      sessionStorage.setItem(name, key);
    }
  } catch (e) {
    key = key || uuid();
  }
  return key;
}

export function forgetIdempotencyKey(submitUrl) {
  try {
    sessionStorage.removeItem(`mos-idem:${submitUrl}`);
  } catch (e) {
    /* storage unavailable: nothing to forget */
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * POST JSON; retry network errors, 429 and 5xx with exponential backoff.
 * Resolves {ok, status, body}; 4xx answers are returned, not retried.
 */
export async function postJSON(url, payload, { csrfToken, idemKey, retries = 5, onRetry } = {}) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (csrfToken) headers["X-CSRFToken"] = csrfToken;
  if (idemKey) headers["Idempotency-Key"] = idemKey;
  let delay = 500;
  for (let attempt = 0; ; attempt++) {
    let resp = null;
    try {
      resp = await fetch(url, {
        method: "POST",
        headers,
        body: JSON.stringify(payload),
        credentials: "same-origin",
      });
    } catch (e) {
      resp = null;
    }
    if (resp && !(resp.status >= 500 || resp.status === 429)) {
      let body = {};
      try {
        body = await resp.json();
      } catch (e) {
        body = {};
      }
      return { ok: resp.ok, status: resp.status, body };
    }
    if (attempt >= retries) {
      return { ok: false, status: resp ? resp.status : 0, body: {}, network: !resp };
    }
    if (onRetry) onRetry(attempt + 1);
    await sleep(delay);
    delay = Math.min(delay * 2, 8000);
  }
}

/**
 * Batches page events and posts them to the events endpoint; flushes every few
 * seconds, when a batch is large, and with a keepalive request when the page is hidden.
 */
export class EventLogger {
  constructor(url, csrfToken, trial) {
    this.url = url;
    this.csrfToken = csrfToken;
    this.trial = trial;
    this.queue = [];
    this.sending = null;
    if (!url) return;
    this.timer = setInterval(() => this.flush(), 5000);
    this._bye = () => this.flush(true);
    this._visibility = () => {
      this.add({ kind: "visibility", stimulus: null, data: { state: document.visibilityState } });
      if (document.visibilityState === "hidden") this._bye();
    };
    window.addEventListener("pagehide", this._bye);
    document.addEventListener("visibilitychange", this._visibility);
  }

  /** Stop sending; returns the events still queued (for the logger that takes over). */
  close() {
    if (this.url) {
      clearInterval(this.timer);
      window.removeEventListener("pagehide", this._bye);
      document.removeEventListener("visibilitychange", this._visibility);
    }
    return this.queue.splice(0);
  }

  add(ev) {
    if (!this.url) return;
    const e = {
      kind: ev.kind,
      stimulus: ev.stimulus === undefined ? null : ev.stimulus,
      t_ms: ev.t_ms || Date.now(),
      data: ev.data || {},
    };
    if (typeof ev.position_s === "number" && isFinite(ev.position_s)) {
      e.position_s = Math.round(ev.position_s * 1000) / 1000;
    }
    if (this.trial !== undefined && this.trial !== null) e.trial = this.trial;
    this.queue.push(e);
    if (this.queue.length >= 50) this.flush();
  }

  /** Take up to 400 queued events to send with another request (see `putBack`). */
  take() {
    return this.url ? this.queue.splice(0, 400) : [];
  }

  /** Queue again events that `take` gave out and that did not reach the server. */
  putBack(batch) {
    if (batch && batch.length) this.queue.unshift(...batch);
  }

  /** Send what is queued; `keepalive` for page unload (sendBeacon cannot set headers). */
  async flush(keepalive = false) {
    if (!this.url || !this.queue.length) return this.sending;
    if (this.sending && !keepalive) return this.sending;
    const batch = this.queue.splice(0, 400);
    const body = JSON.stringify({ events: batch, csrf_token: this.csrfToken });
    const send = fetch(this.url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": this.csrfToken },
      body,
      credentials: "same-origin",
      keepalive: keepalive && body.length < 60000,
    })
      .then((resp) => {
        if (resp.status >= 500) this.queue.unshift(...batch);
      })
      .catch(() => {
        this.queue.unshift(...batch);
      })
      .finally(() => {
        this.sending = null;
      });
    this.sending = send;
    return send;
  }
}

export function formatSeconds(s) {
  return (Math.max(0, s) || 0).toFixed(1);
}

/** Create an element with attributes, class and text. */
export function el(tag, opts = {}, children = []) {
  const e = document.createElement(tag);
  if (opts.className) e.className = opts.className;
  if (opts.text !== undefined) e.textContent = opts.text;
  for (const [k, v] of Object.entries(opts.attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.appendChild(c);
  return e;
}
