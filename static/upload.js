// Uploads a patch file from the vendor screen with a progress bar, through the
// server's resumable upload: the file goes in slices, each sent from the offset the
// server holds, so a dropped connection costs at most one slice, and choosing the same
// file again after a reload resumes the unfinished upload (a different file starts a
// new one). The session's CSRF token goes in X-CSRF-Token.
(function () {
  const form = document.getElementById('upload-form');
  if (!form) return;
  const SLICE = 4 * 1024 * 1024;
  const ATTEMPTS = 5;
  const url = form.dataset.uploadUrl;
  const csrf = form.dataset.csrf;
  const progress = document.getElementById('upload-progress');
  const status = document.getElementById('upload-status');

  class Refused extends Error {}

  // The contract's error message in a response body, or the status line.
  function messageOf(status, text) {
    try {
      return JSON.parse(text).error.message;
    } catch (_) {
      return 'the server answered ' + status;
    }
  }

  async function reason(response) {
    return messageOf(response.status, await response.text());
  }

  // This browser remembers which file its unfinished upload to this patch is, so a
  // different file of the same size is never appended to it.
  const remembered = 'patchwarden-upload:' + url;
  function fingerprint(file) {
    return [file.name, file.size, file.lastModified].join('/');
  }
  function remember(value) {
    try {
      if (value === null) window.localStorage.removeItem(remembered);
      else window.localStorage.setItem(remembered, value);
    } catch (_) { /* storage disabled: uploads still work, without resuming after a reload */ }
  }
  function recall() {
    try { return window.localStorage.getItem(remembered); } catch (_) { return null; }
  }

  // The offset the server holds for this file, starting an upload if there is none.
  async function offsetFor(file) {
    const current = await fetch(url, { headers: { 'X-CSRF-Token': csrf } });
    if (current.ok) {
      const state = await current.json();
      if (state.size === file.size && recall() === fingerprint(file)) return state.offset;
    } else if (current.status !== 404) {
      throw new Error(await reason(current));
    }
    const started = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify({ size: file.size }),
    });
    if (started.status >= 400 && started.status < 500) throw new Refused(await reason(started));
    if (!started.ok) throw new Error(await reason(started));
    remember(fingerprint(file));
    return 0;
  }

  // Sends one slice from `start`; resolves with the request once it is answered.
  function sendSlice(file, start) {
    return new Promise(function (resolve, reject) {
      const request = new XMLHttpRequest();
      request.open('PATCH', url);
      request.setRequestHeader('Content-Type', 'application/offset+octet-stream');
      request.setRequestHeader('Upload-Offset', String(start));
      request.setRequestHeader('X-CSRF-Token', csrf);
      request.upload.addEventListener('progress', function (e) {
        progress.value = Math.round(((start + e.loaded) / file.size) * 100);
      });
      request.addEventListener('load', function () { resolve(request); });
      request.addEventListener('error', function () { reject(new Error('the connection failed')); });
      request.send(file.slice(start, Math.min(start + SLICE, file.size)));
    });
  }

  function pause(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  async function upload(file) {
    let failures = 0;
    let at = null;
    for (;;) {
      try {
        if (at === null) at = await offsetFor(file);
        if (at > 0) status.textContent = 'Sending from ' + (at / 1048576).toFixed(1) + ' MiB…';
        const answer = await sendSlice(file, at);
        if (answer.status === 200) return;
        if (answer.status === 204) {
          at = Number(answer.getResponseHeader('Upload-Offset'));
          failures = 0;
          continue;
        }
        const message = messageOf(answer.status, answer.responseText);
        if (answer.status >= 400 && answer.status < 500 && answer.status !== 409) throw new Refused(message);
        throw new Error(message);
      } catch (error) {
        if (error instanceof Refused) throw error;
        failures += 1;
        if (failures >= ATTEMPTS) throw error;
        status.textContent = 'Interrupted (' + error.message + '); resuming…';
        await pause(1000 * 2 ** (failures - 1));
        at = null;
      }
    }
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    const file = document.getElementById('upload-file').files[0];
    if (!file) return;
    if (file.size > Number(form.dataset.maxBytes)) {
      status.textContent = 'The file is larger than the server accepts.';
      return;
    }
    progress.hidden = false;
    status.textContent = 'Uploading…';
    upload(file).then(function () {
      remember(null);
      status.textContent = 'Uploaded.';
      window.location.reload();
    }, function (error) {
      status.textContent = 'Upload failed: ' + error.message;
    });
  });
})();
