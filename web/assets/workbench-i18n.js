// Chinese texts for API error codes (docs/API.md "Error codes"); shared by the sign-in page and the workbench.
(function () {
  "use strict";
  const ERRORS = {
    bad_request: "请求格式有误，请刷新页面后重试",
    invalid_query: "请输入搜索内容（不超过 1000 字）",
    invalid_article_id: "文章 ID 不合法",
    invalid_article: "文章格式有误，请检查后再保存",
    wrong_password: "当前密码不正确",
    weak_password: "新密码不符合要求",
    invalid_input: "填写的内容不符合要求，请检查后重试",
    invalid_import: "导入文件格式有误，请使用 UTF-8 编码的 CSV 模板或 JSON 数组",
    unauthenticated: "请先登录",
    session_expired: "登录已过期，请重新登录",
    invalid_credentials: "用户名或密码错误",
    captcha_required: "请输入图片验证码",
    captcha_invalid: "验证码错误或已过期，请重新输入",
    totp_required: "请输入身份验证器中的 6 位验证码",
    totp_invalid: "验证码错误，请重新输入",
    identity_invalid: "身份校验失败，请刷新页面后重试",
    visitor_blocked: "抱歉，您暂时无法发起咨询",
    visitor_not_found: "访客不存在",
    visitor_in_conversation: "该访客正在对话中，无需邀请",
    block_not_found: "该黑名单记录不存在或已解除",
    forbidden: "你没有权限执行此操作",
    account_disabled: "该账号已停用，请联系管理员",
    csrf_failed: "页面已失效，请刷新后重试",
    password_change_required: "为了账号安全，请先修改密码",
    two_factor_setup_required: "管理员要求开启两步验证，请先完成设置",
    article_not_found: "文章不存在或已删除",
    account_not_found: "账号不存在",
    group_not_found: "技能组不存在",
    conversation_not_found: "会话不存在",
    quick_reply_not_found: "快捷回复不存在或已删除",
    not_found: "请求的内容不存在",
    method_not_allowed: "不支持该操作",
    username_taken: "该用户名已被使用",
    group_name_taken: "该技能组名称已存在",
    shortcut_taken: "该快捷编码已被使用，请换一个",
    conversation_closed: "会话已结束或当前无法进行此操作",
    conversation_taken: "该会话已被其他客服接入",
    agent_at_capacity: "您的接待量已达上限，请先结束部分会话",
    transfer_target_unavailable: "对方暂时无法接待，请选择其他客服或技能组",
    avatar_too_large: "头像图片过大，请选择 1 MB 以内的图片",
    message_too_long: "消息过长，请分条发送（每条不超过 5000 字）",
    upload_too_large: "文件过大，请压缩后重新发送",
    invalid_avatar: "头像仅支持 PNG、JPEG、GIF 或 WebP 格式的图片",
    invalid_upload: "不支持该文件类型，或文件内容与扩展名不符",
    account_locked: "登录失败次数过多，已暂时限制从当前网络登录，请稍后再试",
    rate_limited: "操作过于频繁，请稍后再试",
    no_leader: "服务切换中，请稍后重试",
    internal: "服务器开小差了，请稍后再试",
  };
  const RULES = [
    ["at least 8 characters", "至少 8 个字符"],
    ["at most 256 characters", "最多 256 个字符"],
    ["3 of: upper case, lower case, digit, symbol", "须包含大写字母、小写字母、数字、符号中的至少 3 种"],
    ["must not contain the username", "不能包含用户名"],
    ["too common", "密码过于常见，容易被猜到"],
    ["must differ from the current password", "新密码不能与当前密码相同"],
  ];

  /** The Chinese text for an error (ApiError, socket error frame or anything else). */
  function errorText(err, overrides) {
    const code = err && err.code;
    if (overrides && code && overrides[code]) return overrides[code];
    if (code === "account_locked" && err.message) {
      const m = /after (\d{4}-\d\d-\d\dT[0-9:.]+Z)/.exec(err.message);
      if (m) {
        const d = new Date(m[1]);
        if (!isNaN(d)) return "登录失败次数过多，已暂时限制从当前网络登录，请于 " + d.toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit" }) + " 后再试";
      }
    }
    // WeChat's reply rules: the server's message says which one, in Chinese, for the agent.
    if (code === "reply_window_closed" && err.message) return err.message;
    if (code && ERRORS[code]) return ERRORS[code];
    if (err instanceof TypeError) return "网络连接失败，请检查网络后重试";
    return "操作失败，请稍后重试";
  }

  // The server's `message` is English and meant for logs; these are the ones a form can cause, in
  // Chinese, so a page can say what to fix. Anything else gets only the code's text.
  const DETAILS = [
    [/is not an address or a CIDR range/, () => "IP 地址或网段格式不正确，例如 1.2.3.4 或 1.2.3.0/24"],
    [/block a `visitor_id`, an `ip_range`, or both/, () => "请填写访客 ID 或 IP 网段"],
    [/a block needs a reason of at most (\d+)/, (m) => "请填写原因（最多 " + m[1] + " 字）"],
    [/`expires` is in the past/, () => "到期时间必须晚于现在"],
    [/a title is 1-(\d+) characters/, (m) => "标题需为 1–" + m[1] + " 个字"],
    [/content is 1-(\d+) characters/, (m) => "内容需为 1–" + m[1] + " 个字"],
    [/a category is at most (\d+) characters/, (m) => "分类最多 " + m[1] + " 个字"],
    [/at most (\d+) tags of at most (\d+) characters/, (m) => "最多 " + m[1] + " 个标签，每个最多 " + m[2] + " 个字"],
    [/shortcut .* is already used/, () => "快捷编码已被使用"],
    [/shortcut .* must be `\/` and 1-(\d+) of/, (m) => "快捷编码须以 / 开头，后接 1–" + m[1] + " 个小写字母、数字、_ 或 -"],
    [/(\d+) columns, expected (\d+)/, (m) => "列数不正确：应为 " + m[2] + " 列，实际 " + m[1] + " 列"],
    [/^unreadable row/, () => "该行无法读取，请检查引号与逗号"],
    [/skill group \d+ not found/, () => "技能组不存在"],
    [/^forbidden/, () => "无权管理该范围的快捷回复"],
    [/unknown problem type/, () => "问题类型不在可选列表中"],
    [/a resolution is at most (\d+) characters and at most (\d+) tags/, (m) => "处理结果最多 " + m[1] + " 字，标签最多 " + m[2] + " 个"],
    [/only an ended conversation can be wrapped up/, () => "会话结束后才能填写小结"],
    [/a transfer note is at most (\d+) characters, a reason at most (\d+)/, (m) => "转接备注最多 " + m[1] + " 字，原因最多 " + m[2] + " 字"],
    [/is not a HH:MM time/, () => "时间格式应为 HH:MM"],
    [/unknown time zone/, () => "时区无效"],
  ];
  /** The Chinese for a server message from the list above, or "" when it is not one of them. */
  function detailText(message) {
    for (const [pattern, text] of DETAILS) {
      const m = pattern.exec(message || "");
      if (m) return text(m);
    }
    return "";
  }
  /** `base`, followed by the Chinese detail of `err`'s message in brackets when there is one. */
  function withDetail(base, err) {
    const detail = detailText(err && err.message);
    return detail ? base + "（" + detail + "）" : base;
  }

  /** The broken password rules of a weak_password message, in Chinese. */
  function weakRules(message) {
    const out = [];
    for (const [en, zh] of RULES) if (message && message.includes(en)) out.push(zh);
    return out;
  }

  /** Client-side check of the documented password rules (the server decides). */
  function checkPassword(pw, username) {
    const classes = [/[A-Z]/, /[a-z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((r) => r.test(pw)).length;
    return {
      length: pw.length >= 8 && pw.length <= 256,
      classes: classes >= 3,
      username: !username || !pw.toLowerCase().includes(String(username).toLowerCase()),
    };
  }

  window.kefuText = { ERRORS, errorText, detailText, withDetail, weakRules, checkPassword };
})();
