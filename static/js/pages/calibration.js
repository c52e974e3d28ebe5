// Volume calibration and headphone check (antiphase or Huggins pitch). Each
// screening sound can be played once; a trial's answers unlock when all three
// of its sounds have been played.

import { readConfig } from "../common.js";

const cfg = readConfig("page-config") || {};

function setupCalibration() {
  const button = document.getElementById("calibration-play");
  if (!button || !cfg.calibration_url) return;
  const audio = new Audio(cfg.calibration_url);
  audio.loop = true;
  audio.preload = "auto";
  const label = () => {
    button.textContent = audio.paused ? button.dataset.play : button.dataset.stop;
    button.setAttribute("aria-pressed", String(!audio.paused));
  };
  button.addEventListener("click", () => {
    if (audio.paused) audio.play().catch(() => {});
    else audio.pause();
  });
  audio.addEventListener("play", label);
  audio.addEventListener("pause", label);
}

function setupHeadphoneCheck() {
  const hc = cfg.headphone_check;
  if (!hc || !hc.trials) return;
  const played = hc.trials.map((tr) => tr.urls.map(() => false));
  let current = null;
  for (const button of document.querySelectorAll(".hp-play")) {
    const t = Number(button.dataset.trial);
    const o = Number(button.dataset.option);
    button.addEventListener("click", () => {
      if (played[t][o] || current) return;
      const audio = new Audio(hc.trials[t].urls[o]);
      current = audio;
      button.disabled = true;
      button.classList.add("playing");
      const finish = () => {
        current = null;
        played[t][o] = true;
        button.classList.remove("playing");
        button.classList.add("played");
        if (played[t].every(Boolean)) {
          for (const r of document.querySelectorAll(`input[name="check_${t}"]`)) r.disabled = false;
        }
      };
      audio.addEventListener("ended", finish);
      audio.addEventListener("error", finish);
      audio.play().catch(finish);
    });
  }
}

setupCalibration();
setupHeadphoneCheck();
