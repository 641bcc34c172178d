// The tutorial's test: ramp to 20 virtual users, each POSTing a fresh URL to /shorten once a
// second. Every answer must be 200 or 429; the provisioner's verdict checks admissions per window.
import { sleep } from 'k6';
import { envNumber, shorten } from './lib.js';

const VUS = envNumber('VUS', 20);
const RAMP = envNumber('RAMP_SECONDS', 10);
const HOLD = envNumber('HOLD_SECONDS', 80);

export const options = {
  stages: [
    { duration: `${RAMP}s`, target: VUS },
    { duration: `${HOLD}s`, target: VUS },
    { duration: `${RAMP}s`, target: 0 },
  ],
  thresholds: { checks: ['rate==1'] },
};

export default function () {
  shorten();
  sleep(1);
}
