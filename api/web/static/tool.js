// The tool page and the task page: pick or drop an image (uploaded straight to storage),
// pick a style, run; then live progress over Server-Sent Events (EventSource reconnects by
// itself with Last-Event-ID), and the results: images (before/after slider for a cut-out),
// 3D models and point clouds in a viewer (loaded only when there is one), downloads, and
// the next step of a chain (figme: pick the image, then make it 3D).

import { api, t, errorText, say, upload, refreshBalance, localTime } from './app.js';

const root = document.getElementById('tool');
const tool = JSON.parse(root.dataset.tool || '{}');
const steps = tool.steps || [];
const maxBytes = Number(root.dataset.maxMb || 25) * 1024 * 1024;
const accepted = ['image/png', 'image/jpeg', 'image/webp'];
const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
};

let inputAsset = null; // the uploaded image (asset)
let inputPreview = null; // its object URL (for the before/after slider)
let source = null; // the EventSource of the task being followed
let current = null; // the task being followed

// ---- choosing and uploading the image ------------------------------------------------------

async function chooseFile(file) {
  const msg = $('upload-msg');
  const bar = $('upload-progress');
  inputAsset = null;
  if (!file) return;
  if (!accepted.includes(file.type)) return say(msg, t('tool.bad_type'), 'error');
  if (file.size > maxBytes) return say(msg, t('tool.too_big', { mb: root.dataset.maxMb }), 'error');
  if (inputPreview) URL.revokeObjectURL(inputPreview);
  inputPreview = URL.createObjectURL(file);
  const preview = $('preview');
  preview.src = inputPreview;
  preview.hidden = false;
  $('drop-text').hidden = true;
  if (root.dataset.signedIn !== 'true') return;
  bar.hidden = false;
  bar.value = 0;
  say(msg, t('tool.uploading', { pct: 0 }), 'busy');
  try {
    inputAsset = await upload(file, 'uploads', (pct) => {
      bar.value = pct;
      say(msg, t('tool.uploading', { pct }), 'busy');
    });
    say(msg, `${t('tool.uploaded')}: ${file.name}`, 'success');
  } catch (err) {
    bar.hidden = true;
    say(msg, errorText(err), 'error');
  }
}

function setupUpload() {
  const input = $('file');
  const drop = $('drop');
  if (!input) return;
  input.addEventListener('change', () => chooseFile(input.files[0]));
  for (const ev of ['dragenter', 'dragover']) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add('over'); });
  }
  for (const ev of ['dragleave', 'drop']) drop.addEventListener(ev, () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    const file = e.dataTransfer?.files?.[0];
    if (file) chooseFile(file);
  });
  // Keyboard: the label is focusable and opens the picker with Enter or Space.
  drop.tabIndex = 0;
  drop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); input.click(); }
  });
}

// ---- running --------------------------------------------------------------------------------

function needsImage(step) {
  return step && step.type !== 'image-gen' && step.type !== 'echo';
}

async function submit(body, msg) {
  const b = await refreshBalance();
  const step = steps.find((s) => s.id === body.stepId) || steps[0];
  if (b && step && b.available < step.cost) {
    msg.replaceChildren(
      t('tool.need_credits', { need: step.cost, have: b.available }), ' ',
      el('a', { href: '/credits', textContent: t('tool.buy') }),
    );
    msg.dataset.kind = 'error';
    return null;
  }
  try {
    const created = await api('POST', '/api/tasks', body, { 'idempotency-key': crypto.randomUUID() });
    return created.task;
  } catch (err) {
    msg.replaceChildren(errorText(err));
    if (err.code === 'INSUFFICIENT_CREDITS') msg.append(' ', el('a', { href: '/credits', textContent: t('tool.buy') }));
    msg.dataset.kind = 'error';
    return null;
  }
}

function setupRun() {
  const form = $('run-form');
  if (!form) return;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const msg = $('run-msg');
    say(msg, '');
    const first = steps[0];
    if (needsImage(first) && !inputAsset) return say(msg, t('tool.need_image'), 'error');
    const input = {};
    if (inputAsset) input.imageStorageKey = inputAsset.storageKey;
    const style = form.querySelector('input[name=style]:checked');
    if (style) input.style = style.value;
    const body = { toolSlug: tool.slug, input };
    if (steps.length > 1) body.stepId = first.id; else body.runAllSteps = true;
    const button = $('run');
    button.disabled = true;
    const task = await submit(body, msg);
    button.disabled = false;
    if (task) follow(task, 0);
  });
}

// ---- progress -------------------------------------------------------------------------------

function stepRow(stepId) {
  let row = document.querySelector(`#steps li[data-step="${CSS.escape(stepId)}"]`);
  if (!row) {
    const step = steps.find((s) => s.id === stepId);
    row = el('li', {},
      el('span', { className: 'step-name', textContent: step?.name || stepId }),
      el('progress', { max: 100, value: 0 }),
      el('span', { className: 'step-msg muted' }));
    row.dataset.step = stepId;
    $('steps').append(row);
  }
  return row;
}

