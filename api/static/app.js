// The intent page: asks GET /intent as the user types (debounced), shows the top intents as bars.
// Plain browser JavaScript, no dependency, no build step; every text is inserted with textContent.
"use strict";

(function () {
  const DEBOUNCE_MS = 200;
  const $ = (id) => document.getElementById(id);
  const form = $("ask"), input = $("query"), topK = $("top_k"), results = $("results"),
    status = $("status"), count = $("count"), model = $("model"), unsure = $("unsure"),
    reason = $("reason"), coverage = $("coverage");
  const MAX_CHARS = input.maxLength;  // the server writes its limit into the page
  let timer = null, inFlight = null, lastKey = "";

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function percent(x) {
    return (100 * x).toLocaleString("fr-FR", { maximumFractionDigits: 1, minimumFractionDigits: 1 }) + "\u00a0%";
  }

  function showStatus(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  // The bars: the top intents and, when the answer is unsure, every candidate of its conformal set, each intent
  // once, most probable first; the candidates carry a "candidate" tag instead of being listed a second time.
  function ranked(prediction) {
    const unsureSet = prediction.unsure ? prediction.candidates : [];
    const byIntent = new Map(prediction.top_k.map((item) => [item.intent, item]));
    unsureSet.forEach((item) => { if (!byIntent.has(item.intent)) byIntent.set(item.intent, item); });
    const candidates = new Set(unsureSet.map((item) => item.intent));
    return [...byIntent.values()].sort((a, b) => b.score - a.score)
      .map((item) => ({ item: item, candidate: candidates.has(item.intent) }));
  }

  function render(prediction) {
    results.replaceChildren();
    ranked(prediction).forEach(({ item, candidate }, rank) => {
      const li = el("li", "result" + (rank === 0 ? " best" : "") + (candidate ? " candidate" : ""));
      li.dataset.intent = String(item.intent);
      const label = el("div", "label");
      label.append(el("span", "name", item.name), el("span", "id", "#" + item.intent));
      if (candidate) label.append(el("span", "tag", "candidate"));
      label.append(el("span", "score", percent(item.score)));
      const bar = el("div", "bar");
      const fill = el("div", "fill");
      fill.style.width = Math.max(0.5, 100 * item.score).toFixed(1) + "%";
      bar.append(fill);
      li.append(label, bar);
      results.append(li);
    });
    showStatus("Intention la plus probable : " + prediction.name + " (" + percent(prediction.confidence) + ")");
    showUnsure(prediction);
  }

  // Why an answer is unsure (the API's `reason`), in the page's words.
  const REASONS = {
    no_content: "La question ne contient ni lettre ni chiffre.",
    out_of_scope: "La question ne ressemble à aucune question sur les médicaments vues à l'entraînement.",
    low_confidence: "Le modèle hésite.",
  };
  let confidenceText = null;  // 1 - alpha, from the card

  // An unsure answer says why and how many intents its conformal set holds (tagged in the bars below; none when
  // the question has no content).
  function showUnsure(prediction) {
    const isUnsure = Boolean(prediction && prediction.unsure);
    const size = isUnsure ? prediction.candidates.length : 0;
    reason.textContent = isUnsure ? (REASONS[prediction.reason] || "") : "";
    const odds = confidenceText ? "Avec " + confidenceText + " de chances, l" : "L";
    coverage.textContent = size === 1
      ? odds + "'intention est celle marquée «\u00a0candidate\u00a0» ci-dessous."
      : odds + "'intention est l'une des " + size + " marquées «\u00a0candidate\u00a0» ci-dessous.";
    coverage.hidden = size === 0;
    unsure.hidden = !isUnsure;
  }

  async function classify() {
    const query = input.value;
    const key = topK.value + "\u0000" + query;
    if (key === lastKey) return;
    lastKey = key;
    if (inFlight) inFlight.abort();
    if (!query.trim()) {
      results.replaceChildren();
      showUnsure(null);
      showStatus("Tapez une question ou cliquez sur un exemple.");
      return;
    }
    const controller = new AbortController();
    inFlight = controller;
    const url = "/intent?" + new URLSearchParams({ query: query, top_k: topK.value });
    try {
      const response = await fetch(url, { signal: controller.signal, headers: { Accept: "application/json" } });
      const body = await response.json();
      if (controller !== inFlight) return;  // a newer request was sent meanwhile
      if (!response.ok) {
        results.replaceChildren();
        showUnsure(null);
        showStatus(body.detail || ("Erreur " + response.status), true);
        return;
      }
      render(body);
    } catch (err) {
      if (err.name === "AbortError") return;
      lastKey = "";
      showStatus("L'API ne répond pas (" + err.message + ").", true);
    } finally {
      if (controller === inFlight) inFlight = null;
    }
  }

  function schedule() {
    count.textContent = input.value.length + " / " + MAX_CHARS;
    clearTimeout(timer);
    timer = setTimeout(classify, DEBOUNCE_MS);
  }

  input.addEventListener("input", schedule);
  topK.addEventListener("change", () => { lastKey = ""; classify(); });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    lastKey = "";
    classify();
  });
  $("examples").addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    input.value = button.textContent;
    count.textContent = input.value.length + " / " + MAX_CHARS;
    clearTimeout(timer);
    classify();
    input.focus();
  });

  function metric(value, asPercent) {
    if (typeof value !== "number") return "–";
    return asPercent ? percent(value) : value.toLocaleString("fr-FR", { maximumFractionDigits: 3 });
  }

  const SOURCES = {
    archive: "jeu réel (archive chiffrée)",
    csv: "fichiers CSV de data/",
    demo: "démo synthétique : scores sans valeur",
  };

  async function loadCard() {
    try {
      const response = await fetch("/version", { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const card = await response.json();
      const v = card.validation || {};
      const u = card.uncertainty || {};
      if (typeof u.alpha === "number") confidenceText = percent(1 - u.alpha);
      const data = card.dataset || {};
      const rows = [
        ["Version", card.model_version],
        ["Entraîné le", card.trained_at ? new Date(card.trained_at).toLocaleString("fr-FR") : "–"],
        ["Données", SOURCES[data.source] || data.source || "–"],
        ["Exactitude (validation)", metric(v.accuracy, true)],
        ["F1 macro (validation)", metric(v.f1_macro, true)],
        ["ECE (calibration)", metric(v.ece, false)],
        ["Questions de validation", metric(v.n, false)],
        ["Réponses sûres (validation)", metric(v.answered_share, true) + " à " + metric(v.answered_accuracy, true) + " d'exactitude"],
        ["Entraîné sur", (card.training || {}).rows === "train+validation" ? "toutes les questions étiquetées" : "la partie train"],
      ];
      model.replaceChildren();
      for (const [term, value] of rows) model.append(el("dt", "", term), el("dd", "", String(value ?? "–")));
    } catch (err) {
      model.replaceChildren(el("dt", "", "Carte du modèle indisponible"), el("dd", "", err.message));
    }
  }

  loadCard();
  if (input.value.trim()) schedule();
})();
