#!lua
-- (A Redis 7 shebang with no flags: Redis refuses the whole script while it is over
-- maxmemory, instead of letting it write past the limit once its first write, which frees
-- memory, is done. The cluster runs noeviction, so a full Redis shows as oom errors.)
-- GCRA (generic cell rate algorithm): one admission per window/limit, bursts up to limit.
-- A limit's key holds the theoretical arrival time (TAT) as "<µs>:<remainder>", where the
-- remainder counts 1/limit µs, so adding the emission interval (window/limit) is exact in
-- integers.
local function check(key, limit, window_ms, now)
  local window_us = tonumber(window_ms) * 1000
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
  return {key = key, limit = limit, window_us = window_us, now = now, backlog = backlog,
    capacity = capacity, admit = backlog + window_us <= capacity}
end

local function record(s)
  local limit = s.limit
  s.backlog = s.backlog + s.window_us
  local ahead_us = math.floor(s.backlog / limit)
  redis.call('SET', s.key,
    string.format('%.0f:%d', s.now + ahead_us, s.backlog - ahead_us * limit),
    'PX', math.max(1, math.ceil(s.backlog / limit / 1000)))
end

local function report(s)
  local limit, window_us, backlog = s.limit, s.window_us, s.backlog
  local remaining = math.floor((s.capacity - backlog) / window_us)
  local next_scaled = backlog - window_us * (limit - remaining - 1)
  if next_scaled < 0 then
    next_scaled = 0
  end
  return remaining, math.ceil(next_scaled / limit / 1000)
end

