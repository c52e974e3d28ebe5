// Category-scale trial pages (ITU-T P.800 ACR, DCR, CCR and AB preference).
//
//   acr: one stimulus, questions rated per stimulus (a training page may hold several)
//   dcr: reference then processed; the processed stimulus is rated (DMOS labels)
//   ccr: a pair, the second rated against the first on -3..+3 (pair-level: stimulus null)
//   ab:  a pair A/B, optional open reference, a preference (pair-level)
// All stimuli play through the shared engine (same playhead, 5 ms fades); "Play
// in order" plays them one after the other, as P.800 presents DCR and CCR.

import { el } from "../common.js";
import { runTrials } from "../trial.js";

/** Build one trial's controls on `page` (a TrialPage) and start it. */
function mount(page) {
  const cfg = page.config;
  const t = page.t;
  const kind = cfg.kind;
  const n = page.count;
  const ref = page.referenceIndex;
  const pairLevel = kind === "ccr" || kind === "ab";

  // Buttons: [engine index, label].
  const playables = [];
  if (ref !== null) playables.push([ref, t("trial.reference")]);
  cfg.stimuli.forEach((s, i) => {
    let label = t("trial.sound", { label: s.label });
    if (kind === "dcr" && n === 1) label = t("dcr.processed");
    if (kind === "ccr" && n === 2) label = i === 0 ? t("ccr.first") : t("ccr.second");
    if (kind === "ab") label = s.label;
    playables.push([i, label]);
  });
  // Must-listen: every stimulus, and the reference of a DCR trial.
  const required = [...Array(n).keys()];
  if (kind === "dcr" && ref !== null) required.push(ref);
  // Sequential presentation.
  const order = kind === "acr" ? [...Array(n).keys()] : playables.map(([i]) => i);

  // Question groups: one per stimulus (acr/dcr) or one for the pair (ccr/ab).
  const groups = pairLevel ? [null] : [...Array(n).keys()];
  const answers = new Map(); // `${group}|${question}` -> score

  const buttons = [];
  let sequence = null;

  function buildButtons() {
    const box = document.getElementById("stimulus-buttons");
    if (playables.length > 1) {
      for (const [i, label] of playables) {
        const b = el("button", {
          className: "btn btn-stimulus" + (i === ref ? " btn-reference" : ""),
          attrs: { type: "button", "aria-pressed": "false" },
        });
        const meterFill = el("span", { className: "heard-fill" });
        b.append(el("span", { className: "btn-label", text: label }), el("span", { className: "heard-meter", attrs: { "aria-hidden": "true" } }, [meterFill]));
        b.addEventListener("click", () => {
          sequence = null;
          page.select(i, true);
        });
        box.appendChild(b);
        buttons.push({ index: i, button: b, meterFill });
      }
      if (order.length > 1) {
        const seq = el("button", { className: "btn btn-sequence", text: t("pair.play_sequence"), attrs: { type: "button" } });
        seq.addEventListener("click", () => playSequence());
        box.appendChild(seq);
      }
      // Shown once the audio is ready (page.start below): before that a press would
      // have nothing to play.
    }
  }

  function playSequence() {
    const eng = page.engine;
    if (eng.playing) eng.pause();
    sequence = { step: 0 };
    page.select(order[0]);
    eng.seek(0);
    eng.play();
  }

  function buildQuestions() {
    const box = document.getElementById("questions");
    for (const g of groups) {
      const container = groups.length > 1 ? el("div", { className: "question-group" }) : box;
      if (groups.length > 1) {
        container.appendChild(el("h2", { className: "question-group-title", text: playables.find(([i]) => i === g)[1] }));
        box.appendChild(container);
      }
      cfg.questions.forEach((q, qi) => {
        const fs = el("fieldset", { className: "question" }, [el("legend", { text: q.label })]);
        const name = `q-${g === null ? "p" : g}-${qi}`;
        const key = `${g}|${q.key}`;
        if (q.scale.type === "categorical") {
          const opts = el("div", { className: "scale-options" + (q.scale.categories.length > 5 ? " scale-wide" : "") });
          for (const c of q.scale.categories) {
            const input = el("input", { attrs: { type: "radio", name, value: String(c.score) } });
            input.addEventListener("change", () => {
              answers.set(key, Number(c.score));
              update();
            });
            opts.appendChild(el("label", { className: "scale-option" }, [input, el("span", { text: c.label })]));
          }
          fs.appendChild(opts);
        } else {
          const s = q.scale;
          const input = el("input", {
            className: "unrated",
            attrs: { type: "range", min: String(s.min), max: String(s.max), step: String(s.step || 1), value: String(s.min), "aria-label": q.label },
          });
          const out = el("output", { className: "range-value", text: "–" });
          input.addEventListener("input", () => {
            input.classList.remove("unrated");
            answers.set(key, Number(input.value));
            out.textContent = input.value;
            update();
          });
          fs.append(input, out);
        }
        container.appendChild(fs);
      });
    }
    box.hidden = false;
  }

  function highlight() {
    const eng = page.engine;
    if (!eng) return;
    for (const b of buttons) {
      const on = b.index === eng.currentIndex;
      b.button.classList.toggle("current", on);
      b.button.classList.toggle("playing", on && eng.playing);
      b.button.setAttribute("aria-pressed", String(on));
    }
  }

  function update() {
    const eng = page.engine;
    if (!eng) return;
    const f = cfg.must_listen_fraction || 0;
    for (const b of buttons) {
      const h = eng.heardFraction(b.index);
      b.meterFill.style.width = `${Math.min(100, (f > 0 ? h / f : 1) * 100).toFixed(1)}%`;
      b.button.classList.toggle("heard", h + 1e-9 >= f);
    }
    const missing = [];
    if (page.unheard(required).length) missing.push("trial.need_listen");
    const unanswered = groups.some((g) => cfg.questions.some((q) => !answers.has(`${g}|${q.key}`)));
    if (unanswered) missing.push("trial.need_answer");
    page.setMissing(missing);
  }

  page.collectRatings = () => {
    // Pair-level training pages are discarded by the server; send nothing for them.
    if (pairLevel && cfg.is_training) return [];
    const out = [];
    for (const g of groups) {
      for (const q of cfg.questions) {
        const v = answers.get(`${g}|${q.key}`);
        if (v !== undefined) out.push({ stimulus: g, question: q.key, score: v });
      }
    }
    return out;
  };

  buildButtons();
  buildQuestions();
  page.on("select", () => highlight());
  page.on("position", () => {
    highlight();
    update();
  });
  page.on("event", (e) => {
    highlight();
    if (e.kind === "ended" && sequence) {
      sequence.step++;
      if (sequence.step < order.length) {
        page.select(order[sequence.step]);
        page.engine.play();
      } else {
        sequence = null;
      }
    } else if (e.kind === "pause") {
      sequence = null; // the listener took over
    }
  });
  page.start({ loopWhole: false }).then(() => {
    document.getElementById("stimulus-buttons").hidden = buttons.length === 0;
    highlight();
    update();
  });
}

runTrials(mount);
