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

    // The page's rows follow the server's list (a filtered page gains
    // and loses rows as statuses change); ticked boxes stay ticked.
    function syncRows(keys) {
      var tbody = root.querySelector('tbody[data-rows]');
      if (!tbody || !keys) { return; }
      var have = {};
      tbody.querySelectorAll('tr[data-live]').forEach(function (tr) { have[tr.getAttribute('data-live')] = tr; });
      keys.forEach(function (key) {
        var tr = have[key];
        if (!tr) {
          tr = document.createElement('tr');
          tr.id = key;
          tr.setAttribute('data-live', key);
        }
        delete have[key];
        tbody.appendChild(tr);
      });
      Object.keys(have).forEach(function (key) { have[key].remove(); });
    }

    function known() {
      var hashes = [];
      root.querySelectorAll('[data-live-hash]').forEach(function (el) { hashes.push(el.getAttribute('data-live-hash')); });
      return hashes.join(',');
    }

    function apply(body) {
      var regions = body.regions || {};
      var ticked = {};
      root.querySelectorAll('input.select-row:checked').forEach(function (c) { ticked[c.value] = true; });
      syncRows(body.rows);
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
        el.querySelectorAll('input.select-row').forEach(function (c) { c.checked = !!ticked[c.value]; });
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
      fetch(url + '&known=' + encodeURIComponent(known()), { credentials: 'same-origin', headers: { 'Accept': 'application/json' }, cache: 'no-store' })
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

    // Microsoft 365 (either side) has no server to enter: its app
    // registration's fields are shown instead.
    var servers = document.getElementById('server-fields');
    var srcApp = document.getElementById('src-app');
    var dstApp = document.getElementById('dst-app');
    function updateApps() {
      var type = form.querySelector('input[name="type"]:checked');
      var m365 = !!type && type.value === 'm365';
      if (servers) { servers.hidden = m365 || (!!type && type.value === 'gmail'); }
      if (srcApp) { srcApp.hidden = !m365; }
      var preset = form.querySelector('input[name="preset"]:checked');
      if (dstApp && preset) { dstApp.hidden = preset.getAttribute('data-type') !== 'm365'; }
    }

    form.querySelectorAll('input[name="security"], input[name="type"]').forEach(function (r) {
      r.addEventListener('change', function () { update(true); });
    });
    form.querySelectorAll('input[name="type"], input[name="preset"]').forEach(function (r) {
      r.addEventListener('change', updateApps);
    });
    update(false);
    updateApps();
  }

  // Settings from the address: the optional address field asks
  // settings.json, which looks up what the domain publishes, and offers
  // each setting found with a button that fills the form. The field is
  // not part of the form and the lookup never holds it up: the user can
  // type the settings and submit meanwhile.
  function startSettingsLookup() {
    var box = document.getElementById('lookup-field');
    var form = document.querySelector('form[data-server-form]');
    if (!box || !form || !window.fetch) { return; }
    box.hidden = false;
    var input = document.getElementById('lookup-email');
    var button = document.getElementById('lookup-button');
    var out = document.getElementById('settings-found');
    var asked = '';
    var pending = null;

    function line(cls, text) {
      var p = document.createElement('p');
      p.className = cls;
      p.textContent = text;
      return p;
    }

    function pick(radioName, value) {
      var r = form.querySelector('input[name="' + radioName + '"][value="' + value + '"]');
      if (r && !r.disabled) {
        r.checked = true;
        r.dispatchEvent(new Event('change', { bubbles: true }));
      }
    }

    function use(sug) {
      pick('type', sug.type);
      pick('security', sug.security);
      form.querySelector('#host').value = sug.host;
      form.querySelector('#port').value = String(sug.port);
      out.replaceChildren(line('lookup-note', 'Filled in: ' + sug.label + '. Check the settings, then continue.'));
      form.querySelector('#host').focus();
    }

    function show(body) {
      var nodes = [];
      (body.suggestions || []).forEach(function (sug, i) {
        var d = document.createElement('div');
        d.className = 'suggestion';
        var t = document.createElement('div');
        t.className = 'suggestion-text';
        var strong = document.createElement('strong');
        strong.textContent = sug.label;
        t.appendChild(strong);
        t.appendChild(line('suggestion-from', 'Found in ' + sug.from + (sug.notes ? ' · ' + sug.notes : '')));
        var b = document.createElement('button');
        b.type = 'button';
        b.className = 'btn btn-small';
        b.id = 'use-settings-' + i;
        b.textContent = 'Use these settings';
        b.addEventListener('click', function () { use(sug); });
        d.appendChild(t);
        d.appendChild(b);
        nodes.push(d);
      });
      (body.notes || []).forEach(function (n) { nodes.push(line('lookup-note', n)); });
      out.replaceChildren.apply(out, nodes);
    }

    function lookup() {
      var addr = input.value.trim();
      if (addr === '' || addr === asked) { return; }
      asked = addr;
      if (pending) { pending.abort(); }
      var ctl = new AbortController();
      pending = ctl;
      var timer = setTimeout(function () { ctl.abort(); }, 8000);
      var domain = addr.indexOf('@') >= 0 ? addr.slice(addr.indexOf('@') + 1) : addr;
      out.replaceChildren(line('lookup-note', 'Looking up the settings of ' + domain + '…'));
      fetch(box.getAttribute('data-settings-url') + '?email=' + encodeURIComponent(addr), { credentials: 'same-origin', signal: ctl.signal })
        .then(function (resp) {
          return resp.json().then(function (body) { return { ok: resp.ok, body: body }; });
        })
        .then(function (r) {
          if (pending !== ctl) { return; }
          if (!r.ok) {
            var msg = r.body && r.body.error ? r.body.error : 'the lookup failed';
            out.replaceChildren(line('lookup-note', msg.charAt(0).toUpperCase() + msg.slice(1) + '.'));
            asked = '';
            return;
          }
          show(r.body);
        })
        .catch(function () {
          if (pending !== ctl) { return; }
          out.replaceChildren(line('lookup-note', 'No settings found in time. Enter them yourself.'));
          asked = '';
        })
        .finally(function () { clearTimeout(timer); if (pending === ctl) { pending = null; } });
    }

    input.addEventListener('change', lookup);
    button.addEventListener('click', lookup);
    input.addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter') { ev.preventDefault(); lookup(); }
    });
  }

  // "All on this page" ticks every row of the page for a bulk action.
  function startBulk() {
    var all = document.getElementById('select-page');
    if (!all) { return; }
    all.parentNode.hidden = false;
    all.addEventListener('change', function () {
      document.querySelectorAll('input.select-row').forEach(function (c) { c.checked = all.checked; });
    });
    var form = document.getElementById('bulk-form');
    form.addEventListener('submit', function (ev) {
      var action = form.querySelector('#bulk-action');
      var scope = form.querySelector('#bulk-scope');
      if (action.value !== 'remove') { return; }
      var n = scope.value === 'matching' ? scope.options[scope.selectedIndex].text : document.querySelectorAll('input.select-row:checked').length + ' ticked mailboxes';
      if (!window.confirm('Remove ' + n.toString().replace(/^All /, 'all ') + ' from this project? Mail already copied stays in the destination.')) {
        ev.preventDefault();
      }
    });
  }

  function init() {
    var live = document.querySelector('[data-status-url]');
    if (live) { startLive(live); }
    startEntryTable();
    startServerForm();
    startSettingsLookup();
    startBulk();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
