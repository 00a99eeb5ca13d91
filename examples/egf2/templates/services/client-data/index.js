'use strict';
// EGF2 client-data: the data service every other service talks to. Started with one argument,
// `--config URL`. config.store names the RethinkDB it is meant to use (through the local
// rethinkdb-proxy); this example has no RethinkDB driver (no npm packages), so it keeps the
// objects in memory, seeded from config.seed_users.
//   GET /v1/data/info                    the store it is configured for
//   GET /v1/data/:collection/:id         an object (404 if absent)
//   PUT /v1/data/:collection/:id {...}   stores an object

const { loadConfig } = require('../lib/config');
const { json, readJson, serve } = require('../lib/http');

async function main() {
  const config = await loadConfig();
  const collections = new Map([['users', new Map()]]);
  for (const name of config.seed_users || []) collections.get('users').set(name, { name });
  serve('client-data', config, async (req, res) => {
    const url = new URL(req.url, 'http://client-data');
    if (url.pathname === '/v1/data/info') {
      return json(res, 200, { service: 'client-data', store: config.store, environment: config.environment });
    }
    const m = url.pathname.match(/^\/v1\/data\/([a-z0-9_-]+)\/([^/]+)$/);
    if (!m) return json(res, 404, { error: 'not found' });
    const [, collection, id] = m;
    const key = decodeURIComponent(id);
    if (req.method === 'GET') {
      const found = collections.get(collection)?.get(key);
      return found ? json(res, 200, found) : json(res, 404, { error: `no ${collection}/${key}` });
    }
    if (req.method === 'PUT') {
      const value = await readJson(req);
      if (!collections.has(collection)) collections.set(collection, new Map());
      collections.get(collection).set(key, value);
      return json(res, 200, value);
    }
    return json(res, 405, { error: 'method not allowed' });
  });
}

main();
