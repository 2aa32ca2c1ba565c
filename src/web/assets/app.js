// Thuiswacht pages: live worklist (SSE), alert actions through the JSON API,
// and the countdown to each alert's response target. The pages work without
// this script for reading; it adds what needs a script. No inline scripts:
// the Content-Security-Policy forbids them.
(() => {
  'use strict';

  const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content ?? '';
  const lang = document.querySelector('meta[name="lang"]')?.content ?? 'nl';
  const announcer = document.getElementById('announcer');
  const list = document.getElementById('worklist');
  // The page's words for the script, from data-text-* on <body>.
  const texts = document.body.dataset;

  const fill = (template, ...args) => {
    let index = 0;
    return (template ?? '').replace(/\{\}/g, () => String(args[index++] ?? ''));
  };

  // Says something to screen-reader users without moving their focus.
  const announce = (text) => {
    if (!announcer) return;
    announcer.textContent = '';
    window.setTimeout(() => { announcer.textContent = text; }, 50);
  };

  // The same words as the server's duration (web/i18n.rs).
  const duration = (minutes) => {
    const m = Math.abs(Math.trunc(minutes));
    if (m < 60) return `${m} min`;
    if (m < 48 * 60) {
      const hour = lang === 'en' ? 'h' : 'u';
      const rest = m % 60;
      return rest === 0 ? `${Math.floor(m / 60)} ${hour}` : `${Math.floor(m / 60)} ${hour} ${rest} min`;
    }
    const days = Math.floor(m / (24 * 60));
    return lang === 'en' ? `${days} days` : `${days} dagen`;
  };

  // Keeps "waited" and "left / overdue" counting.
  const tick = () => {
    const now = Date.now();
    for (const wait of document.querySelectorAll('.wait[data-opened]')) {
      const opened = Date.parse(wait.dataset.opened);
      const respondBy = Date.parse(wait.dataset.respondBy);
      const waited = wait.querySelector('.waited');
      if (waited && texts.textWaited) waited.textContent = fill(texts.textWaited, duration((now - opened) / 60000));
      const target = wait.querySelector('.target');
      if (!target || wait.dataset.waiting !== 'true') continue;
      const remaining = Math.floor((respondBy - now) / 60000);
      const overdue = respondBy < now;
      wait.classList.toggle('overdue', overdue);
      if (overdue && texts.textOver) target.textContent = `⚠ ${fill(texts.textOver, duration(remaining))}`;
      if (!overdue && texts.textLeft) target.textContent = fill(texts.textLeft, duration(Math.max(remaining, 0)));
    }
  };

  const toLogin = () => {
    window.location.href = `/login?next=${encodeURIComponent(window.location.pathname + window.location.search)}&lang=${lang}`;
  };

  // Re-reads the worklist rows and swaps them in, keeping open cards,
  // focus and any message shown on a card.
  let refreshing = null;
  let again = false;
  const refresh = async () => {
    if (!list) return;
    if (refreshing) { again = true; return refreshing; }
    refreshing = (async () => {
      const response = await fetch(list.dataset.rows, { credentials: 'same-origin', headers: { Accept: 'text/html' } });
      if (response.redirected && new URL(response.url).pathname === '/login') { toLogin(); return; }
      if (response.status === 401) { toLogin(); return; }
      if (!response.ok) return;
      const html = await response.text();
      const open = new Set([...list.querySelectorAll('details[open]')].map((details) => details.dataset.alert));
      const messages = new Map([...list.querySelectorAll('.action-result')]
        .filter((result) => result.textContent)
        .map((result) => [result.closest('[data-alert]')?.dataset.alert, [result.textContent, result.className]]));
      const active = document.activeElement;
      let focusAlert = null;
      let focusSelector = null;
      if (active && list.contains(active)) {
        focusAlert = active.closest('[data-alert]')?.dataset.alert ?? null;
        const form = active.closest('form[data-action]');
        focusSelector = form ? `form[data-action="${form.dataset.action}"] ${active.tagName.toLowerCase()}` : active.tagName.toLowerCase();
      }
      list.innerHTML = html;
      for (const id of open) {
        const details = list.querySelector(`details[data-alert="${id}"]`);
        if (details) details.open = true;
      }
      for (const [id, [text, className]] of messages) {
        const result = list.querySelector(`li[data-alert="${id}"] .action-result`);
        if (result) { result.textContent = text; result.className = className; }
      }
      if (focusAlert) {
        const row = list.querySelector(`li[data-alert="${focusAlert}"]`);
        const target = row?.querySelector(focusSelector) ?? row?.querySelector('summary');
        if (target) target.focus();
      }
      tick();
      const summary = list.querySelector('#summary');
      const status = document.getElementById('live-status');
      announce(`${status?.dataset.updated ?? ''}: ${summary?.textContent.trim() ?? ''}`);
      list.dispatchEvent(new CustomEvent('worklist:updated'));
    })();
    try {
      await refreshing;
    } finally {
      refreshing = null;
      if (again) { again = false; refresh(); }
    }
  };

  // Several changes in a burst make one refresh.
  let pending = null;
  const scheduleRefresh = () => {
    if (pending) return;
    pending = window.setTimeout(() => { pending = null; refresh(); }, 100);
  };

  const bodyOf = (form) => {
    const data = new FormData(form);
    switch (form.dataset.action) {
      case 'resolve': return { outcome: data.get('outcome') };
      case 'snooze': return { until: new Date(Date.now() + Number(data.get('minutes')) * 60000).toISOString() };
      case 'escalate': return { to: data.get('to') };
      case 'notes': return { text: data.get('text') };
      default: return {};
    }
  };

  const show = (alertId, text, ok) => {
    const result = document.querySelector(`li[data-alert="${alertId}"] .action-result`);
    if (result) {
      result.textContent = text;
      result.className = `action-result ${ok ? 'ok' : 'error'}`;
    }
    announce(text);
  };

  // Actions go to the JSON API with the CSRF header; a 409 says who has it.
  document.addEventListener('submit', async (event) => {
    const form = event.target.closest('form.action[data-action]');
    if (!form) return;
    event.preventDefault();
    const alertId = form.closest('[data-alert]')?.dataset.alert;
    const buttons = [...form.querySelectorAll('button')];
    buttons.forEach((button) => { button.disabled = true; });
    try {
      const response = await fetch(form.action, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRF-Token': csrfToken },
        body: JSON.stringify(bodyOf(form)),
      });
      if (response.status === 401) { toLogin(); return; }
      if (response.ok) {
        show(alertId, texts.textDone ?? 'OK', true);
        if (form.dataset.action === 'notes') form.reset();
      } else {
        const problem = await response.json().catch(() => ({}));
        const claimedBy = problem.alert?.claimed_by;
        let text;
        if (response.status === 409 && claimedBy && form.dataset.action === 'claim') {
          text = fill(texts.textClaimed, claimedBy);
        } else if (response.status === 409) {
          text = fill(texts.textConflict, problem.detail ?? '');
        } else {
          text = fill(texts.textFailed, problem.detail ?? problem.title ?? response.statusText);
        }
        show(alertId, text, false);
      }
      if (list) {
        await refresh();
      } else {
        // The patient page: reload to show the alert as it now is, and
        // keep the message for after the reload.
        const result = document.querySelector(`li[data-alert="${alertId}"] .action-result`);
        sessionStorage.setItem('thuiswacht:message', JSON.stringify([alertId, result?.textContent, result?.className]));
        window.location.reload();
      }
    } catch (error) {
      show(alertId, fill(texts.textFailed, String(error)), false);
    } finally {
      buttons.forEach((button) => { button.disabled = false; });
    }
  });

  // A message carried over a reload of the patient page.
  const carried = sessionStorage.getItem('thuiswacht:message');
  if (carried) {
    sessionStorage.removeItem('thuiswacht:message');
    try {
      const [alertId, text, className] = JSON.parse(carried);
      const row = document.querySelector(`li[data-alert="${alertId}"]`);
      const result = row?.querySelector('.action-result');
      if (row && result && text) {
        row.querySelector('details').open = true;
        result.textContent = text;
        result.className = className;
        announce(text);
      }
    } catch (_) { /* a malformed message is dropped */ }
  }

  // Live: every change to an alert of the viewer's teams re-reads the rows.
  if (list && window.EventSource) {
    const status = document.getElementById('live-status');
    const source = new EventSource('/api/v1/worklist/stream');
    source.addEventListener('hello', () => {
      if (status) { status.textContent = status.dataset.on; status.classList.remove('lost'); }
      list.dataset.live = 'connected';
      // Changes between rendering and connecting are not lost.
      scheduleRefresh();
    });
    source.addEventListener('alert', scheduleRefresh);
    source.addEventListener('resync', scheduleRefresh);
    source.addEventListener('error', () => {
      if (status) { status.textContent = status.dataset.lost; status.classList.add('lost'); }
      list.dataset.live = 'lost';
    });
    window.addEventListener('beforeunload', () => source.close());
  }

  tick();
  window.setInterval(tick, 30000);
})();

