// Keeps the portal's list of live streams current: every few seconds it fetches the
// page again and swaps in the new list, so streams appear and go without a reload.
(function () {
  'use strict';
  const refresh = async () => {
    try {
      const r = await fetch(location.pathname, { cache: 'no-store' });
      if (!r.ok) return;
      const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
      const fresh = doc.getElementById('streams');
      const now = document.getElementById('streams');
      if (fresh && now && fresh.innerHTML !== now.innerHTML) now.replaceWith(fresh);
    } catch (e) {
      // The appliance is restarting or the network dropped: try again next time.
    }
  };
  setInterval(refresh, 5000);
})();
