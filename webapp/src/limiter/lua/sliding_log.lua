#!lua
-- (A Redis 7 shebang with no flags: Redis refuses the whole script while it is over
-- maxmemory, instead of letting it write past the limit once its first write, which frees
-- memory, is done. The cluster runs noeviction, so a full Redis shows as oom errors.)
-- Sliding-window log: at most ARGV[1] admissions in any ARGV[2] ms, exactly.
-- KEYS[1] = the client's log (a sorted set of admissions scored by Redis time in µs).
-- Returns {admitted (1/0), remaining, ms until the next unit of quota returns}.
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window_us = tonumber(ARGV[2]) * 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- If Redis' clock stepped back, keep the log ordered (and members unique) by never
-- deciding earlier than the newest admission.
local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) > now then
  now = tonumber(newest[2])
end
-- An admission at exactly now - window has left the window: it is (now - window, now].
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.0f', now - window_us))
local count = redis.call('ZCARD', key)
local admitted = 0
if count < limit then
  -- (time, count) is unique: within one microsecond the count only grows, so
  -- requests in the same instant are all recorded. Rejections are never recorded.
  local stamp = string.format('%.0f', now)
  redis.call('ZADD', key, stamp, stamp .. '-' .. count)
  redis.call('PEXPIRE', key, ARGV[2])
  count = count + 1
  admitted = 1
end
local next_us = 0
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
if oldest[2] then
  next_us = tonumber(oldest[2]) + window_us - now
end
return {admitted, limit - count, math.ceil(next_us / 1000)}
