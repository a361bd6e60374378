/* The chat page of `m40-llm serve`: conversations (kept in localStorage),
 * answers streamed from POST v1/chat/completions (server-sent events, with
 * stream_options.include_usage for the token counts), a stop button that
 * aborts the fetch (the server cancels a request whose client hung up), a
 * model picker from v1/models, and a status panel from props and metrics.
 *
 * Every URL is relative to the page, so requests stay on the server's own
 * origin (the Content-Security-Policy enforces it too). With --api-key the
 * page asks for the key when an answer is 401, keeps it in localStorage and
 * sends it as a Bearer token. */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const LS = {
    chats: "m40llm.chats",
    current: "m40llm.current",
    settings: "m40llm.settings",
    key: "m40llm.apiKey",
  };
  const STATUS_EVERY_MS = 3000;
  const RENDER_EVERY_MS = 60; /* markdown is re-rendered at most this often while streaming */
  const MAX_CHATS = 200;

  const state = {
    chats: [],      /* [{id, title, created, updated, messages: [{role, content, stats, error}]}] */
    current: null,  /* id of the chat shown */
    busy: null,     /* {controller, chat, msg} while an answer streams */
    key: "",
    keyWait: null,  /* Promise while the key dialog is open */
    down: false,
    polling: false,
    modelsLoaded: false,
  };

  /* ---------- storage ---------- */

  function loadJSON(name, fallback) {
    try {
      const v = JSON.parse(localStorage.getItem(name));
      return v === null || v === undefined ? fallback : v;
    } catch (e) {
      return fallback;
    }
  }

  function saveChats() {
    state.chats.sort((a, b) => b.updated - a.updated);
    state.chats.length = Math.min(state.chats.length, MAX_CHATS);
    for (;;) {
      try {
        localStorage.setItem(LS.chats, JSON.stringify(state.chats));
        localStorage.setItem(LS.current, state.current || "");
        return;
      } catch (e) { /* quota: drop the oldest chat and retry */
        if (state.chats.length <= 1) return;
        state.chats.pop();
      }
    }
  }

  function loadChats() {
    const chats = loadJSON(LS.chats, []);
    state.chats = Array.isArray(chats) ? chats.filter((c) => c && Array.isArray(c.messages)) : [];
    for (const c of state.chats) {
      /* an answer that was streaming when the page went away */
      for (const m of c.messages)
        if (m.role === "assistant" && !m.stats && !m.error) m.error = "interrupted (the page was closed)";
    }
    const cur = localStorage.getItem(LS.current);
    state.current = state.chats.some((c) => c.id === cur) ? cur : state.chats[0]?.id || null;
  }

  function settings() {
    const t = parseFloat($("temperature").value);
    const n = parseInt($("max-tokens").value, 10);
    return {
      model: $("model").value,
      system: $("system").value,
      temperature: Number.isFinite(t) ? Math.min(Math.max(t, 0), 2) : null,
      maxTokens: Number.isFinite(n) && n > 0 ? n : null,
    };
  }

  function saveSettings() {
    const s = settings();
    localStorage.setItem(LS.settings, JSON.stringify({
      model: s.model, system: s.system, temperature: $("temperature").value,
      maxTokens: $("max-tokens").value,
    }));
  }

  function loadSettings() {
    const s = loadJSON(LS.settings, {});
    if (typeof s.system === "string") $("system").value = s.system;
    if (s.temperature !== undefined) $("temperature").value = s.temperature;
    if (s.maxTokens !== undefined) $("max-tokens").value = s.maxTokens;
    if (s.system) $("system-box").hidden = false;
    return s;
  }

  /* ---------- requests ---------- */

  class DownError extends Error {}

  function setDown(down) {
    if (down === state.down) return;
    state.down = down;
    const b = $("banner");
    if (down) {
      b.textContent = "Cannot reach the m40-llm server at " + window.location.origin +
        ": it has stopped or the network is down. This page retries every " +
        STATUS_EVERY_MS / 1000 + " s.";
      b.className = "error";
      b.hidden = false;
    } else {
      b.hidden = true;
      if (!state.modelsLoaded) loadModels();
    }
    statusDot(down ? "down" : "ok", down ? "unreachable" : "reachable");
  }

  /* Opens the key dialog (once, however many requests wait) and resolves
   * with the key typed. */
  function askKey(refused) {
    if (state.keyWait) return state.keyWait;
    $("key-why").textContent = refused
      ? "The server refused that key. Enter the key the server was started with (--api-key)."
      : "This server needs an API key (it was started with --api-key).";
    const dlg = $("key-dialog");
    $("key-input").value = "";
    state.keyWait = new Promise((resolve) => {
      const form = $("key-form");
      const done = (ev) => {
        ev.preventDefault();
        const k = $("key-input").value.trim();
        if (!k) return;
        form.removeEventListener("submit", done);
        state.key = k;
        try { localStorage.setItem(LS.key, k); } catch (e) { /* kept for this page only */ }
        dlg.close();
        state.keyWait = null;
        resolve(k);
      };
      form.addEventListener("submit", done);
    });
    if (!dlg.open) dlg.showModal();
    $("key-input").focus();
    return state.keyWait;
  }

  /* fetch with the key; a 401 asks for the key and tries again; a network
   * failure (not an abort) marks the server down and throws DownError */
  async function api(path, opts = {}) {
    for (let tries = 0; ; tries++) {
      const headers = Object.assign({}, opts.headers || {});
      const sent = state.key; /* a 401 for an older key needs no question */
      if (sent) headers.Authorization = "Bearer " + sent;
      let r;
      try {
        r = await fetch(path, Object.assign({}, opts, { headers, cache: "no-store" }));
      } catch (e) {
        if (e.name === "AbortError") throw e;
        setDown(true);
        throw new DownError("the server is not reachable");
      }
      setDown(false);
      if (r.status !== 401 || tries >= 10) return r;
      if (state.keyWait) await state.keyWait;
      else if (state.key === sent) await askKey(!!sent);
    }
  }

  async function errorText(r) {
    const text = await r.text().catch(() => "");
    try {
      const j = JSON.parse(text);
      const m = typeof j.error === "string" ? j.error : j.error?.message;
      if (m) return "HTTP " + r.status + ": " + m;
    } catch (e) { /* not JSON */ }
    return "HTTP " + r.status + (text ? ": " + text.slice(0, 300) : "");
  }

  /* Reads an SSE body, calling onData with each parsed data: object until
   * [DONE] or the end of the stream. */
  async function readSSE(body, onData) {
    const reader = body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += dec.decode(value, { stream: true }).replace(/\r\n/g, "\n");
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          for (const line of block.split("\n")) {
            if (!line.startsWith("data:")) continue;
            const data = line.slice(5).trim();
            if (data === "[DONE]") return;
            onData(JSON.parse(data));
          }
        }
      }
    } catch (e) { /* an error event or bad JSON: hang up, so the server cancels */
      reader.cancel().catch(() => {});
      throw e;
    }
  }

  /* ---------- models ---------- */

  async function loadModels() {
    let r;
    try {
      r = await api("v1/models");
    } catch (e) {
      return;
    }
    if (!r.ok) return;
    const j = await r.json().catch(() => null);
    const ids = (j?.data || []).map((m) => m.id).filter((id) => typeof id === "string");
    const sel = $("model");
    const have = Array.from(sel.options, (o) => o.value).filter((v) => v);
    if (ids.length && ids.join("\n") === have.join("\n")) return; /* unchanged: keep it open */
    const want = sel.value || loadJSON(LS.settings, {}).model;
    sel.textContent = "";
    for (const id of ids) {
      const o = document.createElement("option");
      o.value = o.textContent = id;
      sel.appendChild(o);
    }
    if (!ids.length) { /* a server without --model whose store is empty */
      const o = document.createElement("option");
      o.value = "";
      o.textContent = "no model on the server (m40-llm pull NAME)";
      sel.appendChild(o);
    }
    if (ids.includes(want)) sel.value = want;
    state.modelsLoaded = ids.length > 0;
  }

  /* ---------- status panel ---------- */

  function parseMetrics(text) {
    const out = [];
    for (const line of text.split("\n")) {
      if (!line || line[0] === "#") continue;
      const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const labels = {};
      for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
      out.push({ name: m[1].replace(/^m40llm:/, ""), labels, value: parseFloat(m[3]) });
    }
    return out;
  }

  function statusDot(cls, title) {
    const d = $("status-dot");
    d.className = "dot " + cls;
    d.title = title;
  }

  function fmtBytes(b) {
    return b >= 1 << 30 ? (b / (1 << 30)).toFixed(1) + " GiB" : (b / (1 << 20)).toFixed(0) + " MiB";
  }

  function renderStatus(rows, gpus) {
    const dl = $("status-body");
    dl.textContent = "";
    for (const [k, v] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      dd.dataset.key = k;
      dl.append(dt, dd);
    }
    const g = $("gpus");
    g.textContent = "";
    for (const gpu of gpus) {
      const div = document.createElement("div");
      div.className = "gpu" + (gpu.hot ? " hot" : "");
      div.textContent = gpu.text;
      g.appendChild(div);
    }
  }

  async function pollStatus() {
    if (state.polling || document.hidden) return;
    state.polling = true;
    try {
      const [pr, mr] = await Promise.all([api("props"), api("metrics")]);
      const props = pr.ok ? await pr.json().catch(() => null) : null;
      const why = pr.ok ? "" : (await errorText(pr)).replace(/^HTTP \d+: /, "");
      const ms = mr.ok ? parseMetrics(await mr.text()) : [];
      const one = (n) => ms.find((s) => s.name === n)?.value;
      const rows = [];
      if (pr.status === 503) rows.push(["state", "loading the model…"]);
      else if (!props) rows.push(["state", why]); /* e.g. no model loaded yet */
      else rows.push(["state", "ready"]);
      if (props) {
        rows.push(["model", props.model + (props.quantization ? " (" + props.quantization + ")" : "")]);
        rows.push(["backend", props.backend === "cuda" ? "cuda:" + props.device : props.backend || "?"]);
        rows.push(["context", props.n_ctx + " tokens per sequence, " + props.max_seqs + " sequences"]);
      }
      if (one("num_requests_running") !== undefined) {
        rows.push(["requests", one("num_requests_running") + " running, " +
                   one("num_requests_waiting") + " waiting"]);
        const used = one("kv_blocks_used"), total = one("kv_blocks_total");
        rows.push(["KV cache", (100 * (one("kv_cache_usage_perc") || 0)).toFixed(1) + " % (" +
                   used + " / " + total + " blocks)"]);
        rows.push(["tokens", one("prompt_tokens_total") + " prompt, " +
                   one("generation_tokens_total") + " generated"]);
      }
      const gpus = [];
      const byGpu = new Map();
      for (const s of ms) {
        if (!s.name.startsWith("gpu_") || s.labels.gpu === undefined) continue;
        if (!byGpu.has(s.labels.gpu)) byGpu.set(s.labels.gpu, {});
        byGpu.get(s.labels.gpu)[s.name] = s.value;
      }
      for (const [id, g] of byGpu) {
        const parts = ["GPU " + id];
        if (g.gpu_memory_total_bytes)
          parts.push(fmtBytes(g.gpu_memory_used_bytes) + " / " + fmtBytes(g.gpu_memory_total_bytes));
        if (g.gpu_temperature_celsius !== undefined) parts.push(g.gpu_temperature_celsius + " °C");
        if (g.gpu_power_watts !== undefined) parts.push(g.gpu_power_watts.toFixed(0) + " W");
        if (g.gpu_sm_clock_mhz !== undefined) parts.push(g.gpu_sm_clock_mhz + " MHz");
        gpus.push({ text: parts.join(" · "), hot: (g.gpu_temperature_celsius || 0) >= 85 });
      }
      if (!gpus.length && props) rows.push(["GPU", "none: running on the CPU"]);
      renderStatus(rows, gpus);
      statusDot(props ? "ok" : "warn", props ? "ready" : "not ready");
      if (!state.modelsLoaded) loadModels();
    } catch (e) {
      if (e instanceof DownError) renderStatus([["state", "unreachable"]], []);
    } finally {
      state.polling = false;
    }
  }

  /* ---------- chats ---------- */

  /* message -> its element (outside the message, so it is not saved) */
  const msgEls = new WeakMap();
  const chatById = (id) => state.chats.find((c) => c.id === id) || null;

  function newChat() {
    const cur = chatById(state.current);
    if (cur && cur.messages.length === 0) return cur; /* reuse an empty one */
    const now = Date.now();
    const c = { id: now.toString(36) + Math.random().toString(36).slice(2, 8),
                title: "New chat", created: now, updated: now, messages: [] };
    state.chats.unshift(c);
    state.current = c.id;
    saveChats();
    return c;
  }

  function renderList() {
    const ul = $("chat-list");
    ul.textContent = "";
    for (const c of state.chats) {
      const li = document.createElement("li");
      if (c.id === state.current) li.className = "current";
      const open = document.createElement("button");
      open.type = "button";
      open.className = "open";
      open.textContent = c.title || "New chat";
      open.title = new Date(c.updated).toLocaleString();
      open.addEventListener("click", () => {
        state.current = c.id;
        saveChats();
        renderAll();
      });
      const del = document.createElement("button");
      del.type = "button";
      del.className = "delete";
      del.textContent = "×";
      del.title = "Delete this chat";
      del.setAttribute("aria-label", "Delete chat " + (c.title || ""));
      del.disabled = !!(state.busy && state.busy.chat === c);
      del.addEventListener("click", () => {
        state.chats = state.chats.filter((x) => x !== c);
        if (state.current === c.id) state.current = state.chats[0]?.id || null;
        saveChats();
        renderAll();
      });
      li.append(open, del);
      ul.appendChild(li);
    }
  }

  function fmtStats(s) {
    const parts = [];
    if (s.ttft !== null) parts.push("first token " + (s.ttft / 1000).toFixed(2) + " s");
    if (s.promptTokens !== null) {
      let p = "prompt " + s.promptTokens + " tok";
      if (s.cached) p += " (" + s.cached + " cached)";
      if (s.promptRate !== null) p += ", " + s.promptRate.toFixed(1) + " tok/s";
      parts.push(p);
    }
    let g = (s.approx ? "≈" : "") + s.genTokens + " tok generated";
    if (s.genRate !== null) g += ", " + s.genRate.toFixed(1) + " tok/s";
    parts.push(g);
    parts.push(s.finish);
    return parts.join(" · ");
  }

  function messageEl(m) {
    const div = document.createElement("div");
    div.className = "msg " + m.role;
    const who = document.createElement("div");
    who.className = "who";
    who.textContent = m.role === "user" ? "You" : m.model || "Assistant";
    const body = document.createElement("div");
    body.className = "content";
    if (m.role === "user") {
      body.classList.add("plain");
      body.textContent = m.content;
    } else {
      M40Render.into(body, m.content, !!m.stats);
    }
    div.append(who, body);
    if (m.role === "assistant") {
      const st = document.createElement("div");
      st.className = "stats";
      if (m.stats) st.textContent = fmtStats(m.stats);
      else if (!m.error) st.textContent = "waiting for the first token…";
      div.appendChild(st);
      const err = document.createElement("div");
      err.className = "error";
      err.setAttribute("role", "status");
      err.textContent = m.error || "";
      err.hidden = !m.error;
      div.appendChild(err);
    }
    msgEls.set(m, div);
    return div;
  }

  function renderChat() {
    const box = $("messages");
    box.textContent = "";
    const c = chatById(state.current);
    const msgs = c ? c.messages : [];
    if (!msgs.length) {
      const p = document.createElement("p");
      p.id = "empty";
      p.className = "hint";
      p.textContent = "Ask something. Answers stream in as the model writes them.";
      box.appendChild(p);
      return;
    }
    for (const m of msgs) box.appendChild(messageEl(m));
    box.scrollTop = box.scrollHeight;
  }

  function renderAll() {
    renderList();
    renderChat();
  }

  /* ---------- sending ---------- */

  function setBusy(busy) {
    $("send").disabled = busy;
    $("stop").hidden = !busy;
    $("send").hidden = busy;
    document.body.classList.toggle("busy", busy);
  }

  function requestMessages(chat, system, upTo) {
    const out = [];
    if (system.trim()) out.push({ role: "system", content: system });
    for (const m of chat.messages.slice(0, upTo)) {
      if (m.role === "assistant" && !m.content) continue; /* failed answers */
      out.push({ role: m.role, content: m.content });
    }
    return out;
  }

  async function send(text) {
    if (state.busy || !text.trim()) return;
    const chat = chatById(state.current) || newChat();
    const s = settings();
    chat.messages.push({ role: "user", content: text });
    if (chat.title === "New chat") chat.title = text.trim().replace(/\s+/g, " ").slice(0, 60);
    const msg = { role: "assistant", content: "", model: s.model || "", stats: null, error: "" };
    chat.messages.push(msg);
    chat.updated = Date.now();
    saveChats();
    renderAll();

    const controller = new AbortController();
    state.busy = { controller, chat, msg };
    setBusy(true);
    renderList();
    const body = {
      messages: requestMessages(chat, s.system, chat.messages.length - 1),
      stream: true,
      stream_options: { include_usage: true },
    };
    if (s.model) body.model = s.model;
    if (s.temperature !== null) body.temperature = s.temperature;
    if (s.maxTokens !== null) body.max_tokens = s.maxTokens;

    const t0 = performance.now();
    let tFirst = null, tLast = null, nChunks = 0, usage = null, finish = null, lastRender = 0;
    let renderTimer = null;
    const draw = (final) => {
      lastRender = performance.now();
      if (renderTimer) clearTimeout(renderTimer);
      renderTimer = null;
      const el = msgEls.get(msg);
      if (!el || !el.isConnected) return; /* another chat is shown */
      const box = $("messages");
      const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
      M40Render.into(el.querySelector(".content"), msg.content, final);
      if (atEnd) box.scrollTop = box.scrollHeight;
    };
    const scheduleDraw = () => {
      const wait = RENDER_EVERY_MS - (performance.now() - lastRender);
      if (wait <= 0) draw(false);
      else if (!renderTimer) renderTimer = setTimeout(() => draw(false), wait);
    };
    try {
      const r = await api("v1/chat/completions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      if (!r.ok) throw new Error(await errorText(r));
      await readSSE(r.body, (ev) => {
        if (ev.error) throw new Error(ev.error.message || String(ev.error));
        if (ev.usage) usage = ev.usage;
        const ch = ev.choices && ev.choices[0];
        if (!ch) return;
        if (ch.finish_reason) finish = ch.finish_reason;
        const piece = ch.delta && ch.delta.content;
        if (piece) {
          const now = performance.now();
          if (tFirst === null) {
            tFirst = now;
            const el = msgEls.get(msg);
            if (el) el.querySelector(".stats").textContent = "streaming…";
          }
          tLast = now;
          nChunks++;
          msg.content += piece;
          scheduleDraw();
        }
      });
      if (!finish) finish = "ended early";
    } catch (e) {
      if (e.name === "AbortError") finish = "stopped";
      else if (e instanceof DownError)
        msg.error = "Cannot reach the server: it has stopped or the network is down.";
      else msg.error = e.message || String(e);
    } finally {
      if (renderTimer) clearTimeout(renderTimer);
      const ttft = tFirst === null ? null : tFirst - t0;
      const gen = usage ? usage.completion_tokens : nChunks;
      const cached = usage?.prompt_tokens_details?.cached_tokens || 0;
      const promptTokens = usage ? usage.prompt_tokens : null;
      msg.stats = msg.error && !msg.content ? null : {
        ttft,
        promptTokens,
        cached,
        promptRate: promptTokens !== null && ttft ? (promptTokens - cached) / (ttft / 1000) : null,
        genTokens: gen,
        approx: !usage,
        genRate: gen > 1 && tLast > tFirst ? (gen - 1) / ((tLast - tFirst) / 1000) : null,
        finish: finish || "error",
      };
      chat.updated = Date.now();
      state.busy = null;
      setBusy(false);
      saveChats();
      const el = msgEls.get(msg);
      if (el && el.isConnected) {
        draw(true);
        el.querySelector(".stats").textContent = msg.stats ? fmtStats(msg.stats) : "";
        const err = el.querySelector(".error");
        err.textContent = msg.error;
        err.hidden = !msg.error;
      }
      renderList();
      pollStatus(); /* the counters just changed */
    }
  }

  /* ---------- wiring ---------- */

  function init() {
    state.key = localStorage.getItem(LS.key) || "";
    loadSettings();
    loadChats();
    renderAll();

    $("composer").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const text = $("input").value;
      if (!text.trim() || state.busy) return;
      $("input").value = "";
      send(text);
    });
    $("input").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        $("composer").requestSubmit();
      }
    });
    $("stop").addEventListener("click", () => {
      if (state.busy) state.busy.controller.abort();
    });
    $("new-chat").addEventListener("click", () => {
      newChat();
      renderAll();
      $("input").focus();
    });
    $("toggle-system").addEventListener("click", () => {
      const box = $("system-box");
      box.hidden = !box.hidden;
      $("toggle-system").setAttribute("aria-expanded", String(!box.hidden));
      if (!box.hidden) $("system").focus();
    });
    /* models may be pulled or removed while the page is open */
    $("model").addEventListener("focus", loadModels);
    for (const id of ["model", "system", "temperature", "max-tokens"])
      $(id).addEventListener("change", saveSettings);
    /* the key dialog cannot be dismissed: requests wait for it */
    $("key-dialog").addEventListener("cancel", (ev) => ev.preventDefault());
    window.addEventListener("storage", (ev) => {
      if (ev.key === LS.key) state.key = ev.newValue || "";
    });

    loadModels();
    pollStatus();
    setInterval(pollStatus, STATUS_EVERY_MS);
    document.addEventListener("visibilitychange", pollStatus);
    $("input").focus();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
