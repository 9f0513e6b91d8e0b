// The live page: lists the most traded active markets and updates their volumes from the stream.
// Plain script, no dependencies; served with a CSP that allows only this origin.
"use strict";

(function () {
  const LIST_URL =
    "/api/v1/markets?status=active&sort=-volume&limit=20&fields=id,name,yes_volume,no_volume,volume";
  const STREAM_PATH = "/api/v1/markets/stream";
  const MAX_BACKOFF_MS = 30000;

  const rows = document.getElementById("rows");
  const connection = document.getElementById("connection");
  const notice = document.getElementById("notice");
  let socket = null;
  let attempt = 0;
  let retryTimer = null;

  function setState(state, text) {
    connection.dataset.state = state;
    connection.textContent = text;
  }

  function showNotice(text) {
    notice.hidden = !text;
    notice.textContent = text || "";
  }

  // Amounts are decimal strings with two places ("12.34"): add them as integer cents.
  function cents(amount) {
    const match = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(String(amount || "0"));
    if (!match) return 0;
    const value = Number(match[2]) * 100 + Number((match[3] || "0").padEnd(2, "0"));
    return match[1] ? -value : value;
  }

  function amount(centsValue) {
    const sign = centsValue < 0 ? "-" : "";
    const abs = Math.abs(centsValue);
    return sign + Math.floor(abs / 100) + "." + String(abs % 100).padStart(2, "0");
  }

  function cell(className, text) {
    const td = document.createElement("td");
    td.className = className;
    td.textContent = text;
    return td;
  }

  function render(markets) {
    const fragment = document.createDocumentFragment();
    for (const market of markets) {
      const tr = document.createElement("tr");
      tr.dataset.marketId = market.id;
      tr.append(
        cell("name", market.name),
        cell("num yes-volume", market.yes_volume),
        cell("num no-volume", market.no_volume),
        cell("num volume", market.volume),
      );
      fragment.append(tr);
    }
    rows.replaceChildren(fragment);
  }

  function rowOf(marketId) {
    for (const tr of rows.children) {
      if (tr.dataset.marketId === marketId) return tr;
    }
    return null;
  }

  function applyEvent(message) {
    const row = rowOf(message.market_id);
    if (!row) return;
    const payload = message.payload || {};
    if (message.type === "position_opened") {
      row.querySelector(".yes-volume").textContent = payload.yes_volume;
      row.querySelector(".no-volume").textContent = payload.no_volume;
      row.querySelector(".volume").textContent = amount(cents(payload.yes_volume) + cents(payload.no_volume));
      row.classList.remove("changed");
      void row.offsetWidth; // restart the highlight
      row.classList.add("changed");
    } else if (message.type === "market_deleted" ||
               (message.type === "market_status_changed" && payload.status !== "active")) {
      row.remove();
    }
  }

  async function loadMarkets() {
    const response = await fetch(LIST_URL, { headers: { accept: "application/json" } });
    if (!response.ok) throw new Error("the market list answered " + response.status);
    const body = await response.json();
    render(body.data || []);
    return (body.data || []).map((market) => market.id);
  }

  function scheduleReconnect(reason) {
    if (retryTimer) return;
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
    attempt += 1;
    setState("reconnecting", reason + "; reconnecting in " + Math.round(delay / 1000) + " s");
    retryTimer = setTimeout(() => {
      retryTimer = null;
      start();
    }, delay);
  }

  // Loads the list, then opens the stream for the markets shown. Every reconnection reloads the
  // list first: events sent while disconnected are not replayed.
  async function start() {
    setState("connecting", "connecting…");
    let ids;
    try {
      ids = await loadMarkets();
      showNotice(ids.length ? "" : "No active markets yet.");
    } catch (error) {
      scheduleReconnect("cannot load the markets (" + error.message + ")");
      return;
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = scheme + "//" + location.host + STREAM_PATH + "?markets=" + ids.join(",");
    socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      attempt = 0;
      setState("live", "live");
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (message.type === "error") {
        console.warn("stream error", message);
      } else if (message.market_id) {
        applyEvent(message);
      }
    });
    socket.addEventListener("close", (event) => {
      socket = null;
      const why = event.code === 4000 ? "fell behind" : event.code === 1001 ? "server going away" : "disconnected";
      scheduleReconnect(why);
    });
  }

  window.addEventListener("online", () => {
    if (!socket && retryTimer) {
      clearTimeout(retryTimer);
      retryTimer = null;
      start();
    }
  });
  start();
})();
