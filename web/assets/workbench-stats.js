// 统计 (GET /api/v1/stats/summary, /api/v1/stats/hourly, /api/v1/assist/adoption, /api/v1/assist/deflection) with
// hand-written SVG charts; 访客列表 (visitors on the site now: invite to chat, block).
(function () {
  "use strict";
  const wb = window.wb;
  const el = kefu.el;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, ...children) {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v != null) n.setAttribute(k, v);
    for (const c of children) if (c != null) n.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return n;
  }

  const fmtSecs = (s) => (s == null ? "—" : wb.fmtDuration(Math.round(s)));
  const fmtPct = (r) => (r == null ? "—" : (r * 100).toFixed(r >= 0.995 || r === 0 ? 0 : 1) + "%");
  const fmtNum = (n) => (n == null ? "—" : String(n));
  const fmtStars = (n) => (n == null ? "—" : n.toFixed(1) + " 分");

  // figure key, label, formatter, whether lower is better
  const CARDS = [
    ["received", "接入会话", fmtNum, false],
    ["accepted", "接待会话", fmtNum, false],
    ["ended", "已结束", fmtNum, false],
    ["avg_first_response_secs", "平均首次响应", fmtSecs, true],
    ["avg_response_secs", "平均响应时长", fmtSecs, true],
    ["avg_handle_secs", "平均处理时长", fmtSecs, true],
    ["avg_queue_wait_secs", "平均排队时长", fmtSecs, true],
    ["satisfaction_avg", "满意度", fmtStars, false],
    ["satisfaction_response_rate", "评价率", fmtPct, false],
    ["suggestion_adoption_rate", "推荐采纳率", fmtPct, false],
    ["transferred_in", "转入 / 转出", null, false],
    ["pending_wrap_ups", "待小结（当前）", fmtNum, true],
  ];

  let scope = null; // {kind: 'agent'|'team'|'group', id}
  const isLead = () => wb.hasRole("supervisor") || wb.hasRole("admin");

  function scopeSelect() {
    let sel = $("stats-scope");
    if (sel) return sel;
    sel = el("select", { id: "stats-scope", title: "统计范围" });
    sel.append(el("option", { value: "agent:" + wb.me.id }, "我的数据"));
    if (isLead()) {
      sel.append(el("option", { value: "team" }, "全团队"));
      for (const g of wb.groups.values()) sel.append(el("option", { value: "group:" + g.id }, "技能组：" + g.name));
      for (const label of ["web", "api", "wechat_official", "wecom_kf"]) sel.append(el("option", { value: "channel:" + label }, "渠道：" + (wb.CHANNEL_TEXT[label] || label)));
    }
    sel.addEventListener("change", load);
    $("stats-refresh").before(sel);
    return sel;
  }

  function pick(summary, sc) {
    if (!summary) return null;
    if (sc.kind === "team") return summary.team;
    const row = sc.kind === "channel" ? summary.rows.find((r) => r.channel === sc.id) : summary.rows.find((r) => r.id === sc.id);
    return row ? row.figures : null;
  }

  async function summary(day, by) {
    return wb.api("GET", "/api/v1/stats/summary?day=" + day + (by ? "&by=" + by : ""));
  }
  async function hourly(day, sc) {
    const q = sc.kind === "team" ? "scope=team" : sc.kind === "channel" ? "scope=channel&channel=" + encodeURIComponent(sc.id) : "scope=" + sc.kind + "&id=" + sc.id;
    return wb.api("GET", "/api/v1/stats/hourly?" + q + "&day=" + day);
  }

  async function load() {
    const v = scopeSelect().value;
    scope = v === "team" ? { kind: "team" } : v.startsWith("channel:") ? { kind: "channel", id: v.slice("channel:".length) } : { kind: v.split(":")[0], id: Number(v.split(":")[1]) };
    const by = scope.kind === "group" ? "group" : scope.kind === "channel" ? "channel" : null;
    $("stats-notice").hidden = true;
    try {
      const [t, y, ht, hy] = await Promise.all([summary("today", by), summary("yesterday", by), hourly("today", scope), hourly("yesterday", scope)]);
      $("stats-meta").textContent = "今日 " + t.from + " · 时区 " + t.time_zone + " · 与昨日对比";
      renderCards(pick(t, scope), pick(y, scope));
      renderHourly(ht.hours, hy.hours);
      if (isLead() && scope.kind === "team") renderRows(t, y);
      else { const r = $("stats-rows"); if (r) r.remove(); }
    } catch (e) {
      $("stats-notice").hidden = false;
      $("stats-notice").textContent = e.status === 404 ? "统计接口暂不可用（服务器版本较旧），请升级后刷新。" : "加载统计失败：" + wb.errorText(e);
      renderCards(null, null);
      renderHourly([], []);
    }
    renderAdoption();
    renderDeflection();
  }

  function renderCards(today, yest) {
    const box = wb.clear($("stats-cards"));
    for (const [key, label, fmt, lowerBetter] of CARDS) {
      let value, delta = null;
      if (key === "transferred_in") value = today ? today.transferred_in + " / " + today.transferred_out : "—";
      else {
        const a = today ? today[key] : null, b = yest ? yest[key] : null;
        value = fmt(a);
        if (a != null && b != null && key !== "pending_wrap_ups") {
          const diff = a - b;
          if (diff === 0) delta = el("div", { class: "delta muted" }, "与昨日持平");
          else {
            const good = lowerBetter ? diff < 0 : diff > 0;
            const txt = fmt === fmtPct ? Math.abs(diff * 100).toFixed(1) + " 个百分点" : fmt === fmtSecs ? fmtSecs(Math.abs(diff)) : fmt === fmtStars ? Math.abs(diff).toFixed(1) + " 分" : Math.abs(diff);
            delta = el("div", { class: "delta " + (good ? "up" : "down") }, (diff > 0 ? "▲ " : "▼ ") + txt + " 较昨日");
          }
        } else if (b != null && key !== "pending_wrap_ups") delta = el("div", { class: "delta muted" }, "昨日 " + fmt(b));
      }
      box.append(el("div", { class: "card stat", "data-testid": "stat-" + key, id: "stat-" + key },
        el("div", { class: "label" }, label), el("div", { class: "value" }, value), delta || el("div", { class: "delta muted" }, " ")));
    }
  }

  /** Line chart of conversations received per hour: today (blue, area) and yesterday (grey, dashed). */
  function renderHourly(today, yest) {
    const box = wb.clear($("chart-hourly"));
    const W = 720, H = 240, L = 36, R = 12, TOP = 12, B = 28;
    const series = (hours) => hours.map((h) => (h.figures && h.figures.received) || 0);
    const a = series(today), b = series(yest);
    const n = 24;
    const max = Math.max(4, ...a, ...b);
    const step = Math.ceil(max / 4);
    const top = step * 4;
    const x = (i) => L + (i * (W - L - R)) / (n - 1);
    const y = (v) => TOP + (H - TOP - B) * (1 - v / top);
    const chart = svg("svg", { class: "chart", viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img", "aria-label": "每小时会话量", "data-testid": "chart-hourly" });
    for (let i = 0; i <= 4; i++) {
      const v = step * i;
      chart.append(svg("line", { class: i ? "grid" : "axis", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      chart.append(svg("text", { class: "lbl", x: L - 6, y: y(v) + 4, "text-anchor": "end" }, v));
    }
    for (let i = 0; i < n; i += 3) chart.append(svg("text", { class: "lbl", x: x(i), y: H - 8, "text-anchor": "middle" }, String(i).padStart(2, "0") + ":00"));
    const path = (vals) => vals.slice(0, n).map((v, i) => (i ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1)).join(" ");
    if (b.length) chart.append(svg("path", { class: "yest", d: path(b) }));
    if (a.length) {
      // today: only the hours that have begun
      const idx = today.findIndex((h) => Date.parse(h.hour) > Date.now());
      const upto = idx === -1 ? a.slice(0, n) : a.slice(0, Math.max(1, idx));
      const last = upto.length - 1;
      chart.append(svg("path", { class: "area", d: path(upto) + " L" + x(last).toFixed(1) + " " + y(0) + " L" + x(0) + " " + y(0) + " Z" }));
      chart.append(svg("path", { class: "today", d: path(upto) }));
      upto.forEach((v, i) => { if (v) chart.append(svg("circle", { cx: x(i), cy: y(v), r: 3, fill: "#1677ff" }, svg("title", null, String(i).padStart(2, "0") + ":00 今日 " + v + " 个"))); });
    }
    box.append(chart);
    const sum = (s) => s.reduce((p, c) => p + c, 0);
    box.append(el("div", { class: "small muted" }, "今日累计 " + sum(a) + " 个，昨日全天 " + sum(b) + " 个"));
  }

  function renderRows(t, y) {
    let card = $("stats-rows");
    if (!card) {
      card = el("div", { class: "card", id: "stats-rows" });
      $("stats-deflection").closest(".card").before(card);
    }
    wb.clear(card);
    card.append(el("div", { class: "card-head" }, el("h3", null, "客服明细（今日）")));
    const ymap = new Map(y.rows.map((r) => [r.id, r.figures]));
    const tbl = el("table", { class: "table", "data-testid": "stats-agent-table" },
      el("thead", null, el("tr", null, ["客服", "接入", "接待", "结束", "转入/转出", "首次响应", "处理时长", "满意度", "采纳率", "待小结", "昨日接待"].map((h) => el("th", null, h)))));
    const body = el("tbody");
    for (const r of t.rows) {
      const f = r.figures;
      body.append(el("tr", null, el("td", null, r.name), el("td", null, f.received), el("td", null, f.accepted), el("td", null, f.ended),
        el("td", null, f.transferred_in + " / " + f.transferred_out), el("td", null, fmtSecs(f.avg_first_response_secs)), el("td", null, fmtSecs(f.avg_handle_secs)),
        el("td", null, fmtStars(f.satisfaction_avg)), el("td", null, fmtPct(f.suggestion_adoption_rate)), el("td", null, f.pending_wrap_ups),
        el("td", null, ymap.has(r.id) ? ymap.get(r.id).accepted : "—")));
    }
    tbl.append(body);
    card.append(el("div", { class: "table-wrap" }, tbl));
  }

  /** Horizontal bars: adoption rate of the most shown suggestions (supervisors), or my rate today vs yesterday. */
  async function renderAdoption() {
    const box = wb.clear($("chart-adoption"));
    let bars = [];
    if (isLead()) {
      try {
        const r = await wb.api("GET", "/api/v1/assist/adoption");
        // Items by their titles (an id only for one deleted since), the kind in the tooltip.
        bars = r.items.slice(0, 6).map((i) => ({ label: i.title || (i.kind === "article" ? "已删除的文章" : "已删除的快捷回复"), kind: i.kind === "article" ? "知识库文章" : "快捷回复", value: i.adoption_rate, note: i.shown + " 次展示" }));
      } catch (_) { bars = []; }
    }
    if (!bars.length) {
      try {
        const sc = scope || { kind: "agent", id: wb.me.id };
        const [t, y] = await Promise.all([summary("today"), summary("yesterday")]);
        const ft = pick(t, sc.kind === "group" ? { kind: "agent", id: wb.me.id } : sc), fy = pick(y, sc.kind === "group" ? { kind: "agent", id: wb.me.id } : sc);
        bars = [{ label: "今日", value: ft ? ft.suggestion_adoption_rate : null, note: "" }, { label: "昨日", value: fy ? fy.suggestion_adoption_rate : null, note: "", alt: true }];
      } catch (_) { /* nothing */ }
    }
    if (!bars.length) { box.append(el("div", { class: "empty" }, "暂无数据")); return; }
    const W = 360, rowH = 30, H = bars.length * rowH + 10, L = 110, R = 50;
    const chart = svg("svg", { class: "chart", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "推荐采纳率", "data-testid": "chart-adoption" });
    chart.style.height = H + "px";
    bars.forEach((b, i) => {
      const yy = 6 + i * rowH;
      const w = (W - L - R) * Math.max(0, Math.min(1, b.value || 0));
      chart.append(svg("text", { class: "lbl", x: L - 8, y: yy + 15, "text-anchor": "end", "data-testid": "chart-adoption-label", "data-title": b.label }, b.label.length > 8 ? b.label.slice(0, 7) + "…" : b.label));
      chart.append(svg("rect", { x: L, y: yy + 4, width: W - L - R, height: 14, rx: 3, fill: "#f2f3f5" }));
      chart.append(svg("rect", { class: "bar" + (b.alt ? " alt" : ""), x: L, y: yy + 4, width: Math.max(0, w), height: 14, rx: 3 }, svg("title", null, (b.kind ? b.kind + "「" + b.label + "」" : b.label) + "：" + fmtPct(b.value) + (b.note ? "（" + b.note + "）" : ""))));
      chart.append(svg("text", { class: "lbl", x: W - R + 6, y: yy + 15 }, fmtPct(b.value)));
    });
    box.append(chart);
    box.append(el("div", { class: "small muted" }, isLead() ? "采纳率 =（直接发送 + 修改后发送）/ 展示次数" : "推荐回复被直接发送或修改后发送的比例"));
  }

  async function renderDeflection() {
    const card = $("stats-deflection").closest(".card");
    if (!isLead()) { card.hidden = true; return; }
    const box = wb.clear($("stats-deflection"));
    try {
      const d = await wb.api("GET", "/api/v1/assist/deflection");
      const other = Math.max(0, d.shown - d.resolved - d.escalated);
      const total = Math.max(1, d.shown);
      const W = 720, H = 28;
      const chart = svg("svg", { class: "chart", viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", "data-testid": "chart-deflection" });
      chart.style.height = "28px";
      let x0 = 0;
      for (const [v, color, label] of [[d.resolved, "#00b42a", "已解决"], [d.escalated, "#ff7d00", "仍需人工"], [other, "#c9cdd4", "未反馈"]]) {
        const w = (W * v) / total;
        chart.append(svg("rect", { x: x0, y: 0, width: w, height: H, fill: color }, svg("title", null, label + " " + v)));
        x0 += w;
      }
      box.append(el("div", { class: "row", "data-testid": "deflection-figures" },
        el("span", null, "展示自助答案 ", el("b", null, d.shown), " 次"), el("span", { class: "tag green" }, "已解决 " + d.resolved),
        el("span", { class: "tag orange" }, "仍需人工 " + d.escalated), el("span", { class: "tag" }, "未反馈 " + other),
        el("span", { class: "spacer" }), el("span", null, "自助解决率 ", el("b", null, fmtPct(d.shown ? d.resolved / d.shown : null)))), chart);
    } catch (e) { box.append(el("div", { class: "empty" }, wb.errorText(e))); }
  }

  // ================= 访客列表 (GET /api/v1/visitors/online, every 5 s) =================
  const invitedNow = new Map(); // visitor id -> time we invited (until the list says so)
  let visitorsTimer = null;
  let visitorsLoading = false;
  const canBlock = () => wb.hasRole("supervisor") || wb.hasRole("admin");
  async function loadVisitors() {
    if (visitorsLoading) return;
    visitorsLoading = true;
    try {
      const r = await wb.api("GET", "/api/v1/visitors/online");
      $("visitors-notice").hidden = true;
      renderVisitors(r.visitors || []);
    } catch (e) {
      $("visitors-notice").hidden = false;
      $("visitors-notice").textContent = "访客列表刷新失败：" + wb.errorText(e) + "，稍后自动重试";
    } finally {
      visitorsLoading = false;
    }
  }
  function deskState(vid) {
    for (const item of wb.chat.queue.values()) if (item.conversation.visitor_id === vid) return { queued: item.conversation };
    for (const c of wb.chat.convs.values()) {
      if (c.conv.visitor_id === vid && (c.conv.state === "active" || c.conv.state === "queued")) return { open: c.conv };
    }
    return null;
  }
  function renderVisitors(list) {
    const body = $("visitors-body");
    // Keep the row that holds the keyboard focus in place: rebuild only when nothing inside is focused.
    const focusedId = body.contains(document.activeElement) ? document.activeElement.id : null;
    wb.clear(body);
    $("visitors-meta").textContent = "在线 " + list.length + " 位 · 每 5 秒刷新 · " + new Date().toLocaleTimeString("zh-CN", { hour12: false });
    if (!list.length) body.append(el("tr", null, el("td", { colspan: 7, class: "empty" }, "当前没有在线访客")));
    for (const o of list) {
      const v = o.visitor || {};
      const vid = v.id;
      const ident = v.identity;
      const name = (ident && ident.name) || "访客 " + String(vid || "").slice(-4);
      const page = o.current_page;
      const href = page && /^https?:\/\//i.test(page.url) ? page.url : null;
      const desk = deskState(vid);
      // The server knows every open conversation, also a colleague's: such a visitor is 对话中, and an
      // invitation would reach nobody.
      const chat = o.chat || null;
      const busy = !!(desk || chat);
      const queued = desk ? !!desk.queued : !!chat && chat.state === "queued";
      if (o.invited) invitedNow.delete(vid);
      const invited = o.invited || (invitedNow.has(vid) && Date.now() - invitedNow.get(vid) < 30000);
      const actions = el("div", { class: "row nowrap" });
      if (desk && desk.queued) {
        actions.append(el("button", { type: "button", class: "btn sm primary", id: "visitor-accept-" + vid, "data-testid": "visitor-accept", onclick: () => { location.hash = "#chat"; wb.chat.accept(desk.queued.id); } }, "接入"));
      } else if (desk && desk.open && wb.chat.convs.has(desk.open.id)) {
        actions.append(el("button", { type: "button", class: "btn sm", id: "visitor-open-" + vid, "data-testid": "visitor-open", onclick: () => { location.hash = "#chat"; wb.chat.select(desk.open.id); } }, "查看会话"));
      } else if (invited) {
        actions.append(el("span", { class: "tag blue", "data-testid": "visitor-invited" }, "已邀请"));
      } else if (!busy) {
        actions.append(el("button", { type: "button", class: "btn sm primary", id: "visitor-invite-" + vid, "data-testid": "visitor-invite", onclick: (ev) => inviteVisitor(vid, ev.currentTarget) }, "邀请对话"));
      }
      if (canBlock()) {
        actions.append(el("button", { type: "button", class: "btn sm danger ghost", id: "visitor-block-" + vid, "data-testid": "visitor-block", onclick: () => openBlock(v) }, "拉黑"));
      }
      body.append(el("tr", { "data-testid": "visitor-row", "data-visitor": vid, "data-invited": invited ? "true" : "false" },
        el("td", null, el("div", { class: "row" }, el("span", null, name), wb.identityBadge(ident), ident && ident.member_level ? el("span", { class: "tag" }, ident.member_level) : null),
          el("div", { class: "small muted mono" }, vid)),
        el("td", { class: "visitor-page" }, page
          ? [href ? el("a", { href, target: "_blank", rel: "noopener noreferrer", title: page.url, "data-testid": "visitor-page" }, page.title || page.url) : el("span", { "data-testid": "visitor-page", title: page.url }, page.title || page.url),
            el("div", { class: "small muted ellipsis", title: page.url }, page.url)]
          : el("span", { class: "muted" }, "—")),
        el("td", { "data-testid": "visitor-time" }, wb.fmtDuration(o.secs_on_site || 0)),
        el("td", { "data-testid": "visitor-location" }, wb.locationText(v.location), v.location && v.location.isp ? el("div", { class: "small muted" }, v.location.isp) : null),
        el("td", { "data-testid": "visitor-device" }, wb.clientText(v.client), el("div", { class: "small muted mono" }, v.ip || "")),
        el("td", null, el("span", { class: "tag " + (busy ? (queued ? "orange" : "green") : ""), "data-testid": "visitor-state", "data-state": busy ? (queued ? "queued" : "chatting") : "browsing" }, busy ? (queued ? "排队中" : "对话中") : "浏览中"),
          chat && chat.agent_name && !queued ? el("div", { class: "small", "data-testid": "visitor-chat-with" }, "与 " + chat.agent_name + (chat.agent === wb.me.id ? "（我）" : "") + " 对话中") : null,
          el("div", { class: "small muted" }, wb.CHANNEL_TEXT[v.channel] || v.channel || "")),
        el("td", null, actions)));
    }
    if (focusedId && $(focusedId)) $(focusedId).focus();
  }
  async function inviteVisitor(vid, button) {
    if (button) button.disabled = true;
    try {
      await wb.api("POST", "/api/v1/visitors/" + encodeURIComponent(vid) + "/invite", {});
      invitedNow.set(vid, Date.now());
      wb.toast("已邀请访客对话，访客页面将弹出邀请", "success");
      if (button) button.replaceWith(el("span", { class: "tag blue", "data-testid": "visitor-invited" }, "已邀请"));
    } catch (e) {
      if (button) button.disabled = false;
      wb.toast(wb.errorText(e, { invalid_input: "访客已离开网站或邀请内容不符合要求" }), "error");
    }
  }

  // ---- 拉黑 (supervisors, admins) ----
  let blockTarget = null;
  function openBlock(v) {
    blockTarget = v;
    $("block-visitor-text").textContent = ((v.identity && v.identity.name) || "访客") + " · " + v.id;
    $("block-ip-text").textContent = v.ip || "—";
    $("block-with-ip").checked = false;
    $("block-with-ip").disabled = !v.ip;
    $("block-reason").value = "";
    $("block-duration").value = "604800";
    $("block-error").textContent = "";
    wb.openDialog("dlg-block");
    $("block-reason").focus();
  }
  async function submitBlock() {
    const v = blockTarget;
    if (!v) return;
    const reason = $("block-reason").value.trim();
    if (!reason) { $("block-error").textContent = "请填写拉黑原因（访客看不到）"; return; }
    const body = { visitor_id: v.id, reason };
    if ($("block-with-ip").checked && v.ip) body.ip_range = v.ip;
    const secs = Number($("block-duration").value);
    if (secs) body.expires = new Date(Date.now() + secs * 1000).toISOString();
    $("block-submit").disabled = true;
    try {
      await wb.api("POST", "/api/v1/blocks", body);
      $("dlg-block").close();
      wb.toast("已将该访客加入黑名单", "success");
      loadVisitors();
    } catch (e) {
      $("block-error").textContent = wb.errorText(e, { invalid_input: "填写的内容不符合要求（原因不超过 500 字，IP 格式需正确）" });
    } finally {
      $("block-submit").disabled = false;
    }
  }

  wb.onReady(() => {
    $("stats-refresh").addEventListener("click", load);
    $("visitors-refresh").addEventListener("click", loadVisitors);
    $("block-submit").addEventListener("click", submitBlock);
  });
  wb.views.stats = { show() { load(); } };
  wb.views.visitors = {
    show() {
      loadVisitors();
      clearInterval(visitorsTimer);
      visitorsTimer = setInterval(() => {
        if (wb.currentView !== "visitors") { clearInterval(visitorsTimer); visitorsTimer = null; return; }
        if (!document.hidden) loadVisitors();
      }, 5000);
    },
  };
})();
