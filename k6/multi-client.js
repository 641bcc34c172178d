// Several client addresses at once: run with `--local-ips` (the provisioner gives the tester extra
// addresses), so each VU sends from its own address and each address must get its own budget.
import { sleep } from 'k6';
import { envNumber, shorten } from './lib.js';

const CLIENTS = envNumber('CLIENTS', 4);
const REQUESTS = envNumber('REQUESTS_PER_CLIENT', 30);
const PAUSE = envNumber('PAUSE_SECONDS', 0.1);

export const options = {
  scenarios: {
    clients: { executor: 'per-vu-iterations', vus: CLIENTS, iterations: REQUESTS, maxDuration: '10m' },
  },
  thresholds: { checks: ['rate==1'] },
};

export default function () {
  shorten();
  sleep(PAUSE);
}
