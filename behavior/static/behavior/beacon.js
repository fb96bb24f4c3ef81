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
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var endpoint = (script && script.getAttribute("data-endpoint")) || "/api/events/";

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

  function send(event) {
    event.event_id = event.event_id || uuid4();
    event.occurred_at = event.occurred_at || new Date().toISOString();
    var body = JSON.stringify(event);
    var token = cookie("csrftoken");
    // fetch with keepalive survives the navigation a click starts and can carry the CSRF
    // header a logged-in session needs; sendBeacon is the fallback for old browsers.
    if (window.fetch) {
      try {
        fetch(endpoint, {
          method: "POST", body: body, keepalive: true, credentials: "same-origin",
          headers: {"Content-Type": "application/json", "X-CSRFToken": token},
        }).catch(function () {});
        return true;
      } catch (e) { /* fall through */ }
    }
    if (navigator.sendBeacon) {
      return navigator.sendBeacon(endpoint, new Blob([body], {type: "application/json"}));
    }
    return false;
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

  document.addEventListener("click", onClick, true);
  window.behaviorBeacon = {track: track, send: send};
})();
