/* jobqueue's live admin pages: a websocket per page, fed what changes in what the page shows
   (what each page does with it: live-pages.js, loaded first).

   The page says what it shows in a JSON block (<script type="application/json"
   id="jq-live-config">, made by Django's json_script: nothing here is inline script, so a
   Content-Security-Policy without 'unsafe-inline' allows it). On connecting it subscribes, gets
   a snapshot, then what changes; each job carries its version, and an older state never
   replaces a newer one. Dropped: it says so, reconnects with backoff, and meanwhile reloads the
   page's content every RELOAD_EVERY ms so it is never silently stale. A hidden tab closes its
   socket; back (or shown again), the page reloads its content once, then subscribes again. */
(function () {
  "use strict";

  var live = window.jobqueueLive = window.jobqueueLive || {};

  var RELOAD_EVERY = 15000; // ms between two reloads of the content while disconnected
  var HIDDEN_GRACE = 5000; // ms a hidden tab keeps its socket
  var MAX_BACKOFF = 30000;
  var config = null;
  var socket = null;
  var backoff = 1000;
  var reconnectTimer = null;
  var reloadTimer = null;
  var hiddenTimer = null;
  var stale = false; // the page missed changes: reload its content before following again
  var indicator = null;

  // -- the socket ------------------------------------------------------------------------------

  function show(state, text) {
    if (!indicator) {
      indicator = document.createElement("span");
      indicator.id = "jq-live";
      indicator.setAttribute("role", "status");
      indicator.setAttribute("aria-live", "polite");
      var home = document.getElementById("user-tools") || document.getElementById("header");
      if (home) home.insertBefore(indicator, home.firstChild);
    }
    indicator.className = "jq-live jq-live-" + state;
    indicator.textContent = text;
  }

  function connect() {
    clearTimeout(reconnectTimer);
    if (socket || document.hidden) return;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws;
    try {
      ws = new WebSocket(scheme + location.host + config.ws);
    } catch (e) {
      dropped();
      return;
    }
    socket = ws;
    ws.onopen = function () {
      backoff = 1000;
      clearInterval(reloadTimer);
      reloadTimer = null;
      // Back after a drop or a hidden spell: the page's content first (rows that appeared
      // meanwhile), then the snapshot of what it now shows.
      var catchUp = stale ? refresh() : Promise.resolve();
      stale = false;
      catchUp.then(function () {
        if (socket !== ws) return;
        ws.send(JSON.stringify({subscribe: live.pages[config.page].subscription()}));
        show("on", "Live");
      });
    };
    ws.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.type === "resync") {
        ws.send(JSON.stringify({subscribe: live.pages[config.page].subscription()}));
      } else if (message.type === "error") {
        show("off", "Not live: " + message.error);
      } else {
        live.pages[config.page].receive(message);
      }
    };
    ws.onclose = function (event) {
      if (socket !== ws) return;
      socket = null;
      if (event.code === 4403) { show("off", "Not live (not allowed)"); return; }
      if (document.hidden) { stale = true; show("paused", "Paused"); return; }
      dropped();
    };
  }

  function dropped() {
    stale = true;
    show("down", "Reconnecting…");
    var wait = backoff * (0.5 + Math.random() / 2);
    backoff = Math.min(backoff * 2, MAX_BACKOFF);
    reconnectTimer = setTimeout(connect, wait);
    if (!reloadTimer) reloadTimer = setInterval(refresh, RELOAD_EVERY);
  }

  function refresh() { // the page's content as the server renders it now (a promise)
    return fetch(location.href, {credentials: "same-origin"}).then(function (response) {
      return response.ok ? response.text() : null;
    }).then(function (html) {
      if (!html) return;
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.getElementById("content");
      var content = document.getElementById("content");
      var block = doc.getElementById("jq-live-config"); // what the fresh content shows, and when
      if (block) {
        var now = JSON.parse(block.textContent);
        Object.keys(now).forEach(function (key) { config[key] = now[key]; });
      }
      if (fresh && content) content.replaceChildren.apply(content, Array.prototype.slice.call(fresh.childNodes));
    }).catch(function () {});
  }

  function tick() { // times in words stay true
    document.querySelectorAll("[data-since]").forEach(function (node) {
      node.textContent = live.words(parseInt(node.getAttribute("data-since"), 10));
    });
  }

  function start() {
    var block = document.getElementById("jq-live-config");
    if (!block) return;
    config = live.config = JSON.parse(block.textContent);
    live.refresh = refresh;
    if (!config.ws || !live.pages[config.page] || !window.WebSocket) return;
    connect();
    setInterval(tick, 10000);
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) {
        hiddenTimer = setTimeout(function () {
          if (socket) { var s = socket; socket = null; s.close(); }
          stale = true;
          show("paused", "Paused");
        }, HIDDEN_GRACE);
      } else {
        clearTimeout(hiddenTimer);
        if (!socket) connect();
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
