'use strict';
// EGF2's one required parameter: `--config URL`, a JSON config file the service downloads as it
// starts (here from the environment's private S3 bucket, where infra publishes it). A config
// that cannot be fetched or parsed ends the service with an error message, as EGF2 says.
//
// Requests to S3 are signed with AWS Signature Version 4 when a credentials file is present
// (EGF2_CREDENTIALS, default /etc/egf2/credentials.json: {"access_key_id", "secret_access_key",
// "region"[, "session_token"]}); without one the URL is fetched as it is.

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');

function die(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

function configUrl(argv) {
  const i = argv.indexOf('--config');
  const url = i >= 0 ? argv[i + 1] : undefined;
  if (!url || argv.length !== i + 2) {
    die('usage: node index.js --config URL   (the URL of this service\'s JSON config)');
  }
  return url;
}

function credentials() {
  const file = process.env.EGF2_CREDENTIALS || '/etc/egf2/credentials.json';
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e.code === 'ENOENT') return null;
    die(`cannot read ${file}: ${e.message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    return die(`${file} is not JSON: ${e.message}`);
  }
}

const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();

// The headers of a signed S3 GET of `url` (Signature Version 4, unsigned query, empty body).
function signedHeaders(url, creds, now = new Date()) {
  const amzDate = now.toISOString().replace(/[:-]|\.\d{3}/g, '');
  const day = amzDate.slice(0, 8);
  const payload = sha256('');
  const headers = { host: url.host, 'x-amz-content-sha256': payload, 'x-amz-date': amzDate };
  if (creds.session_token) headers['x-amz-security-token'] = creds.session_token;
  const names = Object.keys(headers).sort();
  const canonical = [
    'GET',
    url.pathname,
    '',
    names.map((n) => `${n}:${headers[n]}\n`).join(''),
    names.join(';'),
    payload,
  ].join('\n');
  const scope = `${day}/${creds.region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  let key = hmac(`AWS4${creds.secret_access_key}`, day);
  for (const part of [creds.region, 's3', 'aws4_request']) key = hmac(key, part);
  const signature = crypto.createHmac('sha256', key).update(toSign).digest('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${creds.access_key_id}/${scope}, ` +
    `SignedHeaders=${names.join(';')}, Signature=${signature}`;
  return headers;
}

function get(url, headers) {
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.get(url, { headers, timeout: 10000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 10 s')));
    req.on('error', reject);
  });
}

// The parsed config of the URL given on the command line; the process ends if there is none.
async function loadConfig(argv = process.argv.slice(2)) {
  const text = configUrl(argv);
  let url;
  try {
    url = new URL(text);
  } catch (e) {
    return die(`config: \`${text}\` is not a URL`);
  }
  const creds = credentials();
  const headers = creds ? signedHeaders(url, creds) : {};
  let res;
  try {
    res = await get(url, headers);
  } catch (e) {
    return die(`config ${text} is not reachable: ${e.message}`);
  }
  if (res.status !== 200) {
    return die(`config ${text}: HTTP ${res.status}: ${res.body.toString('utf8', 0, 300)}`);
  }
  try {
    return JSON.parse(res.body.toString('utf8'));
  } catch (e) {
    return die(`config ${text} is not JSON: ${e.message}`);
  }
}

module.exports = { loadConfig, signedHeaders };
