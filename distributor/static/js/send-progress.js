// Live progress on the send page: poll the JSON endpoint while a send is under way.
(function () {
  var box = document.querySelector('.send-progress');
  if (box) {
    var url = box.getAttribute('data-progress-url');
    var active = { running: true, scheduled: true, paused: true };
    var field = function (name) { return box.querySelector('[data-field="' + name + '"]'); };
    var eta = function (s) {
      if (s === null || s === undefined) { return '—'; }
      return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s left';
    };
    var tick = function () {
      fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (p) {
          if (!p) { return; }
          var previous = box.getAttribute('data-status');
          field('status').textContent = p.status || 'not started';
          field('done').textContent = p.done;
          field('total').textContent = p.total;
          field('rate').textContent = Math.round(p.rate_per_second);
          field('eta').textContent = eta(p.eta_seconds);
          field('bar').style.width = (p.total ? (100 * p.done / p.total) : 0).toFixed(1) + '%';
          box.querySelector('[role=progressbar]').setAttribute('aria-valuenow', p.done);
          box.querySelectorAll('[data-count]').forEach(function (cell) {
            cell.textContent = p.counts[cell.getAttribute('data-count')] || 0;
          });
          var list = field('reasons');
          if (list && p.reasons) {
            list.textContent = '';
            p.reasons.forEach(function (reason) {
              var item = document.createElement('li');
              item.className = 'reason-' + reason.kind;
              item.textContent = reason.text;
              list.appendChild(item);
            });
            field('no-reasons').hidden = p.reasons.length > 0;
          }
          box.setAttribute('data-status', p.status || '');
          // The controls depend on the status: reload the page once it changes.
          if (previous && p.status !== previous) { window.location.reload(); return; }
          if (active[p.status]) { window.setTimeout(tick, 2000); }
        })
        .catch(function () { window.setTimeout(tick, 5000); });
    };
    if (active[box.getAttribute('data-status')]) { window.setTimeout(tick, 1000); }
  }
  // A form submits once: a double click sends one POST (the server is idempotent anyway).
  document.querySelectorAll('form[data-once]').forEach(function (form) {
    form.addEventListener('submit', function (event) {
      var question = form.getAttribute('data-confirm');
      if (question && !window.confirm(question)) { event.preventDefault(); return; }
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = '1';
    });
  });
})();
