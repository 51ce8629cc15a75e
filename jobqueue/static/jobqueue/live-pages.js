/* jobqueue's live admin pages, what each shows: the job list, a job's page, the queues
   dashboard and the workers. Each page object says what it subscribes to and applies what it
   receives; live.js holds the socket. Every value from job data is written as text, never as
   HTML (the queues dashboard's rows and the job list's sidebar come as HTML rendered and
   escaped by the server, from the admin's templates). */
(function () {
  "use strict";

  var live = window.jobqueueLive = window.jobqueueLive || {};
  var TIMES = {enq: 1, run_at: 1, started: 1, ended: 1, last: 1, lease: 1}; // ms in job data

  // -- small helpers --------------------------------------------------------------------------

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function words(ms) { // how long ago, as jobqueue's admin says it (seconds under a minute)
    var seconds = Math.max(0, Math.floor((Date.now() - ms) / 1000));
    if (seconds < 60) return seconds + "\u00a0second" + (seconds === 1 ? "" : "s");
    var units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
      ["hour", 3600], ["minute", 60]];
    var parts = [];
    for (var i = 0; i < units.length && parts.length < 2; i++) {
      var n = Math.floor(seconds / units[i][1]);
      if (n > 0 || parts.length) {
        if (n > 0) parts.push(n + "\u00a0" + units[i][0] + (n === 1 ? "" : "s"));
        seconds -= n * units[i][1];
        if (parts.length) break;
      }
    }
    return parts.length ? parts.join(", ") : "0\u00a0minutes";
  }

  function when(ms) { // a moment, in the site's time zone, to the millisecond
    if (!ms) return "—";
    var date = new Date(ms);
    try {
      var text = date.toLocaleString("sv-SE", {timeZone: live.config.tz || undefined});
      return text + "." + String(ms % 1000).padStart(3, "0");
    } catch (e) {
      return date.toISOString();
    }
  }

  function badge(status) { return el("span", {"class": "jq-badge jq-" + status}, status); }

  function progressBar(progress) {
    if (!progress || !progress.total) return null;
    var percent = Math.max(0, Math.min(100, Math.round(100 * progress.done / progress.total)));
    var bar = el("span", {"class": "jq-progress", title: progress.message || ""});
    bar.appendChild(el("span", {style: "width:" + percent + "%"}));
    var box = el("span");
    box.appendChild(bar);
    box.appendChild(document.createTextNode(" " + percent + "%"));
    return box;
  }

  function attempts(state, between) { // as the admin writes them: since the last manual retry
    var before = state.attempts_before || 0;
    var box = el("span", {}, Math.max(state.attempts - before, 0) + between + (state.max_attempts || 1));
    if (before) {
      box.appendChild(el("span", {"class": "jq-quiet", title: "retried by hand after " + before +
        " attempts"}, " · " + state.attempts + " in all"));
    }
    return box;
  }

  function put(node, child) { // replace a node's content with a text or an element
    if (!node) return;
    node.textContent = "";
    if (child === null || child === undefined) return;
    if (typeof child === "string") node.textContent = child;
    else node.appendChild(child);
  }

  function shortId(id) { return id.slice(id.indexOf(":") + 1).slice(0, 8); } // as the lists show it

  function quote(id) { // django.contrib.admin.utils.quote, for URLs of jobs
    return id.replace(/[:\/_#?;@&=+$,"\[\]<>%\n\\]/g, function (c) {
      return "_" + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0");
    });
  }

  // -- the job list -------------------------------------------------------------------------

  var jobs = {
    rows: function () {
      var out = {};
      document.querySelectorAll("#result_list code[data-job]").forEach(function (code) {
        out[code.getAttribute("data-job")] = code.closest("tr");
      });
      return out;
    },
    subscription: function () {
      return {page: "jobs", ids: Object.keys(jobs.rows()), filters: live.config.filters || {},
        insert: !!live.config.insert, since: live.config.since,
        query: location.search.replace(/^\?/, "")};
    },
    apply: function (row, job) {
      var code = row.querySelector("code[data-job]");
      var version = parseInt(code.getAttribute("data-v") || "0", 10);
      if (job.v <= version) return;
      code.setAttribute("data-v", job.v);
      var state = row.jqState || {};
      Object.keys(job).forEach(function (key) { state[key] = job[key]; });
      row.jqState = state;
      put(row.querySelector(".field-status_badge"), badge(job.status));
      if (job.status === "deleted") row.classList.add("jq-gone");
      if (state.attempts !== undefined) put(row.querySelector(".field-tries"), attempts(state, "/"));
      if (state.started_at && state.finished_at) {
        put(row.querySelector(".field-took"),
          ((state.finished_at - state.started_at) / 1000).toFixed(3) + " s");
      }
      if ("progress" in job) put(row.querySelector(".field-progress_display"), progressBar(job.progress));
    },
    table: function () { // the list was empty: build its table as the admin would
      var table = el("table", {id: "result_list"});
      var head = el("tr");
      if (live.config.checkbox) head.appendChild(el("th", {scope: "col", "class": "action-checkbox-column"}));
      (live.config.columns || []).forEach(function (column) {
        var th = el("th", {scope: "col", "class": "column-" + column[0]});
        var text = el("div", {"class": "text"});
        text.appendChild(el("span", {}, column[1]));
        th.appendChild(text);
        head.appendChild(th);
      });
      var thead = el("thead");
      thead.appendChild(head);
      table.appendChild(thead);
      table.appendChild(el("tbody"));
      var results = el("div", {"class": "results"});
      results.appendChild(table);
      var form = document.getElementById("changelist-form");
      if (!form) return null;
      // Before the footer: the paginator itself (Django 5.2), or the box that holds it (6.x).
      var footer = form.querySelector(".paginator");
      while (footer && footer.parentNode !== form) footer = footer.parentNode;
      form.insertBefore(results, footer);
      return table;
    },
    newRow: function (job) {
      var table = document.getElementById("result_list") || jobs.table();
      if (!table) { live.refresh(); return; }
      var row = el("tr", {"class": "jq-new"});
      table.querySelectorAll("thead th").forEach(function (th) {
        var name = (th.className.match(/column-(\S+)/) || [])[1];
        var cell;
        if (th.classList.contains("action-checkbox-column")) {
          cell = el("td", {"class": "action-checkbox"});
          cell.appendChild(el("input", {type: "checkbox", name: "_selected_action", value: job.id,
            "class": "action-select", "aria-label": "Select this object for an action"}));
        } else {
          cell = el(name === "short_id" ? "th" : "td", {"class": "field-" + name});
        }
        if (name === "short_id") {
          var link = el("a", {href: live.config.change_url.replace("__id__", quote(job.id))});
          link.appendChild(el("code", {title: job.id, "data-job": job.id, "data-v": 0},
            shortId(job.id)));
          cell.appendChild(link);
        } else if (name === "queue") {
          cell.textContent = job.queue;
        } else if (name === "task_name") {
          cell.appendChild(el("span", {title: job.task || ""}, (job.task || "").split(".").pop()));
        } else if (name === "age" && job.enqueued_at) {
          cell.appendChild(el("span", {"data-since": job.enqueued_at}, words(job.enqueued_at)));
        }
        row.appendChild(cell);
      });
      // In the list's order (newest first): before the first row enqueued before it; after
      // them all only while the page has room (else the job belongs to a later page).
      var body = table.querySelector("tbody");
      var max = parseInt(live.config.per_page || "100", 10);
      var before = null;
      for (var i = 0; i < body.rows.length && !before; i++) {
        var since = body.rows[i].querySelector("[data-since]");
        if (!since || parseInt(since.getAttribute("data-since"), 10) < (job.enqueued_at || Infinity)) {
          before = body.rows[i];
        }
      }
      if (!before && body.rows.length >= max) return;
      body.insertBefore(row, before);
      jobs.apply(row, job);
      while (body.rows.length > max) body.deleteRow(body.rows.length - 1);
    },
    counts: function (message) { // the sidebar and the count, as the server renders them now
      var count = document.querySelector("#changelist-form .paginator");
      if (count) {
        count.childNodes.forEach(function (node) {
          var found = node.nodeType === 3 && /\d[\d,]*\s+\S+/.exec(node.textContent);
          if (found) node.textContent = node.textContent.replace(found[0], message.count_text);
        });
      }
      var found = document.querySelector("#changelist-search .quiet");
      if (found && found.firstChild && found.firstChild.nodeType === 3) {
        found.firstChild.textContent = found.firstChild.textContent.replace(/^\s*\d[\d,]*\s+results?/,
          message.count + (message.count === 1 ? " result" : " results"));
      }
      var sidebar = document.getElementById("changelist-filter");
      if (sidebar && message.filters) {
        var closed = {}; // the groups the person folded stay folded
        sidebar.querySelectorAll("details[data-filter-title]").forEach(function (d) {
          if (!d.open) closed[d.getAttribute("data-filter-title")] = true;
        });
        // Rendered and escaped by the server, from the admin's own filter templates.
        var doc = new DOMParser().parseFromString("<div>" + message.filters + "</div>", "text/html");
        sidebar.replaceChildren.apply(sidebar, Array.prototype.slice.call(doc.body.firstChild.childNodes));
        sidebar.querySelectorAll("details[data-filter-title]").forEach(function (d) {
          if (closed[d.getAttribute("data-filter-title")]) d.open = false;
        });
      }
    },
    receive: function (message) {
      if (message.type === "counts") { jobs.counts(message); return; }
      if (message.type === "snapshot") message.new = [];
      var rows = jobs.rows();
      (message.jobs || []).forEach(function (job) { if (rows[job.id]) jobs.apply(rows[job.id], job); });
      if (message.new && message.new.length) {
        message.new.slice().reverse().forEach(function (job) {
          if (!jobs.rows()[job.id]) jobs.newRow(job);
        });
      }
    }
  };

  // -- one job's page -------------------------------------------------------------------------

  var job = {
    version: 0,
    state: {},
    subscription: function () {
      return {page: "job", id: live.config.id, logs: live.config.logs || 0};
    },
    receive: function (message) {
      var data = message.job;
      if (data && data.v > job.version) {
        job.version = data.v;
        var status = document.getElementById("jq-status");
        if (status) { status.className = "jq-badge jq-" + data.status; status.textContent = data.status; }
        Object.keys(data).forEach(function (key) { job.state[key] = data[key]; });
        if (data.attempts !== undefined) {
          put(document.getElementById("jq-attempts"), attempts(job.state, " of "));
        }
        if ("started_at" in data) put(document.getElementById("jq-started"), when(data.started_at));
        if ("finished_at" in data) put(document.getElementById("jq-finished"), when(data.finished_at));
        if (data.workers) put(document.getElementById("jq-workers"), data.workers.join(", "));
        put(document.getElementById("jq-version"), String(data.v));
        if ("progress" in data) {
          var p = data.progress;
          put(document.getElementById("jq-progress"), p ? (p.done + " / " + p.total + " " + (p.message || "")) : "—");
        }
        if ("cancel_requested" in data) document.getElementById("jq-cancel").hidden = !data.cancel_requested;
        if (data.reason) {
          var reason = document.getElementById("jq-reason");
          reason.textContent = data.reason;
          reason.hidden = false;
        }
      }
      if (data && data.timeline) job.timeline(data.timeline);
      if (data && data.result !== undefined) {
        put(document.getElementById("jq-result").querySelector("pre"), data.result);
        document.getElementById("jq-result").hidden = false;
      } else if (data && data.result_size) { // too big to send: the page shows its beginning
        var box = document.getElementById("jq-result");
        if (box.hidden) {
          put(box.querySelector("pre"), "A result of " + data.result_size.toLocaleString("en-US") +
            " bytes: reload the page for its first characters.");
          box.hidden = false;
        }
      }
      if (data && data.errors && data.errors.length) job.errors(data.errors);
      if (message.logs && message.logs.length) job.logs(message.logs);
    },
    timeline: function (entries) {
      var body = document.querySelector("#jq-timeline tbody");
      if (!body) return;
      var shown = {};
      body.querySelectorAll("tr[data-v]").forEach(function (tr) { shown[tr.getAttribute("data-v")] = true; });
      entries.forEach(function (entry) {
        if (shown[entry.v]) return;
        var empty = body.querySelector(".jq-empty");
        if (empty) empty.remove();
        var row = el("tr", {"data-v": entry.v, "class": "jq-new"});
        row.appendChild(el("td", {}, entry.v));
        var state = el("td");
        state.appendChild(badge(entry.status));
        row.appendChild(state);
        row.appendChild(el("td", {}, when(entry.at)));
        var changed = el("td");
        Object.keys(entry.changes || {}).forEach(function (name) {
          var value = entry.changes[name];
          if (TIMES[name] && /^\d+$/.test(value)) value = when(parseInt(value, 10));
          changed.appendChild(el("code", {}, name));
          changed.appendChild(document.createTextNode("\u00a0" + value + " "));
        });
        row.appendChild(changed);
        var after = Array.prototype.find.call(body.querySelectorAll("tr[data-v]"), function (tr) {
          return parseInt(tr.getAttribute("data-v"), 10) > entry.v;
        });
        body.insertBefore(row, after || null);
        shown[entry.v] = true;
      });
    },
    errors: function (errors) {
      var box = document.getElementById("jq-errors");
      box.querySelectorAll("details").forEach(function (d) { d.remove(); });
      errors.forEach(function (error, i) {
        var details = el("details", {"class": "jq-error"});
        if (i === errors.length - 1) details.setAttribute("open", "");
        var summary = el("summary", {}, "Attempt " + error.n + ": ");
        summary.appendChild(el("code", {}, error.c));
        details.appendChild(summary);
        details.appendChild(el("pre", {"class": "jq-code"}, error.tb));
        box.appendChild(details);
      });
      box.hidden = false;
    },
    logs: function (records) {
      var pre = document.getElementById("jq-logs");
      var none = document.getElementById("jq-nologs");
      if (none) none.remove();
      records.forEach(function (r) {
        pre.appendChild(document.createTextNode((r.level || "") + " " + (r.logger || "") + ": " + (r.msg || "") + "\n"));
      });
      pre.hidden = false;
      live.config.logs = (live.config.logs || 0) + records.length;
    }
  };

  // -- the queues dashboard and the workers --------------------------------------------------

  var queues = {
    subscription: function () { return {page: "queues"}; },
    receive: function (message) {
      var target = document.getElementById(message.target);
      if (target && message.html !== undefined) {
        // Rendered and escaped by the server, from the same template as the page.
        var doc = new DOMParser().parseFromString("<table><tbody>" + message.html + "</tbody></table>", "text/html");
        var body = doc.querySelector("tbody");
        target.replaceChildren.apply(target, Array.prototype.slice.call(body.childNodes));
      }
    }
  };

  var workers = {
    subscription: function () { return {page: "workers"}; },
    receive: function (message) {
      var known = {};
      document.querySelectorAll("#result_list [data-worker]").forEach(function (span) {
        known[span.getAttribute("data-worker")] = span.closest("tr");
      });
      var unknown = 0;
      (message.workers || []).forEach(function (w) {
        var row = known[w.name];
        if (!row) { unknown++; return; }
        var state = el("span");
        state.appendChild(badge(w.alive ? "alive" : "dead"));
        if (w.alive) state.appendChild(el("span", {"class": "jq-quiet"}, " " + w.state));
        put(row.querySelector(".field-liveness"), state);
        if (w.heartbeat) {
          var cell = row.querySelector(".field-heartbeat");
          put(cell, el("span", {"data-since": w.heartbeat}, words(w.heartbeat)));
          cell.appendChild(document.createTextNode(" ago"));
        }
        var current = row.querySelector(".field-current");
        if (current) {
          current.textContent = "";
          if (!w.current_jobs.length) current.textContent = "—";
          w.current_jobs.forEach(function (id, i) {
            if (i) current.appendChild(document.createTextNode(", "));
            var link = el("a", {href: live.config.change_url.replace("__id__", quote(id)), title: id});
            link.appendChild(el("code", {}, shortId(id)));
            current.appendChild(link);
          });
        }
        put(row.querySelector(".field-jobs_done"), w.successful + " ok · " + w.failed + " failed");
        put(row.querySelector(".field-busy_for"), w.working_time.toFixed(1) + " s");
      });
      var note = document.getElementById("jq-more-workers");
      if (unknown && !note) {
        note = el("p", {id: "jq-more-workers", "class": "jq-note"});
        var link = el("a", {href: location.href}, "Reload");
        note.appendChild(document.createTextNode(unknown + " worker(s) not on this page. "));
        note.appendChild(link);
        var list = document.getElementById("changelist");
        if (list) list.parentNode.insertBefore(note, list);
      }
    }
  };

  var schedules = {
    subscription: function () { return {page: "schedules"}; },
    receive: function (message) {
      var known = {};
      document.querySelectorAll("#result_list [data-schedule]").forEach(function (span) {
        known[span.getAttribute("data-schedule")] = span.closest("tr");
      });
      (message.schedules || []).forEach(function (s) {
        var row = known[s.name];
        if (!row) return;
        put(row.querySelector(".field-state"), badge(s.state));
        put(row.querySelector(".field-next"), s.next);
        put(row.querySelector(".field-last"), s.last);
        var cell = row.querySelector(".field-last_job_link");
        if (!cell) return;
        if (!s.last_job) { put(cell, "—"); return; }
        var link = el("a", {href: live.config.change_url.replace("__id__", quote(s.last_job)),
          title: s.last_job});
        link.appendChild(el("code", {}, shortId(s.last_job)));
        put(cell, link);
      });
    }
  };

  live.pages = {jobs: jobs, job: job, queues: queues, workers: workers, schedules: schedules};
  live.words = words;
})();
