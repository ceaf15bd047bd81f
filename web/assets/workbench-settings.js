// 个人设置 (profile, avatar, greeting, send key, notifications, password, 2FA, sessions) and
// 快捷回复 management (list by category, search, create / edit / delete, scope, picture, import / export).
(function () {
  "use strict";
  const wb = window.wb;
  const el = kefu.el;
  const $ = (id) => document.getElementById(id);
  const T = window.kefuText;

  function flash(id, text) {
    const n = $(id);
    n.textContent = text;
    setTimeout(() => { if (n.textContent === text) n.textContent = ""; }, 3000);
  }

  // ================= 个人设置 =================
  function renderProfile() {
    const me = wb.me;
    const av = wb.clear($("set-avatar"));
    if (me.avatar_url) av.append(el("img", { class: "avatar lg", src: me.avatar_url, alt: "" }));
    else av.textContent = wb.initial(me.display_name);
    $("set-username").textContent = me.username;
    $("set-roles").textContent = me.roles.map((r) => wb.ROLE_TEXT[r] || r).join("、");
    $("set-groups").textContent = me.groups.length ? me.groups.map(wb.groupName).join("、") : "未加入技能组";
    $("set-max").textContent = me.max_concurrent + " 个会话";
    $("set-display-name").value = wb.settings.display_name || me.display_name;
    $("set-greeting").value = wb.settings.greeting || "";
    $("set-sendkey-enter").checked = wb.settings.send_key !== "Ctrl+Enter";
    $("set-sendkey-ctrl").checked = wb.settings.send_key === "Ctrl+Enter";
    refreshNotify();
    render2fa();
  }
  function refreshNotify() {
    $("set-sound").checked = !!wb.settings.sound;
    $("set-desktop").checked = !!wb.settings.desktop_notifications;
    const perm = "Notification" in window ? Notification.permission : "unsupported";
    $("notify-permission").textContent = { granted: "浏览器已允许通知", denied: "浏览器已禁止通知，请在浏览器设置中允许", default: "保存后浏览器会询问是否允许通知", unsupported: "当前浏览器不支持桌面通知" }[perm];
  }

  async function patchSettings(body, msgId) {
    try {
      const s = await wb.api("PATCH", "/api/v1/me/settings", body);
      Object.assign(wb.settings, s);
      wb.me.display_name = s.display_name;
      wb.renderMe();
      wb.renderNotifyToggle();
      flash(msgId, "已保存");
      return true;
    } catch (e) {
      wb.toast(wb.errorText(e) + (e.code === "invalid_input" ? "（昵称 1–32 个字符，欢迎语不超过 500 字）" : ""), "error");
      return false;
    }
  }

  async function uploadAvatar(file) {
    if (!file) return;
    if (file.size > 1024 * 1024) { wb.toast("头像图片过大，请选择 1 MB 以内的图片", "error"); return; }
    try {
      const acc = await wb.upload("PUT", "/api/v1/me/avatar", file);
      wb.me.avatar_url = acc.avatar_url;
      wb.renderMe();
      renderProfile();
      wb.toast("头像已更新", "success");
    } catch (e) { wb.toast(wb.errorText(e), "error"); }
  }

  async function changePassword(ev) {
    ev.preventDefault();
    $("cp-error").textContent = "";
    const oldPw = $("cp-old").value, newPw = $("cp-new").value;
    if (!oldPw || !newPw) { $("cp-error").textContent = "请填写当前密码和新密码"; return; }
    if (newPw !== $("cp-confirm").value) { $("cp-error").textContent = "两次输入的新密码不一致"; return; }
    $("cp-submit").disabled = true;
    try {
      await wb.api("POST", "/api/v1/me/password", { old_password: oldPw, new_password: newPw });
      $("password-form").reset();
      flash("cp-msg", "密码已修改，其他设备已退出登录");
      loadSessions();
    } catch (e) {
      $("cp-error").textContent = e.code === "weak_password" ? "新密码不符合要求：" + T.weakRules(e.message).join("；") : wb.errorText(e);
    } finally { $("cp-submit").disabled = false; }
  }

  // ---- 2FA ----
  function render2fa(mode) {
    const on = wb.me.two_factor_enabled;
    $("tfa-state").textContent = on ? "已开启" : "未开启";
    $("tfa-state").className = "tag " + (on ? "green" : "");
    $("tfa-off").hidden = on || mode === "enrol";
    $("tfa-enrol").hidden = mode !== "enrol";
    $("tfa-on").hidden = !on;
    if (mode !== "codes") $("tfa-codes-box").hidden = true;
  }
  async function setup2fa() {
    $("tfa-error").textContent = "";
    try {
      const s = await wb.api("POST", "/api/v1/me/2fa/setup");
      $("tfa-qr").src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(s.qr_svg);
      $("tfa-secret").textContent = s.secret.replace(/(.{4})/g, "$1 ").trim();
      $("tfa-code").value = "";
      render2fa("enrol");
      $("tfa-code").focus();
    } catch (e) { $("tfa-error").textContent = wb.errorText(e); }
  }
  async function confirm2fa() {
    $("tfa-error").textContent = "";
    const code = $("tfa-code").value.trim();
    if (!/^\d{6}$/.test(code)) { $("tfa-error").textContent = "请输入 6 位数字验证码"; return; }
    try {
      const r = await wb.api("POST", "/api/v1/me/2fa/confirm", { code });
      wb.me.two_factor_enabled = true;
      const box = wb.clear($("tfa-codes"));
      r.recovery_codes.forEach((c) => box.append(el("span", { "data-testid": "recovery-code" }, c)));
      render2fa("codes");
      $("tfa-codes-box").hidden = false;
      wb.toast("两步验证已开启", "success");
    } catch (e) { $("tfa-error").textContent = wb.errorText(e); }
  }
  async function disable2fa() {
    $("tfa-error").textContent = "";
    const pw = $("tfa-disable-password").value;
    if (!pw) { $("tfa-error").textContent = "请输入登录密码"; return; }
    try {
      await wb.api("POST", "/api/v1/me/2fa/disable", { password: pw });
      wb.me.two_factor_enabled = false;
      $("tfa-disable-password").value = "";
      render2fa();
      wb.toast("两步验证已关闭", "success");
    } catch (e) {
      $("tfa-error").textContent = e.code === "invalid_input" && wb.me.two_factor_required ? "管理员要求此账号开启两步验证，无法关闭" : wb.errorText(e);
    }
  }

  // ---- sessions ----
  function deviceName(ua) {
    if (!ua) return "未知设备";
    const os = /Windows/.test(ua) ? "Windows" : /iPhone|iPad/.test(ua) ? "iOS" : /Android/.test(ua) ? "Android" : /Mac OS X/.test(ua) ? "macOS" : /Linux/.test(ua) ? "Linux" : "其他";
    const br = /Edg\//.test(ua) ? "Edge" : /Chrome\//.test(ua) ? "Chrome" : /Firefox\//.test(ua) ? "Firefox" : /Safari\//.test(ua) ? "Safari" : "浏览器";
    return br + " · " + os;
  }
  async function loadSessions() {
    const body = wb.clear($("sessions-body"));
    try {
      const r = await wb.api("GET", "/api/v1/me/sessions");
      for (const s of r.sessions) {
        body.append(el("tr", { "data-testid": "session-row" },
          el("td", { title: s.user_agent || "" }, deviceName(s.user_agent), s.current ? el("span", { class: "tag green" }, " 当前设备") : null),
          el("td", { class: "mono" }, s.ip || "—"), el("td", null, wb.fmtDateTime(s.created)), el("td", null, wb.fmtDateTime(s.last_seen)),
          el("td", null, el("button", { type: "button", class: "btn sm" + (s.current ? "" : " danger"), onclick: () => endSession(s) }, s.current ? "退出登录" : "下线"))));
      }
    } catch (e) { body.append(el("tr", null, el("td", { colspan: 5, class: "empty" }, wb.errorText(e)))); }
  }
  async function endSession(s) {
    try {
      await wb.api("DELETE", "/api/v1/me/sessions/" + encodeURIComponent(s.id));
      if (s.current) { location.replace("/login"); return; }
      wb.toast("该设备已下线", "success");
      loadSessions();
    } catch (e) { wb.toast(wb.errorText(e), "error"); }
  }

  // ================= 快捷回复 =================
  let replies = [];
  let catFilter = "";
  let searchHits = null;
  let editing = null;
  let pendingImage = null;

  const isSupervisor = () => wb.hasRole("supervisor") || wb.hasRole("admin");
  function canManage(r) {
    if (wb.hasRole("admin")) return true;
    const s = r.scope;
    if (s.kind === "personal") return s.owner === wb.me.id;
    if (s.kind === "team") return wb.hasRole("supervisor");
    if (s.kind === "group") return wb.hasRole("supervisor") && wb.me.groups.includes(s.group);
    return false;
  }
  function scopeText(s) {
    return s.kind === "team" ? "团队" : s.kind === "group" ? "技能组·" + wb.groupName(s.group) : "个人";
  }
  function scopeOptions() {
    const out = [{ value: "personal", text: "个人（仅自己可见）" }];
    if (isSupervisor()) out.push({ value: "team", text: "团队（全体客服）" });
    const gs = wb.hasRole("admin") ? [...wb.groups.keys()] : wb.hasRole("supervisor") ? wb.me.groups : [];
    for (const g of gs) out.push({ value: "group:" + g, text: "技能组：" + wb.groupName(g) });
    return out;
  }
  const scopeValue = (s) => (s.kind === "group" ? "group:" + s.group : s.kind);
  function scopeFromValue(v) {
    if (v.startsWith("group:")) return { kind: "group", group: Number(v.slice(6)) };
    return { kind: v };
  }

  async function loadReplies() {
    try {
      replies = (await wb.api("GET", "/api/v1/quick-replies")).replies;
    } catch (e) { replies = []; wb.toast(wb.errorText(e), "error"); }
    renderCats();
    renderReplies();
  }

  function renderCats() {
    const box = wb.clear($("replies-cats"));
    const counts = new Map();
    for (const r of replies) {
      const parts = (r.category || "").split("/").filter(Boolean);
      for (let i = 1; i <= parts.length; i++) {
        const k = parts.slice(0, i).join("/");
        counts.set(k, (counts.get(k) || 0) + 1);
      }
      if (!parts.length) counts.set("", (counts.get("") || 0));
    }
    const item = (key, label, n, sub) => el("div", { class: "cat" + (sub ? " sub" : "") + (catFilter === key ? " active" : ""), "data-testid": "reply-category", "data-category": key, onclick: () => { catFilter = key; searchHits = null; $("replies-search").value = ""; renderCats(); renderReplies(); } },
      el("span", { class: "ellipsis" }, label), el("span", { class: "count" }, n));
    box.append(item("", "全部", replies.length, false));
    const keys = [...counts.keys()].filter(Boolean).sort((a, b) => a.localeCompare(b, "zh-CN"));
    for (const k of keys) {
      const depth = k.split("/").length;
      if (depth > 2) continue;
      box.append(item(k, depth === 1 ? k : k.split("/").pop(), counts.get(k), depth > 1));
    }
    const dl = wb.clear($("reply-category-list"));
    for (const k of keys) dl.append(el("option", { value: k }));
  }

  function renderReplies() {
    const body = wb.clear($("replies-body"));
    let list = searchHits || replies.filter((r) => !catFilter || r.category === catFilter || (r.category || "").startsWith(catFilter + "/"));
    if (!list.length) body.append(el("tr", null, el("td", { colspan: 6, class: "empty" }, searchHits ? "没有匹配的快捷回复" : "暂无快捷回复，点击右上角「新建快捷回复」添加")));
    for (const r of list) {
      const manage = canManage(r);
      body.append(el("tr", { id: "reply-row-" + r.id, "data-testid": "reply-row", "data-reply-id": r.id },
        el("td", null,
          el("div", { class: "row" }, r.image_url ? el("img", { class: "thumb", src: r.image_url, alt: "", onclick: () => wb.lightbox(r.image_url) }) : null,
            el("div", { class: "grow" }, el("div", null, el("b", null, r.title), r.matched ? el("span", { class: "tag blue" }, { shortcut_exact: " 编码", shortcut_prefix: " 编码", title: " 标题", content: " 内容" }[r.matched] || "") : null),
              el("div", { class: "small muted ellipsis", title: r.content }, r.content),
              r.tags && r.tags.length ? el("div", { class: "row wrap" }, r.tags.map((t) => el("span", { class: "tag" }, t))) : null))),
        el("td", { class: "mono" }, r.shortcut || "—"),
        el("td", null, r.category || "—"),
        el("td", null, el("span", { class: "tag " + (r.scope.kind === "personal" ? "green" : r.scope.kind === "team" ? "blue" : "orange") }, scopeText(r.scope))),
        el("td", null, r.usage),
        el("td", { class: "nowrap" }, manage ? [
          el("button", { type: "button", class: "btn sm", "data-testid": "reply-edit", onclick: () => openEditor(r) }, "编辑"), " ",
          el("button", { type: "button", class: "btn sm danger", "data-testid": "reply-delete", onclick: (ev) => deleteReply(r, ev.currentTarget) }, "删除"),
        ] : el("span", { class: "muted small" }, "只读"))));
    }
  }

  let searchTimer = null;
  function onSearch() {
    clearTimeout(searchTimer);
    const q = $("replies-search").value.trim();
    searchTimer = setTimeout(async () => {
      if (!q) { searchHits = null; renderReplies(); return; }
      try { searchHits = (await wb.api("GET", "/api/v1/quick-replies/search?limit=50&q=" + encodeURIComponent(q))).hits; } catch (e) { searchHits = []; }
      renderReplies();
    }, 200);
  }

  function openEditor(r) {
    editing = r || null;
    pendingImage = null;
    $("reply-dlg-title").textContent = r ? "编辑快捷回复" : "新建快捷回复";
    const sel = wb.clear($("reply-scope"));
    const opts = scopeOptions();
    if (r && !opts.some((o) => o.value === scopeValue(r.scope))) opts.push({ value: scopeValue(r.scope), text: scopeText(r.scope) });
    for (const o of opts) sel.append(el("option", { value: o.value }, o.text));
    sel.value = r ? scopeValue(r.scope) : "personal";
    $("reply-title").value = r ? r.title : "";
    $("reply-shortcut").value = r && r.shortcut ? r.shortcut : "";
    $("reply-category").value = r ? r.category : catFilter;
    $("reply-content").value = r ? r.content : "";
    $("reply-tags").value = r ? r.tags.join(", ") : "";
    $("reply-image-preview").hidden = !(r && r.image_url);
    if (r && r.image_url) $("reply-image-preview").src = r.image_url;
    $("reply-image-name").textContent = "PNG、JPEG、GIF 或 WebP，不超过 2 MB";
    $("reply-error").textContent = "";
    wb.openDialog("dlg-reply");
    $("reply-title").focus();
  }

  async function saveReply() {
    const body = {
      scope: scopeFromValue($("reply-scope").value),
      title: $("reply-title").value.trim(),
      content: $("reply-content").value.trim(),
      category: $("reply-category").value.trim(),
      tags: $("reply-tags").value.split(/[,，]+/).map((t) => t.trim()).filter(Boolean),
    };
    const sc = $("reply-shortcut").value.trim();
    if (sc) body.shortcut = sc;
    if (!body.title) { $("reply-error").textContent = "请填写标题"; return; }
    if (!body.content) { $("reply-error").textContent = "请填写内容"; return; }
    if (sc && !/^\/?[a-zA-Z0-9_-]{1,20}$/.test(sc)) { $("reply-error").textContent = "快捷编码为 / 加 1–20 个字母、数字、_ 或 -"; return; }
    $("reply-save").disabled = true;
    try {
      const saved = editing ? await wb.api("PUT", "/api/v1/quick-replies/" + editing.id, body) : await wb.api("POST", "/api/v1/quick-replies", body);
      if (pendingImage) {
        try { await wb.upload("PUT", "/api/v1/quick-replies/" + saved.id + "/image", pendingImage); }
        catch (e) { wb.toast("图片上传失败：" + wb.errorText(e, { avatar_too_large: "图片过大，请选择 2 MB 以内的图片", invalid_avatar: "图片仅支持 PNG、JPEG、GIF 或 WebP 格式" }), "error"); }
      }
      $("dlg-reply").close();
      wb.toast(editing ? "快捷回复已更新" : "快捷回复已创建", "success");
      wb.invalidateReplies();
      await loadReplies();
      if ($("replies-search").value.trim()) onSearch();
    } catch (e) {
      $("reply-error").textContent = T.withDetail(wb.errorText(e), e);
    } finally { $("reply-save").disabled = false; }
  }

  async function deleteReply(r, btn) {
    if (btn.dataset.confirm !== "1") {
      btn.dataset.confirm = "1";
      btn.textContent = "确认删除？";
      setTimeout(() => { btn.dataset.confirm = ""; btn.textContent = "删除"; }, 4000);
      return;
    }
    try {
      await wb.api("DELETE", "/api/v1/quick-replies/" + r.id);
      wb.toast("已删除「" + r.title + "」", "success");
      wb.invalidateReplies();
      searchHits = searchHits && searchHits.filter((x) => x.id !== r.id);
      loadReplies();
    } catch (e) { wb.toast(wb.errorText(e), "error"); }
  }

  async function importFile(file) {
    if (!file) return;
    const format = /\.json$/i.test(file.name) ? "json" : "csv";
    const box = $("replies-import-result");
    try {
      const r = await wb.upload("POST", "/api/v1/quick-replies/import?format=" + format, file);
      wb.clear(box).append(el("div", null, "导入完成：成功 " + r.imported + " 条" + (r.errors.length ? "，失败 " + r.errors.length + " 条：" : "。")));
      if (r.errors.length) box.append(el("ul", null, r.errors.map((e) => el("li", null, (format === "csv" ? "第 " + e.line + " 行：" : "第 " + e.line + " 项：") + importReason(e.reason)))));
      box.hidden = false;
      box.className = r.errors.length ? "notice" : "notice ok";
      wb.invalidateReplies();
      loadReplies();
    } catch (e) {
      wb.clear(box).append(wb.errorText(e));
      box.hidden = false;
    }
  }
  function importReason(reason) {
    return T.detailText(reason) || "内容不符合要求，请检查该行";
  }

  // ================= wiring =================
  wb.onReady(() => {
    $("settings-nav").addEventListener("click", (ev) => {
      const a = ev.target.closest("a[data-sec]");
      if (!a) return;
      ev.preventDefault();
      for (const x of document.querySelectorAll("#settings-nav a")) x.classList.toggle("active", x === a);
      $(a.dataset.sec).scrollIntoView({ behavior: "smooth", block: "start" });
    });
    $("avatar-btn").addEventListener("click", () => $("avatar-input").click());
    $("avatar-input").addEventListener("change", (ev) => { uploadAvatar(ev.target.files[0]); ev.target.value = ""; });
    $("profile-save").addEventListener("click", () => patchSettings({ display_name: $("set-display-name").value.trim() }, "profile-msg"));
    $("chat-settings-save").addEventListener("click", () => patchSettings({ greeting: $("set-greeting").value.trim(), send_key: $("set-sendkey-ctrl").checked ? "Ctrl+Enter" : "Enter" }, "chat-settings-msg"));
    $("notify-save").addEventListener("click", async () => {
      if ($("set-desktop").checked) wb.askNotificationPermission();
      await patchSettings({ sound: $("set-sound").checked, desktop_notifications: $("set-desktop").checked }, "notify-msg");
      refreshNotify();
    });
    $("sound-test").addEventListener("click", () => wb.playSound(true));
    $("password-form").addEventListener("submit", changePassword);
    $("tfa-setup").addEventListener("click", setup2fa);
    $("tfa-confirm").addEventListener("click", confirm2fa);
    $("tfa-code").addEventListener("keydown", (ev) => { if (ev.key === "Enter") confirm2fa(); });
    $("tfa-cancel").addEventListener("click", () => render2fa());
    $("tfa-disable").addEventListener("click", disable2fa);

    $("replies-new").addEventListener("click", () => openEditor(null));
    $("replies-search").addEventListener("input", onSearch);
    $("reply-save").addEventListener("click", saveReply);
    $("reply-image-btn").addEventListener("click", () => $("reply-image-input").click());
    $("reply-image-input").addEventListener("change", (ev) => {
      const f = ev.target.files[0];
      ev.target.value = "";
      if (!f) return;
      if (f.size > 2 * 1024 * 1024) { $("reply-error").textContent = "图片过大，请选择 2 MB 以内的图片"; return; }
      pendingImage = f;
      $("reply-image-preview").src = URL.createObjectURL(f);
      $("reply-image-preview").hidden = false;
      $("reply-image-name").textContent = f.name + "（保存后上传）";
    });
    // Variable buttons insert at the cursor of their field (quick reply content, greeting).
    document.querySelectorAll("[data-var][data-target]").forEach((b) => b.addEventListener("click", () => {
      const t = $(b.dataset.target);
      const s = t.selectionStart;
      t.value = t.value.slice(0, s) + b.dataset.var + t.value.slice(t.selectionEnd);
      t.focus();
      t.setSelectionRange(s + b.dataset.var.length, s + b.dataset.var.length);
    }));
    $("replies-import-btn").addEventListener("click", () => $("replies-import-file").click());
    $("replies-import-file").addEventListener("change", (ev) => { importFile(ev.target.files[0]); ev.target.value = ""; });
  });
  wb.views.settings = {
    show() { renderProfile(); loadSessions(); },
    refreshNotify,
  };
  wb.views.replies = {
    show() { loadReplies(); },
  };
})();
