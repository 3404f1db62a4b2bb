// /device: a person approves (or denies) the sign-in of a CLI that showed them a code
// (RFC 8628). Signed in already (the page redirects otherwise).

import { api, t, errorText, say } from './app.js';

const $ = (id) => document.getElementById(id);
const msg = $('device-msg');
let pending = null;

function ago(secs) {
  if (secs < 60) return t('time.just_now');
  if (secs < 3600) return t('time.minutes', { n: Math.floor(secs / 60) });
  return t('time.hours', { n: Math.floor(secs / 3600) });
}

$('device-enter').addEventListener('submit', async (e) => {
  e.preventDefault();
  say(msg, '');
  try {
    pending = await api('GET', `/api/auth/device/pending?user_code=${encodeURIComponent($('device-code').value.trim())}`);
    $('device-who').textContent = t('device.asked', {
      client: pending.clientName || t('device.unnamed'),
      age: ago(pending.ageSecs),
      code: pending.userCode,
    });
    $('device-enter').hidden = true;
    $('device-confirm').hidden = false;
    $('device-approve').focus();
  } catch (err) {
    say(msg, errorText(err), 'error');
  }
});

async function decide(approve) {
  try {
    await api('POST', '/api/auth/device/approve', { userCode: pending.userCode, approve });
    $('device-confirm').hidden = true;
    say(msg, t(approve ? 'device.approved' : 'device.denied'), approve ? 'success' : 'info');
  } catch (err) {
    say(msg, errorText(err), 'error');
  }
}

$('device-approve').addEventListener('click', () => decide(true));
$('device-deny').addEventListener('click', () => decide(false));
