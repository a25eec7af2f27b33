/* The admin's live page: reads the admin's Server-Sent Events stream and puts each new event on top.
   Plain script, no build step. Event data is only ever set as textContent, never as HTML. */
(function () {
  "use strict";

  var SAFE = /[A-Za-z0-9_-]/;

  // An actor id as one URL segment, as the admin's URLs carry it: [A-Za-z0-9_-] kept, every other UTF-8 byte ~XX.
  function segment(actorId) {
    var out = "";
    Array.from(actorId).forEach(function (ch) {
      if (SAFE.test(ch)) {
        out += ch;
      } else {
        new TextEncoder().encode(ch).forEach(function (b) {
          out += "~" + (b < 16 ? "0" : "") + b.toString(16).toUpperCase();
        });
      }
    });
    return out;
  }

  function element(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function cell(row, content, className) {
    var td = element("td", null, className);
    if (content instanceof Node) td.appendChild(content); else td.textContent = content === null || content === undefined ? "" : String(content);
    row.appendChild(td);
    return td;
  }

  function preview(value, limit) {
    var text = JSON.stringify(value);
    return text.length > limit ? text.slice(0, limit - 1) + "…" : text;
  }

  function start(root) {
    var streamUrl = root.dataset.streamUrl;
    var actorUrl = root.dataset.actorUrl;
    var maxRows = parseInt(root.dataset.maxRows, 10) || 500;
    var lastId = root.dataset.after;
    var body = root.querySelector("#live_events tbody");
    var status = root.querySelector("#live-status");
    var toggle = root.querySelector("#live-toggle");
    var counter = root.querySelector("#live-count");
    var count = 0;
    var source = null;

    function setStatus(name, text) {
      status.className = name;
      status.textContent = text;
    }

    function dataCell(event) {
      if (event.data === null || event.forgotten) {
        return element("em", "forgotten", "forgotten");
      }
      var details = element("details");
      var summary = element("summary");
      summary.title = "Show the full JSON";
      summary.appendChild(element("code", preview(event.data, 160), "preview"));
      details.appendChild(summary);
      details.appendChild(element("pre", JSON.stringify(event.data, null, 2)));
      if (event.metadata && Object.keys(event.metadata).length) {
        details.appendChild(element("p", "metadata"));
        details.appendChild(element("pre", JSON.stringify(event.metadata, null, 2)));
      }
      return details;
    }

    function show(event) {
      var waiting = body.querySelector("tr.waiting");
      if (waiting) waiting.remove();
      var row = element("tr", null, "event new");
      row.dataset.position = event.position;
      cell(row, event.position, "numeric");
      var link = element("a", event.actor_id);
      link.href = actorUrl.replace("__actor__", segment(event.actor_id));
      cell(row, link);
      cell(row, event.version, "numeric");
      cell(row, event.event_type);
      cell(row, String(event.timestamp || "").replace("T", " ").replace("Z", ""));
      cell(row, dataCell(event), "data");
      body.insertBefore(row, body.firstChild);
      window.setTimeout(function () { row.classList.remove("new"); }, 1500);
      while (body.rows.length > maxRows) body.deleteRow(body.rows.length - 1);
      count += 1;
      counter.textContent = String(count);
    }

    function connect() {
      var url = streamUrl + (streamUrl.indexOf("?") < 0 ? "?" : "&") + "after=" + encodeURIComponent(lastId);
      source = new EventSource(url);
      source.onopen = function () { setStatus("live", "Live"); };
      source.onmessage = function (message) {
        if (message.lastEventId) lastId = message.lastEventId;
        show(JSON.parse(message.data));
      };
      source.onerror = function () {
        if (source.readyState === EventSource.CLOSED) {
          setStatus("stopped", "Stopped: the stream was refused (reload the page, or log in again)");
          toggle.textContent = "Resume";
          source = null;
        } else {
          setStatus("reconnecting", "Reconnecting…");  // EventSource retries by itself, from the last event it had
        }
      };
      toggle.textContent = "Pause";
    }

    function pause() {
      source.close();
      source = null;
      setStatus("paused", "Paused");
      toggle.textContent = "Resume";
    }

    toggle.addEventListener("click", function () {
      if (source) pause(); else connect();  // resuming asks for what came after the last event shown
    });
    toggle.disabled = false;
    connect();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("live");
    if (root && window.EventSource) start(root);
  });
})();
