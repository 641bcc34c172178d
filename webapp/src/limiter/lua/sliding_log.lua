#!lua
-- (A Redis 7 shebang with no flags: Redis refuses the whole script while it is over
-- maxmemory, instead of letting it write past the limit once its first write, which frees
-- memory, is done. The cluster runs noeviction, so a full Redis shows as oom errors.)
-- Sliding-window log: at most `limit` admissions in any window, exactly.
-- A limit's key is the client's log: a sorted set of admissions scored by Redis time in µs.
local function check(key, limit, window_ms, now_us)
  local window_us = tonumber(window_ms) * 1000
  local now = now_us
  -- If Redis' clock stepped back, keep the log ordered (and members unique) by never
  -- deciding earlier than the newest admission.
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if newest[2] and tonumber(newest[2]) > now then
    now = tonumber(newest[2])
  end
  -- An admission at exactly now - window has left the window: it is (now - window, now].
  redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.0f', now - window_us))
  local count = redis.call('ZCARD', key)
  return {key = key, limit = limit, window_ms = window_ms, window_us = window_us,
    now = now, count = count, admit = count < limit}
end

local function record(s)
  -- (time, count) is unique: within one microsecond the count only grows, so
  -- requests in the same instant are all recorded. Rejections are never recorded.
  local stamp = string.format('%.0f', s.now)
  redis.call('ZADD', s.key, stamp, stamp .. '-' .. s.count)
  redis.call('PEXPIRE', s.key, s.window_ms)
  s.count = s.count + 1
end

local function report(s)
  local next_us = 0
  local oldest = redis.call('ZRANGE', s.key, 0, 0, 'WITHSCORES')
  if oldest[2] then
    next_us = tonumber(oldest[2]) + s.window_us - s.now
  end
  return s.limit - s.count, math.ceil(next_us / 1000)
end

