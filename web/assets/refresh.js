// Keeps lists current without a reload: every element with an id and a
// data-refresh="SECONDS" attribute is fetched again that often, from this page's URL or
// the one in its data-refresh-from attribute (a lighter page with the same ids), and
// swapped in when it changed (the portal's live streams, the admin dashboard, the
// network's state).
(function () {
  'use strict';
  document.querySelectorAll('[data-refresh][id]').forEach((el) => {
    const id = el.id;
    const every = Math.max(1, Number(el.dataset.refresh) || 5) * 1000;
    const from = el.dataset.refreshFrom || location.pathname;
    setInterval(async () => {
      try {
        const r = await fetch(from, { cache: 'no-store', credentials: 'same-origin' });
        if (!r.ok || r.redirected) return;
        const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
        const fresh = doc.getElementById(id);
        const now = document.getElementById(id);
        if (fresh && now && fresh.innerHTML !== now.innerHTML) now.replaceWith(fresh);
      } catch (e) {
        // The appliance is restarting or the network dropped: try again next time.
      }
    }, every);
  });
})();
