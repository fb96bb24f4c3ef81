/*
 * Behaviour beacon: records clicks on recommendation blocks, no dependencies.
 *
 * Included by the shop's base template:
 *   <script src="{% static 'behavior/beacon.js' %}" defer></script>
 *
 * A click on a link inside [data-recommendation-id] [data-item] sends one "click" event
 * (item, recommendation_id, placement, position) to POST /api/events/. Other client-side
 * events: window.behaviorBeacon.track("wishlist", "SKU-1", {context: {...}}).
 * The endpoint URL can be changed with <script data-endpoint="/api/events/" ...>.
 *
 * Delivery: every event gets its id and time here, once, and goes into an outbox in
 * localStorage before it is sent. It leaves the outbox when the server has answered for it
 * (2xx: stored or already stored; 4xx other than 408/429: rejected for good). Otherwise (no
 * network, a 5xx such as the 503 of a database outage, 408, 429) it stays and is resent
 * unchanged, with the same event_id and occurred_at, so the server stores it exactly once:
 * after the answer's Retry-After (or 2, 4, 8 ... up to 300 seconds), and on the next page.
 *
 * The outbox holds at most OUTBOX_SIZE (200) events; when full, the oldest are dropped
 * first and counted (behaviorBeacon.stats().dropped). It belongs to one visitor: the
 * server's generation cookie (rec_vgen) changes whenever it issues a new visitor id
 * (login, logout), and events queued under another generation are discarded, never sent
 * under the new id, so a shared browser never credits one person's events to the next.
 * Without a generation cookie (no consent, Do-Not-Track) nothing is queued or sent.
 * The visitor id itself is an HttpOnly cookie: this script never sees it.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var endpoint = (script && script.getAttribute("data-endpoint")) || "/api/events/";
  var OUTBOX_KEY = "behavior.outbox";
  var STATS_KEY = "behavior.outbox.stats";
  var GENERATION_COOKIE = "rec_vgen";
  var OUTBOX_SIZE = 200;
  var BATCH_SIZE = 25;
  var MAX_DELAY_SECONDS = 300;
  var sending = false;
  var retryTimer = null;
  var failures = 0;
  var memory = {outbox: [], stats: {dropped: 0, discarded: 0, rejected: 0}};  // without localStorage

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return "";
  }

  function uuid4() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  // --- the outbox: [{g: generation, e: event}], oldest first -------------------------------------
  function load(key, fallback) {
    try {
      var text = window.localStorage.getItem(key);
      return text ? JSON.parse(text) : fallback;
    } catch (e) {
      return key === OUTBOX_KEY ? memory.outbox : memory.stats;
    }
  }

  function save(key, value) {
    try {
      window.localStorage.setItem(key, JSON.stringify(value));
    } catch (e) {  // private mode, quota: keep it for this page only
      if (key === OUTBOX_KEY) memory.outbox = value; else memory.stats = value;
    }
  }

  function count(name, n) {
    if (!n) return;
    var stats = load(STATS_KEY, {dropped: 0, discarded: 0, rejected: 0});
    stats[name] = (stats[name] || 0) + n;
    save(STATS_KEY, stats);
  }

  // The outbox of the current visitor: entries queued under another generation are discarded.
  function current() {
    var generation = cookie(GENERATION_COOKIE);
    var outbox = load(OUTBOX_KEY, []);
    var kept = outbox.filter(function (entry) { return entry.g === generation; });
    if (kept.length !== outbox.length) {
      count("discarded", outbox.length - kept.length);
      save(OUTBOX_KEY, kept);
    }
    return kept;
  }

  function enqueue(event) {
    var generation = cookie(GENERATION_COOKIE);
    if (!generation) return false;  // the server tracks nobody here (no consent, Do-Not-Track)
    var outbox = current();
    outbox.push({g: generation, e: event});
    if (outbox.length > OUTBOX_SIZE) {
      count("dropped", outbox.length - OUTBOX_SIZE);
      outbox = outbox.slice(outbox.length - OUTBOX_SIZE);
    }
    save(OUTBOX_KEY, outbox);
    return true;
  }

  function remove(ids) {
    var outbox = load(OUTBOX_KEY, []);
    save(OUTBOX_KEY, outbox.filter(function (entry) { return !ids[entry.e.event_id]; }));
  }

  // --- delivery -----------------------------------------------------------------------------------
  function retryLater(seconds) {
    failures += 1;
    var delay = seconds > 0 ? seconds : Math.min(Math.pow(2, failures), MAX_DELAY_SECONDS);
    if (retryTimer) clearTimeout(retryTimer);
    retryTimer = setTimeout(function () { retryTimer = null; flush(); }, Math.min(delay, MAX_DELAY_SECONDS) * 1000);
  }

  function answered(batch, status, body) {
    var ids = {};
    batch.forEach(function (event) { ids[event.event_id] = true; });
    remove(ids);
    if (status >= 400 && body && body.rejected) {
      count("rejected", body.rejected.length);
      if (window.console) console.warn("behavior beacon: events rejected", body.rejected);
    }
  }

  function flush() {
    if (sending || retryTimer) return;
    var batch = current().slice(0, BATCH_SIZE).map(function (entry) { return entry.e; });
    if (!batch.length) return;
    var body = JSON.stringify({events: batch});
    if (!window.fetch) {  // old browsers: one fire-and-forget beacon, removed when handed over
      if (navigator.sendBeacon && navigator.sendBeacon(endpoint, new Blob([body], {type: "application/json"}))) {
        answered(batch, 202, null);
      }
      return;
    }
    sending = true;
    // keepalive lets a click's request finish while the page navigates away; the CSRF header
    // is what a logged-in session needs. If the page goes first, the events stay queued and
    // the next page resends them (the same ids: stored once).
    fetch(endpoint, {
      method: "POST", body: body, keepalive: true, credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": cookie("csrftoken")},
    }).then(function (response) {
      var status = response.status;
      var retryAfter = parseInt(response.headers.get("Retry-After"), 10);
      return response.json().catch(function () { return null; }).then(function (data) {
        sending = false;
        if (status >= 500 || status === 408 || status === 429) {
          retryLater(retryAfter);
          return;
        }
        failures = 0;
        answered(batch, status, data);
        flush();  // the rest of the outbox, if any
      });
    }).catch(function () {  // no network, or the server went away mid-request
      sending = false;
      retryLater(0);
    });
  }

  function send(event) {
    event.event_id = event.event_id || uuid4();
    event.occurred_at = event.occurred_at || new Date().toISOString();
    if (!enqueue(event)) return false;
    flush();
    return true;
  }

  function track(eventType, item, extra) {
    var event = {event_type: eventType};
    if (item) event.item = String(item);
    if (extra) for (var k in extra) if (Object.prototype.hasOwnProperty.call(extra, k)) event[k] = extra[k];
    return send(event);
  }

  function onClick(e) {
    var target = e.target;
    var link = target && target.closest ? target.closest("a") : null;
    if (!link) return;
    var itemEl = link.closest("[data-item]");
    var block = itemEl && itemEl.closest("[data-recommendation-id]");
    if (!itemEl || !block) return;
    var event = {
      event_type: "click",
      item: itemEl.getAttribute("data-item"),
      recommendation_id: block.getAttribute("data-recommendation-id"),
    };
    var placement = block.getAttribute("data-placement");
    if (placement) event.placement = placement;
    var position = parseInt(itemEl.getAttribute("data-position"), 10);
    if (!isNaN(position)) event.position = position;
    send(event);
  }

  function stats() {
    var kept = load(STATS_KEY, {dropped: 0, discarded: 0, rejected: 0});
    return {
      queued: current().length, dropped: kept.dropped || 0,
      discarded: kept.discarded || 0, rejected: kept.rejected || 0, size: OUTBOX_SIZE,
    };
  }

  document.addEventListener("click", onClick, true);
  window.behaviorBeacon = {track: track, send: send, flush: flush, stats: stats};
  flush();  // what an earlier page left unsent
})();
