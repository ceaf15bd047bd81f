// Admin console section 渠道 (/admin#chan): the API channel (an app's server), WeChat 公众号 and 企业微信
// 微信客服 channels. List with callback / webhook URL, create per kind, secrets shown once, enable and
// disable, rotate, test, the channel's last errors and the API channel's delivery log. Registered with
// window.kefuAdmin (admin.js); the API is /api/v1/admin/channels (docs/API.md, "Channels").
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const el = (...args) => window.kefu.el(...args);
  const ad = window.kefuAdmin;
  const { api, errorText, toast, flash, confirmAction, clear, fmtTime } = ad;

  const KINDS = {
    api: { name: "API", long: "API（App / 小程序）", color: "blue" },
    wechat_official: { name: "公众号", long: "微信公众号", color: "green" },
    wecom_kf: { name: "微信客服", long: "企业微信 · 微信客服", color: "orange" },
  };
  const WEBHOOK_EVENTS = {
    message: "消息", typing: "正在输入", state: "会话状态", ended: "会话结束", rating_requested: "邀请评价",
    queue: "排队位置", queue_timeout: "排队超时", ping: "测试 ping",
  };
  const SECRET_NAMES = {
    token: ["渠道令牌", "App 服务器调用接口时放在 Authorization: Bearer 之后"],
    webhook_secret: ["Webhook 签名密钥", "用来校验推送的 X-Kefu-Signature（HMAC-SHA256）"],
    callback_token: ["Token（令牌）", "填入微信后台的 Token"],
    encoding_aes_key: ["EncodingAESKey（消息加解密密钥）", "填入微信后台的 EncodingAESKey"],
  };

  const state = { channels: [], selected: null, tests: new Map() };

  /** The URL WeChat is to call: the server's, or this page's origin when kefu does not know its own. */
  function absolute(url) {
    if (!url) return "";
    return url.startsWith("/") ? location.origin + url : url;
  }

  function wechatConsole(kind) {
    return kind === "wecom_kf" ? "企业微信后台（微信客服 → 开发配置 → 回调配置）" : "公众号后台（设置与开发 → 基本配置 → 服务器配置）";
  }

  /** The Chinese for the test button's answer; the server's own words stay beside it. */
  function testText(result) {
    const message = result.message || "";
    let m;
    if (result.ok) {
      if ((m = /the webhook answered (\d+)/.exec(message))) return "测试成功：Webhook 接收方返回 HTTP " + m[1];
      if (/access token was issued/.test(message)) return "测试成功：已用 AppID 和密钥从微信获取到 access_token";
      return "测试成功";
    }
    if ((m = /errcode (\d+)/.exec(message))) {
      const known = { 40001: "AppSecret 错误或不属于该 AppID", 40013: "AppID 无效", 40125: "AppSecret 无效", 40164: "服务器 IP 不在微信后台的 IP 白名单中" };
      return "测试失败：微信返回错误码 " + m[1] + (known[m[1]] ? "（" + known[m[1]] + "）" : "");
    }
    if ((m = /answered (\d+)/.exec(message))) return "测试失败：接收方返回 HTTP " + m[1];
    if (/refused/i.test(message)) return "测试失败：无法连接，连接被拒绝";
    if (/timed? ?out|timeout/i.test(message)) return "测试失败：连接超时";
    if (/dns|resolve|lookup/i.test(message)) return "测试失败：无法解析域名";
    return "测试失败";
  }

  // ---------- list ----------

  async function loadChannels() {
    const [data] = await Promise.all([api("GET", "/api/v1/admin/channels"), ad.loadGroups()]);
    state.channels = data.channels || [];
    renderChannels();
    if (state.selected) {
      const channel = state.channels.find((c) => c.id === state.selected);
      if (channel) await renderDetail(channel);
      else closeDetail();
    }
  }

  function urlCell(c) {
    const url = c.kind === "api" ? c.webhook_url : absolute(c.callback_url);
    if (!url) return el("span", { class: "muted" }, "—");
    return el("div", { class: "ad-ch-url" },
      el("span", { class: "ad-sub" }, c.kind === "api" ? "Webhook 地址" : "回调地址（填入微信后台）"),
      el("div", { class: "row" },
        el("code", { class: "mono small ellipsis", title: url, "data-testid": c.kind === "api" ? "channel-webhook-url" : "channel-callback-url" }, url),
        el("button", { type: "button", class: "btn sm", "data-testid": "channel-copy-url", onclick: () => ad.copyText(url) }, "复制")));
  }

  function renderChannels() {
    const body = clear($("ch-body"));
    $("ch-origin-note").hidden = !state.channels.some((c) => c.callback_url && c.callback_url.startsWith("/"));
    for (const c of state.channels) {
      const kind = KINDS[c.kind] || { name: c.kind, color: "" };
      const toggle = el("input", { type: "checkbox", "data-testid": "channel-enabled", id: "channel-enabled-" + c.id, checked: c.enabled, "aria-label": "启用" });
      toggle.addEventListener("change", () => setEnabled(c, toggle));
      body.appendChild(el("tr", {
        "data-testid": "channel-row", "data-channel-id": String(c.id), "data-kind": c.kind, "data-enabled": String(c.enabled),
        class: (c.enabled ? "" : "ad-row-disabled") + (state.selected === c.id ? " ad-row-selected" : ""),
      },
        el("td", null, el("span", { class: "tag " + kind.color, "data-testid": "channel-kind" }, kind.name)),
        el("td", null, el("div", { class: "ad-name ad-ch-clip", "data-testid": "channel-name", title: c.name }, c.name),
          el("div", { class: "ad-sub ad-ch-clip", title: c.app_id || "" }, c.app_id ? (c.kind === "wecom_kf" ? "CorpID " : "AppID ") + c.app_id + (c.open_kfid ? " · " + c.open_kfid : "") : "创建于 " + fmtTime(c.created))),
        el("td", { class: "small nowrap" }, c.group ? ad.groupName(c.group) : el("span", { class: "muted" }, "全部客服")),
        el("td", null, el("label", { class: "check nowrap" }, toggle, el("span", { "data-testid": "channel-status", class: c.enabled ? "ok-text" : "muted small" }, c.enabled ? "已启用" : "已停用"))),
        el("td", { class: "ad-ch-url-cell" }, urlCell(c)),
        el("td", { class: "small nowrap", "data-testid": "channel-errors" }, c.errors && c.errors.length
          ? el("button", { type: "button", class: "tag red ad-ch-errtag", title: "最近一次 " + fmtTime(c.errors[0].at) + "：" + c.errors[0].message, onclick: () => openDetail(c.id) }, c.errors.length + " 条")
          : el("span", { class: "muted" }, "无")),
        el("td", null, el("div", { class: "ad-actions" },
          el("button", { type: "button", class: "btn sm", "data-testid": "channel-test", id: "channel-test-" + c.id, onclick: (e) => testChannel(c, e.currentTarget) }, "测试"),
          el("button", { type: "button", class: "btn sm", "data-testid": "channel-open", id: "channel-open-" + c.id, onclick: () => openDetail(c.id), title: c.kind === "api" ? "修改、最近错误与投递记录" : "修改与最近错误" }, "详情"),
          el("button", { type: "button", class: "btn sm", "data-testid": "channel-rotate", id: "channel-rotate-" + c.id, onclick: () => rotateChannel(c) }, "轮换密钥"),
          el("button", { type: "button", class: "btn sm danger", "data-testid": "channel-delete", onclick: () => deleteChannel(c) }, "删除")))));
    }
    if (!state.channels.length) body.appendChild(el("tr", null, el("td", { colspan: "7", class: "muted ad-empty" }, "还没有渠道。网页访客无需配置；App、公众号或微信客服的访客请先「新建渠道」")));
  }

  async function setEnabled(channel, toggle) {
    const enabled = toggle.checked;
    toggle.disabled = true;
    try {
      await api("PATCH", "/api/v1/admin/channels/" + channel.id, { enabled });
      toast((enabled ? "已启用" : "已停用") + "渠道「" + channel.name + "」" + (enabled ? "" : "，它不再接收和发送消息"), "success");
      await loadChannels();
    } catch (err) {
      toggle.checked = !enabled;
      toast(errorText(err), "error");
    } finally {
      toggle.disabled = false;
    }
  }

  // ---------- secrets, shown once ----------

  function showSecrets(title, intro, channel, secrets) {
    $("ch-secrets-title").textContent = title;
    $("ch-secrets-intro").textContent = intro;
    const list = clear($("ch-secrets-list"));
    const row = (label, hint, value, testid) => el("div", { class: "field" },
      el("span", { class: "ad-label" }, label, hint ? el("span", { class: "muted" }, "　" + hint) : null),
      el("div", { class: "ad-secret" }, el("code", { "data-testid": testid }, value),
        el("button", { type: "button", class: "btn sm", "data-testid": testid + "-copy", onclick: () => ad.copyText(value) }, "复制")));
    if (channel.kind !== "api" && channel.callback_url) {
      list.appendChild(row("回调地址（URL）", "填入微信后台的服务器地址", absolute(channel.callback_url), "ch-secret-callback_url"));
    }
    for (const key of ["token", "webhook_secret", "callback_token", "encoding_aes_key"]) {
      if (secrets && secrets[key]) list.appendChild(row(SECRET_NAMES[key][0], SECRET_NAMES[key][1], secrets[key], "ch-secret-" + key));
    }
    ad.openDialog("dlg-ch-secrets");
    $("ch-secrets-done").focus();
  }

  // ---------- create ----------

  function kindChosen() {
    const input = document.querySelector("input[name=ch-kind]:checked");
    return input ? input.value : "api";
  }

  function syncKind() {
    const kind = kindChosen();
    for (const node of $("ch-form").querySelectorAll("[data-kind]")) node.hidden = !node.dataset.kind.split(" ").includes(kind);
    $("ch-app-id-label").textContent = kind === "wecom_kf" ? "CorpID（企业 ID）" : "AppID（开发者 ID）";
    $("ch-secret-label").textContent = kind === "wecom_kf" ? "Secret（微信客服的 Secret）" : "AppSecret（开发者密码）";
    $("ch-name").placeholder = kind === "api" ? "如 商城 App" : kind === "wecom_kf" ? "如 企业微信客服" : "如 服务号";
    $("ch-wechat-hint").textContent = "创建后显示回调地址、Token 和 EncodingAESKey，请填入" + wechatConsole(kind) + "。";
    $("ch-error").textContent = "";
  }

  function groupOptions(select, selected) {
    clear(select);
    select.appendChild(el("option", { value: "" }, "不指定（全部客服）"));
    for (const g of ad.state.groups) select.appendChild(el("option", { value: String(g.id), selected: g.id === selected }, g.name));
  }

  function openCreate() {
    $("ch-form").reset();
    groupOptions($("ch-group"), null);
    syncKind();
    ad.openDialog("dlg-channel");
    $("ch-name").focus();
  }

  async function createChannel() {
    const error = $("ch-error");
    error.textContent = "";
    const kind = kindChosen();
    const body = { kind };
    const name = $("ch-name").value.trim();
    if (name) body.name = name;
    if ($("ch-group").value) body.group = Number($("ch-group").value);
    if (kind === "api") {
      body.webhook_url = $("ch-webhook").value.trim();
      if (!body.webhook_url) { error.textContent = "请填写 Webhook 接收地址"; $("ch-webhook").focus(); return; }
    } else {
      body.app_id = $("ch-app-id").value.trim();
      body.app_secret = $("ch-secret").value.trim();
      const idName = kind === "wecom_kf" ? "CorpID" : "AppID";
      const secretName = kind === "wecom_kf" ? "Secret" : "AppSecret";
      if (!body.app_id) { error.textContent = "请填写 " + idName; $("ch-app-id").focus(); return; }
      if (!body.app_secret) { error.textContent = "请填写 " + secretName; $("ch-secret").focus(); return; }
      const token = $("ch-token").value.trim();
      const aes = $("ch-aes").value.trim();
      if (token) body.callback_token = token;
      if (aes) body.encoding_aes_key = aes;
      const openKfid = $("ch-open-kfid").value.trim();
      if (kind === "wecom_kf" && openKfid) body.open_kfid = openKfid;
    }
    $("ch-create").disabled = true;
    try {
      const created = await api("POST", "/api/v1/admin/channels", body);
      ad.closeDialog("dlg-channel");
      const c = created.channel;
      state.selected = null;
      await loadChannels();
      showSecrets("已创建渠道「" + c.name + "」",
        c.kind === "api"
          ? "请把渠道令牌和 Webhook 签名密钥交给 App 的服务器（不要放进 App 本身）。"
          : "请在" + wechatConsole(c.kind) + "填入下面的回调地址、Token 和 EncodingAESKey，然后点「测试」确认 AppID 和密钥可用。",
        c, created.secrets);
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      $("ch-create").disabled = false;
    }
  }

  // ---------- rotate, test, delete ----------

  function rotateChannel(channel) {
    const text = channel.kind === "api"
      ? "将为「" + channel.name + "」生成新的渠道令牌和 Webhook 签名密钥，旧令牌立即失效，App 服务器须改用新令牌。"
      : "将为「" + channel.name + "」生成新的 Token 和 EncodingAESKey。轮换后必须在" + wechatConsole(channel.kind) + "重新填写，否则微信推送的消息将无法校验。";
    let rotated = null;
    confirmAction("轮换密钥", text, "轮换", async () => {
      rotated = await api("POST", "/api/v1/admin/channels/" + channel.id + "/rotate");
    }).then(async (done) => {
      if (!done || !rotated) return;
      await loadChannels();
      showSecrets("「" + channel.name + "」的新密钥",
        channel.kind === "api" ? "旧令牌已失效，请立即更新 App 服务器的配置。" : "请立即到" + wechatConsole(channel.kind) + "更新 Token 和 EncodingAESKey。",
        rotated.channel || channel, rotated.secrets);
    });
  }

  async function testChannel(channel, button) {
    button.disabled = true;
    const old = button.textContent;
    button.textContent = "测试中…";
    try {
      const result = await api("POST", "/api/v1/admin/channels/" + channel.id + "/test");
      state.tests.set(channel.id, { ...result, at: new Date().toISOString() });
      toast(testText(result), result.ok ? "success" : "error");
      state.selected = channel.id;
      await loadChannels();
    } catch (err) {
      toast(errorText(err), "error");
    } finally {
      button.disabled = false;
      button.textContent = old;
    }
  }

  function deleteChannel(channel) {
    confirmAction("删除渠道", "将删除渠道「" + channel.name + "」及其待发送的回复；已有会话仍保留在历史记录中。" + (channel.kind === "api" ? "App 服务器的令牌将失效。" : "请同时在微信后台停用回调。"), "删除", async () => {
      await api("DELETE", "/api/v1/admin/channels/" + channel.id);
    }).then(async (done) => {
      if (!done) return;
      if (state.selected === channel.id) closeDetail();
      toast("已删除渠道「" + channel.name + "」", "success");
      await loadChannels();
    });
  }

  // ---------- detail: edit, errors, deliveries ----------

  async function openDetail(id) {
    state.selected = id;
    const channel = state.channels.find((c) => c.id === id);
    if (!channel) return;
    renderChannels();
    $("ch-edit-error").textContent = "";
    await renderDetail(channel, true);
    $("ch-detail").scrollIntoView({ block: "nearest" });
  }

  function closeDetail() {
    state.selected = null;
    $("ch-detail").hidden = true;
    renderChannels();
  }

  async function renderDetail(c, fillForm) {
    $("ch-detail").hidden = false;
    $("ch-detail").dataset.channel = String(c.id);
    $("ch-detail-title").textContent = c.name;
    const kind = KINDS[c.kind] || { long: c.kind, color: "" };
    $("ch-detail-kind").textContent = kind.long;
    $("ch-detail-kind").className = "tag " + kind.color;
    if (fillForm || $("ch-detail").dataset.filled !== String(c.id)) {
      $("ch-edit-name").value = c.name;
      groupOptions($("ch-edit-group"), c.group);
      $("ch-edit-webhook-field").hidden = c.kind !== "api";
      $("ch-edit-webhook").value = c.webhook_url || "";
      for (const node of $("ch-edit").querySelectorAll("[data-wechat]")) node.hidden = c.kind === "api";
      $("ch-edit-kfid-field").hidden = c.kind !== "wecom_kf";
      $("ch-edit-app-id-label").textContent = c.kind === "wecom_kf" ? "CorpID" : "AppID";
      $("ch-edit-secret-label").textContent = c.kind === "wecom_kf" ? "新的 Secret（留空不修改）" : "新的 AppSecret（留空不修改）";
      $("ch-edit-app-id").value = c.app_id || "";
      $("ch-edit-secret").value = "";
      $("ch-edit-open-kfid").value = c.open_kfid || "";
      $("ch-detail").dataset.filled = String(c.id);
    }
    const facts = [];
    if (c.app_id) facts.push((c.kind === "wecom_kf" ? "CorpID " : "AppID ") + c.app_id);
    if (c.kind !== "api") facts.push(c.has_app_secret ? "密钥已设置" : "密钥未设置", c.has_callback_keys ? "Token 与 EncodingAESKey 已设置" : "回调密钥未设置");
    if (c.open_kfid) facts.push("open_kfid " + c.open_kfid);
    facts.push("创建于 " + fmtTime(c.created));
    $("ch-detail-facts").textContent = facts.join(" · ");

    const test = state.tests.get(c.id);
    const box = $("ch-test-result");
    box.hidden = !test;
    if (test) {
      clear(box);
      box.className = "ad-ch-test " + (test.ok ? "ok" : "bad");
      box.dataset.ok = String(test.ok);
      box.appendChild(el("div", { class: "ad-name" }, testText(test), el("span", { class: "muted small" }, "　" + fmtTime(test.at))));
      box.appendChild(el("div", { class: "mono small ad-ch-raw", "data-testid": "ch-test-message" }, test.message));
    }

    const list = clear($("ch-errors"));
    for (const e of c.errors || []) {
      list.appendChild(el("li", { "data-testid": "channel-error" }, el("span", { class: "small nowrap muted" }, fmtTime(e.at)), el("span", { class: "mono small" }, e.message)));
    }
    if (!(c.errors || []).length) list.appendChild(el("li", { class: "muted small" }, "没有错误记录"));

    $("ch-log").hidden = c.kind !== "api";
    if (c.kind === "api") await loadDeliveries(c);
  }

  async function loadDeliveries(channel) {
    const data = await api("GET", "/api/v1/admin/channels/" + channel.id + "/deliveries");
    const body = clear($("ch-deliveries-body"));
    const STATUS = { pending: ["等待重试", "orange"], succeeded: ["成功", "green"], failed: ["失败", "red"] };
    const failure = ad.deliveryError || ((d) => d.last_error || "无法连接");
    for (const d of data.deliveries || []) {
      const [text, color] = STATUS[d.status] || [d.status, ""];
      body.appendChild(el("tr", { "data-testid": "ch-delivery-row", "data-delivery-id": String(d.id), "data-status": d.status },
        el("td", { class: "small nowrap" }, fmtTime(d.created)),
        el("td", null, WEBHOOK_EVENTS[d.event] || d.event),
        el("td", null, el("span", { class: "tag " + color }, text)),
        el("td", { class: "small" }, String(d.attempts)),
        el("td", { class: "small ad-detail-cell", title: d.last_error || "" }, d.status === "succeeded" ? "HTTP " + d.last_status : d.last_status || d.last_error ? failure(d) : "—"),
        el("td", null, el("button", { type: "button", class: "btn sm", "data-testid": "ch-delivery-redeliver", onclick: () => redeliver(channel, d) }, "重新投递"))));
    }
    if (!(data.deliveries || []).length) body.appendChild(el("tr", null, el("td", { colspan: "6", class: "muted ad-empty" }, "还没有投递记录，可点击「测试」发送一个 ping")));
  }

  async function redeliver(channel, delivery) {
    try {
      await api("POST", "/api/v1/admin/webhooks/" + (delivery.webhook || channel.webhook) + "/deliveries/" + delivery.id + "/redeliver");
      toast("已重新加入投递队列", "success");
      await loadDeliveries(channel);
    } catch (err) {
      toast(errorText(err), "error");
    }
  }

  async function saveEdit(event) {
    if (event) event.preventDefault();
    const channel = state.channels.find((c) => c.id === state.selected);
    if (!channel) return;
    const error = $("ch-edit-error");
    error.textContent = "";
    const body = { name: $("ch-edit-name").value.trim(), group: $("ch-edit-group").value ? Number($("ch-edit-group").value) : null };
    if (!body.name) { error.textContent = "请填写渠道名称"; return; }
    if (channel.kind === "api") {
      body.webhook_url = $("ch-edit-webhook").value.trim();
      if (!body.webhook_url) { error.textContent = "请填写 Webhook 接收地址"; return; }
    } else {
      const appId = $("ch-edit-app-id").value.trim();
      if (!appId) { error.textContent = "请填写 " + (channel.kind === "wecom_kf" ? "CorpID" : "AppID"); return; }
      if (appId !== channel.app_id) body.app_id = appId;
      const secret = $("ch-edit-secret").value.trim();
      if (secret) body.app_secret = secret;
      if (channel.kind === "wecom_kf") body.open_kfid = $("ch-edit-open-kfid").value.trim() || null;
    }
    $("ch-edit-save").disabled = true;
    try {
      await api("PATCH", "/api/v1/admin/channels/" + channel.id, body);
      flash("ch-edit-msg");
      $("ch-detail").dataset.filled = "";
      await loadChannels();
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      $("ch-edit-save").disabled = false;
    }
  }

  ad.register("chan", { roles: ["admin"], load: loadChannels });

  function wire() {
    $("ch-new").addEventListener("click", openCreate);
    $("ch-create").addEventListener("click", createChannel);
    $("ch-form").addEventListener("submit", (e) => { e.preventDefault(); createChannel(); });
    for (const input of document.querySelectorAll("input[name=ch-kind]")) input.addEventListener("change", syncKind);
    $("ch-edit").addEventListener("submit", saveEdit);
    $("ch-detail-close").addEventListener("click", closeDetail);
    $("ch-detail-refresh").addEventListener("click", async () => {
      try { await loadChannels(); } catch (err) { toast(errorText(err), "error"); }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
  else wire();
})();
