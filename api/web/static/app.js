// FunMagic web UI: what every page shares. The pages are rendered by the server; this
// module makes their forms and buttons talk to the JSON API (same origin, the session
// cookie), shows errors in the page's language, and localises times.
//
// Markup conventions (see api/src/web/pages.rs):
//   <form data-api="METHOD /api/path" data-then="…">  fields become a JSON body
//   <button data-call="METHOD /api/path" [data-body='{…}'] [data-confirm=key] data-then="…">
//   data-then: "reload" | "go:/path" | "message:catalogue.key" | a name in `handlers`
//   <button data-copy="text">, <button data-signout>, <button data-buy="packageId">

const catalogue = JSON.parse(document.getElementById('i18n')?.textContent || '{}');

/** A message of the page's language with its {placeholders} filled. */
export function t(key, vars = {}) {
  let text = catalogue[key] ?? key;
  for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

/** An API error: the HTTP status and the API's stable code. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** Calls the JSON API; resolves to the parsed body, rejects with an ApiError. */
export async function api(method, path, body, extraHeaders = {}) {
  let resp;
  try {
    resp = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...extraHeaders },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'NETWORK', t('common.network'));
  }
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new ApiError(resp.status, data.code || `HTTP_${resp.status}`, data.error || resp.statusText, data.details);
  return data;
}

/** What to tell a person about an error: the catalogue's words for its code, else the API's. */
export function errorText(err) {
  if (err instanceof ApiError) {
    const key = `err.${err.code}`;
    if (key in catalogue) return catalogue[key];
    return err.message;
  }
  return t('common.error', { msg: err?.message || String(err) });
}

/** Shows a message in a form's (or the page's) status line. */
export function say(el, text, kind = 'info') {
  if (!el) return;
  el.textContent = text;
  el.dataset.kind = kind;
}

/** Handlers for `data-then` names that need more than a reload. */
export const handlers = {
  key(result, form) {
    const box = document.getElementById('new-key');
    document.getElementById('new-key-value').textContent = result.key;
    box.hidden = false;
    document.getElementById('new-key-copy').onclick = () => copy(result.key, document.getElementById('new-key-copy'));
    form.reset();
  },
};

function afterSuccess(then, result, origin, msgEl) {
  if (!then || then === 'reload') return location.reload();
  if (then.startsWith('go:')) return location.assign(then.slice(3));
  if (then.startsWith('message:')) return say(msgEl, t(then.slice(8)), 'success');
  handlers[then]?.(result, origin);
}

function formBody(form) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled || el.readOnly || el.name === 'username') continue;
    if (el.type === 'checkbox') body[el.name] = el.checked;
    else if (el.type === 'radio') { if (el.checked) body[el.name] = el.value; }
    else if (el.type === 'number') { if (el.value !== '') body[el.name] = Number(el.value); }
    else if (el.value !== '') body[el.name] = el.value;
  }
  return body;
}

function split(spec) {
  const at = spec.indexOf(' ');
  return [spec.slice(0, at), spec.slice(at + 1)];
}

document.addEventListener('submit', async (e) => {
  const form = e.target.closest('form[data-api]');
  if (!form) return;
  e.preventDefault();
  const msg = form.querySelector('.msg');
  if (form.dataset.confirm && !confirm(t(form.dataset.confirm))) return;
  const [method, path] = split(form.dataset.api);
  const button = form.querySelector('[type=submit]');
  if (button) button.disabled = true;
  say(msg, t('common.loading'), 'busy');
  try {
    const result = await api(method, path, formBody(form));
    say(msg, '', 'info');
    if ('reset' in form.dataset) form.reset();
    afterSuccess(form.dataset.then, result, form, msg);
  } catch (err) {
    say(msg, errorText(err), 'error');
  } finally {
    if (button) button.disabled = false;
  }
});

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = Object.assign(document.createElement('textarea'), { value: text });
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
  if (button) {
    const before = button.textContent;
    button.textContent = t('common.copied');
    setTimeout(() => (button.textContent = before), 1500);
  }
}

