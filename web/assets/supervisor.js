// Supervisor view (/supervisor): live queue per skill group, agents with presence and load, conversations
// in progress with a read-only peek, team and group statistics. Polls every 5 seconds.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const el = (...args) => window.kefu.el(...args);
  const api = (method, path, body) => window.kefu.api(method, path, body);
  const POLL_MS = 5000;

  const ERROR_TEXT = {
    forbidden: "你没有权限执行此操作",
    session_expired: "登录已过期，请重新登录",
    unauthenticated: "请先登录",
    internal: "服务器开小差了，请稍后再试",
    invalid_input: "填写的内容不符合要求，请检查后重试",
    visitor_not_found: "访客不存在",
    visitor_in_conversation: "该访客正在对话中，无需邀请",
    block_not_found: "该黑名单记录不存在或已解除",
    csrf_failed: "页面已失效，请刷新后重试",
  };
  const PRESENCE = { online: "在线", busy: "忙碌", away: "离开", offline: "离线" };
  const CHANNEL_TEXT = { web: "网页", app: "App", wechat: "微信", api: "API 渠道", wechat_official: "微信公众号", wecom_kf: "微信客服" };
  const channelText = (c) => CHANNEL_TEXT[c.channel || "web"] || c.channel;

  const state = {
    me: null,
    isAdmin: false,
    groups: new Map(),
    accounts: null, // admin only: id -> account
    agents: null, // GET /api/v1/agents: colleagues with presence and load
    blocks: [],
    removing: null, // the block entry awaiting confirmation
    queued: [],
    active: [],
    agentRows: [],
    firstMessages: new Map(), // conversation id -> preview text
    peek: null, // {id, lastSeq}
    timer: null,
    lastGroupsLoad: 0,
  };

  // Called with the error that sent us there, or none when `/me` shows something pending.
  function toLogin(err) {
    const resume = !err || err.code === "password_change_required" || err.code === "two_factor_setup_required";
    window.kefu.toLogin("/supervisor", Boolean(err && err.code === "session_expired"), resume);
  }
  function isAuthError(err) {
    return err && (err.status === 401 || err.code === "password_change_required" || err.code === "two_factor_setup_required");
  }
  const pad = (n) => String(n).padStart(2, "0");
  function clock(iso) { const d = new Date(iso); return isNaN(d) ? "—" : pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()); }
  function since(iso) {
    const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    if (s < 60) return s + " 秒";
    if (s < 3600) return Math.floor(s / 60) + " 分 " + pad(s % 60) + " 秒";
    return Math.floor(s / 3600) + " 时 " + pad(Math.floor((s % 3600) / 60)) + " 分";
  }
  function secs(v) {
    if (v == null) return "—";
    if (v < 60) return Math.round(v) + " 秒";
    return Math.floor(v / 60) + " 分 " + Math.round(v % 60) + " 秒";
  }
  const pct = (v) => (v == null ? "—" : Math.round(v * 100) + "%");
  const stars = (v) => (v == null ? "—" : v.toFixed(1) + " ★");
  const groupName = (id) => (id == null ? "不限技能组" : (state.groups.get(id) || { name: "技能组 " + id }).name);
  const visitorName = (c) => (c.identity && c.identity.name) || "访客 " + String(c.visitor_id || "").slice(-4);
  function agentName(id) {
    if (id == null) return "—";
    if (state.accounts && state.accounts.has(id)) return state.accounts.get(id).display_name;
    const ag = state.agents && state.agents.find((a) => a.id === id);
    if (ag) return ag.display_name;
    const row = state.agentRows.find((r) => r.id === id);
    return row ? row.name : "客服 #" + id;
  }
  function dayRange() {
    const v = $("stats-day").value;
    if (v === "last7") {
      const to = new Date();
      const from = new Date(Date.now() - 6 * 86400000);
      const f = (d) => d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
      return "from=" + f(from) + "&to=" + f(to);
    }
    return "day=" + v;
  }

  // ---------- loading ----------
  async function loadGroups() {
    const data = await api("GET", "/api/v1/groups");
    state.groups = new Map((data.groups || []).map((g) => [g.id, g]));
    state.lastGroupsLoad = Date.now();
  }
  async function listConversations(st) {
    const data = await api("GET", "/api/v1/conversations?state=" + st + "&per_page=100");
    return (data.conversations || []).map((x) => x.conversation);
  }

  async function poll() {
    clearTimeout(state.timer);
    try {
      if (Date.now() - state.lastGroupsLoad > 60000) await loadGroups();
      const range = dayRange();
      const [queued, active, byAgent, byGroup, deflection, accounts, agents, blocks] = await Promise.all([
        listConversations("queued"),
        listConversations("active"),
        api("GET", "/api/v1/stats/summary?by=agent&" + range).catch((e) => ({ error: e })),
        api("GET", "/api/v1/stats/summary?by=group&" + range).catch((e) => ({ error: e })),
        api("GET", "/api/v1/assist/deflection").catch(() => null),
        state.isAdmin ? api("GET", "/api/v1/admin/accounts").catch(() => null) : Promise.resolve(null),
        api("GET", "/api/v1/agents").catch(() => null),
        api("GET", "/api/v1/blocks").catch(() => null),
      ]);
      if (agents) state.agents = agents.agents || [];
      if (blocks) { state.blocks = blocks.blocks || []; renderBlocks(); }
      state.queued = queued.sort((a, b) => new Date(a.created) - new Date(b.created));
      state.active = active;
      if (accounts) state.accounts = new Map(accounts.accounts.map((a) => [a.id, a]));
      state.agentRows = byAgent.rows || [];
      renderCards(byAgent.team, deflection, byAgent.error);
      renderQueue();
      renderAgents();
      renderActive();
      renderGroupStats(byGroup);
      fetchPreviews();
      if (state.peek) refreshPeek();
      $("load-error").hidden = true;
      setLive(true);
    } catch (err) {
      if (isAuthError(err)) { toLogin(err); return; }
      setLive(false);
      const box = $("load-error");
      box.textContent = "刷新失败：" + (ERROR_TEXT[err.code] || (err.status ? "服务异常（" + err.status + "）" : "网络连接异常")) + "，稍后自动重试";
      box.hidden = false;
    }
    state.timer = setTimeout(poll, POLL_MS);
  }
  function setLive(ok) {
    $("live-dot").className = "dot " + (ok ? "online" : "busy");
    $("live-text").textContent = ok ? "实时 · 更新于 " + clock(new Date().toISOString()) : "连接中断，重试中…";
  }

  // ---------- cards ----------
  function renderCards(team, deflection, error) {
    const box = $("stats-cards");
    box.textContent = "";
    const t = team || {};
    const cards = [
      ["queued", "排队中", String(state.queued.length), "实时"],
      ["active", "进行中", String(state.active.length), "实时"],
      ["received", "接入会话", t.received != null ? String(t.received) : "—", "已接待 " + (t.accepted != null ? t.accepted : "—")],
      ["first-response", "平均首次响应", secs(t.avg_first_response_secs), "平均处理 " + secs(t.avg_handle_secs)],
      ["queue-wait", "平均排队时长", secs(t.avg_queue_wait_secs), "P90 " + secs(t.p90_queue_wait_secs)],
      ["satisfaction", "满意度", stars(t.satisfaction_avg), "参评率 " + pct(t.satisfaction_response_rate)],
      ["offline", "待处理留言", t.pending_offline_messages != null ? String(t.pending_offline_messages) : "—", "今日留言 " + (t.offline_messages != null ? t.offline_messages : "—")],
      ["abandoned", "排队放弃", t.abandoned != null ? String(t.abandoned) : "—", "待写小结 " + (t.pending_wrap_ups != null ? t.pending_wrap_ups : "—")],
    ];
    if (deflection) {
      const rate = deflection.shown ? deflection.resolved / deflection.shown : null;
      cards.push(["deflection", "自助解决率", pct(rate), "展示 " + deflection.shown + " · 解决 " + deflection.resolved + " · 转人工 " + deflection.escalated]);
    }
    cards.push(["adoption", "辅助回复采纳率", pct(t.suggestion_adoption_rate), "推荐被发送或编辑后发送"]);
    for (const [key, label, value, sub] of cards) {
      box.appendChild(el("div", { class: "sv-stat", "data-testid": "stat-" + key },
        el("div", { class: "sv-stat-label" }, label),
        el("div", { class: "sv-stat-value", "data-testid": "stat-" + key + "-value" }, value),
        el("div", { class: "sv-stat-sub" }, sub)));
    }
    if (error) box.appendChild(el("div", { class: "sv-stat sv-stat-error" }, "统计数据暂不可用：" + (ERROR_TEXT[error.code] || "请稍后重试")));
  }

  // ---------- queue ----------
  function renderQueue() {
    const panel = $("queue-panel");
    panel.textContent = "";
    $("queue-total").textContent = state.queued.length + " 人排队";
    const byGroup = new Map();
    for (const id of state.groups.keys()) byGroup.set(id, []);
    for (const c of state.queued) {
      const key = c.group == null ? null : c.group;
      if (!byGroup.has(key)) byGroup.set(key, []);
      byGroup.get(key).push(c);
    }
    for (const [gid, list] of byGroup) {
      if (gid === null && !list.length) continue;
      const body = el("ol", { class: "sv-queue-list" });
      list.forEach((c, i) => {
        body.appendChild(el("li", { class: "sv-queue-item", "data-testid": "queue-item", "data-conversation-id": c.id },
          el("span", { class: "sv-pos" }, String(i + 1)),
          el("div", { class: "grow" },
            el("div", { class: "row" }, el("strong", null, visitorName(c)), el("span", { class: "muted small" }, channelText(c))),
            el("div", { class: "muted small ellipsis", "data-testid": "queue-preview" }, state.firstMessages.get(c.id) || "…")),
          el("span", { class: "sv-wait" + (Date.now() - new Date(c.created) > 180000 ? " long" : ""), title: "已等待" }, since(c.created))));
      });
      if (!list.length) body.appendChild(el("li", { class: "muted small sv-queue-empty" }, "暂无排队"));
      panel.appendChild(el("div", { class: "sv-queue-group", "data-testid": "queue-group", "data-group-id": gid == null ? "" : String(gid) },
        el("div", { class: "sv-queue-group-head" },
          el("span", null, groupName(gid)),
          el("span", { class: "tag" + (list.length ? " orange" : ""), "data-testid": "queue-group-count" }, list.length + " 人")),
        body));
    }
    if (!panel.childNodes.length) panel.appendChild(el("div", { class: "muted sv-empty" }, "暂无技能组"));
  }

  /** The first visitor message of each queued or active conversation (fetched once, kept). */
  async function fetchPreviews() {
    const todo = state.queued.concat(state.active).filter((c) => !state.firstMessages.has(c.id)).slice(0, 10);
    for (const c of todo) {
      state.firstMessages.set(c.id, "");
      try {
        const data = await api("GET", "/api/v1/conversations/" + encodeURIComponent(c.id) + "/messages?after=0");
        const first = (data.messages || []).find((m) => m.kind === "visitor");
        state.firstMessages.set(c.id, first ? (first.body || "［文件］").slice(0, 100) : "");
      } catch (e) { /* leave it empty */ }
    }
    if (todo.length) { renderQueue(); renderActive(); }
  }

  // ---------- agents ----------
  function renderAgents() {
    const body = $("agents-body");
    body.textContent = "";
    const load = new Map();
    for (const c of state.active) if (c.agent != null) load.set(c.agent, (load.get(c.agent) || 0) + 1);
    let agents;
    if (state.agents) {
      agents = state.agents.map((a) => ({ id: a.id, name: a.display_name, presence: a.presence && a.presence.status, max: a.max_concurrent,
        groups: a.groups, avatar: a.avatar_url, active: a.active }));
      $("agents-note").textContent = "状态与接待量实时更新";
    } else if (state.accounts) {
      agents = Array.from(state.accounts.values())
        .filter((a) => !a.disabled && (a.roles || []).includes("agent"))
        .map((a) => ({ id: a.id, name: a.display_name, presence: a.presence && a.presence.status, max: a.max_concurrent, groups: a.groups, avatar: a.avatar_url }));
      $("agents-note").textContent = "状态与接待量实时更新";
    } else {
      agents = state.agentRows.map((r) => ({ id: r.id, name: r.name, presence: null, max: null, groups: null }));
      $("agents-note").textContent = "在线状态仅管理员可见；接待量按进行中的会话统计";
    }
    const order = { online: 0, busy: 1, away: 2, offline: 3 };
    const loadOf = (a) => (a.active != null ? a.active : load.get(a.id) || 0);
    agents.sort((a, b) => (order[a.presence] != null ? order[a.presence] : 4) - (order[b.presence] != null ? order[b.presence] : 4) || loadOf(b) - loadOf(a));
    const rows = new Map(state.agentRows.map((r) => [r.id, r.figures]));
    for (const a of agents) {
      const n = a.active != null ? a.active : load.get(a.id) || 0;
      const f = rows.get(a.id) || {};
      const bar = el("div", { class: "sv-load" }, el("div", { class: "sv-load-fill" }));
      if (a.max) {
        const ratio = Math.min(1, n / a.max);
        bar.firstChild.style.width = Math.round(ratio * 100) + "%";
        bar.firstChild.classList.toggle("full", n >= a.max);
      }
      const avatar = el("span", { class: "avatar" });
      if (a.avatar) avatar.appendChild(el("img", { src: a.avatar, alt: "", class: "avatar" }));
      else avatar.textContent = (a.name || "?").slice(0, 1);
      body.appendChild(el("tr", { "data-testid": "agent-row", "data-agent-id": String(a.id) },
        el("td", null, el("div", { class: "row" }, avatar, el("div", null, el("div", null, a.name),
          a.groups ? el("div", { class: "muted small" }, a.groups.map(groupName).join("、") || "未分组") : null))),
        el("td", { "data-testid": "agent-presence" }, a.presence
          ? el("span", { class: "row" }, el("span", { class: "dot " + a.presence }), PRESENCE[a.presence] || a.presence)
          : el("span", { class: "muted" }, "—")),
        el("td", { "data-testid": "agent-load" }, el("div", { class: "row", title: a.max ? "当前接待 " + n + " 个，上限 " + a.max + " 个" : "" }, a.max ? bar : null, el("span", null, n + (a.max ? " / " + a.max : "")))),
        el("td", null, f.accepted != null ? String(f.accepted) : "—"),
        el("td", null, secs(f.avg_first_response_secs)),
        el("td", null, stars(f.satisfaction_avg))));
    }
    if (!agents.length) body.appendChild(el("tr", null, el("td", { colspan: "6", class: "muted sv-empty" }, "暂无客服")));
  }

  // ---------- active conversations ----------
  function renderActive() {
    const body = $("active-body");
    body.textContent = "";
    $("active-total").textContent = state.active.length + " 个";
    const list = state.active.slice().sort((a, b) => new Date(a.assigned_at || a.created) - new Date(b.assigned_at || b.created));
    for (const c of list) {
      const preview = state.firstMessages.get(c.id);
      body.appendChild(el("tr", { "data-testid": "active-row", "data-conversation-id": c.id, class: state.peek && state.peek.id === c.id ? "selected" : null },
        el("td", null, el("div", null, el("strong", null, visitorName(c))), preview ? el("div", { class: "muted small ellipsis sv-preview" }, preview) : null),
        el("td", null, groupName(c.group)),
        el("td", null, agentName(c.agent), c.invited && c.invited.length ? el("span", { class: "muted small" }, " +" + c.invited.length + " 协助") : null,
          c.pending_transfer ? el("span", { class: "tag orange sv-inline-tag" }, "转接中") : null),
        el("td", { class: "small" }, el("div", null, channelText(c)), c.page ? el("div", { class: "muted ellipsis sv-page-url", title: c.page }, c.page) : null),
        el("td", { class: "small" }, clock(c.created)),
        el("td", { class: "small" }, since(c.assigned_at || c.created)),
        el("td", { class: "small" }, c.last_visitor_activity ? since(c.last_visitor_activity) + "前" : "—"),
        el("td", null, el("button", { type: "button", class: "btn sm", "data-testid": "peek-btn", onclick: () => openPeek(c) }, "查看"))));
    }
    if (!list.length) body.appendChild(el("tr", null, el("td", { colspan: "8", class: "muted sv-empty" }, "当前没有进行中的会话")));
  }

  // ---------- read-only peek ----------
  async function openPeek(c) {
    state.peek = { id: c.id, lastSeq: 0, conv: c };
    $("peek-title").textContent = visitorName(c) + " · " + groupName(c.group);
    $("peek-sub").textContent = "客服 " + agentName(c.agent) + " · 开始于 " + clock(c.created) + " · " + c.id;
    $("peek-messages").textContent = "";
    $("peek-panel").hidden = false;
    renderActive();
    await refreshPeek();
  }
  async function refreshPeek() {
    const p = state.peek;
    if (!p) return;
    try {
      let messages;
      if (p.lastSeq === 0) {
        const data = await api("GET", "/api/v1/conversations/" + encodeURIComponent(p.id) + "/transcript?format=json");
        messages = data.messages || [];
      } else {
        const data = await api("GET", "/api/v1/conversations/" + encodeURIComponent(p.id) + "/messages?after=" + p.lastSeq);
        messages = data.messages || [];
      }
      if (state.peek !== p) return;
      const box = $("peek-messages");
      const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
      for (const m of messages) {
        if (m.seq <= p.lastSeq) continue;
        p.lastSeq = m.seq;
        box.appendChild(peekMessage(m));
      }
      if (atBottom || messages.length) box.scrollTop = box.scrollHeight;
      if (!state.active.some((c) => c.id === p.id)) $("peek-sub").textContent = "会话已结束 · " + p.id;
    } catch (err) {
      if (isAuthError(err)) toLogin(err);
    }
  }
  function peekMessage(m) {
    const kindText = { visitor: "访客", agent: "客服", system: "系统", internal: "内部备注" }[m.kind] || m.kind;
    const att = (m.attachments || []).map((a) => el("a", {
      class: "sv-att", href: "/api/v1/conversations/" + encodeURIComponent(state.peek.id) + "/files/" + encodeURIComponent(a.hash),
      target: "_blank", rel: "noopener",
    }, window.kefu.icon("clip"), " " + a.name));
    return el("div", { class: "sv-msg sv-msg-" + m.kind, "data-testid": "peek-message", "data-seq": String(m.seq) },
      el("div", { class: "sv-msg-meta" }, el("span", { class: "sv-msg-kind" }, kindText), el("span", null, m.sender_name || ""), el("span", { class: "muted" }, clock(m.at))),
      m.body ? el("div", { class: "sv-msg-body" }, m.body) : null,
      att.length ? el("div", null, att) : null);
  }
  function closePeek() { state.peek = null; $("peek-panel").hidden = true; renderActive(); }

  // ---------- 黑名单 ----------
  function fullClock(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return isNaN(d) ? "—" : d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  function blockTarget(b) {
    return [b.visitor_id ? "访客 " + b.visitor_id : null, b.ip_range ? "IP " + b.ip_range : null].filter(Boolean).join(" + ") || "—";
  }
  async function loadBlocks() {
    try {
      const data = await api("GET", "/api/v1/blocks");
      state.blocks = data.blocks || [];
      renderBlocks();
    } catch (err) {
      if (isAuthError(err)) toLogin(err);
    }
  }
  function renderBlocks() {
    const body = $("blocks-body");
    const filter = $("blocks-filter").value;
    body.textContent = "";
    $("blocks-active-count").textContent = state.blocks.filter((b) => b.active).length + " 条生效";
    const list = state.blocks.filter((b) => filter === "all" || (filter === "active" ? b.active : !b.active));
    for (const b of list) {
      body.appendChild(el("tr", { "data-testid": "block-row", "data-block-id": String(b.id), "data-active": b.active ? "true" : "false" },
        el("td", { class: "mono small", "data-testid": "block-target" }, blockTarget(b)),
        el("td", { class: "sv-block-reason" }, b.reason),
        el("td", null, agentName(b.by)),
        el("td", { class: "small" }, fullClock(b.created)),
        el("td", { class: "small" }, b.expires ? fullClock(b.expires) : "永久"),
        el("td", null, el("span", { class: "tag " + (b.active ? "red" : ""), "data-testid": "block-status" }, b.active ? "生效中" : "已过期")),
        el("td", null, el("button", { type: "button", class: "btn sm", "data-testid": "block-remove", id: "block-remove-" + b.id,
          "aria-label": "解除 " + blockTarget(b), onclick: () => askRemove(b) }, b.active ? "解除" : "删除记录"))));
    }
    if (!list.length) body.appendChild(el("tr", null, el("td", { colspan: "7", class: "muted sv-empty" }, filter === "expired" ? "没有已过期的记录" : filter === "active" ? "黑名单为空" : "暂无记录")));
  }
  async function addBlock(event) {
    event.preventDefault();
    const err = $("block-error");
    const visitor = $("block-visitor").value.trim();
    const ip = $("block-ip").value.trim();
    const reason = $("block-reason").value.trim();
    const expires = $("block-expires").value;
    err.textContent = "";
    if (!visitor && !ip) { err.textContent = "请填写访客 ID 或 IP / 网段"; $("block-visitor").focus(); return; }
    if (ip && !/^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(ip)) { err.textContent = "IP 或网段格式不正确，例如 198.51.100.7 或 198.51.100.0/24"; $("block-ip").focus(); return; }
    if (!reason) { err.textContent = "请填写拉黑原因"; $("block-reason").focus(); return; }
    const body = { reason };
    if (visitor) body.visitor_id = visitor;
    if (ip) body.ip_range = ip;
    if (expires) {
      const d = new Date(expires);
      if (isNaN(d) || d <= new Date()) { err.textContent = "到期时间必须晚于现在"; $("block-expires").focus(); return; }
      body.expires = d.toISOString();
    }
    $("block-submit").disabled = true;
    try {
      await api("POST", "/api/v1/blocks", body);
      $("block-form").reset();
      $("blocks-filter").value = "active";
      await loadBlocks();
    } catch (e) {
      if (isAuthError(e)) { toLogin(e); return; }
      err.textContent = window.kefuText.withDetail(ERROR_TEXT[e.code] || "操作失败，请稍后重试", e);
    } finally {
      $("block-submit").disabled = false;
    }
  }
  function askRemove(b) {
    state.removing = b;
    $("block-remove-text").textContent = (b.active ? "解除后，" + blockTarget(b) + " 可以重新发起咨询。" : "将删除 " + blockTarget(b) + " 的过期记录。") + "原因：" + b.reason;
    $("block-remove-confirm").hidden = false;
    $("block-remove-no").focus();
  }
  function closeRemove() {
    const b = state.removing;
    state.removing = null;
    $("block-remove-confirm").hidden = true;
    const btn = b && $("block-remove-" + b.id);
    if (btn) btn.focus();
  }
  async function confirmRemove() {
    const b = state.removing;
    if (!b) return;
    $("block-remove-yes").disabled = true;
    try {
      await api("DELETE", "/api/v1/blocks/" + encodeURIComponent(b.id));
    } catch (e) {
      if (isAuthError(e)) { toLogin(e); return; }
      if (e.code !== "block_not_found") { $("block-error").textContent = ERROR_TEXT[e.code] || "操作失败，请稍后重试"; }
    } finally {
      $("block-remove-yes").disabled = false;
    }
    state.removing = null;
    $("block-remove-confirm").hidden = true;
    await loadBlocks();
    $("blocks-filter").focus();
  }

  // ---------- group statistics ----------
  function renderGroupStats(data) {
    const body = $("group-stats-body");
    body.textContent = "";
    if (!data || data.error) {
      body.appendChild(el("tr", null, el("td", { colspan: "12", class: "muted sv-empty" }, "技能组统计暂不可用")));
      return;
    }
    $("group-stats-range").textContent = (data.from === data.to ? data.from : data.from + " 至 " + data.to) + "（" + (data.time_zone || "") + "）";
    const rows = (data.rows || []).slice();
    if (data.team) rows.push({ id: "team", name: "全部", figures: data.team });
    for (const r of rows) {
      const f = r.figures || {};
      body.appendChild(el("tr", { "data-testid": "group-stats-row", class: r.id === "team" ? "sv-total" : null },
        el("td", null, r.name || groupName(r.id)),
        el("td", null, String(f.received != null ? f.received : "—")),
        el("td", null, String(f.accepted != null ? f.accepted : "—")),
        el("td", null, String(f.ended != null ? f.ended : "—")),
        el("td", null, String(f.abandoned != null ? f.abandoned : "—")),
        el("td", null, String(f.offline_messages != null ? f.offline_messages : "—")),
        el("td", null, secs(f.avg_queue_wait_secs)),
        el("td", null, secs(f.p90_queue_wait_secs)),
        el("td", null, secs(f.avg_first_response_secs)),
        el("td", null, secs(f.avg_handle_secs)),
        el("td", null, stars(f.satisfaction_avg)),
        el("td", null, String(f.pending_offline_messages != null ? f.pending_offline_messages : "—"))));
    }
  }

  // ---------- start ----------
  async function init() {
    let me;
    try {
      me = await api("GET", "/api/v1/me");
    } catch (err) {
      if (isAuthError(err)) toLogin(err);
      return;
    }
    if (me.must_change_password || (me.two_factor_required && !me.two_factor_enabled)) { toLogin(); return; }
    window.kefu.setCsrfToken(me.csrf_token);
    state.me = me;
    const roles = me.roles || [];
    state.isAdmin = roles.includes("admin");
    $("me-name").textContent = me.display_name || me.username;
    const av = $("me-avatar");
    if (me.avatar_url) av.appendChild(el("img", { src: me.avatar_url, alt: "", class: "avatar" }));
    else av.textContent = (me.display_name || me.username).slice(0, 1);
    $("nav-editor").hidden = !roles.some((r) => r === "editor" || r === "admin");
    $("nav-workbench").hidden = !roles.some((r) => r === "agent" || r === "supervisor" || r === "admin");
    if (!state.isAdmin && !roles.includes("supervisor")) { $("denied").hidden = false; return; }
    $("sv-main").hidden = false;
    $("refresh-btn").addEventListener("click", poll);
    $("stats-day").addEventListener("change", poll);
    $("peek-close").addEventListener("click", closePeek);
    document.addEventListener("keydown", (e) => {
      if (e.key !== "Escape") return;
      if (!$("block-remove-confirm").hidden) closeRemove();
      else closePeek();
    });
    $("block-form").addEventListener("submit", addBlock);
    $("blocks-filter").addEventListener("change", renderBlocks);
    $("block-remove-no").addEventListener("click", closeRemove);
    $("block-remove-yes").addEventListener("click", confirmRemove);
    $("logout-btn").addEventListener("click", async () => {
      try { await api("POST", "/api/v1/auth/logout"); } catch (err) { /* signed out anyway */ }
      location.replace("/login");
    });
    document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
    try { await loadGroups(); } catch (err) { if (isAuthError(err)) { toLogin(err); return; } }
    poll();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
