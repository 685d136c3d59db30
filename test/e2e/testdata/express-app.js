// The Express 4 app the proxy tests put behind Gatehouse: it answers every request with
// the route that served it and the identity headers that reached it, so a test can see
// exactly what the app would have done. Express routes case-insensitively and on the
// still-encoded path, as it does by default.
const express = require('express');

const identityHeaders = [
  'remote-user', 'remote-groups', 'remote-email', 'remote-name',
  'x-authentik-username', 'x-authentik-groups', 'x-authentik-email', 'x-authentik-name', 'x-authentik-uid',
  // The same with "_", which CGI-style apps (PHP, WSGI) read as the same header.
  'remote_user', 'remote_groups', 'x-authentik_username', 'x-authentik_groups',
];

function answer(route) {
  return (req, res) => {
    const identity = {};
    for (const h of identityHeaders) {
      if (req.headers[h] !== undefined) identity[h] = req.headers[h];
    }
    res.json({ route, host: req.headers.host, url: req.originalUrl, identity });
  };
}

const app = express();
app.get('/api/*', answer('api'));
app.get('/photos/*', answer('photos'));
app.get(['/admin', '/admin/*'], answer('admin'));
app.get('*', answer('catch-all'));
app.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
