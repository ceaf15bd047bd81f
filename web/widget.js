// kefu chat widget. Embed on any site:
//   <script src="https://kefu.example/widget.js" data-channel="web" data-group="3" async></script>
// Adds a chat bubble (bottom-right) and, when opened, an iframe with /chat?embed=1 from the kefu origin.
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
    "transform-origin:bottom right;transition:opacity .18s ease, transform .18s ease;pointer-events:none;}",
    ".kefu-w-panel.kefu-w-open{opacity:1;transform:none;pointer-events:auto;}",
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

    window.addEventListener("message", (event) => {
      if (event.origin !== origin || !frame || event.source !== frame.contentWindow) return;
      const data = event.data;
      if (!data || data.kefu !== true) return;
      if (data.type === "close") toggle(false);
      else if (data.type === "message" || data.type === "invitation") {
        if (!open) { unread += Number(data.count) || 1; renderUnread(); }
      }
    });
    document.addEventListener("keydown", (e) => { if (e.key === "Escape" && open) toggle(false); });

    function renderUnread() {
      dot.textContent = unread > 99 ? "99+" : String(unread);
      dot.hidden = unread === 0;
      dot.style.display = unread === 0 ? "none" : "block";
    }
    function toggle(force) {
      open = force != null ? force : !open;
      if (open && !frame) {
        frame = document.createElement("iframe");
        frame.id = "kefu-widget-frame";
        frame.setAttribute("data-testid", "kefu-widget-frame");
        frame.title = title;
        frame.src = chatUrl();
        frame.allow = "clipboard-write";
        important(frame, { border: "0", width: "100%", height: "100%", margin: "0", padding: "0", display: "block", background: "#fff" });
        panel.appendChild(frame);
      }
      panel.classList.toggle("kefu-w-open", open);
      panel.setAttribute("aria-hidden", String(!open));
      bubble.setAttribute("aria-expanded", String(open));
      bubble.classList.toggle("kefu-w-hidden-mobile", open);
      if (open) { unread = 0; renderUnread(); }
    }
    window.kefuWidget = { open: () => toggle(true), close: () => toggle(false), toggle: () => toggle() };

    reportPageView();
  }

  function important(node, props) {
    for (const [k, v] of Object.entries(props)) node.style.setProperty(k, v, "important");
  }

  /**
   * Reports this page view to kefu (visitor context). The visitor-context API (page views, heartbeat,
   * proactive invitations) is not documented yet; this is where the call goes once it is.
   */
  function reportPageView() {
    /* intentionally empty until the page-view route exists */
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", build);
  else build();
})();
