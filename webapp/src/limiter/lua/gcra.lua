#!lua
-- (A Redis 7 shebang with no flags: Redis refuses the whole script while it is over
-- maxmemory, instead of letting it write past the limit once its first write, which frees
-- memory, is done. The cluster runs noeviction, so a full Redis shows as oom errors.)
-- GCRA (generic cell rate algorithm): one admission per window/limit, bursts up to limit.
-- KEYS[1] = the theoretical arrival time (TAT) as "<µs>:<remainder>", where the remainder
-- counts 1/limit µs, so adding the emission interval (window/limit) is exact in integers.
-- ARGV[2] = window in ms. Returns {admitted (1/0), remaining, ms until the next unit returns}.
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window_us = tonumber(ARGV[2]) * 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat, rem = now, 0
local stored = redis.call('GET', key)
if stored then
  local s_tat, s_rem = string.match(stored, '^(%d+):(%d+)$')
  if s_tat and tonumber(s_tat) >= now then
    tat, rem = tonumber(s_tat), tonumber(s_rem)
  end
end
-- Backlog: how far TAT runs ahead of now, in units of 1/limit µs (exact integers).
local backlog = (tat - now) * limit + rem
local capacity = window_us * limit
local admitted = 0
if backlog + window_us <= capacity then
  backlog = backlog + window_us
  local ahead_us = math.floor(backlog / limit)
  redis.call('SET', key, string.format('%.0f:%d', now + ahead_us, backlog - ahead_us * limit),
    'PX', math.max(1, math.ceil(backlog / limit / 1000)))
  admitted = 1
end
local remaining = math.floor((capacity - backlog) / window_us)
local next_scaled = backlog - window_us * (limit - remaining - 1)
if next_scaled < 0 then
  next_scaled = 0
end
return {admitted, remaining, math.ceil(next_scaled / limit / 1000)}
