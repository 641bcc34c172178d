// Steady traffic for as long as a deploy takes: redirects of one link and the page, at a fixed
// arrival rate. During a rolling deploy every answer must still be 2xx, 3xx or 429.
import http from 'k6/http';
import { check } from 'k6';
import { envNumber, recordServer, tagged, TARGET } from './lib.js';

const RATE = envNumber('RATE', 20);
const DURATION = envNumber('DURATION_SECONDS', 120);

export const options = {
  scenarios: {
    steady: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: `${DURATION}s`,
      preAllocatedVUs: Math.max(4, RATE),
    },
  },
  thresholds: { checks: ['rate==1'] },
};

export function setup() {
  const params = tagged({ headers: { 'Content-Type': 'application/json' } });
  const res = http.post(`${TARGET}/shorten`, JSON.stringify({ url: 'https://example.com/rolling' }), params);
  recordServer(res, params);
  if (res.status !== 200) throw new Error(`could not create the link to follow: ${res.status} ${res.body}`);
  return { code: res.json('code') };
}

export default function (data) {
  const params = tagged({ redirects: 0 });
  const res = http.get(`${TARGET}/${data.code}`, params);
  recordServer(res, params);
  check(res, { 'status is 2xx, 3xx or 429': (r) => (r.status >= 200 && r.status < 400) || r.status === 429 });
}