function status(text, kind = 'info') {
  say($('status-line'), text, kind);
}

function finish() {
  source?.close();
  source = null;
  $('cancel').hidden = true;
  refreshBalance();
}

/** Follows a task's events (from `after`), showing progress and then the results. */
export function follow(task, after = 0) {
  current = task;
  source?.close();
  $('placeholder')?.remove();
  $('progress').hidden = false;
  $('steps').replaceChildren();
  $('outputs').replaceChildren();
  $('next').replaceChildren();
  $('result').hidden = true;
  const cancel = $('cancel');
  cancel.hidden = false;
  cancel.onclick = async () => {
    cancel.disabled = true;
    try { await api('POST', `/api/tasks/${task.id}/cancel`); } catch (err) { status(errorText(err), 'error'); }
    cancel.disabled = false;
  };
  status(t('progress.submitted'));
  if (root.dataset.readonly !== 'true') {
    const url = new URL(location.href);
    url.searchParams.set('task', task.id);
    history.replaceState(null, '', url);
  }
  const es = new EventSource(`/api/tasks/${task.id}/stream`, { withCredentials: true });
  source = es;
  const on = (type, fn) => es.addEventListener(type, (ev) => {
    let data = {};
    try { data = JSON.parse(ev.data); } catch { /* keep-alive */ }
    fn(data);
  });
  on('queued', () => status(t('progress.queued')));
  on('queue_position', (d) => status(t('progress.position', { n: d.position })));
  on('step_started', (d) => {
    status(t('progress.running'));
    const row = stepRow(d.stepId);
    row.classList.add('running');
  });
  on('progress', (d) => {
    if (!d.stepId) return;
    status(t('progress.running'));
    const row = stepRow(d.stepId);
    row.classList.add('running');
    if (typeof d.progress === 'number') row.querySelector('progress').value = d.progress;
    if (d.message) row.querySelector('.step-msg').textContent = d.message;
  });
  on('step_completed', (d) => {
    const row = stepRow(d.stepId);
    row.classList.remove('running');
    row.classList.add('done');
    row.querySelector('progress').value = 100;
    row.querySelector('.step-msg').textContent = t('status.completed');
    if (d.output) showOutputs(d.output, d.stepId);
  });
  on('completed', (d) => {
    status(t('progress.completed') + (d.creditsSpent != null ? ` · ${t('progress.spent', { n: d.creditsSpent })}` : ''), 'success');
    for (const row of document.querySelectorAll('#steps li')) row.querySelector('progress').value = 100;
    finish();
    if (d.output) showOutputs(d.output, null, true);
  });
  on('failed', (d) => {
    status(t('progress.failed', { msg: d.error || d.message || '' }), 'error');
    finish();
  });
  on('cancelled', () => {
    status(t('progress.cancelled'), 'error');
    finish();
  });
  es.onerror = () => {
    if (source === es && es.readyState !== EventSource.CLOSED) status(t('progress.reconnecting'), 'busy');
  };
}

// ---- results --------------------------------------------------------------------------------

const shown = new Set();

function assetIds(output) {
  const ids = [];
  if (Array.isArray(output?.assetIds)) ids.push(...output.assetIds);
  if (output?.assetId) ids.push(output.assetId);
  if (Array.isArray(output?.outputs)) for (const o of output.outputs) ids.push(...assetIds(o));
  for (const v of Object.values(output || {})) if (v && typeof v === 'object' && v.assetId) ids.push(v.assetId);
  return [...new Set(ids)];
}

async function showOutputs(output, stepId, final = false) {
  const ids = assetIds(output).filter((id) => !shown.has(id));
  const step = steps.find((s) => s.id === stepId) || (final ? steps.find((s) => s.id === current?.currentStepId) : null);
  $('result').hidden = ids.length === 0 && $('outputs').childElementCount === 0;
  const images = [];
  for (const id of ids) {
    shown.add(id);
    let asset;
    try { asset = await api('GET', `/api/assets/${id}`); } catch { continue; }
    $('result').hidden = false;
    const card = el('figure', { className: 'output' });
    $('outputs').append(card);
    renderAsset(card, asset);
    if (asset.mimeType?.startsWith('image/')) images.push(asset);
  }
  offerNext(step || steps.find((s) => s.id === (stepId || current?.stepId)), images);
}

function download(asset) {
  return el('a', { className: 'btn small', href: asset.downloadUrl, download: asset.filename, textContent: `${t('common.download')} ${asset.filename}` });
}

