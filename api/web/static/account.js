// /account: the profile picture (uploaded straight to storage, then made the avatar); the
// rest of the page is plain forms handled by app.js.

import { api, errorText, upload } from './app.js';

const input = document.getElementById('avatar-file');
const bar = document.getElementById('avatar-progress');
const msg = document.querySelector('#profile .msg');

input?.addEventListener('change', async () => {
  const file = input.files[0];
  if (!file) return;
  bar.hidden = false;
  try {
    const asset = await upload(file, 'avatars', (pct) => (bar.value = pct));
    await api('PATCH', '/api/auth/user', { imageAssetId: asset.id });
    location.reload();
  } catch (err) {
    bar.hidden = true;
    if (msg) {
      msg.textContent = errorText(err);
      msg.dataset.kind = 'error';
    }
  }
});
