// 会话管理: queue, my conversations, pending work, the conversation, composer (emoji, files, `/` quick-reply
// picker, internal notes), suggestions, visitor panel, knowledge base, transfer / invite / end / wrap-up.
(function () {
  "use strict";
  const wb = window.wb;
  const el = kefu.el;
  const $ = (id) => document.getElementById(id);

  // From GET /api/v1/visitor/limits (loaded at start); until then the server decides.
  let UPLOAD_TYPES = null;
  let MAX_UPLOAD = null;
  let MAX_CHARS = 5000;
  const UNANSWERED_SECS = 120;
  const EMOJI = ["😀", "😁", "😂", "🤣", "😊", "😇", "🙂", "😉", "😍", "😘", "😋", "😎", "🤔", "😐", "😅", "😓", "😢", "😭", "😡", "😱",
    "😴", "🤝", "👍", "👎", "👌", "✌️", "👏", "🙏", "💪", "👋", "🌹", "❤️", "💔", "🎉", "🎁", "🔥", "⭐", "✅", "❌", "⚠️",
    "❓", "❗", "💯", "📦", "🚚", "💰", "🧾", "📱", "💻", "📞", "⏰", "📌", "🔍", "🙇", "🤗", "😳", "😤", "🥰", "🥺", "😬"];

  const convs = new Map();   // id -> conversation record (below)
  const queue = new Map();   // id -> QueueItem
  let pending = { wrap_ups: [], offline_messages: [] };
  let currentId = null;
  let lastCmd = null;        // the last command sent, to place `error` frames that carry no conversation
  let acceptingId = null;

  function record(conv) {
    let c = convs.get(conv.id);
    if (!c) {
      c = { conv, messages: [], unread: 0, role: null, typingUntil: 0, suggestions: [], suggestSeq: -1, suggestLoaded: false,
        sugActive: 0, pending: new Map(), draft: "", noteMode: false, attachments: [], usedReplies: new Set(), adopted: null,
        offer: null, highlightUntil: 0, visitorLeft: false, transferWaiting: false, lastAt: conv.created, history: null };
      convs.set(conv.id, c);
    } else {
      c.conv = Object.assign({}, c.conv, conv);
    }
    c.role = roleOf(c);
    return c;
  }
  function roleOf(c) {
    const me = wb.me.id;
    if (c.offer) return "offer";
    if (c.conv.agent === me) return "serving";
    if ((c.conv.invited || []).includes(me)) return "invited";
    if (c.conv.state === "queued" || c.conv.state === "offline_message") return "waiting";
    return "viewing";
  }
  const canServe = (c) => c.role === "serving" || (c.role === "viewing" && (wb.hasRole("admin") || wb.hasRole("supervisor")));
  const isOpen = (c) => c.conv.state === "active" || c.conv.state === "queued";

  function mergeMessages(c, list) {
    let added = false;
    for (const m of list || []) {
      if (m.agent != null) wb.noteColleague(m.agent, m.sender_name);
      if (m.client_key) {
        const local = c.messages.find((x) => x.client_key === m.client_key && x.seq == null);
        if (local) { Object.assign(local, m, { _pending: false, _status: local._status === "acked" ? "acked" : "stored" }); added = true; continue; }
      }
      if (c.messages.some((x) => x.seq === m.seq)) continue;
      c.messages.push(m);
      added = true;
    }
    c.messages.sort((a, b) => (a.seq == null ? 1e12 : a.seq) - (b.seq == null ? 1e12 : b.seq));
    const last = c.messages.filter((m) => m.seq != null).pop();
    if (last) c.lastAt = last.at;
    return added;
  }
  const maxSeq = (c) => c.messages.reduce((a, m) => (m.seq != null && m.seq > a ? m.seq : a), 0);
  const lastVisitorSeq = (c) => c.messages.reduce((a, m) => (m.kind === "visitor" && m.seq > a ? m.seq : a), 0);
  const newKey = () => "a-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 8);

  function send(frame) {
    lastCmd = { type: frame.type, conversation: frame.conversation, at: Date.now() };
    const ok = wb.send(frame);
    if (!ok && frame.type !== "send" && frame.type !== "note") wb.toast("连接已断开，正在重连，请稍后再试", "error");
    return ok;
  }
  /**
   * Sends a command with a fresh client_key and resolves with null on its `done` frame, or with the `error`
   * frame that echoes the key; {code: "disconnected"} when the socket is down, {code: "timeout"} after 15 s.
   */
  const commandWaiters = new Map(); // client_key -> {resolve, timer}
  let commandSeq = 0;
  function command(frame, ms) {
    commandSeq += 1;
    const key = "c-" + Date.now().toString(36) + "-" + commandSeq;
    const full = Object.assign({}, frame, { client_key: key });
    return new Promise((resolve) => {
      lastCmd = { type: frame.type, conversation: frame.conversation, at: Date.now() };
      if (!wb.send(full)) { resolve({ code: "disconnected" }); return; }
      const timer = setTimeout(() => { commandWaiters.delete(key); resolve({ code: "timeout" }); }, ms || 15000);
      commandWaiters.set(key, { resolve, timer });
    });
  }
  const COMMAND_TEXT = { disconnected: "连接已断开，正在重连，请稍后再试", timeout: "服务器未响应，请检查网络后重试" };
  const cmdErrorText = (e) => wb.errorText(e, COMMAND_TEXT);
  function settleCommand(f) {
    const w = f.client_key && commandWaiters.get(f.client_key);
    if (!w) return false;
    commandWaiters.delete(f.client_key);
    clearTimeout(w.timer);
    w.resolve(f.type === "done" ? null : f);
    return true;
  }

  // ================= left panel =================
  function renderLists() {
    const my = [...convs.values()].filter((c) => ["serving", "invited", "offer", "viewing"].includes(c.role));
    my.sort((a, b) => {
      const rank = (c) => (c.role === "offer" ? 0 : isOpen(c) ? 1 : 2);
      return rank(a) - rank(b) || String(b.lastAt).localeCompare(String(a.lastAt));
    });
    const list = wb.clear($("my-list"));
    if (!my.length) list.append(el("div", { class: "empty" }, "暂无接待中的会话"));
    for (const c of my) list.append(convItem(c));
    $("mine-count").textContent = my.length;

    const q = [...queue.values()].sort((a, b) => String(a.conversation.created).localeCompare(String(b.conversation.created)));
    const ql = wb.clear($("queue-list"));
    if (!q.length) ql.append(el("div", { class: "empty" }, "当前没有排队的访客"));
    for (const item of q) ql.append(queueItem(item));
    $("queue-count").textContent = q.length;
    $("queue-count").className = q.length ? "badge" : "badge grey";
    $("queue-total").textContent = q.length;

    const pl = wb.clear($("pending-list"));
    // Every unwritten wrap-up is listed, also while its ended chat is still open under 我的会话: the
    // badge counts exactly the rows shown.
    const pend = [...pending.offline_messages.map((c) => ({ c, kind: "offline" })), ...pending.wrap_ups.map((c) => ({ c, kind: "wrap" }))];
    if (!pend.length) pl.append(el("div", { class: "empty" }, "没有待处理的留言或小结"));
    for (const p of pend) pl.append(pendingItem(p.c, p.kind));
    $("pending-count").textContent = pend.length;
    $("pending-count").className = pend.length ? "badge blue" : "badge grey";

    const gl = wb.clear($("my-groups"));
    const mine = wb.me.groups || [];
    if (!mine.length) gl.append(el("div", { class: "group-item muted" }, "未加入技能组（可接待不限技能组的会话）"));
    for (const gid of mine) {
      const n = q.filter((i) => i.conversation.group === gid).length;
      gl.append(el("div", { class: "group-item", "data-group": gid }, el("span", { class: "dot online" }), el("span", { class: "grow" }, wb.groupName(gid)), n ? el("span", { class: "tag orange" }, "排队 " + n) : el("span", { class: "muted" }, "无排队")));
    }
    const serving = [...convs.values()].filter((c) => c.role === "serving" && c.conv.state === "active").length;
    $("serving-count").textContent = serving;
    let unread = 0;
    for (const c of convs.values()) unread += c.unread;
    wb.setUnread(unread);
    $("chat-empty-hint").textContent = q.length ? "有 " + q.length + " 位访客正在排队" : "";
  }

  function lastPreview(c) {
    const m = [...c.messages].reverse().find((x) => x.kind !== "system") || c.messages[c.messages.length - 1];
    if (!m) return c.conv.state === "offline_message" ? "留言" : "";
    const prefix = m.kind === "internal" ? "[备注] " : m.kind === "agent" ? "我：" : "";
    return prefix + (m.body || (m.attachments && m.attachments.length ? "[文件] " + m.attachments[0].name : ""));
  }

  function convItem(c) {
    const conv = c.conv;
    const meta = [];
    if (c.role === "offer") meta.push(el("span", { class: "tag orange" }, "转接待确认"));
    else if (c.role === "invited") meta.push(el("span", { class: "tag blue" }, "协助"));
    else if (c.role === "viewing") meta.push(el("span", { class: "tag" }, "监看"));
    if (conv.state !== "active") meta.push(el("span", { class: "tag " + (wb.STATE_TAG[conv.state] || "") }, wb.STATE_TEXT[conv.state] || conv.state));
    if (conv.state === "ended" && c.role === "serving" && !conv.wrap_up) meta.push(el("span", { class: "tag red" }, "待小结"));
    if (c.visitorLeft && conv.state === "active") meta.push(el("span", { class: "tag" }, "访客已离开"));
    if (conv.group != null) meta.push(el("span", { class: "tag" }, wb.groupName(conv.group)));
    const cls = ["conv-item", currentId === conv.id ? "selected" : "", c.highlightUntil > Date.now() ? "highlight" : "", conv.state === "active" ? "" : "ended"].join(" ");
    return el("div", { class: cls, id: "conv-" + conv.id, "data-testid": "conv-item", "data-conversation": conv.id, onclick: () => select(conv.id) },
      el("span", { class: "avatar visitor" }, wb.initial(wb.visitorName(conv))),
      el("div", { class: "ci-main" },
        el("div", { class: "ci-top" }, el("span", { class: "ci-name" }, wb.visitorName(conv)),
          c.unread ? el("span", { class: "badge", "data-testid": "unread-badge" }, c.unread > 99 ? "99+" : c.unread) : null,
          el("span", { class: "ci-time" }, wb.fmtTime(c.lastAt))),
        el("div", { class: "ci-preview" }, lastPreview(c)),
        meta.length ? el("div", { class: "ci-meta" }, meta) : null));
  }

  function waitClass(secs) { return secs >= 180 ? "ci-time late" : secs >= 60 ? "ci-time warn" : "ci-time"; }

  function queueItem(item) {
    const conv = item.conversation;
    const secs = (Date.now() - Date.parse(conv.created)) / 1000;
    const sel = currentId === conv.id;
    const c = convs.get(conv.id);
    const hl = c && c.highlightUntil > Date.now();
    return el("div", { class: "conv-item" + (sel ? " selected" : "") + (hl ? " highlight" : ""), id: "queue-" + conv.id, "data-testid": "queue-item", "data-conversation": conv.id, onclick: () => selectQueued(item) },
      el("span", { class: "avatar visitor" }, wb.initial(wb.visitorName(conv))),
      el("div", { class: "ci-main" },
        el("div", { class: "ci-top" }, el("span", { class: "ci-name" }, wb.visitorName(conv)),
          el("span", { class: waitClass(secs), "data-since": conv.created, "data-testid": "queue-wait" }, "等待 " + wb.fmtDuration(secs))),
        el("div", { class: "ci-preview" }, item.preview || ""),
        el("div", { class: "ci-meta" }, el("span", { class: "tag" }, "第 " + item.position + " 位"), el("span", { class: "tag" }, wb.groupName(conv.group)),
          el("span", { class: "spacer" }),
          el("button", { type: "button", class: "btn sm primary", id: "queue-accept-" + conv.id, "data-testid": "queue-accept", onclick: (ev) => { ev.stopPropagation(); accept(conv.id); } }, "接入"))));
  }

  function pendingItem(conv, kind) {
    const isOffline = kind === "offline";
    return el("div", { class: "conv-item" + (currentId === conv.id ? " selected" : ""), id: "pending-" + conv.id, "data-testid": isOffline ? "offline-item" : "wrapup-item", "data-conversation": conv.id,
      onclick: () => openStored(conv, isOffline ? "waiting" : "serving") },
      el("span", { class: "avatar visitor" }, wb.initial(wb.visitorName(conv))),
      el("div", { class: "ci-main" },
        el("div", { class: "ci-top" }, el("span", { class: "ci-name" }, wb.visitorName(conv)), el("span", { class: "ci-time" }, wb.fmtTime(conv.created))),
        el("div", { class: "ci-meta" },
          isOffline ? el("span", { class: "tag blue" }, "留言") : el("span", { class: "tag red" }, "待小结"),
          el("span", { class: "tag" }, wb.groupName(conv.group)),
          el("span", { class: "spacer" }),
          isOffline
            ? el("button", { type: "button", class: "btn sm primary", "data-testid": "offline-accept", onclick: (ev) => { ev.stopPropagation(); accept(conv.id); } }, "处理")
            : el("button", { type: "button", class: "btn sm", "data-testid": "pending-wrapup", onclick: (ev) => { ev.stopPropagation(); openStored(conv, "serving").then(() => openWrapUp(conv.id)); } }, "小结"))));
  }

  async function loadPending() {
    try {
      pending = await wb.api("GET", "/api/v1/conversations/pending");
      renderLists();
    } catch (_) { /* shown elsewhere */ }
  }

  // ================= selecting =================
  function select(id) {
    const c = convs.get(id);
    if (!c) return;
    if (currentId && convs.has(currentId)) saveDraft(convs.get(currentId));
    currentId = id;
    c.unread = 0;
    closePicker();
    $("emoji-panel").hidden = true;
    renderLists();
    renderChat(true);
    if (c.role === "serving" && !c.suggestLoaded && isOpen(c)) loadSuggestions(c);
    renderRight();
    if (!$("composer-input").disabled) $("composer-input").focus();
  }
  wb.selectConversation = select;

  async function selectQueued(item) {
    const c = record(item.conversation);
    c.preview = item.preview;
    if (!c.messages.length) {
      // Staff who may assist (supervisors of the group, admins) can read it; others see the preview.
      try { const r = await wb.api("GET", "/api/v1/conversations/" + encodeURIComponent(c.conv.id) + "/messages"); mergeMessages(c, r.messages); } catch (_) { /* preview only */ }
    }
    select(c.conv.id);
  }

  async function openStored(conv, role) {
    const c = record(conv);
    if (!c.messages.length) {
      try {
        const r = await wb.api("GET", "/api/v1/conversations/" + encodeURIComponent(conv.id) + "/transcript?format=json");
        record(r.conversation);
        mergeMessages(c, r.messages);
      } catch (_) { /* not readable before accepting */ }
    }
    c.role = roleOf(c);
    if (role === "waiting" && c.conv.state === "offline_message") c.role = "waiting";
    select(conv.id);
  }

  function saveDraft(c) {
    c.draft = $("composer-input").value;
  }

  // ================= centre: the conversation =================
  function renderChat(switched) {
    const c = convs.get(currentId);
    $("chat-empty").hidden = !!c;
    $("chat-pane").hidden = !c;
    if (!c) return;
    const conv = c.conv;
    const av = $("chat-avatar");
    av.textContent = wb.initial(wb.visitorName(conv));
    $("chat-title").textContent = wb.visitorName(conv);
    $("chat-state").textContent = wb.STATE_TEXT[conv.state] || conv.state;
    $("chat-state").className = "tag " + (wb.STATE_TAG[conv.state] || "");
    $("chat-state").dataset.state = conv.state;
    $("chat-pane").dataset.conversation = conv.id;
    $("chat-pane").dataset.role = c.role;
    const roleText = { invited: "协助中", offer: "转接待确认", viewing: "监看", waiting: "待接入" }[c.role];
    $("chat-role").hidden = !roleText;
    $("chat-role").textContent = roleText || "";
    const sub = [wb.CHANNEL_TEXT[conv.channel] || conv.channel, wb.groupName(conv.group), "开始于 " + wb.fmtTime(conv.created)];
    if (conv.agent != null && conv.agent !== wb.me.id) sub.push("接待：" + wb.agentName(conv.agent));
    $("chat-sub").textContent = sub.filter(Boolean).join(" · ");

    const waiting = conv.state === "queued" || conv.state === "offline_message";
    $("btn-accept").hidden = !(waiting && wb.hasRole("agent") && conv.agent == null);
    $("btn-accept").textContent = conv.state === "offline_message" ? "处理留言" : "接入会话";
    const serving = c.role === "serving" && conv.state === "active";
    $("btn-transfer").hidden = !serving;
    $("btn-transfer").disabled = c.transferWaiting;
    $("btn-invite").hidden = !(canServe(c) && conv.state === "active");
    $("btn-end").hidden = !(canServe(c) && isOpen(c) && c.role !== "waiting");
    resetEndButton();
    const needsWrap = conv.state === "ended" && conv.agent === wb.me.id;
    $("btn-wrapup").hidden = !needsWrap;
    $("btn-wrapup").textContent = conv.wrap_up ? "修改小结" : "填写小结";
    $("btn-close-conv").hidden = isOpen(c) || c.role === "offer" || (needsWrap && !conv.wrap_up);

    // banners
    $("transfer-banner").hidden = c.role !== "offer";
    if (c.offer) $("transfer-banner-text").textContent = c.offer.from_name + " 向你转接此会话" + (c.offer.note ? "，备注：" + c.offer.note : "");
    let banner = "";
    let bannerCls = "banner info";
    if (c.transferWaiting) banner = "已发起转接，等待对方接受…（" + "对方未在 60 秒内响应将自动取消）";
    else if (conv.state === "ended") { banner = "会话已结束" + ({ visitor: "（访客结束）", agent: "（客服结束）", idle: "（访客长时间未回复，系统自动结束）" }[conv.ended_by] || "") + (needsWrap && !conv.wrap_up ? "，请填写会话小结" : ""); bannerCls = "banner grey"; }
    else if (conv.state === "abandoned") { banner = "访客在排队时离开了"; bannerCls = "banner grey"; }
    else if (conv.state === "offline_message") banner = "这是一条访客留言，点击「处理留言」后可回复访客";
    else if (conv.state === "queued") banner = "访客正在排队：" + (c.preview || "") ;
    else if (c.role === "invited") banner = "你被邀请协助此会话：可查看消息并写内部备注（访客看不到）";
    else if (c.visitorLeft) { banner = "访客已关闭页面，会话将在访客长时间无响应后自动结束"; bannerCls = "banner warn"; }
    else if (serving && !conv.answered_at && conv.assigned_at) banner = "unanswered";
    $("state-banner").hidden = !banner;
    $("state-banner").className = bannerCls;
    if (banner && banner !== "unanswered") $("state-banner-text").textContent = banner;
    tickUnanswered();

    if (switched) renderMessages(c);
    renderTyping();
    renderComposer(c, switched);
    renderWindow(c);
    if (switched && c.window === undefined && conv.state === "active") loadWindow(c);
  }

  // ================= WeChat's reply rules (48 hours, 5 messages per visitor message) =================
  const WECHAT_CHANNELS = new Set(["wechat_official", "wecom_kf"]);

  /** Asks the server whether the visitor of a WeChat conversation can still be answered. */
  async function loadWindow(c) {
    if (!WECHAT_CHANNELS.has(c.conv.channel)) return;
    try {
      c.window = await wb.api("GET", "/api/v1/conversations/" + encodeURIComponent(c.conv.id) + "/reply-window");
    } catch (_) {
      return;
    }
    if (c.conv.id === currentId) renderChat(false);
  }

  /** The window as it stands now: an open one whose end has passed is shown closed. */
  function currentWindow(c) {
    const w = c.window;
    if (!w || !w.limited) return null;
    if (w.open && w.until && Date.parse(w.until) <= Date.now()) {
      return { limited: true, open: false, reason: "该微信用户已超过 48 小时未发消息，按微信规定无法再回复；请等待用户再次发来消息后再回复。" };
    }
    return w;
  }

  function renderWindow(c) {
    let box = $("reply-window");
    if (!box) {
      box = el("div", { id: "reply-window", class: "banner info", "data-testid": "reply-window", hidden: true });
      $("composer").before(box);
    }
    const w = currentWindow(c);
    const show = !!w && c.conv.state === "active" && (c.role === "serving" || c.role === "viewing");
    box.hidden = !show;
    if (!show) return;
    box.className = w.open ? (w.left <= 1 ? "banner warn" : "banner info") : "banner warn";
    box.dataset.open = String(w.open);
    box.textContent = w.open
      ? "微信回复规则：还可发送 " + w.left + " 条消息（文字和每个文件各算一条），截至 " + wb.fmtTime(w.until) + "；用户再发来消息后额度恢复"
      : w.reason;
  }

  function tickUnanswered() {
    const c = convs.get(currentId);
    if (!c) return;
    const conv = c.conv;
    if (c.role === "serving" && conv.state === "active" && !conv.answered_at && conv.assigned_at && !c.transferWaiting && !c.visitorLeft) {
      const left = Math.ceil(UNANSWERED_SECS - (Date.now() - Date.parse(conv.assigned_at)) / 1000);
      $("state-banner").hidden = false;
      $("state-banner").className = left <= 30 ? "banner warn" : "banner info";
      $("state-banner-text").textContent = left > 0 ? "新会话：请在 " + left + " 秒内回复访客，否则会话将退回队列" : "即将退回队列…";
    }
  }

  function dayKey(iso) { const d = new Date(iso); return d.getFullYear() + "-" + d.getMonth() + "-" + d.getDate(); }

  function renderMessages(c) {
    const box = wb.clear($("messages"));
    let day = null;
    if (!c.messages.length && c.preview) box.append(el("div", { class: "msg visitor" }, el("div", { class: "bubble-wrap" }, el("div", { class: "who" }, "访客首条消息"), el("div", { class: "bubble" }, c.preview))));
    if (!c.messages.length && !c.preview) box.append(el("div", { class: "empty" }, c.conv.state === "offline_message" ? "接入后可查看留言内容" : "暂无消息"));
    for (const m of c.messages) {
      const k = m.at ? dayKey(m.at) : day;
      if (k !== day) { day = k; box.append(el("div", { class: "day-sep" }, new Date(m.at).toLocaleDateString("zh-CN", { month: "long", day: "numeric", weekday: "short" }))); }
      box.append(renderMessage(m, c.conv.id));
    }
    box.scrollTop = box.scrollHeight;
  }

  /** One message as DOM (also used by the history transcript). */
  function renderMessage(m, convId, opts) {
    opts = opts || {};
    const mine = m.kind === "agent" && m.agent === wb.me.id;
    const cls = ["msg", m.kind, m.kind === "agent" && !mine ? "other" : "", m._pending ? "pending" : "", opts.matched ? "matched" : ""].join(" ");
    const key = m.client_key ? "k:" + m.client_key : "s:" + m.seq;
    if (m.kind === "system") return el("div", { class: cls, "data-key": key, "data-seq": m.seq }, el("div", { class: "bubble" }, m.body));
    const atts = (m.attachments || []).map((a) => attachmentNode(a, convId));
    const body = [];
    if (m.body) body.push(m.body);
    if (atts.length) body.push(el("div", { class: "att" }, atts));
    let status = null;
    if (m._status && (m.kind === "agent" || m.kind === "internal") && m.agent === wb.me.id && !opts.static) {
      if (m._status === "failed") status = el("span", { class: "status failed" }, "发送失败" + (m._error ? "：" + m._error : ""), " ", el("button", { type: "button", class: "linklike small", "data-testid": "message-retry", onclick: () => retry(convId, m.client_key) }, "重试"));
      else status = el("span", { class: "status", "data-testid": "message-status" }, m._status === "acked" ? "已送达" : m._status === "stored" ? "已发送" : "发送中…");
    }
    const who = m.kind === "internal" ? "内部备注 · " + m.sender_name : m.sender_name;
    const avatar = m.kind === "visitor" ? el("span", { class: "avatar visitor" }, wb.initial(m.sender_name)) : el("span", { class: "avatar" }, wb.initial(m.sender_name));
    return el("div", { class: cls, "data-key": key, "data-seq": m.seq, "data-client-key": m.client_key || null, "data-testid": "message-" + m.kind },
      avatar,
      el("div", { class: "bubble-wrap" },
        el("div", { class: "who" }, el("span", null, who), el("span", null, m.at ? wb.fmtTime(m.at) : ""), status),
        el("div", { class: "bubble" }, body)));
  }
  wb.renderMessage = renderMessage;

  function attachmentNode(a, convId) {
    const url = "/api/v1/conversations/" + encodeURIComponent(convId) + "/files/" + encodeURIComponent(a.hash);
    if (/^image\//.test(a.content_type)) {
      return el("img", { src: url, alt: a.name, title: a.name + "（" + wb.fmtSize(a.size) + "）", loading: "lazy", onclick: () => lightbox(url) });
    }
    return el("a", { class: "file", href: url, download: a.name },
      el("span", { class: "file-icon" }, window.kefu.icon("file")), el("span", { class: "ellipsis" }, a.name), el("span", { class: "muted" }, wb.fmtSize(a.size)));
  }
  function lightbox(url) {
    const box = el("div", { class: "lightbox", onclick: () => box.remove() }, el("img", { src: url, alt: "" }));
    document.body.append(box);
  }
  wb.lightbox = lightbox;

  function appendOrReplace(c, m) {
    if (c.conv.id !== currentId) return;
    const box = $("messages");
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    const node = renderMessage(m, c.conv.id);
    const old = m.client_key ? box.querySelector('[data-key="k:' + CSS.escape(m.client_key) + '"]') : null;
    if (old) old.replaceWith(node);
    else {
      const empty = box.querySelector(".empty");
      if (empty) empty.remove();
      box.append(node);
    }
    if (nearBottom || m.agent === wb.me.id) box.scrollTop = box.scrollHeight;
  }

  function renderTyping() {
    const c = convs.get(currentId);
    $("typing-indicator").hidden = !(c && c.typingUntil > Date.now() && isOpen(c));
  }

  // ================= composer =================
  function renderComposer(c, switched) {
    const input = $("composer-input");
    const noteOnly = c.role === "invited" || (c.role === "viewing" && !canServe(c));
    if (noteOnly) c.noteMode = true;
    const canWrite = isOpen(c) && (c.role === "serving" || c.role === "invited" || c.role === "viewing") && (c.conv.state === "active" || c.noteMode);
    input.disabled = !canWrite;
    $("btn-send").disabled = !canWrite;
    for (const id of ["btn-emoji", "btn-image", "btn-file", "btn-quick", "note-toggle"]) $(id).disabled = !canWrite;
    $("note-toggle").disabled = !canWrite || noteOnly;
    $("composer").classList.toggle("note", c.noteMode);
    $("note-toggle").classList.toggle("active", c.noteMode);
    $("note-toggle").setAttribute("aria-pressed", String(c.noteMode));
    $("btn-image").disabled = $("btn-file").disabled = !canWrite || c.noteMode;
    if (!canWrite) input.placeholder = c.conv.state === "ended" ? "会话已结束" : c.role === "offer" ? "接受转接后可回复" : c.conv.state === "queued" || c.conv.state === "offline_message" ? "接入后可回复" : "无法发送消息";
    else input.placeholder = c.noteMode ? "输入内部备注，仅同事可见" : "输入消息，输入 / 唤起快捷回复";
    // WeChat allows no more replies now: only internal notes can be written.
    const closedWindow = currentWindow(c);
    if (canWrite && !c.noteMode && closedWindow && !closedWindow.open) {
      $("btn-send").disabled = true;
      $("btn-image").disabled = $("btn-file").disabled = true;
      input.placeholder = "按微信规定暂时无法回复该用户（可切换为内部备注）";
    }
    const sk = wb.settings.send_key === "Ctrl+Enter" ? "Ctrl+Enter 发送，Enter 换行" : "Enter 发送，Shift+Enter 换行";
    $("send-hint").textContent = sk + " · 可粘贴截图";
    $("btn-send").textContent = c.noteMode ? "添加备注" : "发送";
    if (switched) input.value = c.draft || "";
    renderChips(c);
    renderCount();
  }

  /**
   * The composer's length against the message limit, shown while typing. A longer text is never cut
   * (no maxlength: a paste arrives whole); it cannot be sent as one message, and 分条发送 sends it in
   * pieces cut at line and sentence ends.
   */
  function renderCount() {
    const input = $("composer-input");
    const n = window.kefu.charCount(input.value.trim());
    const over = n - MAX_CHARS;
    const box = $("composer-count");
    box.hidden = n === 0;
    box.textContent = n + " / " + MAX_CHARS + (over > 0 ? " · 超出 " + over + " 字" : "");
    box.classList.toggle("over", over > 0);
    box.dataset.over = over > 0 ? "true" : "false";
    $("composer-split").hidden = over <= 0;
    if (over > 0) $("composer-split").textContent = "分 " + window.kefu.splitMessage(input.value, MAX_CHARS).length + " 条发送";
    $("btn-send").classList.toggle("blocked", over > 0);
    $("btn-send").title = over > 0 ? "消息超过 " + MAX_CHARS + " 字，请删减或分条发送" : "";
  }
  function sendInPieces() {
    const input = $("composer-input");
    const pieces = window.kefu.splitMessage(input.value, MAX_CHARS);
    if (pieces.length < 2) { sendCurrent(); return; }
    const last = pieces.pop();
    for (const piece of pieces) sendCurrent(piece, { quickReplies: [] });
    // The last piece goes as the composer's own text: it takes the attachments and clears the draft.
    input.value = last;
    sendCurrent();
  }

  function setNoteMode(on) {
    const c = convs.get(currentId);
    if (!c) return;
    if (c.role === "invited") on = true;
    if (on && c.attachments.length) { wb.toast("内部备注不支持附件，请先移除附件", "error"); return; }
    c.noteMode = on;
    renderComposer(c, false);
    $("composer-input").focus();
  }

  function renderChips(c) {
    const box = wb.clear($("attach-chips"));
    box.hidden = !c.attachments.length;
    c.attachments.forEach((a, i) => {
      box.append(el("span", { class: "chip" + (a.uploading ? " uploading" : ""), "data-testid": "attachment-chip" },
        a.preview ? el("img", { src: a.preview, alt: "" }) : null,
        el("span", { class: "ellipsis" }, a.name + (a.uploading ? "（上传中…）" : "（" + wb.fmtSize(a.size) + "）")),
        el("button", { type: "button", class: "x", title: "移除", onclick: () => { c.attachments.splice(i, 1); if (a.preview) URL.revokeObjectURL(a.preview); renderChips(c); } }, "×")));
    });
  }

  async function addFiles(files) {
    const c = convs.get(currentId);
    if (!c || $("composer-input").disabled) return;
    if (c.noteMode) { wb.toast("内部备注不支持附件", "error"); return; }
    for (const file of files) {
      let name = file.name || "";
      if (!name || !/\.[a-z0-9]+$/i.test(name)) {
        const ext = { "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp" }[file.type];
        if (!ext) { wb.toast("不支持该文件类型", "error"); continue; }
        name = "截图-" + new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14) + "." + ext;
      }
      const ext = name.split(".").pop().toLowerCase();
      if (UPLOAD_TYPES && !UPLOAD_TYPES.includes(ext)) { wb.toast("不支持 ." + ext + " 文件，仅支持 " + UPLOAD_TYPES.join("、"), "error"); continue; }
      if (MAX_UPLOAD && file.size > MAX_UPLOAD) { wb.toast("「" + name + "」超过 " + fmtLimit(MAX_UPLOAD) + "，请压缩后重新发送", "error"); continue; }
      if (!file.size) { wb.toast("「" + name + "」是空文件", "error"); continue; }
      const a = { name, size: file.size, uploading: true, preview: /^image\//.test(file.type) ? URL.createObjectURL(file) : null };
      c.attachments.push(a);
      renderChips(c);
      try {
        const r = await wb.upload("POST", "/api/v1/conversations/" + encodeURIComponent(c.conv.id) + "/files?name=" + encodeURIComponent(name), file);
        Object.assign(a, r, { uploading: false });
      } catch (e) {
        wb.toast("「" + name + "」上传失败：" + wb.errorText(e), "error");
        c.attachments.splice(c.attachments.indexOf(a), 1);
      }
      if (c.conv.id === currentId) renderChips(c);
    }
  }

  function sendCurrent(textOverride, extra) {
    const c = convs.get(currentId);
    if (!c) return;
    const input = $("composer-input");
    if (input.disabled) return;
    const body = (textOverride != null ? textOverride : input.value).trim();
    if (c.attachments.some((a) => a.uploading)) { wb.toast("文件上传中，请稍候", "info"); return; }
    const atts = textOverride != null ? [] : c.attachments.slice();
    if (!body && !atts.length) return;
    if (window.kefu.charCount(body) > MAX_CHARS) { renderCount(); wb.toast("消息超过 " + MAX_CHARS + " 字，未发送：请删减，或点「分条发送」", "error"); return; }
    const note = c.noteMode;
    const key = newKey();
    const frame = note
      ? { type: "note", conversation: c.conv.id, client_key: key, body }
      : { type: "send", conversation: c.conv.id, client_key: key, body, attachments: atts.map((a) => a.hash) };
    const replies = new Set(extra && extra.quickReplies ? extra.quickReplies : textOverride == null ? c.usedReplies : []);
    if (!note && replies.size) frame.quick_replies = [...replies].map(Number);
    const local = { seq: null, kind: note ? "internal" : "agent", agent: wb.me.id, sender_name: wb.me.display_name, body, attachments: atts.map((a) => ({ hash: a.hash, name: a.name, content_type: a.content_type, size: a.size })), at: new Date().toISOString(), client_key: key, _pending: true, _status: "sending" };
    // body with variables is filled by the server; the echo replaces it
    c.messages.push(local);
    c.pending.set(key, frame);
    lastCmd = { type: frame.type, conversation: c.conv.id, at: Date.now() };
    wb.send(frame);
    appendOrReplace(c, local);
    // suggestion feedback: unchanged = sent, changed = edited
    if (!note) {
      const adopted = extra && extra.adopted ? extra.adopted : textOverride == null ? c.adopted : null;
      if (adopted) feedback(c, adopted, body === adopted.text.trim() ? "sent" : "edited");
    }
    if (textOverride == null) {
      input.value = "";
      c.attachments.forEach((a) => a.preview && URL.revokeObjectURL(a.preview));
      c.attachments = [];
      c.usedReplies.clear();
      c.adopted = null;
      c.draft = "";
      renderChips(c);
      renderCount();
    }
    stopTyping(c);
    c.lastAt = local.at;
    renderLists();
  }

  function retry(convId, key) {
    const c = convs.get(convId);
    const frame = c && c.pending.get(key);
    if (!frame) return;
    const m = c.messages.find((x) => x.client_key === key);
    if (m) { m._status = "sending"; m._error = null; appendOrReplace(c, m); }
    wb.send(frame);
  }

  // typing (ours, to the visitor)
  let typingSentAt = 0, typingTimer = null, typingConv = null;
  function onTypingInput() {
    const c = convs.get(currentId);
    if (!c || c.noteMode || c.role !== "serving" || c.conv.state !== "active") return;
    const now = Date.now();
    if (now - typingSentAt > 3000 || typingConv !== c.conv.id) {
      typingSentAt = now;
      typingConv = c.conv.id;
      wb.send({ type: "typing", conversation: c.conv.id, typing: true });
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => stopTyping(c), 2500);
  }
  function stopTyping(c) {
    clearTimeout(typingTimer);
    if (typingSentAt && typingConv === c.conv.id) {
      wb.send({ type: "typing", conversation: c.conv.id, typing: false });
      typingSentAt = 0;
    }
  }

  // ================= `/` quick-reply picker =================
  let picker = { open: false, items: [], active: 0, seq: 0, query: null };
  let allReplies = null;
  async function repliesCache() {
    if (!allReplies) {
      try { allReplies = (await wb.api("GET", "/api/v1/quick-replies")).replies; } catch (_) { allReplies = []; }
    }
    return allReplies;
  }
  wb.invalidateReplies = () => { allReplies = null; };

  let pickerTimer = null;
  function onComposerInput() {
    const v = $("composer-input").value;
    const c = convs.get(currentId);
    if (c && c.adopted && !v.trim()) c.adopted = null;
    if (c && !v.trim()) c.usedReplies.clear();
    if (v.startsWith("/") && !v.includes("\n") && v.length <= 40) {
      clearTimeout(pickerTimer);
      pickerTimer = setTimeout(() => searchPicker(v), 120);
    } else if (picker.open) closePicker();
  }
  async function searchPicker(q) {
    const my = ++picker.seq;
    let items;
    const term = q.slice(1).trim();
    try {
      if (!term) items = (await repliesCache()).slice().sort((a, b) => b.usage - a.usage).slice(0, 12);
      else items = (await wb.api("GET", "/api/v1/quick-replies/search?limit=12&q=" + encodeURIComponent(q.trim()))).hits;
    } catch (e) { items = []; }
    if (my !== picker.seq) return;
    picker.items = items;
    picker.active = 0;
    picker.query = q;
    picker.open = true;
    renderPicker();
  }
  function renderPicker() {
    const box = $("qr-picker");
    box.hidden = !picker.open;
    $("qr-picker-query").textContent = picker.query && picker.query.length > 1 ? "“" + picker.query + "”" : "常用";
    const list = wb.clear($("qr-picker-list"));
    if (!picker.items.length) list.append(el("div", { class: "empty" }, "没有匹配的快捷回复，可用快捷编码、标题、拼音或首字母搜索"));
    picker.items.forEach((r, i) => {
      const scope = r.scope.kind === "team" ? "团队" : r.scope.kind === "group" ? wb.groupName(r.scope.group) : "个人";
      const item = el("div", { class: "qr-item" + (i === picker.active ? " active" : ""), id: "qr-item-" + i, role: "option", "aria-selected": String(i === picker.active), "data-testid": "qr-item", "data-reply-id": r.id,
        onmousedown: (ev) => { ev.preventDefault(); choosePicker(i); } },
      el("div", { class: "qr-line" }, el("span", { class: "qr-title" }, r.title), r.shortcut ? el("span", { class: "qr-short" }, r.shortcut) : null,
        r.image_url ? el("span", { class: "tag" }, "图片") : null, el("span", { class: "spacer" }), el("span", { class: "tag" }, scope), r.category ? el("span", { class: "muted small" }, r.category) : null),
      el("div", { class: "qr-content" }, r.content));
      list.append(item);
    });
    const act = $("qr-item-" + picker.active);
    if (act) act.scrollIntoView({ block: "nearest" });
  }
  function closePicker() {
    picker.open = false;
    picker.seq++;
    $("qr-picker").hidden = true;
  }
  async function choosePicker(i) {
    const r = picker.items[i];
    const c = convs.get(currentId);
    if (!r || !c) return;
    closePicker();
    const input = $("composer-input");
    input.value = r.content;
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
    renderCount();
    c.usedReplies.add(r.id);
    if (r.image_url && !c.noteMode) {
      try {
        const resp = await fetch(r.image_url, { credentials: "same-origin" });
        if (!resp.ok) throw new Error("image");
        const blob = await resp.blob();
        const ext = { "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp" }[blob.type] || "png";
        await addFiles([new File([blob], r.title.replace(/[\\/:*?"<>|]/g, "") + "." + ext, { type: blob.type })]);
      } catch (_) { wb.toast("快捷回复的图片加载失败", "error"); }
    }
  }

  function onComposerKey(ev) {
    if (ev.isComposing || ev.keyCode === 229) return;
    if (picker.open) {
      if (ev.key === "ArrowDown") { ev.preventDefault(); picker.active = Math.min(picker.items.length - 1, picker.active + 1); renderPicker(); return; }
      if (ev.key === "ArrowUp") { ev.preventDefault(); picker.active = Math.max(0, picker.active - 1); renderPicker(); return; }
      if ((ev.key === "Enter" || ev.key === "Tab") && picker.items.length) { ev.preventDefault(); choosePicker(picker.active); return; }
      if (ev.key === "Escape") { ev.preventDefault(); closePicker(); return; }
    }
    if (ev.key === "Escape") { $("emoji-panel").hidden = true; return; }
    if (ev.altKey && /^[1-9]$/.test(ev.key)) {
      const c = convs.get(currentId);
      const s = c && c.suggestions[Number(ev.key) - 1];
      if (s) { ev.preventDefault(); insertSuggestion(c, s); }
      return;
    }
    if (ev.key !== "Enter") return;
    const ctrl = ev.ctrlKey || ev.metaKey;
    if (wb.settings.send_key === "Ctrl+Enter") {
      if (ctrl) { ev.preventDefault(); sendCurrent(); }
    } else if (!ev.shiftKey && !ev.altKey) {
      ev.preventDefault();
      sendCurrent();
    }
  }

  function insertAtCursor(text) {
    const input = $("composer-input");
    const s = input.selectionStart, e = input.selectionEnd;
    input.value = input.value.slice(0, s) + text + input.value.slice(e);
    input.setSelectionRange(s + text.length, s + text.length);
    input.focus();
    renderCount();
  }

  function buildEmoji() {
    const panel = $("emoji-panel");
    EMOJI.forEach((e, i) => panel.append(el("button", { type: "button", id: "emoji-" + i, "data-testid": "emoji", title: e, onclick: () => { insertAtCursor(e); panel.hidden = true; } }, e)));
  }

  // ================= suggestions =================
  async function loadSuggestions(c) {
    c.suggestLoaded = true;
    if (!c.messages.some((m) => m.kind === "visitor" && m.body)) { if (c.conv.id === currentId) renderSuggestions(); return; }
    try {
      const r = await wb.api("POST", "/api/v1/assist/suggest", { conversation_id: c.conv.id });
      if (c.suggestSeq <= lastVisitorSeq(c)) { c.suggestions = r.suggestions; c.suggestSeq = lastVisitorSeq(c); c.sugActive = 0; }
    } catch (e) {
      if (e.code !== "invalid_query") wb.toast("获取推荐失败：" + wb.errorText(e), "error");
    }
    if (c.conv.id === currentId) renderSuggestions();
  }

  function feedback(c, s, action) {
    wb.api("POST", "/api/v1/assist/feedback", { kind: s.kind, id: String(s.id), action, conversation_id: c.conv.id }).catch(() => {});
  }

  function insertSuggestion(c, s) {
    const input = $("composer-input");
    input.value = s.reply;
    renderCount();
    c.adopted = { kind: s.kind, id: s.id, text: s.reply };
    if (s.kind === "quick_reply") c.usedReplies.add(Number(s.id));
    if (c.noteMode && c.role === "serving") setNoteMode(false);
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }
  function sendSuggestion(c, s) {
    if (c.role !== "serving" || c.conv.state !== "active") return;
    const wasNote = c.noteMode;
    c.noteMode = false;
    sendCurrent(s.reply, { adopted: { kind: s.kind, id: s.id, text: s.reply }, quickReplies: s.kind === "quick_reply" ? [Number(s.id)] : [] });
    c.noteMode = wasNote;
    c.suggestions = c.suggestions.filter((x) => x !== s);
    renderSuggestions();
  }
  function dismissSuggestion(c, s) {
    feedback(c, s, "dismissed");
    c.suggestions = c.suggestions.filter((x) => x !== s);
    c.sugActive = Math.min(c.sugActive, Math.max(0, c.suggestions.length - 1));
    renderSuggestions();
  }

  function renderSuggestions() {
    const c = convs.get(currentId);
    const box = wb.clear($("suggestions"));
    const list = c ? c.suggestions : [];
    $("suggest-count").hidden = !list.length;
    $("suggest-count").textContent = list.length;
    if (!c) { box.append(el("div", { class: "empty" }, "选择会话后显示推荐回复")); return; }
    if (!list.length) { box.append(el("div", { class: "empty" }, c.role === "serving" ? "访客发送消息后，这里会推荐知识库答案和快捷回复" : "仅接待客服可见推荐回复")); return; }
    const shut = currentWindow(c);
    const canSend = c.role === "serving" && c.conv.state === "active" && !(shut && !shut.open);
    list.forEach((s, i) => {
      const card = el("div", { class: "sugg" + (i === c.sugActive ? " active" : ""), id: "suggestion-" + i, "data-testid": "suggestion", "data-kind": s.kind, "data-id": s.id, onclick: () => { c.sugActive = i; markActiveSuggestion(); } },
        el("div", { class: "s-head" }, el("span", { class: "tag " + (s.kind === "article" ? "blue" : "green") }, s.kind === "article" ? "知识库" : "快捷回复"), el("span", { class: "s-title", title: s.title }, s.title), el("span", { class: "muted small" }, "Alt+" + (i + 1))),
        el("div", { class: "s-text" + (s.expanded ? " expanded" : ""), id: "suggestion-text-" + i, "data-testid": "suggestion-text" }, s.reply),
        s.matched_terms && s.matched_terms.length ? el("div", { class: "s-terms" }, s.matched_terms.map((t) => el("span", { class: "tag" }, t))) : null,
        el("div", { class: "s-actions" },
          el("button", { type: "button", class: "btn sm", id: "suggestion-insert-" + i, "data-testid": "suggestion-insert", disabled: !canSend && c.role !== "invited" ? true : null, onclick: (ev) => { ev.stopPropagation(); insertSuggestion(c, s); } }, "插入"),
          el("button", { type: "button", class: "btn sm primary", id: "suggestion-send-" + i, "data-testid": "suggestion-send", disabled: !canSend ? true : null, onclick: (ev) => { ev.stopPropagation(); sendSuggestion(c, s); } }, "直接发送"),
          // What 直接发送 sends is the whole text: the card shows its start, this shows it all.
          el("button", { type: "button", class: "btn sm ghost", id: "suggestion-expand-" + i, "data-testid": "suggestion-expand", "aria-expanded": s.expanded ? "true" : "false", "aria-controls": "suggestion-text-" + i,
            onclick: (ev) => { ev.stopPropagation(); s.expanded = !s.expanded; renderSuggestions(); } }, s.expanded ? "收起" : "展开全文"),
          el("span", { class: "spacer" }),
          el("button", { type: "button", class: "btn sm ghost", id: "suggestion-dismiss-" + i, "data-testid": "suggestion-dismiss", onclick: (ev) => { ev.stopPropagation(); dismissSuggestion(c, s); } }, "不合适")));
      box.append(card);
    });
  }
  function markActiveSuggestion() {
    const c = convs.get(currentId);
    document.querySelectorAll("#suggestions .sugg").forEach((n, i) => n.classList.toggle("active", c && i === c.sugActive));
    const a = $("suggestion-" + (c ? c.sugActive : 0));
    if (a) a.scrollIntoView({ block: "nearest" });
  }
  function onSuggestionsKey(ev) {
    const c = convs.get(currentId);
    if (!c || !c.suggestions.length) return;
    const s = c.suggestions[c.sugActive];
    if (ev.key === "ArrowDown") { ev.preventDefault(); c.sugActive = Math.min(c.suggestions.length - 1, c.sugActive + 1); markActiveSuggestion(); }
    else if (ev.key === "ArrowUp") { ev.preventDefault(); c.sugActive = Math.max(0, c.sugActive - 1); markActiveSuggestion(); }
    else if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); if (s) sendSuggestion(c, s); }
    else if (ev.key === "Enter") { ev.preventDefault(); if (s) insertSuggestion(c, s); }
    else if (ev.key === "Delete" || ev.key === "Backspace") { ev.preventDefault(); if (s) dismissSuggestion(c, s); }
  }

  // ================= right panel =================
  let rightTab = "suggest";
  function showTab(name) {
    rightTab = name;
    for (const b of document.querySelectorAll("#right-tabs button")) b.classList.toggle("active", b.dataset.tab === name);
    for (const t of ["suggest", "visitor", "past", "kb"]) $("pane-" + t).hidden = t !== name;
    renderRight();
  }
  function renderRight() {
    if (rightTab === "suggest") renderSuggestions();
    else if (rightTab === "visitor") renderVisitor();
    else if (rightTab === "past") renderPast();
  }

  // ---- visitor profile (GET /api/v1/visitors/{id}) ----
  const profiles = new Map(); // visitor id -> {data, at}
  async function visitorProfile(vid, force) {
    const hit = profiles.get(vid);
    if (hit && !force && Date.now() - hit.at < 15000) return hit.data;
    const data = await wb.api("GET", "/api/v1/visitors/" + encodeURIComponent(vid));
    profiles.set(vid, { data, at: Date.now() });
    return data;
  }
  wb.visitorProfile = visitorProfile;
  wb.DEVICE_TEXT = { pc: "电脑", smartphone: "手机", mobilephone: "功能手机", appliance: "智能设备", crawler: "爬虫", unknown: "未知" };
  wb.locationText = function (loc) {
    const l = loc || {};
    const parts = [l.country, l.province, l.city];
    if (parts.every((p) => p == null) && l.isp == null) return "未知";
    return parts.map((p) => p || "未知").join(" / ");
  };
  wb.clientText = function (client) {
    const c = client || {};
    const browser = c.browser ? c.browser + (c.browser_version ? " " + c.browser_version : "") : "未知浏览器";
    return [browser, c.os || "未知系统", wb.DEVICE_TEXT[c.device] || c.device || "未知设备"].join(" · ");
  };
  /** The identity badge: 已认证 (signed by the host site) or a warning 未认证 flag. */
  wb.identityBadge = function (identity) {
    if (!identity) return null;
    return identity.verified
      ? el("span", { class: "tag green", "data-testid": "identity-verified", title: "身份由网站签名校验" }, "已认证")
      : el("span", { class: "tag orange", "data-testid": "identity-unverified", title: "网站未签名，身份可能被冒用，请勿据此透露订单、地址等敏感信息" }, "⚠ 未认证");
  };
  const safeHref = (url) => (/^https?:\/\//i.test(url || "") ? url : null);
  function pageLink(p) {
    const href = safeHref(p.url);
    const label = p.title || p.url;
    return href ? el("a", { href, target: "_blank", rel: "noopener noreferrer", title: p.url }, label) : el("span", { title: p.url }, label);
  }
  function pastItem(h, testid) {
    const head = el("div", { class: "row" }, el("b", null, wb.fmtDateTime(h.created)), el("span", { class: "spacer" }),
      el("span", { class: "tag " + (wb.STATE_TAG[h.state] || "") }, wb.STATE_TEXT[h.state] || h.state));
    const body = [
      el("div", { class: "muted" }, "客服：" + (h.agent_name || (h.agent != null ? wb.agentName(h.agent) : "—"))),
      el("div", null, "问题类型：" + (h.problem_type || "未填写")),
      el("div", { class: "muted" }, "评价：" + (h.rating ? "★".repeat(h.rating) + "☆".repeat(Math.max(0, 5 - h.rating)) : "未评价")),
    ];
    if (h.can_open) {
      return el("a", { class: "hist-item", href: "#history/" + h.id, "data-testid": testid, "data-conversation": h.id, "data-can-open": "true", title: "查看会话记录" }, head, body);
    }
    return el("div", { class: "hist-item locked", "data-testid": testid, "data-conversation": h.id, "data-can-open": "false" }, head, body,
      el("div", { class: "muted small", "data-testid": "past-no-access" }, "无权查看"));
  }

  async function renderVisitor(force) {
    const box = $("visitor-info");
    const c = convs.get(currentId);
    if (!c) { wb.clear(box).append(el("div", { class: "empty" }, "选择会话后显示访客信息")); return; }
    if (box.contains(document.activeElement) && box.dataset.conversation === c.conv.id && !force) return; // editing tags or note
    const conv = c.conv;
    let profile = null, loadError = null;
    const cached = profiles.get(conv.visitor_id);
    if (cached && box.dataset.conversation !== conv.id) renderVisitorInto(box, c, cached.data, null);
    try { profile = await visitorProfile(conv.visitor_id, force); } catch (e) { loadError = e; }
    if (convs.get(currentId) !== c || rightTab !== "visitor") return;
    if (box.contains(document.activeElement) && box.dataset.conversation === conv.id && !force) return;
    renderVisitorInto(box, c, profile, loadError);
  }

  function renderVisitorInto(box, c, profile, loadError) {
    wb.clear(box);
    box.dataset.conversation = c.conv.id;
    const conv = c.conv;
    const v = (profile && profile.visitor) || {};
    const ident = v.identity || null;
    const cid = conv.identity || {};
    const row = (k, val, attrs) => (val == null || val === "" ? null : [el("dt", null, k), el("dd", attrs || null, val)]);
    const name = (ident && ident.name) || wb.visitorName(conv);
    box.append(el("div", { class: "info-head" }, el("span", { class: "avatar lg visitor" }, wb.initial(name)),
      el("div", { class: "grow" },
        el("div", { class: "row" }, el("span", { class: "name", id: "visitor-name" }, name), wb.identityBadge(ident)),
        el("div", { class: "small muted mono" }, conv.visitor_id)),
      profile ? el("span", { class: "tag " + (profile.online ? "green" : ""), id: "visitor-online" }, profile.online ? "在线" : "已离开") : null));
    if (loadError) box.append(el("div", { class: "notice", id: "visitor-load-error" }, "访客资料加载失败：" + wb.errorText(loadError)));

    box.append(el("div", { class: "sub-title" }, "身份信息"),
      el("dl", { class: "kv", id: "visitor-identity" },
        row("姓名", (ident && ident.name) || cid.name || "未提供"),
        row("认证", ident ? wb.identityBadge(ident) : el("span", { class: "muted" }, "网站未传入身份")),
        row("用户 ID", ident && ident.user_id ? (ident.site ? ident.site + ":" : "") + ident.user_id : cid.external_id),
        row("会员等级", ident && ident.member_level ? ident.member_level : null, { id: "visitor-member-level" }),
        row("手机", cid.phone), row("邮箱", cid.email)));
    if (ident && !ident.verified) {
      box.append(el("div", { class: "notice warn small", id: "visitor-unverified-warning" }, "该身份未经网站签名校验，可能被冒用；涉及订单、地址、退款等敏感操作前请先核实身份。"));
    }

    box.append(el("div", { class: "sub-title" }, "来源与设备"),
      el("dl", { class: "kv", id: "visitor-client" },
        row("渠道", wb.CHANNEL_TEXT[v.channel || conv.channel] || v.channel || conv.channel, { id: "visitor-channel" }),
        row("地区", profile ? wb.locationText(v.location) : null, { id: "visitor-location" }),
        row("运营商", profile ? ((v.location && v.location.isp) || "未知") : null, { id: "visitor-isp" }),
        row("IP", v.ip ? el("span", { class: "mono" }, v.ip) : null, { id: "visitor-ip" }),
        row("设备", profile ? wb.clientText(v.client) : null, { id: "visitor-device", title: v.user_agent || "" }),
        row("技能组", wb.groupName(conv.group)),
        row("首次来访", v.first_seen ? wb.fmtDateTime(v.first_seen) : null)));

    const trail = (profile && profile.page_trail) || [];
    box.append(el("div", { class: "sub-title" }, "浏览轨迹", el("span", { class: "badge grey" }, trail.length)));
    const ol = el("ol", { class: "trail", id: "visitor-trail" });
    trail.forEach((p, i) => {
      const last = i === trail.length - 1;
      const stay = p.secs_on_page == null ? "已离开" : (last && profile.online ? "当前页面 · 已停留 " : "停留 ") + wb.fmtDuration(p.secs_on_page);
      ol.append(el("li", { "data-testid": "trail-item", "data-url": p.url },
        el("div", { class: "ellipsis" }, pageLink(p)),
        el("div", { class: "small muted" }, wb.fmtTime(p.at) + " · ", el("span", { "data-testid": "trail-stay" }, stay))));
    });
    if (!trail.length) ol.append(el("li", { class: "muted" }, conv.page ? conv.page : "暂无浏览记录"));
    box.append(ol);

    box.append(el("div", { class: "sub-title" }, "本次会话"),
      el("dl", { class: "kv" },
        row("会话 ID", el("span", { class: "mono" }, conv.id)), row("状态", wb.STATE_TEXT[conv.state]), row("开始", wb.fmtDateTime(conv.created)),
        row("接入", conv.assigned_at ? wb.fmtDateTime(conv.assigned_at) : null), row("首次回复", conv.answered_at ? wb.fmtDateTime(conv.answered_at) : null),
        row("接待客服", conv.agent != null ? wb.agentName(conv.agent) : null),
        row("协助同事", (conv.invited || []).length ? conv.invited.map(wb.agentName).join("、") : null),
        row("访客评价", conv.rating ? "★".repeat(conv.rating.stars) + (conv.rating.comment ? " " + conv.rating.comment : "") : null),
        row("小结", conv.wrap_up ? conv.wrap_up.problem_type + (conv.wrap_up.resolution ? "：" + conv.wrap_up.resolution : "") : null)));

    const past = ((profile && profile.conversations) || []).filter((h) => h.id !== conv.id);
    box.append(el("div", { class: "sub-title" }, "历史会话", el("span", { class: "badge grey" }, past.length)));
    const pl = el("div", { id: "visitor-past" });
    if (!past.length) pl.append(el("div", { class: "empty" }, "没有更早的会话"));
    for (const h of past.slice(0, 10)) pl.append(pastItem(h, "visitor-past-item"));
    box.append(pl);

    if (profile) {
      const tags = el("input", { type: "text", id: "visitor-tags", maxlength: "450", placeholder: "如：VIP, 老客户（逗号分隔，最多 20 个）" });
      tags.value = (v.tags || []).join(", ");
      const note = el("textarea", { id: "visitor-note", rows: "3", maxlength: "2000", placeholder: "只有同事可见，如：喜欢电话联系" });
      note.value = v.note || "";
      const msg = el("span", { class: "ok-text small", id: "visitor-save-msg", role: "status" });
      const form = el("form", { class: "stack", id: "visitor-edit", onsubmit: (ev) => { ev.preventDefault(); saveVisitor(conv.visitor_id, tags, note, msg); } },
        el("label", { class: "field" }, el("span", null, "标签"), tags),
        el("label", { class: "field" }, el("span", null, "备注"), note),
        el("div", { class: "row" }, el("button", { type: "submit", class: "btn sm primary", id: "visitor-save" }, "保存标签和备注"), msg));
      box.append(el("div", { class: "sub-title" }, "标签与备注"), form);
    }
  }

  async function saveVisitor(vid, tagsInput, noteInput, msg) {
    const tags = tagsInput.value.split(/[,，、\s]+/).map((t) => t.trim()).filter(Boolean);
    msg.className = "error-text small";
    if (tags.length > 20) { msg.textContent = "标签最多 20 个"; return; }
    if (tags.some((t) => [...t].length > 20)) { msg.textContent = "每个标签不超过 20 个字"; return; }
    $("visitor-save").disabled = true;
    try {
      const v = await wb.api("PATCH", "/api/v1/visitors/" + encodeURIComponent(vid), { tags, note: noteInput.value.trim() });
      const hit = profiles.get(vid);
      if (hit) hit.data.visitor = Object.assign({}, hit.data.visitor, v);
      tagsInput.value = (v.tags || []).join(", ");
      msg.className = "ok-text small";
      msg.textContent = "已保存";
      setTimeout(() => { if (msg.textContent === "已保存") msg.textContent = ""; }, 3000);
    } catch (e) {
      msg.textContent = wb.errorText(e);
    } finally {
      const b = $("visitor-save");
      if (b) b.disabled = false;
    }
  }

  async function renderPast() {
    const box = wb.clear($("visitor-history"));
    const c = convs.get(currentId);
    if (!c) { box.append(el("div", { class: "empty" }, "选择会话后显示该访客的历史会话")); return; }
    box.append(el("div", { class: "empty" }, "加载中…"));
    try {
      const profile = await visitorProfile(c.conv.visitor_id);
      if (convs.get(currentId) !== c) return;
      wb.clear(box);
      const items = (profile.conversations || []).filter((x) => x.id !== c.conv.id);
      box.append(el("div", { class: "sub-title" }, "该访客共 " + (profile.conversations || []).length + " 次会话（含同一认证身份在其他设备上的会话）"));
      if (!items.length) box.append(el("div", { class: "empty" }, "没有更早的会话"));
      for (const h of items) box.append(pastItem(h, "visitor-history-item"));
    } catch (e) {
      wb.clear(box).append(el("div", { class: "empty" }, "加载失败：" + wb.errorText(e)));
    }
  }

  // knowledge base
  // Category display names (GET /api/v1/kb/categories, from kb/_categories.txt), loaded once per page.
  let kbCategories = null;
  function kbCategoryNames() {
    if (!kbCategories) {
      kbCategories = wb.api("GET", "/api/v1/kb/categories")
        .then((r) => new Map(r.categories.map((c) => [c.id, c.name])))
        .catch(() => { kbCategories = null; return new Map(); });
    }
    return kbCategories;
  }
  wb.kbCategoryNames = kbCategoryNames;
  async function kbSearch(ev) {
    if (ev) ev.preventDefault();
    const q = $("kb-search-input").value.trim();
    const box = wb.clear($("kb-results"));
    $("kb-article").hidden = true;
    if (!q) return;
    box.append(el("div", { class: "empty" }, "搜索中…"));
    try {
      const [r, names] = await Promise.all([wb.api("GET", "/api/v1/kb/search?limit=10&q=" + encodeURIComponent(q)), kbCategoryNames()]);
      wb.clear(box);
      if (!r.hits.length) box.append(el("div", { class: "empty" }, "没有找到相关文章"));
      r.hits.forEach((h, i) => box.append(el("div", { class: "kb-hit", "data-testid": "kb-hit", id: "kb-hit-" + i },
        el("div", { class: "kb-title", onclick: () => openArticle(h.id) }, h.title),
        el("div", { class: "kb-snippet" }, kefu.snippetNodes(h.snippet)),
        el("div", { class: "row small" }, h.category ? el("span", { class: "tag", "data-testid": "kb-hit-category", "data-category": h.category }, names.get(h.category) || h.category) : null, el("span", { class: "spacer" }), el("button", { type: "button", class: "linklike small", onclick: () => openArticle(h.id) }, "查看全文")))));
    } catch (e) { wb.clear(box).append(el("div", { class: "empty" }, wb.errorText(e))); }
  }
  async function openArticle(id) {
    const box = $("kb-article");
    try {
      const a = await wb.api("GET", "/api/v1/kb/articles/" + id.split("/").map(encodeURIComponent).join("/"));
      wb.clear(box);
      box.hidden = false;
      const body = el("div", { class: "kb-article-html" });
      body.innerHTML = a.html; // sanitised by the server (ammonia)
      // The whole passage of a heading, lists included, as a suggestion sends it.
      const answers = (a.sections || []).filter((s) => s.text || s.answer);
      box.append(el("div", { class: "row" }, el("button", { type: "button", class: "btn sm", onclick: () => { box.hidden = true; } }, "← 返回结果"), el("span", { class: "spacer" }), el("a", { href: "/editor?article=" + encodeURIComponent(a.id), class: "small", target: "_blank", rel: "noopener" }, "在知识库中打开")),
        answers.length ? el("div", { class: "stack small" }, el("div", { class: "sub-title" }, "插入答案到输入框"), answers.map((s) => el("button", { type: "button", class: "btn sm", "data-testid": "kb-insert", onclick: () => { insertAtCursor(s.text || s.answer); } }, s.heading || a.title))) : null,
        body);
      box.scrollIntoView({ block: "start" });
    } catch (e) { wb.toast(wb.errorText(e), "error"); }
  }

  // ================= actions =================
  async function accept(id) {
    acceptingId = id;
    const err = await command({ type: "accept", conversation: id });
    if (err) {
      acceptingId = null;
      wb.toast(cmdErrorText(err), "error");
      if (err.code === "conversation_taken" || err.code === "conversation_closed") { queue.delete(id); loadPending(); renderLists(); }
    }
  }

  function resetEndButton() {
    const b = $("btn-end");
    b.dataset.confirm = "";
    b.textContent = "结束会话";
  }
  function endConversation() {
    const b = $("btn-end");
    if (b.dataset.confirm !== "1") {
      b.dataset.confirm = "1";
      b.textContent = "确认结束？";
      setTimeout(() => { if (b.dataset.confirm === "1") resetEndButton(); }, 4000);
      return;
    }
    resetEndButton();
    const c = convs.get(currentId);
    if (!c) return;
    c.endedByMe = true;
    command({ type: "end", conversation: c.conv.id }).then((e) => { if (e) { c.endedByMe = false; wb.toast(cmdErrorText(e), "error"); } });
  }

  function closeConversation() {
    const c = convs.get(currentId);
    if (!c) return;
    convs.delete(currentId);
    currentId = null;
    renderLists();
    renderChat(true);
    renderRight();
  }

  // ---- transfer ----
  let transferKind = "group";
  /** Colleagues at the desk with presence and load (GET /api/v1/agents); also fills wb.colleagues. */
  async function loadAgents() {
    const r = await wb.api("GET", "/api/v1/agents");
    for (const a of r.agents) wb.colleagues.set(a.id, Object.assign({}, wb.colleagues.get(a.id) || {}, a, { partial: false }));
    return r.agents;
  }
  wb.loadAgents = loadAgents;
  /** Fills a colleague <select>: name, presence and load; offline and full colleagues are listed but disabled. */
  function colleagueOptions(select, agents, excludeIds, needAgentRole) {
    wb.clear(select);
    select.append(el("option", { value: "" }, "请选择同事"));
    const order = { online: 0, busy: 1, away: 2, offline: 3 };
    const list = agents.filter((a) => !excludeIds.includes(a.id) && (!needAgentRole || (a.roles || []).includes("agent")));
    const status = (a) => (a.presence && a.presence.status) || "offline";
    const full = (a) => a.max_concurrent != null && a.active >= a.max_concurrent;
    list.sort((a, b) => order[status(a)] - order[status(b)] || (full(a) - full(b)) || String(a.display_name).localeCompare(String(b.display_name), "zh-CN"));
    let available = 0;
    for (const a of list) {
      const off = status(a) === "offline";
      const unavailable = off || full(a);
      if (!unavailable) available++;
      const groups = (a.groups || []).map(wb.groupName).join("、");
      const text = a.display_name + "（" + (wb.PRESENCE_TEXT[status(a)] || status(a)) + " · 接待 " + a.active + "/" + a.max_concurrent +
        (full(a) && !off ? " · 已满" : "") + "）" + (groups ? " " + groups : "");
      select.append(el("option", { value: a.id, disabled: unavailable, "data-presence": status(a), "data-active": a.active, "data-max": a.max_concurrent }, text));
    }
    return { total: list.length, available };
  }
  function agentsHint(node, n) {
    node.textContent = !n.total ? "暂无可选同事。" : !n.available ? "同事们都已离线或接待已满，请稍后再试或转给技能组。" : "离线或接待已满的同事暂不可选。";
  }
  // The transfer dialog lists skill groups (queue, colleagues on duty) and colleagues (presence, load),
  // filtered by name, pinyin or initials as the agent types; nobody needs to know an account id.
  const transferPick = { groups: [], agents: [], chosen: null };
  /** Whether `item` (with display name, pinyin, initials) matches what was typed. */
  function nameMatches(item, term) {
    if (!term) return true;
    const t = term.toLowerCase().replace(/\s+/g, "");
    return String(item.name).toLowerCase().includes(t) || (item.pinyin || "").startsWith(t) || (item.pinyin || "").includes(t) || (item.initials || "").startsWith(t);
  }
  function openTransfer() {
    const c = convs.get(currentId);
    if (!c) return;
    transferPick.chosen = null;
    transferPick.groups = [];
    transferPick.agents = [];
    $("transfer-search").value = "";
    $("transfer-agent-hint").textContent = "加载中…";
    $("transfer-note").value = "";
    $("transfer-reason").value = "";
    $("transfer-error").textContent = "";
    renderTransferList();
    Promise.all([wb.api("GET", "/api/v1/groups"), loadAgents()]).then(([g, agents]) => {
      transferPick.groups = g.groups;
      transferPick.agents = agents.filter((a) => a.id !== wb.me.id && (a.roles || []).includes("agent"));
      $("transfer-agent-hint").textContent = "离线或接待已满的同事暂不可选；转给技能组时由组内空闲的同事接待。";
      renderTransferList();
    }).catch((e) => { $("transfer-agent-hint").textContent = "列表加载失败：" + wb.errorText(e); });
    wb.openDialog("dlg-transfer");
    $("transfer-search").focus();
  }
  function renderTransferList() {
    const c = convs.get(currentId);
    const box = wb.clear($("transfer-list"));
    const term = $("transfer-search").value.trim();
    const status = (a) => (a.presence && a.presence.status) || "offline";
    const full = (a) => a.max_concurrent != null && a.active >= a.max_concurrent;
    const order = { online: 0, busy: 1, away: 2, offline: 3 };
    const groups = transferPick.groups.filter((g) => nameMatches(g, term));
    const agents = transferPick.agents.filter((a) => nameMatches({ name: a.display_name, pinyin: a.pinyin, initials: a.initials }, term))
      .sort((a, b) => order[status(a)] - order[status(b)] || (full(a) - full(b)) || String(a.display_name).localeCompare(String(b.display_name), "zh-CN"));
    const item = (kind, id, disabled, children) => el("div", {
      class: "pick-item", role: "option", id: "transfer-target-" + kind + "-" + id, "data-testid": "transfer-target", "data-kind": kind, "data-id": id,
      "aria-selected": transferPick.chosen && transferPick.chosen.kind === kind && transferPick.chosen.id === id ? "true" : "false",
      "aria-disabled": disabled ? "true" : null,
      onclick: () => { if (disabled) return; transferPick.chosen = { kind, id }; $("transfer-error").textContent = ""; renderTransferList(); },
    }, children);
    if (groups.length) box.append(el("div", { class: "pick-head" }, "技能组"));
    for (const g of groups) {
      const onDuty = transferPick.agents.filter((a) => (a.groups || []).includes(g.id) && status(a) === "online" && !full(a)).length;
      box.append(item("group", g.id, false, [
        el("span", { class: "pick-name" }, g.name), c && g.id === c.conv.group ? el("span", { class: "tag" }, "当前") : null,
        el("span", { class: "pick-meta", "data-testid": "transfer-target-meta" }, "排队 " + (g.queued || 0) + " · 可接待 " + onDuty + " 人")]));
    }
    if (agents.length) box.append(el("div", { class: "pick-head" }, "同事"));
    for (const a of agents) {
      const st = status(a);
      const groupsText = (a.groups || []).map(wb.groupName).join("、");
      box.append(item("agent", a.id, st === "offline" || full(a), [
        el("span", { class: "dot " + st }), el("span", { class: "pick-name" }, a.display_name),
        groupsText ? el("span", { class: "small muted ellipsis" }, groupsText) : null,
        el("span", { class: "pick-meta", "data-testid": "transfer-target-meta", "data-presence": st }, (wb.PRESENCE_TEXT[st] || st) + " · 接待 " + a.active + "/" + a.max_concurrent + (full(a) && st !== "offline" ? " · 已满" : ""))]));
    }
    if (!groups.length && !agents.length) box.append(el("div", { class: "pick-empty" }, term ? "没有匹配「" + term + "」的技能组或同事" : "暂无可转接的技能组或同事"));
  }
  async function submitTransfer() {
    const c = convs.get(currentId);
    if (!c) return;
    const frame = { type: "transfer", conversation: c.conv.id, note: $("transfer-note").value.trim() };
    const chosen = transferPick.chosen;
    if (!chosen) { $("transfer-error").textContent = "请选择要转给的技能组或同事"; return; }
    if (chosen.kind === "group") frame.to_group = chosen.id; else frame.to_agent = chosen.id;
    const reason = $("transfer-reason").value.trim();
    if (reason) frame.reason = reason;
    $("transfer-submit").disabled = true;
    const err = await command(frame);
    $("transfer-submit").disabled = false;
    if (err) { $("transfer-error").textContent = cmdErrorText(err); return; }
    $("dlg-transfer").close();
    c.transferWaiting = true;
    c.transferTarget = frame.to_group ? wb.groupName(frame.to_group) : wb.agentName(frame.to_agent);
    wb.toast("已发起转接，等待对方接受", "info");
    renderChat(false);
  }
  function answerTransfer(acceptIt) {
    const c = convs.get(currentId);
    if (!c) return;
    command({ type: "answer_transfer", conversation: c.conv.id, accept: acceptIt }).then((e) => { if (e) wb.toast(cmdErrorText(e), "error"); });
    if (!acceptIt) {
      c.offer = null;
      convs.delete(c.conv.id);
      currentId = null;
      renderLists(); renderChat(true); renderRight();
      wb.toast("已拒绝转接", "info");
    }
  }

  // ---- invite ----
  function openInvite() {
    const c = convs.get(currentId);
    if (!c) return;
    const sel = wb.clear($("invite-agent"));
    sel.append(el("option", { value: "" }, "加载中…"));
    $("invite-agent-hint").textContent = "";
    loadAgents().then((agents) => agentsHint($("invite-agent-hint"), colleagueOptions(sel, agents, [wb.me.id, c.conv.agent].concat(c.conv.invited || []), false)))
      .catch((e) => { wb.clear(sel).append(el("option", { value: "" }, "同事列表加载失败")); $("invite-agent-hint").textContent = wb.errorText(e); });
    $("invite-error").textContent = "";
    wb.openDialog("dlg-invite");
  }
  async function submitInvite() {
    const c = convs.get(currentId);
    const a = Number($("invite-agent").value);
    if (!a) { $("invite-error").textContent = "请选择要邀请的同事"; return; }
    $("invite-submit").disabled = true;
    const err = await command({ type: "invite", conversation: c.conv.id, agent: a });
    $("invite-submit").disabled = false;
    if (err) { $("invite-error").textContent = cmdErrorText(err); return; }
    $("dlg-invite").close();
    c.conv.invited = (c.conv.invited || []).concat([a]);
    wb.toast("已邀请 " + wb.agentName(a) + " 协助", "success");
  }

  // ---- wrap-up ----
  let wrapConv = null, wrapType = null, wrapStars = 0;
  async function openWrapUp(id) {
    const c = convs.get(id || currentId);
    if (!c) return;
    // The admin console may have changed the problem types, or made the wrap-up required, meanwhile.
    try {
      const types = await wb.api("GET", "/api/v1/conversations/problem-types");
      wb.problemTypes = types.problem_types;
      wb.wrapUpRequired = Boolean(types.wrap_up_required);
    } catch (_) { /* keep what was loaded at start */ }
    for (const button of $("dlg-wrapup").querySelectorAll("[data-close]")) button.hidden = Boolean(wb.wrapUpRequired);
    $("wrapup-required-note").hidden = !wb.wrapUpRequired;
    wrapConv = c.conv.id;
    const w = c.conv.wrap_up;
    wrapType = w ? w.problem_type : null;
    wrapStars = w && w.satisfaction ? w.satisfaction : 0;
    $("wrapup-conv").textContent = "　" + wb.visitorName(c.conv) + " · " + wb.fmtDateTime(c.conv.created);
    $("wrapup-resolution").value = w ? w.resolution : "";
    $("wrapup-tags").value = w ? w.tags.join(", ") : "";
    $("wrapup-error").textContent = "";
    renderTree();
    renderStars();
    wb.openDialog("dlg-wrapup");
  }
  function renderTree() {
    const tree = wb.clear($("wrapup-tree"));
    const parents = new Map();
    for (const p of wb.problemTypes) {
      const i = p.indexOf("/");
      const parent = i < 0 ? p : p.slice(0, i);
      if (!parents.has(parent)) parents.set(parent, []);
      if (i >= 0) parents.get(parent).push(p);
    }
    let n = 0;
    for (const [parent, children] of parents) {
      if (!children.length) {
        tree.append(el("div", { class: "node" + (wrapType === parent ? " selected" : ""), id: "wrapup-type-" + n++, "data-testid": "wrapup-type", "data-type": parent, tabindex: "0", onclick: () => { wrapType = parent; renderTree(); } }, parent));
        continue;
      }
      tree.append(el("div", { class: "node parent" }, "▾ " + parent));
      for (const p of children) {
        tree.append(el("div", { class: "node child" + (wrapType === p ? " selected" : ""), id: "wrapup-type-" + n++, "data-testid": "wrapup-type", "data-type": p, tabindex: "0", onclick: () => { wrapType = p; renderTree(); } }, p.slice(parent.length + 1)));
      }
    }
    $("wrapup-selected").hidden = !wrapType;
    $("wrapup-selected").textContent = wrapType || "";
  }
  function renderStars() {
    const box = wb.clear($("wrapup-stars"));
    for (let i = 1; i <= 5; i++) box.append(el("button", { type: "button", class: i <= wrapStars ? "on" : "", id: "wrapup-star-" + i, title: i + " 星", onclick: () => { wrapStars = wrapStars === i ? 0 : i; renderStars(); } }, "★"));
  }
  async function submitWrapUp() {
    if (!wrapType) { $("wrapup-error").textContent = "请选择问题类型"; return; }
    const tags = $("wrapup-tags").value.split(/[,，\s]+/).map((t) => t.trim()).filter(Boolean);
    if (tags.length > 20) { $("wrapup-error").textContent = "标签最多 20 个"; return; }
    const frame = { type: "wrap_up", conversation: wrapConv, problem_type: wrapType, resolution: $("wrapup-resolution").value.trim(), tags };
    if (wrapStars) frame.satisfaction = wrapStars;
    $("wrapup-submit").disabled = true;
    const err = await command(frame);
    $("wrapup-submit").disabled = false;
    if (err) { $("wrapup-error").textContent = window.kefuText.withDetail(cmdErrorText(err), err); return; }
    $("dlg-wrapup").close();
    wb.toast("会话小结已保存", "success");
    const c = convs.get(wrapConv);
    pending.wrap_ups = pending.wrap_ups.filter((x) => x.id !== wrapConv);
    if (c) {
      c.conv.wrap_up = { problem_type: frame.problem_type, resolution: frame.resolution, tags, satisfaction: frame.satisfaction || null, by: wb.me.id, at: new Date().toISOString() };
      if (!isOpen(c)) { convs.delete(wrapConv); if (currentId === wrapConv) currentId = null; }
    }
    renderLists(); renderChat(true); renderRight();
    setTimeout(loadPending, 500);
  }

  // ================= socket events =================
  function onFrame(f) {
    switch (f.type) {
      case "agent_hello": {
        const ids = new Set();
        for (const conv of f.conversations) {
          ids.add(conv.id);
          const c = record(conv);
          c.offer = c.offer && conv.pending_transfer && conv.pending_transfer.to_agent === wb.me.id ? c.offer : null;
          c.role = roleOf(c);
          wb.send({ type: "sync", conversation: conv.id, last_seq: maxSeq(c) });
          // resend what was not acknowledged, with the same keys
          for (const frame of c.pending.values()) wb.send(frame);
        }
        for (const [id, c] of convs) if (!ids.has(id) && isOpen(c) && (c.role === "serving" || c.role === "invited")) { c.conv.state = c.conv.state === "active" ? "ended" : c.conv.state; }
        queue.clear();
        for (const item of f.queue) queue.set(item.conversation.id, item);
        renderLists();
        if (currentId) renderChat(false);
        loadPending();
        break;
      }
      case "history": {
        const c = convs.get(f.conversation);
        if (!c) break;
        if (mergeMessages(c, f.messages) && f.conversation === currentId) renderMessages(c);
        if (c.role === "serving" && !c.suggestLoaded && f.conversation === currentId) loadSuggestions(c);
        renderLists();
        break;
      }
      case "message": {
        const c = convs.get(f.conversation);
        if (!c) break;
        const m = f.message;
        const isNew = !c.messages.some((x) => x.seq === m.seq);
        mergeMessages(c, [m]);
        // Before the isNew check: the own message's ack (which gives the local copy its seq) comes first.
        if (m.kind === "agent" && m.agent === wb.me.id && !c.conv.answered_at) { c.conv.answered_at = m.at; if (f.conversation === currentId) renderChat(false); }
        if (!isNew) break;
        const local = m.client_key ? c.messages.find((x) => x.client_key === m.client_key) : m;
        appendOrReplace(c, local || m);
        const fromOthers = m.kind === "visitor" || (m.agent != null && m.agent !== wb.me.id) || (m.kind === "system" && false);
        if (m.kind === "visitor") c.typingUntil = 0;
        if (fromOthers) {
          if (f.conversation !== currentId || document.hidden) c.unread++;
          if (f.conversation !== currentId || document.hidden) wb.notify("新消息 · " + wb.visitorName(c.conv), m.body || "[文件]", () => select(c.conv.id), "msg-" + c.conv.id);
        }
        if (f.conversation === currentId) { renderTyping(); if (c.conv.state === "active" && !c.conv.answered_at) tickUnanswered(); }
        renderLists();
        break;
      }
      case "ack": {
        const c = convs.get(f.conversation);
        if (!c) break;
        c.pending.delete(f.client_key);
        const m = c.messages.find((x) => x.client_key === f.client_key);
        if (m) { m._status = "acked"; m._pending = false; if (m.seq == null) m.seq = f.seq; appendOrReplace(c, m); }
        break;
      }
      case "queued": {
        const id = f.item.conversation.id;
        const isNew = !queue.has(id);
        queue.set(id, f.item);
        if (isNew) {
          const c = convs.get(id);
          if (c) c.highlightUntil = Date.now() + 4000;
          highlightQueue.set(id, Date.now() + 4000);
          wb.notify("新访客排队", wb.visitorName(f.item.conversation) + "：" + (f.item.preview || ""), () => { location.hash = "#chat"; selectQueued(f.item); }, "queue-" + id);
        }
        renderLists();
        break;
      }
      case "queue_positions": {
        // Only the entries that moved are listed; the rest keep their place.
        let moved = false;
        for (const p of f.positions) {
          const item = queue.get(p.conversation);
          if (item && item.position !== p.position) { item.position = p.position; moved = true; }
        }
        if (moved) renderLists();
        break;
      }
      case "queue_removed": {
        queue.delete(f.conversation);
        const c = convs.get(f.conversation);
        if (c && c.role === "waiting" && f.conversation !== acceptingId) {
          convs.delete(f.conversation);
          if (currentId === f.conversation) { currentId = null; renderChat(true); }
        }
        renderLists();
        break;
      }
      case "assigned": {
        const conv = f.conversation;
        queue.delete(conv.id);
        pending.offline_messages = pending.offline_messages.filter((x) => x.id !== conv.id);
        const c = record(conv);
        c.offer = null;
        c.transferWaiting = false;
        c.noteMode = false; // an invited colleague who takes it over writes to the visitor again
        c.role = roleOf(c);
        mergeMessages(c, f.messages);
        c.suggestLoaded = false;
        const mine = acceptingId === conv.id || currentId === conv.id;
        acceptingId = null;
        if (mine) {
          select(conv.id);
        } else {
          c.highlightUntil = Date.now() + 4000;
          c.unread = Math.max(c.unread, 1);
          wb.notify("新会话已分配给你", wb.visitorName(conv) + "：" + lastPreview(c), () => { location.hash = "#chat"; select(conv.id); }, "conv-" + conv.id);
          loadSuggestions(c);
        }
        renderLists();
        break;
      }
      case "unassigned": {
        const c = convs.get(f.conversation);
        const name = c ? wb.visitorName(c.conv) : "会话";
        const text = { offline: "你已离线，" + name + " 的会话已退回队列", unanswered: name + " 的会话超时未回复，已退回队列", transferred: name + " 的会话已成功转接" + (c && c.transferTarget ? "给 " + c.transferTarget : ""), transfer_withdrawn: name + " 的转接已取消（会话已结束或超时）" }[f.reason] || name + " 的会话已移出";
        wb.toast(text, f.reason === "transferred" ? "success" : f.reason === "transfer_withdrawn" ? "info" : "error", 5000);
        convs.delete(f.conversation);
        if (currentId === f.conversation) { currentId = null; renderChat(true); renderRight(); }
        renderLists();
        break;
      }
      case "typing": {
        const c = convs.get(f.conversation);
        if (!c || f.from !== "visitor") break;
        c.typingUntil = f.typing ? Date.now() + 6000 : 0;
        if (f.conversation === currentId) renderTyping();
        break;
      }
      case "transfer_offered": {
        const conv = f.conversation;
        const c = record(conv);
        c.offer = { from: f.from, from_name: f.from_name, note: f.note };
        wb.noteColleague(f.from, f.from_name);
        c.role = "offer";
        mergeMessages(c, f.messages);
        c.highlightUntil = Date.now() + 4000;
        c.unread = Math.max(c.unread, 1);
        wb.notify("转接请求 · " + f.from_name, wb.visitorName(conv) + (f.note ? "：" + f.note : ""), () => { location.hash = "#chat"; select(conv.id); }, "transfer-" + conv.id);
        wb.toast(f.from_name + " 向你转接了一个会话", "info", 5000);
        renderLists();
        if (currentId === conv.id) renderChat(true);
        break;
      }
      case "transfer_declined": {
        const c = convs.get(f.conversation);
        if (c) { c.transferWaiting = false; if (f.conversation === currentId) renderChat(false); }
        wb.toast(f.reason === "timeout" ? "对方未在规定时间内接受转接，会话仍由你接待" : "对方拒绝了转接，会话仍由你接待", "error", 5000);
        break;
      }
      case "invited": {
        const c = record(f.conversation);
        mergeMessages(c, f.messages);
        c.role = roleOf(c);
        c.noteMode = true;
        c.highlightUntil = Date.now() + 4000;
        c.unread = Math.max(c.unread, 1);
        const by = wb.agentName(f.by);
        wb.notify("协助邀请", by + " 邀请你协助 " + wb.visitorName(c.conv), () => { location.hash = "#chat"; select(c.conv.id); }, "invite-" + c.conv.id);
        wb.toast(by + " 邀请你协助一个会话", "info", 5000);
        renderLists();
        break;
      }
      case "ended": {
        const c = convs.get(f.conversation);
        if (!c) break;
                c.conv.state = "ended";
        c.conv.ended_by = f.ended_by;
        // Ending cancels a transfer in flight: the banner says the chat ended, not that it waits.
        c.transferWaiting = false;
        c.conv.ended_at = new Date().toISOString();
        c.typingUntil = 0;
        if (f.conversation === currentId) { renderChat(false); renderComposer(c, false); renderRight(); }
        renderLists();
        if (c.conv.agent === wb.me.id) {
          if (c.endedByMe && f.conversation === currentId) openWrapUp(c.conv.id);
          else wb.toast(wb.visitorName(c.conv) + " 的会话已结束" + (f.ended_by === "visitor" ? "（访客结束）" : f.ended_by === "idle" ? "（超时自动结束）" : "") + "，请填写小结", "info", 5000);
        }
        if (c.role === "invited" && c.conv.agent !== wb.me.id) { /* stays until closed */ }
        setTimeout(loadPending, 300);
        break;
      }
      case "visitor_left": {
        const c = convs.get(f.conversation);
        if (!c) break;
        c.visitorLeft = true;
        c.typingUntil = 0;
        if (f.conversation === currentId) renderChat(false);
        renderLists();
        break;
      }
      case "reply_window": {
        const c = convs.get(f.conversation);
        if (!c) break;
        c.window = f.window;
        if (f.conversation === currentId) { renderChat(false); renderSuggestions(); }
        break;
      }
      case "delivery_failed": {
        wb.toast(f.message, "error", 8000);
        break;
      }
      case "suggestions": {
        const c = convs.get(f.conversation);
        if (!c || f.seq < c.suggestSeq) break;
        c.suggestions = f.suggestions;
        c.suggestSeq = f.seq;
        c.sugActive = 0;
        c.suggestLoaded = true;
        if (f.conversation === currentId) renderSuggestions();
        break;
      }
      case "done":
        settleCommand(f);
        break;
      case "error": {
        if (settleCommand(f)) return;
        if (f.client_key) {
          for (const c of convs.values()) {
            const m = c.messages.find((x) => x.client_key === f.client_key && x.seq == null);
            if (m) {
              m._status = "failed";
              m._error = wb.errorText(f);
              if (f.code === "reply_window_closed") { c.pending.delete(f.client_key); loadWindow(c); }
              // a closed conversation will not take it: do not resend it on reconnect
              if (f.code === "conversation_closed" || f.code === "forbidden") c.pending.delete(f.client_key);
              appendOrReplace(c, m);
              wb.toast("消息发送失败：" + wb.errorText(f), "error");
              return;
            }
          }
        }
        if (f.code === "bad_request" && lastCmd && lastCmd.type === "ping") return;
        wb.toast(wb.errorText(f), "error");
        break;
      }
      default:
        break;
    }
  }
  const highlightQueue = new Map();

  // ticking: queue wait times, typing expiry, unanswered countdown
  function tick() {
    for (const n of document.querySelectorAll("#queue-list [data-since]")) {
      const secs = (Date.now() - Date.parse(n.dataset.since)) / 1000;
      n.textContent = "等待 " + wb.fmtDuration(secs);
      n.className = waitClass(secs);
    }
    for (const [id, until] of highlightQueue) {
      const n = $("queue-" + id);
      if (n) n.classList.toggle("highlight", until > Date.now());
      if (until <= Date.now()) highlightQueue.delete(id);
    }
    renderTyping();
    tickUnanswered();
  }

  function fmtLimit(bytes) {
    const mb = bytes / 1024 / 1024;
    return mb >= 1 ? (Number.isInteger(mb) ? mb : mb.toFixed(1)) + " MB" : Math.max(1, Math.round(bytes / 1024)) + " KB";
  }
  async function loadLimits() {
    try {
      const l = await wb.api("GET", "/api/v1/visitor/limits");
      if (Array.isArray(l.upload_types) && l.upload_types.length) UPLOAD_TYPES = l.upload_types.map((t) => String(t).toLowerCase());
      if (l.max_upload_bytes > 0) MAX_UPLOAD = l.max_upload_bytes;
      if (l.max_message_chars > 0) MAX_CHARS = l.max_message_chars;
    } catch (_) { /* the server still checks */ }
    if (UPLOAD_TYPES) $("file-input").accept = UPLOAD_TYPES.map((t) => "." + t).join(",");
    const parts = [];
    if (UPLOAD_TYPES) parts.push("支持 " + UPLOAD_TYPES.join("/"));
    if (MAX_UPLOAD) parts.push("单个文件 ≤ " + fmtLimit(MAX_UPLOAD));
    $("upload-limits").textContent = parts.join("，");
    renderCount();
  }

  // ================= wiring =================
  wb.onFrame(onFrame);
  wb.onReady(() => {
    buildEmoji();
    // Without any emoji font the picker would offer boxes: leave it out.
    if (!window.kefu.emojiSupported()) $("btn-emoji").hidden = true;
    loadLimits();
    loadAgents().catch(() => { /* names fall back to 客服 #id */ });
    const input = $("composer-input");
    input.addEventListener("keydown", onComposerKey);
    input.addEventListener("input", () => { onComposerInput(); onTypingInput(); renderCount(); });
    $("composer-split").addEventListener("click", sendInPieces);
    // Leaving the composer closes the picker, unless focus came back (the ⚡ button gives it back).
    input.addEventListener("blur", () => setTimeout(() => { if (document.activeElement !== input) closePicker(); }, 150));
    input.addEventListener("paste", (ev) => {
      const files = [...(ev.clipboardData ? ev.clipboardData.items : [])].filter((i) => i.kind === "file").map((i) => i.getAsFile()).filter(Boolean);
      if (files.length) { ev.preventDefault(); addFiles(files); }
    });
    const composer = $("composer");
    composer.addEventListener("dragover", (ev) => { ev.preventDefault(); });
    composer.addEventListener("drop", (ev) => { ev.preventDefault(); if (ev.dataTransfer && ev.dataTransfer.files.length) addFiles([...ev.dataTransfer.files]); });
    $("btn-send").addEventListener("click", () => sendCurrent());
    $("btn-emoji").addEventListener("click", (ev) => { ev.stopPropagation(); $("emoji-panel").hidden = !$("emoji-panel").hidden; });
    document.addEventListener("click", (ev) => { if (!ev.target.closest("#emoji-panel") && !ev.target.closest("#btn-emoji")) $("emoji-panel").hidden = true; });
    $("btn-image").addEventListener("click", () => $("image-input").click());
    $("btn-file").addEventListener("click", () => $("file-input").click());
    $("image-input").addEventListener("change", (ev) => { addFiles([...ev.target.files]); ev.target.value = ""; });
    $("file-input").addEventListener("change", (ev) => { addFiles([...ev.target.files]); ev.target.value = ""; });
    // The button must not take focus from the composer: the blur would close the picker it opens.
    $("btn-quick").addEventListener("mousedown", (ev) => ev.preventDefault());
    $("btn-quick").addEventListener("click", () => { const i = $("composer-input"); if (!i.value.startsWith("/")) i.value = "/" + i.value; i.focus(); searchPicker(i.value); });
    $("note-toggle").addEventListener("click", () => { const c = convs.get(currentId); if (c) setNoteMode(!c.noteMode); });
    $("btn-accept").addEventListener("click", () => currentId && accept(currentId));
    $("btn-end").addEventListener("click", endConversation);
    $("btn-wrapup").addEventListener("click", () => openWrapUp());
    $("btn-close-conv").addEventListener("click", closeConversation);
    $("btn-transfer").addEventListener("click", openTransfer);
    $("btn-invite").addEventListener("click", openInvite);
    $("transfer-search").addEventListener("input", renderTransferList);
    $("transfer-search").addEventListener("keydown", (ev) => {
      // Enter takes the first selectable match, so typing "xm" + Enter picks 小美.
      if (ev.key !== "Enter") return;
      ev.preventDefault();
      const first = document.querySelector("#transfer-list [data-testid=transfer-target]:not([aria-disabled=true])");
      if (first) first.click();
    });
    $("transfer-submit").addEventListener("click", submitTransfer);
    $("transfer-accept").addEventListener("click", () => answerTransfer(true));
    $("transfer-decline").addEventListener("click", () => answerTransfer(false));
    $("invite-submit").addEventListener("click", submitInvite);
    $("wrapup-submit").addEventListener("click", submitWrapUp);
    // A required wrap-up cannot be put off: Esc does not close the dialog then.
    $("dlg-wrapup").addEventListener("cancel", (e) => { if (wb.wrapUpRequired) e.preventDefault(); });
    $("wrapup-tree").addEventListener("keydown", (ev) => { if (ev.key === "Enter" && ev.target.dataset.type) { wrapType = ev.target.dataset.type; renderTree(); } });
    $("right-tabs").addEventListener("click", (ev) => { const b = ev.target.closest("button"); if (b) showTab(b.dataset.tab); });
    $("suggestions").addEventListener("keydown", onSuggestionsKey);
    $("suggest-refresh").addEventListener("click", () => { const c = convs.get(currentId); if (c) { c.suggestSeq = -1; loadSuggestions(c); } });
    $("kb-search-form").addEventListener("submit", kbSearch);
    $("pending-refresh").addEventListener("click", loadPending);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && currentId && wb.currentView === "chat") { const c = convs.get(currentId); if (c && c.unread) { c.unread = 0; renderLists(); } }
    });
    setInterval(tick, 1000);
    setInterval(loadPending, 60000);
    renderLists();
    renderChat(true);
    renderRight();
  });
  wb.views.chat = {
    show() {
      const c = convs.get(currentId);
      if (c && c.unread) { c.unread = 0; renderLists(); }
    },
  };
  wb.chat = { convs, queue, accept, select, insertAtCursor };
})();
