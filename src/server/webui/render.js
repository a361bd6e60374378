/* Markdown rendering of model output for the chat page (app.js calls
 * M40Render.into). Model output is untrusted text, so three layers keep
 * it from becoming markup:
 *  1. marked (Debian's libjs-marked) renders raw HTML found in the text as
 *     escaped text and images as their alt text (its renderer below);
 *  2. the HTML marked produced is parsed into an inert document (DOMParser:
 *     no scripts run, nothing is fetched) and rebuilt in the page from an
 *     allow-list of elements and attributes: no event handlers, no style,
 *     links only to http(s) or mailto;
 *  3. the page's Content-Security-Policy allows scripts, images and
 *     connections from its own origin only (src/server/webui.c).
 * Code blocks are coloured by highlight.js (Debian's libjs-highlight.js,
 * version 9 API), whose output goes through the same allow-list. Without
 * those libraries (a build with M40LLM_WEBUI_NO_VENDOR) text stays plain. */
"use strict";

const M40Render = (() => {
  /* tag -> attributes kept */
  const ALLOW = {
    P: [], BR: [], HR: [], EM: [], STRONG: [], DEL: [], S: [], B: [], I: [], SUB: [], SUP: [],
    CODE: ["class"], PRE: [], BLOCKQUOTE: [], UL: [], OL: ["start"], LI: [],
    H1: [], H2: [], H3: [], H4: [], H5: [], H6: [],
    TABLE: [], THEAD: [], TBODY: [], TR: [], TH: ["align"], TD: ["align"],
    A: ["href", "title"], SPAN: ["class"], INPUT: ["type", "checked", "disabled"],
  };
  /* dropped with their content; any other unknown element keeps its text */
  const DROP = new Set(["SCRIPT", "STYLE", "IFRAME", "OBJECT", "EMBED", "TEMPLATE", "NOSCRIPT",
                        "SVG", "MATH", "FORM", "TEXTAREA", "SELECT", "BUTTON", "LINK", "META",
                        "BASE", "FRAME", "FRAMESET", "AUDIO", "VIDEO", "IMG", "PICTURE", "SOURCE"]);
  /* languages tried when a code block names none (fewer = faster, fewer wrong guesses) */
  const AUTO_LANGS = ["python", "javascript", "typescript", "c", "cpp", "bash", "shell", "json",
                      "rust", "go", "java", "sql", "xml", "css", "yaml", "markdown"];

  const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);

  let markedReady = null; /* the configured marked.parse, once built */

  function markedParse() {
    if (markedReady !== null) return markedReady;
    const m = window.marked;
    if (!m || typeof m.parse !== "function" || typeof m.Renderer !== "function") {
      markedReady = false;
      return false;
    }
    const r = new m.Renderer();
    r.html = (html) => escapeHtml(html);
    r.image = (href, title, text) => escapeHtml(text ? "[image: " + text + "]" : "[image]");
    const opts = { renderer: r, gfm: true, breaks: false, mangle: false, headerIds: false };
    markedReady = (src) => m.parse(src, opts);
    return markedReady;
  }

  function safeHref(href) {
    try {
      const u = new URL(href, window.location.href);
      return ["http:", "https:", "mailto:"].includes(u.protocol) ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  /* copies src's children into dst (a node of the live document), keeping
   * only what ALLOW names */
  function copyClean(src, dst) {
    for (const n of Array.from(src.childNodes)) {
      if (n.nodeType === Node.TEXT_NODE) {
        dst.appendChild(document.createTextNode(n.data));
        continue;
      }
      if (n.nodeType !== Node.ELEMENT_NODE) continue;
      const tag = n.tagName.toUpperCase();
      if (DROP.has(tag)) continue;
      const keep = ALLOW[tag];
      if (!keep) { /* unknown: keep its text */
        copyClean(n, dst);
        continue;
      }
      if (tag === "A" && !safeHref(n.getAttribute("href") || "")) { /* a link to nowhere safe: its text */
        copyClean(n, dst);
        continue;
      }
      const el = document.createElement(tag.toLowerCase());
      for (const a of keep) {
        const v = n.getAttribute(a);
        if (v === null) continue;
        if (a === "href") {
          const h = safeHref(v);
          if (!h) continue;
          el.setAttribute("href", h);
          el.setAttribute("rel", "noopener noreferrer nofollow");
          el.setAttribute("target", "_blank");
        } else if (a === "class") {
          const cls = v.split(/\s+/).filter((c) => /^(hljs[\w-]*|language-[\w+#.-]+)$/.test(c));
          if (cls.length) el.setAttribute("class", cls.join(" "));
        } else if (a === "type") {
          if (v !== "checkbox") continue;
          el.setAttribute("type", "checkbox");
        } else if (a === "checked" || a === "disabled") {
          el.setAttribute(a, "");
        } else if (a === "start") {
          if (/^\d{1,9}$/.test(v)) el.setAttribute("start", v);
        } else if (a === "align") {
          if (/^(left|right|center)$/.test(v)) el.setAttribute("align", v);
        } else {
          el.setAttribute(a, v);
        }
      }
      if (tag === "INPUT") {
        if (el.getAttribute("type") !== "checkbox") continue;
        el.setAttribute("disabled", "");
      }
      copyClean(n, el);
      dst.appendChild(el);
    }
  }

  /* a fragment of the live document from an HTML string, allow-listed */
  function cleanFragment(html) {
    const doc = new DOMParser().parseFromString(html, "text/html");
    const frag = document.createDocumentFragment();
    copyClean(doc.body, frag);
    return frag;
  }

  let hljsConfigured = false;

  function highlight(code, final) {
    const hljs = window.hljs;
    if (!hljs || typeof hljs.highlight !== "function") return;
    if (!hljsConfigured && typeof hljs.configure === "function") {
      /* Debian ships (and patches) version 9, which logs an end-of-life
       * notice on first use; its output goes through the allow-list anyway */
      hljs.configure({ hideUpgradeWarningAcceptNoSupportOrSecurityUpdates: true });
      hljsConfigured = true;
    }
    const m = /(?:^|\s)language-([\w+#.-]+)/.exec(code.getAttribute("class") || "");
    const text = code.textContent;
    let res = null;
    try {
      if (m && hljs.getLanguage(m[1])) res = hljs.highlight(m[1], text, true);
      else if (final && text.length < 20000) /* guessing is slow: once, at the end */
        res = hljs.highlightAuto(text, AUTO_LANGS.filter((l) => hljs.getLanguage(l)));
    } catch (e) {
      res = null;
    }
    if (!res || typeof res.value !== "string") return;
    code.textContent = "";
    code.appendChild(cleanFragment(res.value));
    code.classList.add("hljs");
  }

  /* Renders text (markdown) into el, replacing its content. final: the
   * answer is complete (code blocks without a language get a guessed one). */
  function into(el, text, final) {
    const parse = markedParse();
    el.textContent = "";
    if (!parse) {
      el.classList.add("plain");
      el.textContent = text;
      return;
    }
    let html;
    try {
      html = parse(text);
    } catch (e) {
      el.classList.add("plain");
      el.textContent = text;
      return;
    }
    el.classList.remove("plain");
    el.appendChild(cleanFragment(html));
    for (const code of el.querySelectorAll("pre > code")) highlight(code, final);
  }

  return { into, escapeHtml, cleanFragment };
})();
