// A webhook receiver as its users write one: the standardwebhooks library from npm
// (the reference implementation of the Standard Webhooks specification) verifies each
// delivery's signature and timestamp; what it accepts is listed at GET /received, what
// it refuses at GET /refused.
const http = require('http');
const { Webhook } = require('standardwebhooks');

const wh = new Webhook(process.env.WEBHOOK_SECRET);
const received = [];
const refused = [];

http.createServer((req, res) => {
  if (req.method === 'GET') {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(req.url === '/refused' ? refused : received));
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    try {
      const event = wh.verify(body, req.headers);
      received.push({ id: req.headers['webhook-id'], type: event.type, target: event.data.target, actor: event.data.actor });
      res.statusCode = 204;
    } catch (err) {
      refused.push(String(err));
      res.statusCode = 400;
    }
    res.end();
  });
}).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