function renderAsset(card, asset) {
  const mime = asset.mimeType || '';
  const name = asset.filename || '';
  if (mime.startsWith('image/')) {
    if (inputPreview && (tool.slug === 'background-remove' || steps.some((s) => s.type === 'background-remove'))) {
      card.append(compare(inputPreview, asset.downloadUrl));
    } else {
      card.append(el('div', { className: 'checker' }, el('img', { src: asset.downloadUrl, alt: name })));
    }
  } else if (mime === 'model/gltf-binary' || name.endsWith('.glb') || mime === 'application/x-ply' || mime === 'model/ply' || name.endsWith('.ply')) {
    const ply = name.endsWith('.ply') || mime.includes('ply');
    const holder = el('div', { className: 'viewer', role: 'img', ariaLabel: t(ply ? 'result.points' : 'result.model') });
    card.append(holder, el('figcaption', { className: 'muted small', textContent: t(ply ? 'result.points' : 'result.model') }));
    import('./viewer.js')
      .then((m) => m.show(holder, asset.downloadUrl, ply ? 'ply' : 'glb'))
      .catch(() => holder.replaceChildren(el('p', { className: 'muted', textContent: t('result.viewer_failed') })));
  }
  card.append(el('div', { className: 'row' }, download(asset)));
}

/** A before/after slider over a checkerboard; keyboard-operable (a range input). */
function compare(beforeUrl, afterUrl) {
  const wrap = el('div', { className: 'compare checker' });
  const before = el('img', { src: beforeUrl, alt: t('result.before'), className: 'before' });
  const after = el('img', { src: afterUrl, alt: t('result.after'), className: 'after' });
  const range = el('input', { type: 'range', min: 0, max: 100, value: 50, className: 'compare-range', ariaLabel: t('result.compare') });
  const set = () => {
    after.style.clipPath = `inset(0 0 0 ${range.value}%)`;
    wrap.style.setProperty('--split', `${range.value}%`);
  };
  range.addEventListener('input', set);
  set();
  wrap.append(before, after, el('span', { className: 'compare-line' }), range,
    el('span', { className: 'compare-label left', textContent: t('result.before') }),
    el('span', { className: 'compare-label right', textContent: t('result.after') }));
  return wrap;
}

/** After a step of a multi-step tool: pick an image, then run the next step on it. */
function offerNext(step, images) {
  if (root.dataset.readonly === 'true' && root.dataset.signedIn !== 'true') return;
  const index = steps.findIndex((s) => s.id === step?.id);
  const next = index >= 0 ? steps[index + 1] : null;
  const box = $('next');
  if (!next || images.length === 0 || !current) return;
  box.replaceChildren();
  let picked = images[images.length - 1];
  if (images.length > 1) {
    const pick = el('fieldset', { className: 'pick' }, el('legend', { textContent: t('tool.pick') }));
    images.forEach((a, i) => {
      const radio = el('input', { type: 'radio', name: 'pick', value: a.id, checked: i === images.length - 1 });
      radio.addEventListener('change', () => (picked = a));
      pick.append(el('label', { className: 'style-option' }, radio, el('img', { src: a.downloadUrl, alt: a.filename })));
    });
    box.append(pick);
  }
  const msg = el('p', { className: 'msg', role: 'status' });
  const button = el('button', { className: 'btn wide', type: 'button', textContent: `${t('tool.next', { step: next.name })} · ${t('home.cost', { n: next.cost })}` });
  button.addEventListener('click', async () => {
    button.disabled = true;
    const task = await submit({
      toolSlug: tool.slug, stepId: next.id, parentTaskId: current.id, input: { imageStorageKey: picked.storageKey },
    }, msg);
    button.disabled = false;
    if (task) {
      if (root.dataset.readonly === 'true') location.assign(`/tasks/${task.id}`);
      else follow(task, 0);
    }
  });
  box.append(button, msg);
}

// ---- re-attaching ---------------------------------------------------------------------------

async function attach(id) {
  let detail;
  try { detail = await api('GET', `/api/tasks/${id}`); } catch { return; }
  const task = detail.task;
  if (['completed', 'failed', 'cancelled'].includes(task.status)) {
    current = task;
    $('placeholder')?.remove();
    $('progress').hidden = false;
    for (const s of detail.steps || []) {
      const row = stepRow(s.stepId);
      row.classList.add(s.status === 'completed' ? 'done' : s.status);
      row.querySelector('progress').value = s.status === 'completed' ? 100 : 0;
      row.querySelector('.step-msg').textContent = t(`status.${s.status}`);
    }
    const done = task.completedAt ? ` · ${localTime(task.completedAt)}` : '';
    if (task.status === 'completed') status(t('progress.completed') + done, 'success');
    else if (task.status === 'failed') status(t('progress.failed', { msg: detail.error || '' }), 'error');
    else status(t('progress.cancelled'), 'error');
    $('cancel').hidden = true;
    const lastStep = [...(detail.steps || [])].reverse().find((s) => s.status === 'completed');
    if (detail.output) showOutputs(detail.output, lastStep?.stepId || task.currentStepId);
  } else {
    follow(task, 0);
  }
}

setupUpload();
setupRun();
const resume = root.dataset.task;
if (resume) attach(resume);
