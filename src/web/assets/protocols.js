// The protocol page: the proposed rules from the form, their preview on
// history (a backtest job with progress, cancellable), saving them as a new
// version, and restoring an earlier one; all through the JSON API. No
// inline scripts: the Content-Security-Policy forbids them.
(() => {
  'use strict';

  const form = document.getElementById('protocol-form');
  const words = document.getElementById('protocol-texts')?.dataset;
  if (!form || !words) return;
  const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content ?? '';
  const lang = words.lang ?? 'nl';
  const protocolId = form.dataset.protocol;
  const api = `/api/v1/protocols/${encodeURIComponent(protocolId)}`;
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRF-Token': csrfToken };

  const fill = (template, ...args) => {
    let index = 0;
    return (template ?? '').replace(/\{\}/g, () => String(args[index++] ?? ''));
  };
  const number = (value, digits) =>
    Number(value).toLocaleString(lang === 'en' ? 'en-GB' : 'nl-NL', { maximumFractionDigits: digits });
  const element = (tag, attributes = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    for (const child of children) node.append(child);
    return node;
  };

  // The protocol as the API gives it, then the form's values over it.
  let base = null;
  const loadBase = async () => {
    if (!base) {
      const response = await fetch(api, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
      if (!response.ok) throw new Error(`GET ${api}: ${response.status}`);
      base = await response.json();
    }
    return structuredClone(base);
  };
  const integers = new Set(['for_minutes', 'repeat_count', 'repeat_of', 'window_hours', 'confirm_within_minutes']);
  const proposed = async () => {
    const document_ = await loadBase();
    delete document_.saved;
    for (const input of form.querySelectorAll('[data-target]')) {
      if (input.value !== '') document_.response_targets[input.dataset.target] = Number.parseInt(input.value, 10);
    }
    const scale = form.querySelector('#news2-scale');
    if (scale) document_.news2_scale = Number.parseInt(scale.value, 10);
    for (const fieldset of form.querySelectorAll('fieldset[data-rule]')) {
      const rule = document_.rules.find((r) => r.id === fieldset.dataset.rule);
      if (!rule) continue;
      for (const input of fieldset.querySelectorAll('[data-field]')) {
        const field = input.dataset.field;
        if (field === 'priority' || field === 'due_by') {
          rule[field] = input.value === '' ? null : input.value;
        } else if (input.value === '') {
          rule[field] = integers.has(field) && field !== 'window_hours' ? 0 : null;
        } else {
          rule[field] = integers.has(field) ? Number.parseInt(input.value, 10) : Number(input.value);
        }
      }
    }
    return document_;
  };

  const problemText = async (response) => {
    try {
      const body = await response.json();
      if (Array.isArray(body.problems)) return `${words.problems} ${body.problems.join('; ')}`;
      return body.detail ?? `${response.status}`;
    } catch {
      return `${response.status}`;
    }
  };

  // Preview.
  const run = document.getElementById('preview-run');
  const cancel = document.getElementById('preview-cancel');
  const status = document.getElementById('preview-status');
  const progress = document.getElementById('preview-progress');
  const result = document.getElementById('preview-result');
  let job = null;

  const table = (caption, columns, rows) => {
    const head = element('tr', {}, ...columns.map((c) => element('th', { scope: 'col' }, c)));
    const body = rows.map((cells) => element('tr', {}, ...cells.map((c, i) => (i === 0 ? element('th', { scope: 'row' }, c) : element('td', { class: 'number' }, c)))));
    return element('table', { class: 'burden' }, element('caption', {}, caption), element('thead', {}, head), element('tbody', {}, ...body));
  };
  const countColumns = [words.current, words.proposed, words.removed, words.added];
  const counts = (row) => [String(row.current), String(row.proposed), String(row.removed), String(row.added)];

  const show = (view) => {
    const r = view.result;
    result.replaceChildren(
      element('p', { class: 'summary' }, fill(words.summary, r.patients, number(r.readings_replayed, 0), number(view.seconds, 1))),
      element('dl', { class: 'preview-totals' },
        element('dt', {}, words.current), element('dd', { id: 'preview-current' }, String(r.current)),
        element('dt', {}, words.proposed), element('dd', { id: 'preview-proposed' }, String(r.proposed)),
        element('dt', {}, words.removed), element('dd', { id: 'preview-removed' }, String(r.removed)),
        element('dt', {}, words.added), element('dd', { id: 'preview-added' }, String(r.added)),
        element('dt', {}, words.perPatientDay),
        element('dd', {}, `${number(r.current_per_patient_day, 3)} → ${number(r.proposed_per_patient_day, 3)}`)),
      element('h4', {}, words.missed),
      r.missed_clinical.length === 0
        ? element('p', { id: 'preview-missed' }, words.noneMissed)
        : element('ul', { id: 'preview-missed' }, ...r.missed_clinical.map((m) =>
          element('li', {}, element('a', { href: `/patients/${m.patient_id}` }, m.rule), ` · ${new Date(m.opened_at).toLocaleString(lang)} · ${m.outcome}`))),
      table(words.byRule, [words.byRule, ...countColumns], r.by_rule.map((row) => [row.rule, ...counts(row)])),
      table(words.byWeek, [words.byWeek, ...countColumns], r.by_week.map((row) => [row.week_of, ...counts(row)])),
      table(words.byPatient, [words.byPatient, ...countColumns], r.by_patient.map((row) => [
        element('a', { href: `/patients/${row.patient_id}` }, row.display_name ?? row.patient_id.slice(0, 8)), ...counts(row)])),
    );
  };

  const follow = async (location) => {
    for (;;) {
      const response = await fetch(location, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
      if (!response.ok) throw new Error(`${response.status}`);
      const view = await response.json();
      progress.max = Math.max(view.total, 1);
      progress.value = view.done;
      status.textContent = fill(words.progress, view.done, view.total);
      if (view.state === 'done') return view;
      if (view.state === 'cancelled') { status.textContent = words.cancelled; return null; }
      if (view.state === 'failed') { status.textContent = `${words.failed} ${view.error ?? ''}`; return null; }
      await new Promise((resolve) => { window.setTimeout(resolve, 250); });
    }
  };

  run?.addEventListener('click', async () => {
    run.disabled = true;
    cancel.hidden = false;
    progress.hidden = false;
    progress.removeAttribute('value');
    result.replaceChildren();
    try {
      const body = { protocol: await proposed(), days: Number.parseInt(document.getElementById('preview-days').value, 10) };
      const response = await fetch(`${api}/preview`, { method: 'POST', headers, credentials: 'same-origin', body: JSON.stringify(body) });
      if (!response.ok) { status.textContent = await problemText(response); return; }
      job = response.headers.get('Location');
      const view = await follow(job);
      if (view) { status.textContent = ''; show(view); }
    } catch (error) {
      status.textContent = `${words.failed} ${error.message}`;
    } finally {
      run.disabled = false;
      cancel.hidden = true;
      progress.hidden = true;
      job = null;
    }
  });

  cancel?.addEventListener('click', async () => {
    if (!job) return;
    await fetch(job, { method: 'DELETE', headers, credentials: 'same-origin' });
  });

  // Save as a new version.
  const save = document.getElementById('protocol-save');
  const saveStatus = document.getElementById('save-status');
  save?.addEventListener('click', async () => {
    const reason = document.getElementById('change-reason');
    if (!reason.value.trim()) { reason.focus(); reason.reportValidity(); return; }
    save.disabled = true;
    try {
      const response = await fetch(api, {
        method: 'PUT', headers, credentials: 'same-origin',
        body: JSON.stringify({ protocol: await proposed(), reason: reason.value }),
      });
      if (response.ok) {
        const saved = await response.json();
        saveStatus.textContent = fill(words.saved, saved.version);
        window.location.assign(`/protocols/${encodeURIComponent(protocolId)}?compare=${saved.version}`);
      } else if (response.status === 409) {
        saveStatus.textContent = words.conflict;
      } else {
        saveStatus.textContent = await problemText(response);
      }
    } finally {
      save.disabled = false;
    }
  });

  // Restore an earlier version.
  for (const restore of document.querySelectorAll('form.restore')) {
    restore.addEventListener('submit', async (event) => {
      event.preventDefault();
      const reason = restore.querySelector('input');
      if (!reason.value.trim()) { reason.reportValidity(); return; }
      const response = await fetch(`${api}/versions/${restore.dataset.restore}/restore`, {
        method: 'POST', headers, credentials: 'same-origin', body: JSON.stringify({ reason: reason.value }),
      });
      if (response.ok) {
        const saved = await response.json();
        window.location.assign(`/protocols/${encodeURIComponent(protocolId)}?compare=${saved.version}`);
      } else {
        reason.setCustomValidity(await problemText(response));
        reason.reportValidity();
        reason.setCustomValidity('');
      }
    });
  }
})();
