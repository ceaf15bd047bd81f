// Admin console sections beyond accounts and groups: 会话设置 (problem types, survey, timers, automatic
// messages), 访客与网页 (sites, widget snippet with a live preview, block list, uploads), Webhooks, 审计日志
// and 知识库 (category names, dictionary, synonyms). Registered with window.kefuAdmin (admin.js).
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const el = (...args) => window.kefu.el(...args);
  const ad = window.kefuAdmin;
  const { api, errorText, toast, flash, confirmAction, clear, fmtTime } = ad;

  const UPLOAD_TYPES = ["jpg", "jpeg", "png", "gif", "webp", "pdf", "docx", "xlsx", "txt", "zip"];
  const WEBHOOK_EVENTS = { created: "会话创建", assigned: "会话分配", transferred: "会话转接", ended: "会话结束", rated: "访客评价", offline_message: "访客留言" };
  const DEFAULT_LABELS = { 5: ["非常不满意", "不满意", "一般", "满意", "非常满意"], 3: ["不满意", "一般", "满意"], 2: ["不满意", "满意"] };
  const AUDIT_KINDS = {
    login_succeeded: "登录成功", login_failed: "登录失败", account_locked: "登录锁定", logout: "退出登录",
    password_changed: "修改密码", password_reset: "重置密码", roles_changed: "角色变更", account_created: "创建账号",
    account_disabled: "停用账号", account_enabled: "启用账号", two_factor_changed: "两步验证", sessions_revoked: "强制下线",
    visitor_blocked: "拉黑访客", visitor_unblocked: "解除拉黑", account_changed: "账号修改", group_changed: "技能组变更",
    settings_changed: "会话设置", site_changed: "签名站点", webhook_changed: "Webhook", knowledge_changed: "知识库设置",
  };
  const MESSAGE_KEYS = ["idle_reminder", "idle_end", "ended", "leave_message_prompt", "message_left", "queue_full"];

  const state = {
    settings: null,
    customized: [],
    problems: [], // [{name, leaf, children: [name]}]
    sites: [],
    blocks: [],
    webhooks: [],
    editingWebhook: null,
    logWebhook: null,
    auditEntries: [],
    auditQuery: "",
    categories: [],
    categoryNames: {},
  };

  // ---------- 会话设置 ----------

  async function loadSettings() {
    const data = await api("GET", "/api/v1/admin/settings");
    state.settings = data.settings;
    state.customized = data.customized;
    for (const section of ["wrap_up", "survey", "timers", "messages", "uploads"]) {
      const saved = state.customized.includes(section);
      const tag = $("src-" + section);
      if (tag) {
        tag.textContent = saved ? "已在后台修改" : "使用配置文件默认值";
        tag.className = "tag" + (saved ? " blue" : "");
      }
      const reset = $("reset-" + section);
      if (reset) reset.hidden = !saved;
    }
  }

  async function loadDesk() {
    await loadSettings();
    const s = state.settings;
    $("wrapup-required").checked = s.wrap_up.required;
    state.problems = problemTree(s.wrap_up.problem_types);
    renderProblems();
    $("survey-offer").value = s.survey.offer;
    $("survey-scale").value = String(s.survey.scale);
    $("survey-title").value = s.survey.title;
    $("survey-thanks").value = s.survey.thanks;
    renderLabels(s.survey.labels);
    renderSurveyPreview();
    $("t-unanswered").value = s.timers.unanswered_secs;
    $("t-transfer").value = s.timers.transfer_timeout_secs;
    $("t-remind").value = s.timers.visitor_idle_remind_mins;
    $("t-end").value = s.timers.visitor_idle_end_mins;
    $("t-queue").value = s.timers.queue_wait_limit_mins;
    for (const key of MESSAGE_KEYS) $("m-" + key).value = s.messages[key];
  }

  /** `parent/child` paths as a tree, in their order; a lone `parent` is a type of its own. */
  function problemTree(types) {
    const tree = [];
    for (const type of types) {
      const [parent, child] = type.split("/");
      let node = tree.find((n) => n.name === parent);
      if (!node) { node = { name: parent, leaf: false, children: [] }; tree.push(node); }
      if (child === undefined) node.leaf = true; else node.children.push(child);
    }
    return tree;
  }

  function renderProblems() {
    const box = clear($("pt-tree"));
    state.problems.forEach((node, index) => {
      const nameInput = el("input", { type: "text", value: node.name, maxlength: "20", "data-testid": "pt-parent-name", "aria-label": "一级类型名称" });
      nameInput.addEventListener("input", () => { node.name = nameInput.value; });
      const group = el("div", { class: "ad-pt-group" },
        el("div", { class: "ad-pt-parent", "data-testid": "pt-parent", "data-name": node.name },
          nameInput,
          el("button", { type: "button", class: "btn sm ghost", "data-testid": "pt-delete-parent", "aria-label": "删除 " + node.name, title: "删除该一级类型及其二级类型", onclick: () => { state.problems.splice(index, 1); renderProblems(); } }, "删除")));
      node.children.forEach((child, childIndex) => {
        const input = el("input", { type: "text", value: child, maxlength: "20", "data-testid": "pt-child-name", "aria-label": node.name + " 的二级类型" });
        input.addEventListener("input", () => { node.children[childIndex] = input.value; });
        group.appendChild(el("div", { class: "ad-pt-child", "data-testid": "pt-child", "data-type": node.name + "/" + child, "data-parent-index": String(index) },
          input,
          el("button", { type: "button", class: "btn sm ghost", "data-testid": "pt-delete-child", "aria-label": "删除 " + child, onclick: () => { node.children.splice(childIndex, 1); renderProblems(); } }, "×")));
      });
      group.appendChild(el("div", { class: "ad-pt-foot" },
        el("button", { type: "button", class: "linklike small", "data-testid": "pt-add-child", "data-parent": node.name, onclick: () => { node.children.push(""); renderProblems(); focusLastChild(index); } }, "+ 添加二级类型"),
        el("span", { class: "muted small" }, node.children.length ? node.children.length + " 个二级" : "无二级，可直接选择")));
      box.appendChild(group);
    });
    if (!state.problems.length) box.appendChild(el("div", { class: "empty" }, "还没有问题类型，请在下方添加"));
  }

  function focusLastChild(parentIndex) {
    const rows = document.querySelectorAll('#pt-tree [data-testid=pt-child][data-parent-index="' + parentIndex + '"] input');
    if (rows.length) rows[rows.length - 1].focus();
  }

  /** The tree as `parent/child` paths, or a Chinese message about what is wrong. */
  function problemTypes() {
    const out = [];
    for (const node of state.problems) {
      const parent = node.name.trim();
      if (!parent) throw new Error("一级类型名称不能为空");
      const children = node.children.map((c) => c.trim());
      for (const name of [parent].concat(children)) {
        if (!name) throw new Error("「" + parent + "」下有空的二级类型，请填写或删除");
        if (name.includes("/")) throw new Error("类型名称「" + name + "」中不能包含 /");
        if (Array.from(name).length > 20) throw new Error("类型名称「" + name + "」超过 20 个字");
      }
      if (node.leaf || !children.length) out.push(parent);
      for (const child of children) out.push(parent + "/" + child);
    }
    const seen = new Set();
    for (const type of out) {
      if (seen.has(type)) throw new Error("问题类型「" + type + "」重复了");
      seen.add(type);
    }
    if (!out.length) throw new Error("请至少保留一个问题类型");
    return out;
  }

  /** PATCHes one section; shows the outcome next to its save button. */
  async function saveSection(section, value, prefix, after) {
    const error = $(prefix + "-error");
    error.textContent = "";
    const button = $(prefix + "-save");
    button.disabled = true;
    try {
      const data = await api("PATCH", "/api/v1/admin/settings", { [section]: value });
      state.settings = data.settings;
      state.customized = data.customized;
      await loadSettings();
      if (after) after();
      flash(prefix + "-msg", "已保存，立即生效");
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      button.disabled = false;
    }
  }

  function saveProblems() {
    let types;
    try { types = problemTypes(); } catch (e) { $("pt-error").textContent = e.message; $("pt-msg").textContent = ""; return; }
    saveSection("wrap_up", { problem_types: types, required: $("wrapup-required").checked }, "pt", () => {
      state.problems = problemTree(state.settings.wrap_up.problem_types);
      renderProblems();
    });
  }

  function renderLabels(labels) {
    const scale = Number($("survey-scale").value);
    const box = clear($("survey-labels"));
    for (let i = 0; i < scale; i++) {
      const input = el("input", { type: "text", maxlength: "10", id: "survey-label-" + (i + 1), "data-testid": "survey-label", value: labels[i] || DEFAULT_LABELS[scale][i], "aria-label": (i + 1) + " 级文字" });
      input.addEventListener("input", renderSurveyPreview);
      box.appendChild(el("span", { class: "row" }, el("span", { class: "muted small" }, String(i + 1)), input));
    }
  }

  function surveyFromForm() {
    const scale = Number($("survey-scale").value);
    return {
      offer: $("survey-offer").value,
      scale,
      title: $("survey-title").value.trim(),
      labels: [...$("survey-labels").querySelectorAll("input")].map((i) => i.value.trim()),
      thanks: $("survey-thanks").value.trim(),
    };
  }

  function renderSurveyPreview() {
    const survey = surveyFromForm();
    const box = clear($("survey-preview"));
    if (survey.offer === "never") { box.appendChild(el("div", { class: "muted" }, "不邀请访客评价")); return; }
    box.appendChild(el("div", { class: "title" }, survey.title || "（未填写标题）"));
    const stars = el("div", { class: "stars" });
    for (let i = 1; i <= survey.scale; i++) stars.appendChild(el("button", { type: "button", class: i <= survey.scale - 1 ? "on" : "", tabindex: "-1", "aria-hidden": "true" }, "★"));
    box.appendChild(stars);
    box.appendChild(el("div", { class: "labels" }, el("span", null, survey.labels[0] || ""), el("span", null, survey.labels[survey.labels.length - 1] || "")));
    box.appendChild(el("div", { class: "thanks" }, survey.thanks));
  }

  function saveSurvey() {
    const survey = surveyFromForm();
    if (!survey.title) { $("survey-error").textContent = "请填写评价标题"; return; }
    if (survey.labels.some((l) => !l)) { $("survey-error").textContent = "请为每个等级填写文字"; return; }
    if (!survey.thanks) { $("survey-error").textContent = "请填写感谢语"; return; }
    saveSection("survey", survey, "survey");
  }

  function saveTimers() {
    const value = {
      unanswered_secs: Number($("t-unanswered").value),
      transfer_timeout_secs: Number($("t-transfer").value),
      visitor_idle_remind_mins: Number($("t-remind").value),
      visitor_idle_end_mins: Number($("t-end").value),
      queue_wait_limit_mins: Number($("t-queue").value),
    };
    if (Object.values(value).some((v) => !Number.isInteger(v) || v <= 0)) { $("timers-error").textContent = "请填写正整数"; return; }
    saveSection("timers", value, "timers");
  }

  function saveMessages() {
    const value = {};
    for (const key of MESSAGE_KEYS) value[key] = $("m-" + key).value.trim();
    if (Object.values(value).some((v) => !v)) { $("messages-error").textContent = "自动消息不能为空"; return; }
    saveSection("messages", value, "messages");
  }

  function resetSection(section, title, reload) {
    confirmAction("恢复默认", "「" + title + "」将恢复为配置文件 kefu.toml 中的值，并立即生效。", "恢复默认", async () => {
      await api("DELETE", "/api/v1/admin/settings/" + section);
    }).then(async (done) => {
      if (!done) return;
      toast("已恢复「" + title + "」的默认设置", "success");
      await reload();
    });
  }

  // ---------- 访客与网页 ----------

  async function loadChannels() {
    const tasks = [loadBlocks()];
    if (ad.isAdminOnly()) tasks.push(loadSites(), loadSettings().then(fillUploads), ad.loadGroups().then(fillWidgetGroups));
    await Promise.all(tasks);
    renderSnippet();
  }

  async function loadSites() {
    const data = await api("GET", "/api/v1/admin/sites");
    state.sites = data.sites || [];
    renderSites();
  }

  function renderSites() {
    const body = clear($("site-body"));
    for (const site of state.sites) {
      const nameCell = el("td", { "data-testid": "site-name-cell" }, site.name);
      body.appendChild(el("tr", { "data-testid": "site-row", "data-site-id": site.id },
        el("td", { class: "mono" }, site.id),
        nameCell,
        el("td", { class: "mono small" }, "••••" + site.secret_hint),
        el("td", { class: "small nowrap" }, fmtTime(site.created)),
        el("td", { class: "small nowrap" }, site.rotated ? fmtTime(site.rotated) : "—"),
        el("td", null, el("div", { class: "ad-actions" },
          el("button", { type: "button", class: "btn sm", "data-testid": "site-rename", onclick: () => renameSite(site, nameCell) }, "重命名"),
          el("button", { type: "button", class: "btn sm", "data-testid": "site-rotate", onclick: () => rotateSite(site) }, "轮换密钥"),
          el("button", { type: "button", class: "btn sm danger", "data-testid": "site-delete", onclick: () => deleteSite(site) }, "删除")))));
    }
    if (!state.sites.length) body.appendChild(el("tr", null, el("td", { colspan: "6", class: "muted ad-empty" }, "还没有签名站点：访客身份会显示为「未认证」")));
    const select = $("wg-site");
    const chosen = select.value;
    clear(select).appendChild(el("option", { value: "" }, "不使用"));
    for (const site of state.sites) select.appendChild(el("option", { value: site.id }, site.name + "（" + site.id + "）"));
    select.value = state.sites.some((s) => s.id === chosen) ? chosen : "";
  }

  async function addSite(event) {
    event.preventDefault();
    const error = $("site-error");
    error.textContent = "";
    const id = $("site-id").value.trim();
    const name = $("site-name").value.trim();
    if (!id) { error.textContent = "请填写站点 ID"; $("site-id").focus(); return; }
    if (!name) { error.textContent = "请填写站点名称"; $("site-name").focus(); return; }
    $("site-add").disabled = true;
    try {
      const created = await api("POST", "/api/v1/admin/sites", { id, name });
      $("site-form").reset();
      await loadSites();
      renderSnippet();
      ad.showSecret("站点密钥", "站点「" + created.site.name + "」（" + created.site.id + "）已添加。请把密钥配置到该站点的服务器上，用它为已登录用户的身份签名；不要放在网页里。", created.secret);
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      $("site-add").disabled = false;
    }
  }

  function renameSite(site, cell) {
    const input = el("input", { type: "text", value: site.name, maxlength: "32", "data-testid": "site-rename-input", "aria-label": "站点名称" });
    const save = async () => {
      try {
        await api("PATCH", "/api/v1/admin/sites/" + encodeURIComponent(site.id), { name: input.value.trim() });
        await loadSites();
        toast("已重命名站点 " + site.id, "success");
      } catch (err) {
        $("site-error").textContent = errorText(err);
      }
    };
    clear(cell).appendChild(el("span", { class: "row" }, input,
      el("button", { type: "button", class: "btn sm primary", "data-testid": "site-rename-save", onclick: save }, "保存"),
      el("button", { type: "button", class: "btn sm", onclick: () => renderSites() }, "取消")));
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") save(); if (e.key === "Escape") renderSites(); });
    input.focus();
  }

  function rotateSite(site) {
    let rotated = null;
    confirmAction("轮换密钥", "将为站点「" + site.name + "」生成新密钥，旧密钥立即失效：请尽快把新密钥配置到站点服务器。", "轮换密钥", async () => {
      rotated = await api("POST", "/api/v1/admin/sites/" + encodeURIComponent(site.id) + "/secret");
    }).then(async (done) => {
      if (!done || !rotated) return;
      await loadSites();
      ad.showSecret("新的站点密钥", "站点「" + rotated.site.name + "」的新密钥如下，旧密钥已失效。", rotated.secret);
    });
  }

  function deleteSite(site) {
    confirmAction("删除站点", "删除后，站点「" + site.name + "」签名的访客身份将不再被认可。", "删除", async () => {
      await api("DELETE", "/api/v1/admin/sites/" + encodeURIComponent(site.id));
    }).then(async (done) => { if (done) { await loadSites(); renderSnippet(); toast("已删除站点 " + site.id, "success"); } });
  }

  function fillWidgetGroups() {
    const select = $("wg-group");
    const chosen = select.value;
    clear(select).appendChild(el("option", { value: "" }, "不指定"));
    for (const g of ad.state.groups) select.appendChild(el("option", { value: String(g.id) }, g.name));
    select.value = ad.state.groups.some((g) => String(g.id) === chosen) ? chosen : "";
  }

  const attr = (text) => String(text).replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");

  function renderSnippet() {
    const color = $("wg-color").value || "#1677ff";
    const title = $("wg-title").value.trim() || "在线客服";
    const parts = ['<script src="' + location.origin + '/widget.js"', 'data-channel="' + attr($("wg-channel").value) + '"'];
    if ($("wg-group").value) parts.push('data-group="' + attr($("wg-group").value) + '"');
    if (color.toLowerCase() !== "#1677ff") parts.push('data-color="' + attr(color) + '"');
    if (title !== "在线客服") parts.push('data-title="' + attr(title) + '"');
    let snippet = parts.join(" ") + " async></script>";
    const site = $("wg-site").value;
    if (site) {
      snippet = parts.join(" ") + '\n        data-site="' + attr(site) + '" data-user-id="{用户ID}" data-user-name="{昵称}" data-member-level="{会员等级}"' +
        '\n        data-expires="{过期时间戳}" data-signature="{服务器用站点密钥计算的签名}" async></script>';
    }
    $("wg-snippet").value = snippet;
    $("wg-preview-bubble").style.background = color;
    $("wg-preview-bubble").title = title;
    $("wg-preview-title").textContent = title;
    $("wg-preview-title").style.background = color;
  }

  function fillUploads() {
    const uploads = state.settings.uploads;
    const box = clear($("up-types"));
    for (const type of UPLOAD_TYPES) {
      box.appendChild(el("label", { class: "check" }, el("input", { type: "checkbox", value: type, id: "up-type-" + type, "data-testid": "up-type", checked: uploads.upload_types.includes(type) }), "." + type));
    }
    $("up-max-mb").value = Math.round((uploads.max_upload_bytes / 1048576) * 100) / 100;
    $("up-per-conv").value = uploads.max_uploads_per_conversation;
    $("up-per-visitor").value = uploads.max_uploads_per_visitor;
  }

  function saveUploads() {
    const mb = Number($("up-max-mb").value);
    if (!(mb > 0) || mb > 100) { $("uploads-error").textContent = "单个文件上限须在 0.01–100 MB 之间"; return; }
    const value = {
      upload_types: [...$("up-types").querySelectorAll("input:checked")].map((i) => i.value),
      max_upload_bytes: Math.round(mb * 1048576),
      max_uploads_per_conversation: Number($("up-per-conv").value),
      max_uploads_per_visitor: Number($("up-per-visitor").value),
    };
    saveSection("uploads", value, "uploads", fillUploads);
  }

  function blockTarget(b) {
    return [b.visitor_id ? "访客 " + b.visitor_id : null, b.ip_range ? "IP " + b.ip_range : null].filter(Boolean).join(" + ") || "—";
  }

  async function loadBlocks() {
    const data = await api("GET", "/api/v1/blocks");
    state.blocks = data.blocks || [];
    renderBlocks();
  }

  function renderBlocks() {
    const filter = $("blocks-filter").value;
    $("blocks-count").textContent = state.blocks.filter((b) => b.active).length + " 条生效";
    const list = state.blocks.filter((b) => filter === "all" || (filter === "active" ? b.active : !b.active));
    const body = clear($("blocks-body"));
    for (const b of list) {
      body.appendChild(el("tr", { "data-testid": "block-row", "data-block-id": String(b.id), "data-active": String(b.active) },
        el("td", { class: "mono small" }, blockTarget(b)),
        el("td", null, b.reason),
        el("td", { class: "small" }, String(b.by)),
        el("td", { class: "small nowrap" }, fmtTime(b.created)),
        el("td", { class: "small nowrap" }, b.expires ? fmtTime(b.expires) : "永久"),
        el("td", null, el("span", { class: "tag " + (b.active ? "red" : "") }, b.active ? "生效中" : "已过期")),
        el("td", null, el("button", { type: "button", class: "btn sm", "data-testid": "block-remove", onclick: () => removeBlock(b) }, b.active ? "解除" : "删除记录"))));
    }
    if (!list.length) body.appendChild(el("tr", null, el("td", { colspan: "7", class: "muted ad-empty" }, filter === "active" ? "黑名单为空" : "暂无记录")));
  }

  async function addBlock(event) {
    event.preventDefault();
    const error = $("block-error");
    error.textContent = "";
    const visitor = $("block-visitor").value.trim();
    const ip = $("block-ip").value.trim();
    const reason = $("block-reason").value.trim();
    if (!visitor && !ip) { error.textContent = "请填写访客 ID 或 IP / 网段"; return; }
    if (!reason) { error.textContent = "请填写拉黑原因"; $("block-reason").focus(); return; }
    const body = { reason };
    if (visitor) body.visitor_id = visitor;
    if (ip) body.ip_range = ip;
    const expires = $("block-expires").value;
    if (expires) {
      const d = new Date(expires);
      if (isNaN(d) || d <= new Date()) { error.textContent = "到期时间必须晚于现在"; return; }
      body.expires = d.toISOString();
    }
    try {
      await api("POST", "/api/v1/blocks", body);
      $("block-form").reset();
      $("blocks-filter").value = "active";
      await loadBlocks();
    } catch (err) {
      error.textContent = errorText(err);
    }
  }

  function removeBlock(b) {
    confirmAction(b.active ? "解除拉黑" : "删除记录", (b.active ? "解除后，" + blockTarget(b) + " 可以重新发起咨询。" : "将删除 " + blockTarget(b) + " 的过期记录。") + "原因：" + b.reason, b.active ? "解除" : "删除", async () => {
      await api("DELETE", "/api/v1/blocks/" + b.id);
    }).then(async (done) => { if (done) await loadBlocks(); });
  }

  // ---------- Webhooks ----------

  async function loadWebhooks() {
    const data = await api("GET", "/api/v1/admin/webhooks");
    state.webhooks = data.webhooks || [];
    renderWebhooks();
    if (state.logWebhook) await loadDeliveries();
  }

  function renderWebhooks() {
    const body = clear($("wh-body"));
    for (const w of state.webhooks) {
      body.appendChild(el("tr", { "data-testid": "webhook-row", "data-webhook-id": String(w.id) },
        el("td", { class: "mono small ad-detail-cell" }, w.url),
        el("td", null, el("div", { class: "ad-tags" }, [...w.events].map((e) => el("span", { class: "tag" }, WEBHOOK_EVENTS[e] || e)))),
        el("td", null, el("span", { class: "tag " + (w.enabled ? "green" : "") }, w.enabled ? "启用" : "已暂停")),
        el("td", { class: "small nowrap" }, fmtTime(w.created)),
        el("td", null, el("div", { class: "ad-actions" },
          el("button", { type: "button", class: "btn sm", "data-testid": "webhook-test", id: "webhook-test-" + w.id, onclick: (e) => testWebhook(w, e.currentTarget) }, "发送测试"),
          el("button", { type: "button", class: "btn sm", "data-testid": "webhook-log", onclick: () => openLog(w) }, "投递记录"),
          el("button", { type: "button", class: "btn sm", "data-testid": "webhook-edit", onclick: () => openWebhook(w) }, "编辑"),
          el("button", { type: "button", class: "btn sm danger", "data-testid": "webhook-delete", onclick: () => deleteWebhook(w) }, "删除")))));
    }
    if (!state.webhooks.length) body.appendChild(el("tr", null, el("td", { colspan: "5", class: "muted ad-empty" }, "还没有 Webhook")));
  }

  function openWebhook(webhook) {
    state.editingWebhook = webhook || null;
    $("wh-dlg-title").textContent = webhook ? "编辑 Webhook" : "新建 Webhook";
    $("wh-url").value = webhook ? webhook.url : "";
    $("wh-secret").value = "";
    $("wh-secret").placeholder = webhook ? "留空则不修改" : "留空将自动生成";
    $("wh-enabled").checked = webhook ? webhook.enabled : true;
    const box = clear($("wh-events"));
    for (const [event, label] of Object.entries(WEBHOOK_EVENTS)) {
      box.appendChild(el("label", { class: "check" }, el("input", { type: "checkbox", value: event, "data-testid": "wh-event", checked: webhook ? webhook.events.includes(event) : true }), label, el("span", { class: "muted small" }, " " + event)));
    }
    $("wh-error").textContent = "";
    ad.openDialog("dlg-webhook");
    $("wh-url").focus();
  }

  async function saveWebhook() {
    const error = $("wh-error");
    error.textContent = "";
    const body = {
      url: $("wh-url").value.trim(),
      events: [...$("wh-events").querySelectorAll("input:checked")].map((i) => i.value),
      enabled: $("wh-enabled").checked,
    };
    if (!body.url) { error.textContent = "请填写接收地址"; return; }
    if (!body.events.length) { error.textContent = "请至少订阅一个事件"; return; }
    const secret = $("wh-secret").value.trim();
    if (secret) body.secret = secret;
    $("wh-save").disabled = true;
    try {
      const saved = state.editingWebhook
        ? await api("PATCH", "/api/v1/admin/webhooks/" + state.editingWebhook.id, body)
        : await api("POST", "/api/v1/admin/webhooks", body);
      ad.closeDialog("dlg-webhook");
      if (!state.editingWebhook) ad.showSecret("Webhook 签名密钥", "请在接收方用此密钥校验 X-Kefu-Signature（HMAC-SHA256）。", saved.secret);
      else toast("已保存 Webhook", "success");
      await loadWebhooks();
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      $("wh-save").disabled = false;
    }
  }

  /** A delivery's failure in Chinese (the sender's errors are English). */
  function deliveryError(delivery) {
    if (delivery.last_status && !delivery.last_error) return "接收方返回 HTTP " + delivery.last_status;
    const text = delivery.last_error || "";
    let m;
    if ((m = /the receiver answered (\d+)/.exec(text))) return "接收方返回 HTTP " + m[1];
    if (/refused/i.test(text)) return "无法连接：连接被拒绝";
    if (/timed? ?out|timeout/i.test(text)) return "无法连接：超过 10 秒未响应";
    if (/dns|resolve|lookup/i.test(text)) return "无法解析接收地址的域名";
    if (/certificate|tls/i.test(text)) return "HTTPS 证书校验失败";
    return text || "无法连接";
  }

  async function testWebhook(webhook, button) {
    button.disabled = true;
    try {
      const delivery = await api("POST", "/api/v1/admin/webhooks/" + webhook.id + "/test");
      if (delivery.status === "succeeded") toast("测试成功：接收方返回 " + delivery.last_status, "success");
      else toast("测试失败：" + deliveryError(delivery), "error");
      if (state.logWebhook && state.logWebhook.id === webhook.id) await loadDeliveries();
    } catch (err) {
      toast(errorText(err), "error");
    } finally {
      button.disabled = false;
    }
  }

  function deleteWebhook(webhook) {
    confirmAction("删除 Webhook", "将删除 " + webhook.url + " 及其投递记录。", "删除", async () => {
      await api("DELETE", "/api/v1/admin/webhooks/" + webhook.id);
    }).then(async (done) => {
      if (!done) return;
      if (state.logWebhook && state.logWebhook.id === webhook.id) { state.logWebhook = null; $("wh-log").hidden = true; }
      await loadWebhooks();
    });
  }

  async function openLog(webhook) {
    state.logWebhook = webhook;
    $("wh-log-url").textContent = webhook.url;
    $("wh-log").hidden = false;
    await loadDeliveries();
    $("wh-log").scrollIntoView({ block: "nearest" });
  }

  async function loadDeliveries() {
    const webhook = state.logWebhook;
    const data = await api("GET", "/api/v1/admin/webhooks/" + webhook.id + "/deliveries");
    const body = clear($("wh-deliveries-body"));
    const STATUS = { pending: ["等待重试", "orange"], succeeded: ["成功", "green"], failed: ["失败", "red"] };
    for (const d of data.deliveries) {
      const [text, color] = STATUS[d.status] || [d.status, ""];
      body.appendChild(el("tr", { "data-testid": "delivery-row", "data-delivery-id": String(d.id), "data-status": d.status },
        el("td", { class: "small nowrap" }, fmtTime(d.created)),
        el("td", null, d.event === "ping" ? "测试 ping" : WEBHOOK_EVENTS[d.event] || d.event),
        el("td", null, el("span", { class: "tag " + color }, text)),
        el("td", { class: "small" }, String(d.attempts)),
        el("td", { class: "small ad-detail-cell", title: d.last_error || "" }, d.status === "succeeded" ? "HTTP " + d.last_status : d.last_status || d.last_error ? deliveryError(d) : "—"),
        el("td", null, el("button", { type: "button", class: "btn sm", "data-testid": "delivery-redeliver", onclick: () => redeliver(d) }, "重新投递"))));
    }
    if (!data.deliveries.length) body.appendChild(el("tr", null, el("td", { colspan: "6", class: "muted ad-empty" }, "还没有投递记录，可点击「发送测试」")));
  }

  async function redeliver(delivery) {
    try {
      await api("POST", "/api/v1/admin/webhooks/" + delivery.webhook + "/deliveries/" + delivery.id + "/redeliver");
      toast("已重新加入投递队列", "success");
      await loadDeliveries();
    } catch (err) {
      toast(errorText(err), "error");
    }
  }

  ad.deliveryError = deliveryError;

  // ---------- 审计日志 ----------

  function auditParams() {
    const params = new URLSearchParams();
    const account = $("audit-account").value.trim();
    if (account) params.set("account", account);
    if ($("audit-kind").value) params.set("kind", $("audit-kind").value);
    for (const [id, key] of [["audit-from", "from"], ["audit-to", "to"]]) {
      const value = $(id).value;
      if (!value) continue;
      const d = new Date(value);
      if (isNaN(d)) throw new Error("时间格式不正确");
      params.set(key, d.toISOString());
    }
    if (params.get("from") && params.get("to") && params.get("from") >= params.get("to")) throw new Error("结束时间须晚于开始时间");
    return params;
  }

  async function loadAudit(more) {
    let params;
    try { params = auditParams(); } catch (e) { $("audit-info").textContent = e.message; return; }
    $("audit-export").href = "/api/v1/admin/audit/export" + (params.toString() ? "?" + params : "");
    if (more && state.auditEntries.length) params.set("before", String(state.auditEntries[state.auditEntries.length - 1].seq));
    else state.auditEntries = [];
    params.set("limit", "100");
    const data = await api("GET", "/api/v1/admin/audit?" + params);
    state.auditEntries = state.auditEntries.concat(data.entries);
    const body = clear($("audit-body"));
    for (const e of state.auditEntries) {
      body.appendChild(el("tr", { "data-testid": "audit-row", "data-kind": e.kind },
        el("td", { class: "small nowrap" }, fmtTime(e.at)),
        el("td", null, el("span", { class: "tag" }, AUDIT_KINDS[e.kind] || e.kind)),
        el("td", { class: "small" }, e.account),
        el("td", { class: "small" }, e.actor || "—"),
        el("td", { class: "small mono" }, e.ip || "—"),
        el("td", { class: "small ad-detail-cell" }, e.detail || "—")));
    }
    if (!state.auditEntries.length) body.appendChild(el("tr", null, el("td", { colspan: "6", class: "muted ad-empty" }, "没有符合条件的记录")));
    $("audit-more").hidden = data.entries.length < 100;
    $("audit-info").textContent = "已显示 " + state.auditEntries.length + " 条";
  }

  // ---------- 知识库 ----------

  async function loadKb() {
    const [categories, names, dictionary, synonyms] = await Promise.all([
      api("GET", "/api/v1/kb/categories"),
      api("GET", "/api/v1/kb/category-names"),
      api("GET", "/api/v1/kb/dictionary"),
      api("GET", "/api/v1/kb/synonyms"),
    ]);
    state.categories = categories.categories || [];
    state.categoryNames = Object.assign({}, names.names);
    renderCategories();
    $("kb-dict").value = dictionary.text;
    $("kb-syn").value = synonyms.text;
  }

  function renderCategories() {
    const body = clear($("cat-body"));
    const ids = new Set(state.categories.map((c) => c.id).concat(Object.keys(state.categoryNames)));
    for (const id of [...ids].sort()) {
      const category = state.categories.find((c) => c.id === id);
      const input = el("input", { type: "text", maxlength: "32", value: state.categoryNames[id] || "", placeholder: "未设置（显示为 " + id + "）", "data-testid": "cat-name", "data-category": id, "aria-label": id + " 的显示名称" });
      input.addEventListener("input", () => { state.categoryNames[id] = input.value; });
      body.appendChild(el("tr", { "data-testid": "cat-row", "data-category": id },
        el("td", { class: "mono" }, id),
        el("td", { class: "small" }, category ? String(category.articles) : "0"),
        el("td", null, input)));
    }
    if (!ids.size) body.appendChild(el("tr", null, el("td", { colspan: "3", class: "muted ad-empty" }, "知识库中还没有分类")));
  }

  async function saveCategories() {
    const error = $("cat-error");
    error.textContent = "";
    const names = {};
    for (const [id, name] of Object.entries(state.categoryNames)) if (name && name.trim()) names[id] = name.trim();
    $("cat-save").disabled = true;
    try {
      const saved = await api("PUT", "/api/v1/kb/category-names", { names });
      state.categoryNames = Object.assign({}, saved.names);
      renderCategories();
      flash("cat-msg");
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      $("cat-save").disabled = false;
    }
  }

  async function saveTerms(kind) {
    const [path, area, prefix] = kind === "dict" ? ["/api/v1/kb/dictionary", "kb-dict", "kb-dict"] : ["/api/v1/kb/synonyms", "kb-syn", "kb-syn"];
    $(prefix + "-error").textContent = "";
    $(prefix + "-msg").textContent = "";
    const button = $(prefix + "-save");
    button.disabled = true;
    const label = button.textContent;
    button.textContent = "正在保存…";
    try {
      const saved = await api("PUT", path, { text: $(area).value });
      $(area).value = saved.text;
      flash(prefix + "-msg", saved.reindexed ? "已保存，已重建 " + saved.reindexed + " 篇文章的索引" : "已保存，立即生效");
    } catch (err) {
      $(prefix + "-error").textContent = errorText(err);
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  }

  ad.register("desk", { roles: ["admin"], load: loadDesk });
  ad.register("channels", { roles: ["admin", "supervisor"], load: loadChannels });
  ad.register("webhooks", { roles: ["admin"], load: loadWebhooks });
  ad.register("audit", { roles: ["admin"], load: () => loadAudit(false) });
  ad.register("kb", { roles: ["admin", "editor"], load: loadKb });

  function wire() {
    $("pt-save").addEventListener("click", saveProblems);
    $("pt-add-parent").addEventListener("click", () => {
      const name = $("pt-new-parent").value.trim();
      if (!name) { $("pt-error").textContent = "请填写一级类型名称"; $("pt-new-parent").focus(); return; }
      if (state.problems.some((n) => n.name === name)) { $("pt-error").textContent = "一级类型「" + name + "」已存在"; return; }
      state.problems.push({ name, leaf: false, children: [] });
      $("pt-new-parent").value = "";
      $("pt-error").textContent = "";
      renderProblems();
    });
    $("pt-new-parent").addEventListener("keydown", (e) => { if (e.key === "Enter") $("pt-add-parent").click(); });
    $("survey-scale").addEventListener("change", () => { renderLabels(DEFAULT_LABELS[$("survey-scale").value]); renderSurveyPreview(); });
    for (const id of ["survey-offer", "survey-title", "survey-thanks"]) $(id).addEventListener("input", renderSurveyPreview);
    $("survey-save").addEventListener("click", saveSurvey);
    $("timers-save").addEventListener("click", saveTimers);
    $("messages-save").addEventListener("click", saveMessages);
    $("reset-wrap_up").addEventListener("click", () => resetSection("wrap_up", "问题类型", loadDesk));
    $("reset-survey").addEventListener("click", () => resetSection("survey", "满意度评价", loadDesk));
    $("reset-timers").addEventListener("click", () => resetSection("timers", "计时器", loadDesk));
    $("reset-messages").addEventListener("click", () => resetSection("messages", "自动消息", loadDesk));
    $("reset-uploads").addEventListener("click", () => resetSection("uploads", "文件上传", () => loadSettings().then(fillUploads)));
    $("site-form").addEventListener("submit", addSite);
    for (const id of ["wg-channel", "wg-group", "wg-color", "wg-title", "wg-site"]) $(id).addEventListener("input", renderSnippet);
    $("wg-copy").addEventListener("click", () => ad.copyText($("wg-snippet").value, "wg-copy-msg"));
    $("wg-preview-bubble").addEventListener("click", () => { $("wg-preview-panel").hidden = !$("wg-preview-panel").hidden; });
    $("uploads-save").addEventListener("click", saveUploads);
    $("block-form").addEventListener("submit", addBlock);
    $("blocks-filter").addEventListener("change", renderBlocks);
    $("wh-new").addEventListener("click", () => openWebhook(null));
    $("wh-save").addEventListener("click", saveWebhook);
    $("wh-form").addEventListener("submit", (e) => { e.preventDefault(); saveWebhook(); });
    $("wh-log-refresh").addEventListener("click", loadDeliveries);
    $("wh-log-close").addEventListener("click", () => { state.logWebhook = null; $("wh-log").hidden = true; });
    const kinds = $("audit-kind");
    for (const [kind, label] of Object.entries(AUDIT_KINDS)) kinds.appendChild(el("option", { value: kind }, label));
    $("audit-filters").addEventListener("submit", (e) => { e.preventDefault(); loadAudit(false).catch((err) => { $("audit-info").textContent = errorText(err); }); });
    $("audit-more").addEventListener("click", () => loadAudit(true).catch((err) => { $("audit-info").textContent = errorText(err); }));
    $("cat-add").addEventListener("click", () => {
      const id = $("cat-new-id").value.trim();
      const name = $("cat-new-name").value.trim();
      if (!id || /\s|#/.test(id)) { $("cat-error").textContent = "请填写分类 ID（不能包含空格或 #）"; return; }
      if (!name) { $("cat-error").textContent = "请填写显示名称"; return; }
      state.categoryNames[id] = name;
      $("cat-new-id").value = "";
      $("cat-new-name").value = "";
      $("cat-error").textContent = "";
      renderCategories();
    });
    $("cat-save").addEventListener("click", saveCategories);
    $("kb-dict-save").addEventListener("click", () => saveTerms("dict"));
    $("kb-syn-save").addEventListener("click", () => saveTerms("syn"));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
  else wire();
})();
