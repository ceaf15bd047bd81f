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
    toLogin,
    wsUrl,
    setCsrfToken(token) { csrfToken = token; },
    get csrfToken() { return csrfToken; },
  };
})();
