// Knowledge editor helpers: a small YAML-subset front-matter parser/writer for the known keys (unknown
// keys are kept verbatim) and a tiny, safe markdown preview (text is escaped first; only our own tags
// are produced).
(function () {
  "use strict";

  const KNOWN = ["id", "title", "category", "tags", "keywords", "questions", "status", "updated"];
  const LISTS = new Set(["tags", "keywords", "questions"]);

  /** Splits a file into {front: string|null, body}. */
  function split(text) {
    const src = String(text || "").replace(/^\uFEFF/, "").replace(/\r\n?/g, "\n");
    if (!src.startsWith("---\n")) return { front: null, body: src };
    const end = src.indexOf("\n---", 3);
    if (end < 0) return { front: null, body: src };
    const after = src.indexOf("\n", end + 4);
    const closeLine = src.slice(end + 1, after < 0 ? src.length : after);
    if (closeLine.trim() !== "---") return { front: null, body: src };
    return { front: src.slice(4, end + 1), body: after < 0 ? "" : src.slice(after + 1).replace(/^\n/, "") };
  }

  function unquote(raw) {
    let v = raw.trim();
    if (v.startsWith('"')) {
      const close = findClosingDouble(v);
      const inner = v.slice(0, close + 1);
      try { return JSON.parse(inner); } catch (e) { return inner.slice(1, -1); }
    }
    if (v.startsWith("'")) {
      const m = /^'((?:[^']|'')*)'/.exec(v);
      return m ? m[1].replace(/''/g, "'") : v.slice(1);
    }
    const hash = v.search(/\s#/);
    if (hash >= 0) v = v.slice(0, hash).trim();
    return v;
  }
  function findClosingDouble(v) {
    for (let i = 1; i < v.length; i++) {
      if (v[i] === "\\") { i++; continue; }
      if (v[i] === '"') return i;
    }
    return v.length - 1;
  }
  /** Splits a flow list `[a, "b, c", 'd']` into items. */
  function flowItems(raw) {
    let v = raw.trim();
    const hash = v.lastIndexOf("]");
    v = v.slice(1, hash >= 0 ? hash : v.length);
    const items = [];
    let cur = "", quote = null;
    for (let i = 0; i < v.length; i++) {
      const c = v[i];
      if (quote) {
        cur += c;
        if (quote === '"' && c === "\\") { cur += v[++i] || ""; continue; }
        if (c === quote) { if (quote === "'" && v[i + 1] === "'") { cur += v[++i]; continue; } quote = null; }
        continue;
      }
      if (c === '"' || c === "'") { quote = c; cur += c; continue; }
      if (c === ",") { items.push(cur); cur = ""; continue; }
      cur += c;
    }
    if (cur.trim()) items.push(cur);
    return items.map(unquote).filter((s) => s !== "");
  }

  /**
   * Parses front matter into {fields: {id,title,...}, extra: [raw lines of unknown keys], present: Set}.
   * Lists come back as arrays of strings.
   */
  function parseFront(front) {
    const fields = {};
    const extra = [];
    const present = new Set();
    if (front == null) return { fields, extra, present };
    const lines = front.split("\n");
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      const m = /^([A-Za-z_][\w-]*)\s*:(.*)$/.exec(line);
      if (!m || !KNOWN.includes(m[1])) {
        // Unknown key (or stray line): keep it and its indented continuation verbatim.
        if (line.trim() === "" && !extra.length) { i++; continue; }
        const block = [line];
        i++;
        while (i < lines.length && (/^\s+\S/.test(lines[i]) || /^-\s/.test(lines[i]))) { block.push(lines[i]); i++; }
        if (block.join("").trim()) extra.push(...block);
        continue;
      }
      const key = m[1];
      const rest = m[2].trim();
      present.add(key);
      i++;
      if (LISTS.has(key)) {
        if (rest.startsWith("[")) {
          let flow = rest;
          while (!flow.includes("]") && i < lines.length) { flow += " " + lines[i].trim(); i++; }
          fields[key] = flowItems(flow);
        } else if (rest === "" || rest.startsWith("#")) {
          const items = [];
          while (i < lines.length && /^\s*-(\s|$)/.test(lines[i])) {
            items.push(unquote(lines[i].replace(/^\s*-\s?/, "")));
            i++;
          }
          fields[key] = items.filter((s) => s !== "");
        } else {
          fields[key] = [unquote(rest)].filter((s) => s !== "");
        }
      } else {
        fields[key] = unquote(rest);
      }
    }
    while (extra.length && !extra[extra.length - 1].trim()) extra.pop();
    return { fields, extra, present };
  }

  const RESERVED = /^(true|false|yes|no|on|off|null|~|y|n)$/i;
  function needsQuote(s) {
    return s === "" || /^[\s]|[\s]$/.test(s) || /^[-?:,\[\]{}#&*!|>'"%@`]/.test(s) || /: |\s#|:$/.test(s) ||
      RESERVED.test(s) || /^[-+]?(\d[\d_]*(\.\d*)?([eE][-+]?\d+)?|\.\d+|0x[0-9a-fA-F]+|\.inf|\.nan)$/.test(s) ||
      /^\d{4}-\d{2}-\d{2}/.test(s) || /[\x00-\x1f\u2028\u2029]/.test(s);
  }
  function scalar(s) { s = String(s); return needsQuote(s) ? JSON.stringify(s) : s; }
  function flowScalar(s) { s = String(s); return needsQuote(s) || /[,\[\]{}]/.test(s) ? JSON.stringify(s) : s; }

  /** Writes the front matter for the fields (in the usual order) followed by unknown keys, then the body. */
  function compose(fields, extra, body) {
    const out = ["---"];
    for (const key of KNOWN) {
      const v = fields[key];
      if (v == null) continue;
      if (LISTS.has(key)) {
        if (!v.length) continue;
        if (key === "questions") {
          out.push("questions:");
          for (const q of v) out.push("  - " + scalar(q));
        } else {
          out.push(key + ": [" + v.map(flowScalar).join(", ") + "]");
        }
      } else if (key === "updated") {
        out.push("updated: " + (/^\d{4}-\d{2}-\d{2}$/.test(v) ? v : scalar(v)));
      } else {
        if (String(v).trim() === "") continue;
        out.push(key + ": " + scalar(v));
      }
    }
    for (const line of extra || []) out.push(line);
    out.push("---");
    const text = String(body || "").replace(/\r\n?/g, "\n").replace(/^\n+/, "");
    return out.join("\n") + "\n\n" + text + (text.endsWith("\n") ? "" : "\n");
  }

  // ---------- markdown preview (subset) ----------
  const esc = (s) => window.kefu.escape(s);

  function inline(text) {
    // text is raw; escape first, then add our own tags on the escaped string.
    let s = esc(text);
    const codes = [];
    s = s.replace(/`([^`]+)`/g, (_, c) => { codes.push(c); return "\u0000" + (codes.length - 1) + "\u0000"; });
    s = s.replace(/!\[([^\]]*)\]\(([^)\s]+)\)/g, (_, alt, url) => "<span class=\"md-img\">[图片] " + alt + "</span>");
    s = s.replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, (_, label, url) => {
      const u = url.replace(/&amp;/g, "&");
      return /^(https?:\/\/|\/|#|mailto:)/i.test(u) ? "<a href=\"" + esc(u) + "\" target=\"_blank\" rel=\"noopener noreferrer\">" + label + "</a>" : label;
    });
    s = s.replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>").replace(/__([^_]+)__/g, "<strong>$1</strong>");
    s = s.replace(/(^|[^*])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>");
    s = s.replace(/~~([^~]+)~~/g, "<del>$1</del>");
    s = s.replace(/\u0000(\d+)\u0000/g, (_, n) => "<code>" + codes[Number(n)] + "</code>");
    return s;
  }

  /** Renders markdown to HTML built only from escaped text and a fixed set of tags. */
  function render(md) {
    const lines = String(md || "").replace(/\r\n?/g, "\n").split("\n");
    const out = [];
    let i = 0;
    let para = [];
    const flush = () => { if (para.length) { out.push("<p>" + para.map(inline).join("<br>") + "</p>"); para = []; } };
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if (/^```/.test(line)) {
        flush();
        const code = [];
        i++;
        while (i < lines.length && !/^```/.test(lines[i])) code.push(lines[i++]);
        i++;
        out.push("<pre><code>" + esc(code.join("\n")) + "</code></pre>");
        continue;
      }
      if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
        flush();
        const n = m[1].length;
        out.push("<h" + n + ">" + inline(m[2].replace(/\s+#+\s*$/, "")) + "</h" + n + ">");
        i++;
        continue;
      }
      if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) { flush(); out.push("<hr>"); i++; continue; }
      if (/^>\s?/.test(line)) {
        flush();
        const quote = [];
        while (i < lines.length && /^>\s?/.test(lines[i])) quote.push(lines[i++].replace(/^>\s?/, ""));
        out.push("<blockquote>" + render(quote.join("\n")) + "</blockquote>");
        continue;
      }
      if (/^\s*([-*+]|\d+[.)])\s+/.test(line)) {
        flush();
        const ordered = /^\s*\d+[.)]\s+/.test(line);
        const items = [];
        while (i < lines.length && /^\s*([-*+]|\d+[.)])\s+/.test(lines[i])) {
          let item = lines[i].replace(/^\s*([-*+]|\d+[.)])\s+/, "");
          i++;
          while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !/^\s*([-*+]|\d+[.)])\s+/.test(lines[i])) item += " " + lines[i++].trim();
          items.push("<li>" + inline(item) + "</li>");
        }
        out.push((ordered ? "<ol>" : "<ul>") + items.join("") + (ordered ? "</ol>" : "</ul>"));
        continue;
      }
      if (/^\|.*\|\s*$/.test(line) && i + 1 < lines.length && /^\|?\s*:?-{2,}/.test(lines[i + 1])) {
        flush();
        const cells = (l) => l.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
        const head = cells(line);
        i += 2;
        const rows = [];
        while (i < lines.length && /^\|.*\|\s*$/.test(lines[i])) rows.push(cells(lines[i++]));
        out.push("<table><thead><tr>" + head.map((c) => "<th>" + inline(c) + "</th>").join("") + "</tr></thead><tbody>" +
          rows.map((r) => "<tr>" + r.map((c) => "<td>" + inline(c) + "</td>").join("") + "</tr>").join("") + "</tbody></table>");
        continue;
      }
      if (!line.trim()) { flush(); i++; continue; }
      para.push(line);
      i++;
    }
    flush();
    return out.join("\n");
  }

  window.kefuEditorMd = { split, parseFront, compose, render, KNOWN };
})();
