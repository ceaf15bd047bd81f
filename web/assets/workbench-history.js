// 历史记录: filters, full-text search, paging, transcript with matched messages, CSV / JSON export.
(function () {
  "use strict";
  const wb = window.wb;
  const el = kefu.el;
  const $ = (id) => document.getElementById(id);
  let page = 1;
  const PER_PAGE = 20;
  let loaded = false;
  let lastMatched = new Map(); // conversation id -> matched seqs
  let openId = null;

  function fillFilters() {
    const ag = $("hf-agent");
    wb.clear(ag).append(el("option", { value: "" }, "全部"));
    ag.append(el("option", { value: wb.me.id }, wb.me.display_name + "（我）"));
    for (const a of wb.colleagues.values()) if (a.id !== wb.me.id) ag.append(el("option", { value: a.id }, a.display_name));
    const gs = $("hf-group");
    wb.clear(gs).append(el("option", { value: "" }, "全部"));
    for (const g of wb.groups.values()) gs.append(el("option", { value: g.id }, g.name));
    const ps = $("hf-problem");
    wb.clear(ps).append(el("option", { value: "" }, "全部"));
    const parents = new Set();
    for (const p of wb.problemTypes) {
      const i = p.indexOf("/");
      if (i > 0 && !parents.has(p.slice(0, i))) { parents.add(p.slice(0, i)); ps.append(el("option", { value: p.slice(0, i) }, p.slice(0, i) + "（全部）")); }
      ps.append(el("option", { value: p }, i > 0 ? "　" + p.slice(i + 1) : p));
    }
  }

  function query() {
    const params = new URLSearchParams();
    const q = $("hf-q").value.trim();
    if (q) params.set("q", q);
    for (const [id, key] of [["hf-agent", "agent"], ["hf-group", "group"], ["hf-channel", "channel"], ["hf-state", "state"], ["hf-problem", "problem_type"]]) {
      if (!$(id)) continue;
      const v = $(id).value;
      if (v) params.set(key, v);
    }
    const from = $("hf-from").value, to = $("hf-to").value;
    if (from) params.set("from", new Date(from + "T00:00:00").toISOString());
    if (to) { const d = new Date(to + "T00:00:00"); d.setDate(d.getDate() + 1); params.set("to", d.toISOString()); }
    params.set("page", page);
    params.set("per_page", PER_PAGE);
    return params.toString();
  }

  async function load() {
    const body = wb.clear($("history-body"));
    body.append(el("tr", null, el("td", { colspan: 7, class: "empty" }, "加载中…")));
    try {
      const r = await wb.api("GET", "/api/v1/conversations?" + query());
      wb.clear(body);
      lastMatched = new Map();
      $("history-total").textContent = "共 " + r.total + " 条";
      if (!r.conversations.length) body.append(el("tr", null, el("td", { colspan: 7, class: "empty" }, "没有符合条件的会话")));
      for (const item of r.conversations) {
        const c = item.conversation;
        if (item.matched) lastMatched.set(c.id, item.matched);
        body.append(el("tr", { id: "history-row-" + c.id, "data-testid": "history-row", "data-conversation": c.id, class: openId === c.id ? "selected" : "", onclick: () => openTranscript(c.id) },
          el("td", null, el("div", null, wb.visitorName(c)),
            c.channel && c.channel !== "web" ? el("div", { class: "small muted", "data-testid": "history-channel" }, wb.CHANNEL_TEXT[c.channel] || c.channel) : null,
            item.matched ? el("div", { class: "small muted" }, "匹配 " + item.matched.length + " 条消息") : null),
          el("td", null, wb.agentName(c.agent)),
          el("td", null, c.group == null ? "—" : wb.groupName(c.group)),
          el("td", null, el("span", { class: "tag " + (wb.STATE_TAG[c.state] || "") }, wb.STATE_TEXT[c.state] || c.state)),
          el("td", null, c.wrap_up ? c.wrap_up.problem_type : el("span", { class: "muted" }, c.state === "ended" ? "未小结" : "—")),
          el("td", null, c.rating ? el("span", { title: c.rating.comment || "" }, "★".repeat(c.rating.stars)) : el("span", { class: "muted" }, "—")),
          el("td", { class: "nowrap" }, wb.fmtDateTime(c.created))));
      }
      const pages = Math.max(1, Math.ceil(r.total / PER_PAGE));
      $("history-page-info").textContent = "第 " + page + " / " + pages + " 页";
      $("history-prev").disabled = page <= 1;
      $("history-next").disabled = page >= pages;
    } catch (e) {
      wb.clear(body).append(el("tr", null, el("td", { colspan: 7, class: "empty" }, wb.errorText(e))));
    }
  }

  async function openTranscript(id) {
    openId = id;
    for (const tr of document.querySelectorAll("#history-body tr")) tr.classList.toggle("selected", tr.dataset.conversation === id);
    $("transcript-card").hidden = false;
    const box = wb.clear($("transcript"));
    box.append(el("div", { class: "empty" }, "加载中…"));
    const base = "/api/v1/conversations/" + encodeURIComponent(id) + "/transcript";
    $("transcript-csv").href = base + "?format=csv";
    $("transcript-csv").setAttribute("download", id + ".csv");
    $("transcript-json").href = base + "?format=json";
    $("transcript-json").setAttribute("download", id + ".json");
    try {
      const r = await wb.api("GET", base + "?format=json");
      const c = r.conversation;
      $("transcript-title").textContent = wb.visitorName(c) + " · " + wb.fmtDateTime(c.created);
      const meta = wb.clear($("transcript-meta"));
      const kv = (k, v) => (v ? [el("dt", null, k), el("dd", null, v)] : null);
      meta.append(el("dl", { class: "kv" },
        kv("会话 ID", c.id), kv("状态", wb.STATE_TEXT[c.state]), kv("客服", wb.agentName(c.agent)), kv("技能组", c.group == null ? "" : wb.groupName(c.group)),
        kv("渠道", wb.CHANNEL_TEXT[c.channel] || c.channel), kv("页面", c.page),
        kv("结束", c.ended_at ? wb.fmtDateTime(c.ended_at) + ({ visitor: "（访客结束）", agent: "（客服结束）", idle: "（超时结束）" }[c.ended_by] || "") : ""),
        kv("小结", c.wrap_up ? c.wrap_up.problem_type + (c.wrap_up.resolution ? "：" + c.wrap_up.resolution : "") + (c.wrap_up.tags.length ? "（" + c.wrap_up.tags.join("、") + "）" : "") : ""),
        kv("评价", c.rating ? "★".repeat(c.rating.stars) + (c.rating.comment ? " " + c.rating.comment : "") : "")));
      wb.clear(box);
      const matched = new Set(lastMatched.get(id) || []);
      if (!r.messages.length) box.append(el("div", { class: "empty" }, "没有消息"));
      let first = null;
      for (const m of r.messages) {
        const node = wb.renderMessage(m, c.id, { static: true, matched: matched.has(m.seq) });
        if (matched.has(m.seq) && !first) first = node;
        box.append(node);
      }
      if (first) first.scrollIntoView({ block: "center" });
    } catch (e) {
      wb.clear(box).append(el("div", { class: "empty" }, wb.errorText(e)));
    }
  }

  wb.onReady(() => {
    $("history-filters").addEventListener("submit", (ev) => { ev.preventDefault(); page = 1; load(); });
    $("hf-reset").addEventListener("click", () => { $("history-filters").reset(); page = 1; load(); });
    $("history-prev").addEventListener("click", () => { if (page > 1) { page--; load(); } });
    $("history-next").addEventListener("click", () => { page++; load(); });
    $("transcript-close").addEventListener("click", () => { $("transcript-card").hidden = true; openId = null; });
  });
  wb.views.history = {
    show() {
      if (!loaded) { loaded = true; fillFilters(); load(); }
      const m = /^#history\/(c_[A-Za-z0-9_-]+)/.exec(location.hash);
      if (m) openTranscript(m[1]);
    },
  };
})();
