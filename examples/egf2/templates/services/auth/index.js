'use strict';
// EGF2 auth: issues and checks tokens for users that client-data knows. Started with one
// argument, `--config URL`; talks to client-data at config.client_data_url.
//   GET  /v1/auth/hello          who answers, and the banner of its published config
//   POST /v1/auth/token {user}   a token for a user client-data has (HMAC of the user name)
//   GET  /v1/auth/check?token=T  whether T is a token this service issued

const crypto = require('crypto');
const { loadConfig } = require('../lib/config');
const { json, readJson, getJson, serve } = require('../lib/http');

function token(config, user) {
  const mac = crypto.createHmac('sha256', config.token_secret).update(user).digest('hex');
  return `${Buffer.from(user).toString('base64url')}.${mac}`;
}

function userOf(config, t) {
  const [encoded, mac] = String(t || '').split('.');
  if (!encoded || !mac) return null;
  const user = Buffer.from(encoded, 'base64url').toString('utf8');
  const want = Buffer.from(token(config, user).split('.')[1]);
  const got = Buffer.from(mac);
  return want.length === got.length && crypto.timingSafeEqual(want, got) ? user : null;
}

async function main() {
  const config = await loadConfig();
  serve('auth', config, async (req, res) => {
    const url = new URL(req.url, 'http://auth');
    if (req.method === 'GET' && url.pathname === '/v1/auth/hello') {
      return json(res, 200, { service: 'auth', environment: config.environment, banner: config.banner });
    }
    if (req.method === 'POST' && url.pathname === '/v1/auth/token') {
      const body = await readJson(req);
      const user = String(body.user || '');
      const found = await getJson(`${config.client_data_url}/v1/data/users/${encodeURIComponent(user)}`);
      if (found.status !== 200) return json(res, 403, { error: `no user ${user}` });
      return json(res, 200, { user, token: token(config, user) });
    }
    if (req.method === 'GET' && url.pathname === '/v1/auth/check') {
      const user = userOf(config, url.searchParams.get('token'));
      return user ? json(res, 200, { user }) : json(res, 401, { error: 'bad token' });
    }
    return json(res, 404, { error: 'not found' });
  });
}

main();
