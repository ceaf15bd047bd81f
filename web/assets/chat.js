// Visitor chat page (/chat, also inside the widget's iframe as /chat?embed=1).
// Flow: self-service suggestions while the first question is typed → POST /api/v1/visitor/conversations →
// /ws/visitor with last_seq → queue, agent, messages with acks and resends, typing, files, rating.
// Everything a person typed is shown through text nodes (kefu.el), never parsed as HTML.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const el = (...args) => window.kefu.el(...args);

  const ERROR_TEXT = {
    bad_request: "请求格式有误，请刷新页面后重试",
    invalid_query: "问题内容过长，请精简后再试（不超过 500 字）",
    invalid_input: "填写的内容不符合要求，请检查后重试",
    unauthenticated: "会话已失效，请重新发起咨询",
    forbidden: "会话已失效，请重新发起咨询",
    conversation_not_found: "会话不存在，请重新发起咨询",
    group_not_found: "咨询入口配置有误，请联系网站管理员",
    conversation_closed: "会话已结束或当前无法进行此操作",
    message_too_long: "消息超过 5000 字，未发送：请删减，或点「分条发送」",
    upload_too_large: "文件过大，请压缩后重新发送",
    invalid_upload: "不支持该文件类型，或文件内容与扩展名不符",
    rate_limited: "操作过于频繁，请稍后再试",
    no_leader: "服务切换中，请稍后重试",
    visitor_blocked: "抱歉，您暂时无法发起咨询",
    identity_invalid: "身份校验失败，请刷新页面后重试",
    internal: "服务器开小差了，请稍后再试",
  };
  const errorText = (err) => ERROR_TEXT[err && err.code] || (err && err.status ? "服务器开小差了，请稍后再试" : "网络连接异常，请检查网络后重试");

  // From GET /api/v1/visitor/limits (loaded at start); null until then: the server decides.
  const limits = { max_message_chars: 5000, max_upload_bytes: null, upload_types: null };
  // The satisfaction survey as the admin console set it (GET /api/v1/visitor/survey).
  const survey = { offer: "any_end", scale: 5, title: "请为本次服务打分", labels: ["非常不满意", "不满意", "一般", "满意", "非常满意"], thanks: "感谢您的评价，我们会继续努力！" };
  const CHANNELS = ["web", "app", "wechat", "api"];
  const EMOJI = ["😀", "😁", "😂", "🤣", "😊", "😍", "😘", "😉", "😎", "🤔", "😅", "😭", "😢", "😡", "😱", "😴",
    "🙄", "😳", "🥰", "🤗", "🙏", "👍", "👎", "👌", "👏", "💪", "🤝", "✌️", "❤️", "💔", "🌹", "🎉",
    "🔥", "💯", "✅", "❌", "❓", "⏰", "📦", "🚚", "💰", "🧾", "📱", "💻", "☕", "🍉", "🌟", "😌"];

  const params = new URLSearchParams(location.search);
  const embed = params.get("embed") === "1";
  const channel = CHANNELS.includes(params.get("channel")) ? params.get("channel") : "web";
  const groupParam = params.get("group");
  const group = groupParam && /^\d+$/.test(groupParam) ? Number(groupParam) : null;
  const hostPage = params.get("page") || (embed ? "" : (document.referrer || location.href));
  const storageKey = "kefu.visitor." + channel + "." + (group == null ? "any" : group);
  // The host page that embeds us (widget): the only origin whose messages we accept, and the only one we talk to.
  const hostOrigin = (function () {
    if (!embed || window.parent === window) return null;
    try { if (location.ancestorOrigins && location.ancestorOrigins.length) return location.ancestorOrigins[0]; } catch (e) { /* not supported */ }
    try { return new URL(hostPage).origin; } catch (e) { return null; }
  })();

  // Visitor context: the widget's host page tells us who the visitor is and which pages they open.
  const ctx = {
    identity: null,      // signed (or unsigned) identity from the host page's script tag
    hostTitle: "",       // the host page's title
    lastPage: null,      // the last page reported, to skip repeats
    heartbeatTimer: null,
    invitationId: null,  // the invitation shown now
    answeredInvitations: new Set(),
    blocked: false,
    tokenPromise: null,
  };
  const state = {
    token: null,
    conversation: null, // VisitorView
    messages: new Map(), // seq -> Message
    pending: new Map(), // client_key -> {body, attachments, status}
    lastSeq: 0,
    ws: null,
    wsOpen: false,
    reconnectDelay: 1000,
    reconnectTimer: null,
    pingTimer: null,
    starting: false,
    suggestTimer: null,
    suggestShownFor: null,
    suggestions: [],
    typingSent: false,
    typingTimer: null,
    agentTypingTimer: null,
    stars: 0,
    rated: false,
    surveyed: false,
    keyCounter: 0,
    pendingLeaveMessage: null,
    stopped: false,
  };

  // ---------- storage ----------
  function loadStored() {
    try { return JSON.parse(localStorage.getItem(storageKey) || "null"); } catch (e) { return null; }
  }
  function store() {
    try {
      localStorage.setItem(storageKey, JSON.stringify({ token: state.token, conversation: state.conversation && state.conversation.id }));
    } catch (e) { /* private mode: the chat still works for this page */ }
  }
  function authHeaders() { return { headers: { Authorization: "Bearer " + state.token } }; }

  // ---------- small UI helpers ----------
  function show(node, on) { node.hidden = !on; }
  function composerError(text) {
    const box = $("composer-error");
    box.textContent = text || "";
    show(box, !!text);
    if (text) { clearTimeout(composerError.t); composerError.t = setTimeout(() => show(box, false), 6000); }
  }
  function formatTime(iso) {
    const d = iso ? new Date(iso) : new Date();
    if (isNaN(d)) return "";
    const pad = (n) => String(n).padStart(2, "0");
    const today = new Date();
    const hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
    if (d.toDateString() === today.toDateString()) return hm;
    return (d.getMonth() + 1) + "月" + d.getDate() + "日 " + hm;
  }
  function formatSize(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(0) + " KB";
    return (bytes / 1024 / 1024).toFixed(1) + " MB";
  }
  function scrollToBottom() {
    const main = $("chat-main");
    requestAnimationFrame(() => { main.scrollTop = main.scrollHeight; });
  }
  function newKey() {
    state.keyCounter += 1;
    const rand = (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : (Date.now().toString(36) + Math.random().toString(36).slice(2));
    return "v-" + rand;
  }
  function notifyParent(message) {
    if (embed && window.parent !== window && hostOrigin && hostOrigin !== "null") {
      window.parent.postMessage(Object.assign({ kefu: true }, message), hostOrigin);
    }
  }
  function fileUrl(hash) {
    return "/api/v1/conversations/" + encodeURIComponent(state.conversation.id) + "/files/" + encodeURIComponent(hash) +
      "?token=" + encodeURIComponent(state.token);
  }

  // ---------- header / status ----------
  function renderHeader() {
    const conv = state.conversation;
    const avatar = $("agent-avatar");
    avatar.textContent = "";
    const name = conv && conv.agent_name;
    if (conv && conv.agent_avatar) {
      avatar.appendChild(el("img", { src: conv.agent_avatar, alt: "" }));
    } else {
      avatar.textContent = name ? name.slice(0, 1) : "客";
    }
    $("agent-name").textContent = name ? "客服 " + name : "在线客服";
    const status = $("chat-status");
    const s = conv ? conv.state : null;
    status.textContent =
      s === "active" ? "正在为您服务" :
      s === "queued" ? "正在为您接入客服…" :
      s === "offline_message" ? "客服暂时不在线，已为您留言" :
      s === "ended" || s === "abandoned" ? "会话已结束" :
      "您好，请问有什么可以帮您？";
    status.dataset.state = s || "new";
    show($("end-btn"), s === "queued" || s === "active");
    show($("queue-status"), s === "queued" && !$("queue-position").textContent ? false : s === "queued");
    if (s !== "queued") show($("queue-status"), false);
    const open = !conv || s === "queued" || s === "active";
    $("message-input").disabled = !open;
    $("send-btn").disabled = !open;
    $("upload-btn").disabled = !conv || !open;
    $("upload-btn").title = conv ? "发送图片或文件" : "发送第一条消息后即可发送图片或文件";
    show($("composer"), open);
    show($("offline-notice"), s === "offline_message");
    show($("ended-notice"), s === "ended" || s === "abandoned");
    if (s === "ended" || s === "abandoned") renderEnded();
    show($("open-leave-form"), !conv || s === "queued");
    if (ctx.blocked) {
      for (const id of ["composer", "open-leave-form", "end-btn", "queue-status", "suggest-panel", "invite-card", "offline-notice", "ended-notice"]) show($(id), false);
      status.textContent = "暂时无法发起咨询";
      status.dataset.state = "blocked";
    }
    show($("blocked-notice"), ctx.blocked);
  }

  function renderEnded() {
    const conv = state.conversation;
    // The server says whether the survey is offered for this conversation (`survey`); older answers
    // without it fall back to "served by an agent".
    const offered = conv && (typeof conv.survey === "boolean" ? conv.survey : Boolean(conv.agent_name));
    const served = conv && conv.state === "ended" && survey.offer !== "never" && (offered || state.surveyed);
    const canRate = served && !conv.rated && !state.rated;
    $("ended-title").textContent = conv.state === "abandoned" ? "您已离开排队" : "本次会话已结束";
    show($("rating-panel"), !!canRate);
    show($("rating-thanks"), !!(served && (conv.rated || state.rated)));
    scrollToBottom();
  }

  function renderQueue(position, waitSecs) {
    $("queue-position").textContent = position <= 1 ? "马上就到您了" : "您前面还有 " + (position - 1) + " 位访客";
    const mins = Math.max(1, Math.round((waitSecs || 0) / 60));
    $("queue-wait").textContent = waitSecs < 60 ? "，预计等待不到 1 分钟" : "，预计等待约 " + mins + " 分钟";
    show($("queue-status"), state.conversation && state.conversation.state === "queued");
  }

  // ---------- messages ----------
  function messageNode(msg, pendingInfo) {
    const kind = msg.kind;
    if (kind === "system") {
      return el("div", { class: "msg msg-system", "data-testid": "msg-system", "data-seq": msg.seq },
        el("span", { class: "msg-system-text" }, msg.body));
    }
    const mine = kind === "visitor";
    const bubble = el("div", { class: msg.body ? "bubble" : "bubble bubble-media" });
    if (msg.body) bubble.appendChild(el("div", { class: "bubble-text" }, msg.body));
    for (const att of msg.attachments || []) bubble.appendChild(attachmentNode(att));
    const meta = el("div", { class: "msg-meta" });
    if (!mine) meta.appendChild(el("span", { class: "msg-sender" }, msg.sender_name || "客服"));
    meta.appendChild(el("span", { class: "msg-time" }, formatTime(msg.at)));
    if (mine && pendingInfo) {
      if (pendingInfo.status === "failed") {
        meta.appendChild(el("span", { class: "msg-failed", "data-testid": "msg-failed" }, "发送失败"));
        meta.appendChild(el("button", {
          type: "button", class: "link-btn resend-btn", "data-testid": "msg-resend",
          onclick: () => resend(msg.client_key),
        }, "重发"));
      } else {
        meta.appendChild(el("span", { class: "msg-sending", "data-testid": "msg-sending" }, "发送中…"));
      }
    }
    const row = el("div", {
      class: "msg " + (mine ? "msg-visitor" : "msg-agent"),
      "data-testid": mine ? "msg-visitor" : "msg-agent",
      "data-seq": msg.seq != null ? msg.seq : null,
      "data-client-key": msg.client_key || null,
    });
    if (!mine) {
      const av = el("div", { class: "msg-avatar", "aria-hidden": "true" });
      if (state.conversation && state.conversation.agent_avatar && state.conversation.agent_name === msg.sender_name) {
        av.appendChild(el("img", { src: state.conversation.agent_avatar, alt: "" }));
      } else {
        av.textContent = (msg.sender_name || "客").slice(0, 1);
      }
      row.appendChild(av);
    }
    row.appendChild(el("div", { class: "msg-content" }, meta, bubble));
    return row;
  }

  function attachmentNode(att) {
    if (/^image\//.test(att.content_type || "")) {
      const img = el("img", { class: "att-image", src: fileUrl(att.hash), alt: att.name, loading: "lazy", "data-testid": "msg-image" });
      img.addEventListener("click", () => { $("lightbox-img").src = img.src; show($("lightbox"), true); });
      img.addEventListener("load", scrollToBottom, { once: true });
      return img;
    }
    return el("a", { class: "att-file", href: fileUrl(att.hash), download: att.name, target: "_blank", rel: "noopener", "data-testid": "msg-file" },
      el("span", { class: "att-icon", "aria-hidden": "true" }, window.kefu.icon("file")),
      el("span", { class: "att-info" }, el("span", { class: "att-name" }, att.name), el("span", { class: "att-size" }, formatSize(att.size || 0))));
  }

  // The welcome card lives inside #messages, which each render empties: hold on to it from the start
  // (the script is deferred, so the page is parsed) so that a new consultation (发起新的咨询) shows it
  // again.
  const welcomeCard = $("welcome");

  function renderMessages() {
    const box = $("messages");
    const card = welcomeCard;
    box.textContent = "";
    if (!state.conversation && state.messages.size === 0) box.appendChild(card);
    const list = Array.from(state.messages.values()).sort((a, b) => a.seq - b.seq);
    const storedKeys = new Set(list.map((m) => m.client_key).filter(Boolean));
    for (const msg of list) box.appendChild(messageNode(msg));
    for (const [key, p] of state.pending) {
      if (storedKeys.has(key)) continue;
      box.appendChild(messageNode({ kind: "visitor", body: p.body, attachments: p.attachmentViews, at: p.at, client_key: key }, p));
    }
    scrollToBottom();
  }

  function addMessages(list, live) {
    let newFromAgent = 0;
    for (const msg of list || []) {
      if (msg.kind === "internal") continue;
      if (!state.messages.has(msg.seq) && live && msg.kind !== "visitor") newFromAgent += 1;
      state.messages.set(msg.seq, msg);
      if (msg.seq > state.lastSeq) state.lastSeq = msg.seq;
      if (msg.client_key && state.pending.has(msg.client_key)) state.pending.get(msg.client_key).stored = true;
    }
    renderMessages();
    if (newFromAgent) {
      notifyParent({ type: "message", count: newFromAgent });
      show($("typing-indicator"), false);
    }
  }

  // ---------- socket ----------
  function connect() {
    if (!state.token || !state.conversation || state.stopped) return;
    clearTimeout(state.reconnectTimer);
    if (state.ws) { try { state.ws.onclose = null; state.ws.close(); } catch (e) { /* already closed */ } }
    const url = window.kefu.wsUrl("/ws/visitor?token=" + encodeURIComponent(state.token) + "&last_seq=" + state.lastSeq);
    let ws;
    try { ws = new WebSocket(url); } catch (e) { scheduleReconnect(); return; }
    state.ws = ws;
    ws.onopen = () => {
      state.wsOpen = true;
      state.reconnectDelay = 1000;
      show($("conn-status"), false);
      clearInterval(state.pingTimer);
      state.pingTimer = setInterval(() => sendFrame({ type: "ping" }), 25000);
    };
    ws.onmessage = (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      handleFrame(frame);
    };
    ws.onclose = () => {
      state.wsOpen = false;
      clearInterval(state.pingTimer);
      if (state.ws === ws) state.ws = null;
      const s = state.conversation && state.conversation.state;
      if (s === "queued" || s === "active") scheduleReconnect(); // an ended one reconnects only to rate
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  function scheduleReconnect() {
    if (state.stopped) return;
    const banner = $("conn-status");
    banner.textContent = "网络连接已断开，正在重新连接…";
    show(banner, true);
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = setTimeout(async () => {
      // The conversation may have moved on while we were away (a new one from another tab, say).
      try {
        const me = await window.kefu.api("GET", "/api/v1/visitors/me", undefined, authHeaders());
        if (!me.conversation) { resetConversation(); return; }
      } catch (err) {
        if (err.status === 401) { resetConversation(); return; }
      }
      connect();
    }, state.reconnectDelay);
    state.reconnectDelay = Math.min(state.reconnectDelay * 2, 15000);
  }

  function sendFrame(frame) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
    state.ws.send(JSON.stringify(frame));
    return true;
  }

  function handleFrame(frame) {
    switch (frame.type) {
      case "hello":
        setConversation(frame.conversation);
        addMessages(frame.messages, false);
        flushPending();
        if (state.pendingLeaveMessage) sendLeaveMessage();
        break;
      case "message":
        addMessages([frame.message], true);
        break;
      case "ack": {
        const p = state.pending.get(frame.client_key);
        if (p) {
          state.pending.delete(frame.client_key);
          if (p.onAck) p.onAck(frame.seq);
        }
        if (!state.messages.has(frame.seq)) fetchMissing();
        renderMessages();
        break;
      }
      case "queue":
        renderQueue(frame.position, frame.estimated_wait_secs);
        break;
      case "queue_timeout": {
        const banner = $("queue-status");
        banner.classList.add("queue-timeout");
        $("queue-wait").textContent = "，" + (frame.message || "当前咨询人数较多，您可以继续等待，也可以留言");
        show(banner, true);
        break;
      }
      case "state":
        setConversation(frame.conversation);
        break;
      case "typing":
        if (frame.from === "agent") {
          show($("typing-indicator"), !!frame.typing);
          clearTimeout(state.agentTypingTimer);
          if (frame.typing) state.agentTypingTimer = setTimeout(() => show($("typing-indicator"), false), 8000);
          scrollToBottom();
        }
        break;
      case "survey":
        state.surveyed = true;
        if (state.conversation) renderHeader();
        notifyParent({ type: "message", count: 1 });
        break;
      case "error":
        handleSocketError(frame);
        break;
      default:
        break;
    }
  }

  function handleSocketError(frame) {
    const p = frame.client_key && state.pending.get(frame.client_key);
    if (p) {
      p.status = "failed";
      if (frame.code === "conversation_closed") fetchMissing();
      renderMessages();
    }
    if (frame.code === "conversation_closed" && state.pendingLeaveMessage) state.pendingLeaveMessage = null;
    composerError(ERROR_TEXT[frame.code] || "操作失败，请稍后重试");
  }

  async function fetchMissing() {
    if (!state.conversation) return;
    try {
      const data = await window.kefu.api("GET", "/api/v1/conversations/" + encodeURIComponent(state.conversation.id) +
        "/messages?after=" + state.lastSeq, undefined, authHeaders());
      addMessages(data.messages, false);
    } catch (e) { /* the socket will catch up */ }
  }

  function setConversation(view) {
    const before = state.conversation && state.conversation.state;
    state.conversation = view;
    store();
    renderHeader();
    if (before && before !== view.state && (view.state === "ended" || view.state === "abandoned")) {
      show($("typing-indicator"), false);
      stopTyping();
    }
    if (view.state !== "queued") $("queue-status").classList.remove("queue-timeout");
    if (view.state === "ended" || view.state === "abandoned") {
      notifyParent({ type: "ended" });
    }
  }

  // ---------- sending ----------
  function flushPending() {
    for (const [key, p] of state.pending) {
      if (p.stored && state.messages.size) {
        // Stored but the ack was lost: resending the same key just answers the ack again.
      }
      if (p.status !== "failed") sendFrame({ type: "send", client_key: key, body: p.body, attachments: p.attachments });
    }
  }

  function queueMessage(body, attachments, attachmentViews, onAck) {
    const key = newKey();
    state.pending.set(key, { body, attachments: attachments || [], attachmentViews: attachmentViews || [], at: new Date().toISOString(), status: "sending", onAck });
    renderMessages();
    if (!sendFrame({ type: "send", client_key: key, body, attachments: attachments || [] }) && !state.ws) connect();
    // If no ack arrives within 10 s, show it as failed so the visitor can resend (same key: no duplicate).
    setTimeout(() => {
      const p = state.pending.get(key);
      if (p && p.status === "sending") { p.status = "failed"; renderMessages(); }
    }, 10000);
    return key;
  }

  function resend(key) {
    const p = state.pending.get(key);
    if (!p) return;
    p.status = "sending";
    renderMessages();
    if (!sendFrame({ type: "send", client_key: key, body: p.body, attachments: p.attachments })) connect();
    setTimeout(() => {
      const q = state.pending.get(key);
      if (q && q.status === "sending") { q.status = "failed"; renderMessages(); }
    }, 10000);
  }

  async function send() {
    const input = $("message-input");
    const text = input.value.trim();
    if (!text) { input.focus(); return; }
    if (window.kefu.charCount(text) > limits.max_message_chars) { renderCount(); composerError(ERROR_TEXT.message_too_long); return; }
    if (!state.conversation) {
      await startConversation(text, null, state.suggestions.length ? "escalated" : null);
      return;
    }
    input.value = "";
    autoGrow();
    stopTyping();
    queueMessage(text);
  }

  /** Sends a text over the limit as several messages, cut at line and sentence ends. */
  async function sendInPieces() {
    const input = $("message-input");
    const pieces = window.kefu.splitMessage(input.value, limits.max_message_chars);
    if (!pieces.length) return;
    composerError("");
    if (!state.conversation) {
      const [first, ...rest] = pieces;
      input.value = first;
      await send();
      if (!state.conversation) { input.value = [first, ...rest].join("\n"); autoGrow(); return; }
      for (const piece of rest) queueMessage(piece);
    } else {
      input.value = "";
      autoGrow();
      stopTyping();
      for (const piece of pieces) queueMessage(piece);
    }
  }

  /**
   * The length against the limit while typing. Nothing is cut (no maxlength: a paste arrives whole);
   * over the limit the text cannot be sent as one message, and 分条发送 offers to send it in pieces.
   */
  function renderCount() {
    const text = $("message-input").value.trim();
    const n = window.kefu.charCount(text);
    const max = limits.max_message_chars;
    const over = n - max;
    const box = $("char-count");
    show(box, n > 0);
    box.textContent = n + " / " + max + (over > 0 ? " · 超出 " + over + " 字" : "");
    box.classList.toggle("over", over > 0);
    box.dataset.over = over > 0 ? "true" : "false";
    show($("split-send"), over > 0);
    if (over > 0) $("split-send").textContent = "分 " + window.kefu.splitMessage(text, max).length + " 条发送";
    $("send-btn").classList.toggle("blocked", over > 0);
  }

  async function startConversation(text, identity, deflection) {
    if (state.starting) return;
    state.starting = true;
    $("send-btn").disabled = true;
    const body = { message: text, channel };
    if (group != null) body.group = group;
    if (hostPage) body.page = hostPage.slice(0, 2000);
    if (identity) body.identity = identity;
    try {
      const options = state.token ? authHeaders() : undefined;
      let data;
      try {
        data = await window.kefu.api("POST", "/api/v1/visitor/conversations", body, options);
      } catch (err) {
        if (err.status === 401 && state.token) { // a forgotten token: start afresh
          state.token = null;
          data = await window.kefu.api("POST", "/api/v1/visitor/conversations", body);
        } else throw err;
      }
      if (deflection) recordDeflection(deflection, state.suggestShownFor, data.token);
      hideSuggestions();
      state.token = data.token;
      state.messages.clear();
      state.lastSeq = 0;
      state.rated = false;
      state.surveyed = false;
      $("message-input").value = "";
      autoGrow();
      setConversation(data.conversation);
      const alreadyOpen = !(data.messages || []).some((m) => m.kind === "visitor" && m.body === text);
      addMessages(data.messages, false);
      state.lastSeq = 0; // hello will bring every message of an answered open conversation
      for (const m of data.messages || []) if (m.seq > state.lastSeq) state.lastSeq = m.seq;
      if (alreadyOpen && (data.conversation.state === "queued" || data.conversation.state === "active")) {
        // An open conversation was answered instead: the message goes over the socket.
        state.lastSeq = 0;
        state.messages.clear();
        queueMessage(text);
      }
      connect();
    } catch (err) {
      if (err.code === "visitor_blocked") showBlocked();
      else composerError(errorText(err));
    } finally {
      state.starting = false;
      renderHeader();
    }
  }

  /** Tells how the articles shown for `question` served; the token makes it count once per visitor and question. */
  function recordDeflection(outcome, question, token) {
    if (!question || !token) return;
    window.kefu.api("POST", "/api/v1/visitor/deflection", { outcome, question },
      { headers: { Authorization: "Bearer " + token } }).catch(() => {});
  }

  // ---------- typing ----------
  function onInput() {
    autoGrow();
    const text = $("message-input").value;
    if (!state.conversation) { scheduleSuggest(text); return; }
    if (text.trim() && !state.typingSent) {
      if (sendFrame({ type: "typing", typing: true })) state.typingSent = true;
    }
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(stopTyping, 3000);
    if (!text.trim()) stopTyping();
  }
  function stopTyping() {
    clearTimeout(state.typingTimer);
    if (state.typingSent) { sendFrame({ type: "typing", typing: false }); state.typingSent = false; }
  }
  function autoGrow() {
    const input = $("message-input");
    renderCount();
    if (!input.offsetParent) return; // hidden: measured when shown and typed in
    input.style.height = "auto";
    // The height is the border box (box-sizing: border-box) while scrollHeight excludes the borders:
    // without them a one-line input overflowed by a pixel or two and showed a scrollbar.
    const borders = input.offsetHeight - input.clientHeight;
    const wanted = Math.ceil(input.scrollHeight + borders);
    input.style.height = Math.min(wanted, 120) + "px";
    input.style.overflowY = wanted > 120 ? "auto" : "hidden";
  }

  // ---------- self-service suggestions ----------
  function scheduleSuggest(text) {
    clearTimeout(state.suggestTimer);
    const q = text.trim();
    if (q.length < 2) { hideSuggestions(); return; }
    state.suggestTimer = setTimeout(() => fetchSuggestions(q.slice(0, 500)), 350);
  }
  async function fetchSuggestions(q) {
    if (state.conversation || q === state.suggestShownFor) return;
    try {
      const data = await window.kefu.api("GET", "/api/v1/visitor/suggest?q=" + encodeURIComponent(q));
      if (state.conversation || $("message-input").value.trim().slice(0, 500) !== q) return;
      state.suggestShownFor = q;
      state.suggestions = data.suggestions || [];
      state.suggestIntent = data.intent || "question";
      renderSuggestions();
    } catch (e) { hideSuggestions(); }
  }
  // Greetings, thanks and chit-chat get no articles (the server stays quiet when it is not confident);
  // a visitor who asks for a person (转人工) is offered the queue at once.
  function renderSuggestions() {
    const list = $("suggest-list");
    list.textContent = "";
    const wantsAgent = state.suggestIntent === "ask_for_agent";
    $("suggest-heading").textContent = wantsAgent ? "需要人工服务？" : "猜您想问";
    $("suggest-hint").textContent = wantsAgent ? "点击「转人工」或直接发送，马上为您接入人工客服" : "看看这些解答能否解决您的问题";
    show($("suggest-resolved"), !wantsAgent);
    show(list, !wantsAgent);
    if (wantsAgent) { show($("suggest-panel"), true); return; }
    if (!state.suggestions.length) { show($("suggest-panel"), false); return; }
    state.suggestions.forEach((s, i) => {
      const reply = el("div", { class: "suggest-reply" }, s.reply);
      const item = el("details", { class: "suggest-item", "data-testid": "suggest-item", open: i === 0 ? true : null },
        el("summary", { class: "suggest-title", "data-testid": "suggest-title" }, s.title),
        reply);
      list.appendChild(item);
    });
    show($("suggest-panel"), true);
  }
  function hideSuggestions() {
    state.suggestions = [];
    state.suggestIntent = "question";
    state.suggestShownFor = null;
    show($("suggest-panel"), false);
  }
  function onResolved() {
    const question = state.suggestShownFor;
    ensureToken().then((token) => recordDeflection("resolved", question, token)).catch(() => {});
    hideSuggestions();
    $("message-input").value = "";
    autoGrow();
    const box = $("messages");
    box.textContent = "";
    box.appendChild(el("div", { class: "welcome", "data-testid": "resolved-notice", id: "resolved-notice" },
      el("div", { class: "welcome-icon", "aria-hidden": "true" }, window.kefu.icon("check")),
      el("div", { class: "welcome-title" }, "很高兴帮您解决了问题"),
      el("div", { class: "welcome-text" }, "如还有其他疑问，请直接在下方输入，随时为您服务。")));
  }
  function onEscalate() {
    const text = $("message-input").value.trim();
    if (!text) { $("message-input").focus(); return; }
    startConversation(text, null, "escalated");
  }

  // ---------- files ----------
  async function uploadFile(file) {
    if (!state.conversation) { composerError("请先发送您的问题，再发送图片或文件"); return; }
    const ext = (file.name.split(".").pop() || "").toLowerCase();
    if (limits.upload_types && (!file.name.includes(".") || !limits.upload_types.includes(ext))) {
      composerError("不支持该文件类型，支持 " + limits.upload_types.join("、")); return;
    }
    if (limits.max_upload_bytes && file.size > limits.max_upload_bytes) {
      composerError("文件过大，单个文件不超过 " + formatLimit(limits.max_upload_bytes) + "，请压缩后重新发送"); return;
    }
    if (file.size === 0) { composerError("文件是空的，请重新选择"); return; }
    const hint = $("upload-hint");
    const hintText = hint.textContent;
    hint.textContent = "正在上传 " + file.name + "…";
    try {
      const att = await window.kefu.api("POST", "/api/v1/conversations/" + encodeURIComponent(state.conversation.id) +
        "/files?name=" + encodeURIComponent(file.name), file, authHeaders());
      queueMessage("", [att.hash], [att]);
    } catch (err) {
      composerError(errorText(err));
    } finally {
      hint.textContent = hintText;
      $("file-input").value = "";
    }
  }

  // ---------- emoji ----------
  function buildEmojiPanel() {
    const panel = $("emoji-panel");
    for (const e of EMOJI) {
      panel.appendChild(el("button", { type: "button", class: "emoji", "data-testid": "emoji-item", "aria-label": e,
        onclick: () => insertText(e) }, e));
    }
  }
  function insertText(text) {
    const input = $("message-input");
    const start = input.selectionStart != null ? input.selectionStart : input.value.length;
    const end = input.selectionEnd != null ? input.selectionEnd : input.value.length;
    input.value = input.value.slice(0, start) + text + input.value.slice(end);
    input.selectionStart = input.selectionEnd = start + text.length;
    input.focus();
    onInput();
  }
  function toggleEmoji(force) {
    const panel = $("emoji-panel");
    const on = force != null ? force : panel.hidden;
    show(panel, on);
    $("emoji-btn").setAttribute("aria-expanded", String(on));
  }

  // ---------- leave a message (留言) ----------
  function openLeaveForm() {
    const queued = state.conversation && state.conversation.state === "queued";
    $("leave-form-intro").textContent = queued
      ? "不想继续等待？留下联系方式和补充说明，客服会尽快回复您。"
      : "请留下您的问题和联系方式，客服会尽快回复您。";
    if (!$("leave-body").value && !state.conversation) $("leave-body").value = $("message-input").value;
    show($("leave-error"), false);
    show($("leave-form-modal"), true);
    $(queued ? "leave-name" : "leave-body").focus();
  }
  function closeLeaveForm() { show($("leave-form-modal"), false); }

  async function submitLeaveForm(event) {
    event.preventDefault();
    const name = $("leave-name").value.trim();
    const phone = $("leave-phone").value.trim();
    const email = $("leave-email").value.trim();
    const body = $("leave-body").value.trim();
    const err = $("leave-error");
    const queued = state.conversation && state.conversation.state === "queued";
    if (!queued && !body) { err.textContent = "请填写留言内容"; show(err, true); return; }
    if (phone && !/^[+\d][\d\s-]{5,19}$/.test(phone)) { err.textContent = "手机号格式不正确"; show(err, true); return; }
    if (email && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) { err.textContent = "邮箱格式不正确"; show(err, true); return; }
    if (!phone && !email) { err.textContent = "请至少留下手机号或邮箱，方便客服联系您"; show(err, true); return; }
    show(err, false);
    const contact = [name && ("称呼：" + name), phone && ("手机：" + phone), email && ("邮箱：" + email)].filter(Boolean).join("，");
    closeLeaveForm();
    if (queued) {
      // Contact details and the note go in as a message first; once stored, the queue becomes a message left.
      const text = (body ? body + "\n" : "") + "【联系方式】" + contact;
      queueMessage(text, [], [], () => sendFrame({ type: "leave_message" }));
      return;
    }
    state.pendingLeaveMessage = true;
    const identity = {};
    if (name) identity.name = name;
    if (phone) identity.phone = phone;
    if (email) identity.email = email;
    await startConversation(body + "\n【联系方式】" + contact, identity, null);
    if (state.conversation && state.conversation.state !== "queued") state.pendingLeaveMessage = null;
  }
  function sendLeaveMessage() {
    if (state.conversation && state.conversation.state === "queued" && sendFrame({ type: "leave_message" })) state.pendingLeaveMessage = null;
  }
  function onLeaveButton() {
    // While queued: the visitor may give contact details; without them the queue becomes a message at once.
    openLeaveForm();
  }

  // ---------- end, rating, new chat ----------
  function confirmEnd() { show($("end-confirm"), true); $("end-confirm-yes").focus(); }
  function endConversation() {
    show($("end-confirm"), false);
    stopTyping();
    if (!sendFrame({ type: "end" })) composerError("网络连接异常，请稍后再试");
  }
  function setStars(n) {
    state.stars = n;
    const labels = ["点击星星评分"].concat(survey.labels);
    for (let i = 1; i <= 5; i++) {
      const star = $("rating-star-" + i);
      star.classList.toggle("on", i <= n);
      star.setAttribute("aria-checked", String(i === n));
    }
    $("rating-label").textContent = labels[n] || labels[0];
    $("rating-submit").disabled = n < 1;
  }
  function submitRating() {
    if (state.stars < 1) return;
    const comment = $("rating-comment").value.trim().slice(0, 500);
    const frame = { type: "rate", stars: state.stars };
    if (comment) frame.comment = comment;
    const done = () => {
      state.rated = true;
      if (state.conversation) state.conversation.rated = true;
      renderEnded();
      setTimeout(() => { if (state.ws) state.ws.close(); }, 1500);
    };
    if (sendFrame(frame)) { done(); return; }
    // The socket closed after the end: open it again just to rate.
    connect();
    const wait = setInterval(() => {
      if (sendFrame(frame)) { clearInterval(wait); done(); }
    }, 300);
    setTimeout(() => clearInterval(wait), 10000);
  }
  function resetConversation() {
    if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
    clearTimeout(state.reconnectTimer);
    show($("conn-status"), false);
    state.conversation = null;
    state.messages.clear();
    state.pending.clear();
    state.lastSeq = 0;
    state.rated = false;
    state.surveyed = false;
    setStars(0);
    $("rating-comment").value = "";
    store();
    renderHeader();
    renderMessages();
    $("message-input").focus();
  }

  // ---------- limits (GET /api/v1/visitor/limits) ----------
  function formatLimit(bytes) {
    const mb = bytes / 1024 / 1024;
    if (mb >= 1) return (Number.isInteger(mb) ? mb : mb.toFixed(1)) + " MB";
    return Math.max(1, Math.round(bytes / 1024)) + " KB";
  }
  async function loadSurvey() {
    try {
      const data = await window.kefu.api("GET", "/api/v1/visitor/survey");
      if ([2, 3, 5].includes(data.scale) && Array.isArray(data.labels) && data.labels.length === data.scale) Object.assign(survey, data);
    } catch (e) { /* keep the five-point default */ }
    $("rating-title").textContent = survey.title;
    $("rating-thanks").textContent = survey.thanks;
    for (let i = 1; i <= 5; i++) {
      const star = $("rating-star-" + i);
      star.hidden = i > survey.scale;
      if (i <= survey.scale) star.setAttribute("aria-label", i + " 星 " + survey.labels[i - 1]);
    }
    setStars(state.stars || 0);
    if (state.conversation) renderHeader();
  }

  async function loadLimits() {
    try {
      const data = await window.kefu.api("GET", "/api/v1/visitor/limits");
      if (data.max_message_chars > 0) limits.max_message_chars = data.max_message_chars;
      if (data.max_upload_bytes > 0) limits.max_upload_bytes = data.max_upload_bytes;
      if (Array.isArray(data.upload_types) && data.upload_types.length) limits.upload_types = data.upload_types.map((t) => String(t).toLowerCase());
    } catch (e) { /* keep the generic hint; the server still checks */ }
    ERROR_TEXT.message_too_long = "消息超过 " + limits.max_message_chars + " 字，未发送：请删减，或点「分条发送」";
    renderCount();
    if (limits.upload_types) $("file-input").accept = limits.upload_types.map((t) => "." + t).join(",");
    if (limits.max_upload_bytes) {
      ERROR_TEXT.upload_too_large = "文件过大，请压缩后重新发送（不超过 " + formatLimit(limits.max_upload_bytes) + "）";
    }
    if (limits.upload_types) $("upload-hint").title = "支持的文件类型：" + limits.upload_types.map((t) => t.toUpperCase()).join("、");
    if (limits.max_upload_bytes) $("upload-hint").textContent = "支持图片和文档，单个文件不超过 " + formatLimit(limits.max_upload_bytes);
  }

  // ---------- blocked visitor ----------
  function showBlocked() {
    ctx.blocked = true;
    clearInterval(ctx.heartbeatTimer);
    state.stopped = true;
    if (state.ws) { try { state.ws.onclose = null; state.ws.close(); } catch (e) { /* closed */ } state.ws = null; }
    clearTimeout(state.reconnectTimer);
    show($("conn-status"), false);
    show($("leave-form-modal"), false);
    hideSuggestions();
    const box = $("messages");
    if (!state.messages.size) box.textContent = "";
    renderHeader();
    notifyParent({ type: "invitation-closed" });
  }

  // ---------- visitor token and context ----------
  function validIdentity(raw) {
    if (!raw || typeof raw !== "object") return null;
    const out = {};
    for (const k of ["site", "user_id", "name", "member_level", "signature"]) {
      if (typeof raw[k] === "string" && raw[k].trim()) out[k] = raw[k].trim().slice(0, 200);
    }
    if (raw.expires != null && /^\d{1,12}$/.test(String(raw.expires))) out.expires = Number(raw.expires);
    return out.user_id || out.name ? out : null;
  }
  function httpUrl(url) {
    return typeof url === "string" && /^https?:\/\//i.test(url) ? url.slice(0, 2000) : null;
  }

  /** The visitor's token: the stored one, or a new one from POST /api/v1/visitors (with channel, page, identity). */
  function ensureToken() {
    if (state.token) return Promise.resolve(state.token);
    if (ctx.tokenPromise) return ctx.tokenPromise;
    ctx.tokenPromise = (async () => {
      const body = { channel };
      const url = httpUrl(hostPage);
      if (url) body.page = { url, title: (ctx.hostTitle || "").slice(0, 200) };
      if (ctx.identity) body.identity = ctx.identity;
      let data;
      try {
        data = await window.kefu.api("POST", "/api/v1/visitors", body);
      } catch (err) {
        if (err.code === "identity_invalid" && body.identity) {
          // The host page's signature is wrong or expired: chat on anonymously, and say so once.
          composerError(ERROR_TEXT.identity_invalid);
          delete body.identity;
          data = await window.kefu.api("POST", "/api/v1/visitors", body);
        } else throw err;
      }
      state.token = data.token;
      if (url) ctx.lastPage = url;
      store();
      return state.token;
    })();
    ctx.tokenPromise.catch((err) => { if (err.code === "visitor_blocked") showBlocked(); }).finally(() => { ctx.tokenPromise = null; });
    return ctx.tokenPromise;
  }

  /** Tells the desk which identity the host site vouches for (after the token was issued). */
  async function identify() {
    if (!ctx.identity || !state.token) return;
    try {
      await window.kefu.api("POST", "/api/v1/visitor/identify", ctx.identity, authHeaders());
    } catch (err) {
      if (err.code === "identity_invalid") composerError(ERROR_TEXT.identity_invalid);
    }
  }

  /** Reports a page the visitor opened (the host page, or an SPA navigation forwarded by the widget). */
  async function reportPageView(url, title) {
    url = httpUrl(url || hostPage);
    if (!url || ctx.blocked) return;
    if (url === ctx.lastPage) return;
    ctx.lastPage = url;
    try {
      await ensureToken();
      const body = { url };
      if (title) body.title = String(title).slice(0, 200);
      await window.kefu.api("POST", "/api/v1/visitor/pageviews", body, authHeaders());
    } catch (err) {
      if (err.status === 401) { state.token = null; store(); }
      // 429 rate_limited: a page-view flood; the next navigation reports again.
    }
  }

  async function heartbeat() {
    if (!state.token || ctx.blocked) return;
    try {
      const data = await window.kefu.api("POST", "/api/v1/visitor/heartbeat", undefined, authHeaders());
      handleInvitation(data.invitation);
    } catch (err) {
      if (err.status === 401) { state.token = null; store(); ensureToken().catch(() => {}); }
      else if (err.code === "visitor_blocked") showBlocked();
    }
  }
  function startHeartbeat() {
    clearInterval(ctx.heartbeatTimer);
    heartbeat();
    ctx.heartbeatTimer = setInterval(heartbeat, 20000);
  }

  function conversationOpen() {
    const s = state.conversation && state.conversation.state;
    return s === "queued" || s === "active";
  }
  function handleInvitation(inv) {
    if (!inv) {
      if (ctx.invitationId) hideInvitation(); // answered in another tab, or withdrawn
      return;
    }
    if (inv.id === ctx.invitationId || ctx.answeredInvitations.has(inv.id) || conversationOpen() || ctx.blocked) return;
    ctx.invitationId = inv.id;
    const text = inv.message || "您好，有什么可以帮您的吗？";
    showInvitation(text, null, null, inv);
  }
  function hideInvitation() {
    ctx.invitationId = null;
    show($("invite-card"), false);
    notifyParent({ type: "invitation-closed" });
  }
  async function answerInvitation(accept) {
    const id = ctx.invitationId;
    if (id) ctx.answeredInvitations.add(id);
    hideInvitation();
    if (!state.token) return;
    try {
      await window.kefu.api("POST", "/api/v1/visitor/invitation", { accept }, authHeaders());
    } catch (err) { /* invalid_input: nothing waiting any more */ }
  }

  /** Shows a proactive chat invitation (邀请对话) from an agent: text and accept/decline. */
  function showInvitation(text, onAccept, onDecline, inv) {
    const agent = inv && inv.agent_name;
    $("invite-text").textContent = (agent ? "客服" + agent + "：" : "") + (text || "您好，有什么可以帮您的吗？");
    show($("invite-card"), true);
    $("invite-accept").onclick = async () => {
      if (!onAccept && ctx.invitationId) {
        await answerInvitation(true);
        if (agent || text) {
          // The agent's words greet the visitor where the welcome text was.
          const card = welcomeCard;
          card.textContent = "";
          card.appendChild(el("div", { class: "welcome-icon", "aria-hidden": "true" }, window.kefu.icon("smile")));
          card.appendChild(el("div", { class: "welcome-title" }, agent ? "客服" + agent + "邀请您咨询" : "欢迎咨询在线客服"));
          card.appendChild(el("div", { class: "welcome-text" }, text || ""));
        }
        notifyParent({ type: "open" });
      } else {
        show($("invite-card"), false);
        if (onAccept) onAccept();
      }
      $("message-input").focus();
    };
    $("invite-decline").onclick = () => {
      if (!onDecline && ctx.invitationId) { answerInvitation(false); return; }
      show($("invite-card"), false);
      if (onDecline) onDecline();
    };
    notifyParent({ type: "invitation", text: text || "", agent_name: agent || "" });
  }
  window.kefuChat = { reportPageView, showInvitation };

  /** Messages from the host page (the widget): identity, page views, answers to the invitation card. */
  function onParentMessage(event) {
    if (!hostOrigin || event.source !== window.parent || event.origin !== hostOrigin) return;
    const data = event.data;
    if (!data || data.kefu !== true || typeof data.type !== "string") return;
    if (data.type === "init") {
      ctx.identity = validIdentity(data.identity);
      if (typeof data.title === "string") ctx.hostTitle = data.title.slice(0, 200);
      if (ctx.onInit) ctx.onInit();
    } else if (data.type === "pageview") {
      if (ctx.ready) reportPageView(data.url, data.title);
      else ctx.queuedPage = { url: data.url, title: data.title };
    } else if (data.type === "invitation-answer") {
      if (ctx.invitationId) {
        if (data.accept === true) $("invite-accept").click();
        else answerInvitation(false);
      }
    } else if (data.type === "opened") {
      if (!$("message-input").disabled) $("message-input").focus();
    }
  }
  /** Inside the widget: ask the host page for the identity and title, wait for it at most 1.5 s. */
  function waitForHost() {
    if (!hostOrigin) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { ctx.onInit = null; clearTimeout(t); resolve(); };
      const t = setTimeout(done, 1500);
      ctx.onInit = done;
      notifyParent({ type: "ready" });
    });
  }

  // ---------- start ----------
  async function init() {
    document.body.classList.toggle("embed", embed);
    show($("embed-close"), embed);
    buildEmojiPanel();
    // Without any emoji font the picker would offer boxes: leave it out (typing still works).
    if (!window.kefu.emojiSupported()) $("emoji-btn").hidden = true;
    setStars(0);
    const input = $("message-input");
    input.addEventListener("input", onInput);
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
    });
    input.addEventListener("blur", stopTyping);
    $("send-btn").addEventListener("click", send);
    $("split-send").addEventListener("click", sendInPieces);
    autoGrow();
    $("suggest-resolved").addEventListener("click", onResolved);
    $("suggest-escalate").addEventListener("click", onEscalate);
    $("emoji-btn").addEventListener("click", (e) => { e.stopPropagation(); toggleEmoji(); });
    document.addEventListener("click", (e) => { if (!$("emoji-panel").contains(e.target)) toggleEmoji(false); });
    $("upload-btn").addEventListener("click", () => $("file-input").click());
    $("file-input").addEventListener("change", () => { const f = $("file-input").files[0]; if (f) uploadFile(f); });
    input.addEventListener("paste", (e) => {
      const item = Array.from((e.clipboardData && e.clipboardData.items) || []).find((i) => i.kind === "file");
      if (item && state.conversation) {
        const f = item.getAsFile();
        if (f) { e.preventDefault(); uploadFile(new File([f], f.name && f.name.includes(".") ? f.name : "粘贴的图片.png", { type: f.type })); }
      }
    });
    $("open-leave-form").addEventListener("click", openLeaveForm);
    $("leave-message-btn").addEventListener("click", onLeaveButton);
    $("leave-cancel").addEventListener("click", closeLeaveForm);
    $("leave-form").addEventListener("submit", submitLeaveForm);
    $("end-btn").addEventListener("click", confirmEnd);
    $("end-confirm-no").addEventListener("click", () => show($("end-confirm"), false));
    $("end-confirm-yes").addEventListener("click", endConversation);
    for (let i = 1; i <= 5; i++) {
      const star = $("rating-star-" + i);
      star.addEventListener("click", () => setStars(i));
      star.addEventListener("mouseenter", () => { for (let j = 1; j <= 5; j++) $("rating-star-" + j).classList.toggle("hover", j <= i); });
      star.addEventListener("mouseleave", () => { for (let j = 1; j <= 5; j++) $("rating-star-" + j).classList.remove("hover"); });
    }
    $("rating-submit").addEventListener("click", submitRating);
    $("new-chat-btn").addEventListener("click", resetConversation);
    $("offline-new-chat").addEventListener("click", resetConversation);
    $("embed-close").addEventListener("click", () => notifyParent({ type: "close" }));
    $("lightbox").addEventListener("click", () => show($("lightbox"), false));
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { closeLeaveForm(); show($("end-confirm"), false); show($("lightbox"), false); toggleEmoji(false); }
    });
    window.addEventListener("online", () => { if (!state.wsOpen && state.conversation) connect(); });

    window.addEventListener("message", onParentMessage);

    renderHeader();
    loadLimits();
    loadSurvey();
    await waitForHost();
    const saved = loadStored();
    if (saved && saved.token) {
      state.token = saved.token;
      try {
        const me = await window.kefu.api("GET", "/api/v1/visitors/me", undefined, authHeaders());
        if (me.conversation) {
          state.conversation = { id: me.conversation, state: "queued", agent_name: null, agent_avatar: null, rated: false };
          connect();
        }
      } catch (err) {
        if (err.status === 401) { state.token = null; store(); }
      }
    }
    renderHeader();
    renderMessages();
    if (state.token) {
      identify();
      reportPageView(hostPage, ctx.hostTitle);
    } else {
      try { await ensureToken(); } catch (err) { /* blocked: shown; otherwise the first message retries */ }
    }
    ctx.ready = true;
    if (ctx.queuedPage) { reportPageView(ctx.queuedPage.url, ctx.queuedPage.title); ctx.queuedPage = null; }
    if (!ctx.blocked) startHeartbeat();
    if (!embed && !ctx.blocked) input.focus();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
