// tensafe-ops status pages: live respond-by countdowns and refresh without a full reload.
// Without this script the pages show the server's values as of `taken_at` (and reload
// themselves through a <noscript> meta refresh).
"use strict";
(function () {
  var loadedAt = performance.now();

  // Same text as operations/pages/present.py:countdown.
  function span(seconds) {
    var s = Math.floor(seconds);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + two(s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + two(Math.floor((s % 3600) / 60)) + "m";
    return Math.floor(s / 86400) + "d " + two(Math.floor((s % 86400) / 3600)) + "h";
  }

  function countdown(left) {
    return left >= 0 ? span(left) + " left" : "overdue by " + span(-left);
  }

  // Respond-by instants on this page's monotonic clock, per alert and deadline. A refresh's
  // seconds_left was computed before its answer arrived (a slow picture, a busy machine), so
  // taking it as of arrival would move the countdown back up; the earliest reading wins, and a
  // countdown never runs backwards.
  var deadlines = {};

  function tick() {
    var now = performance.now() / 1000;
    var elapsed = now - loadedAt / 1000;
    var clocks = document.querySelectorAll("[data-seconds-left]");
    for (var i = 0; i < clocks.length; i++) {
      var el = clocks[i];
      var row = el.closest("tr");
      var key = (row ? row.getAttribute("data-alert") : "") + "|" + el.getAttribute("datetime");
      var due = loadedAt / 1000 + parseFloat(el.getAttribute("data-seconds-left"));
      if (!(key in deadlines) || due < deadlines[key]) deadlines[key] = due;
      var left = deadlines[key] - now;
      var overdue = left < 0;
      el.textContent = countdown(left);
      el.classList.toggle("overdue", overdue);
      if (row) row.classList.toggle("overdue", overdue);
    }
    var ages = document.querySelectorAll("[data-age-seconds]");
    for (var j = 0; j < ages.length; j++) {
      var age = parseFloat(ages[j].getAttribute("data-age-seconds")) + elapsed;
      ages[j].textContent = span(age) + " ago";
    }
  }

  var body = document.body;
  var every = parseFloat(body.getAttribute("data-refresh") || "0");
  var notice = document.getElementById("refresh-notice");
  var timer = null;

  function say(text) {
    if (!notice) return;
    notice.textContent = text;
    notice.hidden = !text;
  }

  function refresh() {
    fetch(window.location.href, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "text/html" },
    }).then(function (response) {
      if (response.status === 401) {
        stop();
        say("Your session has ended: reload the page to sign in again.");
        return null;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.text();
    }).then(function (html) {
      if (html === null) return;
      var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
      var current = document.querySelector("main");
      if (!fresh || !current) throw new Error("no <main> in the answer");
      var focused = document.activeElement && document.activeElement.id;
      current.replaceWith(document.importNode(fresh, true));
      if (focused) {
        var again = document.getElementById(focused);
        if (again) again.focus({ preventScroll: true });
      }
      loadedAt = performance.now();
      say("");
      tick();
      document.dispatchEvent(new CustomEvent("tensafe:refreshed"));
    }).catch(function (error) {
      var stamp = document.querySelector("[data-taken-at]");
      var when = stamp ? stamp.textContent : "the last load";
      say("Could not refresh (" + error.message + "); showing data taken at " + when + ".");
    });
  }

  function start() {
    if (every > 0 && timer === null) timer = window.setInterval(refresh, every * 1000);
  }
  function stop() {
    if (timer !== null) window.clearInterval(timer);
    timer = null;
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      stop();
    } else {
      refresh();
      start();
    }
  });

  tick();
  window.setInterval(tick, 1000);
  start();
})();
