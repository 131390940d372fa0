// Adds a "Copy" button after every <code class="copy">, for stream keys and URLs.
(function () {
  'use strict';
  document.querySelectorAll('code.copy').forEach((code) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'copy-button';
    b.textContent = 'Copy';
    b.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(code.textContent);
        b.textContent = 'Copied';
      } catch (e) {
        // No clipboard (plain HTTP on another host): select the text for Ctrl+C.
        const range = document.createRange();
        range.selectNodeContents(code);
        const sel = getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        b.textContent = 'Press Ctrl+C';
      }
      setTimeout(() => { b.textContent = 'Copy'; }, 2000);
    });
    code.after(b);
  });
})();
