// Shared by every page: the JSON API with the session's CSRF token, and safe text output.
// Pages never build HTML from user text: use el() / text nodes, or kefu.escape() where markup is needed.
(function () {
  "use strict";

  let csrfToken = null;

  /** Error thrown for a non-2xx answer: carries the API's {code, message}. */
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message || code || ("HTTP " + status));
      this.status = status;
      this.code = code;
    }
  }

  /** Calls the API. body: object (sent as JSON), Blob/File (sent raw) or undefined. */
  async function api(method, path, body, options) {
    const headers = Object.assign({}, (options && options.headers) || {});
    if (csrfToken && method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken;
    let payload;
    if (body instanceof Blob) {
      payload = body;
      if (body.type && !headers["Content-Type"]) headers["Content-Type"] = body.type;
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("application/json") ? await response.json() : await response.text();
    if (!response.ok) {
      const code = data && data.code;
      const message = data && data.message;
      throw new ApiError(response.status, code, message);
    }
    return data;
  }

  function escape(text) {
    return String(text == null ? "" : text)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  /** el("div", {class: "x", onclick: fn}, child, "text", ...) builds DOM without HTML parsing. */
  function el(tag, attrs) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (let i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function append(node, child) {
    if (child == null || child === false) return;
    if (Array.isArray(child)) child.forEach((c) => append(node, c));
    else node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }

  /**
   * A search snippet as nodes. The API escapes everything but its <mark> tags (ammonia's clean_text,
   * which also writes spaces and newlines as &#32; and &#10;): split on the tags and let the browser
   * decode each piece as text. A textarea parses its content as text, so nothing in it becomes markup.
   */
  function snippetNodes(html) {
    const decoder = document.createElement("textarea");
    const out = [];
    let marked = false;
    for (const part of String(html).split(/(<mark>|<\/mark>)/)) {
      if (part === "<mark>") { marked = true; continue; }
      if (part === "</mark>") { marked = false; continue; }
      if (!part) continue;
      decoder.innerHTML = part;
      out.push(marked ? el("mark", null, decoder.value) : document.createTextNode(decoder.value));
    }
    return out;
  }

  /**
   * To the sign-in page, which comes back to `next` (a path of this site). `expired` says why;
   * `resume` continues a pending password change or two-step enrolment where the account stands
   * instead of asking for the password again.
   */
  function toLogin(next, expired, resume) {
    location.replace("/login?next=" + encodeURIComponent(next) + (expired ? "&reason=expired" : "") + (resume ? "&resume=1" : ""));
  }

  /** Length as the server counts it: characters (code points), not UTF-16 units. */
  function charCount(text) {
    return Array.from(text).length;
  }

  /**
   * Splits `text` into messages of at most `max` characters, cutting after a line break, else after a
   * sentence's end (。！？.!?；;), else after a comma or space, and only as a last resort inside a word.
   */
  function splitMessage(text, max) {
    const parts = [];
    let rest = Array.from(text.trim());
    while (rest.length > max) {
      const window = rest.slice(0, max);
      let cut = -1;
      for (const breaks of ["\n", "。！？.!?；;", "，,、 "]) {
        for (let i = window.length - 1; i > max / 2; i--) if (breaks.includes(window[i])) { cut = i + 1; break; }
        if (cut > 0) break;
      }
      if (cut <= 0) cut = max;
      const part = rest.slice(0, cut).join("").trim();
      if (part) parts.push(part);
      rest = rest.slice(cut);
    }
    const last = rest.join("").trim();
    if (last) parts.push(last);
    return parts;
  }

  // Icons are drawn as SVG, never as emoji: a machine without a colour emoji font showed boxes.
  const ICONS = {
    chat: ["M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z"],
    check: ["M22 11.08V12a10 10 0 1 1-5.93-9.14", "M22 4 12 14.01l-3-3"],
    smile: ["M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20z", "M8 14s1.5 2 4 2 4-2 4-2", "M9 9h.01M15 9h.01"],
    file: ["M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z", "M14 2v6h6"],
    clip: ["M21.44 11.05l-9.19 9.19a6 6 0 0 1-8.49-8.49l9.19-9.19a4 4 0 0 1 5.66 5.66l-9.2 9.19a2 2 0 0 1-2.83-2.83l8.49-8.48"],
    book: ["M4 19.5A2.5 2.5 0 0 1 6.5 17H20", "M6.5 2H20v20H6.5A2.5 2.5 0 0 1 4 19.5v-15A2.5 2.5 0 0 1 6.5 2z"],
  };
  /** An SVG icon (`chat`, `check`, `smile`, `file`, `clip`, `book`), hidden from screen readers. */
  function icon(name) {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    for (const [k, v] of Object.entries({ viewBox: "0 0 24 24", fill: "none", stroke: "currentColor", "stroke-width": "2", "stroke-linecap": "round", "stroke-linejoin": "round", "aria-hidden": "true", "data-icon": name })) svg.setAttribute(k, v);
    for (const d of ICONS[name] || []) { const p = document.createElementNS(NS, "path"); p.setAttribute("d", d); svg.appendChild(p); }
    return svg;
  }

  /**
   * Whether this machine draws emoji at all: an emoji drawn on a canvas differs from a character no
   * font has (the "tofu" box). Pages hide their emoji pickers otherwise instead of offering boxes.
   */
  let emojiDrawn = null;
  function emojiSupported() {
    if (emojiDrawn !== null) return emojiDrawn;
    try {
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = 32;
      const g = canvas.getContext("2d", { willReadFrequently: true });
      const draw = (text) => {
        g.clearRect(0, 0, 32, 32);
        g.font = '24px "Apple Color Emoji", "Segoe UI Emoji", "Noto Color Emoji", "Noto Emoji", sans-serif';
        g.textBaseline = "top";
        g.fillStyle = "#000";
        g.fillText(text, 0, 0);
        return g.getImageData(0, 0, 32, 32).data.join(",");
      };
      emojiDrawn = draw("\u{1F600}") !== draw("\u{10FFFD}");
    } catch (e) {
      emojiDrawn = true; // no canvas: assume the usual case
    }
    return emojiDrawn;
  }

  /** WebSocket URL on this origin. */
  function wsUrl(path) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  }

  window.kefu = {
    api,
    ApiError,
    escape,
    el,
    snippetNodes,
    charCount,
    splitMessage,
    icon,
    emojiSupported,
    toLogin,
    wsUrl,
    setCsrfToken(token) { csrfToken = token; },
    get csrfToken() { return csrfToken; },
  };
})();
