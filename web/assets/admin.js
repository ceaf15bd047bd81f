// Admin console (/admin): the frame (who may see which section, navigation by hash, dialogs, toasts,
// Chinese error texts) and the sections 账号管理 and 技能组. admin-settings.js adds the others through
// window.kefuAdmin.register(). Admins see everything; supervisors their groups' routing and the block
// list; editors the knowledge-base settings. The server decides in the end: every section shows the
// API's refusal in Chinese.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const el = (...args) => window.kefu.el(...args);

  const ROLE_NAMES = { admin: "管理员", supervisor: "主管", agent: "客服", editor: "编辑" };
  const PRESENCE = { online: "在线", busy: "忙碌", away: "离开", offline: "离线" };
  const TIME_ZONES = ["Asia/Shanghai", "Asia/Hong_Kong", "Asia/Taipei", "Asia/Singapore", "Asia/Tokyo", "Asia/Seoul", "Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles", "UTC"];
  const DAY_NAMES = ["", "周一", "周二", "周三", "周四", "周五", "周六", "周日"];

  // The server's messages are English and meant for logs; these are the ones the console's forms can
  // cause, in Chinese, so the admin knows what to fix. Anything else gets the code's text only.
  const FIELD_NAMES = {
    unanswered_secs: "分配后未回复时间", transfer_timeout_secs: "转接等待时间", visitor_idle_remind_mins: "无回复提醒时间",
    visitor_idle_end_mins: "无回复结束时间", queue_wait_limit_mins: "排队超时时间", max_upload_bytes: "单个文件上限",
    max_uploads_per_conversation: "每个会话最多文件数", max_uploads_per_visitor: "每位访客最多文件数", max_queue: "最大排队人数",
    max_concurrent: "最大同时接待数",
  };
  const DETAILS = [
    [/employee number `(.*)` is already used/, (m) => "工号「" + m[1] + "」已被其他账号使用"],
    [/an employee number is at most (\d+)/, (m) => "工号最多 " + m[1] + " 位，只能包含字母、数字、- 和 _"],
    [/a username is 2-32 characters/, () => "用户名须为 2–32 位小写字母、数字、. _ -，并以字母或数字开头"],
    [/a display name is 1-(\d+) characters/, (m) => "显示名称需为 1–" + m[1] + " 个字"],
    [/a display name cannot hold control characters/, () => "显示名称不能包含控制字符"],
    [/the last enabled admin/, () => "至少需要保留一名启用中的管理员"],
    [/an account needs at least one role/, () => "请至少选择一个角色"],
    [/a group name is 1-(\d+) characters/, (m) => "技能组名称需为 1–" + m[1] + " 个字"],
    [/`description` is longer than (\d+)/, (m) => "说明最多 " + m[1] + " 个字"],
    [/working hours must end after they start/, () => "结束时间须晚于开始时间"],
    [/working days are 1 \(Monday\) to 7/, () => "请至少选择一个工作日"],
    [/day_hours names day (\d) twice/, (m) => DAY_NAMES[m[1]] + "的时间重复了"],
    [/day_hours names day (\d), which is not a working day/, (m) => DAY_NAMES[m[1]] + "不是工作日"],
    [/holiday `(.*)` is not a YYYY-MM-DD date/, (m) => "节假日「" + m[1] + "」不是有效日期（YYYY-MM-DD）"],
    [/at most (\d+) holidays/, (m) => "节假日最多 " + m[1] + " 天"],
    [/off_hours_message and queue_message cannot be empty/, () => "非工作时间提示和排队提示不能为空"],
    [/`(off_hours_message|queue_message)` is longer than (\d+)/, (m) => (m[1] === "queue_message" ? "排队提示" : "非工作时间提示") + "最多 " + m[2] + " 个字"],
    [/problem type `(.*)` must be `parent` or `parent\/child`, each part 1-(\d+)/, (m) => "问题类型「" + m[1] + "」格式不正确：应为「一级」或「一级/二级」，每级 1–" + m[2] + " 个字"],
    [/problem type `(.*)` is listed twice/, (m) => "问题类型「" + m[1] + "」重复了"],
    [/there must be 1 to (\d+) problem types/, (m) => "问题类型须为 1–" + m[1] + " 个"],
    [/the survey scale must be 2, 3 or 5/, () => "评价等级只能是 2、3 或 5 级"],
    [/the survey needs (\d+) labels/, (m) => "请为每个等级填写文字（共 " + m[1] + " 项）"],
    [/`survey\.labels` is longer than (\d+)/, (m) => "每个等级文字最多 " + m[1] + " 个字"],
    [/`survey\.title` is longer than (\d+)/, (m) => "评价标题最多 " + m[1] + " 个字"],
    [/`survey\.thanks` is longer than (\d+)/, (m) => "感谢语最多 " + m[1] + " 个字"],
    [/`(survey\.[a-z_]+|messages\.[a-z_]+)` cannot be empty/, () => "内容不能为空"],
    [/`messages\.[a-z_]+` is longer than (\d+)/, (m) => "自动消息最多 " + m[1] + " 个字"],
    [/visitor_idle_end_mins must be longer than visitor_idle_remind_mins/, () => "自动结束时间须长于提醒时间"],
    [/^([a-z_]+) must be between (\d+) and (\d+)/, (m) => (FIELD_NAMES[m[1]] || m[1]) + "须在 " + m[2] + "–" + m[3] + " 之间"],
    [/upload type `(.*)` is not one of/, (m) => "不支持的文件类型「" + m[1] + "」"],
    [/a site id is 1-(\d+)/, (m) => "站点 ID 须为 1–" + m[1] + " 位小写字母、数字、- 或 _"],
    [/site `(.*)` already exists/, (m) => "站点 ID「" + m[1] + "」已存在"],
    [/a site name is 1-(\d+)/, (m) => "站点名称需为 1–" + m[1] + " 个字"],
    [/at most (\d+) sites/, (m) => "最多 " + m[1] + " 个站点"],
    [/dictionary line (\d+): the frequency `(.*)` is not a whole number/, (m) => "词典第 " + m[1] + " 行：词频「" + m[2] + "」不是整数"],
    [/dictionary line (\d+): the word `(.*)` is longer than (\d+)/, (m) => "词典第 " + m[1] + " 行：词「" + m[2] + "」超过 " + m[3] + " 个字"],
    [/dictionary line (\d+): the tag/, (m) => "词典第 " + m[1] + " 行：词性须为 1–8 个英文字母"],
    [/dictionary line (\d+): expected/, (m) => "词典第 " + m[1] + " 行格式应为「词 词频 词性」"],
    [/synonyms line (\d+): a group needs/, (m) => "同义词第 " + m[1] + " 行：每行至少 2 个不同的词，用逗号分隔"],
    [/synonyms line (\d+): the word `(.*)` is longer/, (m) => "同义词第 " + m[1] + " 行：词「" + m[2] + "」过长"],
    [/the file is at most/, () => "文件过大"],
    [/category `(.*)` must be 1-(\d+) characters without spaces/, (m) => "分类 ID「" + m[1] + "」不能包含空格或 #"],
    [/the name of category `(.*)` must be 1-(\d+)/, (m) => "分类「" + m[1] + "」的显示名称需为 1–" + m[2] + " 个字"],
    [/a channel name is 1 to (\d+) characters/, (m) => "渠道名称需为 1–" + m[1] + " 个字"],
    [/an API channel needs a `webhook_url`/, () => "请填写 Webhook 接收地址"],
    [/this channel needs `app_id`/, () => "请填写 AppID（微信客服为 CorpID）"],
    [/this channel needs `app_secret`/, () => "请填写 AppSecret（微信客服为 Secret）"],
    [/a callback Token is 3 to 32 letters and digits/, () => "Token 须为 3–32 位英文字母或数字"],
    [/an EncodingAESKey is (\d+) letters and digits/, (m) => "EncodingAESKey 须为 " + m[1] + " 位英文字母或数字，与微信后台显示的一致"],
    [/`(app_id|app_secret|open_kfid)` is 1 to (\d+) letters/, (m) => ({ app_id: "AppID / CorpID", app_secret: "AppSecret / Secret", open_kfid: "open_kfid" }[m[1]]) + " 须为 1–" + m[2] + " 个字母、数字或符号，不能包含空格"],
    [/is for (WeChat|API|微信客服) channels/, () => "该字段不适用于这种渠道"],
    [/a channel's kind cannot change/, () => "渠道类型创建后不能修改，请新建一个渠道"],
    [/a webhook URL is an http/, () => "接收地址须为 http:// 或 https:// 开头的网址"],
    [/is not a URL/, () => "接收地址不是有效的网址"],
    [/subscribe to at least one event/, () => "请至少订阅一个事件"],
    [/a webhook secret is 16 to 200 bytes/, () => "签名密钥须为 16–200 个字符"],
  ];
  const CODE_TEXT = {
    not_found: "要修改的内容不存在，请刷新后重试",
    group_name_taken: "该技能组名称已存在",
    channel_not_found: "该渠道不存在或已被删除，请刷新后重试",
  };

  /** The Chinese text for an API error, with what to fix when the server said which field. */
  function errorText(err) {
    const base = (err && CODE_TEXT[err.code]) || window.kefuText.errorText(err);
    const message = (err && err.message) || "";
    for (const [pattern, text] of DETAILS) {
      const m = pattern.exec(message);
      if (m) return (err.code === "invalid_input" ? "" : base + "：") + text(m);
    }
    if (err && err.code === "weak_password") {
      const rules = window.kefuText.weakRules(message);
      if (rules.length) return base + "：" + rules.join("；");
    }
    return window.kefuText.withDetail(base, err);
  }

  const state = {
    me: null,
    roles: [],
    isAdmin: false,
    sections: new Map(),
    current: null,
    groups: [], // GET /api/v1/groups (name, pinyin, initials)
    accounts: [], // admin: GET /api/v1/admin/accounts
    selectedGroup: null,
    routing: null,
    holidays: [],
    members: new Set(),
  };

  function isAuthError(err) {
    return err && (err.status === 401 || err.code === "password_change_required" || err.code === "two_factor_setup_required");
  }
  function toLogin(err) {
    const resume = !err || err.code === "password_change_required" || err.code === "two_factor_setup_required";
    window.kefu.toLogin("/admin" + location.hash, Boolean(err && err.code === "session_expired"), resume);
  }

  /** Calls the API; a lost session goes back to the sign-in page. */
  async function api(method, path, body) {
    try {
      return await window.kefu.api(method, path, body);
    } catch (err) {
      if (isAuthError(err)) toLogin(err);
      throw err;
    }
  }

  const pad = (n) => String(n).padStart(2, "0");
  function fmtTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return isNaN(d) ? "—" : d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  function clear(node) { node.textContent = ""; return node; }

  function toast(text, kind) {
    const node = el("div", { class: "toast " + (kind || "info"), role: kind === "error" ? "alert" : "status" }, text);
    $("toasts").appendChild(node);
    setTimeout(() => node.remove(), kind === "error" ? 6000 : 3500);
  }

  /** A short "已保存" next to a save button, cleared after a while. */
  function flash(id, text) {
    const node = $(id);
    if (!node) return;
    node.textContent = text || "已保存";
    clearTimeout(node._timer);
    node._timer = setTimeout(() => { node.textContent = ""; }, 4000);
  }

  function openDialog(id) {
    const dialog = $(id);
    if (!dialog.open) dialog.showModal();
    return dialog;
  }
  function closeDialog(id) { const dialog = $(id); if (dialog.open) dialog.close(); }

  /**
   * Asks before something that cannot be undone; resolves to whether to go on. `action` (optional)
   * runs on 确定 and may throw: its error is shown in the dialog, which stays open.
   */
  function confirmAction(title, text, okText, action) {
    return new Promise((resolve) => {
      $("confirm-title").textContent = title;
      $("confirm-text").textContent = text;
      $("confirm-yes").textContent = okText || "确定";
      $("confirm-error").textContent = "";
      const dialog = openDialog("dlg-confirm");
      const done = (answer) => {
        $("confirm-yes").onclick = null;
        $("confirm-no").onclick = null;
        dialog.onclose = null;
        if (dialog.open) dialog.close();
        resolve(answer);
      };
      $("confirm-no").onclick = () => done(false);
      dialog.onclose = () => done(false);
      $("confirm-yes").onclick = async () => {
        if (!action) { done(true); return; }
        $("confirm-yes").disabled = true;
        try {
          await action();
          done(true);
        } catch (err) {
          $("confirm-error").textContent = errorText(err);
        } finally {
          $("confirm-yes").disabled = false;
        }
      };
      $("confirm-no").focus();
    });
  }

  /** Shows a password or secret once, with a copy button. */
  function showSecret(title, intro, value) {
    $("secret-title").textContent = title;
    $("secret-intro").textContent = intro;
    $("secret-value").textContent = value;
    openDialog("dlg-secret");
    $("secret-copy").focus();
  }

  async function copyText(text, statusId) {
    try {
      await navigator.clipboard.writeText(text);
      if (statusId) flash(statusId, "已复制");
      else toast("已复制到剪贴板", "success");
    } catch (_) {
      toast("无法访问剪贴板，请手动选中后复制", "error");
    }
  }

  function groupName(id) {
    const group = state.groups.find((g) => g.id === id);
    return group ? group.name : "技能组 " + id;
  }

  /** Whether `term` (lower-case) matches a person or group by name, username, pinyin or initials. */
  function matches(term, ...fields) {
    if (!term) return true;
    return fields.some((field) => String(field || "").toLowerCase().includes(term));
  }

  // ---------- sections and navigation ----------

  /** Adds a section: `roles` may see it; `load()` runs each time it is opened. */
  function register(name, section) { state.sections.set(name, section); }

  function allowed(name) {
    const section = state.sections.get(name);
    return section && section.roles.some((role) => state.roles.includes(role));
  }

  async function show(name) {
    if (!allowed(name)) name = [...state.sections.keys()].find(allowed);
    if (!name) return;
    state.current = name;
    for (const key of state.sections.keys()) {
      const view = $("view-" + key);
      if (view) view.hidden = key !== name;
      const link = $("menu-" + key);
      if (link) link.classList.toggle("active", key === name);
    }
    if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
    $("load-error").hidden = true;
    const view = $("view-" + name);
    view.dataset.loading = "true";
    try {
      await state.sections.get(name).load();
    } catch (err) {
      if (isAuthError(err)) return;
      $("load-error").textContent = "加载失败：" + errorText(err);
      $("load-error").hidden = false;
    } finally {
      delete view.dataset.loading;
    }
  }

  // ---------- 账号管理 ----------

  async function loadGroups() {
    const data = await api("GET", "/api/v1/groups");
    state.groups = data.groups || [];
  }

  async function loadAccounts() {
    const [accounts] = await Promise.all([api("GET", "/api/v1/admin/accounts"), loadGroups()]);
    state.accounts = accounts.accounts || [];
    renderAccounts();
  }

  function presenceCell(account) {
    if (account.disabled) return el("span", { class: "tag red", "data-testid": "account-status" }, "已停用");
    const status = account.presence ? account.presence.status : "offline";
    return el("span", { class: "row", "data-testid": "account-status" }, el("span", { class: "dot " + status }), PRESENCE[status] || status,
      account.must_change_password ? el("span", { class: "tag orange" }, "待改密") : null);
  }

  function twoFactorCell(account) {
    if (account.two_factor_enabled) return el("span", { class: "tag green" }, "已开启");
    if (account.two_factor_required) return el("span", { class: "tag orange" }, "已要求，未绑定");
    return el("span", { class: "muted small" }, "未开启");
  }

  function renderAccounts() {
    const term = $("acc-search").value.trim().toLowerCase();
    const role = $("acc-role-filter").value;
    const status = $("acc-status-filter").value;
    const list = state.accounts.filter((a) =>
      matches(term, a.username, a.display_name, a.employee_no, a.pinyin, a.initials)
      && (!role || a.roles.includes(role))
      && (!status || (status === "disabled") === a.disabled));
    $("acc-count").textContent = "共 " + state.accounts.length + " 个账号" + (list.length !== state.accounts.length ? "，显示 " + list.length + " 个" : "");
    const body = clear($("acc-body"));
    for (const a of list) {
      const isMe = state.me && a.id === state.me.id;
      body.appendChild(el("tr", { "data-testid": "account-row", "data-account-id": String(a.id), "data-username": a.username, class: a.disabled ? "ad-row-disabled" : null },
        el("td", null,
          el("div", { class: "ad-name" }, a.display_name, isMe ? el("span", { class: "muted small" }, "（我）") : null),
          el("div", { class: "ad-sub" }, a.username, a.employee_no ? " · 工号 " + a.employee_no : "")),
        el("td", null, el("div", { class: "ad-tags" }, a.roles.map((r) => el("span", { class: "tag" + (r === "admin" ? " blue" : "") }, ROLE_NAMES[r] || r)))),
        el("td", { class: "small" }, a.groups.length ? a.groups.map(groupName).join("、") : el("span", { class: "muted" }, "—")),
        el("td", null, presenceCell(a)),
        el("td", { class: "small nowrap" }, (a.active || 0) + " / " + a.max_concurrent),
        el("td", null, twoFactorCell(a)),
        el("td", { class: "small nowrap" }, a.last_login ? fmtTime(a.last_login) : el("span", { class: "muted" }, "从未登录")),
        el("td", null, el("div", { class: "ad-actions" },
          el("button", { type: "button", class: "btn sm", "data-testid": "acc-edit", id: "acc-edit-" + a.id, onclick: () => openAccount(a) }, "编辑"),
          el("button", { type: "button", class: "btn sm", "data-testid": "acc-reset", onclick: () => resetPassword(a) }, "重置密码"),
          el("button", { type: "button", class: "btn sm", "data-testid": "acc-revoke", onclick: () => revokeSessions(a) }, "强制下线"),
          el("button", { type: "button", class: "btn sm " + (a.disabled ? "" : "danger"), "data-testid": "acc-toggle", onclick: () => toggleDisabled(a) }, a.disabled ? "启用" : "停用")))));
    }
    if (!list.length) body.appendChild(el("tr", null, el("td", { colspan: "8", class: "muted ad-empty" }, state.accounts.length ? "没有符合条件的账号" : "还没有账号")));
  }

  let editing = null; // the account being edited, or null for a new one

  function openAccount(account) {
    editing = account || null;
    $("acc-dlg-title").textContent = account ? "编辑账号 · " + account.username : "新建账号";
    $("acc-save").textContent = account ? "保存" : "创建账号";
    $("acc-username").value = account ? account.username : "";
    $("acc-username").disabled = Boolean(account);
    $("acc-display-name").value = account ? account.display_name : "";
    $("acc-employee-no").value = account ? account.employee_no || "" : "";
    $("acc-max-concurrent").value = account ? account.max_concurrent : 5;
    for (const role of ["agent", "supervisor", "editor", "admin"]) {
      $("acc-role-" + role).checked = account ? account.roles.includes(role) : role === "agent";
    }
    const box = clear($("acc-groups"));
    for (const g of state.groups) {
      box.appendChild(el("label", { class: "check" }, el("input", { type: "checkbox", value: String(g.id), "data-testid": "acc-group", "data-group-id": String(g.id), checked: account ? account.groups.includes(g.id) : false }), g.name));
    }
    if (!state.groups.length) box.appendChild(el("span", { class: "muted small" }, "还没有技能组，可在「技能组」中创建"));
    $("acc-2fa-required").checked = account ? account.two_factor_required : false;
    $("acc-password-hint").hidden = Boolean(account);
    $("acc-error").textContent = "";
    openDialog("dlg-account");
    (account ? $("acc-display-name") : $("acc-username")).focus();
  }

  async function saveAccount() {
    const error = $("acc-error");
    error.textContent = "";
    const roles = ["agent", "supervisor", "editor", "admin"].filter((r) => $("acc-role-" + r).checked);
    const groups = [...$("acc-groups").querySelectorAll("input:checked")].map((i) => Number(i.value));
    const display = $("acc-display-name").value.trim();
    const employee = $("acc-employee-no").value.trim();
    const max = Number($("acc-max-concurrent").value);
    if (!roles.length) { error.textContent = "请至少选择一个角色"; return; }
    if (!Number.isInteger(max) || max < 1 || max > 100) { error.textContent = "最大同时接待数须为 1–100 的整数"; $("acc-max-concurrent").focus(); return; }
    const body = { roles, groups, max_concurrent: max, employee_no: employee };
    $("acc-save").disabled = true;
    try {
      if (editing) {
        if (display) body.display_name = display;
        body.two_factor_required = $("acc-2fa-required").checked;
        await api("PATCH", "/api/v1/admin/accounts/" + editing.id, body);
        closeDialog("dlg-account");
        toast("已保存 " + (display || editing.display_name) + " 的账号", "success");
      } else {
        body.username = $("acc-username").value.trim();
        if (!body.username) { error.textContent = "请填写用户名"; $("acc-username").focus(); return; }
        if (display) body.display_name = display;
        if (!employee) delete body.employee_no;
        const created = await api("POST", "/api/v1/admin/accounts", body);
        if ($("acc-2fa-required").checked) {
          await api("PATCH", "/api/v1/admin/accounts/" + created.account.id, { two_factor_required: true });
        }
        closeDialog("dlg-account");
        showSecret("初始密码", "账号「" + created.account.username + "」（" + created.account.display_name + "）已创建。请把初始密码交给对方，对方首次登录时必须修改密码。", created.initial_password);
      }
      await loadAccounts();
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      $("acc-save").disabled = false;
    }
  }

  function resetPassword(account) {
    let password = null;
    confirmAction("重置密码", "将为「" + account.display_name + "」生成新的随机密码，对方所有登录设备会被强制下线，下次登录须修改密码。", "重置密码", async () => {
      const result = await api("POST", "/api/v1/admin/accounts/" + account.id + "/password", {});
      password = result.password;
    }).then((done) => {
      if (done && password) showSecret("新密码", "「" + account.display_name + "」的新密码如下，请交给对方，对方登录后必须修改。", password);
    });
  }

  function revokeSessions(account) {
    let revoked = 0;
    confirmAction("强制下线", "「" + account.display_name + "」在所有设备上的登录会立即失效。", "强制下线", async () => {
      const result = await api("DELETE", "/api/v1/admin/accounts/" + account.id + "/sessions");
      revoked = result.revoked;
    }).then((done) => { if (done) toast("已强制下线 " + revoked + " 个登录", "success"); });
  }

  function toggleDisabled(account) {
    const disable = !account.disabled;
    const text = disable
      ? "停用后「" + account.display_name + "」无法登录，正在接待的会话会回到排队。"
      : "启用后「" + account.display_name + "」可以重新登录。";
    confirmAction(disable ? "停用账号" : "启用账号", text, disable ? "停用" : "启用", async () => {
      await api("PATCH", "/api/v1/admin/accounts/" + account.id, { disabled: disable });
    }).then(async (done) => {
      if (!done) return;
      toast(disable ? "已停用 " + account.display_name : "已启用 " + account.display_name, "success");
      await loadAccounts();
    });
  }

  // ---------- 技能组 ----------

  async function loadGroupsSection() {
    await loadGroups();
    if (state.isAdmin) {
      const accounts = await api("GET", "/api/v1/admin/accounts");
      state.accounts = accounts.accounts || [];
    }
    $("grp-new").hidden = !state.isAdmin;
    renderGroupList();
    const still = state.selectedGroup && state.groups.find((g) => g.id === state.selectedGroup);
    const first = visibleGroups()[0];
    if (still) await selectGroup(still.id);
    else if (first) await selectGroup(first.id);
    else { $("grp-editor").hidden = true; $("grp-empty").hidden = false; }
  }

  /** Admins see every group; supervisors the groups they belong to. */
  function visibleGroups() {
    if (state.isAdmin) return state.groups;
    const mine = (state.me && state.me.groups) || [];
    return state.groups.filter((g) => mine.includes(g.id));
  }

  function renderGroupList() {
    const term = $("grp-search").value.trim().toLowerCase();
    const list = clear($("grp-list"));
    const groups = visibleGroups().filter((g) => matches(term, g.name, g.pinyin, g.initials));
    for (const g of groups) {
      list.appendChild(el("div", { class: "ad-list-item" + (g.id === state.selectedGroup ? " selected" : ""), "data-testid": "grp-item", "data-group-id": String(g.id), tabindex: "0",
        onclick: () => selectGroup(g.id), onkeydown: (e) => { if (e.key === "Enter") selectGroup(g.id); } },
        el("div", { class: "grow" }, el("div", { class: "ad-name ellipsis" }, g.name), el("div", { class: "ad-sub ellipsis" }, g.description || "—")),
        g.queued ? el("span", { class: "tag orange", title: "排队中" }, String(g.queued)) : null));
    }
    if (!groups.length) list.appendChild(el("div", { class: "empty" }, visibleGroups().length ? "没有符合条件的技能组" : (state.isAdmin ? "还没有技能组，点击「新建技能组」" : "您还不是任何技能组的主管")));
  }

  async function selectGroup(id) {
    state.selectedGroup = id;
    renderGroupList();
    const group = state.groups.find((g) => g.id === id);
    if (!group) return;
    $("grp-empty").hidden = true;
    $("grp-editor").hidden = false;
    $("grp-id-tag").textContent = "ID " + id;
    $("grp-name").value = group.name;
    $("grp-description").value = group.description || "";
    for (const node of [$("grp-name"), $("grp-description")]) node.disabled = !state.isAdmin;
    $("grp-save-info").hidden = !state.isAdmin;
    $("grp-info-note").textContent = state.isAdmin ? "" : "名称和成员由管理员维护";
    for (const node of ["grp-info-error", "grp-members-error", "grp-routing-error", "grp-routing-msg"]) $(node).textContent = "";
    const [routing, members] = await Promise.all([
      api("GET", "/api/v1/admin/groups/" + id + "/routing"),
      api("GET", "/api/v1/admin/groups/" + id + "/members"),
    ]);
    state.members = new Set(members.members.map((m) => m.id));
    state.memberViews = members.members;
    renderMembers();
    fillRouting(routing);
  }

  function renderMembers() {
    const term = $("grp-member-search").value.trim().toLowerCase();
    const box = clear($("grp-members"));
    // Admins choose among every enabled agent or supervisor (and current members); supervisors see members.
    const people = state.isAdmin
      ? state.accounts.filter((a) => state.members.has(a.id) || (!a.disabled && (a.roles.includes("agent") || a.roles.includes("supervisor"))))
      : state.memberViews || [];
    let shown = 0;
    for (const a of people) {
      if (!matches(term, a.username, a.display_name, a.pinyin, a.initials, a.employee_no)) continue;
      shown++;
      const on = state.members.has(a.id);
      const input = el("input", { type: "checkbox", checked: on, disabled: !state.isAdmin, "data-testid": "grp-member-check", "aria-label": a.display_name });
      const row = el("label", { class: "ad-member" + (on ? " on" : ""), "data-testid": "grp-member", "data-account-id": String(a.id), "data-member": on ? "true" : "false" },
        input, el("span", { class: "dot " + (a.presence ? a.presence.status : "offline") }),
        el("span", { class: "grow" }, a.display_name, el("span", { class: "muted small" }, " " + a.username)));
      input.addEventListener("change", () => {
        if (input.checked) state.members.add(a.id); else state.members.delete(a.id);
        row.classList.toggle("on", input.checked);
        row.dataset.member = input.checked ? "true" : "false";
        $("grp-member-count").textContent = String(state.members.size);
      });
      box.appendChild(row);
    }
    if (!shown) box.appendChild(el("div", { class: "muted small" }, term ? "没有找到「" + term + "」" : "组内还没有成员"));
    $("grp-member-count").textContent = String(state.members.size);
    $("grp-members-save").hidden = !state.isAdmin;
    $("grp-members-note").textContent = state.isAdmin ? "可按姓名、拼音或首字母查找，如 xiaomei、xm" : "成员由管理员维护";
  }

  function fillRouting(routing) {
    state.routing = routing;
    const mode = $("grp-mode-" + routing.mode);
    if (mode) mode.checked = true;
    const hours = routing.working_hours;
    $("grp-hours-always").checked = !hours;
    $("grp-hours-scheduled").checked = Boolean(hours);
    const tz = $("grp-tz");
    clear(tz);
    const zone = hours ? hours.time_zone : "Asia/Shanghai";
    for (const name of TIME_ZONES.includes(zone) ? TIME_ZONES : [zone].concat(TIME_ZONES)) tz.appendChild(el("option", { value: name }, name));
    tz.value = zone;
    const week = clear($("grp-week"));
    for (let day = 1; day <= 7; day++) {
      const special = hours && (hours.day_hours || []).find((d) => d.day === day);
      const on = hours ? hours.days.includes(day) : day <= 5;
      const start = special ? special.start : hours ? hours.start : "09:00";
      const end = special ? special.end : hours ? hours.end : "18:00";
      const box = el("div", { class: "ad-day" + (on ? "" : " off"), "data-testid": "grp-day", "data-day": String(day) },
        el("label", { class: "check" }, el("input", { type: "checkbox", id: "grp-day-" + day, "data-testid": "grp-day-on", checked: on }), DAY_NAMES[day]),
        el("input", { type: "time", id: "grp-day-" + day + "-start", "data-testid": "grp-day-start", value: start, "aria-label": DAY_NAMES[day] + "开始" }),
        el("span", { class: "muted small" }, "至"),
        el("input", { type: "time", id: "grp-day-" + day + "-end", "data-testid": "grp-day-end", value: end, "aria-label": DAY_NAMES[day] + "结束" }),
        el("span", { class: "muted small ad-day-note" }, on ? "" : "休息"));
      box.querySelector("input[type=checkbox]").addEventListener("change", (e) => { box.lastChild.textContent = e.target.checked ? "" : "休息"; });
      box.querySelector("input[type=checkbox]").addEventListener("change", (e) => box.classList.toggle("off", !e.target.checked));
      week.appendChild(box);
    }
    state.holidays = hours ? (hours.holidays || []).slice() : [];
    renderHolidays();
    syncHoursKind();
    $("grp-off-hours").value = routing.off_hours_message;
    $("grp-queue-message").value = routing.queue_message;
    $("grp-max-queue").value = routing.max_queue == null ? "" : routing.max_queue;
  }

  function syncHoursKind() {
    const scheduled = $("grp-hours-scheduled").checked;
    $("grp-week").classList.toggle("disabled", !scheduled);
    $("grp-holidays-box").hidden = !scheduled;
    $("grp-tz-row").hidden = !scheduled;
  }

  function renderHolidays() {
    const box = clear($("grp-holidays"));
    state.holidays.sort();
    for (const date of state.holidays) {
      box.appendChild(el("span", { class: "ad-chip", "data-testid": "grp-holiday", "data-date": date }, date,
        el("button", { type: "button", "aria-label": "删除 " + date, onclick: () => { state.holidays = state.holidays.filter((d) => d !== date); renderHolidays(); } }, "×")));
    }
    if (!state.holidays.length) box.appendChild(el("span", { class: "muted small" }, "未设置节假日"));
  }

  /** The routing as the form shows it; throws a Chinese message for what cannot be sent. */
  function routingFromForm() {
    const mode = document.querySelector("input[name=grp-mode]:checked");
    const body = {
      mode: mode ? mode.value : "auto",
      off_hours_message: $("grp-off-hours").value.trim(),
      queue_message: $("grp-queue-message").value.trim(),
      working_hours: null,
      max_queue: null,
    };
    if (!body.off_hours_message || !body.queue_message) throw new Error("非工作时间提示和排队提示不能为空");
    const max = $("grp-max-queue").value.trim();
    if (max) {
      const n = Number(max);
      if (!Number.isInteger(n) || n < 1 || n > 10000) throw new Error("最大排队人数须为 1–10000 的整数，或留空表示不限");
      body.max_queue = n;
    }
    if ($("grp-hours-scheduled").checked) {
      const days = [];
      const spans = {};
      for (let day = 1; day <= 7; day++) {
        if (!$("grp-day-" + day).checked) continue;
        const start = $("grp-day-" + day + "-start").value;
        const end = $("grp-day-" + day + "-end").value;
        if (!start || !end) throw new Error(DAY_NAMES[day] + "请填写开始和结束时间");
        if (start >= end) throw new Error(DAY_NAMES[day] + "的结束时间须晚于开始时间");
        days.push(day);
        spans[day] = [start, end];
      }
      if (!days.length) throw new Error("请至少选择一个工作日");
      // The most common hours are the usual ones; the other days are sent as their own hours.
      const counts = {};
      for (const day of days) { const key = spans[day].join("-"); counts[key] = (counts[key] || 0) + 1; }
      const usual = Object.keys(counts).sort((a, b) => counts[b] - counts[a])[0].split("-");
      body.working_hours = {
        time_zone: $("grp-tz").value,
        days,
        start: usual[0],
        end: usual[1],
        day_hours: days.filter((d) => spans[d].join("-") !== usual.join("-")).map((d) => ({ day: d, start: spans[d][0], end: spans[d][1] })),
        holidays: state.holidays.slice(),
      };
    }
    return body;
  }

  async function saveRouting() {
    const error = $("grp-routing-error");
    error.textContent = "";
    let body;
    try { body = routingFromForm(); } catch (e) { error.textContent = e.message; return; }
    $("grp-routing-save").disabled = true;
    try {
      const saved = await api("PUT", "/api/v1/admin/groups/" + state.selectedGroup + "/routing", body);
      fillRouting(saved);
      flash("grp-routing-msg", "已保存，立即生效");
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      $("grp-routing-save").disabled = false;
    }
  }

  async function saveGroupInfo() {
    const error = $("grp-info-error");
    error.textContent = "";
    const name = $("grp-name").value.trim();
    if (!name) { error.textContent = "请填写技能组名称"; return; }
    try {
      await api("PATCH", "/api/v1/admin/groups/" + state.selectedGroup, { name, description: $("grp-description").value.trim() });
      await loadGroups();
      renderGroupList();
      flash("grp-info-msg");
    } catch (err) {
      error.textContent = errorText(err);
    }
  }

  async function saveMembers() {
    const error = $("grp-members-error");
    error.textContent = "";
    $("grp-members-save").disabled = true;
    try {
      const result = await api("PUT", "/api/v1/admin/groups/" + state.selectedGroup + "/members", { account_ids: [...state.members] });
      state.members = new Set(result.members.map((m) => m.id));
      const accounts = await api("GET", "/api/v1/admin/accounts");
      state.accounts = accounts.accounts || [];
      renderMembers();
      flash("grp-members-msg", "已保存，共 " + state.members.size + " 人");
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      $("grp-members-save").disabled = false;
    }
  }

  function openNewGroup() {
    $("grp-new-name").value = "";
    $("grp-new-description").value = "";
    $("grp-new-error").textContent = "";
    openDialog("dlg-group");
    $("grp-new-name").focus();
  }

  async function createGroup() {
    const error = $("grp-new-error");
    error.textContent = "";
    const name = $("grp-new-name").value.trim();
    if (!name) { error.textContent = "请填写技能组名称"; $("grp-new-name").focus(); return; }
    $("grp-create").disabled = true;
    try {
      const group = await api("POST", "/api/v1/admin/groups", { name, description: $("grp-new-description").value.trim() });
      closeDialog("dlg-group");
      await loadGroups();
      await selectGroup(group.id);
      toast("已创建技能组「" + group.name + "」，请添加成员并设置工作时间", "success");
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      $("grp-create").disabled = false;
    }
  }

  register("accounts", { roles: ["admin"], load: loadAccounts });
  register("groups", { roles: ["admin", "supervisor"], load: loadGroupsSection });

  // ---------- start ----------

  function wire() {
    for (const dialog of document.querySelectorAll("dialog")) {
      dialog.addEventListener("click", (e) => { if (e.target.closest("[data-close]")) dialog.close(); });
    }
    $("acc-new").addEventListener("click", () => openAccount(null));
    $("acc-save").addEventListener("click", saveAccount);
    $("acc-form").addEventListener("submit", (e) => { e.preventDefault(); saveAccount(); });
    for (const id of ["acc-search", "acc-role-filter", "acc-status-filter"]) {
      for (const event of ["input", "search"]) $(id).addEventListener(event, renderAccounts);
    }
    $("secret-copy").addEventListener("click", () => copyText($("secret-value").textContent));
    for (const event of ["input", "search"]) {
      $("grp-search").addEventListener(event, renderGroupList);
      $("grp-member-search").addEventListener(event, renderMembers);
    }
    $("grp-save-info").addEventListener("click", saveGroupInfo);
    $("grp-members-save").addEventListener("click", saveMembers);
    $("grp-routing-save").addEventListener("click", saveRouting);
    $("grp-hours-always").addEventListener("change", syncHoursKind);
    $("grp-hours-scheduled").addEventListener("change", syncHoursKind);
    $("grp-holiday-add").addEventListener("click", () => {
      const date = $("grp-holiday-input").value;
      if (!date) { $("grp-routing-error").textContent = "请选择节假日日期"; return; }
      if (!state.holidays.includes(date)) state.holidays.push(date);
      $("grp-holiday-input").value = "";
      $("grp-routing-error").textContent = "";
      renderHolidays();
    });
    $("grp-new").addEventListener("click", openNewGroup);
    $("grp-create").addEventListener("click", createGroup);
    $("grp-form").addEventListener("submit", (e) => { e.preventDefault(); createGroup(); });
    $("logout-btn").addEventListener("click", async () => {
      try { await window.kefu.api("POST", "/api/v1/auth/logout"); } catch (_) { /* signed out anyway */ }
      location.replace("/login");
    });
    window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  }

  async function init() {
    let me;
    try {
      me = await window.kefu.api("GET", "/api/v1/me");
    } catch (err) {
      if (isAuthError(err)) toLogin(err);
      return;
    }
    if (me.must_change_password || (me.two_factor_required && !me.two_factor_enabled)) { toLogin(); return; }
    window.kefu.setCsrfToken(me.csrf_token);
    state.me = me;
    state.roles = me.roles || [];
    state.isAdmin = state.roles.includes("admin");
    $("me-name").textContent = me.display_name || me.username;
    $("me-role").textContent = state.isAdmin ? "管理员" : state.roles.includes("supervisor") ? "主管" : ROLE_NAMES[state.roles[0]] || "";
    const avatar = $("me-avatar");
    if (me.avatar_url) avatar.appendChild(el("img", { src: me.avatar_url, alt: "", class: "avatar" }));
    else avatar.textContent = (me.display_name || me.username).slice(0, 1);
    $("nav-workbench").hidden = !state.roles.some((r) => r === "agent" || r === "supervisor" || r === "admin");
    $("nav-editor").hidden = !state.roles.some((r) => r === "editor" || r === "admin");
    $("nav-supervisor").hidden = !state.roles.some((r) => r === "supervisor" || r === "admin");
    const visible = [...state.sections.keys()].filter(allowed);
    if (!visible.length) { $("denied").hidden = false; return; }
    for (const name of visible) $("menu-" + name).hidden = false;
    for (const node of document.querySelectorAll("[data-admin-only]")) node.hidden = !state.isAdmin;
    $("ad-side-foot").textContent = state.isAdmin ? "管理员可修改全部设置；每次修改都会记录在审计日志中。" : "您只能看到有权限修改的部分。";
    $("ad-layout").hidden = false;
    wire();
    await show(location.hash.slice(1) || visible[0]);
  }

  window.kefuAdmin = {
    state, api, register, errorText, toast, flash, confirmAction, showSecret, copyText, openDialog, closeDialog,
    fmtTime, clear, matches, loadGroups, groupName, isAdminOnly: () => state.isAdmin,
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
