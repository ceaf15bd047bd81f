// kefu chat widget. Embed on any site:
//   <script src="https://kefu.example/widget.js" data-channel="web" data-group="3" async></script>
// Optional signed-in user of the host site (signature computed by the host's server, see docs/API.md):
//   data-site="shop" data-user-id="u10086" data-user-name="王女士" data-member-level="金卡"
//   data-expires="1795598400" data-signature="5f0c…"
// Adds a chat bubble (bottom-right) and a hidden panel with an iframe of /chat?embed=1 from the kefu origin.
// The iframe owns the visitor token (localStorage of the kefu origin) and reports page views and heartbeats;
// this script only forwards the host page's identity and SPA navigations to it by postMessage (both sides
// check the other's origin), and shows a proactive invitation by the bubble while the panel is closed.
// Self-contained: no kefu.js, styles set from JS (the host page's CSS rules do not reach inside the iframe,
// and the few host-side elements get explicit inline styles and a private class prefix).
(function () {
  "use strict";
  if (window.__kefuWidgetLoaded) return;
  window.__kefuWidgetLoaded = true;

  const script = document.currentScript || (function () {
    const all = document.getElementsByTagName("script");
    for (let i = all.length - 1; i >= 0; i--) if (/\/widget\.js(\?|$)/.test(all[i].src)) return all[i];
    return null;
  })();
  if (!script || !script.src) return;
  const origin = new URL(script.src, location.href).origin;
  const channel = script.getAttribute("data-channel") || "web";
  const group = script.getAttribute("data-group") || "";
  const accent = /^#[0-9a-fA-F]{3,8}$/.test(script.getAttribute("data-color") || "") ? script.getAttribute("data-color") : "#1677ff";
  const title = script.getAttribute("data-title") || "在线客服";
  const identity = (function () {
    const pick = (name) => { const v = script.getAttribute(name); return v && v.trim() ? v.trim().slice(0, 200) : undefined; };
    const id = { site: pick("data-site"), user_id: pick("data-user-id"), name: pick("data-user-name"),
      member_level: pick("data-member-level"), signature: pick("data-signature") };
    const exp = pick("data-expires");
    if (exp && /^\d{1,12}$/.test(exp)) id.expires = Number(exp);
    for (const k of Object.keys(id)) if (id[k] === undefined) delete id[k];
    return id.user_id || id.name ? id : null;
  })();

  function chatUrl() {
    const q = new URLSearchParams({ embed: "1", channel });
    if (group) q.set("group", group);
    q.set("page", location.href.slice(0, 2000));
    return origin + "/chat?" + q.toString();
  }

  const css = [
    ".kefu-w-bubble{position:fixed;right:24px;bottom:24px;z-index:2147483000;width:58px;height:58px;border-radius:50%;border:none;cursor:pointer;",
    "background:" + accent + ";color:#fff;box-shadow:0 8px 24px rgba(22,119,255,.35);display:flex;align-items:center;justify-content:center;",
    "padding:0;margin:0;transition:transform .18s ease, box-shadow .18s ease;font:0/0 a;}",
    ".kefu-w-bubble:hover{transform:translateY(-2px) scale(1.04);box-shadow:0 12px 28px rgba(22,119,255,.45);}",
    ".kefu-w-bubble:focus-visible{outline:3px solid rgba(22,119,255,.45);outline-offset:3px;}",
    ".kefu-w-bubble svg{width:28px;height:28px;display:block;}",
    ".kefu-w-dot{position:absolute;top:2px;right:2px;min-width:18px;height:18px;padding:0 5px;border-radius:9px;background:#f5222d;color:#fff;",
    "font:600 11px/18px -apple-system,\"PingFang SC\",\"Microsoft YaHei\",\"Noto Sans CJK SC\",sans-serif;text-align:center;border:2px solid #fff;box-sizing:content-box;}",
    ".kefu-w-panel{position:fixed;right:24px;bottom:96px;z-index:2147483001;width:380px;height:min(640px, calc(100vh - 120px));",
    "border-radius:16px;overflow:hidden;background:#fff;box-shadow:0 16px 48px rgba(15,23,42,.22);opacity:0;transform:translateY(12px) scale(.98);",
    "transform-origin:bottom right;pointer-events:none;",
    "transition:opacity .18s ease, transform .18s ease, visibility 0s linear .18s;visibility:hidden;}",
    ".kefu-w-panel.kefu-w-open{opacity:1;transform:none;pointer-events:auto;visibility:visible;transition-delay:0s;}",
    ".kefu-w-invite{position:fixed;right:24px;bottom:96px;z-index:2147483000;width:280px;max-width:calc(100vw - 48px);box-sizing:border-box;",
    "background:#fff;color:#1f2329;border-radius:12px;padding:14px 16px 12px;box-shadow:0 12px 32px rgba(15,23,42,.2);",
    "font:14px/1.6 -apple-system,\"PingFang SC\",\"Microsoft YaHei\",\"Noto Sans CJK SC\",sans-serif;text-align:left;}",
    ".kefu-w-invite-title{font-weight:600;margin:0 0 4px;font-size:14px;}",
    ".kefu-w-invite-text{margin:0 0 10px;color:#4e5969;word-break:break-word;white-space:pre-wrap;}",
    ".kefu-w-invite-actions{display:flex;justify-content:flex-end;gap:8px;}",
    ".kefu-w-invite button{font:inherit;font-size:13px;border-radius:6px;padding:4px 12px;cursor:pointer;line-height:1.6;}",
    ".kefu-w-invite button:focus-visible{outline:2px solid rgba(22,119,255,.5);outline-offset:2px;}",
    "@media (max-width:600px){.kefu-w-invite{right:16px;bottom:84px;}}",
    ".kefu-w-panel iframe{width:100%;height:100%;border:0;display:block;}",
    "@media (max-width:600px){.kefu-w-panel{right:0;bottom:0;width:100vw;height:100vh;height:100dvh;border-radius:0;}",
    ".kefu-w-bubble{right:16px;bottom:16px;}.kefu-w-bubble.kefu-w-hidden-mobile{display:none;}}",
  ].join("");

  let panel = null;
  let frame = null;
  let open = false;
  let unread = 0;

  function build() {
    const style = document.createElement("style");
    style.setAttribute("data-kefu-widget", "");
    style.textContent = css;
    (document.head || document.documentElement).appendChild(style);

    const bubble = document.createElement("button");
    bubble.type = "button";
    bubble.className = "kefu-w-bubble";
    bubble.id = "kefu-widget-bubble";
    bubble.setAttribute("data-testid", "kefu-widget-bubble");
    bubble.setAttribute("aria-label", title);
    bubble.setAttribute("aria-expanded", "false");
    bubble.title = title;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("fill", "none");
    svg.setAttribute("stroke", "currentColor");
    svg.setAttribute("stroke-width", "2");
    svg.setAttribute("stroke-linecap", "round");
    svg.setAttribute("stroke-linejoin", "round");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6A8 8 0 1 1 21 12z");
    const dots = document.createElementNS(ns, "path");
    dots.setAttribute("d", "M8.5 12h.01M12 12h.01M15.5 12h.01");
    svg.appendChild(path);
    svg.appendChild(dots);
    bubble.appendChild(svg);
    const dot = document.createElement("span");
    dot.className = "kefu-w-dot";
    dot.id = "kefu-widget-unread";
    dot.setAttribute("data-testid", "kefu-widget-unread");
    dot.hidden = true;
    dot.style.display = "none";
    bubble.appendChild(dot);
    bubble.addEventListener("click", () => toggle());
    // The host page's own rules (button { … !important }) must not restyle the bubble: inline !important wins.
    important(bubble, { background: accent, color: "#fff", border: "none", padding: "0", margin: "0", width: "58px", height: "58px",
      "min-width": "58px", "min-height": "58px", "border-radius": "50%", "box-sizing": "border-box" });
    document.body.appendChild(bubble);

    panel = document.createElement("div");
    panel.className = "kefu-w-panel";
    panel.id = "kefu-widget-panel";
    panel.setAttribute("data-testid", "kefu-widget-panel");
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", title);
    panel.setAttribute("aria-hidden", "true");
    document.body.appendChild(panel);

    // The invitation card by the bubble (panel closed): accept opens the chat, decline hides it.
    const invite = document.createElement("div");
    invite.className = "kefu-w-invite";
    invite.id = "kefu-widget-invite";
    invite.setAttribute("data-testid", "kefu-widget-invite");
    invite.setAttribute("role", "dialog");
    invite.setAttribute("aria-live", "polite");
    invite.setAttribute("aria-labelledby", "kefu-widget-invite-title");
    invite.hidden = true;
    invite.style.display = "none";
    const inviteTitle = document.createElement("p");
    inviteTitle.className = "kefu-w-invite-title";
    inviteTitle.id = "kefu-widget-invite-title";
    const inviteText = document.createElement("p");
    inviteText.className = "kefu-w-invite-text";
    inviteText.id = "kefu-widget-invite-text";
    inviteText.setAttribute("data-testid", "kefu-widget-invite-text");
    const actions = document.createElement("div");
    actions.className = "kefu-w-invite-actions";
    const decline = document.createElement("button");
    decline.type = "button";
    decline.id = "kefu-widget-invite-decline";
    decline.setAttribute("data-testid", "kefu-widget-invite-decline");
    decline.textContent = "稍后再说";
    important(decline, { background: "#fff", color: "#4e5969", border: "1px solid #e5e6eb" });
    const accept = document.createElement("button");
    accept.type = "button";
    accept.id = "kefu-widget-invite-accept";
    accept.setAttribute("data-testid", "kefu-widget-invite-accept");
    accept.textContent = "立即咨询";
    important(accept, { background: accent, color: "#fff", border: "1px solid " + accent });
    actions.appendChild(decline);
    actions.appendChild(accept);
    invite.appendChild(inviteTitle);
    invite.appendChild(inviteText);
    invite.appendChild(actions);
    document.body.appendChild(invite);
    decline.addEventListener("click", () => { post({ type: "invitation-answer", accept: false }); showInvite(false); bubble.focus(); });
    accept.addEventListener("click", () => { post({ type: "invitation-answer", accept: true }); showInvite(false); toggle(true); });
    let invitePending = false;
    function showInvite(on, data) {
      invitePending = on;
      if (on && data) {
        inviteTitle.textContent = data.agent_name ? "客服" + String(data.agent_name).slice(0, 32) + "邀请您咨询" : "在线客服邀请您咨询";
        inviteText.textContent = String(data.text || "您好，有什么可以帮您的吗？").slice(0, 300);
      }
      const visible = on && !open;
      invite.hidden = !visible;
      invite.style.display = visible ? "block" : "none";
    }

    // The iframe is created at once (hidden): it owns the visitor token and reports page views and heartbeats.
    frame = document.createElement("iframe");
    frame.id = "kefu-widget-frame";
    frame.setAttribute("data-testid", "kefu-widget-frame");
    frame.title = title;
    frame.src = chatUrl();
    frame.allow = "clipboard-write";
    important(frame, { border: "0", width: "100%", height: "100%", margin: "0", padding: "0", display: "block", background: "#fff" });
    panel.appendChild(frame);

    let frameReady = false;
    const outbox = [];
    function post(message) {
      const data = Object.assign({ kefu: true }, message);
      if (frameReady && frame.contentWindow) frame.contentWindow.postMessage(data, origin);
      else outbox.push(data);
    }

    forward = post;

    window.addEventListener("message", (event) => {
      if (event.origin !== origin || !frame || event.source !== frame.contentWindow) return;
      const data = event.data;
      if (!data || data.kefu !== true) return;
      if (data.type === "ready") {
        frameReady = true;
        frame.contentWindow.postMessage({ kefu: true, type: "init", identity, title: document.title.slice(0, 200) }, origin);
        while (outbox.length) frame.contentWindow.postMessage(outbox.shift(), origin);
      } else if (data.type === "close") toggle(false);
      else if (data.type === "open") toggle(true);
      else if (data.type === "message") {
        if (!open) { unread += Number(data.count) || 1; renderUnread(); }
      } else if (data.type === "invitation") showInvite(true, data);
      else if (data.type === "invitation-closed") showInvite(false);
    });
    document.addEventListener("keydown", (e) => { if (e.key === "Escape" && open) toggle(false); });

    function renderUnread() {
      dot.textContent = unread > 99 ? "99+" : String(unread);
      dot.hidden = unread === 0;
      dot.style.display = unread === 0 ? "none" : "block";
    }
    function toggle(force) {
      open = force != null ? force : !open;
      panel.classList.toggle("kefu-w-open", open);
      panel.setAttribute("aria-hidden", String(!open));
      if (open) panel.removeAttribute("inert"); else panel.setAttribute("inert", "");
      bubble.setAttribute("aria-expanded", String(open));
      bubble.classList.toggle("kefu-w-hidden-mobile", open);
      if (open) { unread = 0; renderUnread(); post({ type: "opened" }); }
      showInvite(invitePending);
    }
    panel.setAttribute("inert", "");
    window.kefuWidget = { open: () => toggle(true), close: () => toggle(false), toggle: () => toggle() };

    watchNavigation();
  }

  /** SPA navigations (history.pushState, back/forward) are page views too: forward them to the iframe. */
  let lastPage = location.href;
  let navTimer = null;
  function watchNavigation() {
    const onNavigate = () => {
      clearTimeout(navTimer);
      // Let the app set its new title first.
      navTimer = setTimeout(() => {
        if (location.href === lastPage) return;
        lastPage = location.href;
        const frameEl = document.getElementById("kefu-widget-frame");
        if (!frameEl) return;
        forward({ type: "pageview", url: location.href.slice(0, 2000), title: document.title.slice(0, 200) });
      }, 300);
    };
    const push = history.pushState;
    history.pushState = function () {
      const result = push.apply(this, arguments);
      onNavigate();
      return result;
    };
    window.addEventListener("popstate", onNavigate);
  }
  let forward = () => {};

  function important(node, props) {
    for (const [k, v] of Object.entries(props)) node.style.setProperty(k, v, "important");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", build);
  else build();
})();
