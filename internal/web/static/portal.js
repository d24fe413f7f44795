// Mailferry portal: small progressive enhancements. Every page works
// without this file; it adds live status updates, "Add another mailbox"
// and sensible port defaults. No inline scripts: the CSP forbids them.
(function () {
  'use strict';

  // Live updates: an element with data-status-url is polled; every
  // [data-live] region inside it whose hash changed is replaced with the
  // HTML the server rendered from the same templates as the page.
  function startLive(root) {
    var url = root.getAttribute('data-status-url');
    var timer = null;
    var failures = 0;

    function schedule(ms) {
      clearTimeout(timer);
      timer = setTimeout(poll, ms);
    }

    function apply(body) {
      var regions = body.regions || {};
      Object.keys(regions).forEach(function (key) {
        var el = root.querySelector('[data-live="' + key + '"]');
        var r = regions[key];
        if (!el || !r || el.getAttribute('data-live-hash') === r.hash) {
          return;
        }
        // Keep open "More info" / "Solve Issue" panels open.
        var open = [];
        el.querySelectorAll('details[open] > summary').forEach(function (s) { open.push(s.textContent); });
        el.innerHTML = r.html;
        el.setAttribute('data-live-hash', r.hash);
        el.querySelectorAll('details > summary').forEach(function (s) {
          if (open.indexOf(s.textContent) >= 0) { s.parentNode.open = true; }
        });
      });
      var was = root.getAttribute('data-running') === 'true';
      root.setAttribute('data-running', body.running ? 'true' : 'false');
      if (was && !body.running) {
        // "The trial has started" is no longer true.
        document.querySelectorAll('[data-while-running]').forEach(function (n) { n.remove(); });
      }
    }

    function poll() {
      if (document.hidden) { schedule(3000); return; }
      fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'application/json' }, cache: 'no-store' })
        .then(function (resp) {
          if (resp.status === 401) { window.location.assign('/login?notice=expired'); return null; }
          if (!resp.ok) { throw new Error('status ' + resp.status); }
          return resp.json();
        })
        .then(function (body) {
          if (!body) { return; }
          failures = 0;
          apply(body);
          schedule(body.running ? 1200 : 10000);
        })
        .catch(function () {
          failures++;
          schedule(Math.min(30000, 2000 * failures));
        });
    }

    document.addEventListener('visibilitychange', function () {
      if (!document.hidden) { schedule(0); }
    });
    schedule(root.getAttribute('data-running') === 'true' ? 1000 : 10000);
  }

  // Mailbox entry table: "+" copies the template row, "✕" removes a row.
  function startEntryTable() {
    var rows = document.getElementById('entry-rows');
    var tpl = document.getElementById('entry-row-template');
    var add = document.querySelector('[data-add-row]');
    if (!rows || !tpl || !add) { return; }
    var next = rows.querySelectorAll('tr').length;

    function addRow(focus) {
      var html = tpl.innerHTML.replace(/__N__/g, 'n' + next).replace(/__NUM__/g, String(rows.querySelectorAll('tr').length + 1));
      next++;
      rows.insertAdjacentHTML('beforeend', html);
      if (focus) {
        var input = rows.lastElementChild.querySelector('input');
        if (input) { input.focus(); }
      }
    }

    add.hidden = false;
    add.addEventListener('click', function () { addRow(true); });
    rows.addEventListener('click', function (ev) {
      var btn = ev.target.closest('[data-remove-row]');
      if (!btn) { return; }
      var tr = btn.closest('tr');
      if (tr) { tr.remove(); }
      if (!rows.querySelector('tr')) { addRow(false); }
      add.focus();
    });
  }

  // Servers form (new migration, or the servers of one): the port follows
  // the security choice unless the user typed another one; "allow
  // plaintext" only matters without encryption, and "accept an invalid
  // certificate" only with it.
  function startServerForm() {
    var form = document.querySelector('form[data-server-form]');
    if (!form) { return; }
    var port = form.querySelector('#port');
    var plain = document.getElementById('plaintext-field');
    var insecure = document.getElementById('insecure-field');
    var defaults = ['', '993', '143', '995', '110'];

    function update(changed) {
      var checked = form.querySelector('input[name="security"]:checked');
      if (!checked) { return; }
      var type = form.querySelector('input[name="type"]:checked');
      var attr = type && type.value === 'pop3' ? 'data-pop3-port' : 'data-port';
      if (changed && port && defaults.indexOf(port.value.trim()) >= 0) {
        port.value = checked.getAttribute(attr);
      }
      var none = checked.value === 'none';
      if (plain) {
        plain.hidden = !none;
        if (!none) { plain.querySelector('input').checked = false; }
      }
      if (insecure) {
        insecure.hidden = none;
        if (none) { insecure.querySelector('input').checked = false; }
      }
    }

    form.querySelectorAll('input[name="security"], input[name="type"]').forEach(function (r) {
      r.addEventListener('change', function () { update(true); });
    });
    update(false);
  }

  function init() {
    var live = document.querySelector('[data-status-url]');
    if (live) { startLive(live); }
    startEntryTable();
    startServerForm();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
