// veil's admin console on the field page, over the Xylolabs admin API (/api/v1/admin): sign in
// as an admin user (an HttpOnly cookie session; state changes send its CSRF token) or with an
// admin API key, then stats, API keys (create, rename, disable, delete; a new key shown once),
// stored jobs with their redacted results, and the test mask with its timings.
import { failure } from '/field/http.js';

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 5000;

// {kind: 'session', csrf, username} or {kind: 'key', key}; null while the console is closed.
let mode = null;
let timer = null;
let resultUrl = null;

async function call(path, init = {}) {
  const headers = { ...(init.headers || {}) };
  const method = (init.method || 'GET').toUpperCase();
  if (mode && mode.kind === 'session' && method !== 'GET') headers['X-CSRF-Token'] = mode.csrf;
  if (mode && mode.kind === 'key') headers.Authorization = `Bearer ${mode.key}`;
  const res = await fetch(path, { cache: 'no-store', credentials: 'same-origin', ...init, headers });
  if (res.status === 401 && mode && mode.kind === 'session') {
    close('The admin session ended; sign in again.');
  }
  if (!res.ok) throw await failure(res);
  return res;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '—';
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text == null ? '—' : String(text);
  return td;
}

/** A row's action button; `what` names the row for screen readers ("Delete key veil_ab12...cd34"). */
function button(label, what, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.setAttribute('aria-label', `${label} ${what}`);
  b.addEventListener('click', onClick);
  return b;
}

function definitions(target, rows) {
  const items = [];
  for (const [k, v] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    items.push(dt, dd);
  }
  target.replaceChildren(...items);
}

function showError(err) {
  $('console-error').textContent = err.message;
}

// ---- opening and closing ---------------------------------------------------------------------

async function open(newMode) {
  mode = newMode;
  $('console').hidden = false;
  if (mode.kind === 'session') {
    $('signin').hidden = true;
    $('console-who').textContent = `Signed in as ${mode.username}; the session ends at logout or after 12 hours.`;
    $('admin-signout').hidden = false;
  } else {
    $('console-who').textContent = 'Opened with an admin API key.';
    $('admin-signout').hidden = true;
  }
  $('console-error').textContent = '';
  await refresh();
  clearInterval(timer);
  timer = setInterval(() => refresh().catch(showError), REFRESH_MS);
}

function close(message = '') {
  mode = null;
  clearInterval(timer);
  timer = null;
  if (resultUrl) URL.revokeObjectURL(resultUrl);
  resultUrl = null;
  for (const id of ['stats', 'keys', 'admin-jobs', 'test-facts']) $(id).replaceChildren();
  $('new-key').hidden = true;
  $('new-key-value').textContent = '';
  $('job-result').hidden = true;
  $('test-result').hidden = true;
  $('console').hidden = true;
  // Back to the sign-in form unless a field crew's key session is open.
  if ($('app').hidden) $('signin').hidden = false;
  $('admin-password').value = '';
  $('admin-error').textContent = message;
}

async function refresh() {
  await Promise.all([loadStats(), loadKeys(), loadJobs()]);
}

// ---- stats, keys and jobs --------------------------------------------------------------------

async function loadStats() {
  const s = await (await call('/api/v1/admin/stats')).json();
  const by = s.jobs_by_status;
  definitions($('stats'), [
    ['Jobs', `${s.total_jobs} · ${by.completed} completed · ${by.failed} failed · ${by.queued + by.processing} waiting`],
    ['Faces masked', String(s.total_faces_detected)],
    ['API keys', `${s.api_keys.active} active of ${s.api_keys.total}`],
    ['Stored results', `${Math.round(s.storage.stored_result_bytes / 1024)} KB`],
    ['Originals kept', String(s.storage.originals_kept)],
    ['Model', s.model],
  ]);
}

async function loadKeys() {
  const page = await (await call('/api/v1/admin/api-keys?page_size=100')).json();
  const rows = page.items.map((k) => {
    const tr = document.createElement('tr');
    tr.dataset.keyId = String(k.id);
    const nameCell = document.createElement('td');
    const name = document.createElement('input');
    name.type = 'text';
    name.value = k.name;
    name.maxLength = 100;
    name.setAttribute('aria-label', `Name of key ${k.key_preview}`);
    nameCell.append(name);
    const actions = document.createElement('td');
    actions.append(
      button('Rename', `key ${k.key_preview}`, () => change(k.id, { name: name.value })),
      button(k.is_active ? 'Disable' : 'Enable', `key ${k.key_preview}`, () => change(k.id, { is_active: !k.is_active })),
      button('Delete', `key ${k.key_preview}`, () => remove(k)),
    );
    tr.append(nameCell, cell(k.key_preview), cell(k.is_active ? 'active' : 'disabled'), cell(k.request_count), cell(when(k.last_used_at)), actions);
    return tr;
  });
  $('keys').replaceChildren(...rows);
}

async function change(id, patch) {
  try {
    await call(`/api/v1/admin/api-keys/${id}`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(patch),
    });
    $('console-error').textContent = '';
    await loadKeys();
  } catch (err) {
    showError(err);
  }
}

async function remove(k) {
  if (!window.confirm(`Delete the key "${k.name}" (${k.key_preview})? Clients using it are refused at once.`)) return;
  try {
    await call(`/api/v1/admin/api-keys/${k.id}`, { method: 'DELETE' });
    // The key shown once is no use any more if it was this one.
    if ($('new-key-value').textContent.startsWith(`${k.key_prefix}_`)) {
      $('new-key').hidden = true;
      $('new-key-value').textContent = '';
    }
    $('console-error').textContent = '';
    await Promise.all([loadKeys(), loadStats()]);
  } catch (err) {
    showError(err);
  }
}

