// k6 on the booted tester VM against Redis on the booted redis VM, for tests/cloud_init_boot.rs:
// every iteration increments one counter, so the counter must end equal to k6's own
// iteration count (the test compares them).
import redis from 'k6/experimental/redis';

const client = new redis.Client(__ENV.REDIS_URL);

export const options = {
  vus: 2,
  duration: __ENV.DURATION || '3s',
};

export default async function () {
  await client.incr(__ENV.COUNTER);
}
