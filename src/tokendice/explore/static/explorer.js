// tokendice explore: the page over the explorer's HTTP routes (explore/app.py).
//
// Model text reaches the DOM only through textContent, or as HTML the server escaped
// (the report views); nothing here builds HTML from model text. The page loads nothing
// but this file and its stylesheet (the Content-Security-Policy allows no other source).
"use strict";

(function () {
  const state = {
    tree: null, // GET /api/tree
    branch: null, // the selected branch's summary
    step: null, // the selected step
    busy: false, // a fork is streaming: one at a time (the engine serves one request at a time)
    view: 0, // bumped on every selection, so a late answer for an old one is dropped
    lastFork: null, // what the last fork streamed, shown under the new branch
    sampleN: 100,
    paramsEdit: 0, // bumped on every sampler change, so only the latest answer fills the form
  };

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // -- numbers and tokens, as the report views write them (render/report/svg.py `num`) -------------

  function num(x) {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    if (x === 0) return "0";
    const a = Math.abs(x);
    if (a < 1e-4) return pyExp(x.toExponential(1));
    if (a >= 1e4) return x.toFixed(0);
    let s = x.toPrecision(4);
    if (s.includes("e")) return pyExp(s.replace(/\.?0+e/, "e"));
    if (s.includes(".")) s = s.replace(/0+$/, "").replace(/\.$/, "");
    return s;
  }

  function pyExp(s) {
    // "5.0e-5" -> "5.0e-05" (Python's exponent has two digits at least)
    return s.replace(/e([+-])(\d)$/, "e$10$2");
  }

  const tokenText = (text) => JSON.stringify(text);
  const probColor = (p) => `hsl(${Math.round(120 * Math.max(0, Math.min(1, p)))}, 70%, 84%)`;

  // -- talking to the server ---------------------------------------------------------------------

  let pending = 0; // requests in flight: body[data-idle] says when there are none (tests wait on it)

  function track(delta) {
    pending += delta;
    document.body.dataset.idle = pending === 0 ? "true" : "false";
  }

  async function api(method, url, body) {
    track(+1);
    try {
      return await request(method, url, body);
    } finally {
      track(-1);
    }
  }

  async function request(method, url, body) {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      throw new Error(`the explorer does not answer (${err.message}): is \`tokendice explore\` still running?`);
    }
    return answer(response);
  }

  async function answer(response) {
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const why = data && data.error ? data.error : text.slice(0, 300) || response.statusText;
      throw new Error(`${why} (HTTP ${response.status})`);
    }
    return data;
  }

  function showError(what, err) {
    const box = $("#ex-error");
    $(".ex-error-text", box).textContent = `${what}: ${err && err.message ? err.message : err}`;
    box.hidden = false;
  }

  function clearError() {
    $("#ex-error").hidden = true;
  }

  // -- the tree ----------------------------------------------------------------------------------

  async function loadTree() {
    state.tree = await api("GET", "/api/tree");
    const t = state.tree;
    $("#ex-prompt").textContent = t.prompt;
    $("#ex-model").textContent = `${t.model} (${t.engine})` + (t.run_id ? ` · run ${t.run_id}` : " · not stored");
    drawTree();
  }

  function children(id) {
    return state.tree.branches.filter((b) => b.parent === id);
  }

  function drawTree() {
    const root = $("#ex-tree");
    root.replaceChildren(...children(null).map(treeNode));
  }

  function treeNode(b) {
    const selected = state.branch && state.branch.id === b.id;
    const fork = b.fork_step === null ? "first branch" : `step ${b.fork_step} → ${tokenText(b.forced)}`;
    const barWidth = b.prob > 0 ? Math.max(2, 100 * (1 + Math.log10(b.prob) / 8)) : 0;
    const node = el(
      "button",
      { type: "button", class: "ex-node" + (selected ? " ex-selected" : ""), "data-branch": b.id, "aria-pressed": selected ? "true" : "false" },
      el(
        "span",
        { class: "ex-node-top" },
        el("span", { class: "ex-id", text: `#${b.id}` }),
        el("span", { class: "ex-fork", text: fork }),
        b.current_sampler
          ? null
          : el("span", {
              class: "ex-tag",
              text: "other sampler",
              title: "grown under another sampler than the current one: its p(branch) is under that sampler",
            }),
      ),
      el("span", { class: "ex-text", text: b.text, title: b.text }),
      el(
        "span",
        { class: "ex-probs" },
        el("span", {
          class: "ex-bar",
          title: "p(branch) on a log scale: empty at 1e-8, full at 1",
        }, el("i", { style: `width:${Math.min(100, barWidth).toFixed(1)}%` })),
        el(
          "span",
          {
            class: "ex-p",
            "data-prob": b.prob,
            title: "exact probability that this branch's sampler, run from the prompt, produces exactly this completion",
          },
          "p(branch) ",
          el("b", { class: "ex-v", text: num(b.prob) }),
        ),
        el(
          "span",
          { class: "ex-lp", "data-logprob": b.model_logprob, title: "log-probability of the completion under the model (raw logits)" },
          "log p(model) ",
          el("b", { class: "ex-v", text: num(b.model_logprob) }),
        ),
      ),
    );
    node.addEventListener("click", () => {
      if (state.busy) return; // the fork streaming now opens its branch when it ends
      selectBranch(b.id).catch((err) => showError("Could not open the branch", err));
    });
    const kids = children(b.id);
    return el("li", {}, node, kids.length ? el("ul", {}, ...kids.map(treeNode)) : null);
  }

  // -- a branch: its summary and its trace view (server HTML) ---------------------------------------

  async function selectBranch(id, step) {
    const ticket = ++state.view;
    const data = await api("GET", `/api/branch/${id}`);
    if (ticket !== state.view) return;
    state.branch = data.branch;
    drawTree();
    drawBranchHead(data.branch);
    const trace = $("#ex-trace");
    trace.innerHTML = data.html; // drawn and escaped by the trace view (render/report/trace.py)
    const first = step !== undefined && step !== null ? step : data.branch.fork_step !== null ? data.branch.fork_step : 0;
    await selectStep(Math.min(first, data.branch.n_tokens - 1));
  }

  function drawBranchHead(b) {
    const head = $("#ex-branch-head");
    const where =
      b.parent === null ? "the first branch (a trace of the prompt)" : `forked from branch ${b.parent} at step ${b.fork_step} by taking ${tokenText(b.forced)}`;
    const sampler = b.current_sampler ? "under its sampler (the current one)" : "under its own sampler (not the current one)";
    head.replaceChildren(
      el(
        "section",
        { class: "td-card ex-branch" },
        el("h2", { text: `Branch ${b.id}` }),
        el("div", { class: "td-meta", text: `${where} · ${b.n_tokens} tokens · finished by ${b.finish_reason}` }),
        el(
          "div",
          { class: "ex-branch-probs" },
          el("span", { class: "ex-big", "data-prob": b.prob }, "p(branch) ", el("b", { class: "ex-v", text: num(b.prob) })),
          el("span", { class: "td-note", text: sampler }),
          el("span", { class: "ex-big" }, "log p(model) ", el("b", { class: "ex-v", text: num(b.model_logprob) })),
          el("span", { class: "td-note", text: "raw logits" }),
        ),
        el(
          "p",
          { class: "td-note" },
          "Click a token of the completion below to see its step under the current sampler, then click a candidate to fork there.",
        ),
      ),
    );
  }

  // -- a step: its candidates under the current sampler; fork; sample ------------------------------

  function stripOf(trace) {
    const strip = $(".td-tokens", trace);
    return strip ? strip.parentElement : null;
  }

  async function selectStep(step) {
    const b = state.branch;
    if (!b) return;
    const ticket = ++state.view;
    state.step = step;
    for (const a of $$("#ex-trace .td-tokens a[data-step]")) {
      a.classList.toggle("ex-selected", Number(a.dataset.step) === step);
    }
    const data = await api("GET", `/api/step?branch=${b.id}&step=${step}`);
    if (ticket !== state.view) return;
    drawStep(b, step, data);
  }

  function drawStep(b, step, data) {
    const trace = $("#ex-trace");
    let panel = $("#ex-step", trace);
    if (!panel) {
      panel = el("section", { id: "ex-step", class: "ex-step" });
      const strip = stripOf(trace);
      if (strip) strip.after(panel);
      else trace.prepend(panel);
    }
    const chosen = data.candidates[0];
    const chain = chainLabel(data.params);
    const table = el("div", { class: "ex-candidates" });
    table.innerHTML = data.html; // the step table, drawn and escaped by the trace view
    for (const row of $$("tr.td-forkable", table)) {
      const token = Number(row.dataset.token);
      const text = $("td.tok", row) ? $("td.tok", row).textContent : "";
      const same = token === chosen.token_id;
      row.tabIndex = 0;
      row.title = same
        ? `take ${text} again at step ${step} and sample a new continuation`
        : `fork: take ${text} at step ${step} and sample the rest`;
      row.addEventListener("click", () => fork(b.id, step, token));
      row.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          fork(b.id, step, token);
        }
      });
    }
    const parts = [
      el("h3", {}, `Step ${step}: branch ${b.id} took `, el("code", { text: tokenText(chosen.text) }), " · candidates under the current sampler"),
      el("div", { class: "td-note", text: `chain now: ${chain}` }),
    ];
    if (state.lastFork && state.lastFork.branch === b.id) parts.push(el("p", { class: "ex-done", text: state.lastFork.text }));
    // a fork streaming into the old panel goes on streaming into this one
    const live = $("#ex-live");
    parts.push(state.busy && live ? live : el("div", { id: "ex-live", class: "ex-live", hidden: true }));
    parts.push(
      el(
        "p",
        { class: "td-note" },
        "Click a row to fork: take that token at step ",
        String(step),
        ", then sample to the end with the current sampler; the continuation streams in as it is decoded. ",
        "Grey rows are removed by a stage: a branch through one has probability 0 under this sampler.",
      ),
    );
    parts.push(table);
    if (!b.current_sampler) parts.push(recordedStep(step));
    parts.push(sampleForm(b, step));
    parts.push(el("div", { id: "ex-samples", class: "ex-samples" }));
    panel.replaceChildren(...parts);
    panel.dataset.branch = b.id;
    panel.dataset.step = step;
    panel.classList.toggle("ex-disabled", state.busy);
  }

  function chainLabel(p) {
    if (!p.do_sample || p.temperature === 0) return "greedy (argmax)";
    const on = [];
    if (p.repetition_penalty !== 1) on.push(`repetition_penalty=${p.repetition_penalty}`);
    if (p.no_repeat_ngram_size) on.push(`no_repeat_ngram_size=${p.no_repeat_ngram_size}`);
    if (p.temperature !== 1) on.push(`temperature=${p.temperature}`);
    if (p.top_k) on.push(`top_k=${p.top_k}`);
    if (p.top_p !== 1) on.push(`top_p=${p.top_p}`);
    if (p.min_p) on.push(`min_p=${p.min_p}`);
    return on.length ? on.join(", ") : "none: sampling from the model's own distribution";
  }

  function recordedStep(step) {
    // The branch was scored under another sampler: its own view of this step, from its trace.
    const recorded = $(`#ex-trace .td-steps .td-step[data-step="${step}"]`);
    const box = el("details", { class: "ex-recorded" }, el("summary", { text: "this step as the branch drew it (under its own sampler)" }));
    if (recorded) {
      const copy = recorded.cloneNode(true);
      copy.removeAttribute("id"); // the trace's own (hidden) panel keeps it
      box.append(copy);
    }
    return box;
  }

  function sampleForm(b, step) {
    const input = el("input", { type: "number", min: 1, max: 100000, step: 1, value: state.sampleN, "aria-label": "number of samples", id: "ex-n" });
    const button = el("button", { type: "submit", class: "ex-button ex-primary", id: "ex-sample" }, "Sample");
    const form = el(
      "form",
      { class: "ex-sample-form" },
      el("span", {}, "Sample "),
      input,
      el("span", {}, ` completions from this node (the prompt and the first ${step} token${step === 1 ? "" : "s"} of branch ${b.id}) `),
      button,
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      sample(b.id, step, Number(input.value));
    });
    return form;
  }

  async function sample(branch, step, n) {
    const out = $("#ex-samples");
    if (!Number.isInteger(n) || n < 1) {
      showError("Could not sample", new Error("the number of samples must be a whole number >= 1"));
      return;
    }
    state.sampleN = n;
    clearError();
    out.replaceChildren(el("p", { class: "td-note ex-wait", text: `sampling ${n} completions…` }));
    let data;
    try {
      data = await api("POST", "/api/sample", { branch, step, n });
    } catch (err) {
      out.replaceChildren();
      showError("Could not sample", err);
      return;
    }
    const total = data.completions.reduce((s, c) => s + c.count, 0);
    const chart = el("div", { class: "ex-bars" });
    chart.innerHTML = data.html; // the sample bars, drawn and escaped by render/report/explore.py
    const rows = data.completions.map((c) =>
      el(
        "tr",
        {},
        el("td", { class: "tok", text: tokenText(c.text) }),
        el("td", { class: "n ex-count", text: String(c.count) }),
        el("td", { class: "n", text: `${num(c.share)} [${num(c.ci_low)}, ${num(c.ci_high)}]` }),
        el("td", { class: "n", text: num(c.exact_prob) }),
        el("td", { class: "n", text: num(data.n * c.exact_prob) }),
      ),
    );
    const table = el(
      "table",
      { class: "ex-sample-table" },
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          el("th", { text: "completion" }),
          el("th", { text: "count" }),
          el("th", { text: `share of n=${data.n} [95% Wilson]` }),
          el("th", { text: "exact p(sampling | node)" }),
          el("th", { text: "expected count" }),
        ),
      ),
      el("tbody", {}, ...rows),
      el("tfoot", {}, el("tr", {}, el("td", { text: "all" }), el("td", { class: "n ex-total", text: String(total) }), el("td"), el("td"), el("td"))),
    );
    out.replaceChildren(
      el("h3", { class: "ex-samples-head", text: `${data.n} samples · ${data.completions.length} distinct completions` }),
      chart,
      el("div", { class: "ex-table-scroll" }, table),
    );
  }

  // -- fork: stream the continuation as it is decoded ----------------------------------------------

  async function fork(branch, step, tokenId) {
    if (state.busy) return;
    state.busy = true;
    document.body.classList.add("ex-busy");
    $("#ex-step") && $("#ex-step").classList.add("ex-disabled");
    clearError();
    const live = $("#ex-live");
    const started = performance.now();
    const stream = el("div", { class: "ex-stream td-tokens" });
    stream.append(el("span", { class: "td-prompt", text: state.tree.prompt }));
    for (const a of $$("#ex-trace .td-tokens.td-by-model a[data-step]")) {
      if (Number(a.dataset.step) < step) stream.append(el("span", { class: "ex-prefix", text: a.textContent }));
    }
    const status = el("div", { class: "ex-live-status", text: `forking branch ${branch} at step ${step}…` });
    if (live) {
      live.replaceChildren(status, stream);
      live.hidden = false;
    }
    let count = 0;
    track(+1);
    try {
      const response = await fetch("/api/fork", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ branch, step, token_id: tokenId }),
      });
      if (!response.ok) await answer(response);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let done = null;
      for (;;) {
        const { value, done: end } = await reader.read();
        buffer += decoder.decode(value || new Uint8Array(), { stream: !end });
        let cut;
        while ((cut = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, cut).trim();
          buffer = buffer.slice(cut + 1);
          if (!line) continue;
          const item = JSON.parse(line);
          if (item.type === "step") {
            count += 1;
            stream.append(streamed(item, count === 1));
            status.textContent = `forking branch ${branch} at step ${step}: ${count} token${count === 1 ? "" : "s"} decoded…`;
          } else if (item.type === "done") {
            done = item.branch;
          } else if (item.type === "error") {
            throw new Error(item.error);
          }
        }
        if (end) break;
      }
      if (!done) throw new Error("the stream ended before the branch was made");
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      state.lastFork = {
        branch: done.id,
        text: `Branch ${done.id} added: forked from branch ${branch} at step ${step}, ${count} tokens streamed in ${seconds} s; p(branch) ${num(done.prob)}.`,
      };
      await loadTree();
      await selectBranch(done.id, step);
    } catch (err) {
      showError("Could not fork", err);
      if (live) status.textContent = `the fork failed after ${count} token${count === 1 ? "" : "s"}`;
    } finally {
      track(-1);
      state.busy = false;
      document.body.classList.remove("ex-busy");
      $("#ex-step") && $("#ex-step").classList.remove("ex-disabled");
    }
  }

  function streamed(item, forced) {
    return el("span", {
      class: "ex-tok" + (forced ? " ex-forced" : ""),
      style: `background:${probColor(item.sampling_prob)}`,
      title: `step ${item.step}: ${tokenText(item.text)}${forced ? " (forced)" : ""} · p(model) ${num(item.model_prob)} · p(sampling) ${num(item.sampling_prob)}`,
      "data-step": item.step,
      text: item.text,
    });
  }

  // -- the sampler form ----------------------------------------------------------------------------

  const NUMBERS = ["temperature", "top_k", "top_p", "min_p", "repetition_penalty", "no_repeat_ngram_size", "max_new_tokens"];

  function fillParams(p) {
    const form = $("#ex-params");
    for (const name of NUMBERS) {
      const input = form.elements[name];
      if (document.activeElement !== input) input.value = p[name];
      input.removeAttribute("aria-invalid");
    }
    form.elements.greedy.checked = !p.do_sample;
  }

  function formParams() {
    const form = $("#ex-params");
    const out = {};
    for (const name of NUMBERS) {
      const raw = form.elements[name].value.trim();
      out[name] = raw === "" ? null : Number(raw);
    }
    out.do_sample = !form.elements.greedy.checked;
    return out;
  }

  async function applyParams(ev) {
    const form = $("#ex-params");
    const changed = ev && ev.target && ev.target.name;
    const edit = ++state.paramsEdit;
    try {
      const data = await api("POST", "/api/params", formParams());
      if (edit !== state.paramsEdit) return; // a later change is on its way: its answer fills the form
      clearError();
      fillParams(data.params);
      await loadTree();
      if (state.branch) {
        state.branch = state.tree.branches.find((b) => b.id === state.branch.id) || state.branch;
        drawBranchHead(state.branch);
        if (state.step !== null) await selectStep(state.step);
      }
    } catch (err) {
      if (edit !== state.paramsEdit) return; // a later change was sent: its answer says what holds
      if (changed && form.elements[changed]) form.elements[changed].setAttribute("aria-invalid", "true");
      showError("The sampler was not changed", err);
    }
  }

  // -- export / import -----------------------------------------------------------------------------

  async function importFile(ev) {
    const input = ev.target;
    const file = input.files && input.files[0];
    input.value = "";
    if (!file) return;
    let data;
    try {
      data = JSON.parse(await file.text());
    } catch (err) {
      showError("Could not import", new Error(`${file.name} is not JSON (${err.message})`));
      return;
    }
    try {
      await api("POST", "/api/import", data);
      clearError();
      state.branch = null;
      state.lastFork = null;
      await loadTree();
      fillParams(state.tree.params); // the imported tree's sampler
      await selectBranch(state.tree.branches.length ? state.tree.branches[0].id : 0);
    } catch (err) {
      showError("Could not import", err);
    }
  }

  // -- wiring ----------------------------------------------------------------------------------------

  function onTraceClick(ev) {
    const link = ev.target.closest("a");
    if (!link || !$("#ex-trace").contains(link)) return;
    const href = link.getAttribute("href") || link.getAttribute("xlink:href") || "";
    if (!href.startsWith("#")) return;
    ev.preventDefault(); // select the step here, not by the report's :target
    if (state.busy) return; // a fork is streaming into this step's panel
    const step = link.dataset.step !== undefined ? Number(link.dataset.step) : Number((href.match(/s(\d+)$/) || [])[1]);
    if (Number.isInteger(step)) selectStep(step).catch((err) => showError("Could not show the step", err));
  }

  async function start() {
    $("#ex-trace").addEventListener("click", onTraceClick);
    $(".ex-close").addEventListener("click", clearError);
    const form = $("#ex-params");
    form.addEventListener("change", applyParams);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      applyParams(ev);
    });
    $("#ex-import-file").addEventListener("change", importFile);
    try {
      await loadTree();
      fillParams(state.tree.params);
      if (state.tree.branches.length) await selectBranch(state.tree.branches[0].id);
    } catch (err) {
      showError("Could not load the tree", err);
    }
    document.body.dataset.ready = "true";
  }

  start();
})();