// Personal thresholds on the patient page: a coordinator's change (applied
// at once or proposed) and the decisions on proposals go to the JSON API
// with the CSRF header; the page then reloads to show the versions as they
// now are, with the outcome in the status line.
(() => {
  'use strict';

  const part = document.querySelector('.thresholds');
  if (!part) return;
  const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content ?? '';
  const texts = part.dataset;
  const status = document.getElementById('threshold-status');
  const messageKey = 'thuiswacht:threshold-message';
  const fill = (template, ...args) => {
    let index = 0;
    return (template ?? '').replace(/\{\}/g, () => String(args[index++] ?? ''));
  };
  const say = (text, ok) => {
    if (!status) return;
    status.textContent = text;
    status.className = `action-result ${ok ? 'ok' : 'error'}`;
  };

  // Only what differs from the protocol is sent: a value set back to the
  // protocol's restores the protocol for that setting.
  const settingsOf = (form) => {
    const settings = {};
    for (const input of form.querySelectorAll('[data-field]')) {
      const field = input.dataset.field;
      if (field === 'enabled') {
        if (!input.checked) settings.enabled = false;
        continue;
      }
      const value = input.value.trim();
      const protocol = input.dataset.protocol ?? '';
      if (value === '') continue;
      if (input.type === 'number') {
        const number = input.dataset.integer ? Number.parseInt(value, 10) : Number(value);
        if (protocol !== '' && Number(protocol) === number) continue;
        settings[field] = number;
      } else if (value !== protocol) {
        settings[field] = value;
      }
    }
    return settings;
  };

  const post = async (url, body) => {
    const response = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRF-Token': csrfToken },
      body: JSON.stringify(body),
    });
    if (response.status === 401) {
      window.location.href = `/login?next=${encodeURIComponent(window.location.pathname)}`;
      return null;
    }
    return response;
  };

  const problemText = async (response) => {
    const problem = await response.json().catch(() => ({}));
    const problems = Array.isArray(problem.problems) && problem.problems.length > 0 ? problem.problems.join('; ') : null;
    return fill(texts.textFailed, problems ?? problem.detail ?? problem.title ?? response.statusText);
  };

  const reloadWith = (text) => {
    sessionStorage.setItem(messageKey, text);
    window.location.reload();
  };

  document.addEventListener('submit', async (event) => {
    const form = event.target.closest('form.threshold-set, form.threshold-decision');
    if (!form || !part.contains(form)) return;
    event.preventDefault();
    const buttons = [...form.querySelectorAll('button')];
    buttons.forEach((button) => { button.disabled = true; });
    try {
      let response;
      if (form.classList.contains('threshold-set')) {
        const data = new FormData(form);
        const body = {
          rule: form.dataset.rule,
          settings: settingsOf(form),
          reason: data.get('reason'),
          review_by: data.get('review_by'),
        };
        const until = data.get('valid_until');
        if (until) body.valid_until = new Date(until).toISOString();
        response = await post(form.action, body);
      } else {
        const note = form.querySelector('input[name="note"]')?.value.trim();
        const url = event.submitter?.formAction || form.action;
        response = await post(url, note ? { note } : {});
      }
      if (!response) return;
      if (response.status === 201) reloadWith(texts.textApplied);
      else if (response.status === 202) reloadWith(texts.textProposed);
      else if (response.ok) reloadWith(texts.textDone);
      else say(await problemText(response), false);
    } catch (error) {
      say(fill(texts.textFailed, String(error)), false);
    } finally {
      buttons.forEach((button) => { button.disabled = false; });
    }
  });

  const carried = sessionStorage.getItem(messageKey);
  if (carried) {
    sessionStorage.removeItem(messageKey);
    say(carried, true);
  }
})();
