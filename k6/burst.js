// Hundreds of simultaneous requests from one client: one VU sends them as one batch, with k6's
// batch limits raised so they are all in flight at once. Exactly `limit` may be admitted.
import http from 'k6/http';
import { checkAnswer, envNumber, freshUrl, recordServer, shortenParams, TARGET } from './lib.js';

const REQUESTS = envNumber('BURST_REQUESTS', 300);

export const options = {
  vus: 1,
  iterations: 1,
  batch: REQUESTS,
  batchPerHost: REQUESTS,
  thresholds: { checks: ['rate==1'] },
};

export default function () {
  const requests = [];
  for (let i = 0; i < REQUESTS; i++) {
    requests.push(['POST', `${TARGET}/shorten`, { url: freshUrl() }, shortenParams()]);
  }
  http.batch(requests).forEach((res, i) => {
    recordServer(res, requests[i][3]);
    checkAnswer(res);
  });
}
