// Workbench core: session, views by hash, the agent socket, presence, notifications, shared helpers.
// The other workbench-*.js files register their views on window.wb.
(function () {
  "use strict";
  const el = kefu.el;
  const $ = (id) => document.getElementById(id);
  const T = window.kefuText;

  const wb = {
    $, el,
    me: null,
    settings: { sound: true, desktop_notifications: true, send_key: "Enter", greeting: "" },
    groups: new Map(),
    problemTypes: [],
    colleagues: new Map(), // account id -> {id, display_name, ...} (full list for admins; names seen otherwise)
    views: {},
    frameHandlers: [],
    readyHandlers: [],
    ws: null,
    wsOpen: false,
    currentView: null,
  };
  window.wb = wb;

  // ---------- helpers ----------
  wb.errorText = (e, overrides) => T.errorText(e, overrides);

  wb.toast = function (text, kind, ms) {
    const t = el("div", { class: "toast " + (kind || "info"), role: "status" }, text);
    $("toasts").append(t);
    setTimeout(() => t.remove(), ms || (kind === "error" ? 5000 : 3000));
  };

  /** kefu.api plus the session rules: 401 goes to sign-in, a pending password change or enrolment too. */
  wb.api = async function (method, path, body, options) {
    try {
      return await kefu.api(method, path, body, options);
    } catch (e) {
      if (e.status === 401 && (e.code === "unauthenticated" || e.code === "session_expired")) toLogin(e.code === "session_expired");
      else if (e.code === "password_change_required" || e.code === "two_factor_setup_required") toLogin(false, true);
      throw e;
    }
  };
  function toLogin(expired, resume) { kefu.toLogin("/workbench" + location.hash, expired, resume); }
  wb.toLogin = toLogin;

  /** Raw fetch for file bodies (uploads) with the CSRF header; answers parsed JSON. */
  wb.upload = async function (method, path, blob) {
    const headers = { "Content-Type": "application/octet-stream" };
    if (kefu.csrfToken) headers["X-CSRF-Token"] = kefu.csrfToken;
    const r = await fetch(path, { method, headers, body: blob, credentials: "same-origin" });
    const type = r.headers.get("Content-Type") || "";
    const data = type.includes("application/json") ? await r.json() : await r.text();
    if (!r.ok) {
      if (r.status === 413 && !(data && data.code)) throw new kefu.ApiError(413, "upload_too_large", "too large");
      if (r.status === 401) toLogin(true);
      throw new kefu.ApiError(r.status, data && data.code, data && data.message);
    }
    return data;
  };

  const pad = (n) => String(n).padStart(2, "0");
  wb.fmtTime = function (iso) {
    if (!iso) return "";
    const d = new Date(iso), now = new Date();
    const hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
    if (d.toDateString() === now.toDateString()) return hm;
    const y = new Date(now); y.setDate(now.getDate() - 1);
    if (d.toDateString() === y.toDateString()) return "昨天 " + hm;
    if (d.getFullYear() === now.getFullYear()) return (d.getMonth() + 1) + "月" + d.getDate() + "日 " + hm;
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + hm;
  };
  wb.fmtDateTime = function (iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  };
  wb.fmtDuration = function (secs) {
    secs = Math.max(0, Math.floor(secs));
    if (secs < 60) return secs + "秒";
    const m = Math.floor(secs / 60), s = secs % 60;
    if (m < 60) return m + "分" + (s ? pad(s) + "秒" : "");
    return Math.floor(m / 60) + "小时" + (m % 60) + "分";
  };
  wb.fmtSize = function (n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  };
  wb.initial = (name) => (String(name || "?").trim()[0] || "?").toUpperCase();
  wb.groupName = (id) => (id == null ? "不限技能组" : (wb.groups.get(id) && wb.groups.get(id).name) || "技能组 " + id);
  wb.agentName = function (id) {
    if (id == null) return "—";
    if (wb.me && id === wb.me.id) return wb.me.display_name;
    const c = wb.colleagues.get(id);
    return c ? c.display_name : "客服 #" + id;
  };
  wb.noteColleague = function (id, name) {
    if (id == null || !name || (wb.me && id === wb.me.id)) return;
    if (!wb.colleagues.has(id)) wb.colleagues.set(id, { id, display_name: name, partial: true });
  };
  wb.STATE_TEXT = { queued: "排队中", active: "接待中", ended: "已结束", abandoned: "已放弃", offline_message: "留言" };
  wb.STATE_TAG = { queued: "orange", active: "green", ended: "", abandoned: "", offline_message: "blue" };
  wb.CHANNEL_TEXT = { web: "网页", app: "App", wechat: "微信", miniprogram: "小程序", h5: "H5", weibo: "微博", api: "API 渠道", wechat_official: "微信公众号", wecom_kf: "微信客服" };
  wb.ROLE_TEXT = { admin: "管理员", supervisor: "主管", agent: "客服", editor: "编辑" };
  wb.PRESENCE_TEXT = { online: "在线", busy: "忙碌", away: "离开", offline: "离线" };
  wb.visitorName = (c) => (c && c.identity && c.identity.name) || "访客 " + String((c && c.visitor_id) || "").slice(-4);
  wb.hasRole = (r) => !!(wb.me && wb.me.roles.includes(r));
  wb.avatarNode = function (url, name, cls) {
    if (url) return el("img", { class: "avatar " + (cls || ""), src: url, alt: "" });
    return el("span", { class: "avatar " + (cls || "") }, wb.initial(name));
  };
  wb.clear = (node) => { while (node.firstChild) node.removeChild(node.firstChild); return node; };
  wb.openDialog = function (id) {
    const d = $(id);
    if (!d.open) d.showModal();
    return d;
  };
  wb.downloadBlob = function (blob, name) {
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 2000);
  };

  // ---------- views ----------
  const VIEWS = ["chat", "visitors", "history", "replies", "stats", "settings"];
  function route() {
    let name = (location.hash || "#chat").slice(1).split("/")[0];
    if (!VIEWS.includes(name)) name = "chat";
    for (const v of VIEWS) $("view-" + v).hidden = v !== name;
    for (const a of document.querySelectorAll("#nav a[data-view]")) a.classList.toggle("active", a.dataset.view === name);
    const first = wb.currentView !== name;
    wb.currentView = name;
    const view = wb.views[name];
    if (view && view.show) view.show(first);
  }
  wb.route = route;

  // ---------- notifications ----------
  let audio = null;
  wb.playSound = function (force) {
    if (!force && !wb.settings.sound) return;
    try {
      if (!audio) audio = new Audio("/assets/sounds/notify.wav");
      audio.currentTime = 0;
      const p = audio.play();
      if (p && p.catch) p.catch(() => {});
    } catch (_) { /* autoplay refused */ }
  };
  wb.notify = function (title, body, onClick, tag) {
    wb.playSound();
    if (!wb.settings.desktop_notifications || !("Notification" in window)) return;
    if (Notification.permission !== "granted") return;
    if (document.visibilityState === "visible" && document.hasFocus()) return;
    try {
      const n = new Notification(title, { body: body || "", tag: tag || undefined, icon: "/assets/icons/kefu.svg" });
      n.onclick = () => { window.focus(); if (onClick) onClick(); n.close(); };
      setTimeout(() => n.close(), 10000);
    } catch (_) { /* not supported */ }
  };
  wb.askNotificationPermission = function () {
    if ("Notification" in window && Notification.permission === "default") {
      try { Notification.requestPermission(); } catch (_) { /* ignore */ }
    }
  };
  function renderNotifyToggle() {
    $("notify-toggle").checked = !!(wb.settings.sound || wb.settings.desktop_notifications);
  }
  wb.renderNotifyToggle = renderNotifyToggle;
  async function toggleNotify() {
    const on = $("notify-toggle").checked;
    try {
      const s = await wb.api("PATCH", "/api/v1/me/settings", { sound: on, desktop_notifications: on });
      Object.assign(wb.settings, s);
      if (on) wb.askNotificationPermission();
      wb.toast(on ? "已开启声音和桌面通知" : "已关闭声音和桌面通知", "success");
      if (wb.views.settings && wb.views.settings.refreshNotify) wb.views.settings.refreshNotify();
    } catch (e) { wb.toast(wb.errorText(e), "error"); renderNotifyToggle(); }
  }

  // ---------- presence ----------
  wb.renderPresence = function (p) {
    if (!p) return;
    wb.me.presence = p;
    $("presence-select").value = p.status;
    $("presence-dot").className = "dot " + p.status;
    $("presence-select").title = "接待状态：" + wb.PRESENCE_TEXT[p.status] + (p.automatic ? "（空闲自动离开）" : "");
  };
  async function setPresence() {
    const status = $("presence-select").value;
    try {
      const p = await wb.api("PUT", "/api/v1/me/presence", { status });
      wb.renderPresence(p);
      wb.toast("接待状态已切换为「" + wb.PRESENCE_TEXT[p.status] + "」", "success");
    } catch (e) { wb.toast(wb.errorText(e), "error"); wb.renderPresence(wb.me.presence); }
  }
  async function refreshMe() {
    try {
      const me = await wb.api("GET", "/api/v1/me");
      wb.renderPresence(me.presence);
    } catch (_) { /* handled */ }
  }

  // ---------- unread ----------
  wb.setUnread = function (total) {
    $("unread-total").textContent = total;
    $("unread-total").className = total ? "badge" : "badge grey";
    $("nav-chat-badge").hidden = !total;
    $("nav-chat-badge").textContent = total > 99 ? "99+" : total;
    document.title = (total ? "(" + total + ") " : "") + "客服工作台 · kefu";
  };

  // ---------- agent socket ----------
  let backoff = 1000, pingTimer = null, reconnectTimer = null;
  function setWsState(state) {
    const map = { open: ["online", "已连接"], connecting: ["away", "连接中…"], closed: ["busy", "连接断开，正在重连…"] };
    const [cls, text] = map[state];
    $("ws-dot").className = "dot " + cls;
    $("ws-text").textContent = text;
  }
  function connect() {
    clearTimeout(reconnectTimer);
    setWsState("connecting");
    let ws;
    try { ws = new WebSocket(kefu.wsUrl("/ws/agent")); } catch (_) { scheduleReconnect(); return; }
    wb.ws = ws;
    ws.onopen = () => {
      wb.wsOpen = true;
      backoff = 1000;
      setWsState("open");
      clearInterval(pingTimer);
      pingTimer = setInterval(() => wb.send({ type: "ping" }), 25000);
    };
    ws.onmessage = (ev) => {
      let frame;
      try { frame = JSON.parse(ev.data); } catch (_) { return; }
      for (const h of wb.frameHandlers) {
        try { h(frame); } catch (err) { console.error("frame handler", frame.type, err); }
      }
    };
    ws.onclose = () => {
      wb.wsOpen = false;
      clearInterval(pingTimer);
      if (wb.ws === ws) scheduleReconnect();
    };
    ws.onerror = () => { /* onclose follows */ };
  }
  function scheduleReconnect() {
    setWsState("closed");
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(async () => {
      // A refused handshake is an HTTP answer: check the session before retrying.
      try { await wb.api("GET", "/api/v1/me"); } catch (_) { /* toLogin on 401 */ }
      connect();
    }, backoff);
    backoff = Math.min(backoff * 2, 15000);
  }
  wb.send = function (frame) {
    if (!wb.ws || wb.ws.readyState !== WebSocket.OPEN) return false;
    wb.ws.send(JSON.stringify(frame));
    return true;
  };
  wb.onFrame = (h) => wb.frameHandlers.push(h);
  wb.onReady = (h) => wb.readyHandlers.push(h);

  // ---------- boot ----------
  function renderMe() {
    const me = wb.me;
    $("me-name").textContent = me.display_name;
    const av = $("me-avatar");
    wb.clear(av);
    if (me.avatar_url) av.append(el("img", { class: "avatar", src: me.avatar_url, alt: "" }));
    else av.textContent = wb.initial(me.display_name);
    $("me-role").textContent = me.roles.map((r) => wb.ROLE_TEXT[r] || r).join(" · ");
    $("max-concurrent").textContent = me.max_concurrent;
    $("nav-supervisor").hidden = !(wb.hasRole("supervisor") || wb.hasRole("admin"));
    $("nav-admin").hidden = !(wb.hasRole("supervisor") || wb.hasRole("admin"));
  }
  wb.renderMe = renderMe;

  async function logout() {
    try { await kefu.api("POST", "/api/v1/auth/logout"); } catch (_) { /* gone anyway */ }
    wb.ws && wb.ws.close();
    location.replace("/login");
  }

  async function boot() {
    let me;
    try {
      me = await kefu.api("GET", "/api/v1/me");
    } catch (e) {
      toLogin(e.code === "session_expired");
      return;
    }
    if (me.must_change_password || (me.two_factor_required && !me.two_factor_enabled)) { toLogin(false, true); return; }
    // The desk (its socket, queue and colleagues) is for agents and supervisors; an editor signing in
    // lands here by default and belongs in the knowledge editor.
    const roles = me.roles || [];
    if (!roles.includes("agent") && !roles.includes("supervisor") && roles.includes("editor")) {
      location.replace("/editor");
      return;
    }
    kefu.setCsrfToken(me.csrf_token);
    wb.me = me;
    Object.assign(wb.settings, me.settings || {});
    renderMe();
    wb.renderPresence(me.presence);
    renderNotifyToggle();
    const [groups, types] = await Promise.all([
      wb.api("GET", "/api/v1/groups").catch(() => ({ groups: [] })),
      wb.api("GET", "/api/v1/conversations/problem-types").catch(() => ({ problem_types: [] })),
    ]);
    for (const g of groups.groups) wb.groups.set(g.id, g);
    wb.problemTypes = types.problem_types;
    wb.wrapUpRequired = Boolean(types.wrap_up_required);
    if (wb.hasRole("admin")) {
      try {
        const a = await wb.api("GET", "/api/v1/admin/accounts");
        for (const acc of a.accounts) wb.colleagues.set(acc.id, acc);
      } catch (_) { /* not fatal */ }
    }
    $("presence-select").addEventListener("change", setPresence);
    $("notify-toggle").addEventListener("change", toggleNotify);
    $("logout-btn").addEventListener("click", logout);
    for (const d of document.querySelectorAll("dialog.dlg")) {
      d.addEventListener("click", (ev) => { if (ev.target.closest("[data-close]")) d.close(); });
    }
    document.addEventListener("click", () => wb.askNotificationPermission(), { once: true });
    for (const h of wb.readyHandlers) {
      try { h(); } catch (err) { console.error("ready handler", err); }
    }
    window.addEventListener("hashchange", route);
    route();
    connect();
    setInterval(refreshMe, 60000);
  }
  document.addEventListener("DOMContentLoaded", boot);
})();