document.addEventListener('click', async (e) => {
  const call = e.target.closest('button[data-call]');
  if (call) {
    if (call.dataset.confirm && !confirm(t(call.dataset.confirm))) return;
    const [method, path] = split(call.dataset.call);
    const msg = call.closest('section, form')?.querySelector('.msg') || document.getElementById('page-msg');
    call.disabled = true;
    try {
      const result = await api(method, path, call.dataset.body ? JSON.parse(call.dataset.body) : undefined);
      afterSuccess(call.dataset.then, result, call, msg);
    } catch (err) {
      say(msg, errorText(err), 'error');
      if (!msg) alert(errorText(err));
    } finally {
      call.disabled = false;
    }
    return;
  }
  const copier = e.target.closest('button[data-copy]');
  if (copier) return copy(new URL(copier.dataset.copy, location.href).href, copier);
  if (e.target.closest('button[data-signout]')) {
    try { await api('POST', '/api/auth/sign-out', {}); } catch { /* signed out either way */ }
    return location.assign('/');
  }
  const buy = e.target.closest('button[data-buy]');
  if (buy) {
    const msg = document.getElementById('buy-msg');
    buy.disabled = true;
    say(msg, t('credits.redirecting'), 'busy');
    try {
      const checkout = await api('POST', '/api/credits/checkout', { packageId: buy.dataset.buy });
      location.assign(checkout.url);
    } catch (err) {
      say(msg, errorText(err), 'error');
      buy.disabled = false;
    }
  }
});

/** Times in the visitor's own zone and language. */
export function localTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(document.documentElement.lang, { dateStyle: 'medium', timeStyle: 'short' });
}

function decorate(root = document) {
  for (const el of root.querySelectorAll('time[datetime]')) el.textContent = localTime(el.getAttribute('datetime'));
  // Admin-chosen colours (tool types, banner badges), applied through the CSSOM (the CSP
  // forbids inline style attributes); anything that is not a colour is ignored.
  for (const el of root.querySelectorAll('[data-color]')) {
    const c = el.dataset.color;
    if (c && CSS.supports('color', c)) el.style.setProperty('--accent', c);
  }
}
decorate();

/** Presigns, uploads straight to storage with progress, and completes an upload; resolves to the asset. */
export async function upload(file, module, onProgress) {
  const presigned = await api('POST', '/api/uploads/presign', {
    filename: file.name || 'image',
    contentType: file.type,
    size: file.size,
    module,
  });
  await new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(presigned.method || 'PUT', presigned.uploadUrl);
    for (const [k, v] of Object.entries(presigned.headers || {})) {
      if (k.toLowerCase() !== 'content-length' && k.toLowerCase() !== 'host') xhr.setRequestHeader(k, v);
    }
    xhr.upload.onprogress = (ev) => ev.lengthComputable && onProgress?.(Math.round((ev.loaded / ev.total) * 100));
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve();
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch { /* S3 answers XML */ }
      reject(new ApiError(xhr.status, body.code || `HTTP_${xhr.status}`, body.error || `upload failed (${xhr.status})`));
    };
    xhr.onerror = () => reject(new ApiError(0, 'NETWORK', t('common.network')));
    xhr.send(file);
  });
  onProgress?.(100);
  return api('POST', '/api/uploads/complete', { storageKey: presigned.storageKey });
}

/** Updates the header's balance after a run or a purchase. */
export async function refreshBalance() {
  try {
    const b = await api('GET', '/api/credits/balance');
    const pill = document.querySelector('[data-balance]');
    if (pill) {
      pill.dataset.balance = b.available;
      pill.textContent = t('header.balance', { n: b.available });
    }
    const line = document.getElementById('balance-line');
    if (line) line.textContent = t('tool.balance', { n: b.available });
    return b;
  } catch {
    return null;
  }
}

export { decorate };
