// Shared settings for the clusterlab k6 scripts: the target and the limiter policy come from
// the environment (the provisioner sets them from cluster.yaml), so one script serves any cluster.
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';

export const TARGET = (__ENV.TARGET || 'http://127.0.0.1:8080').replace(/\/$/, '');

// A number from the environment, with a default; anything else is a mistake worth stopping for.
export function envNumber(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, got "${raw}"`);
  return value;
}

// A fresh URL per request, so every POST creates work for the database, as in the tutorial.
export function freshUrl() {
  return `https://example.com/k6/${__VU}/${__ITER}/${Date.now()}/${Math.random().toString(36).slice(2)}`;
}

// The address this VU sends from: with `--local-ips`, k6 gives VU n the (n-1)-th address of
// the list (round robin), which the provisioner passes as LOCAL_IPS; else the tester's CLIENT.
// Requests are tagged with it so the verdict can count admissions per client. (No `name` tag:
// k6 would put it in place of the `url` tag, from which the verdict tells the route class.)
export function clientAddress() {
  const ips = (__ENV.LOCAL_IPS || '').split(',').filter((ip) => ip !== '');
  return ips.length > 0 ? ips[(__VU - 1) % ips.length] : (__ENV.CLIENT || 'tester');
}

// Which web server gave each answer, from its `X-Served-By` header. k6's JSON samples carry
// no response headers, so every answer adds 1 to this counter with the `request` tag of the
// request it answers (and `host`, when the header is there); the provisioner's verdict/k6.rs
// joins the two on that tag. A script that sends a request without `recordServer` leaves it
// with no known host, which the chart shows as "unknown".
const servedBy = new Counter('served_by');
let sent = 0;

// `params` for one request, with the tags every request carries: the client it is sent from
// and an id unique in the run (k6 numbers VUs across the whole test; setup() is VU 0).
export function tagged(params) {
  sent += 1;
  return Object.assign({}, params, { tags: { client: clientAddress(), request: `${__VU}.${sent}` } });
}

// Reports which server answered `res`, the answer to a request sent with `params` from `tagged`.
export function recordServer(res, params) {
  const host = res.headers['X-Served-By'];
  const tags = { request: params.tags.request };
  if (host !== undefined && host !== '') tags.host = host;
  servedBy.add(1, tags);
}

export function shortenParams() {
  return tagged({ headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
}

export function shorten() {
  const params = shortenParams();
  const res = http.post(`${TARGET}/shorten`, { url: freshUrl() }, params);
  recordServer(res, params);
  checkAnswer(res);
  return res;
}

// Addresses an unlimited override of cluster.yaml holds: the web app decides nothing for
// them, so their answers carry no RateLimit header (the provisioner sets the list).
const UNLIMITED = (__ENV.UNLIMITED_CLIENTS || '').split(',').filter((ip) => ip !== '');

// Only an admission (200) or a rate-limit rejection (429 with Retry-After) is a correct answer.
export function checkAnswer(res) {
  const unlimited = UNLIMITED.includes(clientAddress());
  return check(res, {
    'status is 200 or 429': (r) => r.status === 200 || r.status === 429,
    '429 carries Retry-After': (r) => r.status !== 429 || r.headers['Retry-After'] !== undefined,
    'RateLimit header present unless unlimited': (r) =>
      unlimited !== (r.headers['Ratelimit'] !== undefined || r.headers['RateLimit'] !== undefined),
  });
}
