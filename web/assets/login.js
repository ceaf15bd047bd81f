// Sign-in page: password (+ captcha, + two-step code), then a forced password change and a required
// two-step enrolment when the account needs them, then the workbench.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const T = window.kefuText;
  let captchaId = null;
  let captchaShown = false;
  let totpStep = false;
  let account = null;
  let typedPassword = "";

  // Only a page of this server: browsers read "/\evil.example" or "/<tab>/evil.example" as another
  // host, so the target is resolved the way the browser will and its origin compared.
  function nextUrl() {
    const n = new URLSearchParams(location.search).get("next");
    if (!n || !n.startsWith("/")) return "/workbench";
    try {
      const target = new URL(n, location.origin);
      if (target.origin === location.origin) return target.pathname + target.search + target.hash;
    } catch (_) { /* unparsable: fall through */ }
    return "/workbench";
  }
  function go() { location.replace(nextUrl()); }

  function showError(box, text, list) {
    const el = $(box);
    el.textContent = "";
    el.append(text);
    if (list && list.length) el.append(kefu.el("ul", null, list.map((r) => kefu.el("li", null, r))));
    el.hidden = false;
  }
  function hideError(box) { $(box).hidden = true; }

  function showStep(name) {
    for (const s of ["login", "password", "2fa"]) $("step-" + s).hidden = s !== name;
  }

  // ---- captcha ----
  async function loadCaptcha() {
    try {
      const c = await kefu.api("GET", "/api/v1/auth/captcha");
      captchaId = c.captcha_id;
      $("captcha-image").src = c.image;
      $("login-captcha").value = "";
    } catch (e) { showError("login-error", T.errorText(e)); }
  }
  function showCaptcha() {
    if (!captchaShown) { captchaShown = true; $("captcha-row").hidden = false; }
    loadCaptcha();
  }
  async function checkCaptchaRequired() {
    const u = $("login-username").value.trim();
    if (!u || captchaShown) return;
    try {
      const r = await kefu.api("GET", "/api/v1/auth/captcha-required?username=" + encodeURIComponent(u));
      if (r.required) showCaptcha();
    } catch (_) { /* the sign-in answer will say */ }
  }

  function setTotpStep(on) {
    totpStep = on;
    $("cred-fields").hidden = on;
    $("totp-fields").hidden = !on;
    $("login-title").textContent = on ? "两步验证" : "登录";
    $("login-sub").textContent = on ? "账号 " + $("login-username").value.trim() + " 需要两步验证" : "使用管理员分配的账号登录客服工作台";
    if (on) { $("login-totp").value = ""; $("login-totp").focus(); }
  }

  async function submitLogin(ev) {
    ev.preventDefault();
    hideError("login-error");
    const username = $("login-username").value.trim();
    const password = $("login-password").value;
    if (!username || !password) { showError("login-error", "请输入用户名和密码"); return; }
    const body = { username, password };
    if (captchaShown) {
      const c = $("login-captcha").value.trim();
      if (!c) { showError("login-error", "请输入图片验证码"); $("login-captcha").focus(); return; }
      body.captcha_id = captchaId;
      body.captcha = c;
    }
    if (totpStep) {
      const t = $("login-totp").value.trim();
      if (!t) { showError("login-error", "请输入两步验证码"); return; }
      body.totp = t;
    }
    const btn = $("login-submit");
    btn.disabled = true;
    btn.textContent = "登录中…";
    try {
      const r = await kefu.api("POST", "/api/v1/auth/login", body);
      kefu.setCsrfToken(r.csrf_token);
      account = r.account;
      typedPassword = password;
      afterSignIn();
    } catch (e) {
      const code = e.code;
      if (code === "totp_required") { setTotpStep(true); if (captchaShown) loadCaptcha(); return; }
      showError("login-error", T.errorText(e));
      if (code === "captcha_required" || code === "captcha_invalid") showCaptcha();
      else if (captchaShown) loadCaptcha(); // every captcha answers once
      else if (code === "invalid_credentials" || code === "totp_invalid") checkCaptchaRequired();
      if (code === "totp_invalid") { $("login-totp").value = ""; $("login-totp").focus(); }
      else if (code === "invalid_credentials") { $("login-password").value = ""; if (totpStep) setTotpStep(false); $("login-password").focus(); }
    } finally {
      btn.disabled = false;
      btn.textContent = "登录";
    }
  }

  function afterSignIn() {
    if (account.must_change_password) {
      showStep("password");
      $("pw-old-field").hidden = !!typedPassword;
      $("pw-old").value = typedPassword;
      (typedPassword ? $("pw-new") : $("pw-old")).focus();
      return;
    }
    if (account.two_factor_required && !account.two_factor_enabled) { startEnrol(); return; }
    go();
  }

  // ---- forced password change ----
  function updateRules() {
    const r = T.checkPassword($("pw-new").value, account && account.username);
    for (const li of $("pw-rules").children) li.classList.toggle("ok", !!r[li.dataset.rule] && $("pw-new").value.length > 0);
  }
  async function submitPassword(ev) {
    ev.preventDefault();
    hideError("password-error");
    const oldPw = $("pw-old").value, newPw = $("pw-new").value, confirmPw = $("pw-confirm").value;
    if (!oldPw) { $("pw-old-field").hidden = false; showError("password-error", "请输入当前密码"); return; }
    if (!newPw) { showError("password-error", "请输入新密码"); return; }
    if (newPw !== confirmPw) { showError("password-error", "两次输入的新密码不一致"); return; }
    $("pw-submit").disabled = true;
    try {
      account = await kefu.api("POST", "/api/v1/me/password", { old_password: oldPw, new_password: newPw });
      typedPassword = "";
      afterSignIn();
    } catch (e) {
      if (e.code === "weak_password") showError("password-error", "新密码不符合要求：", T.weakRules(e.message));
      else {
        showError("password-error", T.errorText(e));
        if (e.code === "wrong_password") { $("pw-old-field").hidden = false; $("pw-old").value = ""; $("pw-old").focus(); }
      }
    } finally { $("pw-submit").disabled = false; }
  }

  // ---- required two-step enrolment ----
  async function startEnrol() {
    showStep("2fa");
    hideError("enrol-error");
    try {
      const s = await kefu.api("POST", "/api/v1/me/2fa/setup");
      $("enrol-qr").src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(s.qr_svg);
      $("enrol-secret").textContent = s.secret.replace(/(.{4})/g, "$1 ").trim();
      $("enrol-code").focus();
    } catch (e) { showError("enrol-error", T.errorText(e)); }
  }
  async function confirmEnrol() {
    hideError("enrol-error");
    const code = $("enrol-code").value.trim();
    if (!/^\d{6}$/.test(code)) { showError("enrol-error", "请输入 6 位数字验证码"); return; }
    $("enrol-confirm").disabled = true;
    try {
      const r = await kefu.api("POST", "/api/v1/me/2fa/confirm", { code });
      const box = $("enrol-codes");
      box.textContent = "";
      r.recovery_codes.forEach((c) => box.append(kefu.el("span", null, c)));
      $("enrol-codes-box").hidden = false;
      $("enrol-confirm").hidden = true;
    } catch (e) { showError("enrol-error", T.errorText(e)); $("enrol-confirm").disabled = false; }
  }

  async function logout() {
    try { await kefu.api("POST", "/api/v1/auth/logout"); } catch (_) { /* already gone */ }
    location.replace("/login");
  }

  async function init() {
    $("login-form").addEventListener("submit", submitLogin);
    $("login-username").addEventListener("blur", checkCaptchaRequired);
    $("captcha-image").addEventListener("click", loadCaptcha);
    $("captcha-refresh").addEventListener("click", loadCaptcha);
    $("totp-back").addEventListener("click", () => setTotpStep(false));
    $("password-form").addEventListener("submit", submitPassword);
    $("pw-new").addEventListener("input", updateRules);
    $("pw-logout").addEventListener("click", logout);
    $("enrol-confirm").addEventListener("click", confirmEnrol);
    $("enrol-code").addEventListener("keydown", (e) => { if (e.key === "Enter") confirmEnrol(); });
    $("enrol-continue").addEventListener("click", go);
    const reason = new URLSearchParams(location.search).get("reason");
    if (reason === "expired") showError("login-error", "登录已过期，请重新登录");
    // Sent back by the workbench with a pending password change or enrolment (or a reload mid-way):
    // continue where the account stands. A plain visit asks nothing, so it logs no 401.
    if (!new URLSearchParams(location.search).has("resume")) return;
    try {
      const me = await kefu.api("GET", "/api/v1/me");
      kefu.setCsrfToken(me.csrf_token);
      account = me;
      typedPassword = "";
      afterSignIn();
    } catch (_) { /* not signed in: stay on the form */ }
  }
  document.addEventListener("DOMContentLoaded", init);
})();
