// Knowledge editor (/editor): list + search (drafts included), front-matter form, markdown with live
// preview, save (whole file via PUT, searchable at once), new, drafts, delete, index errors.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const el = (...args) => window.kefu.el(...args);
  const md = () => window.kefuEditorMd;

  const ERROR_TEXT = {
    bad_request: "请求格式有误，请刷新页面后重试",
    invalid_query: "请输入搜索内容（不超过 1000 字）",
    invalid_article_id: "文章 ID 不合法",
    invalid_article: "文章格式有误，请检查后再保存",
    unauthenticated: "请先登录",
    session_expired: "登录已过期，请重新登录",
    forbidden: "你没有权限执行此操作",
    csrf_failed: "页面已失效，请刷新后重试",
    password_change_required: "为了账号安全，请先修改密码",
    two_factor_setup_required: "管理员要求开启两步验证，请先完成设置",
    article_not_found: "文章不存在或已删除",
    article_changed: "该文章已被他人修改：请先复制您的修改，重新打开文章后再保存",
    article_exists: "该 ID 的文章已存在，请换一个 ID，或在左侧打开该文章编辑",
    not_found: "请求的内容不存在",
    internal: "服务器开小差了，请稍后再试",
  };
  const STATUS_TEXT = { published: "已发布", draft: "草稿" };

  const state = {
    me: null,
    articles: [], // from GET /kb/articles
    current: null, // {id, isNew, extra, present, original}
    dirty: false,
    searchTimer: null,
    previewTimer: null,
    pendingSwitch: null,
  };

  function errorText(err) {
    if (!err) return "操作失败";
    if (err.code === "invalid_article" && err.message) return ERROR_TEXT.invalid_article + "：" + err.message;
    return ERROR_TEXT[err.code] || (err.status ? "操作失败（" + err.status + "）" : "网络连接异常，请检查网络后重试");
  }
  function toLogin(expired, resume) { window.kefu.toLogin("/editor" + location.search, expired, resume); }
  function handleAuthError(err) {
    if (!err) return false;
    if (err.code === "password_change_required" || err.code === "two_factor_setup_required") {
      toLogin(false, true);
      return true;
    }
    if (err.status === 401) {
      toLogin(err.code === "session_expired", false);
      return true;
    }
    return false;
  }
  function toast(text, kind) {
    const t = $("toast");
    t.textContent = text;
    t.className = "ed-toast" + (kind ? " " + kind : "");
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 3500);
  }
  function articlePath(id) { return "/api/v1/kb/articles/" + id.split("/").map(encodeURIComponent).join("/"); }
  const splitList = (s) => s.split(/[,，、;；\n]/).map((x) => x.trim()).filter(Boolean);
  const today = () => {
    const d = new Date();
    const pad = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
  };

  // ---------- session ----------
  async function loadMe() {
    try {
      const me = await window.kefu.api("GET", "/api/v1/me");
      window.kefu.setCsrfToken(me.csrf_token);
      if (me.must_change_password || (me.two_factor_required && !me.two_factor_enabled)) { toLogin(false, true); return null; }
      return me;
    } catch (err) {
      if (!handleAuthError(err)) toast(errorText(err), "error");
      return null;
    }
  }
  function renderMe(me) {
    $("me-name").textContent = me.display_name || me.username;
    const av = $("me-avatar");
    av.textContent = "";
    if (me.avatar_url) av.appendChild(el("img", { src: me.avatar_url, alt: "", class: "avatar" }));
    else av.textContent = (me.display_name || me.username).slice(0, 1);
    const roles = me.roles || [];
    $("nav-workbench").hidden = !roles.some((r) => r === "agent" || r === "supervisor" || r === "admin");
    $("nav-supervisor").hidden = !roles.some((r) => r === "supervisor" || r === "admin");
    $("nav-admin").hidden = !roles.some((r) => r === "editor" || r === "admin");
  }

  // ---------- list & search ----------
  async function loadArticles() {
    try {
      const [data, cats] = await Promise.all([
        window.kefu.api("GET", "/api/v1/kb/articles"),
        window.kefu.api("GET", "/api/v1/kb/categories").catch(() => ({ categories: [] })),
      ]);
      state.articles = data.articles || [];
      // Display names from kb/_categories.txt: folders (after-sales) are shown as 售后服务.
      state.categoryNames = new Map((cats.categories || []).map((c) => [c.id, c.name]));
      renderCategories();
      await refreshList();
    } catch (err) {
      if (!handleAuthError(err)) toast(errorText(err), "error");
    }
  }
  function renderCategories() {
    const cats = Array.from(new Set(state.articles.map((a) => a.category).filter(Boolean))).sort();
    const select = $("kb-category");
    const chosen = select.value;
    select.textContent = "";
    select.appendChild(el("option", { value: "" }, "全部分类"));
    for (const c of cats) select.appendChild(el("option", { value: c, "data-testid": "kb-category-option" }, categoryName(c) + "（" + state.articles.filter((a) => a.category === c).length + "）"));
    select.value = cats.includes(chosen) ? chosen : "";
    const dl = $("category-options");
    dl.textContent = "";
    const all = new Set(cats.concat(Array.from((state.categoryNames || new Map()).keys())));
    for (const c of Array.from(all).sort()) dl.appendChild(el("option", { value: c, label: categoryName(c) }));
  }
  function categoryName(id) {
    return (state.categoryNames && state.categoryNames.get(id)) || id;
  }

  async function refreshList() {
    const q = $("kb-search").value.trim();
    const category = $("kb-category").value;
    const status = $("kb-status-filter").value;
    const list = $("article-list");
    let items;
    if (q) {
      try {
        let path = "/api/v1/kb/search?drafts=true&limit=50&q=" + encodeURIComponent(q.slice(0, 1000));
        if (category) path += "&category=" + encodeURIComponent(category);
        const data = await window.kefu.api("GET", path);
        if ($("kb-search").value.trim() !== q) return; // a newer query is on its way
        items = (data.hits || []).map((h) => ({ id: h.id, title: h.title, category: h.category, status: h.status, snippet: h.snippet }));
        $("list-info").textContent = "找到 " + items.length + " 篇，用时 " + (data.took_ms != null ? data.took_ms.toFixed(1) : "–") + " 毫秒";
      } catch (err) {
        if (handleAuthError(err)) return;
        $("list-info").textContent = errorText(err);
        items = [];
      }
    } else {
      items = state.articles.filter((a) => !category || a.category === category);
      $("list-info").textContent = "共 " + items.length + " 篇文章";
    }
    if (status) items = items.filter((a) => a.status === status);
    list.textContent = "";
    if (!items.length) list.appendChild(el("li", { class: "ed-list-empty muted" }, q ? "没有找到相关文章" : "暂无文章"));
    for (const a of items) {
      const snippet = el("div", { class: "ed-item-snippet" });
      if (a.snippet) snippet.append(...kefu.snippetNodes(a.snippet));
      const li = el("li", {
        class: "ed-item" + (state.current && state.current.id === a.id ? " active" : ""),
        "data-testid": "article-item", "data-id": a.id, tabindex: "0", role: "button",
        onclick: () => requestOpen(a.id),
        onkeydown: (e) => { if (e.key === "Enter") requestOpen(a.id); },
      },
        el("div", { class: "ed-item-title" },
          el("span", { class: "ellipsis grow", "data-testid": "article-item-title" }, a.title || a.id),
          a.status === "draft" ? el("span", { class: "tag orange", "data-testid": "draft-badge" }, "草稿") : null),
        el("div", { class: "ed-item-meta" }, a.category ? el("span", { class: "tag", "data-testid": "article-item-category" }, categoryName(a.category)) : null, el("span", { class: "mono" }, a.id)),
        a.snippet ? snippet : null);
      list.appendChild(li);
    }
  }
  // ---------- open / new ----------
  function requestOpen(id) {
    if (state.dirty) { state.pendingSwitch = () => openArticle(id); $("discard-confirm").hidden = false; return; }
    openArticle(id);
  }
  async function openArticle(id) {
    try {
      const a = await window.kefu.api("GET", articlePath(id));
      const { front, body } = md().split(a.markdown);
      const parsed = md().parseFront(front);
      const f = parsed.fields;
      state.current = { id: a.id, isNew: false, extra: parsed.extra, present: parsed.present, fields: f, path: a.path, hash: a.content_hash };
      fillForm({
        id: a.id,
        title: f.title != null ? f.title : a.title,
        category: f.category != null ? f.category : a.category,
        tags: f.tags || a.tags || [],
        keywords: f.keywords || a.keywords || [],
        questions: f.questions || a.questions || [],
        status: f.status || a.status || "published",
        body,
      });
      $("f-path").textContent = a.path || (a.id + ".md");
      $("f-id").readOnly = true;
      $("delete-btn").hidden = false;
      highlightCurrent();
    } catch (err) {
      if (!handleAuthError(err)) toast(errorText(err), "error");
    }
  }
  function newArticle() {
    if (state.dirty) { state.pendingSwitch = newArticle; $("discard-confirm").hidden = false; return; }
    const cat = $("kb-category").value;
    state.current = { id: null, isNew: true, extra: [], present: new Set(), fields: {} };
    fillForm({ id: cat ? cat + "/" : "", title: "", category: "", tags: [], keywords: [], questions: [], status: "draft", body: "# \n\n" });
    $("f-path").textContent = "新文章";
    $("f-id").readOnly = false;
    $("delete-btn").hidden = true;
    highlightCurrent();
    $("f-id").focus();
  }
  // ---------- title and first heading in step ----------
  // The body's first "# " heading is the article's title as readers see it: typing in 标题 rewrites it,
  // and editing the heading fills 标题, as long as the two were the same (or one was empty) before.
  const H1 = /^#[ \t]*(.*?)[ \t]*#*[ \t]*$/;
  function firstHeadingLine(body) {
    const lines = body.split("\n");
    const i = lines.findIndex((l) => l.trim() !== "");
    return i >= 0 && /^#(\s|$)/.test(lines[i]) ? { lines, i, text: lines[i].match(H1)[1] } : null;
  }
  function titleChanged() {
    const title = $("f-title").value.trim();
    const body = $("f-body").value;
    const h = firstHeadingLine(body);
    if (h && (h.text === state.syncedTitle || !h.text)) {
      h.lines[h.i] = "# " + title;
      $("f-body").value = h.lines.join("\n");
      schedulePreview();
    } else if (!h && !body.trim()) {
      $("f-body").value = "# " + title + "\n\n";
      schedulePreview();
    }
    state.syncedTitle = title;
  }
  function bodyChanged() {
    const h = firstHeadingLine($("f-body").value);
    const title = $("f-title").value.trim();
    if (h && (title === state.syncedTitle || !title) && h.text !== title) {
      $("f-title").value = h.text;
    }
    state.syncedTitle = h ? h.text : $("f-title").value.trim();
  }
  function schedulePreview() { clearTimeout(state.previewTimer); state.previewTimer = setTimeout(renderPreview, 120); }

  function fillForm(v) {
    $("editor-empty").hidden = true;
    $("article-form").hidden = false;
    $("save-status").hidden = true;
    $("f-id").value = v.id;
    $("f-title").value = v.title || "";
    $("f-category").value = v.category || "";
    $("f-tags").value = (v.tags || []).join(", ");
    $("f-keywords").value = (v.keywords || []).join(", ");
    $("f-questions").value = (v.questions || []).join("\n");
    $("f-status").value = v.status === "draft" ? "draft" : "published";
    $("f-body").value = v.body || "";
    const heading = firstHeadingLine($("f-body").value);
    state.syncedTitle = heading && heading.text === $("f-title").value.trim() ? heading.text : (heading ? null : $("f-title").value.trim());
    renderStatusTag();
    renderPreview();
    setDirty(false);
  }
  function renderStatusTag() {
    const s = $("f-status").value;
    const tag = $("f-status-tag");
    tag.textContent = STATUS_TEXT[s];
    tag.className = "tag " + (s === "draft" ? "orange" : "green");
  }
  function highlightCurrent() {
    for (const li of document.querySelectorAll("#article-list .ed-item")) {
      li.classList.toggle("active", !!state.current && li.dataset.id === state.current.id);
    }
  }
  function setDirty(on) {
    state.dirty = on;
    $("dirty-flag").hidden = !on;
  }
  function renderPreview() {
    const body = $("f-body").value;
    $("preview").innerHTML = md().render(body); // built from escaped text only (editor-md.js)
    $("body-count").textContent = body.length + " 字";
  }

  // ---------- save ----------
  function composeFile(statusOverride) {
    const cur = state.current;
    const id = $("f-id").value.trim().replace(/^\/+|\/+$/g, "").replace(/\.md$/, "");
    const folder = id.includes("/") ? id.slice(0, id.lastIndexOf("/")).split("/")[0] : "";
    const category = $("f-category").value.trim();
    const fields = {
      id,
      title: $("f-title").value.trim(),
      category: category && (category !== folder || cur.present.has("category")) ? category : null,
      tags: splitList($("f-tags").value),
      keywords: splitList($("f-keywords").value),
      questions: $("f-questions").value.split("\n").map((s) => s.trim()).filter(Boolean),
      status: statusOverride || $("f-status").value,
      updated: today(),
    };
    // Never save an empty "#" line: an untitled first heading takes the title.
    let body = $("f-body").value;
    const h = firstHeadingLine(body);
    if (h && !h.text && fields.title) { h.lines[h.i] = "# " + fields.title; body = h.lines.join("\n"); }
    return { id, markdown: md().compose(fields, cur.extra, body) };
  }
  // The rules for a new article's id (docs/API.md, ArticleId::check_new): parts separated by "/", each of
  // lower-case letters, digits, "-", "_" and Chinese characters, starting with a letter, digit or Chinese
  // character. Existing articles keep the id their file gives them.
  const ID_PART = /^[a-z0-9\u3400-\u4dbf\u4e00-\u9fff][a-z0-9_\u3400-\u4dbf\u4e00-\u9fff-]*$/;
  function idProblem(id) {
    if (!id) return "请填写文章 ID，例如 returns/refund-process";
    for (const part of id.split("/")) {
      if (!part) return "文章 ID 不合法：各段之间只能有一个 /，且首尾不能是 /";
      const bad = Array.from(part).find((c) => !/[a-z0-9_\u3400-\u4dbf\u4e00-\u9fff-]/.test(c));
      if (bad) return "文章 ID 不合法：不能包含" + (bad === " " ? "空格" : "「" + bad + "」") + "。只能使用小写英文字母、数字、-、_ 和汉字，各段之间用 / 分隔，例如 returns/refund-process";
      if (!ID_PART.test(part)) return "文章 ID 不合法：「" + part + "」须以字母、数字或汉字开头";
    }
    return null;
  }
  function validate(id) {
    if (state.current && state.current.isNew) { const p = idProblem(id); if (p) return p; }
    if (!id) return "请填写文章 ID，例如 returns/refund-process";
    if (!$("f-title").value.trim() && !/^#\s+\S/m.test($("f-body").value)) return "请填写标题";
    return null;
  }
  async function save(statusOverride) {
    const cur = state.current;
    if (!cur) return;
    if (statusOverride) { $("f-status").value = statusOverride; renderStatusTag(); }
    const { id, markdown } = composeFile(statusOverride);
    const problem = validate(id);
    const box = $("save-status");
    if (problem) { showStatus("error", problem); return; }
    if (cur.isNew && state.articles.some((a) => a.id === id)) {
      showStatus("error", "文章 ID「" + id + "」已存在，请换一个 ID，或在左侧打开该文章编辑");
      return;
    }
    box.hidden = true;
    $("save-btn").disabled = true;
    $("save-draft-btn").disabled = true;
    try {
      // Saved only over the version this editor opened (or, for a new article, only if the id is
      // free): another editor's save or an edit on disk answers 409 instead of being overwritten.
      const saved = await window.kefu.api("PUT", articlePath(id), { markdown, base_hash: cur.isNew ? "" : cur.hash });
      state.current = { id: saved.id, isNew: false, extra: cur.extra, present: md().parseFront(md().split(saved.markdown).front).present, path: saved.path, hash: saved.content_hash };
      $("f-id").value = saved.id;
      $("f-id").readOnly = true;
      $("f-path").textContent = saved.path || saved.id + ".md";
      $("delete-btn").hidden = false;
      setDirty(false);
      await loadArticles();
      highlightCurrent();
      await confirmSearchable(saved);
    } catch (err) {
      if (!handleAuthError(err)) showStatus("error", errorText(err));
      box.hidden = false;
    } finally {
      $("save-btn").disabled = false;
      $("save-draft-btn").disabled = false;
      refreshErrors();
    }
  }
  /** After a save, search for the title (drafts included) and show where the article ranks. */
  async function confirmSearchable(saved) {
    const q = (saved.title || saved.id).slice(0, 200);
    try {
      const data = await window.kefu.api("GET", "/api/v1/kb/search?drafts=true&limit=20&q=" + encodeURIComponent(q));
      const rank = (data.hits || []).findIndex((h) => h.id === saved.id);
      const what = saved.status === "draft" ? "已保存为草稿（访客与客服的推荐中不会出现）" : "已保存并发布";
      if (rank >= 0) {
        showStatus("ok", what + "，已更新搜索索引：搜索「" + q + "」排第 " + (rank + 1) + " 位。", saved.id);
      } else {
        showStatus("ok", what + "。", saved.id);
      }
    } catch (err) {
      showStatus("ok", "已保存。", saved.id);
    }
  }
  function showStatus(kind, text, searchId) {
    const box = $("save-status");
    box.textContent = "";
    box.className = "ed-alert " + kind;
    box.appendChild(el("span", { "data-testid": kind === "ok" ? "save-ok" : "save-error" }, text));
    if (searchId) {
      box.appendChild(el("button", {
        type: "button", class: "btn sm", "data-testid": "show-in-search",
        onclick: () => { $("kb-search").value = $("f-title").value.trim() || searchId; refreshList(); },
      }, "在列表中搜索"));
    }
    box.hidden = false;
  }

  // ---------- delete ----------
  function askDelete() {
    if (!state.current || state.current.isNew) return;
    $("delete-name").textContent = $("f-title").value || state.current.id;
    $("delete-confirm").hidden = false;
    $("delete-cancel").focus();
  }
  async function doDelete() {
    $("delete-confirm").hidden = true;
    const id = state.current.id;
    try {
      await window.kefu.api("DELETE", articlePath(id));
      toast("已删除「" + id + "」", "ok");
      state.current = null;
      setDirty(false);
      $("article-form").hidden = true;
      $("editor-empty").hidden = false;
      await loadArticles();
      refreshErrors();
    } catch (err) {
      if (!handleAuthError(err)) toast(errorText(err), "error");
    }
  }

  // ---------- index errors ----------
  async function refreshErrors() {
    try {
      const data = await window.kefu.api("GET", "/api/v1/kb/errors");
      const errors = data.errors || [];
      const count = $("errors-count");
      count.textContent = String(errors.length);
      count.classList.toggle("has", errors.length > 0);
      const list = $("errors-list");
      list.textContent = "";
      if (!errors.length) list.appendChild(el("li", { class: "muted", "data-testid": "errors-empty" }, "所有文章均已正常索引 ✓"));
      for (const e of errors) {
        list.appendChild(el("li", { class: "ed-error", "data-testid": "kb-error", "data-file": e.file },
          el("div", { class: "mono ed-error-file" }, el("span", { "data-testid": "kb-error-file" }, e.file),
            el("span", { class: "ed-error-line", "data-testid": "kb-error-line" }, "第 " + e.line + " 行")),
          el("div", { class: "ed-error-reason", "data-testid": "kb-error-reason" }, e.reason)));
      }
    } catch (err) {
      handleAuthError(err);
    }
  }

  // ---------- wire up ----------
  async function init() {
    const me = await loadMe();
    if (!me) return;
    state.me = me;
    renderMe(me);
    const roles = me.roles || [];
    if (!roles.includes("editor") && !roles.includes("admin")) { $("denied").hidden = false; return; }
    $("ed-main").hidden = false;

    $("kb-search").addEventListener("input", () => { clearTimeout(state.searchTimer); state.searchTimer = setTimeout(refreshList, 250); });
    $("kb-category").addEventListener("change", refreshList);
    $("kb-status-filter").addEventListener("change", refreshList);
    $("new-article").addEventListener("click", newArticle);
    $("errors-btn").addEventListener("click", () => { $("errors-panel").hidden = !$("errors-panel").hidden; refreshErrors(); });
    $("errors-close").addEventListener("click", () => { $("errors-panel").hidden = true; });
    $("errors-refresh").addEventListener("click", refreshErrors);
    $("article-form").addEventListener("submit", (e) => { e.preventDefault(); save(); });
    $("save-draft-btn").addEventListener("click", () => save("draft"));
    $("delete-btn").addEventListener("click", askDelete);
    $("delete-cancel").addEventListener("click", () => { $("delete-confirm").hidden = true; });
    $("delete-confirm-yes").addEventListener("click", doDelete);
    $("discard-cancel").addEventListener("click", () => { $("discard-confirm").hidden = true; state.pendingSwitch = null; });
    $("discard-yes").addEventListener("click", () => {
      $("discard-confirm").hidden = true;
      setDirty(false);
      const go = state.pendingSwitch;
      state.pendingSwitch = null;
      if (go) go();
    });
    $("f-status").addEventListener("change", renderStatusTag);
    for (const id of ["f-id", "f-title", "f-category", "f-tags", "f-keywords", "f-questions", "f-status", "f-body"]) {
      $(id).addEventListener("input", () => setDirty(true));
    }
    $("f-body").addEventListener("input", () => { bodyChanged(); schedulePreview(); });
    $("f-title").addEventListener("input", titleChanged);
    $("f-id").addEventListener("input", () => {
      const cur = state.current;
      const problem = cur && cur.isNew ? idProblem($("f-id").value.trim()) : null;
      $("f-id-error").textContent = problem && $("f-id").value.trim() && !/\/$/.test($("f-id").value.trim()) ? problem : "";
    });
    $("f-body").addEventListener("keydown", (e) => {
      if (e.key === "Tab") { e.preventDefault(); const t = e.target; const s = t.selectionStart; t.setRangeText("  ", s, t.selectionEnd, "end"); }
    });
    document.addEventListener("keydown", (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key === "s") { e.preventDefault(); if (state.current) save(); }
      if (e.key === "Escape") { $("delete-confirm").hidden = true; $("discard-confirm").hidden = true; }
    });
    window.addEventListener("beforeunload", (e) => { if (state.dirty) { e.preventDefault(); e.returnValue = ""; } });
    $("logout-btn").addEventListener("click", async () => {
      try { await window.kefu.api("POST", "/api/v1/auth/logout"); } catch (err) { /* signed out anyway */ }
      location.replace("/login");
    });

    await loadArticles();
    refreshErrors();
    const wanted = new URLSearchParams(location.search).get("article");
    if (wanted) openArticle(wanted);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
