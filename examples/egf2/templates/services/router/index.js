'use strict';
// EGF2 router (the client-api's entry): sends each request to the service its path prefix
// names, at the URL its config gives (config.routes: {"/v1/auth/": "http://...", ...}), the
// longest prefix first. Started with one argument, `--config URL`. nginx, the single entry
// point, sends it everything under /v1/.
//   GET /v1/router/info   the routes of its config

const { loadConfig } = require('../lib/config');
const { json, forward, serve } = require('../lib/http');

async function main() {
  const config = await loadConfig();
  const prefixes = Object.keys(config.routes).sort((a, b) => b.length - a.length);
  serve('router', config, (req, res) => {
    const path = new URL(req.url, 'http://router').pathname;
    if (path === '/v1/router/info') {
      return json(res, 200, { service: 'router', environment: config.environment, routes: config.routes });
    }
    const prefix = prefixes.find((p) => path.startsWith(p));
    if (!prefix) return json(res, 404, { error: `no service for ${path}` });
    return forward(req, res, config.routes[prefix]);
  });
}

main();
