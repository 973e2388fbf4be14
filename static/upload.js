// Uploads a patch file from the vendor screen with a progress bar. The file is
// sent as the raw request body; the session's CSRF token goes in X-CSRF-Token.
(function () {
  const form = document.getElementById('upload-form');
  if (!form) return;
  const progress = document.getElementById('upload-progress');
  const status = document.getElementById('upload-status');
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    const file = document.getElementById('upload-file').files[0];
    if (!file) return;
    if (file.size > Number(form.dataset.maxBytes)) {
      status.textContent = 'The file is larger than the server accepts.';
      return;
    }
    const request = new XMLHttpRequest();
    request.open('PUT', form.dataset.uploadUrl);
    request.setRequestHeader('Content-Type', 'application/octet-stream');
    request.setRequestHeader('X-CSRF-Token', form.dataset.csrf);
    progress.hidden = false;
    request.upload.addEventListener('progress', function (e) {
      if (e.lengthComputable) progress.value = Math.round((e.loaded / e.total) * 100);
    });
    request.addEventListener('load', function () {
      if (request.status === 200) {
        status.textContent = 'Uploaded.';
        window.location.reload();
      } else {
        let message = 'Upload failed (' + request.status + ')';
        try { message = JSON.parse(request.responseText).error.message; } catch (_) { /* keep the status line */ }
        status.textContent = message;
      }
    });
    request.addEventListener('error', function () { status.textContent = 'The connection failed; try again.'; });
    request.send(file);
  });
})();
