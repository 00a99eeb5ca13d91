'use strict';
// What every EGF2 service here shares: JSON answers, reading a JSON body, forwarding a request
// to another service (the URL its config gives), and a server with a /health answer.

const http = require('http');

const MAX_BODY = 1 << 20;

function json(res, status, value) {
  const body = `${JSON.stringify(value)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
      } else {
        chunks.push(c);
      }
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text ? JSON.parse(text) : {});
      } catch (e) {
        reject(new Error(`body is not JSON: ${e.message}`));
      }
    });
    req.on('error', reject);
  });
}

// Sends `req` on to `base` (e.g. http://10.0.0.5:8001), keeping method, path and body.
function forward(req, res, base) {
  const target = new URL(req.url, base);
  const headers = { ...req.headers, host: target.host };
  const out = http.request(target, { method: req.method, headers, timeout: 10000 }, (up) => {
    res.writeHead(up.statusCode, up.headers);
    up.pipe(res);
  });
  out.on('timeout', () => out.destroy(new Error('timed out')));
  out.on('error', (e) => {
    if (!res.headersSent) json(res, 502, { error: `upstream ${base}: ${e.message}` });
    else res.destroy();
  });
  req.pipe(out);
}

// Fetches JSON from another service: {status, body}.
function getJson(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 10000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        try {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode, body: text ? JSON.parse(text) : null });
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

// Serves `handle` on config.listen ({host, port}); /health answers for the load balancer.
function serve(name, config, handle) {
  const server = http.createServer((req, res) => {
    if (req.url === '/health') return json(res, 200, { service: name, ok: true });
    return Promise.resolve(handle(req, res)).catch((e) => {
      if (!res.headersSent) json(res, 500, { error: e.message });
    });
  });
  server.listen(config.listen.port, config.listen.host, () => {
    process.stdout.write(`${name} listening on ${config.listen.host}:${config.listen.port}\n`);
  });
  return server;
}

module.exports = { json, readJson, forward, getJson, serve };
