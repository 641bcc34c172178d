#!lua
-- (A Redis 7 shebang with no flags: Redis refuses the whole script while it is over
-- maxmemory, instead of letting it write past the limit once its first write, which frees
-- memory, is done. The cluster runs noeviction, so a full Redis shows as oom errors.)
-- Sliding-window counter: the previous fixed window's count, weighted by how much of it
-- still overlaps the sliding window, plus the current window's count; at most ARGV[1].
-- KEYS[1] = a hash {w = current window index, c = its count, p = previous window's count}.
-- ARGV[2] = window in ms. Returns {admitted (1/0), remaining, ms until the next unit returns}.
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local index = math.floor(now / window)
local elapsed = now - index * window
local state = redis.call('HMGET', key, 'w', 'c', 'p')
local w = tonumber(state[1])
local c = tonumber(state[2]) or 0
local p = tonumber(state[3]) or 0
if w == nil then
  c, p = 0, 0
elseif w == index - 1 then
  p, c = c, 0
elseif w > index then
  -- Redis' clock stepped back into an earlier window: keep counting in the stored one.
  index, elapsed = w, 0
elseif w ~= index then
  c, p = 0, 0
end
-- Everything is scaled by the window so the arithmetic stays in exact integers.
local limit_scaled = limit * window
local used_scaled = p * (window - elapsed) + c * window
local admitted = 0
if used_scaled + window <= limit_scaled then
  c = c + 1
  used_scaled = used_scaled + window
  redis.call('HSET', key, 'w', index, 'c', c, 'p', p)
  -- The count is still needed as "previous" during the next window.
  redis.call('PEXPIRE', key, 2 * window - elapsed)
  admitted = 1
end
local remaining = math.floor((limit_scaled - used_scaled) / window)
if remaining < 0 then
  remaining = 0
end
-- The estimate decays linearly: the previous window's weight until this window ends,
-- then this window's count across the next one. Find when it reaches the level at
-- which one more unit is free.
local target_scaled = (limit - remaining - 1) * window
if target_scaled < 0 then
  target_scaled = 0
end
local next_ms = 0
if used_scaled > target_scaled then
  if target_scaled >= c * window then
    next_ms = math.ceil((used_scaled - target_scaled) / p)
  else
    next_ms = (window - elapsed) + math.ceil((c * window - target_scaled) / c)
  end
end
return {admitted, remaining, next_ms}
