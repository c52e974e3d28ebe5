// MUSHRA trial page (ITU-R BS.1534-3): open reference, up to 12 blinded
// stimuli, one continuous 0-100 slider each with the five labelled bands. Only
// the slider of the stimulus being heard is active; "next" needs every
// stimulus heard (must_listen_fraction) and rated, and, if required, one at 100.

import { el } from "../common.js";
import { runTrials } from "../trial.js";

/** Build one trial's controls on `page` (a TrialPage) and start it. */
function mount(page) {
  const cfg = page.config;
  const t = page.t;
  const n = page.count;
  const question = cfg.questions[0];
  const scale = question && question.scale && question.scale.type === "continuous" ? question.scale : { min: 0, max: 100, step: 1 };
  const lo = Number(scale.min ?? 0);
  const hi = Number(scale.max ?? 100);
  const defaultBands = [
    { min: 80, max: 100, label: t("mushra.band_excellent") },
    { min: 60, max: 80, label: t("mushra.band_good") },
    { min: 40, max: 60, label: t("mushra.band_fair") },
    { min: 20, max: 40, label: t("mushra.band_poor") },
    { min: 0, max: 20, label: t("mushra.band_bad") },
  ];
  const bands = (scale.bands && scale.bands.length ? scale.bands : defaultBands).slice().sort((a, b) => b.max - a.max);

  const values = new Array(n).fill(null);
  const columns = [];

  function buildBands() {
    const box = document.getElementById("mushra-bands");
    for (const b of bands) {
      const band = el("div", { className: "band" }, [el("span", { className: "band-label", text: b.label })]);
      band.style.flexGrow = String(Math.max(0.001, b.max - b.min));
      box.appendChild(band);
    }
  }

  function buildColumns() {
    const box = document.getElementById("mushra-columns");
    cfg.stimuli.forEach((s, i) => {
      const button = el("button", {
        className: "btn btn-stimulus",
        text: s.label,
        attrs: { type: "button", "aria-label": t("trial.sound", { label: s.label }) },
      });
      const meterFill = el("span", { className: "heard-fill" });
      const meter = el("span", { className: "heard-meter", attrs: { "aria-hidden": "true" } }, [meterFill]);
      const slider = el("input", {
        className: "mushra-slider unrated",
        attrs: {
          type: "range",
          min: String(lo),
          max: String(hi),
          step: String(scale.step || 1),
          value: String(lo),
          "aria-label": `${t("mushra.rating")} ${s.label}`,
          "aria-orientation": "vertical",
        },
      });
      slider.disabled = true;
      const value = el("output", { className: "mushra-value", text: t("mushra.not_rated") });
      const track = el("div", { className: "slider-track" }, [slider]);
      const col = el("div", { className: "mushra-col" }, [
        el("div", { className: "mushra-head" }, [button, meter]),
        track,
        value,
      ]);
      button.addEventListener("click", () => page.select(i, true));
      // Disabled sliders ignore the pointer (CSS), so a press on the track selects
      // that stimulus first.
      track.addEventListener("pointerdown", () => {
        if (page.engine && page.engine.currentIndex !== i) page.select(i, true);
      });
      const onInput = () => {
        if (page.engine.currentIndex !== i) {
          slider.value = String(values[i] ?? lo);
          return;
        }
        values[i] = Number(slider.value);
        slider.classList.remove("unrated");
        value.textContent = String(values[i]);
        col.classList.add("rated");
        update();
      };
      slider.addEventListener("input", onInput);
      slider.addEventListener("change", onInput);
      box.appendChild(col);
      columns.push({ col, button, slider, value, meterFill });
    });
    const ref = document.getElementById("reference");
    if (page.referenceIndex === null) ref.hidden = true;
    else ref.addEventListener("click", () => page.select(page.referenceIndex, true));
  }

  function highlight(current) {
    const playing = page.engine && page.engine.playing;
    columns.forEach((c, i) => {
      const on = i === current;
      c.col.classList.toggle("current", on);
      c.col.classList.toggle("playing", on && playing);
      c.button.setAttribute("aria-pressed", String(on));
      c.slider.disabled = !on;
    });
    const ref = document.getElementById("reference");
    const refOn = current === page.referenceIndex;
    ref.classList.toggle("current", refOn);
    ref.classList.toggle("playing", refOn && playing);
    ref.setAttribute("aria-pressed", String(refOn));
  }

  function update() {
    if (!page.engine) return;
    const f = cfg.must_listen_fraction || 0;
    columns.forEach((c, i) => {
      const h = page.engine.heardFraction(i);
      c.meterFill.style.width = `${Math.min(100, (f > 0 ? h / f : 1) * 100).toFixed(1)}%`;
      c.col.classList.toggle("heard", h + 1e-9 >= f);
    });
    const missing = [];
    if (page.unheard([...Array(n).keys()]).length) missing.push("trial.need_listen");
    if (values.some((v) => v === null)) missing.push("trial.need_rate");
    if (cfg.require_full_scale && !values.some((v) => v !== null && v >= hi)) missing.push("trial.need_full_scale");
    page.setMissing(missing);
  }

  page.collectRatings = () =>
    values.map((v, i) => ({ stimulus: i, question: question.key, score: v }));

  buildBands();
  buildColumns();
  page.on("select", (i) => highlight(i));
  page.on("position", (p) => {
    highlight(p.index);
    update();
  });
  page.on("event", () => highlight(page.engine.currentIndex));
  page.start({ loopWhole: true }).then(() => {
    document.getElementById("mushra").hidden = false;
    highlight(page.engine.currentIndex);
    update();
  });
}

runTrials(mount);