async function loadJobs() {
  const page = await (await call('/api/v1/admin/jobs?page_size=20')).json();
  const rows = page.items.map((j) => {
    const tr = document.createElement('tr');
    tr.dataset.jobId = j.id;
    const result = document.createElement('td');
    if (j.processed_url) result.append(button('View', `the result of ${j.original_filename || j.id}`, () => view(j)));
    else result.textContent = j.error_message || '—';
    tr.append(cell(j.original_filename || j.id), cell(j.api), cell(j.status), cell(j.method), cell(j.face_count), cell(when(j.created_at)), result);
    return tr;
  });
  $('admin-jobs').replaceChildren(...rows);
}

/** The redacted result, fetched through the job's download (a 302 to the file). */
async function view(job) {
  try {
    const blob = await (await call(job.processed_url)).blob();
    if (resultUrl) URL.revokeObjectURL(resultUrl);
    resultUrl = URL.createObjectURL(blob);
    const img = $('job-result-img');
    img.src = resultUrl;
    img.alt = `Redacted ${job.original_filename || job.id}`;
    img.dataset.jobId = job.id;
    $('job-result-caption').textContent = `${job.original_filename || job.id}: ${job.face_count ?? 0} faces masked on the device`;
    $('job-result').hidden = false;
  } catch (err) {
    showError(err);
  }
}

// ---- the test mask ---------------------------------------------------------------------------

async function testMask(e) {
  e.preventDefault();
  $('test-error').textContent = '';
  const file = $('test-file').files[0];
  if (!file) {
    $('test-error').textContent = 'Choose a photo.';
    return;
  }
  const form = new FormData();
  form.append('image', file, file.name);
  const query = new URLSearchParams({ method: $('test-method').value, strength: $('test-strength').value });
  try {
    const r = await (await call(`/api/v1/admin/test/mask?${query}`, { method: 'POST', body: form })).json();
    const mime = r.output.format === 'png' ? 'image/png' : r.output.format === 'webp' ? 'image/webp' : 'image/jpeg';
    $('test-img').src = `data:${mime};base64,${r.output.image_base64}`;
    const ms = (v) => `${Number(v).toFixed(1)} ms`;
    definitions($('test-facts'), [
      ['Faces', String(r.summary.face_count)],
      ['Regions masked', String(r.masking.regions_masked)],
      ['Method', `${r.masking.method}${r.masking.strength == null ? '' : `, strength ${r.masking.strength}`}`],
      ['Inference', ms(r.processing.inference_ms)],
      ['Masking', ms(r.profiling.mask_ms)],
      ['Encoding', ms(r.profiling.encode_ms)],
      ['Total', ms(r.processing.total_ms)],
      ['Output', `${r.output.format}, ${Math.round(r.output.size_bytes / 1024)} KB`],
    ]);
    $('test-result').hidden = false;
  } catch (err) {
    $('test-error').textContent = err.message;
  }
}

// ---- wiring ----------------------------------------------------------------------------------

$('admin-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('admin-error').textContent = '';
  const username = $('admin-user').value.trim();
  const password = $('admin-password').value;
  try {
    const res = await fetch('/api/v1/admin/auth/login', {
      method: 'POST',
      cache: 'no-store',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username, password }),
    });
    if (!res.ok) throw await failure(res);
    await openSession();
  } catch (err) {
    $('admin-error').textContent = `Admin sign-in refused: ${err.message}`;
    $('admin-password').select();
  }
});

async function openSession() {
  const res = await fetch('/api/v1/admin/auth/session', { cache: 'no-store', credentials: 'same-origin' });
  if (!res.ok) return false;
  const s = await res.json();
  if (s.auth_method !== 'session') return false;
  $('admin-password').value = '';
  await open({ kind: 'session', csrf: s.csrf_token, username: s.username });
  return true;
}

$('admin-signout').addEventListener('click', async () => {
  try {
    await call('/api/v1/admin/auth/logout', { method: 'POST' });
  } catch {
    // the session may have ended already
  }
  close();
  $('admin-user').focus();
});

$('key-create').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    const res = await call('/api/v1/admin/api-keys', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: $('new-key-name').value.trim() }),
    });
    const made = await res.json();
    $('new-key-value').textContent = made.key;
    $('new-key').hidden = false;
    $('new-key-name').value = '';
    $('console-error').textContent = '';
    await Promise.all([loadKeys(), loadStats()]);
  } catch (err) {
    showError(err);
  }
});

$('test-form').addEventListener('submit', testMask);
$('test-strength').addEventListener('input', () => {
  $('test-strength-value').textContent = $('test-strength').value;
});
$('test-strength-value').textContent = $('test-strength').value;

// A field crew's key that is an admin key opens the console beside the field page.
document.addEventListener('veil:key', async (e) => {
  const key = e.detail.key;
  if (!key) {
    if (mode && mode.kind === 'key') close();
    return;
  }
  if (mode && mode.kind === 'session') return;
  const res = await fetch('/api/v1/admin/auth/session', { cache: 'no-store', headers: { Authorization: `Bearer ${key}` } });
  if (res.ok) await open({ kind: 'key', key }).catch(showError);
});

// A session from earlier in this browser (the cookie outlives a reload).
openSession().catch(() => {});
