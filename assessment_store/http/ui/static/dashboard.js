// AssessmentStore dashboard: applies the live stream (/ui/events) to the page.
// The server renders every fragment (escaped by its templates); this script only
// swaps them in, newest version wins, and keeps the relative ages current.
(function () {
  "use strict";

  const status = document.getElementById("live-status");
  const root = document.querySelector("[data-live]");

  function setStatus(text) {
    if (status) {
      status.textContent = text;
      status.dataset.status = text;
    }
  }

  function fragment(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function newer(element, version) {
    return !element || Number(element.dataset.version) < version;
  }

  function applyRows(rows) {
    const body = document.getElementById("rows");
    if (!body) return;
    const firstPage = root.dataset.firstPage === "true";
    for (const row of rows) {
      const selector = 'tr[data-assessment-id="' + CSS.escape(row.assessmentId) + '"]';
      const present = body.querySelector(selector);
      if (present) {
        if (newer(present, row.version)) present.replaceWith(fragment(row.html));
      } else if (row.insert && firstPage) {
        body.insertBefore(fragment(row.html), body.firstElementChild);
        const empty = document.getElementById("empty");
        if (empty) empty.remove();
      }
    }
  }

  function applyRecords(records) {
    for (const record of records) {
      const present = document.getElementById("record");
      if (present && present.dataset.assessmentId === record.assessmentId &&
          newer(present, record.version)) {
        present.replaceWith(fragment(record.html));
      }
      const audit = document.querySelector("#audit tbody");
      if (!audit) continue;
      for (const entry of record.audit) {
        if (!audit.querySelector('tr[data-version="' + entry.version + '"]')) {
          const row = fragment(entry.html);
          const later = Array.from(audit.children).find(
            (tr) => Number(tr.dataset.version) > entry.version);
          audit.insertBefore(row, later || null);
        }
      }
    }
  }

  function age(seconds) {
    const units = [["d", 86400], ["h", 3600], ["m", 60]];
    for (const [unit, size] of units) {
      if (seconds >= size) return Math.floor(seconds / size) + unit;
    }
    return Math.max(0, Math.floor(seconds)) + "s";
  }

  function refreshAges() {
    const now = Date.now();
    for (const time of document.querySelectorAll("td.age time")) {
      time.textContent = age((now - Date.parse(time.getAttribute("datetime"))) / 1000);
    }
  }

  if (!root || !window.EventSource) {
    setStatus(root ? "not live (no EventSource)" : "");
    return;
  }
  setInterval(refreshAges, 5000);

  const source = new EventSource(root.dataset.live);
  source.addEventListener("open", () => setStatus("live"));
  source.addEventListener("error", () => {
    setStatus(source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting");
  });
  source.addEventListener("changes", (event) => {
    const data = JSON.parse(event.data);
    if (data.rows) applyRows(data.rows);
    if (data.records) applyRecords(data.records);
    document.body.dataset.lastEventId = event.lastEventId;
  });
  source.addEventListener("overview", (event) => {
    const present = document.getElementById("overview");
    if (present) present.replaceWith(fragment(JSON.parse(event.data).html));
  });
  source.addEventListener("reload", () => {
    source.close();
    window.location.reload();
  });
  source.addEventListener("signed-out", () => {
    source.close();
    setStatus("signed out");
    const next = window.location.pathname + window.location.search;
    window.location.href = "/ui/login?next=" + encodeURIComponent(next);
  });
})();
